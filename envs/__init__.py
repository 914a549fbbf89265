"""Gymnasium side of streamvideo: the world-model env and the built-in ground-truth game."""

from .game import GAME_ID, StreamVideoGameEnv, register_game
from .registration import ENV_ID, register_envs


def register_all() -> None:
    register_envs()
    register_game()


__all__ = ["ENV_ID", "GAME_ID", "StreamVideoGameEnv", "register_all", "register_envs", "register_game"]
