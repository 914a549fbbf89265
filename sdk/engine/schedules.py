"""Step allocations ("4322222") and the noise levels each step count uses.

Every list holds noise levels sigma in (0, 1] (x_t = (1 - sigma) x0 + sigma eps); the network's
timestep input is 1000 * sigma. Storing sigma, not "schedule time", leaves no doubt about which
entries went through the shift warp.

- DIAGONAL (the released Diagonal Distillation, `pipeline/causal_inference.py`): only 1000 and 100
  are warped by shift 5 (sigma 1.0 and 0.3571); 933 and 733 are raw network timesteps, which the
  release's scheduler turns into the sigma of its nearest table entry (0.9331 and 0.7326). The
  values below are those table entries. (The release feeds the network the integers 933 / 733 /
  357 for chunks 0-1, a timestep input < 0.1 away from 1000 * sigma.) The paper names no 5-step
  list for its "5432222" ablation; ours adds sigma 0.8333 (warped 500) between 0.9331 and 0.7326.
- UNIFORM (Self-Forcing and HiAR, `self_forcing_dmd.yaml` / `hiar.yaml`): n evenly spaced schedule
  times 1000, 1000 - 1000/n, ... each warped: 4 steps -> [1000, 750, 500, 250] -> sigma
  [1.0, 0.9375, 0.8333, 0.625]. Step counts a named set lacks (a many-step teacher's [32]) take the
  uniform list, so any count up to MAX_STEPS works in every mode.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from .flow import shift_sigma


def warped(t: float) -> float:
    """Schedule time t in [0, 1000] -> sigma (the shift-5 warp)."""
    return float(shift_sigma(t / 1000.0))


DIAGONAL_SIGMAS = {
    5: (1.0, 0.9330629, warped(500), 0.7326159, warped(100)),
    4: (1.0, 0.9330629, 0.7326159, warped(100)),
    3: (1.0, 0.9330629, warped(100)),
    2: (1.0, warped(100)),
    1: (1.0,),
}
MAX_STEPS = 64
UNIFORM_SIGMAS = {n: tuple(warped(1000 * (1 - i / n)) for i in range(n)) for n in range(1, MAX_STEPS + 1)}
SIGMA_SETS = {"diagonal": DIAGONAL_SIGMAS, "uniform": UNIFORM_SIGMAS}
MODE_SIGMAS = {"diagonal": "diagonal", "self_forcing": "uniform", "hierarchical": "uniform"}   # defaults per mode
EXTENSIONS = ("cyclic", "hold")


def sigma_table(sigmas) -> dict:
    """A set name ("diagonal" | "uniform"), or {steps: [sigma, ...]} merged over the diagonal set; counts
    the set lacks fall back to the uniform lists."""
    if sigmas is None:
        return {**UNIFORM_SIGMAS, **DIAGONAL_SIGMAS}
    if isinstance(sigmas, str):
        if sigmas not in SIGMA_SETS:
            raise ValueError(f"unknown sigma set {sigmas!r}; expected one of {sorted(SIGMA_SETS)} "
                             "or a dict {steps: [sigma, ...]}")
        return {**UNIFORM_SIGMAS, **SIGMA_SETS[sigmas]}
    if not isinstance(sigmas, dict):
        raise TypeError(f"sigmas must be a set name or a dict {{steps: [sigma, ...]}}, got {type(sigmas).__name__}")
    merged = {**UNIFORM_SIGMAS, **DIAGONAL_SIGMAS}
    merged.update({int(k): tuple(float(s) for s in v) for k, v in sigmas.items()})
    return merged


@dataclass(frozen=True)
class StepSchedule:
    steps: tuple[int, ...]                  # denoising steps of chunk 0, 1, ... (e.g. 4,3,2,2,2,2,2)
    extend: str = "cyclic"                  # past the end: "cyclic" repeats the allocation, "hold" keeps the last
    sigmas: dict = field(default_factory=lambda: sigma_table(None))   # step count -> noise levels, decreasing

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a step schedule needs at least one chunk, got an empty allocation")
        if self.extend not in EXTENSIONS:
            raise ValueError(f"extend must be one of {EXTENSIONS}, got {self.extend!r}")
        for n in set(self.steps):
            if n < 1:
                raise ValueError(f"every chunk needs at least 1 step, got {n} in {self.steps}")
            if n not in self.sigmas:
                raise ValueError(f"no noise levels for {n} steps; give them with sigmas={{{n}: [1.0, ...]}}")
            levels = self.sigmas[n]
            if len(levels) != n or any(a <= b for a, b in zip(levels, levels[1:])) \
                    or not all(0 < s <= 1 for s in levels):
                raise ValueError(f"sigmas for {n} steps must be {n} decreasing noise levels in (0, 1], got {levels}")

    @classmethod
    def parse(cls, spec, extend: str = "cyclic", sigmas=None) -> StepSchedule:
        """'4322222', [4, 3, 2], or a StepSchedule; sigmas: a set name or {steps: [sigma, ...]}."""
        if isinstance(spec, StepSchedule):
            return spec
        if isinstance(spec, str):
            if not spec.isdigit():
                raise ValueError(f"a step allocation is a string of digits like '4322222', got {spec!r}")
            steps = tuple(int(c) for c in spec)
        else:
            steps = tuple(int(n) for n in spec)
        return cls(steps, extend, sigma_table(sigmas))

    def steps_for(self, chunk: int) -> int:
        if chunk < len(self.steps):
            return self.steps[chunk]
        if self.extend == "hold":
            return self.steps[-1]
        return self.steps[chunk % len(self.steps)]

    def sigmas_for(self, chunk: int) -> tuple[float, ...]:
        return tuple(self.sigmas[self.steps_for(chunk)])

    def all_sigmas(self) -> tuple[float, ...]:
        """Every noise level the schedule visits, decreasing (what the ODE pairs record)."""
        return tuple(sorted({s for n in set(self.steps) for s in self.sigmas[n]}, reverse=True))

    def __str__(self) -> str:
        return "".join(map(str, self.steps))


def schedule_text(text: str) -> str:
    """argparse type: a step allocation such as "4322222", checked now and kept as text (the rollout mode
    picks the noise levels of each step count). Every command that takes --schedule uses it, training's too."""
    try:
        StepSchedule.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
