"""The `streamvideo` command line: one subcommand per module.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
modules are imported only when their subcommand runs, so `streamvideo bench` never imports pygame.

User mistakes (an unknown model, a corrupt weights file, a bad flag value, a device this machine lacks)
are answered in one line, `streamvideo COMMAND: what was wrong, what was expected`, with exit code 2:
modules raise `UserError` (from streamvideo.engine.checkpoints, e.g. its CheckpointError) and `main` prints it;
argparse errors print the same way. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..engine.checkpoints import UserError

# subcommand -> (module, one-line help)
COMMANDS = {
    "play": ("streamvideo.apps.play", "play a world model with the keyboard (pygame)"),
    "bench": ("streamvideo.apps.bench", "measure first-chunk latency, FPS and memory of every rollout mode"),
    "serve": ("streamvideo.bridge.serve", "serve sessions over ZeroMQ + MessagePack"),
    "keys": ("streamvideo.bridge.keys", "create CURVE key files for serve and its clients"),
    "collect": ("streamvideo.data.collect", "record frames, actions and prompts from a Gymnasium env"),
    "train": ("streamvideo.train.cli", "run a training stage: codec | teacher | ode-pairs | student | distill"),
    "eval": ("streamvideo.evaluation.evaluate", "compare a world model against the real env it was trained on"),
    "prompts": ("streamvideo.apps.prompts",
                "list the prompts a model was trained on and its vocabulary, or check a prompt"),
}
USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block), like every other user mistake."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="streamvideo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage / error and exits
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        parser.exit(USAGE_ERROR, f"streamvideo {name}: cannot import {module_name}: {err}; "
                                 f"is the matching extra installed? e.g. pip install 'streamvideo[all]'\n")
    sub = OneLineParser(prog=f"streamvideo {name}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"{getattr(args, 'prog', sub.prog)}: {err}", file=sys.stderr)  # a command with stages sets prog
        return USAGE_ERROR
    except SystemExit as refusal:
        if not isinstance(refusal.code, str):
            raise
        # a module's own one-line refusal, `raise SystemExit("streamvideo eval: ...")`, would exit 1:
        # print it here and exit 2 like any other user mistake (str(refusal) still holds the message)
        print(refusal.code, file=sys.stderr)
        refusal.code = USAGE_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
