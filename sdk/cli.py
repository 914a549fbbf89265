"""The `streamvideo` command line: one subcommand per module.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
modules are imported only when their subcommand runs, so `streamvideo bench` never imports pygame.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "play": ("streamvideo.play", "play a world model with the keyboard (pygame)"),
    "bench": ("streamvideo.bench", "measure first-chunk latency, FPS and memory of every rollout mode"),
    "serve": ("streamvideo.bridge.server", "serve sessions over ZeroMQ + MessagePack"),
    "keys": ("streamvideo.bridge.keys", "create CURVE key files for serve and its clients"),
    "collect": ("streamvideo.collect", "record frames, actions and prompts from a Gymnasium env"),
    "train": ("streamvideo.train.cli", "run a training stage: codec | teacher | ode-pairs | student | distill"),
    "eval": ("streamvideo.evaluate", "compare a world model against the real game"),
    "prompts": ("streamvideo.prompts", "list the prompts a model was trained on and its vocabulary, or check a prompt"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamvideo", description=__doc__.splitlines()[0])
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
        parser.exit(2, f"streamvideo {name}: cannot import {module_name}: {err}\n"
                       f"(is the matching extra installed? e.g. pip install 'streamvideo[all]')\n")
    sub = argparse.ArgumentParser(prog=f"streamvideo {name}", description=help_text)
    module.add_arguments(sub)
    return int(module.run(sub.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
