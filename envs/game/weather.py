"""Screen-space weather for the built-in game: rain streaks, snowflakes, fog."""

from __future__ import annotations

import numpy as np

RAIN_COLOUR = (170, 190, 225)
SNOW_COLOUR = (255, 255, 255)
FOG_COLOUR = np.array((204, 208, 214), np.uint16)
FOG_KEEP = 140  # out of 256: how much of the scene shows through the fog


class WeatherLayer:
    """Particles that fall across the screen, drawn over the scene after the sprites.

    Motion is a fixed function of the frame counter, so weather is deterministic once seeded.
    """

    def __init__(self, kind: str, size: int, rng: np.random.Generator):
        if kind not in ("clear", "rain", "snow", "fog"):
            raise ValueError(f"unknown weather {kind!r}; expected clear, rain, snow or fog")
        self.kind, self.size, self.t = kind, size, 0
        scale = max(1, size // 64)
        count = {"rain": size * size // 90, "snow": size * size // 110}.get(kind, 0)
        self.xy = rng.uniform(0, size, (count, 2)).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, count).astype(np.float32)
        if kind == "rain":  # streaks slanting down-right, 4 px long at 64x64
            self.velocity = np.array((1.0, 3.0), np.float32) * scale
            k = np.arange(max(2, size // 16))
            self.offsets = np.stack([-(k // 3), -k], 1)
        else:  # square flakes, 2 px at 64x64, drifting down slowly
            self.velocity = np.array((0.0, 1.0), np.float32) * scale
            flake = max(1, size // 32)
            oy, ox = np.mgrid[0:flake, 0:flake]
            self.offsets = np.stack([ox.ravel(), oy.ravel()], 1)

    def advance(self) -> None:
        self.t += 1
        if len(self.xy):
            self.xy = (self.xy + self.velocity) % self.size

    def draw(self, frame: np.ndarray) -> None:
        if self.kind == "fog":
            blended = (frame.astype(np.uint16) * FOG_KEEP + FOG_COLOUR * (256 - FOG_KEEP)) >> 8
            frame[:] = blended.astype(np.uint8)
            return
        if not len(self.xy):
            return
        x = self.xy[:, 0]
        if self.kind == "snow":  # sideways sway
            x = x + 1.5 * np.sin(0.15 * self.t + self.phase)
        xs = (x.astype(np.int64)[:, None] + self.offsets[None, :, 0]) % self.size
        ys = (self.xy[:, 1].astype(np.int64)[:, None] + self.offsets[None, :, 1]) % self.size
        frame[ys, xs] = RAIN_COLOUR if self.kind == "rain" else SNOW_COLOUR
