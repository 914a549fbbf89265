"""What every training stage shares: arguments from a dataclass, seeding, checkpoint / resume, metrics.

A stage script reads top to bottom:

    args = from_namespace(Args, namespace)
    run = Run(args.out, args, seed=args.seed, total_steps=args.steps, save_every=args.save_every,
              modules={"model": model}, optimizers={"opt": opt})
    for step in run.steps(stop_after=args.stop_after):   # tqdm bar; resumes at the checkpoint's step
        ...
        run.log(loss=loss.item())                          # one JSONL line per logged step
    run.finish()

Resume contract: `Run` saves modules, optimizers, the step and the torch / numpy / python RNG
states every `save_every` steps (write to a temporary file, then `os.replace`, so a kill never
leaves a half-written checkpoint). Restarting the same command continues from the last checkpoint
and gives the same result as a run that was never interrupted; metric lines written after that
checkpoint are dropped so the metrics file has no duplicates.

Under torchrun (`distributed`), rank 0 alone writes args.json, checkpoints (the whole state, FSDP
shards gathered), metrics (means over ranks) and the bar; every rank resumes from the checkpoint,
after a barrier, and all ranks hold the same RNG state, so one checkpoint serves them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import types
import typing
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..engine.checkpoints import CheckpointError, load_state_checked
from ..engine.schedules import schedule_text
from ..engine.threads import positive_int
from .distributed import (
    barrier,
    global_mean,
    is_main,
    module_state_like,
    optimizer_state_like,
    shard_size,
    unwrapped,
    whole_state,
)
from .distributed import device as rank_device
from .distributed import start as start_processes

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
ARGS = "args.json"
# fields that mean the same in every stage, checked by argparse so a bad value is a one-line usage error
# before any work starts (other fields keep their annotated type)
CHECKED_FIELD_TYPES = {"steps": positive_int, "batch_size": positive_int, "save_every": positive_int,
                       "log_every": positive_int, "threads": positive_int, "stop_after": positive_int,
                       "schedule": schedule_text}


# --------------------------------------------------------------------------- arguments

def arg(default, help: str, **kw):
    """A dataclass field with its one-line doc (becomes the --flag's help).

    split=True: a count of the global batch, which torchrun's processes share in equal parts.
    """
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def flag_of(f: dataclasses.Field) -> str:
    return "--" + f.name.replace("_", "-")


def field_type(f: dataclasses.Field):
    """int / float / str / bool of a field, unwrapping `X | None`."""
    tp = f.type if not isinstance(f.type, str) else eval(f.type, vars(typing), {})  # noqa: S307 (annotations)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One --flag per field: bools become switches, `X | None` fields default to None."""
    for f in dataclasses.fields(cls):
        flag = flag_of(f)
        help_text = f.metadata.get("help", "") + (" (all processes together)" if f.metadata.get("split") else "")
        tp = CHECKED_FIELD_TYPES.get(f.name, field_type(f))
        if tp is bool:
            parser.add_argument(flag, action="store_true", default=f.default, help=help_text)
        elif f.default is dataclasses.MISSING:
            parser.add_argument(flag, type=tp, required=True, help=help_text)
        else:
            parser.add_argument(flag, type=tp, default=f.default, help=f"{help_text} (default: {f.default})")


@dataclasses.dataclass
class RunArgs:
    """The arguments every stage shares; a stage's `Args` subclasses it."""
    seed: int = arg(0, "seed of init, sampling and noise")
    stop_after: int | None = arg(None, "leave after N steps of this invocation (simulates a kill; re-run resumes)")
    threads: int = arg(2, "torch CPU threads")

    def start(self) -> None:
        """Process group (under torchrun), thread count and init seed, before the stage builds its modules."""
        start_processes()
        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)


@dataclasses.dataclass
class DiTRunArgs(RunArgs):
    """The arguments of the stages that train a DiT (teacher, student, distill)."""
    fsdp: bool = arg(False, "under torchrun, shard every DiT over the processes with FSDP2 (per transformer block, "
                            "bf16 compute, activation checkpointing): for the wan2.1-1.3b size")

    def start(self) -> None:
        start_processes(fsdp=self.fsdp)
        super().start()


def from_namespace(cls, namespace: argparse.Namespace):
    return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def check_equal_shares(args) -> None:
    """Every `split` count splits into equal shares over the processes, or the run stops with one line."""
    for f in dataclasses.fields(args):
        if f.metadata.get("split"):
            shard_size(getattr(args, f.name), flag_of(f))


# --------------------------------------------------------------------------- runs

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Run:
    """Output folder of one stage: args.json, checkpoint.pt, metrics.jsonl (see module doc)."""

    def __init__(self, out, args, *, seed: int, total_steps: int, save_every: int, modules: dict, optimizers: dict,
                 desc: str = ""):
        if total_steps < 1 or save_every < 1:
            raise ValueError(f"steps and save_every must be >= 1, got steps={total_steps}, save_every={save_every}")
        check_equal_shares(args)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.modules, self.optimizers = modules, optimizers
        self.total_steps, self.save_every, self.desc = total_steps, save_every, desc
        self.step = 0
        self.bar = None            # the progress bar, while steps() runs
        if is_main():
            (self.out / ARGS).write_text(json.dumps(dataclasses.asdict(args), indent=2))
        seed_everything(seed)
        barrier()  # every rank looks for the checkpoint before rank 0 can write one
        if (self.out / CHECKPOINT).exists():
            self.resume()

    def resume(self) -> None:
        path = self.out / CHECKPOINT
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated (a kill never leaves one, a full disk may) or not a checkpoint
            raise CheckpointError(f"cannot read {path}: {err}; delete it to start over, or pass another "
                                  f"--out") from err
        missing = (set(self.modules) - set(state["modules"])) | (set(self.optimizers) - set(state["optimizers"]))
        if missing:
            raise CheckpointError(f"{path} lacks {sorted(missing)}: was it written by another stage?")
        for name, module in self.modules.items():  # a resumed run must have the arguments that wrote it
            module = unwrapped(module)
            load_state_checked(module, module_state_like(state["modules"][name], module), f"{path} ({name})")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(optimizer_state_like(state["optimizers"][name], opt))
        set_rng_state(state["rng"])
        self.step = state["step"]
        self.truncate_metrics()

    def save(self) -> None:
        """Every rank gathers (FSDP shards are joined), rank 0 writes, the others wait for the file."""
        state = whole_state({"modules": {k: unwrapped(m).state_dict() for k, m in self.modules.items()},
                             "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}})
        if is_main():
            atomic_save({"step": self.step, "rng": rng_state(), **state}, self.out / CHECKPOINT)
        barrier()

    def truncate_metrics(self) -> None:
        """Drop metric lines of steps after the checkpoint (they are recomputed on resume)."""
        path = self.out / METRICS
        if path.exists() and is_main():
            keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] < self.step]
            path.write_text("".join(line + "\n" for line in keep))

    def steps(self, stop_after: int | None = None):
        """Yield step indices from the checkpoint's step to total_steps, checkpointing as it goes.

        stop_after: leave after this many steps of this invocation (simulates a kill; re-run to resume).
        """
        bar = tqdm(total=self.total_steps, initial=self.step, desc=self.desc, dynamic_ncols=True, disable=not is_main())
        self.bar = bar
        done = 0
        while self.step < self.total_steps and (stop_after is None or done < stop_after):
            yield self.step
            self.step += 1
            done += 1
            bar.update(1)
            if self.step % self.save_every == 0 or self.step == self.total_steps:
                self.save()
        bar.close()

    def show(self, text: str) -> None:
        """Text after the progress bar (the action probe's headline numbers, say)."""
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def log(self, **metrics) -> None:
        """One JSONL line for the current step (call inside the loop, before the next iteration, on every rank).

        Each rank passes its shard's values; the line holds their mean over ranks (the global batch's value
        for means over equal shards), written by rank 0.
        """
        values = torch.tensor([float(v) for v in metrics.values()], dtype=torch.float64, device=rank_device())
        line = {"step": self.step, **dict(zip(metrics, global_mean(values).tolist()))}
        if is_main():
            with open(self.out / METRICS, "a") as f:
                f.write(json.dumps(line) + "\n")


def read_metrics(out) -> list[dict]:
    path = Path(out) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def linear_warmup(step: int, warmup: int) -> float:
    """LR multiplier: linear warm-up, then constant (stateless, so resume needs no scheduler state)."""
    return min(1.0, (step + 1) / max(warmup, 1))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
