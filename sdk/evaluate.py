"""`streamvideo eval --model M [--model M2 ...]`: world models against the real game and two baselines.

Every model (teacher or student alike, through its StreamGenerator) and two baselines that are no world
model -- "copy last frame" (the last real context frame, held still) and "theme mean frame" (the mean
real frame of the prompt's theme: a palette painter that follows prompts) -- get the same real start
frames, prompts and actions, on held-out seeds (`--seed`, default 1000; collect records from seed 0).
Measures (eval.json keys):
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
16, 32, 64), prompt_switch.png, eval.png (PSNR curves, drift) and OUT/table.md (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .collect import CollectError, make_env
from .envs.game import ACTION_MEANINGS, StreamVideoGameEnv
from .envs.game_themes import N_THEMES, theme
from .eval_detectors import (
    NOOP,
    PLANT,
    ActionDetector,
    Sprites,
    ThemeClassifier,
    avatar_present,
    direction,
    flower_present,
    frame_stats,
    psnr,
    slope_percent_per_minute,
    ssim,
)

# held-out seed blocks (added to --seed), so no two measures replay the same episode
MEMORY_SEEDS, SWITCH_SEEDS, DRIFT_SEED, REFERENCE_SEEDS = 200, 300, 400, 500
SHEET_FRAMES = (1, 4, 8, 16, 32, 64)
COLLAPSE_RATIO = 0.5   # generated pixel std below half the real game's: a flat, collapsed picture
BASELINES = ("copy last frame", "theme mean frame")


class EvalError(SystemExit):
    """A one-line error for the command line."""

    def __init__(self, message: str):
        super().__init__(f"streamvideo eval: {message}")


# --------------------------------------------------------------------------- models and their themes

def resolve_model(name: str) -> tuple[str, dict]:
    """A model name -> (what streamvideo.load takes, its streamvideo.json; {} for tiny-random)."""
    from .presets import MODEL_FILE, PACKAGE_WEIGHTS
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


# --------------------------------------------------------------------------- the real game

@dataclass
class Real:
    """A real rollout: context frames (no-ops), then one frame per action. Arrays over frames start with
    the last context frame (index 0), so segment i of `seg` frames runs from frame i*seg to (i+1)*seg."""
    seed: int
    theme: int
    prompt: str
    chunk_actions: list[int]
    context: np.ndarray                  # [fpc, H, W, 3]
    frames: np.ndarray                   # [T + 1, H, W, 3]
    screen: np.ndarray                   # [T + 1, 2] avatar centre on screen
    camera: np.ndarray                   # [T + 1, 2] view's top-left in the world
    avatar: np.ndarray                   # [T + 1, 2] avatar centre in the world
    flowers: list[frozenset]             # planted flower spots (world) after each frame
    world: np.ndarray                    # the world image at the end (background, flowers)
    sprites: Sprites


def play(game, seed: int, theme_index: int, fpc: int, chunk_actions: list[int]) -> Real:
    frame, info = game.reset(seed=seed, options={"theme": theme_index})
    context = [frame]
    for _ in range(fpc - 1):
        frame, *_, info = game.step(NOOP)
        context.append(frame)
    frames, infos, flowers = [frame], [info], [frozenset(game.flowers)]
    for a in chunk_actions:
        for _ in range(fpc):
            frame, *_, info = game.step(a)
            frames.append(frame)
            infos.append(info)
            flowers.append(frozenset(game.flowers))
    column = lambda key: np.array([i[key] for i in infos])
    return Real(seed, theme_index, info["prompt"], chunk_actions, np.stack(context), np.stack(frames),
                column("avatar_screen_xy"), column("camera_xy"), column("avatar_xy"), flowers,
                game.world.copy(), Sprites(game))


def action_plan(rng: np.random.Generator, n: int) -> list[int]:
    """n held actions: seeded shuffles of all six, one after another, so every action is held about n/6
    times. A shuffle that would plant right after a no-op or a plant is drawn again: the flower would
    land on the spot planted before and no frame could show it as new."""
    plan: list[int] = []
    while len(plan) < n:
        seq = plan + [int(a) for a in rng.permutation(len(ACTION_MEANINGS))]
        if not any(b == PLANT and a in (NOOP, PLANT) for a, b in zip(seq, seq[1:])):
            plan = seq
    return plan[:n]


def effect(real: Real, i0: int, i1: int, threshold: float) -> int:
    """What the game did from frame i0 to i1: the walk's direction, a plant (a new flower spot in view) or
    nothing. A walk into the world's edge moves the avatar less than `threshold`, and a flower planted past
    it is never drawn: both count as nothing."""
    move = real.avatar[i1] - real.avatar[i0]
    if np.abs(move).max() >= threshold:
        return direction(move)
    half, size = real.sprites.flower[1].shape[0] // 2, real.frames.shape[1]
    in_view = [np.all((xy >= half) & (xy <= size - half)) for xy in
               np.array(list(real.flowers[i1] - real.flowers[i0])).reshape(-1, 2) - real.camera[i1]]
    return PLANT if any(in_view) else NOOP


def memory_plan(game, seed: int, theme_index: int, fpc: int, away: int) -> list[int]:
    """Chunk actions of a memory trial: turn towards the middle of the screen (vertically), plant, walk
    `away` chunks towards the middle of the world (horizontally) and as many back, so the flower stays
    in view, off the avatar's path, and the walk is never stopped by the world's edge."""
    start = play(game, seed, theme_index, fpc, [])
    turn = 2 if start.screen[0][1] < game.config.size / 2 else 1
    out, back = (4, 3) if start.avatar[0][0] < game.config.world_size / 2 else (3, 4)
    return [turn, PLANT] + [out] * away + [back] * away


def flower_xy(real: Real, frame: int) -> np.ndarray:
    """Screen position of the (one) flower planted in a memory trial, at a given frame."""
    (spot,) = real.flowers[-1]
    return np.array(spot) - real.camera[frame]


def without_avatar(real: Real) -> np.ndarray:
    """The real frames with the avatar's tile painted over with the world behind it."""
    frames, tile, size = real.frames.copy(), real.sprites.tile, real.frames.shape[1]
    for f, (x, y), (cx, cy) in zip(frames, real.screen - tile // 2, real.camera):
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + tile, size), min(y + tile, size)
        f[y0:y1, x0:x1] = real.world[cy + y0:cy + y1, cx + x0:cx + x1]
    return frames


# --------------------------------------------------------------------------- what is evaluated

class CopyLast:
    """Baseline: the last real context frame held still (ignores actions and prompts)."""

    def __init__(self, frames_per_chunk: int):
        self.frames_per_chunk = frames_per_chunk

    def reset(self, prompt: str, seed: int, context_frames: np.ndarray) -> None:
        self.frame = context_frames[-1]

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        pass

    def step(self, action: int):
        return SimpleNamespace(frames=np.repeat(self.frame[None], self.frames_per_chunk, 0), nfe=0, seconds=0.0)


class ThemeMean(CopyLast):
    """Baseline: the mean real frame of the prompt's theme (a palette painter that follows prompts)."""

    def __init__(self, frames_per_chunk: int, means: dict[str, np.ndarray]):
        super().__init__(frames_per_chunk)
        self.means = means

    def reset(self, prompt: str, seed: int, context_frames: np.ndarray) -> None:
        self.frame = self.means[prompt]

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        self.frame = self.means[prompt]


@dataclass
class Speed:
    chunks: int = 0
    frames: int = 0
    nfe: float = 0
    seconds: float = 0.0

    def rollout(self, gen, actions: list[int]) -> np.ndarray:
        out = []
        for a in actions:
            chunk = gen.step(a)
            self.chunks, self.frames = self.chunks + 1, self.frames + len(chunk.frames)
            self.nfe, self.seconds = self.nfe + chunk.nfe, self.seconds + chunk.seconds
            out.append(chunk.frames)
        return np.concatenate(out)


def generate(gen, real: Real, speed: Speed) -> np.ndarray:
    """The generator's frames for a real rollout, from its context, indexed like real.frames."""
    gen.reset(prompt=real.prompt, seed=real.seed, context_frames=real.context)
    return np.concatenate([real.frames[:1], speed.rollout(gen, real.chunk_actions)])


# --------------------------------------------------------------------------- the real side, per setting

@dataclass
class Setting:
    """The real game's side of the evaluation, shared by the models with the same frame size, chunk length
    and trained themes: real rollouts, the themes' mean frames, the classifier and the detectors' scores."""
    game: object
    themes: list[int]
    fpc: int
    seg: int                                  # frames per held-action segment
    shift: int                                # pixels a held walk moves the avatar
    fps: float
    horizons: list[int]
    episodes: list[Real]
    memory: list[Real]
    switch: list[Real]                        # starts in the old theme, no-ops before and after the switch
    switch_themes: tuple[int, int] | None
    means: dict[str, np.ndarray] = field(default_factory=dict)   # prompt -> mean real frame
    classifier: ThemeClassifier | None = None
    drift_start: Real | None = None
    drift_actions: list[int] = field(default_factory=list)
    drift_real: list[dict] = field(default_factory=list)         # the real game's statistics per segment
    ground_truth: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)


def make_game(env_id: str, size: int, themes: list[int]):
    try:
        game = make_env(env_id, {"size": size, "themes": themes}).unwrapped
    except CollectError as err:
        raise EvalError(f"{err} (eval needs the built-in game, StreamVideoGame-v0)") from None
    if not isinstance(game, StreamVideoGameEnv):
        raise EvalError(f"{env_id!r} is not the built-in game: eval reads its sprites and state")
    return game


def switch_themes(themes: list[int]) -> tuple[int, int] | None:
    """From the first theme to the first with another ground (the biggest change of colour), if any."""
    if len(themes) < 2:
        return None
    other = [t for t in themes[1:] if theme(t).ground != theme(themes[0]).ground]
    return themes[0], (other or themes[1:])[0]


def build_setting(args, size: int, fpc: int, fps: float, themes: list[int]) -> Setting:
    game = make_game(args.env, size, themes)
    hold, seg = args.hold_chunks, args.hold_chunks * fpc
    held = action_plan(np.random.default_rng(args.seed), args.episodes * args.segments)
    per_episode = [[a for a in plan for _ in range(hold)] for plan in
                   (held[e * args.segments:(e + 1) * args.segments] for e in range(args.episodes))]
    episodes = [play(game, args.seed + e, themes[e % len(themes)], fpc, acts) for e, acts in enumerate(per_episode)]
    memory = []
    for i in range(args.memory_trials):
        seed, t = args.seed + MEMORY_SEEDS + i, themes[i % len(themes)]
        memory.append(play(game, seed, t, fpc, memory_plan(game, seed, t, fpc, args.memory_chunks)))
    pair = switch_themes(themes) if args.switch_trials else None
    switch = [play(game, args.seed + SWITCH_SEEDS + i, pair[0], fpc, [NOOP] * 2 * args.switch_chunks)
              for i in range(args.switch_trials if pair else 0)]
    length = args.segments * seg     # generated frames per episode: longer horizons cannot be scored
    s = Setting(game, themes, fpc, seg, seg * game.speed, fps, [h for h in args.horizons if h <= length] or [length],
                episodes, memory, switch, pair)
    add_references(s, args, per_episode[0])
    if args.drift_seconds > 0:
        add_drift_real(s, args)
    s.ground_truth = ground_truth(s)
    s.baselines = {name: evaluate(gen, s, args)[0] for name, gen in
                   zip(BASELINES, (CopyLast(fpc), ThemeMean(fpc, s.means)))}
    return s


def add_references(s: Setting, args, chunk_actions: list[int]) -> None:
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


def add_drift_real(s: Setting, args) -> None:
    """The drift rollout's start and actions, and the real game's statistics on them."""
    n_chunks = int(args.drift_seconds * s.fps) // s.fpc
    held = action_plan(np.random.default_rng(args.seed + DRIFT_SEED), -(-n_chunks // args.hold_chunks))
    s.drift_actions = [a for a in held for _ in range(args.hold_chunks)][:n_chunks]
    s.drift_start = play(s.game, args.seed + DRIFT_SEED, s.themes[0], s.fpc, [])
    chunks = (np.stack([s.game.step(a)[0] for _ in range(s.fpc)]) for a in s.drift_actions)  # continues the start
    s.drift_real = segment_stats(chunks, segment_chunks(args, s))


def segment_chunks(args, s: Setting) -> int:
    return max(1, int(args.segment_seconds * s.fps) // s.fpc)


def segment_stats(chunks, per_segment: int) -> list[dict]:
    """frame_stats of every `per_segment` chunks of a stream of chunks."""
    segments, buf = [], []
    for chunk in chunks:
        buf.append(chunk)
        if len(buf) == per_segment:
            segments.append(frame_stats(np.concatenate(buf)))
            buf = []
    return segments


def ground_truth(s: Setting) -> dict:
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
        gt["theme_classifier"] = float(np.mean([s.classifier(play(s.game, r.seed, t, s.fpc, walk).frames) == t
                                                for r in s.switch for t in s.switch_themes]))
    if s.memory:
        no_plant = [play(s.game, r.seed, r.theme, s.fpc, [NOOP if a == PLANT else a for a in r.chunk_actions])
                    for r in s.memory]
        gt["memory_with_flower"] = memory(s, [r.frames for r in s.memory])
        gt["memory_without_flower"] = memory(s, [r.frames for r in no_plant])
    return gt


# --------------------------------------------------------------------------- measures

def fidelity(s: Setting, frames: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    """PSNR / SSIM averages up to each horizon, and the mean PSNR curve over generated frames."""
    p = np.stack([psnr(r.frames[1:], f[1:]) for r, f in zip(s.episodes, frames)])     # [episodes, T]
    q = np.stack([ssim(r.frames[1:], f[1:]) for r, f in zip(s.episodes, frames)])
    return ({f"psnr@{h}": float(p[:, :h].mean()) for h in s.horizons}
            | {f"ssim@{h}": float(q[:, :h].mean()) for h in s.horizons}), p.mean(0)


def action_following(s: Setting, frames: list[np.ndarray]) -> dict:
    """The detector's reading of each held-action segment against what the game did."""
    hits, totals = Counter(), Counter()
    for real, f in zip(s.episodes, frames):
        detector = ActionDetector(real.sprites, s.shift)
        for i in range((len(f) - 1) // s.seg):
            label = effect(real, i * s.seg, (i + 1) * s.seg, detector.threshold)
            totals[label] += 1
            hits[label] += detector(f[i * s.seg], f[(i + 1) * s.seg]) == label
    n = sum(totals.values())
    return {"accuracy": sum(hits.values()) / n, "chance": max(totals.values()) / n, "segments": n,
            "per_label": {ACTION_MEANINGS[a]: f"{hits[a]}/{totals[a]}" for a in sorted(totals)}}


def avatar_presence(reals: list[Real], frames: list[np.ndarray]) -> float:
    """Share of frames (after the start frame) with the avatar where the game draws it."""
    found = [avatar_present(f, r.sprites, xy) for r, fs in zip(reals, frames) for f, xy in zip(fs[1:], r.screen[1:])]
    return float(np.mean(found))


def memory(s: Setting, frames: list[np.ndarray]) -> dict:
    """Memory trials: the flower at the game's spot when the plant chunk ends, and at the end of the walk back."""
    planted = 2 * s.fpc          # chunks: turn, plant, away..., back...
    at = lambda r, f, i: flower_present(f[i], r.sprites, flower_xy(r, i))
    return {"planted": float(np.mean([at(r, f, planted) for r, f in zip(s.memory, frames)])),
            "remembered": float(np.mean([at(r, f, len(f) - 1) for r, f in zip(s.memory, frames)]))}


def prompt_following(gen, s: Setting, speed: Speed, recache: bool) -> tuple[dict, list[np.ndarray]]:
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


def drift(gen, s: Setting, speed: Speed, args) -> dict:
    """One long rollout from a real start: statistics per segment, slopes, pixel std against the real game's."""
    start = s.drift_start
    gen.reset(prompt=start.prompt, seed=start.seed, context_frames=start.context)
    segments = segment_stats((speed.rollout(gen, [a]) for a in s.drift_actions), segment_chunks(args, s))
    minutes = [(i + 0.5) * args.segment_seconds / 60 for i in range(len(segments))]
    ratio = [g["pixel_std"] / max(r["pixel_std"], 1e-9) for g, r in zip(segments, s.drift_real)]
    keys = ("saturation", "sharpness", "change", "pixel_std")
    return {"segments": segments, "minutes": minutes, "pixel_std_vs_real": ratio,
            "collapsed": bool(ratio and ratio[-1] < COLLAPSE_RATIO),
            "slope_percent_per_minute": {k: slope_percent_per_minute([g[k] for g in segments], minutes) for k in keys}}


def evaluate(gen, s: Setting, args) -> tuple[dict, dict]:
    """Every measure of one generator (a model or a baseline) -> (result, what the figures show)."""
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
            result["prompt_following"][key], figures["switch"][key] = prompt_following(gen, s, speed, recache)
    if s.memory:
        result["memory"] = memory(s, [generate(gen, r, speed) for r in s.memory])
    if s.drift_actions:
        result["drift"] = drift(gen, s, speed, args)
    if speed.seconds > 0:
        result["speed"] = {"fps": speed.frames / speed.seconds, "nfe_per_chunk": speed.nfe / speed.chunks,
                           "chunks": speed.chunks, "torch_threads": torch.get_num_threads()}
    return result, figures


# --------------------------------------------------------------------------- figures and the table

def grid_png(path: Path, headers: list[str], rows: list[tuple[str, list[np.ndarray]]], scale: int = 3) -> None:
    """Frames in a labelled grid, each upscaled `scale` times (nearest neighbour, so pixels stay sharp)."""
    from PIL import Image, ImageDraw
    h, w = (v * scale for v in rows[0][1][0].shape[:2])
    left, top, gap = 100, 14, 2
    img = Image.new("RGB", (left + len(headers) * (w + gap), top + len(rows) * (h + gap)), "white")
    draw = ImageDraw.Draw(img)
    for j, text in enumerate(headers):
        draw.text((left + j * (w + gap) + 2, 1), text, fill="black")
    for i, (label, frames) in enumerate(rows):
        y = top + i * (h + gap)
        draw.text((2, y + h // 2 - 5), label, fill="black")
        for j, f in enumerate(frames):
            img.paste(Image.fromarray(f).resize((w, h), Image.NEAREST), (left + j * (w + gap), y))
    img.save(path)


def contact_sheet(path: Path, s: Setting, frames: list[np.ndarray]) -> None:
    """Per episode a real row and a generated row: the start frame, then frames 1, 4, 8, 16, 32, 64."""
    ts = [t for t in SHEET_FRAMES if t < len(frames[0])]
    rows = []
    for e, (real, fake) in enumerate(zip(s.episodes, frames)):
        rows.append((f"ep {e} real", [real.frames[t] for t in (0, *ts)]))
        rows.append((f"ep {e} generated", [fake[t] for t in (0, *ts)]))
    grid_png(path, ["start"] + [f"frame {t}" for t in ts], rows)


def switch_sheet(path: Path, switch: dict) -> None:
    """The last frame of each chunk before and after the prompt switch, without and with recache."""
    n = len(switch["no_recache"]) // 2
    headers = [f"chunk {k - n:+d}" if k < n else f"chunk +{k - n + 1}" for k in range(2 * n)]
    grid_png(path, headers, [(f"{key.replace('_', ' ')}", frames) for key, frames in switch.items()])


def plot(path: Path, curves: dict[str, np.ndarray], drift_result: dict | None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if drift_result else 1, figsize=(10 if drift_result else 5, 3.5), squeeze=False)
    ax = axes[0, 0]
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set(xlabel="generated frame", ylabel="PSNR (dB)", title="fidelity vs the real game")
    ax.legend()
    if drift_result:
        ax = axes[0, 1]
        for k in ("saturation", "sharpness", "change", "pixel_std"):
            v = np.array([seg[k] for seg in drift_result["segments"]])
            ax.plot(drift_result["minutes"], v / max(abs(v[0]), 1e-9), label=k)
        ax.set(xlabel="minutes", ylabel="relative to first segment", title="drift")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def table_row(name: str, r: dict) -> str:
    fid, pf, mem, dr, sp = (r.get(k) or {} for k in ("fidelity", "prompt_following", "memory", "drift", "speed"))
    psnrs = " / ".join(f"{v:.1f}" for k, v in fid.items() if k.startswith("psnr"))
    ssims = " / ".join(f"{v:.2f}" for k, v in fid.items() if k.startswith("ssim"))
    a = r["action_following"]
    cells = [name, psnrs, ssims, f"{pct(a['accuracy'])} of {a['segments']}", pct(r["avatar_presence"]),
             " / ".join(pct((pf.get(k) or {}).get("new_theme_after")) for k in ("no_recache", "recache")),
             f"{pct(mem.get('planted'))} / {pct(mem.get('remembered'))}"]
    if dr:
        slopes = dr["slope_percent_per_minute"]
        cells.append(f"{slopes['saturation']:+.1f} / {slopes['sharpness']:+.1f}")
        cells.append(f"{dr['pixel_std_vs_real'][-1]:.2f}" + (" collapsed" if dr["collapsed"] else "")
                     if dr["pixel_std_vs_real"] else "-")
    else:
        cells += ["-", "-"]
    cells += [f"{sp['fps']:.1f}", f"{sp['nfe_per_chunk']:.2f}"] if sp else ["-", "-"]
    return "| " + " | ".join(cells) + " |"


def write_table(path: Path, models: dict[str, tuple[dict, Setting]], threads: int) -> None:
    settings = list({id(s): s for _, s in models.values()}.values())
    h = " / ".join(str(v) for v in settings[0].horizons)
    lines = [f"| model | PSNR@{h} (dB) | SSIM@{h} | action following | avatar presence | "
             "prompt -> new theme (no recache / recache) | memory (planted / remembered) | "
             "drift %/min (saturation / sharpness) | pixel std vs real (end) | FPS | NFE/chunk |",
             "|" + "---|" * 11]
    lines += [table_row(name, result) for name, (result, _) in models.items()]
    for s in settings:
        themes = f" (themes {', '.join(map(str, s.themes))})" if len(settings) > 1 else ""
        lines += [table_row(f"baseline: {name}{themes}", r) for name, r in s.baselines.items()]
    lines.append("")
    for s in settings:
        g = s.ground_truth
        lines.append(f"Detectors on real frames (themes {', '.join(map(str, s.themes))}): action following "
                     f"{pct(g['action_following'])} (chance {pct(g['action_chance'])}); avatar presence "
                     f"{pct(g['avatar_presence'])} on real frames, {pct(g['avatar_presence_avatar_removed'])} "
                     f"with the avatar painted out, {pct(g['avatar_presence_theme_mean'])} on theme-mean frames; "
                     f"theme classifier {pct(g.get('theme_classifier'))} (chance 50 %); memory "
                     f"{pct((g.get('memory_with_flower') or {}).get('remembered'))} with a planted flower, "
                     f"{pct((g.get('memory_without_flower') or {}).get('remembered'))} without.")
    lines.append(f"Torch CPU threads: {threads}.")
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True,
                        help="model folder, 'default' or 'tiny-random'; repeat to compare several in one table")
    parser.add_argument("--env", default="StreamVideoGame-v0", help="Gymnasium id of the built-in game")
    parser.add_argument("--episodes", type=int, default=8, help="fidelity / action / avatar episodes")
    parser.add_argument("--segments", type=int, default=6, help="held-action segments per episode")
    parser.add_argument("--hold-chunks", type=int, default=4, help="chunks each action is held for")
    parser.add_argument("--horizons", default="8,16,32,64", help="frame horizons of the fidelity averages")
    parser.add_argument("--memory-trials", type=int, default=8, help="plant-walk-return trials (0 = skip)")
    parser.add_argument("--memory-chunks", type=int, default=2, help="chunks walked away (and back) in a trial")
    parser.add_argument("--switch-trials", type=int, default=4, help="prompt-switch trials per recache (0 = skip)")
    parser.add_argument("--switch-chunks", type=int, default=8, help="chunks generated before and after a switch")
    parser.add_argument("--references", type=int, default=8, help="real rollouts per theme for its mean frame")
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
    for flag in ("episodes", "segments", "hold_chunks", "memory_chunks", "references", "threads"):
        if getattr(args, flag) < 1:
            raise EvalError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    for flag in ("memory_trials", "switch_trials", "drift_seconds"):
        if getattr(args, flag) < 0:
            raise EvalError(f"--{flag.replace('_', '-')} must be 0 (skip) or more, got {getattr(args, flag)}")
    if args.episodes * args.segments < len(ACTION_MEANINGS):
        raise EvalError(f"--episodes x --segments must be at least {len(ACTION_MEANINGS)} to hold every action")
    if args.switch_trials and args.switch_chunks < 3:
        raise EvalError("--switch-chunks must be at least 3: the switch is judged from 2 chunks after it")
    if args.segment_seconds <= 0 or min(args.horizons) < 1:
        raise EvalError("--segment-seconds and --horizons must be positive")


def run(args: argparse.Namespace) -> int:
    import streamvideo
    check_args(args)
    torch.set_num_threads(args.threads)
    print(f"streamvideo eval: torch CPU threads = {args.threads}", flush=True)
    sources = [resolve_model(m) for m in args.model]            # every name checked before any work
    out = Path(args.out)
    settings, results = {}, {}
    for name, (source, meta) in zip(out_names(args.model), sources):
        print(f"streamvideo eval: {name} ({source})", flush=True)
        try:
            gen = streamvideo.load(source, device="cpu", kv_noise=meta.get("kv_noise"))
        except (ValueError, KeyError, OSError, RuntimeError) as err:
            raise EvalError(f"cannot load {source}: {err}") from None
        if gen.height != gen.width or gen.height % 8 or gen.height < 32:
            raise EvalError(f"{source}: frames are {gen.height}x{gen.width}; the game renders square sizes, "
                            f"multiples of 8 from 32")
        themes = model_themes(source, meta)
        key = (gen.height, gen.frames_per_chunk, gen.fps, tuple(themes))
        if key not in settings:
            settings[key] = build_setting(args, gen.height, gen.frames_per_chunk, gen.fps, themes)
        s = settings[key]
        result, figures = evaluate(gen, s, args)
        result = {"model": source, "role": meta.get("role"), "themes": themes, **result,
                  "ground_truth": s.ground_truth, "baselines": s.baselines}
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "eval.json").write_text(json.dumps(result, indent=2))
        contact_sheet(folder / "contact_sheet.png", s, figures["frames"])
        if figures["switch"]:
            switch_sheet(folder / "prompt_switch.png", figures["switch"])
        curves = {name: result["psnr_per_frame"]} | {b: r["psnr_per_frame"] for b, r in s.baselines.items()}
        plot(folder / "eval.png", curves, result.get("drift"))
        results[name] = (result, s)
        print(table_row(name, result))
    write_table(out / "table.md", results, args.threads)
    print((out / "table.md").read_text())
    return 0
