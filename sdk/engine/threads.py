"""The torch CPU thread count of the commands and envs that run a model (play, bench, serve, the envs).

torch uses one thread per core by default. On a small machine that others share (a 2-core CI box, a
laptop running Unity next to the server) that collapses: two threads contending with one busy process
ran `bench` at 3.6 FPS where one thread ran 113 FPS. So the default leaves one core free.
"""

from __future__ import annotations

import argparse
import os

import torch


def default_threads() -> int:
    """One core left for everything else (the game loop, the clients, a recorder): 1 on a 2-core machine."""
    return max(1, (os.cpu_count() or 1) - 1)


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
                        help=f"torch CPU threads (default: CPU cores - 1, here {default_threads()})")


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU thread count (None: default_threads()); returns the count in use."""
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return threads
