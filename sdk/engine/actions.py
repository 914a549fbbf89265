"""Action specs: the action space a model takes, validation of user actions, and what the network reads.

A spec is one Gymnasium action space, exactly (`gym_space()`), so `gym.make("StreamVideo-v0", model=folder)`
offers the space of the env the model was trained on:

    discrete        Discrete(n, start), with the env's action names where it gives them
                    (`get_action_meanings()`, as Atari envs and the built-in game have)
    multi_discrete  MultiDiscrete(nvec), or MultiBinary(shape) with binary=True
    continuous      Box(low, high, shape, float32); the network sees the values rescaled to [-1, 1]
    none            a model without action input (it steps with Discrete(1))

The network reads one vector per latent frame (`vectors`): a one-hot of the action (discrete), one one-hot
per key set (multi_discrete) or the rescaled values (continuous).

A model folder's streamvideo.json keeps the spec as its "action" entry (`to_dict`); `from_dict` reads that
and also the "action_space" that `streamvideo collect` records in a dataset's meta.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

# the fields that describe a space of each kind, as to_dict writes them
KIND_FIELDS = {"none": (), "discrete": ("n", "start", "meanings"), "multi_discrete": ("sizes", "shape", "binary"),
               "continuous": ("dim", "shape", "low", "high")}
BOUND_SLACK = 1e-6   # relative tolerance on Box bounds: a bound that went through float32 and back still fits


@dataclass(frozen=True)
class ActionSpec:
    kind: str = "none"               # "none" | "discrete" | "multi_discrete" | "continuous"
    n: int = 0                       # discrete: number of actions
    sizes: tuple[int, ...] = ()      # multi_discrete: choices per key set (the nvec, flattened)
    dim: int = 0                     # continuous: number of values
    start: int = 0                   # discrete: the first action's value (Discrete(n, start))
    shape: tuple[int, ...] = ()      # multi_discrete / continuous: the shape of one action (default flat)
    binary: bool = False             # multi_discrete: a MultiBinary space (every size 2)
    low: tuple[float, ...] = ()      # continuous: the bounds, flattened (default -1 and 1)
    high: tuple[float, ...] = ()
    meanings: tuple[str, ...] = field(default=(), compare=False)  # discrete: names; labels, not part of the space

    def __post_init__(self):
        if self.kind not in KIND_FIELDS:
            raise ValueError(f"ActionSpec.kind must be one of {'|'.join(KIND_FIELDS)}, got {self.kind!r}")
        # normalised (JSON gives lists; the defaults are the flat shape and [-1, 1]) so equal spaces compare equal
        flat_shape = {"multi_discrete": (len(self.sizes),), "continuous": (self.dim,)}.get(self.kind, ())
        normal = {"sizes": tuple(int(s) for s in self.sizes), "meanings": tuple(str(m) for m in self.meanings),
                  "shape": tuple(int(s) for s in self.shape) or flat_shape,
                  "low": tuple(float(v) for v in self.low) or (-1.0,) * self.dim,
                  "high": tuple(float(v) for v in self.high) or (1.0,) * self.dim}
        for name, value in normal.items():
            object.__setattr__(self, name, value)
        problem = self._problem()
        if problem:
            raise ValueError(f"{self.kind} ActionSpec: {problem}")

    def _problem(self) -> str | None:
        """What makes the fields inconsistent, or None."""
        if self.kind == "discrete" and self.meanings and len(self.meanings) != self.n:
            return f"{len(self.meanings)} meanings for {self.n} actions"
        if self.kind == "multi_discrete" and int(np.prod(self.shape)) != len(self.sizes):
            return f"shape {self.shape} does not hold {len(self.sizes)} key sets"
        if self.kind == "multi_discrete" and self.binary and set(self.sizes) - {2}:
            return f"a MultiBinary space has key sets of size 2, got {self.sizes}"
        if self.kind != "continuous":
            return None
        if int(np.prod(self.shape)) != self.dim or len(self.low) != self.dim or len(self.high) != self.dim:
            return f"shape {self.shape}, {len(self.low)} lows and {len(self.high)} highs for {self.dim} values"
        low, high = np.asarray(self.low), np.asarray(self.high)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            return (f"Box bounds must be finite with low < high (the model sees actions rescaled to [-1, 1]), "
                    f"got low {list(self.low)} and high {list(self.high)}")
        return None

    @property
    def embed_inputs(self) -> int:
        """Width of the vector the action embedder reads (one-hot or rescaled values)."""
        return {"none": 0, "discrete": self.n, "multi_discrete": sum(self.sizes), "continuous": self.dim}[self.kind]

    def describe(self) -> str:
        return "no actions" if self.kind == "none" else str(self.gym_space())

    def gym_space(self):
        import gymnasium as gym
        if self.kind == "discrete":
            return gym.spaces.Discrete(self.n, start=self.start)
        if self.kind == "multi_discrete" and self.binary:
            return gym.spaces.MultiBinary(self.shape[0] if len(self.shape) == 1 else self.shape)   # as envs write it
        if self.kind == "multi_discrete":
            return gym.spaces.MultiDiscrete(np.reshape(self.sizes, self.shape))
        if self.kind == "continuous":
            low, high = (np.reshape(np.asarray(b, np.float32), self.shape) for b in (self.low, self.high))
            return gym.spaces.Box(low, high, self.shape, np.float32)
        return gym.spaces.Discrete(1)  # a model without actions still steps

    def noop(self):
        """The action used when the caller passes None, and the label of context frames: the first
        action, zeros, or the Box value nearest zero (what `collect` records on reset frames)."""
        if self.kind == "continuous":
            return np.clip(np.zeros(self.dim), self.low, self.high).astype(np.float32).reshape(self.shape)
        if self.kind == "multi_discrete":
            return np.zeros(self.shape, np.int64)
        return self.start

    def validate(self, action):
        """Return the action as a numpy value, or raise ValueError naming the space and the value."""
        if action is None:
            return self.noop()
        arr = np.asarray(action)
        if not self._holds(arr):
            shown = action.tolist() if isinstance(action, (np.ndarray, np.generic)) else action  # 9, not np.int64(9)
            raise ValueError(f"action {shown!r} is outside the model's action space {self.describe()}")
        if self.kind in ("none", "discrete"):
            return int(arr)
        return arr.astype(np.int64 if self.kind == "multi_discrete" else np.float32)

    def _holds(self, arr: np.ndarray) -> bool:
        if self.kind in ("none", "discrete"):
            return (arr.shape == () and np.issubdtype(arr.dtype, np.integer)
                    and self.start <= int(arr) < self.start + max(self.n, 1))
        if arr.shape != self.shape:
            return False
        flat = arr.reshape(-1)
        if self.kind == "multi_discrete":
            return np.issubdtype(arr.dtype, np.integer) and bool(np.all((flat >= 0) & (flat < np.asarray(self.sizes))))
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(flat)):
            return False
        low, high = np.asarray(self.low), np.asarray(self.high)
        slack = BOUND_SLACK * (1 + np.maximum(abs(low), abs(high)))
        return bool(np.all(flat >= low - slack) and np.all(flat <= high + slack))

    # ---------------------------------------------------------------- what the network reads

    def flat(self, values: np.ndarray) -> np.ndarray:
        """Actions [..., *shape], or flattened [..., size] as `collect` stores them -> [..., size]."""
        size = self.dim if self.kind == "continuous" else len(self.sizes)
        whole = values.shape[values.ndim - len(self.shape):] == self.shape
        return values.reshape(*values.shape[:values.ndim - len(self.shape) if whole else -1], size)

    def scaled(self, values) -> np.ndarray:
        """Box actions [..., *shape] (or flattened) -> [..., dim] rescaled from [low, high] to [-1, 1] (clipped)."""
        flat = self.flat(np.asarray(values, np.float64))
        low, high = np.asarray(self.low), np.asarray(self.high)
        return np.clip(2 * (flat - low) / (high - low) - 1, -1, 1).astype(np.float32)

    def unscaled(self, unit) -> np.ndarray:
        """The inverse of `scaled`: values [..., dim] in [-1, 1] -> Box actions [..., *shape]."""
        unit = np.clip(np.asarray(unit, np.float64), -1, 1)
        low, high = np.asarray(self.low), np.asarray(self.high)
        values = np.clip(low + (unit + 1) / 2 * (high - low), low, high).astype(np.float32)
        return values.reshape(*unit.shape[:-1], *self.shape)

    def vectors(self, values) -> torch.Tensor:
        """Actions [..., *action shape] (or flattened) -> the network's input [..., embed_inputs].

        Values outside the space are clamped into it: `collect` records 0 / zeros on reset frames, which
        a Discrete(n, start=1) or a Box(0.5, 1) does not hold.
        """
        values = np.asarray(values)
        if self.kind == "continuous":
            return torch.from_numpy(self.scaled(values))
        if self.kind == "discrete":
            index = np.clip(values.astype(np.int64) - self.start, 0, self.n - 1)
            return torch.nn.functional.one_hot(torch.from_numpy(index), self.n).float()
        if self.kind == "multi_discrete":
            sizes = np.asarray(self.sizes)
            flat = self.flat(values.astype(np.int64))
            index = np.clip(flat, 0, sizes - 1) + np.concatenate([[0], np.cumsum(sizes)[:-1]])  # into the concatenation
            return torch.nn.functional.one_hot(torch.from_numpy(index), self.embed_inputs).sum(-2).float()
        return torch.zeros(*values.shape, 0)

    def encode(self, actions: list) -> torch.Tensor:
        """Validated actions -> float vectors [B, embed_inputs] for the model's action embedder."""
        return self.vectors(np.stack([np.asarray(a) for a in actions]))

    # ---------------------------------------------------------------- as JSON

    def to_dict(self) -> dict:
        """The fields of this kind as JSON (a model folder's "action" entry), and the space's repr."""
        entry = {"kind": self.kind}
        for name in KIND_FIELDS[self.kind]:
            value = getattr(self, name)
            entry[name] = list(value) if isinstance(value, tuple) else value
        return {**entry, "repr": self.describe()}

    @classmethod
    def from_dict(cls, entry: dict) -> ActionSpec:
        """A spec from `to_dict`'s JSON, or from the "action_space" `streamvideo collect` records, which
        keeps a space's shape only in its repr and a MultiBinary space as its key sets."""
        kind = entry.get("kind", "none")
        fields = {name: entry[name] for name in KIND_FIELDS.get(kind, ()) if name in entry}
        recorded = str(entry.get("repr", ""))
        if kind in ("multi_discrete", "continuous") and "shape" not in entry:
            fields["shape"] = shape_in_repr(recorded)
        if kind == "multi_discrete" and "binary" not in entry:
            fields["binary"] = recorded.startswith("MultiBinary")
        return cls(kind, **fields)


def shape_in_repr(text: str) -> tuple[int, ...]:
    """The shape a Box or MultiBinary repr shows ("Box(-2.0, 2.0, (1,), float32)", "MultiBinary((2, 3))",
    "MultiBinary(4)"); () where it shows none (a MultiDiscrete's nvec is flattened)."""
    found = re.findall(r"\((\d+(?:, \d+)*),?\)", text)
    return tuple(int(v) for v in found[-1].split(", ")) if found else ()
