"""What `streamvideo eval` measures on a frame: fidelity metrics, drift statistics and the detectors
(held action, avatar presence, a planted flower, the theme). Every detector reads only pixels and the
game's own sprites, so it judges generated frames exactly as it judges real ones; tests/evaluation/test_evaluate.py
checks each one on ground-truth frames where it must succeed and on frames where it must fail.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..envs.game.weather import FOG_COLOUR, FOG_KEEP

MOVES = {1: (0, -1), 2: (0, 1), 3: (-1, 0), 4: (1, 0)}   # action -> unit world displacement (x, y)
NOOP, PLANT = 0, 5
# mean absolute colour error (0-255) over a sprite's pixels below which the sprite counts as drawn there:
# on real frames of 28 themes the avatar costs < 1 and the same spot with the avatar painted out or on the
# theme's mean frame > 31; a 5-point-blurred avatar costs 12-57, so only a sharp-ish avatar counts
AVATAR_COST = 20.0
FLOWER_COST = 20.0
KEEP = 0.8         # share of a sprite's pixels scored (the rest may be hidden by weather)
# a frame is read as a theme when its colour histogram is at most this many times as far from that theme's
# as from the other's: real frames are < 0.25 (another ground), noise about 1 (tests/evaluation/test_evaluate.py)
THEME_MARGIN = 0.75
SEARCH_RADIUS = 3   # pixels a sprite may sit from where the game draws it and still count


# --------------------------------------------------------------------------- fidelity and drift

def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] pairs -> PSNR per frame [T]."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> np.ndarray:
    """Mean SSIM per frame [T] (uniform window, per channel), uint8 [T, H, W, 3] inputs."""
    x, y = (torch.from_numpy(np.ascontiguousarray(v)).permute(0, 3, 1, 2).contiguous().float() / 255 for v in (a, b))
    pool = lambda v: F.avg_pool2d(v, window, 1)  # noqa: E731
    mx, my = pool(x), pool(y)
    vx, vy, cxy = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


def frame_stats(frames: np.ndarray) -> dict:
    """Saturation, sharpness (Laplacian variance), frame-to-frame change and pixel std (spatial, per
    frame: low means a collapsed, flat picture) of uint8 [T, H, W, 3]."""
    f = frames.astype(np.float64) / 255
    sat = ((f.max(-1) - f.min(-1)) / np.maximum(f.max(-1), 1e-6)).mean()
    gray = f.mean(-1)
    lap = gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1] + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:] - 4 * gray[:, 1:-1, 1:-1]
    change = np.abs(np.diff(f, axis=0)).mean() if len(f) > 1 else 0.0
    return {"saturation": float(sat), "sharpness": float(lap.var(axis=(1, 2)).mean()), "change": float(change),
            "pixel_std": float(f.std(axis=(1, 2)).mean())}


def slope_percent_per_minute(values: list[float], minutes: list[float]) -> float:
    """Least-squares slope, in % of the first value per minute."""
    if len(values) < 2:
        return 0.0
    slope = np.polyfit(minutes, values, 1)[0]
    return float(100 * slope / max(abs(values[0]), 1e-9))


# --------------------------------------------------------------------------- sprite matching

class Sprites:
    """The game's avatar sprites (one per facing) and flower sprite as they look on screen under the
    episode's weather: fog blends every pixel towards grey, so the templates are fogged the same way."""

    def __init__(self, game):
        fog = game.theme.weather.name == "fog"
        look = (lambda rgb: (rgb.astype(np.float64) * FOG_KEEP + FOG_COLOUR * (256 - FOG_KEEP)) / 256) if fog \
            else (lambda rgb: rgb.astype(np.float64))
        self.avatars = [(look(rgb), mask) for rgb, mask in game.avatar_sprites.values()]
        self.flower = (look(game.flower_sprite[0]), game.flower_sprite[1])
        self.tile = game.config.tile


def match_costs(frame: np.ndarray, sprite: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Cost of the sprite at every placement [Y, X] (top-left corner): the mean |colour error| (0-255) over
    its pixels, leaving out the worst `1 - KEEP` of them, which rain streaks and snowflakes may cover."""
    rgb, mask = sprite
    h, w = mask.shape
    win = np.lib.stride_tricks.sliding_window_view(frame.astype(np.float64), (h, w, 3))[:, :, 0]  # [Y, X, h, w, 3]
    err = np.abs(win - rgb).mean(-1)[:, :, mask]                                                # [Y, X, pixels]
    keep = max(1, int(KEEP * err.shape[-1]))
    return np.partition(err, keep - 1, axis=-1)[..., :keep].mean(-1)


def cost_near(frame: np.ndarray, sprites: list, xy, radius: int = SEARCH_RADIUS) -> float:
    """Lowest cost of any of `sprites` centred within `radius` pixels of screen point xy (x, y)."""
    best = np.inf
    for sprite in sprites:
        h, w = sprite[1].shape
        x0, y0 = int(round(xy[0])) - w // 2, int(round(xy[1])) - h // 2        # top-left of a centred sprite
        top, left = max(y0 - radius, 0), max(x0 - radius, 0)
        crop = frame[top:max(y0 + radius + h, 0), left:max(x0 + radius + w, 0)]
        if crop.shape[0] >= h and crop.shape[1] >= w:
            best = min(best, float(match_costs(crop, sprite).min()))
    return best


def avatar_present(frame: np.ndarray, sprites: Sprites, xy) -> bool:
    """Is the avatar (any facing) drawn where the game draws it (screen xy, its centre)?"""
    return cost_near(frame, sprites.avatars, xy) < AVATAR_COST


def flower_present(frame: np.ndarray, sprites: Sprites, xy) -> bool:
    """Is a flower drawn at screen point xy (its centre)?"""
    return cost_near(frame, [sprites.flower], xy) < FLOWER_COST


# --------------------------------------------------------------------------- held actions

def direction(move) -> int:
    """The move action (1-4) along a displacement's larger axis."""
    axis = int(np.argmax(np.abs(move)))
    return next(k for k, v in MOVES.items() if v[axis] == int(np.sign(move[axis])))


class ActionDetector:
    """Which held action explains frames a -> b: 1-4 (the way the avatar walked), 5 (planted a new
    flower), or 0 (neither)? The camera has a dead zone, so a walk shows as on-screen avatar motion,
    scrolling, or both: the world displacement is the avatar's screen displacement (template match of
    the game's four avatar sprites) plus the camera shift (best whole-frame translation along one axis).
    A plant shows as a flower next to the avatar in b where a had none."""

    def __init__(self, sprites: Sprites, expected_shift: int, step_shift: int | None = None):
        self.sprites = sprites
        self.max_shift = (step_shift or expected_shift) + 2   # the most the view moves between two frames read
        self.threshold = expected_shift / 3   # a walk moves the avatar `expected_shift` pixels

    def avatar_xy(self, frame: np.ndarray) -> np.ndarray:
        """Centre (x, y) of the best avatar match anywhere in the frame."""
        best, where = np.inf, np.zeros(2)
        for sprite in self.sprites.avatars:
            costs = match_costs(frame, sprite)
            y, x = np.unravel_index(np.argmin(costs), costs.shape)
            if costs[y, x] < best:
                best, where = costs[y, x], np.array([x + sprite[1].shape[1] // 2, y + sprite[1].shape[0] // 2])
        return where

    def camera_shift(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """d such that b(p) ~ a(p + d): how far the camera moved from a to b."""
        a, b = a.astype(np.float64), b.astype(np.float64)
        size = a.shape[0]
        best, shift = np.inf, np.zeros(2)
        for axis in (0, 1):
            for d in range(-self.max_shift, self.max_shift + 1):
                lo, hi = max(d, 0), size + min(d, 0)
                if axis == 1:
                    err = np.abs(b[:, lo - d:hi - d] - a[:, lo:hi]).mean()
                else:
                    err = np.abs(b[lo - d:hi - d] - a[lo:hi]).mean()
                if err < best:
                    best, shift = err, np.array([d, 0] if axis == 1 else [0, d])
        return shift

    def new_flower(self, a: np.ndarray, b: np.ndarray, avatar: np.ndarray) -> bool:
        """A flower within one tile of the avatar in b at a spot where a shows none."""
        costs_a, costs_b = match_costs(a, self.sprites.flower), match_costs(b, self.sprites.flower)
        h, w = self.sprites.flower[1].shape
        reach = self.sprites.tile + SEARCH_RADIUS
        x0, y0 = int(avatar[0]) - w // 2, int(avatar[1]) - h // 2
        near = np.s_[max(y0 - reach, 0):max(y0 + reach + 1, 0), max(x0 - reach, 0):max(x0 + reach + 1, 0)]
        return bool(np.any((costs_b[near] < FLOWER_COST) & (costs_a[near] >= FLOWER_COST)))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> int:
        return self.read([a, b])

    def read(self, frames: list[np.ndarray]) -> int:
        """The held action over frames a walk moves at most `step_shift` pixels between neighbours: the moves
        between neighbours summed (a fast walk scrolls past half a frame in a segment), a plant judged from
        the first and the last frame."""
        avatars = [self.avatar_xy(f) for f in frames]
        move = sum(b - a + self.camera_shift(fa, fb)
                   for a, b, fa, fb in zip(avatars, avatars[1:], frames, frames[1:]))
        if np.abs(move).max() >= self.threshold:
            return direction(move)
        return PLANT if self.new_flower(frames[0], frames[-1], avatars[-1]) else NOOP


# --------------------------------------------------------------------------- theme

def colour_histograms(frames: np.ndarray, levels: int = 4) -> np.ndarray:
    """Joint RGB histogram of each frame, `levels` bins per channel, normalised: [T, levels**3]."""
    q = frames.astype(np.int64) * levels // 256
    codes = ((q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]).reshape(len(frames), -1)
    hist = np.stack([np.bincount(c, minlength=levels**3) for c in codes]).astype(np.float64)
    return hist / codes.shape[1]


class ThemeClassifier:
    """Nearest theme by colour: the L1 distance of a frame's colour histogram to the mean histogram of real
    frames of each theme. A frame is read as its nearest theme only when that one is at most THEME_MARGIN
    times as far as the runner-up; otherwise -1 (noise, or colours between the themes, is no theme)."""

    def __init__(self, references: dict[int, np.ndarray]):
        self.themes = np.asarray(list(references))
        self.means = np.stack([colour_histograms(f).mean(0) for f in references.values()])

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [T, H, W, 3] -> theme index per frame, or -1 [T]."""
        dist = np.abs(colour_histograms(frames)[:, None] - self.means[None]).sum(-1)        # [T, themes]
        nearest, runner_up = np.sort(dist, axis=1)[:, :2].T
        return np.where(nearest <= THEME_MARGIN * runner_up, self.themes[dist.argmin(1)], -1)
