"""Bridge overhead on loopback: per-step cost over the in-process env, and stream FPS with many clients.

    python benchmarks/bridge.py [--steps 300] [--clients 8] [--seconds 5] [--model tiny-random]
    OMP_NUM_THREADS=1 python benchmarks/bridge.py --only sessions --batch-models default,tiny-random --threads 1

1. transport: a synthetic frame source (preallocated frames, no model) at 64x64x3 and 832x480x12,
   stepped in process and through the bridge (raw and JPEG); the difference is the bridge's cost.
2. env: StreamVideo-v0 in process vs RemoteEnv, same model, same seed and actions.
3. streams: `streamvideo serve` in a subprocess, N clients each streaming one session in real time
   (at the model's rate, then unpaced); frames received per client per second.
4. sessions: two `streamvideo serve` subprocesses of one model, `--max-batch 1` (sessions stepped one
   after another) and `--max-batch 8` (one forward pass for all sessions with a step pending), both up
   for the whole run; 1, 2, 4 and 8 lock-step clients (each steps, waits for its chunk, steps again)
   measured on one, then the other, so both see the same machine; total steps/s and the mean batch.
5. workers (--only workers): `streamvideo serve --workers N` fronts (N from --workers, e.g. 1,2; each worker
   --threads torch threads, default 1), all up for the whole run; --clients lock-step clients measured on
   each front in turn, twice; total steps/s through each front.
Writes benchmarks/results/bridge-<model>-cpu.json (--only sessions: bridge-sessions-threads<N>-cpu.json, --only
workers: bridge-workers-threads<N>-cpu.json) and prints a table.

    OMP_NUM_THREADS=1 python benchmarks/bridge.py --only workers --workers 1,2 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np

import streamvideo
import streamvideo.envs  # noqa: F401  (registers StreamVideo-v0)
from streamvideo.bridge import Client, RemoteEnv, Server, ServerConfig
from streamvideo.engine.actions import ActionSpec

LOOPBACK = "tcp://127.0.0.1:*"
RESULTS = Path(__file__).parent / "results"


class SyntheticSource:
    """Frames of a fixed size at no compute cost: isolates the transport (benchmark only)."""

    def __init__(self, frames: int, height: int, width: int):
        self.action_spec = ActionSpec("discrete", n=4)
        self.frames_per_chunk, self.height, self.width, self.fps = frames, height, width, 16.0
        self.frames = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), np.uint8)
        self.index = 0
        self.stats: dict = {}

    def reset(self, prompt=None, seed=None, context_frames=None) -> None:
        self.index = 0

    def step(self, action=None) -> SimpleNamespace:
        self.action_spec.validate(action)
        self.index += 1
        return SimpleNamespace(frames=self.frames, index=self.index - 1, nfe=0, seconds=0.0, prompt="")

    def set_prompt(self, prompt, recache=False) -> None:
        pass


def median_ms(fn, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def transport(steps: int) -> list[dict]:
    rows = []
    for frames, height, width in [(3, 64, 64), (12, 480, 832)]:
        shape = (frames, height, width)
        server = Server(ServerConfig(bind=LOOPBACK, pub=LOOPBACK, models=("synthetic",)),
                        loader=lambda name, shape=shape, **_: SyntheticSource(*shape)).start()
        local = SyntheticSource(*shape)
        in_process = median_ms(local.step, steps)
        with Client(server.endpoints["control"], timeout=60) as client:
            for encoding in ("raw", "jpeg"):
                session = client.open(encoding=encoding)
                n = steps if encoding == "raw" or height == 64 else max(10, steps // 20)
                session.step(1)  # warm up
                remote = median_ms(lambda s=session: s.step(1), n)
                mbytes = local.frames.nbytes / 1e6
                rows.append({"bench": "transport", "frames": f"{width}x{height}x{frames}", "encoding": encoding,
                             "in_process_ms": in_process, "bridge_ms": remote, "overhead_ms": remote - in_process,
                             "raw_MB": mbytes, "MB_per_s": mbytes / (remote / 1000)})
                session.close()
        server.stop()
    return rows


def env_overhead(model: str, steps: int) -> dict:
    """Local and remote env steps interleaved, so both see the same machine load."""
    server = Server(ServerConfig(bind=LOOPBACK, pub=LOOPBACK, models=(model,))).start()
    envs = {"in_process_ms": gym.make("StreamVideo-v0", model=model).unwrapped,
            "bridge_ms": RemoteEnv(server.endpoints["control"], model=model, client={"timeout": 120})}
    times: dict[str, list] = {name: [] for name in envs}
    actions = np.random.default_rng(0).integers(0, envs["bridge_ms"].action_space.n, steps + 5)
    for env in envs.values():
        env.reset(seed=0)
    for i, action in enumerate(actions):
        for name, env in envs.items():
            start = time.perf_counter()
            env.step(int(action))
            if i >= 5:  # the first chunks warm the model up
                times[name].append(time.perf_counter() - start)
    envs["bridge_ms"].close()
    server.stop()
    result = {name: float(np.median(t) * 1000) for name, t in times.items()}
    gen = envs["in_process_ms"].generator
    return {"bench": "env", "model": model, "frames": f"{gen.width}x{gen.height}x{gen.frames_per_chunk}", **result,
            "overhead_ms": result["bridge_ms"] - result["in_process_ms"]}


def start_serve(model: str, *options: str) -> tuple[subprocess.Popen, str]:
    """`streamvideo serve` in a subprocess on free loopback ports: (process, control address)."""
    proc = subprocess.Popen([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--bind", LOOPBACK,
                             "--pub", LOOPBACK, "--model", model, *options], stderr=subprocess.PIPE, text=True)
    address = next(m.group(1) for line in proc.stderr if (m := re.search(r"on (tcp://\S+), streams", line)))
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep the pipe drained
    return proc, address


def stop_serve(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def stream_fps(model: str, clients: int, seconds: float) -> list[dict]:
    proc, address = start_serve(model, "--max-sessions", str(clients))
    try:
        return [_stream_round(address, clients, seconds, fps) for fps in (None, 0.0)]
    finally:
        stop_serve(proc)


def lockstep_sessions(model: str, client_counts: list[int], seconds: float, threads: int | None) -> list[dict]:
    """Total lock-step steps/s of N clients, sessions stepped one at a time vs batched, same run."""
    extra = ["--max-sessions", str(max(client_counts))] + (["--threads", str(threads)] if threads else [])
    servers = {batch: start_serve(model, "--max-batch", str(batch), *extra) for batch in (1, 8)}
    rows = []
    try:
        for n in client_counts:
            rates = {batch: _lockstep_round(address, n, seconds) for batch, (_, address) in servers.items()}
            rows.append({"bench": "sessions", "model": model, "clients": n,
                         "unbatched_steps_per_s": rates[1][0], "batched_steps_per_s": rates[8][0],
                         "speedup": rates[8][0] / rates[1][0], "mean_batch": rates[8][1]})
    finally:
        for proc, _ in servers.values():
            stop_serve(proc)
    return rows


def lockstep_workers(model: str, worker_counts: list[int], clients: int, seconds: float, threads: int,
                     rounds: int = 2) -> list[dict]:
    """Total lock-step steps/s of `clients` clients through a front with each worker count, same run: every front
    is up throughout and they are measured in turn, `rounds` times, so all see the same machine."""
    fronts = {n: start_serve(model, "--workers", str(n), "--threads", str(threads), "--max-sessions", str(clients))
              for n in worker_counts}
    rates: dict[int, list[float]] = {n: [] for n in worker_counts}
    try:
        for _ in range(rounds):
            for n, (_, address) in fronts.items():
                rates[n].append(_lockstep_round(address, clients, seconds)[0])
    finally:
        for proc, _ in fronts.values():
            stop_serve(proc)
    base = float(np.mean(rates[worker_counts[0]]))
    return [{"bench": "workers", "model": model, "workers": n, "threads_per_worker": threads, "clients": clients,
             "steps_per_s": float(np.mean(r)), "rounds_steps_per_s": r, "vs_first": float(np.mean(r)) / base}
            for n, r in rates.items()]


def _lockstep_round(address: str, clients: int, seconds: float) -> tuple[float, float]:
    """(steps/s over all clients, mean batch size of the counted steps)."""
    counts, batches, barrier = [0] * clients, [[] for _ in range(clients)], threading.Barrier(clients, timeout=300)

    def drive(i: int) -> None:
        with Client(address, timeout=300) as client:
            session = client.open(seed=i)
            for _ in range(3):  # warm-up, not counted
                session.step(i % 4)
            barrier.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                batches[i].append(session.step(i % 4).batch)
                counts[i] += 1
            session.close()

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds, float(np.mean([b for per in batches for b in per]))


def _stream_round(address: str, clients: int, seconds: float, fps: float | None) -> dict:
    counts, barrier, shape = [0] * clients, threading.Barrier(clients + 1, timeout=300), [0]

    def watch(i: int) -> None:
        with Client(address, timeout=120) as client:
            session = client.open(seed=i)
            shape[0] = session.frames_per_chunk
            stream = session.stream(fps=fps)
            for _ in range(3):  # the first chunks warm the model up and are not counted
                stream.recv(timeout=120)
            barrier.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if (chunk := stream.recv(timeout=max(0.0, end - time.monotonic()))) is not None:
                    counts[i] += len(chunk.frames)
            session.stream(on=False)
            session.close()

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    with Client(address) as observer:
        barrier.wait()
        before = observer.server_stats()["chunks"]
        time.sleep(seconds)  # the measurement window itself
        generated = observer.server_stats()["chunks"] - before
    for t in threads:
        t.join()
    per_client = [c / seconds for c in counts]
    return {"bench": "streams", "clients": clients, "pacing": "model rate" if fps is None else "unpaced",
            "fps_per_client_min": min(per_client), "fps_per_client_max": max(per_client),
            "fps_received_total": sum(per_client), "fps_generated_total": generated * shape[0] / seconds}


def in_process_fps(model: str, chunks: int = 20) -> float:
    gen = streamvideo.load(model)
    gen.reset(seed=0)
    for _ in range(3):  # warm-up
        gen.step()
    start = time.perf_counter()
    for _ in range(chunks):
        gen.step()
    return chunks * gen.frames_per_chunk / (time.perf_counter() - start)


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return "unknown"


def print_table(rows: list[dict]) -> None:
    for row in rows:
        cells = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()]
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per transport / env measurement")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each stream measurement")
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--only", choices=["all", "sessions", "workers"], default="all",
                        help="sessions: only the batched-vs-unbatched lock-step measurement; workers: only the "
                             "front with --workers worker processes")
    parser.add_argument("--workers", default="1,2", help="worker counts of the workers measurement")
    parser.add_argument("--batch-models", default="default,tiny-random", help="models of the sessions measurement")
    parser.add_argument("--batch-clients", default="1,2,4,8", help="lock-step client counts")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the servers (serve --threads; per worker with --only workers, "
                             "default 1 there)")
    args = parser.parse_args()
    rows = []
    if args.only == "all":
        rows += [*transport(args.steps), env_overhead(args.model, max(20, args.steps // 10))]
        rows.append({"bench": "in_process_generator", "model": args.model, "fps": in_process_fps(args.model)})
        rows += stream_fps(args.model, args.clients, args.seconds)
    if args.only == "workers":
        args.threads = args.threads or 1
        rows += lockstep_workers(args.model, [int(n) for n in args.workers.split(",")], args.clients, args.seconds,
                                 args.threads)
    else:
        counts = [int(n) for n in args.batch_clients.split(",")]
        for model in args.batch_models.split(","):
            rows += lockstep_sessions(model, counts, args.seconds, args.threads)
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    names = {"sessions": f"bridge-sessions-threads{args.threads or 'default'}-cpu.json",
             "workers": f"bridge-workers-threads{args.threads}-cpu.json"}
    out = RESULTS / names.get(args.only, f"bridge-{args.model}-cpu.json")
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "commit": commit(),
                               "args": vars(args), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
