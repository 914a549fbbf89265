"""Action specs: what a model's action conditioning accepts, and validation of user actions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ActionSpec:
    kind: str = "none"          # "none" | "discrete" | "multi_discrete" | "continuous"
    n: int = 0                  # discrete: number of actions
    sizes: tuple[int, ...] = () # multi_discrete: choices per key set
    dim: int = 0                # continuous: vector size (values in [-1, 1])

    def __post_init__(self):
        if self.kind not in ("none", "discrete", "multi_discrete", "continuous"):
            raise ValueError(f"ActionSpec.kind must be none|discrete|multi_discrete|continuous, got {self.kind!r}")

    @property
    def embed_inputs(self) -> int:
        """Width of the vector the action embedder reads (one-hot or raw values)."""
        return {"none": 0, "discrete": self.n, "multi_discrete": sum(self.sizes), "continuous": self.dim}[self.kind]

    def describe(self) -> str:
        return {"none": "no actions", "discrete": f"Discrete({self.n})",
                "multi_discrete": f"MultiDiscrete({list(self.sizes)})",
                "continuous": f"Box(-1, 1, ({self.dim},))"}[self.kind]

    def gym_space(self):
        import gymnasium as gym
        if self.kind == "discrete":
            return gym.spaces.Discrete(self.n)
        if self.kind == "multi_discrete":
            return gym.spaces.MultiDiscrete(list(self.sizes))
        if self.kind == "continuous":
            return gym.spaces.Box(-1.0, 1.0, (self.dim,), np.float32)
        return gym.spaces.Discrete(1)  # a model without actions still steps

    def noop(self):
        """The action used when the caller passes None."""
        if self.kind == "continuous":
            return np.zeros(self.dim, np.float32)
        if self.kind == "multi_discrete":
            return np.zeros(len(self.sizes), np.int64)
        return 0

    def validate(self, action):
        """Return the action as a numpy value, or raise ValueError naming the space and the value."""
        if action is None:
            return self.noop()
        arr = np.asarray(action)
        shown = action.tolist() if isinstance(action, (np.ndarray, np.generic)) else action   # 9, not np.int64(9)
        bad = ValueError(f"action {shown!r} is outside the model's action space {self.describe()}")
        if self.kind in ("none", "discrete"):
            n = max(self.n, 1)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.integer) or not 0 <= int(arr) < n:
                raise bad
            return int(arr)
        if self.kind == "multi_discrete":
            if arr.shape != (len(self.sizes),) or not np.issubdtype(arr.dtype, np.integer):
                raise bad
            if np.any(arr < 0) or np.any(arr >= np.asarray(self.sizes)):
                raise bad
            return arr.astype(np.int64)
        if arr.shape != (self.dim,) or not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise bad
        if np.any(np.abs(arr) > 1.0 + 1e-6):
            raise bad
        return arr.astype(np.float32)

    def encode(self, actions: list) -> torch.Tensor:
        """Validated actions -> float vectors [B, embed_inputs] for the model's action embedder."""
        out = torch.zeros(len(actions), self.embed_inputs)
        for b, a in enumerate(actions):
            if self.kind == "discrete":
                out[b, a] = 1.0
            elif self.kind == "multi_discrete":
                offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
                out[b, torch.as_tensor(offsets + a)] = 1.0
            elif self.kind == "continuous":
                out[b] = torch.as_tensor(a)
        return out
