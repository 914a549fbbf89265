"""An agent playing a world model that runs in another process, through the bridge (lock-step).

    streamvideo serve --model tiny-random                  # in one terminal (or omit --address below:
    python examples/remote_agent.py --address tcp://127.0.0.1:5555   #  this script then serves in-process)

RemoteEnv is StreamVideo-v0 over ZeroMQ: same spaces, same info, same frames for the same seed.
"""

from __future__ import annotations

import argparse
import time

from streamvideo.bridge import RemoteEnv, Server, ServerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="control endpoint of a running server (default: start one here)")
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--prompt", default="a grassy meadow")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    server = None
    if args.address is None:
        server = Server(ServerConfig(bind="tcp://127.0.0.1:*", pub="tcp://127.0.0.1:*", models=(args.model,)))
        args.address = server.start().endpoints["control"]
    env = RemoteEnv(args.address, model=args.model, prompt=args.prompt, client={"timeout": 120})
    try:
        frames, info = env.reset(seed=args.seed)
        env.action_space.seed(args.seed)
        start = time.perf_counter()
        for step in range(args.steps):
            action = env.action_space.sample()  # replace with your policy
            frame, reward, terminated, truncated, info = env.step(action)
            frames = info["frames"]  # the whole chunk; the observation is its last frame
            print(f"step {step:3d}  action {action}  chunk {info['chunk']}  nfe {info['nfe']}  "
                  f"frames {frames.shape}  mean pixel {frames.mean():.1f}")
            if step == args.steps // 2:
                env.unwrapped.set_prompt("sandy desert")  # the world changes at the next chunk
        elapsed = time.perf_counter() - start
        print(f"{args.steps} chunks in {elapsed:.2f} s ({args.steps * frames.shape[0] / elapsed:.1f} frames/s)")
    finally:
        env.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
