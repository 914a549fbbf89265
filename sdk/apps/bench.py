"""`streamvideo bench`: every rollout mode on one model, side by side.

For each mode: a warm-up episode, then a fresh episode of N chunks. The warm-up's wall time is reported
(with `--speedups compile` it holds the compilation). First-chunk latency is the first `step()` after
`reset()` (for hierarchical mode that includes filling its pipeline); steady-state FPS counts video
frames over the remaining chunks.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ..engine.checkpoints import UserError
from ..engine.presets import generator_from_parts, load_parts
from ..engine.rollout import MODES
from ..engine.schedules import schedule_text
from ..engine.speedups import add_speedups_argument
from ..engine.threads import add_threads_argument, positive_int, set_threads

UNIFORM_MODES = ("self_forcing", "hierarchical")


def add_arguments(p) -> None:
    p.add_argument("--preset", default="tiny-random", help="model preset or folder (default: tiny-random)")
    p.add_argument("--random-weights", action="store_true", help="random weights for wan2.1-1.3b")
    p.add_argument("--resolution", type=parse_resolution, default=None,
                   help="WIDTHxHEIGHT, e.g. 832x480 (random presets)")
    p.add_argument("--schedule", type=schedule_text, default="4322222",
                   help="diagonal mode's step allocation (default 4322222)")
    p.add_argument("--uniform-steps", type=uniform_steps, default="4",
                   help="steps of self_forcing / hierarchical, 1 to 9 (default 4)")
    p.add_argument("--modes", type=parse_modes, default="diagonal,self_forcing,hierarchical",
                   help="comma-separated rollout modes")
    p.add_argument("--chunks", type=positive_int, default=20, help="measured chunks per mode (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up chunks per mode (default 3)")
    p.add_argument("--window", type=positive_int, default=2,
                   help="past chunks in the attention window (default 2, the release)")
    p.add_argument("--sinks", type=int, default=1, help="attention-sink chunks (default 1, the release)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: bf16 on cuda, fp32 on cpu)")
    add_speedups_argument(p)
    add_threads_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="where to write the results (default streamvideo-bench-PRESET.json)")


def parse_resolution(text: str) -> tuple[int, int]:
    """argparse type: "WIDTHxHEIGHT" -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels like 832x480, got {text!r}")
    return height, width


def uniform_steps(text: str) -> str:
    """argparse type: the one-digit step allocation of the uniform modes ("12" would mean 1 step, then 2)."""
    if len(text) != 1 or not "1" <= text <= "9":
        raise argparse.ArgumentTypeError(f"expected a step count from 1 to 9, got {text!r}")
    return text


def parse_modes(text: str) -> list[str]:
    """argparse type: comma-separated rollout modes."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"expected comma-separated modes out of {', '.join(MODES)}, got {text!r}")
    return modes


def check_counts(args) -> None:
    """Counts argparse cannot bound alone (0 is a valid value)."""
    for flag in ("warmup", "sinks"):
        if getattr(args, flag) < 0:
            raise UserError(f"--{flag} must be 0 or more, got {getattr(args, flag)}")


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # KiB -> GB; process-wide peak on CPU


def measure(gen, chunks: int, warmup: int, seed: int) -> dict:
    started = time.perf_counter()
    gen.reset(seed=seed)
    for _ in range(warmup):
        gen.step()
    warmup_s = time.perf_counter() - started   # with --speedups compile: the compilation, on the first mode
    if gen.device.type == "cuda":
        torch.cuda.synchronize(gen.device)
        torch.cuda.reset_peak_memory_stats(gen.device)
    gen.reset(seed=seed)
    seconds, nfe = [], []
    for _ in range(chunks):
        c = gen.step()
        seconds.append(c.seconds)
        nfe.append(c.nfe)
    steady = np.asarray(seconds[1:]) if chunks > 1 else np.asarray(seconds)
    return {
        "warmup_s": warmup_s, "first_chunk_s": seconds[0],
        "fps": gen.frames_per_chunk * len(steady) / float(steady.sum()),
        "p50_s": float(np.percentile(steady, 50)), "p95_s": float(np.percentile(steady, 95)),
        "nfe_per_chunk": float(np.mean(nfe[1:] if chunks > 1 else nfe)), "nfe_sequence": nfe,
        "frames_per_chunk": gen.frames_per_chunk, "peak_memory_gb": peak_memory_gb(gen.device),
    }


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device, dtype) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"device": str(device), "device_name": name, "dtype": str(dtype).replace("torch.", ""),
            "torch": torch.__version__, "cuda": torch.version.cuda, "commit": commit(),
            "threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def print_table(rows: list[dict]) -> None:
    head = f"{'mode':<14}{'schedule':<10}{'warm-up s':>10}{'first chunk s':>14}{'FPS':>9}{'p50 s':>9}{'p95 s':>9}" \
           f"{'NFE/chunk':>11}{'peak GB':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['mode']:<14}{r['schedule']:<10}{r['warmup_s']:>10.1f}{r['first_chunk_s']:>14.3f}{r['fps']:>9.1f}{r['p50_s']:>9.3f}"
              f"{r['p95_s']:>9.3f}{r['nfe_per_chunk']:>11.2f}{r['peak_memory_gb']:>9.2f}")


def run(args) -> int:
    check_counts(args)
    set_threads(args.threads)
    parts = load_parts(args.preset, args.device, args.dtype, args.random_weights, args.resolution, args.speedups)
    model = parts[0]
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    rows = []
    for mode in args.modes:
        schedule = args.schedule if mode == "diagonal" else args.uniform_steps
        gen = generator_from_parts(parts, mode, schedule, window_chunks=args.window, sink_chunks=args.sinks)
        rows.append({"mode": mode, "schedule": schedule, **measure(gen, args.chunks, args.warmup, args.seed)})
        del gen
    env = environment(device, dtype)
    h, w = parts[3][0] * parts[1].spatial_factor, parts[3][1] * parts[1].spatial_factor
    print(f"streamvideo bench: {args.preset} at {w}x{h}, {env['device_name']} ({env['device']}, {env['dtype']}), "
          f"torch {env['torch']}, commit {env['commit']}, {args.chunks} chunks per mode")
    print(f"speed-ups: {','.join(model.speedups) or 'none'}")
    print_table(rows)
    by_mode = {r["mode"]: r for r in rows}
    if "diagonal" in by_mode and "self_forcing" in by_mode:
        ratio = by_mode["diagonal"]["fps"] / by_mode["self_forcing"]["fps"]
        print(f"diagonal / self_forcing throughput: {ratio:.2f}x")
    out = Path(args.json or f"streamvideo-bench-{Path(str(args.preset)).name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "resolution": [w, h], "chunks": args.chunks,
                               "environment": env,
                               "speedups": list(model.speedups), "results": rows}, indent=2))
    print(f"wrote {out}")
    return 0
