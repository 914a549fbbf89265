"""streamvideo: a distilled streaming video-diffusion world model you can play, script and drive.

    import streamvideo
    gen = streamvideo.load("default")            # or "tiny-random", a model folder, ...
    gen.reset(prompt="a red knight on snowy ground", seed=0)
    chunk = gen.step(action=4)                   # chunk.frames: uint8 [T, H, W, 3]

Importing streamvideo registers the Gymnasium envs `StreamVideo-v0` and `StreamVideoGame-v0`.

This module is the public face of the package, for its users: it may import any layer, and no module of
the package imports it back (docs/architecture.md, checked by tests/test_architecture.py).
"""

from importlib.metadata import version

from .engine.actions import ActionSpec
from .engine.generator import Chunk, StreamGenerator
from .engine.presets import load, preset_names
from .engine.schedules import StepSchedule

__version__ = version("streamvideo")  # pyproject.toml's; the bridge's hello reports the same
__all__ = ["ActionSpec", "Chunk", "StepSchedule", "StreamGenerator", "load", "preset_names"]


def _register_envs() -> None:
    from .envs import register_all
    register_all()


_register_envs()
