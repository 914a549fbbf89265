"""StreamVideoVectorEnv: N streams of one world model stepped by one batched forward pass per chunk.

    envs = gym.make_vec("StreamVideo-v0", num_envs=8, vectorization_mode="vector_entry_point",
                        model="tiny-random", max_episode_steps=100)
    obs, infos = envs.reset(seed=0)                    # obs: uint8 [N, H, W, 3], each chunk's last frame
    obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
    infos["frames"]                                    # the whole chunks, uint8 [N, T, H, W, 3]

Each stream has its own KV cache, prompt, seed and episode counter; observation modes, infos, rewards,
`terminate_fn`, `timing_info` and `threads` work as in StreamVideoEnv. Autoreset follows Gymnasium's
next-step mode (`AutoresetMode.NEXT_STEP`): the step after a stream's episode ends, that stream ignores
its action and returns the first chunk of a new episode (reward 0, not done), generated in the same
batched pass as the other streams' next chunks.

reset() starts every stream from the model's start frames for its prompt, as StreamVideoEnv does (and
returns the first chunks generated after them), when the model ships start frames for every stream's
prompt, the options give no "context_frames" and the env is made with `start_frames=True` (the
default). Autoreset streams restart from their prompt alone: the generator writes context frames to
all streams of a batch at once, never to a few of them.

Wrappers: Gymnasium's make_vec refuses its `wrappers=` argument (single-env wrappers) in
"vector_entry_point" mode before this env is built. Wrap the batched env in Gymnasium's vector wrappers
instead, e.g. `gym.wrappers.vector.GrayscaleObservation(envs, keep_dim=True)` or `ResizeObservation`
(needs opencv), or pass `vectorization_mode="sync"` to keep `wrappers=` (one forward pass per env).
Stable-Baselines3 takes the batched env through `streamvideo.envs.sb3.SB3VecEnv`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .stream_env import (
    OBSERVATIONS,
    RewardFn,
    TerminateFn,
    apply_threads,
    check_observation,
    check_open,
    check_prompt,
    check_reset_options,
    chunk_info,
    load_generator,
    observation_space,
    observe,
)


def per_stream_seeds(seed: int | list[int | None] | None, num_envs: int) -> list[int | None]:
    """Gymnasium's vector seeding: None, an int s (streams get s, s+1, ...) or one seed per stream."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return [None if seed is None else int(seed) + i for i in range(num_envs)]
    if len(seed) != num_envs:
        raise ValueError(f"seed must be None, an int or a list of {num_envs} seeds, got {len(seed)} seeds")
    return list(seed)


def per_stream_prompts(prompt: str | list[str], num_envs: int) -> list[str]:
    if isinstance(prompt, str):
        return [prompt] * num_envs
    if not isinstance(prompt, (list, tuple)):
        raise TypeError(f"prompt must be a str or a list of {num_envs} str, got {type(prompt).__name__}: {prompt!r}")
    if len(prompt) != num_envs:
        raise ValueError(f"prompt must be a str or a list of {num_envs} prompts, got {len(prompt)} prompts")
    return [check_prompt(p) for p in prompt]


class StreamVideoVectorEnv(VectorEnv):
    """`num_envs` streams batched through one StreamGenerator(batch_size=num_envs)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 16, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, model="default", prompt: str | list[str] | None = None,
                 device: str | None = None, mode: str | None = None, schedule: str | None = None,
                 render_mode: str | None = None, reward_fn: RewardFn | None = None,
                 terminate_fn: TerminateFn | None = None, timing_info: bool = False,
                 max_episode_steps: int | None = None, start_frames: bool = True,
                 observation: str = OBSERVATIONS[0], threads: int | None = None):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"the batched vector env renders only 'rgb_array' (or None), "
                             f"got render_mode={render_mode!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be None or >= 1, got {max_episode_steps!r}")
        self.num_envs = num_envs
        self.observation_mode = check_observation(observation)
        if prompt is not None:
            per_stream_prompts(prompt, num_envs)
        self.threads = apply_threads(threads)
        self.generator = load_generator(model, device=device, mode=mode, schedule=schedule,
                                        batch_size=num_envs)
        self.metadata = {**type(self).metadata, "render_fps": self.generator.fps}
        self.single_observation_space = observation_space(self.generator, observation)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.single_action_space = self.generator.action_spec.gym_space()
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode
        self.reward_fn = reward_fn
        self.terminate_fn = terminate_fn
        self.timing_info = timing_info
        self.max_episode_steps = max_episode_steps
        self.use_start_frames = start_frames
        # None: the model's own default prompt
        self.prompts = per_stream_prompts(self.generator.default_prompt if prompt is None else prompt, num_envs)
        self._stream_rngs = [seeding.np_random()[0] for _ in range(num_envs)]
        self._elapsed = np.zeros(num_envs, np.int64)     # steps since each stream's reset
        self._autoreset = np.zeros(num_envs, np.bool_)   # streams that restart on the next step
        self._frames: np.ndarray | None = None           # latest chunks [N, T, H, W, 3]

    def reset(self, *, seed=None, options: dict | None = None):
        """Reset every stream and return the observations of their first generated chunks.

        options: "prompt" (a str or one per stream, kept for later episodes), "context_frames" (uint8
        [N, T, H, W, 3]; without them, the model's start frames for each stream's prompt, see the module doc).
        """
        check_open(self.closed, "StreamVideoVectorEnv.reset()")
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        if options and "reset_mask" in options:
            raise ValueError("StreamVideoVectorEnv resets all streams together (no 'reset_mask'); "
                             "streams that end restart on their own at the next step")
        options = check_reset_options(options)
        self.prompts = per_stream_prompts(options.get("prompt", self.prompts), self.num_envs)
        for i, stream_seed in enumerate(per_stream_seeds(seed, self.num_envs)):
            if stream_seed is not None:  # an unseeded stream keeps drawing from its own generator
                self._stream_rngs[i] = seeding.np_random(stream_seed)[0]
        context = options.get("context_frames")
        if context is None and self.use_start_frames:
            context = self._start_frames()
        self.generator.reset(prompt=list(self.prompts), seed=self._draw_seeds(range(self.num_envs)),
                             context_frames=context)
        self._elapsed[:] = 0
        self._autoreset[:] = False
        frames, stream_infos = self._advance([self.generator.action_spec.noop()] * self.num_envs)
        return observe(frames, self.observation_mode), self._vector_infos(frames, stream_infos)

    def step(self, actions):
        check_open(self.closed, "StreamVideoVectorEnv.step()")
        if self._frames is None:
            raise gym.error.ResetNeeded("StreamVideoVectorEnv.step() called before reset()")
        actions = self._validate(actions)
        restarting = np.flatnonzero(self._autoreset).tolist()
        if restarting:
            prompts = [self.prompts[i] for i in restarting]
            self.generator.reset(prompt=prompts, seed=self._draw_seeds(restarting), index=restarting)
            for i in restarting:
                actions[i] = self.generator.action_spec.noop()
        frames, stream_infos = self._advance(actions)
        self._elapsed += 1
        self._elapsed[restarting] = 0
        running = ~self._autoreset
        rewards = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, np.bool_)
        for i in np.flatnonzero(running):
            if self.reward_fn is not None:
                rewards[i] = float(self.reward_fn(frames[i], actions[i], stream_infos[i]))
            if self.terminate_fn is not None:
                terminated[i] = bool(self.terminate_fn(frames[i], actions[i], stream_infos[i]))
        truncated = np.zeros(self.num_envs, np.bool_)
        if self.max_episode_steps is not None:
            truncated = running & (self._elapsed >= self.max_episode_steps)
        self._autoreset = terminated | truncated
        infos = self._vector_infos(frames, stream_infos)
        return observe(frames, self.observation_mode), rewards, terminated, truncated, infos

    def set_prompt(self, prompt: str | list[str], index: list[int] | None = None,
                   recache: bool = False) -> None:
        """Change the prompt of every stream (or of the streams in `index`) from the next chunk on."""
        targets = list(range(self.num_envs)) if index is None else list(index)
        prompts = per_stream_prompts(prompt, len(targets))
        for i, p in zip(targets, prompts):
            self.prompts[i] = p
        self.generator.set_prompt(prompts, recache=recache, index=targets)

    def render(self):
        if self._frames is None:
            raise gym.error.ResetNeeded("StreamVideoVectorEnv.render() called before reset()")
        if self.render_mode == "rgb_array":
            return tuple(chunk[-1].copy() for chunk in self._frames)
        return None

    # ---------------------------------------------------------------- internals

    def _validate(self, actions) -> list:
        spec = self.generator.action_spec
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"expected one action per stream ({self.num_envs} in all) from "
                             f"{self.action_space}, got an array of shape {actions.shape}")
        return [spec.validate(a) for a in actions.tolist()]  # Python values read best in error messages

    def _start_frames(self) -> np.ndarray | None:
        """[N, T, H, W, 3]: the model's start frames for every stream's prompt; None unless all have them
        (one batched context write covers every stream)."""
        clips = [self.generator.start_frames_for(p) for p in self.prompts]
        return None if any(c is None for c in clips) else np.stack(clips)

    def _draw_seeds(self, streams) -> list[int]:
        return [int(self._stream_rngs[i].integers(2**31)) for i in streams]

    def _advance(self, actions: list) -> tuple[np.ndarray, list[dict]]:
        """One batched chunk for every stream: frames [N, T, H, W, 3] and one info per stream."""
        if self.num_envs == 1:  # a generator of batch_size 1 takes and returns single-stream values
            chunk = self.generator.step(actions[0])
            frames, index, nfe, prompts = chunk.frames[None], [chunk.index], [chunk.nfe], [chunk.prompt]
        else:
            chunk = self.generator.step(actions)
            frames, index, nfe, prompts = chunk.frames, chunk.index, chunk.nfe, chunk.prompt
        self._frames = frames
        seconds = chunk.seconds if self.timing_info else None  # one batched pass: shared by all streams
        return frames, [chunk_info(index[i], nfe[i], prompts[i], seconds) for i in range(self.num_envs)]

    def _vector_infos(self, frames: np.ndarray, stream_infos: list[dict]) -> dict:
        """Gymnasium's vector layout: one array per key plus a "_key" mask. "frames" is the batch itself
        (adding it stream by stream would copy every chunk once more)."""
        infos: dict = {"frames": frames, "_frames": np.ones(self.num_envs, np.bool_)}
        for i, info in enumerate(stream_infos):
            infos = self._add_info(infos, info, i)
        return infos
