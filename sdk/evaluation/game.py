"""The real game's side of `streamvideo eval`: rollouts that keep the game's state per frame (where the
avatar and camera are, which flowers are planted), the held-action plan, and what the game did in a segment
(the label the action detector is scored against)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.collect import CollectError, make_env
from ..envs.game.env import ACTION_MEANINGS, StreamVideoGameEnv
from ..envs.game.themes import theme
from .agnostic import EvalError, Rollout
from .detectors import NOOP, PLANT, Sprites, direction


@dataclass
class Real(Rollout):
    """A real rollout of the game (context frames from no-ops) with the game's state per frame: arrays over
    frames start with the last context frame (index 0), so segment i of `seg` frames runs from frame i*seg
    to (i+1)*seg."""
    theme: int
    screen: np.ndarray                   # [T + 1, 2] avatar centre on screen
    camera: np.ndarray                   # [T + 1, 2] view's top-left in the world
    avatar: np.ndarray                   # [T + 1, 2] avatar centre in the world
    flowers: list[frozenset]             # planted flower spots (world) after each frame
    world: np.ndarray                    # the world image at the end (background, flowers)
    sprites: Sprites


def play(game, seed: int, theme_index: int, fpc: int, chunk_actions: list[int],
         context_frames: int | None = None) -> Real:
    """The episode from seed: `context_frames` real frames (default one chunk; the reset frame, then no-ops),
    then each chunk action held for a chunk of frames."""
    frame, info = game.reset(seed=seed, options={"theme": theme_index})
    context = [frame]
    for _ in range((context_frames or fpc) - 1):
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
    return Real(seed=seed, prompt=info["prompt"], chunk_actions=chunk_actions, context=np.stack(context),
                frames=np.stack(frames), theme=theme_index, screen=column("avatar_screen_xy"),
                camera=column("camera_xy"), avatar=column("avatar_xy"), flowers=flowers, world=game.world.copy(),
                sprites=Sprites(game))


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


def make_game(env_id: str, size: int, themes: list[int], env_args: dict | None = None) -> StreamVideoGameEnv:
    """The built-in game at the model's frame size and themes (`--env-arg`s passed on)."""
    try:
        game = make_env(env_id, {**(env_args or {}), "size": size, "themes": themes}).unwrapped
    except CollectError as err:
        raise EvalError(str(err)) from None
    if not isinstance(game, StreamVideoGameEnv):
        raise EvalError(f"{env_id!r} is not the built-in game: the game's measures read its sprites and state")
    return game


def switch_themes(themes: list[int]) -> tuple[int, int] | None:
    """From the first theme to the first with another ground (the biggest change of colour), if any."""
    if len(themes) < 2:
        return None
    other = [t for t in themes[1:] if theme(t).ground != theme(themes[0]).ground]
    return themes[0], (other or themes[1:])[0]


