"""Numpy drawing for the built-in game: shape masks, sprite blits and the static world background.

Everything static (ground texture, paths, ponds, rocks, trees, planted flowers) lives in one world-sized
uint8 image built at reset, so rendering a frame is a slice copy plus a few small sprite blits.
"""

from __future__ import annotations

import numpy as np

from .themes import Theme

FACINGS = ("up", "down", "left", "right")
FACING_VECTORS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


# --------------------------------------------------------------------------- shapes and sprites

def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean [size, size] mask of a filled shape centred in the square."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    if shape == "square":
        return np.ones((size, size), bool)
    if shape == "circle":
        return (x - c) ** 2 + (y - c) ** 2 <= (size / 2) ** 2
    if shape == "diamond":
        return np.abs(x - c) + np.abs(y - c) <= size / 2
    if shape == "triangle":  # apex up, base along the bottom row
        return np.abs(x - c) <= (y + 1) / 2
    raise ValueError(f"unknown shape {shape!r}; expected square, circle, diamond or triangle")


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` that touch the outside (4-neighbourhood)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def avatar_sprites(colour, shape: str, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """facing -> (rgb [size,size,3] uint8, mask [size,size] bool): a body with a dark outline and
    a white eye on the facing side, so the direction the avatar last moved is visible."""
    mask = shape_mask(shape, size)
    body = np.empty((size, size, 3), np.uint8)
    body[:] = colour
    body[outline(mask)] = (20, 20, 24)
    eye = max(1, size // 4)
    mid = (size - eye) // 2
    near, far = max(1, size // 8) + (size // 4 if shape == "triangle" else 0), size - size // 8 - eye
    eye_corner = {"up": (near, mid), "down": (far, mid), "left": (mid + size // 8, near + size // 8),
                  "right": (mid + size // 8, far - size // 8)}
    sprites = {}
    for facing, (ey, ex) in eye_corner.items():
        rgb = body.copy()
        rgb[ey:ey + eye, ex:ex + eye] = (255, 255, 255)
        sprites[facing] = (rgb, mask)
    return sprites


def critter_sprite(colour, size: int) -> tuple[np.ndarray, np.ndarray]:
    mask = shape_mask("circle", size)
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[:] = colour
    rgb[outline(mask)] = (24, 24, 24)
    return rgb, mask


def flower_sprite(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A plus-shaped magenta flower with a yellow heart; it stands out on every ground."""
    mask = np.zeros((size, size), bool)
    third = max(1, size // 3)
    mask[third:size - third, :] = True
    mask[:, third:size - third] = True
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[:] = (255, 60, 170)
    rgb[third:size - third, third:size - third] = (255, 230, 40)
    return rgb, mask


def blit(canvas: np.ndarray, rgb: np.ndarray, mask: np.ndarray, left: int, top: int) -> None:
    """Copy the masked sprite onto `canvas` with its top-left at (left, top), clipped to the canvas."""
    h, w = mask.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    sy, sx = y0 - top, x0 - left
    sub = slice(sy, sy + y1 - y0), slice(sx, sx + x1 - x0)
    np.copyto(canvas[y0:y1, x0:x1], rgb[sub], where=mask[sub][..., None])


def fill_disk(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, colour) -> None:
    """Filled axis-aligned ellipse centred at (cx, cy), clipped to the canvas."""
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, canvas.shape[0])
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, canvas.shape[1])
    y, x = np.mgrid[y0:y1, x0:x1]
    inside = ((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2 <= 1
    canvas[y0:y1, x0:x1][inside] = colour


# --------------------------------------------------------------------------- the static world

def build_world(rng: np.random.Generator, theme: Theme, width: int, height: int, tile: int) -> np.ndarray:
    """The world-sized background: textured ground, paths, ponds, rocks and trees (uint8 [H, W, 3])."""
    pal = theme.palette.apply
    g = theme.ground
    world = np.empty((height, width, 3), np.uint8)
    world[:] = pal(g.base)
    # low-amplitude brightness noise plus sparse speckles: open ground still shows motion when scrolling
    noise = rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    world[:] = np.clip(world.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    world[rng.random((height, width)) < 0.04] = pal(g.speckle)
    _draw_paths(rng, world, pal(g.path), tile)
    for _ in range(max(1, width * height // (64 * tile * tile * 3))):
        fill_disk(world, rng.uniform(0, width), rng.uniform(0, height),
                  rng.uniform(1.5, 3.0) * tile, rng.uniform(1.0, 2.0) * tile, pal(g.water))
    for _ in range(width * height // (tile * tile * 40)):
        _draw_rock(rng, world, pal(g.rock), tile)
    for _ in range(width * height // (tile * tile * 24)):
        _draw_tree(rng, world, pal(g.canopy), pal(g.trunk), tile)
    return world


def _draw_paths(rng: np.random.Generator, world: np.ndarray, colour, tile: int) -> None:
    rows, cols = world.shape[0] // tile, world.shape[1] // tile
    for r in rng.choice(rows, size=2, replace=False):
        world[r * tile:(r + 1) * tile, :] = colour
    for c in rng.choice(cols, size=2, replace=False):
        world[:, c * tile:(c + 1) * tile] = colour


def _draw_rock(rng: np.random.Generator, world: np.ndarray, colour, tile: int) -> None:
    cx, cy = rng.uniform(0, world.shape[1]), rng.uniform(0, world.shape[0])
    r = rng.uniform(0.35, 0.6) * tile
    fill_disk(world, cx, cy, r * 1.3, r, colour)
    highlight = tuple(min(255, v + 40) for v in colour)
    fill_disk(world, cx - r * 0.4, cy - r * 0.35, r * 0.45, r * 0.35, highlight)


def _draw_tree(rng: np.random.Generator, world: np.ndarray, canopy, trunk, tile: int) -> None:
    cx, cy = rng.uniform(0, world.shape[1]), rng.uniform(0, world.shape[0])
    trunk_w = max(1, tile // 4)
    x0, y0 = int(cx) - trunk_w // 2, int(cy)
    world[max(y0, 0):max(y0 + tile, 0), max(x0, 0):max(x0 + trunk_w, 0)] = trunk
    fill_disk(world, cx, cy - tile * 0.2, tile * 0.8, tile * 0.75, canopy)
    shade = tuple(max(0, v - 30) for v in canopy)
    fill_disk(world, cx + tile * 0.25, cy - tile * 0.05, tile * 0.35, tile * 0.3, shade)
