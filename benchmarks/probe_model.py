"""The action probe of saved model folders, on the held-out windows a teacher run of that data probes.

    python benchmarks/probe_model.py runs/main/t-plain/model runs/main/t-self/model \
        --data data/t4s8-0 --codec runs/codec-t4s8 --chunk-frames 1 --episode-chunks 48

The windows are `train teacher`'s (the last `--probe-windows` clips, drawn with `--seed` + 1), so the numbers
match the run's own probe at its last step and can be compared across folders; the rollout check is included
(sdk/train/probe.py says what each number means).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamvideo.engine.presets import from_folder
from streamvideo.train.data import cached_latent_clips, dataset_actions, load_codec, text_encoder
from streamvideo.train.probe import action_probe
from streamvideo.train.teacher import Args, held_out_count, held_out_windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders trained on --data")
    parser.add_argument("--data", required=True, help="the dataset the models were trained on")
    parser.add_argument("--codec", required=True, help="its codec folder (holds the encoded dataset)")
    parser.add_argument("--chunk-frames", type=int, default=3, help="as the teacher run")
    parser.add_argument("--clip-chunks", type=int, default=4, help="as the teacher run")
    parser.add_argument("--episode-chunks", type=int, default=16, help="as the teacher run")
    parser.add_argument("--probe-windows", type=int, default=64, help="as the teacher run")
    parser.add_argument("--seed", type=int, default=0, help="as the teacher run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = Args(data=args.data, codec=args.codec, chunk_frames=args.chunk_frames, clip_chunks=args.clip_chunks,
               episode_chunks=args.episode_chunks, probe_windows=args.probe_windows, seed=args.seed)
    codec, spec = load_codec(args.codec), dataset_actions(args.data)
    clips = cached_latent_clips(args.codec, args.data, args.episode_chunks * args.chunk_frames * codec.temporal_factor,
                                spec)
    windows = held_out_windows(clips, held_out_count(clips, run), run, text_encoder())
    for folder in args.models:
        model = from_folder(folder, "cpu", torch.float32)[0]
        probed = action_probe(model, windows, spec)
        print(f"{folder}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in probed.items()))


if __name__ == "__main__":
    main()
