"""Visual themes of the built-in game: ground x weather x avatar x palette, each with a text prompt.

A theme index decomposes into its four parts (mixed radix), so every index in `range(N_THEMES)`
is a distinct look with a distinct prompt, which is what the text-conditioned world model learns from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Ground:
    name: str          # the words used in the prompt ("snowy ground")
    base: RGB          # ground colour
    speckle: RGB       # sparse texture dots, so scrolling is visible on open ground
    path: RGB          # walking paths crossing the world
    water: RGB         # ponds
    canopy: RGB        # tree crowns
    trunk: RGB         # tree trunks
    rock: RGB          # rocks
    tree_name: str     # prompt word for the trees ("pine trees")
    critter: RGB       # wandering animals
    critter_name: str  # prompt word for the animals ("penguins")


@dataclass(frozen=True)
class Weather:
    name: str          # "clear" | "rain" | "snow" | "fog"
    phrase: str        # prompt words ("under falling snow")


@dataclass(frozen=True)
class Avatar:
    name: str          # prompt words ("red knight")
    colour: RGB        # body colour
    shape: str         # "square" | "circle" | "triangle" | "diamond"


@dataclass(frozen=True)
class Palette:
    name: str                          # prompt word ("cool")
    gain: tuple[float, float, float]   # per-channel multiplier applied to world colours
    saturation: float                  # >1 makes colours more vivid

    def apply(self, colour: RGB) -> RGB:
        rgb = np.asarray(colour, np.float32)
        grey = rgb.mean()
        rgb = (grey + (rgb - grey) * self.saturation) * np.asarray(self.gain, np.float32)
        return tuple(int(v) for v in np.clip(np.round(rgb), 0, 255))


GROUNDS = (
    Ground("a grassy meadow", (86, 150, 64), (62, 120, 46), (176, 150, 100), (58, 110, 200),
           (30, 96, 38), (104, 72, 40), (132, 132, 128), "oak trees", (245, 245, 240), "rabbits"),
    Ground("sandy desert", (224, 198, 134), (198, 168, 108), (184, 150, 100), (64, 150, 196),
           (64, 140, 72), (150, 110, 70), (168, 120, 88), "cacti", (214, 84, 56), "crabs"),
    Ground("snowy ground", (234, 240, 246), (200, 212, 228), (176, 188, 206), (150, 200, 236),
           (36, 88, 70), (88, 68, 48), (108, 114, 126), "pine trees", (34, 34, 44), "penguins"),
    Ground("muddy dirt", (122, 90, 62), (98, 72, 48), (156, 124, 88), (72, 92, 120),
           (88, 124, 52), (70, 50, 34), (92, 92, 98), "bare trees", (236, 200, 70), "chickens"),
)

WEATHERS = (
    Weather("clear", "under a clear sky"),
    Weather("rain", "in the pouring rain"),
    Weather("snow", "under falling snow"),
    Weather("fog", "in thick fog"),
)

AVATARS = (
    Avatar("red knight", (214, 40, 40), "square"),
    Avatar("blue robot", (40, 90, 224), "diamond"),
    Avatar("yellow slime", (250, 214, 30), "circle"),
    Avatar("purple wizard", (150, 60, 200), "triangle"),
)

PALETTES = (
    Palette("warm", (1.10, 1.00, 0.84), 1.0),
    Palette("cool", (0.86, 0.98, 1.14), 1.0),
    Palette("vivid", (1.0, 1.0, 1.0), 1.35),
)

N_THEMES = len(GROUNDS) * len(WEATHERS) * len(AVATARS) * len(PALETTES)


@dataclass(frozen=True)
class Theme:
    index: int
    ground: Ground
    weather: Weather
    avatar: Avatar
    palette: Palette

    @property
    def prompt(self) -> str:
        g = self.ground
        return (f"a {self.avatar.name} walking on {g.name} among {g.tree_name} and wandering "
                f"{g.critter_name} {self.weather.phrase}, {self.palette.name} palette")


def theme(index: int) -> Theme:
    """Theme number `index` in [0, N_THEMES); consecutive indices change the ground first."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < N_THEMES:
        raise ValueError(f"theme must be an int in [0, {N_THEMES}), got {index!r}")
    rest = int(index)
    parts = []
    for options in (GROUNDS, WEATHERS, AVATARS, PALETTES):
        rest, i = divmod(rest, len(options))
        parts.append(options[i])
    return Theme(int(index), *parts)
