"""Inference speed-ups of a loaded model: each one named, switchable, and checked against the plain path.

| name       | what it does                                                        | default |
|------------|---------------------------------------------------------------------|---------|
| `gelu`     | the feed-forward's GELU-tanh as x*sigmoid(2z), in place (fp32)       | on      |
| `context`  | the passes of one chunk share its positions, masks, rotated cached keys | on   |
| `fuse-qkv` | one q|k|v matmul per self-attention instead of three                | off     |
| `compile`  | `torch.compile` (inductor) of the forward, over a static KV cache   | off     |

Measured numbers and the reasons for each default are in docs/benchmarks.md ("CPU speed"). `compile` is
off by default because its first compilation takes about a minute on a 2-core CPU (later runs reuse
inductor's on-disk cache). `tests/engine/test_speedups.py` checks every one against the plain path.
"""

from __future__ import annotations

import argparse
import os
import shutil

import torch

from .checkpoints import UserError
from .model import CausalDiT

SPEEDUPS = ("gelu", "context", "fuse-qkv", "compile")
DEFAULT_SPEEDUPS = ("gelu", "context")


def parse_speedups(speedups) -> tuple[str, ...]:
    """Names as one comma-separated text or a sequence, checked: "gelu,context" -> ("gelu", "context");
    "none" -> (); "default" -> DEFAULT_SPEEDUPS; "default,compile" adds compile."""
    text = speedups if isinstance(speedups, str) else ",".join(speedups)
    names: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word == "default":
            names += DEFAULT_SPEEDUPS
        elif word in SPEEDUPS:
            names.append(word)
        elif word not in ("none", ""):
            raise UserError(f"unknown speed-up {word!r}; expected a comma-separated list of {', '.join(SPEEDUPS)}, "
                            f"or 'default' ({','.join(DEFAULT_SPEEDUPS)}) or 'none'")
    return tuple(dict.fromkeys(names))


def check_compiler(device: torch.device) -> None:
    """On the CPU, inductor builds C++ kernels: without a compiler torch.compile fails deep in its first call."""
    if device.type == "cpu" and not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")):
        raise UserError("the compile speed-up builds C++ kernels on the CPU and needs a C++ compiler (g++ or "
                        "clang++, or $CXX); install one or leave compile out of --speedups")


def add_speedups_argument(parser) -> None:
    """`--speedups LIST`, parsed to names, for the commands that run a model."""
    parser.add_argument("--speedups", type=speedups_argument, default=DEFAULT_SPEEDUPS, metavar="LIST",
                        help=f"inference speed-ups, comma-separated out of {', '.join(SPEEDUPS)}; 'default' is "
                             f"{','.join(DEFAULT_SPEEDUPS)}, 'none' the plain path, 'default,compile' adds "
                             f"torch.compile (about a minute to compile the first time)")


def speedups_argument(text: str) -> tuple[str, ...]:
    """argparse type: a bad name is a one-line usage error."""
    try:
        return parse_speedups(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def apply_speedups(model: CausalDiT, speedups=DEFAULT_SPEEDUPS) -> CausalDiT:
    """Switch the named speed-ups on for inference, on the model's final device and dtype; returns the model.
    A generator built on it reads `model.speedups` (`compile` needs the static KV cache)."""
    speedups = parse_speedups(speedups)
    if model.speedups:
        raise ValueError(f"speed-ups {model.speedups} are already applied to this model")
    for block in model.blocks:
        block.ffn.fast_gelu = "gelu" in speedups
    if "fuse-qkv" in speedups:
        model.fuse_qkv()
    if "compile" in speedups:
        check_compiler(next(model.parameters()).device)
        model.forward = torch.compile(model.forward, dynamic=False)
    model.speedups = speedups
    return model
