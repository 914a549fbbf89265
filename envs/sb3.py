"""SB3VecEnv: the batched StreamVideoVectorEnv as a Stable-Baselines3 VecEnv (one forward pass per step
for all envs). Needs the `rl` extra: pip install 'streamvideo[rl]'.

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor
    from streamvideo.envs.sb3 import SB3VecEnv

    envs = gym.make_vec("StreamVideo-v0", num_envs=8, model="tiny-random", max_episode_steps=64,
                        reward_fn=lambda frames, action, info: float(frames.mean() / 255))
    venv = VecMonitor(SB3VecEnv(envs))               # VecMonitor: episode returns in PPO's logs
    PPO("CnnPolicy", venv, n_steps=64).learn(10_000)

SB3's step contract differs from Gymnasium's next-step autoreset: when an episode ends, SB3 wants the
new episode's first observation in the same step (the last one goes to infos[i]["terminal_observation"],
a time limit sets infos[i]["TimeLimit.truncated"]). One batched generator cannot generate a new first chunk
for some streams without stepping the others, so when any episode ends, all streams restart together in
one batched pass (envs.reset(), every stream continuing its own seeded random stream). Streams that start
together and end by `max_episode_steps` alone end together anyway; the price is with `terminate_fn`: when
one stream terminates, the others are cut short as truncated, which SB3 bootstraps from their
terminal_observation. Gymnasium vector wrappers around the batched env (gym.wrappers.vector.*) are fine.

get_attr, set_attr and env_method reach the batched env itself, whose attributes and methods are shared
by all streams (a stream's own prompt: `venv.envs.unwrapped.set_prompt(prompt, index=[i])`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

try:
    from stable_baselines3.common.vec_env import VecEnv
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
except ImportError:
    raise ImportError("streamvideo.envs.sb3 needs Stable-Baselines3: pip install 'streamvideo[rl]'") from None


def per_env_infos(infos: dict, num_envs: int) -> list[dict]:
    """Gymnasium's vector infos (an array per key with a "_key" mask, nested for dict values) -> SB3's one
    dict per env."""
    envs: list[dict] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        per_env = per_env_infos(value, num_envs) if isinstance(value, dict) else value
        for i in np.flatnonzero(infos.get(f"_{key}", np.ones(num_envs, np.bool_))):
            envs[i][key] = per_env[i]
    return envs


class SB3VecEnv(VecEnv):
    """A Stable-Baselines3 VecEnv over a Gymnasium vector env with next-step autoreset: the batched
    StreamVideoVectorEnv, bare or in gym.wrappers.vector wrappers (see the module doc)."""

    def __init__(self, envs: gym.vector.VectorEnv):
        mode = envs.metadata.get("autoreset_mode")
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
            raise ValueError(f"SB3VecEnv takes a vector env with next-step (or disabled) autoreset, "
                             f"got autoreset_mode={mode}")
        self.envs = envs
        self._actions: np.ndarray | None = None
        super().__init__(envs.num_envs, envs.single_observation_space, envs.single_action_space)

    def reset(self) -> VecEnvObs:
        """Seeds from seed() and options from set_options() apply to this reset only, as in SB3."""
        seeds = None if all(s is None for s in self._seeds) else self._seeds
        obs, infos = self.envs.reset(seed=seeds, options=self._options[0] or None)
        self.reset_infos = per_env_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, infos = self.envs.step(self._actions)
        infos = per_env_infos(infos, self.num_envs)
        ended = terminated | truncated
        for i, info in enumerate(infos):
            info["TimeLimit.truncated"] = bool(ended.any() and not terminated[i])
        if ended.any():  # every stream restarts (see the module doc)
            for i, info in enumerate(infos):
                info["terminal_observation"] = obs[i]
            obs, reset_infos = self.envs.reset()
            self.reset_infos = per_env_infos(reset_infos, self.num_envs)
        dones = np.full(self.num_envs, ended.any())
        return obs, rewards.astype(np.float32), dones, infos

    def set_options(self, options: dict | None = None) -> None:
        """One options dict for the next reset of all streams ("prompt": a str or one per stream,
        "context_frames"): the batched env resets its streams together."""
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"SB3VecEnv.set_options takes one dict for all streams, got {type(options).__name__}")
        super().set_options(options)

    def close(self) -> None:
        self.envs.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.envs.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self._target(attr_name), attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._check_all_streams(indices, f"set_attr({attr_name!r})")
        setattr(self._target(attr_name), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        self._check_all_streams(indices, f"env_method({method_name!r})")
        result = getattr(self._target(method_name), method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # no single-env wrappers inside a batched env

    def _target(self, name: str):
        """The outermost Gymnasium vector env that has `name` (wrappers do not forward attributes)."""
        return self.envs if hasattr(self.envs, name) else self.envs.unwrapped

    def _check_all_streams(self, indices: VecEnvIndices, call: str) -> None:
        chosen = sorted(self._get_indices(indices))
        if chosen != list(range(self.num_envs)):
            raise ValueError(f"{call} acts on the batched env, shared by all {self.num_envs} streams; "
                             f"got indices {chosen}")
