"""Keyboard -> model action, derived from the model's action spec (used by `streamvideo play`).

Conventions, so the same keys mean the same thing for every model:
- discrete:        0 = no key; 1 up, 2 down, 3 left, 4 right (arrows / WASD), 5 space,
                   6 shift, 7 E, 8 Q, then the number keys 1-9 for any further actions.
- multi_discrete:  a key set of size 2 is a button (0 released, 1 pressed); a key set of size >= 3 is
                   an axis (0 none, 1 left / up, 2 right / down), the first axis horizontal, the second
                   vertical. Buttons take space, shift, E, Q in order.
- continuous:      dim 0 horizontal (left -1, right +1), dim 1 vertical (down -1, up +1), further dims
                   are buttons (+1 while held) on space, shift, E, Q.
Key sets or dims left over when the keys run out stay at 0 and are listed as unbound on the help overlay.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

from .actions import ActionSpec

ARROWS = {  # direction -> (keys, label)
    "up": ((pygame.K_UP, pygame.K_w), "Up/W"),
    "down": ((pygame.K_DOWN, pygame.K_s), "Down/S"),
    "left": ((pygame.K_LEFT, pygame.K_a), "Left/A"),
    "right": ((pygame.K_RIGHT, pygame.K_d), "Right/D"),
}
BUTTONS = (((pygame.K_SPACE,), "Space"), ((pygame.K_LSHIFT, pygame.K_RSHIFT), "Shift"),
           ((pygame.K_e,), "E"), ((pygame.K_q,), "Q"))
NUMBER_KEYS = tuple(((getattr(pygame, f"K_{i}"),), str(i)) for i in range(1, 10))


@dataclass(frozen=True)
class Binding:
    keys: tuple[int, ...]  # pygame key codes; any of them triggers the binding
    label: str             # key names shown on the help overlay ("Left/A")
    slot: int              # discrete: the action id; multi_discrete / continuous: the entry it sets
    value: float           # the value the entry takes while a key is held
    meaning: str           # what it does ("action 3", "axis 0 -")


class KeyMap:
    """Maps the keys currently held to a valid action of `spec`."""

    def __init__(self, spec: ActionSpec):
        self.spec = spec
        self.unbound: list[str] = []
        self.bindings = {"discrete": self._discrete, "multi_discrete": self._multi_discrete,
                         "continuous": self._continuous, "none": lambda: []}[spec.kind]()

    @property
    def keys(self) -> set[int]:
        """Every key this map reads."""
        return {key for binding in self.bindings for key in binding.keys}

    def action(self, held: list[int]):
        """Action for the keys in `held` (oldest press first; for discrete actions the newest press wins)."""
        active = [b for b in self.bindings if any(key in held for key in b.keys)]
        if self.spec.kind in ("none", "discrete"):
            newest = max(active, key=lambda b: max(held.index(k) for k in b.keys if k in held), default=None)
            return newest.slot if newest else 0
        action = self.spec.noop()
        for slot in {b.slot for b in active}:
            values = [b.value for b in active if b.slot == slot]
            action[slot] = values[0] if len(values) == 1 else 0  # opposite keys of one axis cancel out
        return self.spec.validate(action)

    def help_lines(self) -> list[str]:
        lines = [f"{b.label:>9}  {b.meaning}" for b in self.bindings]
        return lines + [f"{'(unbound)':>9}  {name}" for name in self.unbound]

    # ---------------------------------------------------------------- builders, one per action kind

    def _discrete(self) -> list[Binding]:
        keys = [ARROWS[d] for d in ("up", "down", "left", "right")] + list(BUTTONS) + list(NUMBER_KEYS)
        names = ["up", "down", "left", "right"] + [label.lower() for _, label in BUTTONS]
        bindings = []
        for action_id in range(1, self.spec.n):
            if action_id > len(keys):
                self.unbound.append(f"action {action_id}")
                continue
            codes, label = keys[action_id - 1]
            name = names[action_id - 1] if action_id <= len(names) else "extra"
            bindings.append(Binding(codes, label, action_id, 1.0, f"action {action_id} ({name})"))
        return bindings

    def _multi_discrete(self) -> list[Binding]:
        axes = [("left", "right"), ("up", "down")]
        buttons = list(BUTTONS)
        bindings = []
        for slot, size in enumerate(self.spec.sizes):
            if size >= 3 and axes:
                negative, positive = axes.pop(0)
                bindings.append(Binding(*ARROWS[negative], slot, 1, f"set {slot} = 1 ({negative})"))
                bindings.append(Binding(*ARROWS[positive], slot, 2, f"set {slot} = 2 ({positive})"))
            elif size == 2 and buttons:
                codes, label = buttons.pop(0)
                bindings.append(Binding(codes, label, slot, 1, f"set {slot} = 1 (button)"))
            else:
                self.unbound.append(f"key set {slot} (size {size})")
        return bindings

    def _continuous(self) -> list[Binding]:
        axes = [("left", "right"), ("down", "up")]
        buttons = list(BUTTONS)
        bindings = []
        for dim in range(self.spec.dim):
            if axes:
                negative, positive = axes.pop(0)
                bindings.append(Binding(*ARROWS[negative], dim, -1.0, f"dim {dim} = -1 ({negative})"))
                bindings.append(Binding(*ARROWS[positive], dim, 1.0, f"dim {dim} = +1 ({positive})"))
            elif buttons:
                codes, label = buttons.pop(0)
                bindings.append(Binding(codes, label, dim, 1.0, f"dim {dim} = +1"))
            else:
                self.unbound.append(f"dim {dim}")
        return bindings

