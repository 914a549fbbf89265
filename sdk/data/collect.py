"""`streamvideo collect`: record frames, actions and prompts from any Gymnasium env that renders rgb_array.

    streamvideo collect --env StreamVideoGame-v0 --steps 100000 --policy explore --out data/game
    streamvideo collect --env ALE/Pong-v5 --size 64x80 --resize pad --steps 100000 --out data/pong

writes `shard_00000.npz, shard_00001.npz, ...` and `meta.json` into DIR. Each shard holds

    frames       uint8 [n, H, W, 3]   renders fitted to --size by --resize (area averaging when shrinking)
    actions      [n] int64 (Discrete), [n, K] int64 (MultiDiscrete / MultiBinary), [n, D] float32 (Box)
    rewards      float32 [n]
    episode_ids  int32 [n]            episodes are contiguous and may continue into the next shard
    first        bool [n]             True on the frame returned by reset()
    prompt_ids   int32 [n]            index into meta.json's "prompts", -1 where there is none

actions[i] is the action whose step produced frames[i] (the frame a world model predicts from it);
first frames come from reset() and carry action 0 / zeros. Read it back with `load_dataset(DIR)`
or `iter_clips(DIR, length, batch_size)`; `first_frames(DIR, prompts)` gives each prompt's first episode
start (a model folder's start frames). meta.json records the frame size, the resize, the fps (the env's
render_fps / --frame-skip unless --fps) and the prompts, which the training stages and the model folder take.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import namespace as registration_namespace
from gymnasium.envs.registration import parse_env_id
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

# Namespaces whose package registers them on import but declares no "gymnasium.envs" entry point
# (Gymnasium 1.x stopped loading plugins by itself, and current ale-py declares none):
# namespace -> (module to import, package to install).
IMPORT_ON_DEMAND = {"ALE": ("ale_py", "ale-py"), "dm_control": ("shimmy", "shimmy[dm-control]")}
PLUGIN_GROUP = "gymnasium.envs"   # the entry-point group Gymnasium < 1.0 loaded plugins from


def registered_namespaces() -> set[str]:
    return {spec.namespace for spec in gym.registry.values() if spec.namespace is not None}


def load_namespace(env_id: str) -> None:
    """Register the namespace of a `Namespace/Name-v0` id when it is not yet: from the installed package's
    "gymnasium.envs" entry point of that name, else by importing the module known to register it. An id
    naming its module (`module:Namespace/Name-v0`) is left to gym.make, which imports the module itself."""
    if ":" in env_id:
        return
    try:
        namespace = parse_env_id(env_id)[0]
    except gym.error.Error:
        return   # a malformed id: gym.make says what is wrong with it
    if namespace is None or namespace in registered_namespaces():
        return
    if not load_entry_point(namespace):
        import_plugin(env_id, namespace)
    if namespace not in registered_namespaces():
        raise CollectError(f"the plugin for the namespace {namespace!r} loaded but registered no {namespace}/ "
                           f"env ids: is it a release for Gymnasium {gym.__version__}?")


def load_entry_point(namespace: str) -> bool:
    """Run the "gymnasium.envs" entry point named `namespace`, as Gymnasium < 1.0 did on import: a
    module entry registers on import, a function entry is called inside the namespace."""
    plugin = next(iter(entry_points(group=PLUGIN_GROUP, name=namespace)), None)
    if plugin is None:
        return False
    loaded = plugin.load()
    if plugin.attr:
        with registration_namespace(namespace):
            loaded()
    return True


def import_plugin(env_id: str, namespace: str) -> None:
    module, package = IMPORT_ON_DEMAND.get(namespace, (None, None))
    if module is None:
        raise CollectError(f"no installed package registers the namespace {namespace!r} of {env_id!r} (none "
                           f"declares a {PLUGIN_GROUP!r} entry point of that name): install the package that "
                           f"provides it and name its module, as in --env MODULE:{env_id}")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise   # the plugin is installed but one of its own imports is missing: its error says which
        raise CollectError(f"{env_id!r} needs the package {package!r}, which registers the {namespace!r} envs "
                           f"when its module {module!r} is imported: {install_hint(module)}") from err


def install_hint(module: str | None) -> str:
    package = next((package for known, package in IMPORT_ON_DEMAND.values() if known == module), None)
    return f'pip install "{package}"' if package else "install the package that provides it"


def make_env(env_id: str, env_kwargs: dict | None = None) -> gym.Env:
    """gym.make with rgb_array rendering, after registering the built-in game and the id's namespace;
    clear errors otherwise."""
    from streamvideo.envs.game.env import register_game

    register_game()
    load_namespace(env_id)
    try:
        env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    except gym.error.Error as err:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = (f"did you mean {', '.join(close)}?" if close else
                f"if a package registers it on import, name its module: --env MODULE:{env_id}")
        raise CollectError(f"unknown Gymnasium env id {env_id!r} ({err}); {hint}") from err
    except ModuleNotFoundError as err:   # the module an id names (`module:Name-v0`) or its entry point imports
        raise CollectError(f"cannot create {env_id!r}: {err}; {install_hint(err.name)}") from err
    except (TypeError, ValueError) as err:  # the env's constructor rejected render_mode or an env kwarg
        raise CollectError(f"cannot create {env_id!r} with render_mode='rgb_array' and "
                           f"env kwargs {env_kwargs or {}}: {err}") from err
    modes = env.metadata.get("render_modes", [])
    if "rgb_array" not in modes:
        env.close()
        raise CollectError(f"env {env_id!r} cannot render 'rgb_array' frames (its render_modes are {modes}); "
                           f"collect records only envs that render rgb_array")
    return env


RESIZE_METHODS = ("pad", "crop", "stretch")
# pad is the default: it keeps the aspect and every pixel of content (a score line or a ball at the
# border survives, where crop cuts it off), and its black bars never change, so they cost the codec
# and the model nothing to learn
DEFAULT_RESIZE = "pad"


def parse_size(size: int | str) -> tuple[int, int]:
    """--size as (height, width): N for an N x N square, or WxH (width first, as screens are named)."""
    try:
        if isinstance(size, (int, np.integer)):
            return int(size), int(size)
        width, sep, height = str(size).lower().partition("x")
        return int(height if sep else width), int(width)
    except ValueError:
        raise CollectError(f"size must be N or WxH, e.g. 64 or 64x40, got {size!r}") from None


def model_size(size: int | str = 64, width: int | None = None, height: int | None = None) -> tuple[int, int]:
    """(height, width) of the recorded frames: `size`, with `width` / `height` overriding its sides."""
    size_height, size_width = parse_size(size)
    hw = (size_height if height is None else height, size_width if width is None else width)
    _check_positive(height=hw[0], width=hw[1])
    return hw


def wxh(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


@dataclass(frozen=True)
class FrameFit:
    """How renders of `source_hw` become frames of `model_hw`: resized to `scaled_hw` (keeping the aspect,
    except by stretch), then padded with black (pad) or cut (crop) to the model size, centred."""
    source_hw: tuple[int, int]
    model_hw: tuple[int, int]
    method: str

    @property
    def scaled_hw(self) -> tuple[int, int]:
        if self.method == "stretch":
            return self.model_hw
        pick = min if self.method == "pad" else max   # fit inside the model size / cover all of it
        scale = pick(m / s for m, s in zip(self.model_hw, self.source_hw))
        return tuple(max(1, round(s * scale)) for s in self.source_hw)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        (height, width), (scaled_h, scaled_w) = self.model_hw, self.scaled_hw
        scaled = resized(frame, (scaled_h, scaled_w))
        if self.method == "crop":
            top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
            return scaled[top:top + height, left:left + width]
        if self.method == "pad":
            top, left = (height - scaled_h) // 2, (width - scaled_w) // 2
            canvas = np.zeros((height, width, 3), np.uint8)
            canvas[top:top + scaled_h, left:left + scaled_w] = scaled
            return canvas
        return scaled

    def describe(self) -> str:
        """One line for the log, e.g. "resize 600x400 -> 64x64 by pad: scaled to 64x43 (aspect kept), 21 black
        rows added"."""
        head = f"resize {wxh(self.source_hw)} -> {wxh(self.model_hw)}"
        if self.source_hw == self.model_hw:
            return f"{head}: none, the env renders the model's size"
        if self.scaled_hw == self.model_hw:   # stretch, or pad / crop of a render with the model's aspect
            (source_h, source_w), (height, width) = self.source_hw, self.model_hw
            change = ("same aspect, scaled only" if source_w * height == width * source_h else
                      f"aspect {source_w / source_h:.2f} -> {width / height:.2f}")
            return f"{head} by {self.method}: {change}"
        rows, columns = (abs(m - s) for m, s in zip(self.model_hw, self.scaled_hw))
        edges = (f"{rows_and_columns(rows, columns, 'black ')} added" if self.method == "pad" else
                 f"{rows_and_columns(rows, columns)} cut")
        return f"{head} by {self.method}: scaled to {wxh(self.scaled_hw)} (aspect kept), {edges}"


def rows_and_columns(rows: int, columns: int, adjective: str = "") -> str:
    parts = [f"{n} {adjective}{name}{'s' * (n != 1)}" for n, name in ((columns, "column"), (rows, "row")) if n]
    return " and ".join(parts)


def resized(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if frame.shape[:2] == hw:
        return frame
    # BOX = exact area averaging when shrinking (no aliasing of thin lines); bicubic when enlarging
    shrinking = frame.shape[0] >= hw[0] and frame.shape[1] >= hw[1]
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(frame).resize((hw[1], hw[0]), resample))


def render_frame(env: gym.Env) -> np.ndarray:
    """The env's current rgb_array render as uint8 [H, W, 3]."""
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        got = type(frame).__name__ if not isinstance(frame, np.ndarray) else f"array of shape {frame.shape}"
        raise CollectError(f"env.render() must return an [H, W, 3] rgb_array, got {got}")
    frame = np.asarray(frame[..., :3])
    if frame.dtype != np.uint8:
        frame = np.clip(frame * 255.0 if frame.max() <= 1.0 else frame, 0, 255).astype(np.uint8)
    return frame


def read_frame(env: gym.Env, size: int | tuple[int, int], resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """The env's current render fitted to `size` (a square's side, or (height, width)) by `resize`."""
    frame = render_frame(env)
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    return FrameFit(frame.shape[:2], hw, resize).apply(frame)


class Framer:
    """Fits every render to the model size; logs the first render's fit, the one meta.json records."""

    def __init__(self, model_hw: tuple[int, int], method: str):
        self.model_hw, self.method = model_hw, method
        self.first: FrameFit | None = None

    def __call__(self, env: gym.Env) -> np.ndarray:
        frame = render_frame(env)
        fit = FrameFit(frame.shape[:2], self.model_hw, self.method)
        if self.first is None:
            self.first = fit
            tqdm.write(fit.describe())
        return fit.apply(frame)


def describe_action_space(env: gym.Env) -> dict:
    """JSON description of the action space (`ActionSpec.from_dict` reads it), with its exact shape."""
    space = env.action_space
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    if isinstance(space, gym.spaces.Discrete):
        desc = {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
        if callable(meanings):
            desc["meanings"] = list(meanings())
    elif isinstance(space, gym.spaces.MultiDiscrete):
        desc = {"kind": "multi_discrete", "sizes": space.nvec.ravel().tolist(), "shape": list(space.shape),
                "binary": False}
    elif isinstance(space, gym.spaces.MultiBinary):
        desc = {"kind": "multi_discrete", "sizes": [2] * int(np.prod(space.shape)), "shape": list(space.shape),
                "binary": True}
    elif isinstance(space, gym.spaces.Box):
        desc = {"kind": "continuous", "dim": int(np.prod(space.shape)), "shape": list(space.shape),
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


def current_prompt(env: gym.Env, info: dict, key: str = "prompt") -> str | None:
    """The text the env gives under `key`: an info key, else an attribute of the unwrapped env."""
    prompt = info.get(key, getattr(env.unwrapped, key, None))
    return prompt if isinstance(prompt, str) else None


class PromptReader:
    """Each frame's prompt: `fixed` for every frame, else the env's text under `key` (default "prompt"),
    which holds until the env gives another; None until it gives one. A key the user named must give
    text at the first reset (a typo would otherwise record a whole data set without prompts)."""

    def __init__(self, env: gym.Env, fixed: str | None = None, key: str | None = None):
        if fixed is not None and key is not None:
            raise CollectError("give one prompt for the whole data set (--prompt) or the info key to read "
                               "each episode's prompt from (--prompt-info-key), not both")
        self.env, self.fixed, self.key = env, fixed, key or "prompt"
        self.must_find = key is not None
        self.held: str | None = None

    def __call__(self, info: dict, reset: bool) -> str | None:
        if self.fixed is not None:
            return self.fixed
        given = current_prompt(self.env, info, self.key)
        if self.must_find:
            self.check_found(given, info)
        if reset or given is not None:
            self.held = given
        return self.held

    def check_found(self, given: str | None, info: dict) -> None:
        if given is None:
            value = info.get(self.key, getattr(self.env.unwrapped, self.key, None))
            raise CollectError(f"--prompt-info-key {self.key!r}: the env gives no text under that name at "
                               f"reset (got {type(value).__name__}; its reset info has the keys "
                               f"{sorted(info)}, and the env's attributes are searched too)")
        self.must_find = False


# --------------------------------------------------------------------------- frame rate

DEFAULT_FPS = 15.0   # for an env whose metadata gives no render_fps (the built-in game's rate)


def recorded_fps(env: gym.Env, frame_skip: int, fps: float | None) -> tuple[float, str]:
    """The data set's frames per second and where it comes from: `fps` when given, else the env's
    render_fps over the frame skip (collect keeps every k-th frame), else DEFAULT_FPS."""
    if fps is not None:
        if not fps > 0:
            raise CollectError(f"fps must be positive, got {fps!r}")
        return float(fps), "--fps"
    render_fps = env.metadata.get("render_fps")
    if not render_fps:
        return DEFAULT_FPS, "the env's metadata gives no render_fps; set the rate with --fps"
    skip = f" / frame skip {frame_skip}" if frame_skip > 1 else ""
    return render_fps / frame_skip, f"the env's render_fps {render_fps:g}{skip}"


def skip_steps(env: gym.Env, action, frame_skip: int) -> tuple[float, bool, dict]:
    """`frame_skip` env steps of one action, stopping where the episode ends: (summed reward, ended, info)."""
    total = 0.0
    for _ in range(frame_skip):
        _, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            return total, True, info
    return total, False, info


# --------------------------------------------------------------------------- shard writing

class ShardWriter:
    """Buffers one shard of steps in preallocated arrays and writes it atomically when full."""

    def __init__(self, out: Path, shard_size: int, hw: tuple[int, int], action_shape: tuple, action_dtype):
        self.out, self.shard_size = out, shard_size
        self.buffers = {
            "frames": np.zeros((shard_size, *hw, 3), np.uint8),
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
            size: int | str = 64, shard_size: int = 2048, seed: int = 0, episode_steps: int | None = None,
            env_kwargs: dict | None = None, progress: bool = True, *, width: int | None = None,
            height: int | None = None, resize: str = DEFAULT_RESIZE, fps: float | None = None,
            frame_skip: int = 1, prompt: str | None = None, prompt_key: str | None = None) -> dict:
    """Record `steps` frames (with actions and prompts) from `env_id` into `out`; returns meta.json's dict.

    size: N (an N x N square) or "WxH"; width / height override its sides. resize: how renders of another
    size or aspect are fitted (RESIZE_METHODS). frame_skip: keep every k-th frame (the action is held for
    the k steps between); fps: the data's rate, by default the env's render_fps / frame_skip.
    prompt: one prompt for every frame; prompt_key: the info key (or env attribute) holding each
    episode's prompt, by default "prompt" where the env gives one.
    episode_steps: reset after this many recorded steps even if the env has not ended the episode.
    """
    _check_positive(steps=steps, shard_size=shard_size, episode_steps=episode_steps, frame_skip=frame_skip)
    hw = model_size(size, width, height)
    out = Path(out)
    if (out / META_FILE).exists() or any(out.glob("shard_*.npz")):
        raise CollectError(f"{out} already holds a dataset; choose a new --out or delete it first")
    if policy not in POLICIES:
        raise CollectError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if resize not in RESIZE_METHODS:
        raise CollectError(f"unknown resize {resize!r}; choose one of {', '.join(RESIZE_METHODS)}")
    env = make_env(env_id, env_kwargs)
    try:
        rate, rate_source = recorded_fps(env, frame_skip, fps)
        action_space = describe_action_space(env)
        rng = np.random.default_rng(seed)
        actor = make_policy(policy, env, rng)
        prompts = PromptReader(env, prompt, prompt_key)
        out.mkdir(parents=True, exist_ok=True)
        writer = ShardWriter(out, shard_size, hw, *action_layout(action_space))
        print(f"fps {rate:g} ({rate_source})")
        framer = Framer(hw, resize)
        prompt_list, episodes = _record(env, actor, writer, framer, prompts, steps, seed, frame_skip,
                                        episode_steps, progress)
    finally:
        env.close()
    meta = {
        "format": FORMAT, "env_id": env_id, "env_kwargs": env_kwargs or {}, "policy": policy, "seed": seed,
        "height": hw[0], "width": hw[1], "resize": resize, "render_hw": list(framer.first.source_hw),
        "fps": rate, "frame_skip": frame_skip, "env_render_fps": env.metadata.get("render_fps"),
        "action_space": action_space, "action_alignment": ACTION_ALIGNMENT,
        "frames": steps, "episodes": episodes, "shard_size": shard_size,
        "shards": writer.shards, "prompts": prompt_list,
    }
    tmp = out / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / META_FILE)
    return meta


def _record(env, actor, writer: ShardWriter, framer: Framer, prompts: PromptReader, steps: int, seed: int,
            frame_skip: int, episode_steps: int | None, progress: bool) -> tuple[list[str], int]:
    """The collection loop; returns (prompts in first-seen order, episode count)."""
    prompt_index: dict[str, int] = {}
    blank_action = np.zeros_like(writer.buffers["actions"][0])
    episode, need_reset, episode_len = -1, True, 0
    for _ in tqdm(range(steps), desc="collect", unit="frame", disable=not progress):
        if need_reset:
            episode, episode_len = episode + 1, 0
            _, info = env.reset(seed=seed if episode == 0 else None)  # later episodes continue the seeded RNG
            actor.reset()
            action, reward, first, need_reset = blank_action, 0.0, True, False
        else:
            action = actor()
            reward, ended, info = skip_steps(env, action, frame_skip)
            episode_len += 1
            first = False
            need_reset = ended or (episode_steps is not None and episode_len >= episode_steps)
        prompt = prompts(info, reset=first)
        writer.add(frames=framer(env), actions=action, rewards=reward, episode_ids=episode, first=first,
                   prompt_ids=-1 if prompt is None else prompt_index.setdefault(prompt, len(prompt_index)))
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


def read_meta(directory: str | Path) -> dict:
    """DIR/meta.json, checked to be a `streamvideo collect` output's."""
    meta_path = Path(directory) / META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found: is {directory} a `streamvideo collect` output?")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def dataset_env(directory: str | Path) -> dict:
    """The env a dataset was recorded from, as a model folder keeps it: {"id": ..., "kwargs": {...}}."""
    meta = read_meta(directory)
    return {"id": meta["env_id"], "kwargs": dict(meta.get("env_kwargs") or {})}


def dataset_fps(directory: str | Path) -> float:
    """The data's frames per second as meta.json records it (DEFAULT_FPS where an older collect gave none)."""
    return float(read_meta(directory).get("fps") or DEFAULT_FPS)


def load_dataset(directory: str | Path) -> Dataset:
    """Read every shard listed in DIR/meta.json into memory."""
    directory = Path(directory)
    meta = read_meta(directory)
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
    parser.add_argument("--size", default="64", metavar="N|WxH",
                        help="model frame size: N for N x N, or WxH such as 64x40 (multiples of the codec's "
                             "patch, 8 for the default codecs)")
    parser.add_argument("--width", type=int, default=None, help="model frame width (overrides --size's)")
    parser.add_argument("--height", type=int, default=None, help="model frame height (overrides --size's)")
    parser.add_argument("--resize", default=DEFAULT_RESIZE, choices=RESIZE_METHODS,
                        help="fitting renders of another aspect: pad (keep the aspect, black bars), crop (keep "
                             "the aspect, cut the overhang) or stretch (squash to the size)")
    parser.add_argument("--frame-skip", type=int, default=1, metavar="K",
                        help="record every K-th frame, holding the action for the K steps between")
    parser.add_argument("--fps", type=float, default=None,
                        help="frames per second of the data (default: the env's render_fps / --frame-skip)")
    parser.add_argument("--prompt", default=None, metavar="TEXT", help="one prompt for the whole data set")
    parser.add_argument("--prompt-info-key", default=None, metavar="KEY",
                        help="read each episode's prompt from info[KEY] or the env's text attribute KEY "
                             "(default: 'prompt' where the env gives one, else no prompts)")
    parser.add_argument("--shard-size", type=int, default=2048, help="frames per .npz shard")
    parser.add_argument("--seed", type=int, default=0, help="seeds the env's first reset and the policy")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="reset after this many recorded steps (default: when the env ends the episode)")
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
                       env_kwargs=parse_env_args(args.env_arg), width=args.width, height=args.height,
                       resize=args.resize, fps=args.fps, frame_skip=args.frame_skip, prompt=args.prompt,
                       prompt_key=args.prompt_info_key)
    except CollectError as err:
        print(f"streamvideo collect: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {meta['frames']} frames in {meta['episodes']} episodes, {len(meta['shards'])} shards, "
          f"{len(meta['prompts'])} prompts to {args.out}")
    return 0
