"""Batched vector env (one forward pass per chunk for N streams) vs N separate envs stepped in turn.

    python benchmarks/vector_env.py                                      # tiny-random on the CPU
    python benchmarks/vector_env.py --model wan2.1-1.3b --random-weights --device cuda --num-envs 1 2 4 8

Both sides step the same seeded random actions through the Gymnasium API; "separate" is Gymnasium's
SyncVectorEnv over N StreamVideoEnv, each with its own generator. Shows a progress bar (one tick per
measurement: N streams, one side, one round), prints a table and saves the results JSON to `--out`
(default: benchmarks/results/local/vector_env-<model>-<device>.json, not committed). The committed
results are replaced only on purpose: `--out benchmarks/results/vector_env-<model>-<device>.json`.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import torch
from tqdm import tqdm

import streamvideo
from streamvideo.envs.stream_env import StreamVideoEnv
from streamvideo.envs.vector_env import StreamVideoVectorEnv

LOCAL_RESULTS = Path(__file__).parent / "results" / "local"   # runs that should not replace the committed JSON


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random", help="preset name or model folder")
    parser.add_argument("--random-weights", action="store_true", help="needed for the wan2.1-1.3b preset")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="frame size of the random presets (default: the preset's)")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--mode", default="diagonal", help="rollout mode")
    parser.add_argument("--schedule", default=None, help="steps per chunk (default: the model's)")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 4, 8], help="stream counts to measure")
    parser.add_argument("--steps", type=int, default=14, help="timed steps (chunks) per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating rounds of both sides; the best round counts (a shared machine is noisy)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: benchmarks/results/local/vector_env-<model>-<device>.json)")
    args = parser.parse_args()
    if args.out is None:
        args.out = LOCAL_RESULTS / f"vector_env-{Path(args.model).name}-{args.device.split(':')[0]}.json"
    return args


def load_generator(args: argparse.Namespace, batch_size: int):
    extra = {"resolution": tuple(args.resolution)} if args.resolution else {}
    return streamvideo.load(args.model, device=args.device, mode=args.mode, schedule=args.schedule,
                            batch_size=batch_size, random_weights=args.random_weights, **extra)


def measure(envs, steps: int, warmup: int) -> dict:
    """Frames per second and seconds per step over `steps` steps, after `warmup` steps."""
    envs.action_space.seed(0)
    envs.reset(seed=0)
    for _ in range(warmup):
        envs.step(envs.action_space.sample())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        frames = envs.step(envs.action_space.sample())[4]["frames"]   # [N, T, H, W, 3]
    seconds = time.perf_counter() - start
    result = {"frames_per_second": steps * frames.shape[0] * frames.shape[1] / seconds,
              "seconds_per_step": seconds / steps}
    if torch.cuda.is_available():
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def fastest(results: list[dict]) -> dict:
    return max(results, key=lambda r: r["frames_per_second"])


def best_of_alternating_rounds(batched, separate, args, progress: tqdm) -> tuple[dict, dict]:
    results: dict[str, list[dict]] = {"batched": [], "separate": []}
    for round_index in range(args.repeats):
        for side, envs in (("batched", batched), ("separate", separate)):
            progress.set_postfix_str(f"N={envs.num_envs} {side}, round {round_index + 1}/{args.repeats}")
            results[side].append(measure(envs, args.steps, args.warmup))
            progress.update()
    return fastest(results["batched"]), fastest(results["separate"])


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    args = parse_args()
    rows = []
    progress = tqdm(total=len(args.num_envs) * args.repeats * 2, desc="vector_env", unit="measurement")
    progress.write(f"{'N':>3} {'batched fps':>12} {'separate fps':>13} {'speedup':>8}   ({args.model}, {args.device})")
    for n in args.num_envs:
        progress.set_postfix_str(f"N={n} loading")
        batched_env = StreamVideoVectorEnv(n, model=load_generator(args, n))
        separate_envs = gym.vector.SyncVectorEnv(
            [lambda: StreamVideoEnv(model=load_generator(args, 1)) for _ in range(n)])
        batched, separate = best_of_alternating_rounds(batched_env, separate_envs, args, progress)
        batched_env.close()
        separate_envs.close()
        release_memory()
        speedup = batched["frames_per_second"] / separate["frames_per_second"]
        rows.append({"num_envs": n, "batched": batched, "separate": separate, "speedup": speedup})
        progress.write(f"{n:>3} {batched['frames_per_second']:>12.1f} {separate['frames_per_second']:>13.1f} "
                       f"{speedup:>7.2f}x")
    progress.close()

    probe = load_generator(args, 1)
    report = {
        "benchmark": "vector_env", "model": args.model, "device": args.device, "mode": args.mode,
        "schedule": args.schedule, "frame_size": [probe.height, probe.width],
        "frames_per_chunk": probe.frames_per_chunk, "steps": args.steps, "warmup": args.warmup,
        "repeats": args.repeats,
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "machine": platform.platform(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
