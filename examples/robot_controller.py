"""A fixed-rate control loop driving a world model in real time over the bridge.

    streamvideo serve --model tiny-random                 # or omit --address: this script serves in-process
    python examples/robot_controller.py --address tcp://127.0.0.1:5555 --rate 20 --seconds 5

The server generates continuously at the model's rate with the latest action it received and
publishes chunks; this loop ticks at --rate Hz, reads the newest chunk if one arrived, computes an
action and sends it without waiting for the reply. No network call in a tick waits longer than the
time left in that tick, so the loop keeps its rate even if the server or the link stalls.
For CURVE: --server-key DIR/server.key --client-key DIR/clients/NAME.key_secret.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streamvideo.bridge import Client, Server, ServerConfig


def controller(frame: np.ndarray, space: dict):
    """A toy policy: steer toward the brighter half of the image."""
    left, right = frame[:, : frame.shape[1] // 2].mean(), frame[:, frame.shape[1] // 2:].mean()
    if space["kind"] == "continuous":
        action = np.zeros(space["dim"], np.float32)
        action[0] = np.clip((right - left) / 64.0, -1.0, 1.0)
        return action
    if space["kind"] == "multi_discrete":
        return np.array([int(right > left) % size for size in space["sizes"]], np.int64)
    return (1 if right > left else 2) % max(space["n"], 1)


def run(client: Client, rate: float, seconds: float) -> dict:
    session = client.open(seed=0)
    stream = session.stream()  # real time at the model's rate
    period, space = 1.0 / rate, session.info["action_space"]
    ticks = overruns = chunks = 0
    worst = 0.0
    frame = None
    next_tick = start = time.monotonic()
    while next_tick - start < seconds:
        tick_start = time.monotonic()
        chunk = stream.latest(timeout=max(0.0, next_tick + period - time.monotonic()) / 2)
        if chunk is not None:
            frame, chunks = chunk.frames[-1], chunks + 1
        if frame is not None:
            session.act(controller(frame, space), wait=False)  # never waits for the reply
        busy = time.monotonic() - tick_start
        worst, ticks = max(worst, busy), ticks + 1
        next_tick += period
        if time.monotonic() > next_tick:
            overruns += 1
            next_tick = time.monotonic()  # drop the missed ticks instead of bursting
        time.sleep(max(0.0, next_tick - time.monotonic()))
    stream.close()
    session.close()
    return {"ticks": ticks, "chunks": chunks, "overruns": overruns, "worst_tick_ms": worst * 1000,
            "period_ms": period * 1000, "async_errors": len(client.async_errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="control endpoint of a running server (default: start one here)")
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--rate", type=float, default=20.0, help="control loop rate in Hz")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server-key", help="CURVE: the server's public key file (server.key)")
    parser.add_argument("--client-key", help="CURVE: this client's secret key file (NAME.key_secret)")
    args = parser.parse_args()

    server = None
    if args.address is None:
        server = Server(ServerConfig(bind="tcp://127.0.0.1:*", pub="tcp://127.0.0.1:*", models=(args.model,)))
        args.address = server.start().endpoints["control"]
    try:
        with Client(args.address, timeout=120, server_key=args.server_key, client_key=args.client_key) as client:
            report = run(client, args.rate, args.seconds)
        print("  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
