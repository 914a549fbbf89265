"""`streamvideo bench` of an old commit beside the working tree, in one run, rounds interleaved.

    python benchmarks/before_after.py --old a7d1cbc [--threads 1 2] [--rounds 3] [--chunks 40]
                                      [--new-args "--speedups default"] [--out PATH]

The old commit is checked out in a temporary git worktree and imported through a symlinked package (no
install), so both sides run on this interpreter's torch. Each round runs the old and then the new code at
every thread count, one process at a time (OMP_NUM_THREADS set to match), so slow spells of a shared
machine fall on both sides; the table gives the median over rounds of diagonal-mode FPS. `--new-args` go to
the new side only (an old commit may lack the option). Saves JSON to --out (default
benchmarks/results/local/before-after-OLD.json, not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCAL_RESULTS = Path(__file__).parent / "results" / "local"
SUBPACKAGES = ("envs", "bridge")   # pyproject's package-dir: streamvideo is sdk/, these are top-level folders


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def old_package(tree: Path, into: Path) -> Path:
    """A folder to put first on PYTHONPATH that imports `streamvideo` from the worktree `tree`."""
    package = into / "streamvideo"
    package.mkdir(parents=True)
    for entry in (tree / "sdk").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in SUBPACKAGES:
        (package / name).symlink_to(tree / name)
    return into


def bench(pythonpath: str | None, threads: int, chunks: int, extra: list[str], out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "streamvideo.apps.cli", "bench", "--preset", "default", "--modes", "diagonal",
               "--device", "cpu", "--threads", str(threads), "--chunks", str(chunks), "--json", str(out), *extra]
    subprocess.run(command, env=env, cwd=out.parent, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the commit to compare against")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--new-args", default="", help="extra `streamvideo bench` options of the new side")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    old = git("rev-parse", "--short", args.old)
    new = git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no")
                                                else "")
    runs: dict[str, dict[int, list[dict]]] = {side: {t: [] for t in args.threads} for side in ("old", "new")}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        git("worktree", "add", "--detach", str(tree), old)
        try:
            sides = {"old": str(old_package(tree, Path(tmp) / "path")), "new": None}
            extra = {"old": [], "new": shlex.split(args.new_args)}
            for round_ in range(args.rounds):
                for threads in args.threads:
                    for side, path in sides.items():
                        result = bench(path, threads, args.chunks, extra[side], Path(tmp) / "bench.json")
                        runs[side][threads].append(result)
                        fps = result["results"][0]["fps"]
                        print(f"round {round_ + 1}: {side} ({old if side == 'old' else new}), {threads} thread(s): "
                              f"{fps:.1f} FPS", flush=True)
        finally:
            git("worktree", "remove", "--force", str(tree))
    rows = []
    for threads in args.threads:
        fps = {side: statistics.median(r["results"][0]["fps"] for r in runs[side][threads]) for side in runs}
        first = {side: statistics.median(r["results"][0]["first_chunk_s"] for r in runs[side][threads])
                 for side in runs}
        rows.append({"threads": threads, "old_fps": fps["old"], "new_fps": fps["new"],
                     "speedup": fps["new"] / fps["old"], "old_first_chunk_s": first["old"],
                     "new_first_chunk_s": first["new"],
                     "new_warmup_s": statistics.median(r["results"][0]["warmup_s"] for r in runs["new"][threads])})
    print(f"\ndefault model, diagonal, median of {args.rounds} interleaved rounds of {args.chunks} chunks; "
          f"old {old}, new {new} {args.new_args}".rstrip())
    print("| threads | old FPS | new FPS | new / old | first chunk old / new | new warm-up |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['old_fps']:.1f} | {r['new_fps']:.1f} | {r['speedup']:.2f}x | "
              f"{r['old_first_chunk_s'] * 1000:.0f} / {r['new_first_chunk_s'] * 1000:.0f} ms | "
              f"{r['new_warmup_s']:.1f} s |")
    out = args.out or LOCAL_RESULTS / f"before-after-{old}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"old": old, "new": new, "new_args": args.new_args, "rounds": args.rounds,
                               "chunks": args.chunks, "rows": rows, "runs": runs}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
