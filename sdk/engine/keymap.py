"""Keyboard (and mouse) -> model action, derived from the model's action spec: the rules `streamvideo play`
(pygame, `streamvideo.apps.keymap`) and the browser page of `streamvideo serve --web` (`streamvideo.bridge.web`)
share, so the same keys mean the same thing in both and for every model.

Keys are named as the browser's `KeyboardEvent.code` names them (physical keys, whatever the keyboard layout:
"ArrowUp", "KeyW", "Space", "ShiftLeft", "Digit1"); a front end passes `codes`, what its input events carry
for each name (pygame's key constants), or none to read the names themselves.

The rules:

- Discrete with action names (the env's `get_action_meanings()`, as Atari envs and the built-in game give
  them; the model folder keeps them): a name is read as the keys it needs, UP, DOWN, LEFT, RIGHT (arrows or
  WASD) and FIRE (space), alone or combined as Atari writes them (UPRIGHT, DOWNLEFTFIRE); NOOP or NONE needs
  no key. Any other name (the game's PLANT) gets a key of its own: space when no name uses FIRE, then shift,
  E, Q, then the number keys 1-9, 0. The keys held select the action whose name needs exactly them (up and
  right held: UPRIGHT); where no name does, the keys pressed longest ago are let go of one by one until one
  does (the newest press wins), and with no key the action is NOOP (or the first action).
- Discrete without names: number keys 1-9, 0, then space, shift, E, Q are actions 1, 2, 3, ...; no key is
  the first action. The newest press wins.
- MultiDiscrete: a key set of size 2 is a button (1 while held); a key set of size >= 3 is an axis
  (1 left / up, 2 right / down), the first axis horizontal, the second vertical. Buttons take space, shift,
  E, Q, then the number keys. MultiBinary: every entry is a button.
- Box: the first value is horizontal (left: its low bound, right: its high bound), the second vertical
  (down: low, up: high); further values are buttons (high while held) on space, shift, E, Q, then the
  number keys. The mouse: while its left button is held, the pointer's place in the window sets the first
  two values instead (left edge low to right edge high, bottom low to top high).
Opposite keys of one axis cancel out. An entry without a key held stays at the no-op (the first action,
0, or the Box value nearest 0). Entries left over when the keys run out stay there too and are listed as
unbound. `help_lines()` lists every binding (play's help overlay, the page's key list).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from .actions import ActionSpec

ARROWS = {  # direction -> (key names, label)
    "up": (("ArrowUp", "KeyW"), "Up/W"),
    "down": (("ArrowDown", "KeyS"), "Down/S"),
    "left": (("ArrowLeft", "KeyA"), "Left/A"),
    "right": (("ArrowRight", "KeyD"), "Right/D"),
}
BUTTONS = ((("Space",), "Space"), (("ShiftLeft", "ShiftRight"), "Shift"), (("KeyE",), "E"), (("KeyQ",), "Q"))
NUMBER_KEYS = tuple(((f"Digit{i % 10}",), str(i % 10)) for i in range(1, 11))   # 1..9, 0
KEY_NAMES = tuple(dict.fromkeys(name for keys, _ in (*ARROWS.values(), *BUTTONS, *NUMBER_KEYS) for name in keys))
NAMED_KEYS = {"UP": ARROWS["up"], "DOWN": ARROWS["down"], "LEFT": ARROWS["left"], "RIGHT": ARROWS["right"],
              "FIRE": BUTTONS[0]}
OPPOSITE = {"UP": "DOWN", "DOWN": "UP", "LEFT": "RIGHT", "RIGHT": "LEFT"}
NO_KEY_NAMES = ("NOOP", "NONE")
COMBINATIONS_PER_LINE = 3   # the help overlay fits a 512-pixel window


@dataclass(frozen=True)
class Binding:
    keys: tuple[Hashable, ...]  # the key codes of the front end (its `codes`); any of them triggers it
    label: str             # key names shown on the help overlay ("Left/A")
    slot: int | str        # discrete: the action; named discrete: the key's name (UP, FIRE, PLANT);
                           # multi_discrete / continuous: the entry it sets (in the flattened action)
    value: float           # multi_discrete / continuous: the value the entry takes while a key is held
    meaning: str           # what it does ("action 3", "UP: action 2", "value 0 = -2")


def keys_of_name(meaning: str) -> tuple[str, ...] | None:
    """The named keys an action name needs ("UPRIGHTFIRE" -> UP, RIGHT, FIRE; "NOOP" -> none); None for a
    name that is not made of them."""
    name = re.sub(r"[^A-Z]", "", meaning.upper())
    if name in NO_KEY_NAMES:
        return ()
    parts = re.findall("|".join(NAMED_KEYS), name)
    return tuple(parts) if parts and "".join(parts) == name else None


class KeyMap:
    """Maps the keys currently held (and the mouse pointer) to a valid action of `spec`.

    `codes`: for each of KEY_NAMES, the code the front end's key events carry (pygame: `pygame.K_UP` for
    "ArrowUp"); None reads the names themselves (the browser's `KeyboardEvent.code`)."""

    def __init__(self, spec: ActionSpec, codes: Mapping[str, Hashable] | None = None):
        self.spec = spec
        self.codes = codes
        self.unbound: list[str] = []
        self.named = spec.kind == "discrete" and bool(spec.meanings)   # keys follow the action names
        self.by_keys: dict[frozenset, int] = {}   # named discrete: the names of the keys held -> the action
        build = {"discrete": self._named if self.named else self._numbered, "multi_discrete": self._multi_discrete,
                 "continuous": self._continuous, "none": lambda: []}[spec.kind]
        self.bindings = build()

    @property
    def keys(self) -> set:
        """Every key this map reads."""
        return {key for binding in self.bindings for key in binding.keys}

    def action(self, held: list, pointer: tuple[float, float] | None = None):
        """Action for the keys in `held` (oldest press first). `pointer`: the mouse's place in the window,
        x and y in [-1, 1] (right and up positive), while its button is held; None otherwise."""
        active = sorted((b for b in self.bindings if any(key in held for key in b.keys)),
                        key=lambda b: max(held.index(k) for k in b.keys if k in held))   # oldest press first
        if self.named:
            return self._named_action([b.slot for b in active])
        if self.spec.kind in ("none", "discrete"):
            return active[-1].slot if active else self.spec.noop()
        if self.spec.kind == "multi_discrete":
            action = self.spec.noop().reshape(-1)
            for slot, value in held_values(active):
                action[slot] = value
            return self.spec.validate(action.reshape(self.spec.shape))
        unit = self.spec.scaled(self.spec.noop())   # Box values as the model sees them, in [-1, 1]
        for slot, value in held_values(active):
            unit[slot] = value
        if pointer is not None:
            unit[:2] = pointer[:min(2, self.spec.dim)]
        return self.spec.validate(self.spec.unscaled(unit))

    def help_lines(self) -> list[str]:
        lines = [f"{b.label:>9}  {b.meaning}" for b in self.bindings]
        if self.spec.kind == "discrete":
            lines.insert(0, f"{'(no key)':>9}  {self._meaning_of(self.by_keys.get(frozenset(), self.spec.noop()))}")
        if self.spec.kind == "continuous":
            lines.append(f"{'mouse':>9}  left button held: the pointer sets value 0" + " and 1" * (self.spec.dim > 1))
        return lines + self._combination_lines() + [f"{'(unbound)':>9}  {name}" for name in self.unbound]

    # ---------------------------------------------------------------- discrete

    def _bind(self, names: tuple[str, ...], label: str, slot: int | str, value: float, meaning: str) -> Binding:
        """A binding of the keys `names`, as the front end's codes."""
        keys = names if self.codes is None else tuple(self.codes[name] for name in names)
        return Binding(keys, label, slot, value, meaning)


    def _meaning_of(self, action: int) -> str:
        name = self.spec.meanings[action - self.spec.start] if self.named else ""
        return f"{name}: action {action}" if name else f"action {action}"

    def _named(self) -> list[Binding]:
        """A binding per key the names need (directions, FIRE), then one per other name."""
        for index, meaning in enumerate(self.spec.meanings):
            names = keys_of_name(meaning)
            names = (meaning,) if names is None else names   # a name of its own is a key of its own
            self.by_keys.setdefault(frozenset(names), self.spec.start + index)   # a repeated name: its first action
        bindings = [self._named_binding(name, *NAMED_KEYS[name]) for name in NAMED_KEYS if self._uses(name)]
        own_keys = [b for b in BUTTONS + NUMBER_KEYS if b is not NAMED_KEYS["FIRE"] or not self._uses("FIRE")]
        for meaning in self.spec.meanings:
            if keys_of_name(meaning) is not None or any(b.slot == meaning for b in bindings):
                continue
            if not own_keys:
                self.unbound.append(meaning)
                continue
            bindings.append(self._named_binding(meaning, *own_keys.pop(0)))
        return bindings

    def _uses(self, name: str) -> bool:
        return any(name in names for names in self.by_keys)

    def _named_binding(self, name: str, keys: tuple[str, ...], label: str) -> Binding:
        alone = self.by_keys.get(frozenset([name]))
        meaning = self._meaning_of(alone) if alone is not None else f"{name} (with other keys)"
        return self._bind(keys, label, name, 1.0, meaning)

    def _named_action(self, names: list[str]) -> int:
        names = [name for name in names if OPPOSITE.get(name) not in names]   # opposite directions cancel
        while names and frozenset(names) not in self.by_keys:
            names = names[1:]   # let go of the oldest press
        return self.by_keys.get(frozenset(names), self.spec.noop())

    def _combination_lines(self) -> list[str]:
        combined = [f"{self.spec.meanings[action - self.spec.start]} {action}"
                    for names, action in self.by_keys.items() if len(names) > 1]
        return [f"{'together':>9}  " + ", ".join(combined[i:i + COMBINATIONS_PER_LINE])
                for i in range(0, len(combined), COMBINATIONS_PER_LINE)]

    def _numbered(self) -> list[Binding]:
        keys = NUMBER_KEYS + BUTTONS
        actions = range(self.spec.start + 1, self.spec.start + self.spec.n)
        self.unbound = [f"action {action}" for action in actions[len(keys):]]
        return [self._bind(names, label, action, 1.0, f"action {action}")
                for (names, label), action in zip(keys, actions)]

    # ---------------------------------------------------------------- multi_discrete, continuous

    def _multi_discrete(self) -> list[Binding]:
        axes = [("left", "right"), ("up", "down")]
        buttons = list(BUTTONS + NUMBER_KEYS)
        bindings = []
        for slot, size in enumerate(self.spec.sizes):
            if size >= 3 and axes:
                negative, positive = axes.pop(0)
                bindings.append(self._bind(*ARROWS[negative], slot, 1, f"set {slot} = 1 ({negative})"))
                bindings.append(self._bind(*ARROWS[positive], slot, 2, f"set {slot} = 2 ({positive})"))
            elif size == 2 and buttons:
                names, label = buttons.pop(0)
                bindings.append(self._bind(names, label, slot, 1, f"set {slot} = 1 (button)"))
            else:
                self.unbound.append(f"key set {slot} (size {size})")
        return bindings

    def _continuous(self) -> list[Binding]:
        axes = [("left", "right"), ("down", "up")]
        buttons = list(BUTTONS + NUMBER_KEYS)
        low, high = self.spec.low, self.spec.high
        bindings = []
        for dim in range(self.spec.dim):
            if axes:
                negative, positive = axes.pop(0)
                bindings.append(self._bind(*ARROWS[negative], dim, -1.0, f"value {dim} = {low[dim]:g} ({negative})"))
                bindings.append(self._bind(*ARROWS[positive], dim, 1.0, f"value {dim} = {high[dim]:g} ({positive})"))
            elif buttons:
                names, label = buttons.pop(0)
                bindings.append(self._bind(names, label, dim, 1.0, f"value {dim} = {high[dim]:g}"))
            else:
                self.unbound.append(f"value {dim}")
        return bindings


def held_values(active: list[Binding]):
    """(entry, value) of each entry exactly one active binding sets; opposite keys of an axis cancel out."""
    for slot in dict.fromkeys(b.slot for b in active):
        values = [b.value for b in active if b.slot == slot]
        if len(values) == 1:
            yield slot, values[0]
