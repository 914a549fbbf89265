"""`streamvideo train STAGE ...`: codec | teacher | ode-pairs | student | distill (docs/training.md)."""

from __future__ import annotations

import argparse
import importlib

STAGES = {
    "codec": ("streamvideo.train.codec", "small TAEHV video autoencoder for the frame size"),
    "teacher": ("streamvideo.train.teacher", "many-step flow-matching DiT, bidirectional over clips"),
    "ode-pairs": ("streamvideo.train.ode_pairs", "teacher ODE trajectories at the student's timesteps"),
    "student": ("streamvideo.train.student", "causal student init: regress the ODE pairs, block-causal mask"),
    "distill": ("streamvideo.train.distill", "diagonal distillation: Diagonal Forcing + DMD + flow matching"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (module, help_text) in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(stage)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(STAGES[args.stage][0]).run(args) or 0)
