"""One `--threads` option for the commands that run a model (play, bench, serve).

torch uses one thread per core by default. On a small machine that others share (a 2-core CI box, a
laptop running Unity next to the server) that can collapse: two threads contending with one busy
process ran `bench` at 3.6 FPS where one thread ran 113 FPS. Give the count explicitly there.
"""

from __future__ import annotations

import argparse

import torch


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a bad value is a one-line usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core); use 1 on a shared machine")


def set_threads(threads: int | None) -> int:
    """Set torch's CPU thread count (None keeps torch's default); returns the count in use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()
