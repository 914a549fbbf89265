"""`streamvideo train STAGE ...`: codec | teacher | ode-pairs | student | distill (docs/training.md)."""

from __future__ import annotations

import argparse
import importlib

from ..engine.checkpoints import UserError

STAGES = {
    "codec": ("streamvideo.train.codec", "frame codec: PCA over 8x8 patches (default) or a small TAEHV autoencoder"),
    "teacher": ("streamvideo.train.teacher", "many-step flow-matching DiT, bidirectional over clips"),
    "ode-pairs": ("streamvideo.train.ode_pairs", "teacher ODE trajectories at the student's timesteps"),
    "student": ("streamvideo.train.student", "causal student init: regress the ODE pairs, block-causal mask"),
    "distill": ("streamvideo.train.distill", "diagonal distillation: Diagonal Forcing + DMD + flow matching"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (module, help_text) in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        stage.set_defaults(prog=stage.prog)  # errors name the stage: "streamvideo train student: ..."
        importlib.import_module(module).add_arguments(stage)


def run(args: argparse.Namespace) -> int:
    stage = importlib.import_module(STAGES[args.stage][0])
    try:
        return int(stage.run(args) or 0)
    except FileNotFoundError as err:
        # every file a stage reads is one its arguments name (--data, --codec, --teacher, --pairs), and the
        # stages' own messages say which stage writes it: a user mistake, not a bug
        raise UserError(str(err)) from err
