"""Frames per second of the built-in game on one core (random actions, rendering included).

    python benchmarks/game_speed.py [--steps 20000] [--size 64] [--out PATH]

Saves the result as JSON to `--out` (default: benchmarks/results/local/game_speed-<size>.json, not committed).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from streamvideo.envs.game.env import GAME_ID, register_game

LOCAL_RESULTS = Path(__file__).parent / "results" / "local"   # runs that should not replace committed results


def measure(steps: int, size: int, seed: int = 0) -> float:
    register_game()
    env = gym.make(GAME_ID, size=size, max_episode_steps=steps + 1)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, steps)
    start = time.perf_counter()
    for action in actions:
        env.step(int(action))
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="frames to step")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: benchmarks/results/local/game_speed-<size>.json)")
    args = parser.parse_args()
    fps = measure(args.steps, args.size)
    print(f"{GAME_ID} {args.size}x{args.size}: {fps:,.0f} frames/s over {args.steps} steps "
          f"(gym.make wrappers included)")
    out = args.out or LOCAL_RESULTS / f"game_speed-{args.size}.json"
    report = {"benchmark": "game_speed", "env": GAME_ID, "size": args.size, "steps": args.steps,
              "frames_per_second": fps, "machine": platform.platform()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
