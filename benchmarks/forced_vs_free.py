"""Where a rollout goes wrong: one step ahead of real frames ("forced") beside the model's own rollout ("free").

    python benchmarks/forced_vs_free.py runs/main/teacher/model --out forced_vs_free.png

Real episodes of the env the model folder records (held-out seeds, keys held for `--hold` frames) are played
twice by the model: **free**, from the first `--start` real frames on its own outputs (from one, as `play` and
the eval start), and **forced**, every frame predicted from the real frames before it (the last `--context`).
The pixel MSE against the real frame is printed per frame for both, with copying the previous real frame as the
baseline. A
forced error that stays low while the free one climbs is compounding (exposure bias); a forced error as high as
the free one is a one-step model that is not good enough yet. The sheet shows real / free / forced rows per
episode, every frame, so the avatar and the scroll can be seen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

import streamvideo
from streamvideo.engine.presets import trained_env
from streamvideo.envs import register_all


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float((((a.astype(np.float64) - b.astype(np.float64)) / 255) ** 2).mean())


def real_episode(env, seed: int, frames: int, hold: int, rng: np.random.Generator):
    """(prompt, real frames [frames + 1, H, W, 3], actions [frames]) with a random key held for `hold` frames."""
    frame, info = env.reset(seed=seed)
    real, actions = [frame], []
    for t in range(frames):
        actions.append(int(rng.integers(env.action_space.n)) if t % hold == 0 else actions[-1])
        frame, *_ = env.step(actions[-1])
        real.append(frame)
    return info.get("prompt"), np.stack(real), actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="model folder (its recorded env is played)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12, help="frames generated per episode")
    parser.add_argument("--hold", type=int, default=4, help="frames each random key is held")
    parser.add_argument("--context", type=int, default=3, help="real frames each forced prediction starts from")
    parser.add_argument("--start", type=int, default=1, help="real frames the free rollout starts from (the eval: 1)")
    parser.add_argument("--seed", type=int, default=1000, help="first env seed (held out from collect's 0, 1, ...)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("forced_vs_free.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_all()
    recorded = trained_env(args.model) or {"id": "StreamVideoGame-v0", "kwargs": {}}
    env = gym.make(recorded["id"], **recorded["kwargs"])
    gen = streamvideo.load(args.model)
    rng = np.random.default_rng(args.seed)
    free_err, forced_err, copy_err, rows = [], [], [], []
    for seed in range(args.seed, args.seed + args.episodes):
        prompt, real, actions = real_episode(env, seed, args.start - 1 + args.frames, args.hold, rng)
        targets = range(args.start, args.start + args.frames)          # indices of the real frames predicted
        gen.reset(prompt=prompt, seed=seed, context_frames=real[:args.start])
        free = [gen.step(actions[i - 1]).frames[-1] for i in targets]
        forced = []
        for i in targets:
            gen.reset(prompt=prompt, seed=seed, context_frames=real[max(0, i - args.context):i])
            forced.append(gen.step(actions[i - 1]).frames[-1])
        truth = real[args.start:]
        free_err.append([mse(f, r) for f, r in zip(free, truth)])
        forced_err.append([mse(f, r) for f, r in zip(forced, truth)])
        copy_err.append([mse(real[i - 1], real[i]) for i in targets])
        rows += [np.concatenate(list(r), 1) for r in (truth, free, forced)]
    print(f"{args.model}: pixel MSE per frame, mean of {args.episodes} episodes (keys held {args.hold} frames)")
    print("| frame | " + " | ".join(str(t + 1) for t in range(args.frames)) + " | mean |")
    print("|---|" + "---|" * (args.frames + 1))
    for name, err in (("free", free_err), ("forced", forced_err), ("copy previous real", copy_err)):
        per_frame = np.mean(err, 0)
        print(f"| {name} | " + " | ".join(f"{e:.4f}" for e in per_frame) + f" | {per_frame.mean():.4f} |")
    sheet = np.concatenate(rows, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(args.out)
    print(f"sheet (rows per episode: real, free, forced) -> {args.out}")


if __name__ == "__main__":
    main()
