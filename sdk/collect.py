"""`streamvideo collect`: record frames, actions and prompts from any Gymnasium env that renders rgb_array.

    streamvideo collect --env StreamVideoGame-v0 --steps 100000 --policy explore --out data/game

writes `shard_00000.npz, shard_00001.npz, ...` and `meta.json` into DIR. Each shard holds

    frames       uint8 [n, H, W, 3]   frames resized to --size (area averaging when shrinking)
    actions      [n] int64 (Discrete), [n, K] int64 (MultiDiscrete / MultiBinary), [n, D] float32 (Box)
    rewards      float32 [n]
    episode_ids  int32 [n]            episodes are contiguous and may continue into the next shard
    first        bool [n]             True on the frame returned by reset()
    prompt_ids   int32 [n]            index into meta.json's "prompts", -1 where the env gives none

actions[i] is the action whose step produced frames[i] (the frame a world model predicts from it);
first frames come from reset() and carry action 0 / zeros. Read it back with `load_dataset(DIR)`
or `iter_clips(DIR, length, batch_size)`; `first_frames(DIR, prompts)` gives each prompt's first episode
start (a model folder's start frames).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

FORMAT = "streamvideo-collect/1"
META_FILE = "meta.json"
ACTION_ALIGNMENT = ("actions[i] is the action whose step produced frames[i]; "
                    "frames with first=True come from reset() and carry action 0 / zeros")


class CollectError(ValueError):
    """A bad collect request (unknown env, policy or action space; env that cannot render frames)."""


# --------------------------------------------------------------------------- policies

class RandomPolicy:
    """Uniform samples from the env's action space."""

    def __init__(self, env: gym.Env, rng: np.random.Generator):
        self.space = env.action_space
        self.space.seed(int(rng.integers(2**31)))

    def reset(self) -> None:
        pass

    def __call__(self):
        return self.space.sample()


class ExplorePolicy:
    """Holds one action for several frames, then picks another: long straight walks cover far more of
    a scrolling world, and give clearer motion, than uniform random actions that cancel out.

    With named actions (`get_action_meanings()`, as the built-in game and Atari envs have) it mostly
    holds movements, sometimes idles on NOOP, and taps any other action (the verb) on ~4% of frames.
    Without names it holds random samples of the action space.
    """

    MOVE_WORDS = ("UP", "DOWN", "LEFT", "RIGHT")
    HOLD_FRAMES = (4, 24)    # a movement lasts this many frames (low inclusive, high exclusive)
    IDLE_FRAMES = (2, 8)     # an idle pause lasts this many frames
    IDLE_PROBABILITY = 0.1   # chance that the next held action is a pause instead of a movement
    VERB_PROBABILITY = 0.04  # chance per frame of tapping a verb while holding

    def __init__(self, env: gym.Env, rng: np.random.Generator):
        self.space, self.rng = env.action_space, rng
        self.space.seed(int(rng.integers(2**31)))
        meanings = getattr(env.unwrapped, "get_action_meanings", None)
        names = list(meanings()) if callable(meanings) and isinstance(self.space, gym.spaces.Discrete) else []
        start = int(getattr(self.space, "start", 0))
        self.moves = [start + i for i, m in enumerate(names)
                      if any(w in m.upper() for w in self.MOVE_WORDS) and "FIRE" not in m.upper()]
        self.idles = [start + i for i, m in enumerate(names) if m.upper() == "NOOP"]
        self.verbs = [start + i for i in range(len(names)) if start + i not in self.moves + self.idles]
        self.reset()

    def reset(self) -> None:
        self.held, self.frames_left = None, 0

    def __call__(self):
        if self.frames_left <= 0:
            self.held, self.frames_left = self._next_hold()
        self.frames_left -= 1
        if self.verbs and self.rng.random() < self.VERB_PROBABILITY:
            return int(self.rng.choice(self.verbs))
        return self.held

    def _next_hold(self):
        if not self.moves:  # unnamed actions: hold any sample
            return self.space.sample(), int(self.rng.integers(*self.HOLD_FRAMES))
        if self.idles and self.rng.random() < self.IDLE_PROBABILITY:
            return int(self.rng.choice(self.idles)), int(self.rng.integers(*self.IDLE_FRAMES))
        return int(self.rng.choice(self.moves)), int(self.rng.integers(*self.HOLD_FRAMES))


POLICIES = {"random": RandomPolicy, "explore": ExplorePolicy}


def make_policy(name: str, env: gym.Env, rng: np.random.Generator):
    if name not in POLICIES:
        raise CollectError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    return POLICIES[name](env, rng)


# --------------------------------------------------------------------------- env, frames, actions

def make_env(env_id: str, env_kwargs: dict | None = None) -> gym.Env:
    """gym.make with rgb_array rendering, after registering the built-in game; clear errors otherwise."""
    from streamvideo.envs.game import register_game

    register_game()
    try:
        env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    except (gym.error.Error, ModuleNotFoundError) as err:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CollectError(f"unknown Gymnasium env id {env_id!r} ({err}){hint}") from err
    except (TypeError, ValueError) as err:  # the env's constructor rejected render_mode or an env kwarg
        raise CollectError(f"cannot create {env_id!r} with render_mode='rgb_array' and "
                           f"env kwargs {env_kwargs or {}}: {err}") from err
    modes = env.metadata.get("render_modes", [])
    if "rgb_array" not in modes:
        env.close()
        raise CollectError(f"env {env_id!r} cannot render 'rgb_array' frames (its render_modes are {modes}); "
                           f"collect records only envs that render rgb_array")
    return env


def read_frame(env: gym.Env, size: int) -> np.ndarray:
    """The env's current rgb_array render as uint8 [size, size, 3]."""
    from PIL import Image

    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        got = type(frame).__name__ if not isinstance(frame, np.ndarray) else f"array of shape {frame.shape}"
        raise CollectError(f"env.render() must return an [H, W, 3] rgb_array, got {got}")
    frame = np.asarray(frame[..., :3])
    if frame.dtype != np.uint8:
        frame = np.clip(frame * 255.0 if frame.max() <= 1.0 else frame, 0, 255).astype(np.uint8)
    if frame.shape[:2] == (size, size):
        return frame
    # BOX = exact area averaging when shrinking (no aliasing of thin lines); bicubic when enlarging
    shrinking = frame.shape[0] >= size and frame.shape[1] >= size
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(frame).resize((size, size), resample))


def describe_action_space(env: gym.Env) -> dict:
    """JSON description of the action space, and the dtype/shape of one stored action."""
    space = env.action_space
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    if isinstance(space, gym.spaces.Discrete):
        desc = {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
        if callable(meanings):
            desc["meanings"] = list(meanings())
    elif isinstance(space, gym.spaces.MultiDiscrete):
        desc = {"kind": "multi_discrete", "sizes": space.nvec.ravel().tolist()}
    elif isinstance(space, gym.spaces.MultiBinary):
        desc = {"kind": "multi_discrete", "sizes": [2] * int(np.prod(space.shape))}
    elif isinstance(space, gym.spaces.Box):
        desc = {"kind": "continuous", "dim": int(np.prod(space.shape)),
                "low": space.low.ravel().tolist(), "high": space.high.ravel().tolist()}
    else:
        raise CollectError(f"action space {space} is not supported; collect records Discrete, "
                           f"MultiDiscrete, MultiBinary or Box actions")
    return {**desc, "repr": str(space)}


def action_layout(desc: dict) -> tuple[tuple[int, ...], type]:
    """Shape and dtype of one stored action."""
    if desc["kind"] == "discrete":
        return (), np.int64
    if desc["kind"] == "multi_discrete":
        return (len(desc["sizes"]),), np.int64
    return (desc["dim"],), np.float32


def current_prompt(env: gym.Env, info: dict) -> str | None:
    prompt = info.get("prompt", getattr(env.unwrapped, "prompt", None))
    return prompt if isinstance(prompt, str) else None


# --------------------------------------------------------------------------- shard writing

class ShardWriter:
    """Buffers one shard of steps in preallocated arrays and writes it atomically when full."""

    def __init__(self, out: Path, shard_size: int, size: int, action_shape: tuple, action_dtype):
        self.out, self.shard_size = out, shard_size
        self.buffers = {
            "frames": np.zeros((shard_size, size, size, 3), np.uint8),
            "actions": np.zeros((shard_size, *action_shape), action_dtype),
            "rewards": np.zeros(shard_size, np.float32),
            "episode_ids": np.zeros(shard_size, np.int32),
            "first": np.zeros(shard_size, bool),
            "prompt_ids": np.zeros(shard_size, np.int32),
        }
        self.count = 0
        self.shards: list[dict] = []

    def add(self, **values) -> None:
        for name, value in values.items():
            self.buffers[name][self.count] = value
        self.count += 1
        if self.count == self.shard_size:
            self.flush()

    def flush(self) -> None:
        if self.count == 0:
            return
        name = f"shard_{len(self.shards):05d}.npz"
        tmp = self.out / f".{name}.tmp"
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: v[:self.count] for k, v in self.buffers.items()})
        os.replace(tmp, self.out / name)  # a reader never sees a half-written shard
        self.shards.append({"file": name, "frames": self.count})
        self.count = 0


# --------------------------------------------------------------------------- collect

def collect(env_id: str, steps: int, policy: str = "explore", out: str | Path = "data",
            size: int = 64, shard_size: int = 2048, seed: int = 0, episode_steps: int | None = None,
            env_kwargs: dict | None = None, progress: bool = True) -> dict:
    """Record `steps` frames (with actions and prompts) from `env_id` into `out`; returns meta.json's dict.

    episode_steps: reset after this many steps even if the env has not ended the episode.
    """
    _check_positive(steps=steps, size=size, shard_size=shard_size, episode_steps=episode_steps)
    out = Path(out)
    if (out / META_FILE).exists() or any(out.glob("shard_*.npz")):
        raise CollectError(f"{out} already holds a dataset; choose a new --out or delete it first")
    if policy not in POLICIES:
        raise CollectError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    env = make_env(env_id, env_kwargs)
    try:
        action_space = describe_action_space(env)
        rng = np.random.default_rng(seed)
        actor = make_policy(policy, env, rng)
        out.mkdir(parents=True, exist_ok=True)
        writer = ShardWriter(out, shard_size, size, *action_layout(action_space))
        prompts, episodes = _record(env, actor, writer, steps, size, seed, episode_steps, progress)
    finally:
        env.close()
    meta = {
        "format": FORMAT, "env_id": env_id, "env_kwargs": env_kwargs or {}, "policy": policy, "seed": seed,
        "height": size, "width": size, "fps": env.metadata.get("render_fps"),
        "action_space": action_space, "action_alignment": ACTION_ALIGNMENT,
        "frames": steps, "episodes": episodes, "shard_size": shard_size,
        "shards": writer.shards, "prompts": prompts,
    }
    tmp = out / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / META_FILE)
    return meta


def _record(env, actor, writer: ShardWriter, steps: int, size: int, seed: int,
            episode_steps: int | None, progress: bool) -> tuple[list[str], int]:
    """The collection loop; returns (prompts in first-seen order, episode count)."""
    prompt_index: dict[str, int] = {}
    blank_action = np.zeros_like(writer.buffers["actions"][0])
    episode, need_reset, episode_len = -1, True, 0

    def prompt_id(info) -> int:
        prompt = current_prompt(env, info)
        return -1 if prompt is None else prompt_index.setdefault(prompt, len(prompt_index))

    for _ in tqdm(range(steps), desc="collect", unit="frame", disable=not progress):
        if need_reset:
            episode, episode_len = episode + 1, 0
            _, info = env.reset(seed=seed if episode == 0 else None)  # later episodes continue the seeded RNG
            actor.reset()
            action, reward, first, need_reset = blank_action, 0.0, True, False
        else:
            action = actor()
            _, reward, terminated, truncated, info = env.step(action)
            episode_len += 1
            first = False
            out_of_steps = episode_steps is not None and episode_len >= episode_steps
            need_reset = terminated or truncated or out_of_steps
        writer.add(frames=read_frame(env, size), actions=action, rewards=float(reward),
                   episode_ids=episode, first=first, prompt_ids=prompt_id(info))
    writer.flush()
    return list(prompt_index), episode + 1


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise CollectError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------- reading back

@dataclass
class Clips:
    frames: np.ndarray   # uint8 [N, L, H, W, 3]
    actions: np.ndarray  # [N, L] int64 (Discrete) or [N, L, D]
    prompts: list[str]   # prompt of each clip's first frame, "" where the env gave none


@dataclass
class Dataset:
    frames: np.ndarray       # uint8 [T, H, W, 3], all shards in order
    actions: np.ndarray      # [T] or [T, D]; actions[i] produced frames[i]
    rewards: np.ndarray      # float32 [T]
    episode_ids: np.ndarray  # int32 [T]
    first: np.ndarray        # bool [T], True on reset frames
    prompt_ids: np.ndarray   # int32 [T], index into prompts or -1
    prompts: list[str]       # distinct prompts, in first-seen order
    meta: dict               # meta.json

    def __len__(self) -> int:
        return len(self.frames)

    def prompt_at(self, index: int) -> str:
        """The prompt of frame `index`, "" where the env gave none."""
        pid = self.prompt_ids[index]
        return self.prompts[pid] if pid >= 0 else ""

    def clip_starts(self, length: int, stride: int | None = None) -> np.ndarray:
        """Start indices of clips of `length` frames that stay inside one episode, every `stride`
        frames from each episode's start (default: non-overlapping clips)."""
        stride = length if stride is None else stride
        _check_positive(length=length, stride=stride)
        if length > len(self):
            return np.zeros(0, np.int64)
        starts = np.arange(len(self) - length + 1)
        same_episode = self.episode_ids[starts] == self.episode_ids[starts + length - 1]
        index = np.arange(len(self))
        episode_start = np.maximum.accumulate(np.where(self.first, index, 0))
        on_stride = (starts - episode_start[starts]) % stride == 0
        return starts[same_episode & on_stride]

    def clips(self, length: int, stride: int | None = None, starts: np.ndarray | None = None) -> Clips:
        starts = self.clip_starts(length, stride) if starts is None else np.asarray(starts)
        index = starts[:, None] + np.arange(length)  # [N, L]
        prompts = [self.prompt_at(s) for s in starts]
        return Clips(self.frames[index], self.actions[index], prompts)


def load_dataset(directory: str | Path) -> Dataset:
    """Read every shard listed in DIR/meta.json into memory."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found: is {directory} a `streamvideo collect` output?")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    parts: dict[str, list[np.ndarray]] = {}
    for shard in meta["shards"]:
        with np.load(directory / shard["file"]) as data:
            for name in data.files:
                parts.setdefault(name, []).append(data[name])
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    return Dataset(prompts=list(meta["prompts"]), meta=meta, **arrays)


def first_frames(data_dir: str | Path, prompts: list[str], frames: int = 3) -> np.ndarray:
    """uint8 [P, frames, H, W, 3]: for each prompt, the first `frames` frames of the dataset's first
    episode that starts under that prompt ("" for none, as in `Clips`) and is at least that long."""
    _check_positive(frames=frames)
    dataset = load_dataset(data_dir)
    starts = np.flatnonzero(dataset.first)
    ends = np.append(starts[1:], len(dataset))   # episodes are contiguous: each ends where the next starts
    long_enough = [int(s) for s, e in zip(starts, ends) if e - s >= frames]
    clips = []
    for prompt in prompts:
        start = next((s for s in long_enough if dataset.prompt_at(s) == prompt), None)
        if start is None:
            raise ValueError(f"{data_dir} has no episode of at least {frames} frames with prompt {prompt!r}")
        clips.append(dataset.frames[start:start + frames])
    return np.stack(clips)


def iter_clips(directory: str | Path, length: int, batch_size: int, shuffle: bool = True,
               seed: int = 0, stride: int | None = None) -> Iterator[Clips]:
    """One pass over the dataset's clips in batches of `batch_size` (the last batch may be smaller)."""
    _check_positive(batch_size=batch_size)
    dataset = load_dataset(directory)
    starts = dataset.clip_starts(length, stride)
    if shuffle:
        starts = np.random.default_rng(seed).permutation(starts)
    for i in range(0, len(starts), batch_size):
        yield dataset.clips(length, starts=starts[i:i + batch_size])


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True,
                        help="Gymnasium env id, e.g. StreamVideoGame-v0 or CartPole-v1")
    parser.add_argument("--steps", type=int, required=True, help="frames to record in total")
    parser.add_argument("--policy", default="explore", choices=list(POLICIES),
                        help="random: uniform actions; explore: held movements with occasional verbs")
    parser.add_argument("--out", required=True, help="output directory (must not hold a dataset yet)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels after resizing")
    parser.add_argument("--shard-size", type=int, default=2048, help="frames per .npz shard")
    parser.add_argument("--seed", type=int, default=0, help="seeds the env's first reset and the policy")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="reset after this many steps (default: when the env ends the episode)")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for gym.make, VALUE parsed as JSON when it can be "
                             "(repeatable), e.g. --env-arg screens=2")


def parse_env_args(pairs: list[str]) -> dict:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CollectError(f"--env-arg expects KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def run(args: argparse.Namespace) -> int:
    try:
        meta = collect(args.env, args.steps, args.policy, args.out, size=args.size,
                       shard_size=args.shard_size, seed=args.seed, episode_steps=args.episode_steps,
                       env_kwargs=parse_env_args(args.env_arg))
    except CollectError as err:
        print(f"streamvideo collect: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {meta['frames']} frames in {meta['episodes']} episodes, {len(meta['shards'])} shards, "
          f"{len(meta['prompts'])} prompts to {args.out}")
    return 0
