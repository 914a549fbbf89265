"""Where a chunk's milliseconds go: `torch.profiler` over a steady stream, every op put in one category.

    OMP_NUM_THREADS=1 python benchmarks/profile_chunk.py --threads 1 [--preset default] [--chunks 40]
                                                          [--speedups LIST] [--out PATH]

Each top-level torch op is charged to a category by its name (attention, matmuls, norms, GELU) or by the
function of ours that called it (RoPE, the KV cache, the codec, ...); RoPE called from
`StreamContext.keys_and_values` counts as "RoPE on cached keys". What no op accounts for is Python, dispatch
and the profiler's own cost.
The run starts after 8 warm-up chunks, so it measures the steady state (2 passes per chunk with `4322222`).
An unprofiled timing of the same chunks is printed beside it, since the profiler slows small ops down.

Saves JSON to --out (default benchmarks/results/local/profile-PRESET-threadsT.json, not committed).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from streamvideo.apps.bench import commit
from streamvideo.engine.presets import load
from streamvideo.engine.threads import set_threads

LOCAL_RESULTS = Path(__file__).parent / "results" / "local"
WARMUP_CHUNKS = 8
BY_OP = {   # top-level op name -> category
    "aten::scaled_dot_product_attention": "attention (SDPA)",
    "aten::linear": "matmuls (linear layers)", "aten::addmm": "matmuls (linear layers)",
    "aten::matmul": "matmuls (linear layers)", "aten::mm": "matmuls (linear layers)",
    "aten::conv3d": "matmuls (linear layers)",
    "aten::layer_norm": "norms (LayerNorm, RMSNorm)", "aten::rms_norm": "norms (LayerNorm, RMSNorm)",
    "aten::gelu": "GELU",
}
BY_FUNCTION = [   # (regex on our innermost calling function "file: function", category), first match wins
    (r"rope\.py: apply_rope", "RoPE"), (r"model\.py: gelu_tanh_in_place", "GELU"),
    (r"rope\.py: rope_angles|stream_context|chunk_rope", "positions and masks"),
    (r"codecs/", "codec decode"), (r"kv_cache\.py", "KV cache read/write"),
    (r"model\.py: self_attention", "joining cached and new keys"),
    (r"generator\.py: (emit|conditioning)|text\.py|actions\.py", "conditioning, frames to uint8"),
    (r"rollout\.py|flow\.py", "sampler (noise, x0, re-noise)"),
    (r"model\.py", "adaLN, residuals, embeddings (elementwise)"),
]
FRAME = re.compile(r"^(?P<file>.*\.py)\((?P<line>\d+)\): (?P<function>.+)$")


def our_frames(event) -> list[re.Match]:
    """The profiler's Python frames above an op, innermost first, that lie in this package."""
    frames, parent = [], event.cpu_parent
    while parent is not None:
        match = FRAME.match(parent.name)
        if match and "/sdk/" in match["file"]:
            frames.append(match)
        parent = parent.cpu_parent
    return frames


def category(event) -> str | None:
    """The category of a top-level op (None for ops nested in another op: their parent is charged)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return None
        parent = parent.cpu_parent
    if event.name in BY_OP:
        return BY_OP[event.name]
    frames = our_frames(event)
    if not frames:
        return "other"
    where = f"{frames[0]['file'].split('/sdk/')[1]}: {frames[0]['function']}"
    for pattern, name in BY_FUNCTION:
        if re.search(pattern, where):
            if name == "RoPE":
                cached = len(frames) > 1 and frames[1]["function"] == "keys_and_values"
                return "RoPE on cached keys" if cached else "RoPE on new q, k"
            return name
    return "other"


def profile_chunks(gen, chunks: int) -> tuple[dict[str, float], float]:
    """({category: ms per chunk}, profiled wall ms per chunk)."""
    with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
        start = time.perf_counter()
        for _ in range(chunks):
            gen.step()
        wall = (time.perf_counter() - start) * 1000 / chunks
    totals: dict[str, float] = {}
    for event in prof.events():
        if event.name.startswith("aten::") and (name := category(event)) is not None:
            totals[name] = totals.get(name, 0.0) + event.cpu_time_total / 1000 / chunks
    totals["Python, dispatch, profiler"] = max(0.0, wall - sum(totals.values()))
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])), wall


def timed_chunks(gen, chunks: int) -> float:
    start = time.perf_counter()
    for _ in range(chunks):
        gen.step()
    return (time.perf_counter() - start) * 1000 / chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="model preset or folder (default: default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--chunks", type=int, default=40, help="profiled chunks (default 40)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument("--speedups", default=None,
                        help="as `streamvideo bench --speedups` (default: load's own; leave it out to profile a "
                             "commit from before the option, as benchmarks/before_after.py runs one)")
    args = parser.parse_args()
    set_threads(args.threads)
    gen = load(args.preset, device="cpu", **({} if args.speedups is None else {"speedups": args.speedups}))
    speedups = ",".join(getattr(gen.model, "speedups", ())) or "none"
    gen.reset(seed=0)
    for _ in range(WARMUP_CHUNKS):
        gen.step()
    plain_ms = timed_chunks(gen, args.chunks)
    totals, wall = profile_chunks(gen, args.chunks)
    print(f"profile: {args.preset}, {args.threads} thread(s), commit {commit()}, {args.chunks} steady chunks "
          f"({gen.frames_per_chunk} frames each), speed-ups: {speedups}")
    print(f"unprofiled: {plain_ms:.1f} ms per chunk ({gen.frames_per_chunk * 1000 / plain_ms:.1f} FPS); "
          f"profiled: {wall:.1f} ms per chunk")
    print(f"| {'where':<44} | ms per chunk | share |\n|{'-' * 46}|--------------|-------|")
    for name, ms in totals.items():
        print(f"| {name:<44} | {ms:12.2f} | {100 * ms / wall:4.0f} % |")
    out = args.out or LOCAL_RESULTS / f"profile-{Path(args.preset).name}-threads{args.threads}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "threads": args.threads, "commit": commit(),
                               "speedups": speedups, "chunks": args.chunks, "unprofiled_ms": plain_ms,
                               "profiled_ms": wall, "ms_per_chunk": totals}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
