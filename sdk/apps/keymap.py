"""The key map of `streamvideo play`: the shared rules of `streamvideo.engine.keymap` (which keys drive which
actions, for every kind of action space) read from pygame's key codes.

    keymap = KeyMap(generator.action_spec)
    action = keymap.action([pygame.K_UP, pygame.K_SPACE])   # keys held, oldest press first
"""

from __future__ import annotations

import pygame

from ..engine import keymap
from ..engine.actions import ActionSpec

PYGAME_CODES = {  # KeyboardEvent.code name -> pygame key constant, for every key the rules use (KEY_NAMES)
    "ArrowUp": pygame.K_UP, "ArrowDown": pygame.K_DOWN, "ArrowLeft": pygame.K_LEFT, "ArrowRight": pygame.K_RIGHT,
    "Space": pygame.K_SPACE, "ShiftLeft": pygame.K_LSHIFT, "ShiftRight": pygame.K_RSHIFT,
    **{f"Key{letter}": getattr(pygame, f"K_{letter.lower()}") for letter in "WASDEQ"},
    **{f"Digit{digit}": getattr(pygame, f"K_{digit}") for digit in range(10)},
}


class KeyMap(keymap.KeyMap):
    """`streamvideo.engine.keymap.KeyMap` on pygame key codes."""

    def __init__(self, spec: ActionSpec):
        super().__init__(spec, PYGAME_CODES)
