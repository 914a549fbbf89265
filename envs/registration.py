"""Registers `StreamVideo-v0` with Gymnasium (called when `streamvideo` is imported).

    gym.make("StreamVideo-v0", model="tiny-random", max_episode_steps=100)       # after `import streamvideo`
    gym.make("streamvideo:StreamVideo-v0", ...)                                   # imports streamvideo itself
    gym.make_vec("StreamVideo-v0", num_envs=8)   # batched: one forward pass per chunk for all 8 streams

No time limit and no reward are registered: pass `max_episode_steps` and `reward_fn` (docs/rl.md).
make_vec's `wrappers=` needs vectorization_mode="sync" or "async"; wrap the batched env in
gym.wrappers.vector.* instead (see streamvideo.envs.vector_env).
"""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "StreamVideo-v0"


def register_envs() -> None:
    """Register the env and its batched vector env; safe to call more than once."""
    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="streamvideo.envs.stream_env:StreamVideoEnv",
        vector_entry_point="streamvideo.envs.vector_env:StreamVideoVectorEnv",
    )
