"""streamvideo: a distilled streaming video-diffusion world model you can play, script and drive.

    import streamvideo
    gen = streamvideo.load("default")            # or "tiny-random", a model folder, ...
    gen.reset(prompt="a red knight on snowy ground", seed=0)
    chunk = gen.step(action=4)                   # chunk.frames: uint8 [T, H, W, 3]

Importing streamvideo registers the Gymnasium envs `StreamVideo-v0` and `StreamVideoGame-v0`.
"""

from .actions import ActionSpec
from .generator import Chunk, StreamGenerator
from .presets import load, preset_names
from .schedules import StepSchedule

__version__ = "0.1.0"
__all__ = ["ActionSpec", "Chunk", "StepSchedule", "StreamGenerator", "load", "preset_names"]


def _register_envs() -> None:
    from .envs import register_all
    register_all()


_register_envs()
