"""The built-in ground-truth game the default world model is trained on.

An avatar walks a world of 4 x 4 screens (trees, rocks, ponds, paths), wandering critters move
on their own, and the verb plants a flower that stays where it was planted, so a world model has
to remember what scrolled off screen. Rendering is pure numpy: the static world is one image built
at reset and each frame is a slice of it plus a few sprites (tens of thousands of frames/s).

    from streamvideo.envs.game.env import register_game
    register_game()
    env = gym.make("StreamVideoGame-v0")          # or StreamVideoGameEnv(size=128)
    frame, info = env.reset(seed=0, options={"theme": 3})
    info["prompt"]   # "a red knight walking on muddy dirt among bare trees ... warm palette"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from .draw import FACING_VECTORS, avatar_sprites, blit, build_world, critter_sprite, flower_sprite
from .themes import N_THEMES, Theme, theme
from .weather import WeatherLayer

GAME_ID = "StreamVideoGame-v0"
MAX_EPISODE_STEPS = 1000  # about a minute of play at 15 frames/s

ACTION_MEANINGS = ("NOOP", "UP", "DOWN", "LEFT", "RIGHT", "PLANT")
PLANT = 5
MOVE_FACING = {1: "up", 2: "down", 3: "left", 4: "right"}
# critter direction index -> unit step; 0 means standing still
CRITTER_STEPS = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)], np.int64)


@dataclass(frozen=True)
class GameConfig:
    size: int = 64                  # rendered frame side in pixels (a multiple of 8, at least 32)
    screens: int = 8                # the world is screens x screens frames large
    speed: int | None = None        # avatar pixels per frame; None: one tile, size // 8 (8 px at 64x64)
    critters: int = 12              # wandering animals in the whole world
    dead_zone: float = 0.49         # camera scrolls when the avatar is this fraction of a screen from an edge:
                                    # 0.49 follows the avatar, so every unblocked move scrolls the view one tile
                                    # (one latent token of an 8x8-patch codec: docs/training.md says why)
    turn_probability: float = 0.06  # chance per frame that a critter picks a new direction (or stops)
    themes: tuple[int, ...] | None = None  # theme indices reset() draws from; None: all N_THEMES

    def __post_init__(self):
        if self.size < 32 or self.size % 8:
            raise ValueError(f"size must be a multiple of 8 and at least 32, got {self.size!r}")
        if self.screens < 1:
            raise ValueError(f"screens must be >= 1, got {self.screens!r}")
        if self.speed is not None and not 1 <= self.speed <= self.size // 4:
            raise ValueError(f"speed must be in [1, {self.size // 4}] pixels per frame, got {self.speed!r}")
        if not 0 <= self.dead_zone < 0.5:
            raise ValueError(f"dead_zone must be in [0, 0.5), got {self.dead_zone!r}")
        if self.themes is not None:
            object.__setattr__(self, "themes", tuple(self.themes))  # a JSON list from --env-arg is fine
            if not self.themes or not all(isinstance(t, int) and 0 <= t < N_THEMES for t in self.themes):
                raise ValueError(f"themes must be a non-empty list of ints in [0, {N_THEMES}), got {self.themes!r}")

    @property
    def tile(self) -> int:
        """Side of the avatar and the unit of the world layout (8 px at 64x64)."""
        return self.size // 8

    @property
    def avatar_speed(self) -> int:
        return self.speed if self.speed is not None else self.tile

    @property
    def world_size(self) -> int:
        return self.size * self.screens


class StreamVideoGameEnv(gym.Env):
    """Discrete(6) actions: 0 no-op, 1 up, 2 down, 3 left, 4 right, 5 plant a flower one tile ahead.

    Observations are the rendered frames, uint8 [size, size, 3]. `info` carries the true state:
    avatar_xy (world pixels, avatar centre), camera_xy (world pixels, view's top-left),
    avatar_screen_xy, facing, theme, prompt, flowers (count planted), critters_xy.
    Rewards are always 0: the game is a ground truth for world models, not a task.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode: str | None = "rgb_array", config: GameConfig | None = None, **fields):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        known = {f.name for f in dataclasses.fields(GameConfig)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(f"unknown game setting(s) {unknown}; expected some of {sorted(known)}")
        self.config = dataclasses.replace(config or GameConfig(), **fields)
        self.render_mode = render_mode
        size = self.config.size
        self.action_space = gym.spaces.Discrete(len(ACTION_MEANINGS))
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.speed = self.config.avatar_speed
        self.theme: Theme | None = None
        self.prompt: str | None = None  # the current theme's text prompt, set by reset()

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    # ----------------------------------------------------------------------- gym API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"theme"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; the only option is 'theme' (int or None)")
        index = options.get("theme")
        if index is None:
            pool = self.config.themes or range(N_THEMES)
            index = int(pool[self.np_random.integers(len(pool))])
        self.theme = theme(index)
        self.prompt = self.theme.prompt
        self._build_episode()
        self._frame = self._render_frame()
        return self._frame, self._info()

    def step(self, action):
        if self.theme is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in Discrete(6): "
                             f"0 no-op, 1 up, 2 down, 3 left, 4 right, 5 plant")
        action = int(action)
        if action in MOVE_FACING:
            self._move_avatar(MOVE_FACING[action])
        elif action == PLANT:
            self._plant_flower()
        self._move_critters()
        self.weather.advance()
        self._follow_avatar()
        self._frame = self._render_frame()
        return self._frame, 0.0, False, False, self._info()

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self.theme is None:
            raise RuntimeError("call reset() before render()")
        return self._frame.copy()

    # ----------------------------------------------------------------------- state updates

    def _build_episode(self) -> None:
        cfg, rng = self.config, self.np_random
        tile, world = cfg.tile, cfg.world_size
        self.world = build_world(rng, self.theme, world, world, tile)
        half = tile // 2
        self.avatar_xy = np.array(rng.integers(half, world - half, 2), np.int64)
        self.facing = "down"
        self.camera_xy = np.clip(self.avatar_xy - cfg.size // 2, 0, world - cfg.size)
        critter_size = max(3, tile * 3 // 4)
        self.critter_xy = rng.integers(critter_size, world - critter_size, (cfg.critters, 2))
        self.critter_dir = rng.integers(0, len(CRITTER_STEPS), cfg.critters)
        self.weather = WeatherLayer(self.theme.weather.name, cfg.size, rng)
        self.flowers: list[tuple[int, int]] = []
        self.avatar_sprites = avatar_sprites(self.theme.avatar.colour, self.theme.avatar.shape, tile)
        critter_colour = self.theme.palette.apply(self.theme.ground.critter)
        self.critter_sprite = critter_sprite(critter_colour, critter_size)
        self.flower_sprite = flower_sprite(critter_size)

    def _move_avatar(self, facing: str) -> None:
        half = self.config.tile // 2
        step = np.array(FACING_VECTORS[facing]) * self.speed
        self.avatar_xy = np.clip(self.avatar_xy + step, half, self.config.world_size - half)
        self.facing = facing

    def _plant_flower(self) -> None:
        """Draw a flower into the world image itself one tile ahead: it stays there for the episode."""
        ahead = self.avatar_xy + np.array(FACING_VECTORS[self.facing]) * self.config.tile
        rgb, mask = self.flower_sprite
        blit(self.world, rgb, mask, int(ahead[0]) - mask.shape[1] // 2, int(ahead[1]) - mask.shape[0] // 2)
        self.flowers.append((int(ahead[0]), int(ahead[1])))

    def _move_critters(self) -> None:
        rng = self.np_random
        turning = rng.random(len(self.critter_dir)) < self.config.turn_probability
        self.critter_dir[turning] = rng.integers(0, len(CRITTER_STEPS), int(turning.sum()))
        margin = self.critter_sprite[1].shape[0]
        step = CRITTER_STEPS[self.critter_dir] * max(1, self.config.size // 64)
        self.critter_xy = np.clip(self.critter_xy + step, margin, self.config.world_size - margin)

    def _follow_avatar(self) -> None:
        """Dead-zone camera: the avatar walks freely in the middle of the screen and pushes the view
        along when it comes within `dead_zone` of an edge (0.49, the default: the view follows it)."""
        size = self.config.size
        margin = int(size * self.config.dead_zone)
        on_screen = self.avatar_xy - self.camera_xy
        camera = np.where(on_screen < margin, self.avatar_xy - margin, self.camera_xy)
        camera = np.where(on_screen > size - margin, self.avatar_xy - (size - margin), camera)
        self.camera_xy = np.clip(camera, 0, self.config.world_size - size)

    # ----------------------------------------------------------------------- rendering

    def _render_frame(self) -> np.ndarray:
        size = self.config.size
        cx, cy = (int(v) for v in self.camera_xy)
        frame = self.world[cy:cy + size, cx:cx + size].copy()
        rgb, mask = self.critter_sprite
        corner = self.critter_xy - self.camera_xy - mask.shape[0] // 2
        visible = np.all((corner > -mask.shape[0]) & (corner < size), axis=1)
        for left, top in corner[visible]:
            blit(frame, rgb, mask, int(left), int(top))
        rgb, mask = self.avatar_sprites[self.facing]
        left, top = self.avatar_xy - self.camera_xy - self.config.tile // 2
        blit(frame, rgb, mask, int(left), int(top))
        self.weather.draw(frame)
        return frame

    def _info(self) -> dict:
        ax, ay = (int(v) for v in self.avatar_xy)
        cx, cy = (int(v) for v in self.camera_xy)
        return {"avatar_xy": (ax, ay), "camera_xy": (cx, cy), "avatar_screen_xy": (ax - cx, ay - cy),
                "facing": self.facing, "theme": self.theme.index, "prompt": self.prompt,
                "flowers": len(self.flowers), "critters_xy": self.critter_xy.copy()}


def register_game() -> None:
    """Register `StreamVideoGame-v0` with Gymnasium (safe to call more than once)."""
    if GAME_ID not in gym.registry:
        gym.register(id=GAME_ID, entry_point="streamvideo.envs.game.env:StreamVideoGameEnv",
                     max_episode_steps=MAX_EPISODE_STEPS)
