"""Gymnasium side of streamvideo: the world-model env and the built-in ground-truth game.

Stable-Baselines3's VecEnv over the batched env is `streamvideo.envs.sb3.SB3VecEnv` (the `rl` extra).
"""

from .game.env import GAME_ID, StreamVideoGameEnv, register_game
from .registration import ENV_ID, register_envs
from .stream_env import OBSERVATIONS, StreamVideoEnv
from .vector_env import StreamVideoVectorEnv


def register_all() -> None:
    register_envs()
    register_game()


__all__ = ["ENV_ID", "GAME_ID", "OBSERVATIONS", "StreamVideoEnv", "StreamVideoGameEnv", "StreamVideoVectorEnv",
           "register_all", "register_envs", "register_game"]
