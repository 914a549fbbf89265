"""`streamvideo eval --model M [--model M2 ...] [--env ENV_ID]`: world models against the real env and baselines.

Any Gymnasium env that renders rgb_array (`--env`, `--env-arg KEY=VALUE`) gets the game-agnostic measures
of agnostic.py: fidelity against the copy-last-frame baseline, action following by nearest real
rollout, drift and speed. The built-in game (`StreamVideoGame-v0`, the default) gets its own measures,
below, unless `--agnostic` asks for the agnostic ones there too.

On the built-in game, every model (teacher or student alike, through its StreamGenerator) and two baselines
that are no world model -- "copy last frame" (the last real context frame, held still) and "theme mean
frame" (the mean real frame of the prompt's theme, switched with the prompt: a palette painter) -- get the
same real start frames, prompts and actions, on held-out seeds (`--seed`, default 1000; collect records
from seed 0). Measures (eval.json keys):
- fidelity: PSNR / SSIM per generated frame against the real game, averaged over the first 8 / 16 /
  32 / 64 frames (`--horizons`) of `--episodes` episodes of `--segments` held actions each.
- action_following: each action is held `--hold-chunks` chunks; the plan cycles through seeded
  shuffles of all six actions (no-op, up, down, left, right, plant), so each is held equally often.
  The ActionDetector reads every segment's frames (walk direction from avatar motion plus scrolling,
  a new flower next to the avatar, or neither) and is scored against what the game did; "chance" is
  the most common answer's share.
- avatar_presence: share of generated frames with the avatar drawn where the game draws it
  (the game's avatar sprites matched within 3 px of info["avatar_screen_xy"]).
- prompt_following: the theme is switched mid-stream (`set_prompt`, without and with recache=True);
  share of the frames from 2 chunks after the switch that the ThemeClassifier (nearest colour
  histogram of real frames of either theme) reads as the new theme.
- memory: turn, plant a flower, walk `--memory-chunks` chunks away and back: share of trials with the
  flower at the game's spot right after planting ("planted") and at the end ("remembered").
- drift: one `--drift-seconds` rollout (default 10 minutes): per `--segment-seconds` saturation,
  sharpness, frame change and pixel std, slopes in % of the first segment per minute, and a collapse
  check: the generated pixel std over the real game's on the same actions (collapsed below 0.5).
- speed: FPS and NFE per chunk over every generated chunk, at `--threads` torch threads.
- ground_truth: each detector on real frames (action accuracy and chance, avatar presence on real
  frames, on frames with the avatar painted out and on theme-mean frames, theme accuracy, memory with
  and without a planted flower), so a model's number can be read against what the detector can do.
Themes: the model folder's streamvideo.json "prompts" (each mapped to its game theme), else themes 0
and 1; episodes cycle through them; the switch goes from the first to the first with another ground.
Writes OUT/<model>/eval.json, contact_sheet.png (per episode: real over generated at frames 1, 4, 8,
16, 32, 64), prompt_switch.png (the game), eval.png (PSNR curves, drift) and OUT/table.md
(docs/evaluation.md). The detectors live in detectors.py, the real game's rollouts in game.py,
the figures in report.py.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.collect import DEFAULT_RESIZE, RESIZE_METHODS
from ..envs.game.env import ACTION_MEANINGS, StreamVideoGameEnv
from ..envs.game.themes import N_THEMES, theme
from .agnostic import (
    DRIFT_SEED,
    CopyLast,
    EvalError,
    Setting,
    Speed,
    build_env_setting,
    check_model_fits_env,
    drift,
    drift_chunks,
    env_kwargs,
    evaluate_env,
    fidelity,
    generate,
    held,
    open_env,
    segment_chunks,
    segment_stats,
    usable_horizons,
)
from .detectors import NOOP, PLANT, ActionDetector, ThemeClassifier, avatar_present, flower_present
from .game import (
    Real,
    action_plan,
    effect,
    flower_xy,
    make_game,
    memory_plan,
    play,
    switch_themes,
    without_avatar,
)
from .report import contact_sheet, plot, switch_sheet, table_row, write_table

# held-out seed blocks of the game (added to --seed; agnostic.py holds DRIFT_SEED and ACTION_SEEDS)
MEMORY_SEEDS, SWITCH_SEEDS, REFERENCE_SEEDS = 200, 300, 500
BASELINES = ("copy last frame", "theme mean frame")


# --------------------------------------------------------------------------- models and their themes

def resolve_model(name: str) -> tuple[str, dict]:
    """A model name -> (what streamvideo.load takes, its streamvideo.json; {} for tiny-random)."""
    from ..engine.presets import MODEL_FILE, PACKAGE_WEIGHTS
    if name == "tiny-random":
        return name, {}
    folder = PACKAGE_WEIGHTS / name if (PACKAGE_WEIGHTS / name / MODEL_FILE).exists() else Path(name)
    if not (folder / MODEL_FILE).exists():
        raise EvalError(f"no model {name!r}: expected 'default', 'tiny-random' or a folder with {MODEL_FILE}")
    return str(folder), json.loads((folder / MODEL_FILE).read_text())


def model_themes(name: str, meta: dict) -> list[int]:
    """The game themes the model was trained on: its "prompts", else themes 0 and 1."""
    if not meta.get("prompts"):
        return [0, 1]
    by_prompt = {theme(i).prompt: i for i in range(N_THEMES)}
    unknown = [p for p in meta["prompts"] if p not in by_prompt]
    if unknown:
        raise EvalError(f"{name}: prompt {unknown[0]!r} is not the prompt of a game theme")
    return list(dict.fromkeys(by_prompt[p] for p in meta["prompts"]))


def out_names(models: list[str]) -> list[str]:
    """Folder names under OUT: runs/distill/model -> distill; repeats get -2, -3."""
    names, seen = [], Counter()
    for m in models:
        path = Path(m.rstrip("/"))
        base = path.parent.name if path.name == "model" and path.parent.name else path.name
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


# --------------------------------------------------------------------------- the game's real side, per setting

class ThemeMean(CopyLast):
    """Baseline: the mean real frame of the prompt's theme (a palette painter that follows prompts)."""

    def __init__(self, frames_per_chunk: int, means: dict[str, np.ndarray]):
        super().__init__(frames_per_chunk)
        self.means = means

    def reset(self, prompt: str, seed: int, context_frames: np.ndarray) -> None:
        self.frame = self.means[prompt]

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        self.frame = self.means[prompt]


@dataclass(kw_only=True)
class GameSetting(Setting):
    """The real game's side of the evaluation, shared by the models with the same frame size, chunk length
    and trained themes: besides the shared real side, the memory and switch rollouts, the themes' mean
    frames, the classifier and the detectors' scores."""
    game: StreamVideoGameEnv
    themes: list[int]
    seg: int                                  # frames per held-action segment
    context: int                              # real frames the models start from (--context-chunks chunks)
    shift: int                                # pixels a held walk moves the avatar
    memory: list[Real]
    switch: list[Real]                        # starts in the old theme, no-ops before and after the switch
    switch_themes: tuple[int, int] | None
    means: dict[str, np.ndarray] = field(default_factory=dict)   # prompt -> mean real frame
    classifier: ThemeClassifier | None = None

    def label(self) -> str:
        return f"themes {', '.join(map(str, self.themes))}"


def build_setting(args, size: int, fpc: int, fps: float, themes: list[int],
                  env_args: dict | None = None) -> GameSetting:
    game = make_game(args.env, size, themes, env_args)
    hold, seg, context = args.hold_chunks, args.hold_chunks * fpc, args.context_chunks * fpc
    plan = action_plan(np.random.default_rng(args.seed), args.episodes * args.segments)
    per_episode = [held(plan[e * args.segments:(e + 1) * args.segments], hold) for e in range(args.episodes)]
    episodes = [play(game, args.seed + e, themes[e % len(themes)], fpc, acts, context)
                for e, acts in enumerate(per_episode)]
    memory = []
    for i in range(args.memory_trials):
        seed, t = args.seed + MEMORY_SEEDS + i, themes[i % len(themes)]
        memory.append(play(game, seed, t, fpc, memory_plan(game, seed, t, fpc, args.memory_chunks), context))
    pair = switch_themes(themes) if args.switch_trials else None
    switch = [play(game, args.seed + SWITCH_SEEDS + i, pair[0], fpc, [NOOP] * 2 * args.switch_chunks, context)
              for i in range(args.switch_trials if pair else 0)]
    length = args.segments * seg     # generated frames per episode: longer horizons cannot be scored
    s = GameSetting(game=game, themes=themes, fpc=fpc, seg=seg, context=context, shift=seg * game.speed, fps=fps,
                    horizons=usable_horizons(args.horizons, length), episodes=episodes, memory=memory,
                    switch=switch, switch_themes=pair)
    add_references(s, args, per_episode[0])
    if args.drift_seconds > 0:
        add_drift_real(s, args)
    s.ground_truth = ground_truth(s)
    s.baselines = {name: evaluate(gen, s, args)[0] for name, gen in
                   zip(BASELINES, (CopyLast(fpc), ThemeMean(fpc, s.means)))}
    return s


def add_references(s: GameSetting, args, chunk_actions: list[int]) -> None:
    """Mean real frame of every theme played, and the theme classifier of the switch, from `--references`
    real rollouts per theme on seeds of their own."""
    played = [r.theme for r in s.episodes + s.memory] + list(s.switch_themes or []) + s.themes[:1]
    references = {}
    for t in dict.fromkeys(played):
        frames = np.concatenate([play(s.game, args.seed + REFERENCE_SEEDS + r, t, s.fpc, chunk_actions).frames
                                 for r in range(args.references)])
        s.means[theme(t).prompt] = frames.mean(0).round().astype(np.uint8)
        if t in (s.switch_themes or ()):
            references[t] = frames
    if s.switch_themes:
        s.classifier = ThemeClassifier({t: references[t] for t in s.switch_themes})


def add_drift_real(s: GameSetting, args) -> None:
    """The drift rollout's start and actions, and the real game's statistics on them."""
    n_chunks = drift_chunks(args, s)
    plan = action_plan(np.random.default_rng(args.seed + DRIFT_SEED), -(-n_chunks // args.hold_chunks))
    s.drift_actions = held(plan, args.hold_chunks)[:n_chunks]
    s.drift_start = play(s.game, args.seed + DRIFT_SEED, s.themes[0], s.fpc, [], s.context)
    chunks = (np.stack([s.game.step(a)[0] for _ in range(s.fpc)]) for a in s.drift_actions)  # continues the start
    s.drift_real = segment_stats(chunks, segment_chunks(args, s))


def ground_truth(s: GameSetting) -> dict:
    """Every detector on real frames: where it must succeed and where it must fail."""
    real = [r.frames for r in s.episodes]
    means = [np.repeat(s.means[r.prompt][None], len(r.frames), 0) for r in s.episodes]
    action = action_following(s, real)
    gt = {"action_following": action["accuracy"], "action_chance": action["chance"],
          "action_per_label": action["per_label"],
          "avatar_presence": avatar_presence(s.episodes, real),
          "avatar_presence_avatar_removed": avatar_presence(s.episodes, [without_avatar(r) for r in s.episodes]),
          "avatar_presence_theme_mean": avatar_presence(s.episodes, means)}
    if s.classifier:   # walks of both themes from the switch trials' seeds
        walk = s.episodes[0].chunk_actions
        hits = [s.classifier(play(s.game, r.seed, t, s.fpc, walk, s.context).frames) == t
                for r in s.switch for t in s.switch_themes]
        gt["theme_classifier"] = float(np.mean(hits))
    if s.memory:
        no_plant = [play(s.game, r.seed, r.theme, s.fpc, [NOOP if a == PLANT else a for a in r.chunk_actions],
                         s.context) for r in s.memory]
        gt["memory_with_flower"] = memory(s, [r.frames for r in s.memory])
        gt["memory_without_flower"] = memory(s, [r.frames for r in no_plant])
    return gt


# --------------------------------------------------------------------------- the game's measures

def action_following(s: GameSetting, frames: list[np.ndarray]) -> dict:
    """The detector's reading of each held-action segment against what the game did."""
    hits, totals = Counter(), Counter()
    # frames read at most half a frame of walking apart (a divisor of the segment, so its last frame is read),
    # so a fast walk's scroll is matched, not lost off the frame
    half = s.game.config.size // 2
    stride = max([d for d in range(1, s.seg + 1) if s.seg % d == 0 and d * s.game.speed <= half] or [1])
    for real, f in zip(s.episodes, frames):
        detector = ActionDetector(real.sprites, s.shift, stride * s.game.speed)
        for i in range((len(f) - 1) // s.seg):
            label = effect(real, i * s.seg, (i + 1) * s.seg, detector.threshold)
            totals[label] += 1
            hits[label] += detector.read(list(f[i * s.seg:(i + 1) * s.seg + 1:stride])) == label
    n = sum(totals.values())
    return {"accuracy": sum(hits.values()) / n, "chance": max(totals.values()) / n, "segments": n,
            "per_label": {ACTION_MEANINGS[a]: f"{hits[a]}/{totals[a]}" for a in sorted(totals)}}


def avatar_presence(reals: list[Real], frames: list[np.ndarray]) -> float:
    """Share of frames (after the start frame) with the avatar where the game draws it."""
    found = [avatar_present(f, r.sprites, xy) for r, fs in zip(reals, frames) for f, xy in zip(fs[1:], r.screen[1:])]
    return float(np.mean(found))


def memory(s: GameSetting, frames: list[np.ndarray]) -> dict:
    """Memory trials: the flower at the game's spot when the plant chunk ends, and at the end of the walk back."""
    planted = 2 * s.fpc          # chunks: turn, plant, away..., back...
    at = lambda r, f, i: flower_present(f[i], r.sprites, flower_xy(r, i))
    return {"planted": float(np.mean([at(r, f, planted) for r, f in zip(s.memory, frames)])),
            "remembered": float(np.mean([at(r, f, len(f) - 1) for r, f in zip(s.memory, frames)]))}


def prompt_following(gen, s: GameSetting, speed: Speed, recache: bool) -> tuple[dict, list[np.ndarray]]:
    """Switch the prompt from the old theme's to the new one's mid-stream; the classifier's reading of the
    frames before the switch and from 2 chunks after it. Also the last frame of each chunk of trial 0."""
    old, new = s.switch_themes
    n = len(s.switch[0].chunk_actions) // 2
    before, after, sheet = [], [], []
    for k, real in enumerate(s.switch):
        gen.reset(prompt=real.prompt, seed=real.seed, context_frames=real.context)
        pre = speed.rollout(gen, real.chunk_actions[:n])
        gen.set_prompt(theme(new).prompt, recache=recache)
        post = speed.rollout(gen, real.chunk_actions[n:])
        before.append(s.classifier(pre) == old)
        after.append(s.classifier(post[2 * s.fpc:]) == new)
        if k == 0:
            sheet = list(np.concatenate([pre, post])[s.fpc - 1::s.fpc])
    return {"new_theme_after": float(np.mean(after)), "old_theme_before": float(np.mean(before))}, sheet


def supports_recache(gen) -> bool:
    """Recache re-encodes the window from the stored cache inputs of diagonal mode, which a model
    distilled with a clean (or t_c) KV cache does not keep."""
    return getattr(getattr(gen, "rollout", None), "kv_noise", None) is None


def evaluate(gen, s: GameSetting, args) -> tuple[dict, dict]:
    """Every measure of one generator (a model or a baseline) on the game -> (result, what the figures show)."""
    speed = Speed()
    frames = [generate(gen, r, speed) for r in s.episodes]
    fid, curve = fidelity(s, frames)
    result = {"fidelity": fid, "psnr_per_frame": curve.tolist(), "action_following": action_following(s, frames),
              "avatar_presence": avatar_presence(s.episodes, frames)}
    figures = {"frames": frames, "switch": {}}
    if s.switch:
        result["prompt_following"] = {}
        for recache in (False, True):
            key = "recache" if recache else "no_recache"
            if recache and not supports_recache(gen):
                result["prompt_following"][key] = None   # shown as "-" in table.md
                continue
            result["prompt_following"][key], figures["switch"][key] = prompt_following(gen, s, speed, recache)
    if s.memory:
        result["memory"] = memory(s, [generate(gen, r, speed) for r in s.memory])
    if s.drift_actions:
        result["drift"] = drift(gen, s, speed, args)
    return result | speed.as_result(), figures


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True,
                        help="model folder, 'default' or 'tiny-random'; repeat to compare several in one table")
    parser.add_argument("--env", default=None,
                        help="Gymnasium id of any env that renders rgb_array ('module:Name-v0' imports module "
                             "first); the built-in game StreamVideoGame-v0 gets its game-specific measures "
                             "(default: the env the model's data came from, with its settings, as its folder "
                             "records them; else the built-in game)")
    parser.add_argument("--resize", choices=RESIZE_METHODS, default=DEFAULT_RESIZE,
                        help=f"how renders are fitted to the model's frame size: the --resize the data was "
                             f"collected with (default {DEFAULT_RESIZE}, collect's)")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for gym.make, VALUE parsed as JSON when it can be (repeatable); "
                             "it overrides the setting the model's folder records")
    parser.add_argument("--agnostic", action="store_true",
                        help="evaluate the built-in game with the game-agnostic measures, as any other env")
    parser.add_argument("--episodes", type=int, default=8, help="fidelity (and, on the game, action) episodes")
    parser.add_argument("--segments", type=int, default=6, help="held-action segments per episode")
    parser.add_argument("--hold-chunks", type=int, default=4, help="chunks each action is held for")
    parser.add_argument("--context-chunks", type=int, default=1,
                        help="game: chunks of real no-op frames every rollout starts from (the attention window "
                             "holds 1 sink + 2 previous chunks: up to 3 are read)")
    parser.add_argument("--horizons", default="8,16,32,64", help="frame horizons of the fidelity averages")
    parser.add_argument("--action-trials", type=int, default=8,
                        help="start states of the agnostic action measure (0 = skip)")
    parser.add_argument("--action-samples", type=int, default=4,
                        help="agnostic action measure: sampled actions of a non-Discrete action space")
    parser.add_argument("--prefix-chunks", type=int, default=1,
                        help="agnostic action measure: chunks of seeded random actions before the candidates")
    parser.add_argument("--memory-trials", type=int, default=8, help="game: plant-walk-return trials (0 = skip)")
    parser.add_argument("--memory-chunks", type=int, default=2, help="game: chunks walked away (and back) in a trial")
    parser.add_argument("--switch-trials", type=int, default=4,
                        help="game: prompt-switch trials per recache (0 = skip)")
    parser.add_argument("--switch-chunks", type=int, default=8, help="game: chunks generated before and after a switch")
    parser.add_argument("--references", type=int, default=8, help="game: real rollouts per theme for its mean frame")
    parser.add_argument("--drift-seconds", type=float, default=600.0, help="length of the drift rollout (0 = skip)")
    parser.add_argument("--segment-seconds", type=float, default=10.0, help="drift statistics per segment")
    parser.add_argument("--seed", type=int, default=1000, help="first seed (held out from collect's 0, 1, ...)")
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def check_args(args) -> None:
    try:
        args.horizons = sorted({int(h) for h in args.horizons.split(",")})
    except ValueError:
        raise EvalError(f"--horizons must be comma-separated frame counts, got {args.horizons!r}") from None
    for flag in ("episodes", "segments", "hold_chunks", "context_chunks", "memory_chunks", "references", "threads"):
        if getattr(args, flag) < 1:
            raise EvalError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    for flag in ("memory_trials", "switch_trials", "drift_seconds", "action_trials", "prefix_chunks"):
        if getattr(args, flag) < 0:
            raise EvalError(f"--{flag.replace('_', '-')} must be 0 (skip) or more, got {getattr(args, flag)}")
    if args.action_samples < 2:
        raise EvalError(f"--action-samples must be at least 2 (actions to tell apart), got {args.action_samples}")
    if args.segment_seconds <= 0 or min(args.horizons) < 1:
        raise EvalError("--segment-seconds and --horizons must be positive")
    if 0 < args.drift_seconds < args.segment_seconds:
        raise EvalError(f"--drift-seconds ({args.drift_seconds:g}) must be at least --segment-seconds "
                        f"({args.segment_seconds:g}): drift is measured per segment")


def check_game_args(args) -> None:
    if args.episodes * args.segments < len(ACTION_MEANINGS):
        raise EvalError(f"--episodes x --segments must be at least {len(ACTION_MEANINGS)} to hold every action")
    if args.switch_trials and args.switch_chunks < 3:
        raise EvalError("--switch-chunks must be at least 3: the switch is judged from 2 chunks after it")


def check_agnostic_args(args) -> None:
    if args.context_chunks != 1:
        raise EvalError("--context-chunks is a measure of the built-in game; other envs start from one chunk")


def load_generator(source: str, meta: dict):
    from ..engine.presets import load
    try:
        return load(source, device="cpu", kv_noise=meta.get("kv_noise"))
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        raise EvalError(f"cannot load {source}: {err}") from None


def game_setting(gen, source: str, themes: list[int], args, env_args: dict, settings: dict) -> GameSetting:
    """The game's real side for this model, shared with the models of the same frame size, chunks and themes."""
    if gen.height != gen.width or gen.height % 8 or gen.height < 32:
        raise EvalError(f"{source}: frames are {gen.height}x{gen.width}; the game renders square sizes, "
                        f"multiples of 8 from 32")
    key = (gen.height, gen.frames_per_chunk, gen.fps, tuple(themes))
    if key not in settings:
        settings[key] = build_setting(args, gen.height, gen.frames_per_chunk, gen.fps, themes, env_args)
    return settings[key]


def env_setting(gen, source: str, env, args, settings: dict) -> Setting:
    """The env's real side for this model, shared with the models of the same frame size and chunks."""
    check_model_fits_env(gen, env, source, args.env)
    key = (gen.height, gen.width, gen.frames_per_chunk, gen.fps)
    if key not in settings:
        settings[key] = build_env_setting(env, args, (gen.height, gen.width), gen.frames_per_chunk, gen.fps)
    return settings[key]


def write_outputs(folder: Path, name: str, result: dict, s: Setting, figures: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.json").write_text(json.dumps(result, indent=2))
    contact_sheet(folder / "contact_sheet.png", s, figures["frames"])
    if figures["switch"]:
        switch_sheet(folder / "prompt_switch.png", figures["switch"])
    curves = {name: result["psnr_per_frame"]} | {b: r["psnr_per_frame"] for b, r in s.baselines.items()}
    plot(folder / "eval.png", curves, result.get("drift"))


def recorded_env(args, metas: list[dict]) -> tuple[str, dict]:
    """The env to evaluate on and its kwargs: --env, else the one the models' folders record (the env their data
    came from), else the built-in game; the recorded settings of that env, overridden by --env-arg."""
    recorded = [m["env"] for m in metas if m.get("env")]
    ids = sorted({r["id"] for r in recorded})
    if args.env is None and len(ids) > 1:
        raise EvalError(f"the models were trained on different envs ({', '.join(ids)}): pass --env")
    env_id = args.env or (ids[0] if ids else "StreamVideoGame-v0")
    settings = next((r["kwargs"] for r in recorded if r["id"] == env_id), {})
    return env_id, {**settings, **env_kwargs(args.env_arg)}


def run(args: argparse.Namespace) -> int:
    check_args(args)
    resolved = [resolve_model(m) for m in args.model]
    args.env, kwargs = recorded_env(args, [meta for _, meta in resolved])
    env = open_env(args.env, kwargs)
    on_game = isinstance(env.unwrapped, StreamVideoGameEnv) and not args.agnostic
    check_game_args(args) if on_game else check_agnostic_args(args)
    torch.set_num_threads(args.threads)
    print(f"streamvideo eval: torch CPU threads = {args.threads}; env {args.env} {json.dumps(kwargs)}", flush=True)
    # every model name and its prompts are checked before any work
    models = [(source, meta, model_themes(source, meta) if on_game else None) for source, meta in resolved]
    out = Path(args.out)
    settings, results = {}, {}
    try:
        for name, (source, meta, themes) in zip(out_names(args.model), models):
            print(f"streamvideo eval: {name} ({source})", flush=True)
            gen = load_generator(source, meta)
            if on_game:   # the game is made per setting, at the model's frame size and themes
                s = game_setting(gen, source, themes, args, kwargs, settings)
                (result, figures), about = evaluate(gen, s, args), {"themes": themes}
            else:
                s = env_setting(gen, source, env, args, settings)
                (result, figures), about = evaluate_env(gen, s, args), {
                    "env": args.env, "env_args": kwargs,
                    "real_episode_frames": [len(r.frames) - 1 for r in s.episodes]}   # fewer where one ended
            result = {"model": source, "role": meta.get("role"), **about, "args": vars(args), **result,
                      "ground_truth": s.ground_truth, "baselines": s.baselines}
            write_outputs(out / name, name, result, s, figures)
            results[name] = (result, s)
            print(table_row(name, result))
    finally:
        env.close()
    write_table(out / "table.md", results, args.threads)
    print((out / "table.md").read_text())
    return 0
