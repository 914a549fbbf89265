"""The game-agnostic side of `streamvideo eval`: what it measures on any Gymnasium env that renders
rgb_array, and what every evaluation shares (rollouts, fidelity, drift, speed, the copy-last-frame baseline).

Real frames are the env's renders (`env.render()`, render_mode="rgb_array"), resized to the model's frame
size by `collect.read_frame`, exactly as `streamvideo collect` records them; observations are never read.
A real rollout starts from a held-out seed: reset, then no-op steps (action 0 / zeros, the action the
generator labels context frames with) up to one chunk of context frames, then each chunk action for a
chunk's frames, until the episode ends. Prompts are the env's (info["prompt"]) where it gives one, else
the model's default prompt.

Action following needs no knowledge of the env: from one seed and a shared prefix of random actions, the
real env is replayed under every candidate action (Discrete: each one; other spaces: `--action-samples`
seeded samples), held `--hold-chunks` chunks, and the model rolls out under each from the same context.
A model rollout follows its action when it is nearest (mean squared error over the segment's frames) to
that action's real rollout: a confusion matrix (rows: the action given, columns: the nearest real rollout),
its accuracy and chance = 1 / candidates. A model that ignores actions makes the same rollout for every
candidate, so it picks the same column in every row and scores exactly chance; the real rollouts scored
as a model's (a model that replays the env) give the ceiling, below 100 % where actions leave the frames
unchanged within the segment, which `action_separability` (real rollouts of different actions that
differ at all) shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import torch

from ..data.collect import CollectError, current_prompt, describe_action_space, make_env, parse_env_args, read_frame
from ..engine.actions import ActionSpec
from .detectors import frame_stats, psnr, slope_percent_per_minute, ssim

# held-out seed blocks (added to --seed), so no two measures replay the same episode
DRIFT_SEED, ACTION_SEEDS = 400, 600
COLLAPSE_RATIO = 0.5   # generated pixel std below half the real env's: a flat, collapsed picture


class EvalError(SystemExit):
    """A one-line error for the command line."""

    def __init__(self, message: str):
        super().__init__(f"streamvideo eval: {message}")


@dataclass
class Rollout:
    """A real rollout: context frames, then one frame per step of each chunk action. Arrays over frames
    start with the last context frame (index 0), so chunk i runs from frame i*fpc + 1 to (i+1)*fpc; an
    episode that ended early has fewer frames, and chunk_actions only the chunks it started."""
    seed: int
    prompt: str | None
    chunk_actions: list
    context: np.ndarray                  # [fpc, H, W, 3]
    frames: np.ndarray                   # [T + 1, H, W, 3]


@dataclass(kw_only=True)
class Setting:
    """The real side of an evaluation, shared by the models with the same frame size, chunk length and
    fps: the fidelity episodes, the drift rollout's start, actions and statistics, and what the measures
    score on real frames and on the baselines."""
    fpc: int
    fps: float
    horizons: list[int]
    episodes: list[Rollout]
    drift_start: Rollout | None = None
    drift_actions: list = field(default_factory=list)
    drift_real: list[dict] = field(default_factory=list)     # the real env's statistics per segment
    ground_truth: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)

    def label(self) -> str:
        """What tells this setting's rows from another's in table.md."""
        return f"{self.fpc}-frame chunks at {self.fps:g} fps"


# --------------------------------------------------------------------------- generating

class CopyLast:
    """Baseline: the last real context frame held still (ignores actions and prompts)."""

    def __init__(self, frames_per_chunk: int):
        self.frames_per_chunk = frames_per_chunk

    def reset(self, prompt: str | None, seed: int, context_frames: np.ndarray) -> None:
        self.frame = context_frames[-1]

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        pass

    def step(self, action):
        return SimpleNamespace(frames=np.repeat(self.frame[None], self.frames_per_chunk, 0), nfe=0, seconds=0.0)


@dataclass
class Speed:
    chunks: int = 0
    frames: int = 0
    nfe: float = 0
    seconds: float = 0.0

    def rollout(self, gen, actions: list) -> np.ndarray:
        out = []
        for a in actions:
            chunk = gen.step(a)
            self.chunks, self.frames = self.chunks + 1, self.frames + len(chunk.frames)
            self.nfe, self.seconds = self.nfe + chunk.nfe, self.seconds + chunk.seconds
            out.append(chunk.frames)
        return np.concatenate(out)

    def as_result(self) -> dict:
        """{"speed": FPS, NFE per chunk, chunks, torch threads}; {} for a baseline, which takes no time."""
        if self.seconds <= 0:
            return {}
        return {"speed": {"fps": self.frames / self.seconds, "nfe_per_chunk": self.nfe / self.chunks,
                          "chunks": self.chunks, "torch_threads": torch.get_num_threads()}}


def generate(gen, real: Rollout, speed: Speed) -> np.ndarray:
    """The generator's frames for a real rollout, from its context, indexed like real.frames."""
    gen.reset(prompt=real.prompt, seed=real.seed, context_frames=real.context)
    return np.concatenate([real.frames[:1], speed.rollout(gen, real.chunk_actions)])[:len(real.frames)]


def held(plan: list, chunks: int) -> list:
    """Chunk actions: every action of the plan held `chunks` chunks."""
    return [a for a in plan for _ in range(chunks)]


# --------------------------------------------------------------------------- fidelity and drift

def usable_horizons(horizons: list[int], length: int) -> list[int]:
    """The horizons a rollout of `length` generated frames can score (the length itself if none)."""
    return [h for h in horizons if h <= length] or [length]


def per_frame(metric, reals: list[Rollout], frames: list[np.ndarray]) -> np.ndarray:
    """metric of every generated frame against the real one [episodes, longest], NaN past an episode's end."""
    out = np.full((len(reals), max(len(r.frames) for r in reals) - 1), np.nan)
    for row, real, f in zip(out, reals, frames):
        row[:len(real.frames) - 1] = metric(real.frames[1:], f[1:])
    return out


def fidelity(s: Setting, frames: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    """PSNR / SSIM averages up to each horizon, and the mean PSNR curve over generated frames; an episode
    that ended early counts up to its end."""
    p, q = per_frame(psnr, s.episodes, frames), per_frame(ssim, s.episodes, frames)
    return ({f"psnr@{h}": float(np.nanmean(p[:, :h])) for h in s.horizons}
            | {f"ssim@{h}": float(np.nanmean(q[:, :h])) for h in s.horizons}), np.nanmean(p, 0)


def segment_chunks(args, s: Setting) -> int:
    return max(1, int(args.segment_seconds * s.fps) // s.fpc)


def drift_chunks(args, s: Setting) -> int:
    """Chunks of the drift rollout: `--drift-seconds`, and at least one segment (a segment shorter than a
    chunk is one chunk long), so there is always a segment to plot."""
    return max(int(args.drift_seconds * s.fps) // s.fpc, segment_chunks(args, s))


def segment_stats(chunks, per_segment: int) -> list[dict]:
    """frame_stats of every `per_segment` chunks of a stream of chunks."""
    segments, buf = [], []
    for chunk in chunks:
        buf.append(chunk)
        if len(buf) == per_segment:
            segments.append(frame_stats(np.concatenate(buf)))
            buf = []
    return segments


def drift(gen, s: Setting, speed: Speed, args) -> dict:
    """One long rollout from a real start: statistics per segment, slopes, pixel std against the real env's."""
    start = s.drift_start
    gen.reset(prompt=start.prompt, seed=start.seed, context_frames=start.context)
    segments = segment_stats((speed.rollout(gen, [a]) for a in s.drift_actions), segment_chunks(args, s))
    minutes = [(i + 0.5) * args.segment_seconds / 60 for i in range(len(segments))]
    ratio = [g["pixel_std"] / max(r["pixel_std"], 1e-9) for g, r in zip(segments, s.drift_real)]
    keys = ("saturation", "sharpness", "change", "pixel_std")
    return {"segments": segments, "minutes": minutes, "pixel_std_vs_real": ratio,
            "collapsed": bool(ratio and ratio[-1] < COLLAPSE_RATIO),
            "slope_percent_per_minute": {k: slope_percent_per_minute([g[k] for g in segments], minutes) for k in keys}}


# --------------------------------------------------------------------------- the env and its actions

def env_kwargs(pairs: list[str]) -> dict:
    """`--env-arg KEY=VALUE` pairs as gym.make keyword arguments (VALUE read as JSON where it can be)."""
    try:
        return parse_env_args(pairs)
    except CollectError as err:
        raise EvalError(str(err)) from None


def open_env(env_id: str, kwargs: dict) -> gym.Env:
    """The env as `streamvideo collect` makes it (render_mode="rgb_array"), or a one-line error."""
    try:
        return make_env(env_id, kwargs)
    except CollectError as err:
        raise EvalError(str(err)) from None


def spec_of(env: gym.Env) -> ActionSpec:
    """The env's action space as a model records it (what `streamvideo collect` and training store)."""
    return ActionSpec.from_dict(describe_action_space(env))


def check_model_fits_env(gen, env: gym.Env, source: str, env_id: str) -> None:
    """The model must take exactly the env's actions."""
    if spec_of(env) != gen.action_spec:
        raise EvalError(f"{source} takes {gen.action_spec.describe()} actions but {env_id} has "
                        f"{env.action_space}: evaluate a model trained on {env_id}'s actions")


def sampled_plan(space: gym.Space, rng: np.random.Generator, n: int) -> list:
    """n seeded actions: for Discrete, shuffles of every action one after another (each one about
    n / size times); otherwise samples of the space."""
    if isinstance(space, gym.spaces.Discrete):
        return [int(space.start + a) for _ in range(-(-n // space.n)) for a in rng.permutation(space.n)][:n]
    space.seed(int(rng.integers(2**31)))
    return [space.sample() for _ in range(n)]


def candidate_actions(space: gym.Space, samples: int, rng: np.random.Generator) -> list:
    """The actions the action measure tells apart: Discrete, every one; otherwise `samples` distinct
    seeded samples (fewer where the space holds fewer)."""
    if isinstance(space, gym.spaces.Discrete):
        return [int(space.start + i) for i in range(space.n)]
    space.seed(int(rng.integers(2**31)))
    distinct = {}
    for _ in range(100 * samples):
        action = space.sample()
        distinct.setdefault(np.asarray(action).tobytes(), action)
        if len(distinct) == samples:
            break
    return list(distinct.values())


@dataclass
class RealEnv:
    """The env's rendered frames at the model's frame size, a chunk of frames per chunk action."""
    env: gym.Env
    hw: tuple[int, int]   # the model's frame size (height, width)
    resize: str           # how renders are fitted to it: collect's --resize of the training data
    fpc: int
    noop: object          # the model's no-op: what its context frames are labelled with

    def steps(self, action, n: int) -> tuple[list[np.ndarray], bool]:
        """Up to n steps of one action: the rendered frames, and whether the episode ended."""
        frames = []
        for _ in range(n):
            _, _, terminated, truncated, _ = self.env.step(action)
            frames.append(read_frame(self.env, self.hw, self.resize))
            if terminated or truncated:
                return frames, True
        return frames, False

    def play(self, seed: int, chunk_actions: list) -> tuple[Rollout, bool]:
        """A rollout from `seed` (a chunk of no-op context frames first), and whether its episode ended."""
        _, info = self.env.reset(seed=seed)
        first = read_frame(self.env, self.hw, self.resize)
        rest, ended = self.steps(self.noop, self.fpc - 1)
        if ended:
            raise EvalError(f"the episode from seed {seed} ended within its first chunk: no context frames")
        context = np.stack([first, *rest])
        frames, played = [context[-1]], []
        for a in chunk_actions:
            if ended:
                break
            chunk, ended = self.steps(a, self.fpc)
            frames += chunk
            played.append(a)
        return Rollout(seed, current_prompt(self.env, info), played, context, np.stack(frames)), ended

    def chunks(self, chunk_actions: list) -> Iterator[np.ndarray]:
        """Chunks of frames continuing the current episode, then the env's next ones (reset without a
        seed continues its seeded randomness); a chunk that ends an episode is cut short there."""
        for a in chunk_actions:
            frames, ended = self.steps(a, self.fpc)
            if ended:
                self.env.reset()
            yield np.stack(frames)


# --------------------------------------------------------------------------- action following

@dataclass
class ActionTrial:
    """One start state of the action measure and the real env's rollout under each candidate from it."""
    seed: int
    prompt: str | None
    prefix: list                 # chunk actions from the context chunk to the start state, shared by all
    context: np.ndarray          # the last chunk of real frames at the start state: the model's context
    segments: list[np.ndarray]   # per candidate: the real frames of it held, [hold * fpc, H, W, 3]


def hold_last(frames: list[np.ndarray] | np.ndarray, n: int) -> np.ndarray:
    """n frames: these, then the last one held (an episode that ended shows its last frame)."""
    frames = np.asarray(frames)
    return np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), 0)])


def action_trial(real: RealEnv, seed: int, prefix: list, candidates: list, hold: int) -> ActionTrial:
    """Replay the env from `seed` through the prefix under each candidate held `hold` chunks."""
    start, ended = real.play(seed, prefix)
    if ended:
        raise EvalError(f"the episode from seed {seed} ended within the shared prefix; use a shorter "
                        f"--prefix-chunks")
    segments = []
    for action in candidates:
        replay, _ = real.play(seed, prefix + [action] * hold)
        if not np.array_equal(replay.frames[:len(start.frames)], start.frames):
            raise EvalError(f"{real.env.spec.id if real.env.spec else 'the env'} replayed seed {seed} into "
                            f"other frames: the action measure needs an env that replays from its seed")
        segments.append(hold_last(replay.frames[len(start.frames):], hold * real.fpc))
    context = np.concatenate([start.context, start.frames[1:]])[-real.fpc:]
    return ActionTrial(seed, start.prompt, prefix, context, segments)


def nearest(frames: np.ndarray, segments: list[np.ndarray]) -> int:
    """Index of the segment nearest to frames in mean squared error (the first one on a tie)."""
    return int(np.argmin([((frames.astype(np.float64) - s) ** 2).mean() for s in segments]))


def separability(trials: list[ActionTrial]) -> float:
    """Share of pairs of candidates whose real rollouts differ at all: the measure's ceiling is below
    100 % where actions leave the frames unchanged within the segment."""
    return float(np.mean([not np.array_equal(t.segments[i], t.segments[j])
                          for t in trials for i, j in combinations(range(len(t.segments)), 2)]))


def action_label(action):
    """An action as JSON: an int, or a list of numbers."""
    return np.asarray(action).tolist()


# --------------------------------------------------------------------------- the real side

@dataclass(kw_only=True)
class EnvSetting(Setting):
    """The real side of the game-agnostic evaluation of one env."""
    real: RealEnv
    hold: int                    # chunks each action is held
    candidates: list             # the actions of the action measure
    trials: list[ActionTrial] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.real.hw[1]}x{self.real.hw[0]} px, {self.fpc}-frame chunks"


def build_env_setting(env: gym.Env, args, hw: tuple[int, int], fpc: int, fps: float) -> EnvSetting:
    """Real rollouts of the env for models of this frame size, chunk length and fps, and what the measures
    score on them and on the copy-last-frame baseline."""
    space = env.action_space
    real = RealEnv(env, hw, args.resize, fpc, spec_of(env).noop())
    rng = np.random.default_rng(args.seed)
    per_episode = args.segments * args.hold_chunks
    plan = held(sampled_plan(space, rng, args.episodes * args.segments), args.hold_chunks)
    episodes = [real.play(args.seed + e, plan[e * per_episode:(e + 1) * per_episode])[0] for e in range(args.episodes)]
    s = EnvSetting(fpc=fpc, fps=fps, episodes=episodes,
                   horizons=usable_horizons(args.horizons, max(len(r.frames) for r in episodes) - 1),
                   real=real, hold=args.hold_chunks, candidates=candidate_actions(space, args.action_samples, rng))
    prefix_rng = np.random.default_rng(args.seed + ACTION_SEEDS)
    s.trials = [action_trial(real, args.seed + ACTION_SEEDS + i, sampled_plan(space, prefix_rng, args.prefix_chunks),
                             s.candidates, s.hold) for i in range(args.action_trials)]
    if args.drift_seconds > 0:
        add_drift_real(s, args)
    if s.trials:   # the real rollouts scored as a model's: what a model that replays the env scores
        truth = action_following(s, [t.segments for t in s.trials])
        s.ground_truth = {"action_following": truth["accuracy"], "action_chance": truth["chance"],
                          "action_separability": separability(s.trials)}
    s.baselines = {"copy last frame": evaluate_env(CopyLast(fpc), s, args)[0]}
    return s


def add_drift_real(s: EnvSetting, args) -> None:
    """The drift rollout's start and actions, and the real env's statistics on them."""
    n_chunks = drift_chunks(args, s)
    plan = sampled_plan(s.real.env.action_space, np.random.default_rng(args.seed + DRIFT_SEED),
                        -(-n_chunks // args.hold_chunks))
    s.drift_actions = held(plan, args.hold_chunks)[:n_chunks]
    s.drift_start, _ = s.real.play(args.seed + DRIFT_SEED, [])
    s.drift_real = segment_stats(s.real.chunks(s.drift_actions), segment_chunks(args, s))   # continues the start


# --------------------------------------------------------------------------- measures

def model_segments(gen, s: EnvSetting, trial: ActionTrial, speed: Speed) -> list[np.ndarray]:
    """The generator's rollout under each candidate held `hold` chunks, each from the trial's context."""
    out = []
    for action in s.candidates:
        gen.reset(prompt=trial.prompt, seed=trial.seed, context_frames=trial.context)
        out.append(speed.rollout(gen, [action] * s.hold))
    return out


def action_following(s: EnvSetting, rollouts: list[list[np.ndarray]]) -> dict:
    """Per trial and candidate, which real rollout the given rollout is nearest to: the confusion matrix
    (rows: the action given, columns: the nearest real rollout's action), accuracy and chance."""
    n = len(s.candidates)
    confusion = np.zeros((n, n), np.int64)
    for trial, generated in zip(s.trials, rollouts):
        for given, frames in enumerate(generated):
            confusion[given, nearest(frames, trial.segments)] += 1
    total = int(confusion.sum())
    return {"accuracy": float(np.trace(confusion) / total), "chance": 1 / n, "segments": total,
            "actions": [action_label(a) for a in s.candidates], "confusion": confusion.tolist()}


def evaluate_env(gen, s: EnvSetting, args) -> tuple[dict, dict]:
    """Every game-agnostic measure of one generator (a model or a baseline) -> (result, what the figures show)."""
    speed = Speed()
    frames = [generate(gen, r, speed) for r in s.episodes]
    fid, curve = fidelity(s, frames)
    result = {"fidelity": fid, "psnr_per_frame": curve.tolist()}
    if s.trials:
        result["action_following"] = action_following(s, [model_segments(gen, s, t, speed) for t in s.trials])
    if s.drift_actions:
        result["drift"] = drift(gen, s, speed, args)
    return result | speed.as_result(), {"frames": frames, "switch": {}}
