"""StreamVideoEnv: a streaming world model as a Gymnasium environment; one step = one chunk of frames.

    env = gym.make("StreamVideo-v0", model="tiny-random", prompt="a grassy meadow", max_episode_steps=100,
                   reward_fn=lambda frames, action, info: float(frames.mean() / 255))
    obs, info = env.reset(seed=0)                      # obs: uint8 [H, W, 3], the first chunk's last frame
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    info["frames"]                                     # the whole chunk, uint8 [T, H, W, 3]
    env.unwrapped.set_prompt("sandy desert")           # the world changes at the next chunk

No time limit, no reward: by default an episode never ends and every reward is 0. A stream never ends by
itself, so give `max_episode_steps` (truncated) and a `reward_fn(frames, action, info) -> float`; an optional
`terminate_fn(frames, action, info) -> bool` ends episodes (terminated), e.g. a detector of a game-over
screen. Both get the chunk the step generated (uint8 [T, H, W, 3], whatever the observation mode), the
validated action and the step's info (without "frames"); docs/rl.md has the recipe, with Stable-Baselines3.

Observations (`observation=`): one step generates a chunk of T frames; the env shows the agent
  "frame"   (default) the chunk's last frame, uint8 [H, W, 3], like Atari's frame skip: what
            Stable-Baselines3's CnnPolicy and Gymnasium's image wrappers (ResizeObservation, ...) take;
  "stacked" the chunk's frames on the channel axis, uint8 [H, W, 3T] (frame 0 RGB, frame 1 RGB, ...):
            an image too, that also shows the motion within the chunk;
  "chunk"   the whole chunk, uint8 [T, H, W, 3].
Every mode puts the whole chunk in info["frames"], and render() ("rgb_array") returns its last frame.

Without `prompt=` the env starts from the model's own default prompt (`generator.default_prompt`).

A model folder that ships start frames (a few real frames per trained prompt) starts every episode from
those of the prompt (`generator.start_frames_for`) unless reset's options give "context_frames" or the
env is made with `start_frames=False`. As with explicit context frames, reset() then returns the first
chunk generated after them (its info "chunk" counts the start frames' chunks), not the frames themselves.

info holds "frames", "chunk" (index in the episode), "nfe" (network evaluations spent on it) and
"prompt"; with `timing_info=True` also "seconds", the chunk's generation wall time. That one is off by
default: it differs from run to run, so Gymnasium's env checker would reject the env as non-deterministic.

Threads (`threads=`): the env sets torch's CPU thread count (`streamvideo.engine.threads.set_threads`); None, the
default, is `default_threads()`, the CPU cores less one. torch's own default, one thread per core, collapses
on a small shared machine: 2 threads on a 2-core machine next to one busy process (the agent, a game loop)
generated 3.6 frames/s where 1 thread generated 113. Forked worker processes (AsyncVectorEnv) keep one
thread: more can hang there (see `_single_threaded_torch_in_forked_child`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from os import PathLike
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from streamvideo.engine import threads as torch_threads
from streamvideo.engine.generator import StreamGenerator
from streamvideo.engine.presets import load

# reward_fn(frames [T,H,W,3] uint8, action, info) -> float; terminate_fn(...) -> bool
RewardFn = Callable[[np.ndarray, Any, dict], float]
TerminateFn = Callable[[np.ndarray, Any, dict], bool]
RESET_OPTIONS = ("prompt", "context_frames")
OBSERVATIONS = ("frame", "stacked", "chunk")  # the first is the default
_in_forked_child = False


def _single_threaded_torch_in_forked_child() -> None:
    """A forked child hangs in its first torch op once the parent has used torch's OpenMP thread pool
    (GNU OpenMP is not fork-safe). AsyncVectorEnv forks right after building an env in the parent, so
    forked children run torch on one thread, which is also what N env processes on N cores want."""
    global _in_forked_child
    _in_forked_child = True
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_single_threaded_torch_in_forked_child)


def apply_threads(threads: int | None) -> int:
    """Set torch's CPU thread count for an env; returns the count in use. threads=None is default_threads(),
    except in a forked child, which keeps its single thread (see above)."""
    if threads is None and _in_forked_child:
        return torch.get_num_threads()
    return torch_threads.set_threads(threads)


def load_generator(model, *, device=None, mode=None, schedule=None, batch_size: int = 1):
    """A StreamGenerator from a preset name, a checkpoint path or a ready generator."""
    settings = {k: v for k, v in dict(device=device, mode=mode, schedule=schedule).items() if v is not None}
    if isinstance(model, (str, PathLike)):
        return load(model, batch_size=batch_size, **settings)
    if not isinstance(model, StreamGenerator):
        raise TypeError(f"model must be a preset name, a checkpoint path or a StreamGenerator, "
                        f"got {type(model).__name__}")
    if settings:
        raise ValueError(f"{', '.join(settings)} cannot be applied to a ready StreamGenerator; "
                         f"pass them to streamvideo.load(...) instead")
    if model.batch_size != batch_size:
        raise ValueError(f"the StreamGenerator has batch_size={model.batch_size}, "
                         f"this env needs batch_size={batch_size}")
    return model


def check_observation(observation: str) -> str:
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {observation!r}")
    return observation


def observation_space(generator, observation: str) -> gym.spaces.Box:
    """Observation space of one stream in an observation mode (see the module doc)."""
    t, h, w = generator.frames_per_chunk, generator.height, generator.width
    shape = {"frame": (h, w, 3), "stacked": (h, w, 3 * t), "chunk": (t, h, w, 3)}[observation]
    return gym.spaces.Box(0, 255, shape, np.uint8)


def observe(frames: np.ndarray, observation: str) -> np.ndarray:
    """Chunks uint8 [..., T, H, W, 3] (one stream's, or a batch's) -> their observations in that mode."""
    if observation == "frame":
        return np.ascontiguousarray(frames[..., -1, :, :, :])
    if observation == "stacked":  # [..., T, H, W, 3] -> [..., H, W, T, 3] -> [..., H, W, 3T]
        t, h, w = frames.shape[-4:-1]
        return np.moveaxis(frames, -4, -2).reshape(*frames.shape[:-4], h, w, 3 * t)
    return frames


def check_prompt(prompt) -> str:
    """Checked before an env stores it, so one bad prompt cannot break every later reset."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}: {prompt!r}")
    return prompt


def check_reset_options(options: dict | None) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(RESET_OPTIONS))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; expected any of {list(RESET_OPTIONS)}")
    return options


def check_open(closed: bool, call: str) -> None:
    """A closed env's generator may be gone (RemoteEnv's server session is): say so, not a later symptom."""
    if closed:
        raise gym.error.ClosedEnvironmentError(f"{call} called after close(): the env is closed; make a new one")


def chunk_info(index: int, nfe: int, prompt: str, seconds: float | None) -> dict:
    """The info of one step (what reward_fn and terminate_fn see; the envs add "frames"); "seconds" (wall
    time) only when asked for, as it differs from run to run."""
    info = {"chunk": int(index), "nfe": int(nfe), "prompt": prompt}
    return info if seconds is None else {**info, "seconds": float(seconds)}


class StreamVideoEnv(gym.Env):
    """One stream of a world model; see the module doc for observations, reward, time limit and threads."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 16}

    def __init__(self, model="default", prompt: str | None = None, device: str | None = None,
                 mode: str | None = None, schedule: str | None = None, render_mode: str | None = None,
                 reward_fn: RewardFn | None = None, terminate_fn: TerminateFn | None = None,
                 timing_info: bool = False, start_frames: bool = True, observation: str = OBSERVATIONS[0],
                 threads: int | None = None):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.observation_mode = check_observation(observation)
        if prompt is not None:
            check_prompt(prompt)
        self.threads = apply_threads(threads)
        self.generator = load_generator(model, device=device, mode=mode, schedule=schedule)
        self.metadata = {**type(self).metadata, "render_fps": self.generator.fps}
        self.observation_space = observation_space(self.generator, observation)
        self.action_space = self.generator.action_spec.gym_space()
        self.render_mode = render_mode
        self.reward_fn = reward_fn
        self.terminate_fn = terminate_fn
        self.timing_info = timing_info
        self.use_start_frames = start_frames
        self.prompt = self.generator.default_prompt if prompt is None else prompt  # None: the model's own
        self._frames: np.ndarray | None = None  # the latest chunk
        self._window = None  # human render window, opened on first use
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new stream and return the observation of its first generated chunk.

        options: "prompt" (kept for later episodes), "context_frames" (uint8 [N,H,W,3] to continue from;
        without them, the model's start frames for the prompt, if it has any and `start_frames=True`).
        """
        check_open(self._closed, "StreamVideoEnv.reset()")
        super().reset(seed=seed)
        options = check_reset_options(options)
        self.prompt = check_prompt(options.get("prompt", self.prompt))
        stream_seed = int(self.np_random.integers(2**31))
        context = options.get("context_frames")
        if context is None and self.use_start_frames:
            context = self.generator.start_frames_for(self.prompt)
        self.generator.reset(prompt=self.prompt, seed=stream_seed, context_frames=context)
        return self._observed(*self._advance(self.generator.action_spec.noop()))

    def step(self, action):
        check_open(self._closed, "StreamVideoEnv.step()")
        if self._frames is None:
            raise gym.error.ResetNeeded("StreamVideoEnv.step() called before reset()")
        action = self.generator.action_spec.validate(action)
        frames, info = self._advance(action)
        reward = 0.0 if self.reward_fn is None else float(self.reward_fn(frames, action, info))
        terminated = self.terminate_fn is not None and bool(self.terminate_fn(frames, action, info))
        obs, info = self._observed(frames, info)
        return obs, reward, terminated, False, info

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        """Change the prompt mid-stream; it takes effect at the next chunk (and is kept across resets)."""
        self.generator.set_prompt(check_prompt(prompt), recache=recache)
        self.prompt = prompt

    def render(self):
        """With render_mode "rgb_array", the latest frame uint8 [H, W, 3] (what RecordVideo records), whatever
        the observation mode; "human" shows every chunk in a window as it is generated."""
        if self._frames is None:
            raise gym.error.ResetNeeded("StreamVideoEnv.render() called before reset()")
        if self.render_mode == "rgb_array":
            return self._frames[-1].copy()
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None
        self._closed = True

    def _advance(self, action) -> tuple[np.ndarray, dict]:
        """Generate one chunk with a validated action: its frames and the step's info."""
        chunk = self.generator.step(action)
        self._frames = chunk.frames
        if self.render_mode == "human":
            self._show(chunk.frames)
        seconds = chunk.seconds if self.timing_info else None
        return chunk.frames, chunk_info(chunk.index, chunk.nfe, chunk.prompt, seconds)

    def _observed(self, frames: np.ndarray, info: dict) -> tuple[np.ndarray, dict]:
        """What reset and step return: the chunk's observation, and its info with the whole chunk."""
        return observe(frames, self.observation_mode), {"frames": frames, **info}

    def _show(self, frames: np.ndarray) -> None:
        if self._window is None:
            from .human_window import FrameWindow
            self._window = FrameWindow("StreamVideo-v0", frames.shape[2], frames.shape[1], self.generator.fps)
        self._window.show(frames)
