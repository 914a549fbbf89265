"""The key map's rules on key names (`KeyboardEvent.code`), as the browser page sends them: the same actions as
`streamvideo play` gets from the same keys through pygame's codes."""

import pygame
import pytest

from streamvideo.apps.keymap import PYGAME_CODES
from streamvideo.apps.keymap import KeyMap as PygameKeyMap
from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.keymap import KEY_NAMES, KeyMap
from streamvideo.engine.presets import GAME_ACTIONS


def test_game_actions_from_key_names():
    keymap = KeyMap(GAME_ACTIONS)   # NOOP, UP, DOWN, LEFT, RIGHT, PLANT
    assert [keymap.action([name]) for name in ("ArrowUp", "KeyS", "ArrowLeft", "KeyD", "Space")] == [1, 2, 3, 4, 5]
    assert keymap.action([]) == 0 and keymap.action(["KeyZ"]) == 0
    assert keymap.action(["ArrowLeft", "ArrowUp"]) == 1   # the newest press wins
    assert "Space" in keymap.keys and "Up/W  UP: action 1" in "\n".join(keymap.help_lines())


@pytest.mark.parametrize("spec", [GAME_ACTIONS, ActionSpec("discrete", n=12),
                                  ActionSpec("multi_discrete", sizes=(3, 3, 2)),
                                  ActionSpec("continuous", dim=3, low=(-2.0, -1.0, 0.0), high=(2.0, 1.0, 1.0))])
def test_names_and_pygame_codes_give_the_same_actions_and_help(spec):
    by_name, by_code = KeyMap(spec), PygameKeyMap(spec)
    assert by_name.help_lines() == by_code.help_lines()
    for first in KEY_NAMES:
        for second in ("ArrowUp", "Space", "ShiftRight"):
            held = [first, second]
            assert repr(by_name.action(held)) == repr(by_code.action([PYGAME_CODES[k] for k in held])), held


def test_the_pointer_sets_the_first_two_box_values():
    keymap = KeyMap(ActionSpec("continuous", dim=3, low=(-2.0, -1.0, 0.0), high=(2.0, 1.0, 1.0)))
    assert keymap.action(["Space"], pointer=(0.5, -1.0)).tolist() == [1.0, -1.0, 1.0]


def test_pygame_codes_cover_every_key_name():
    assert set(PYGAME_CODES) == set(KEY_NAMES) and PYGAME_CODES["KeyW"] == pygame.K_w
