"""Step allocations ("4322222") and the timesteps each step count uses."""

from __future__ import annotations

from dataclasses import dataclass, field

# The released Diagonal Distillation implementation's timesteps (schedule time, before the shift warp).
DEFAULT_TIMESTEPS = {
    4: (1000, 933, 733, 100),
    3: (1000, 933, 100),
    2: (1000, 100),
    1: (1000,),
}
EXTENSIONS = ("cyclic", "hold")


@dataclass(frozen=True)
class StepSchedule:
    steps: tuple[int, ...]                  # denoising steps of chunk 0, 1, ... (e.g. 4,3,2,2,2,2,2)
    extend: str = "cyclic"                  # past the end: "cyclic" repeats the allocation, "hold" keeps the last
    timesteps: dict = field(default_factory=lambda: dict(DEFAULT_TIMESTEPS))  # step count -> timestep list

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a step schedule needs at least one chunk, got an empty allocation")
        if self.extend not in EXTENSIONS:
            raise ValueError(f"extend must be one of {EXTENSIONS}, got {self.extend!r}")
        for n in set(self.steps):
            if n < 1:
                raise ValueError(f"every chunk needs at least 1 step, got {n} in {self.steps}")
            if n not in self.timesteps:
                raise ValueError(f"no timestep list for {n} steps; give one with timesteps={{{n}: [...]}}")
            ts = self.timesteps[n]
            if len(ts) != n or any(a <= b for a, b in zip(ts, ts[1:])) or not all(0 < t <= 1000 for t in ts):
                raise ValueError(f"timesteps for {n} steps must be {n} decreasing values in (0, 1000], got {ts}")

    @classmethod
    def parse(cls, spec, extend: str = "cyclic", timesteps: dict | None = None) -> StepSchedule:
        """'4322222', [4, 3, 2], or a StepSchedule."""
        if isinstance(spec, StepSchedule):
            return spec
        if isinstance(spec, str):
            if not spec.isdigit():
                raise ValueError(f"a step allocation is a string of digits like '4322222', got {spec!r}")
            steps = tuple(int(c) for c in spec)
        else:
            steps = tuple(int(n) for n in spec)
        merged = dict(DEFAULT_TIMESTEPS)
        merged.update({int(k): tuple(v) for k, v in (timesteps or {}).items()})
        return cls(steps, extend, merged)

    @classmethod
    def uniform(cls, n: int, **kw) -> StepSchedule:
        return cls.parse([n], **kw)

    def steps_for(self, chunk: int) -> int:
        if chunk < len(self.steps):
            return self.steps[chunk]
        if self.extend == "hold":
            return self.steps[-1]
        return self.steps[chunk % len(self.steps)]

    def timesteps_for(self, chunk: int) -> tuple[int, ...]:
        return tuple(self.timesteps[self.steps_for(chunk)])

    def __str__(self) -> str:
        return "".join(map(str, self.steps))
