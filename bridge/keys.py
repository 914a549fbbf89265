"""Create CURVE keys for `streamvideo serve --curve-keys DIR`.

    streamvideo keys DIR --client unity --client robot        (or: python -m streamvideo.bridge.keys ...)

writes DIR/server.key + DIR/server.key_secret (the server's pair), DIR/clients/NAME.key_secret (give
each client its own file and server.key) and DIR/authorized_clients/NAME.key (the allow-list the
server reads at start). Existing server keys are kept; delete a client's authorized_clients/NAME.key
and restart the server to revoke it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import zmq.auth


def create_keys(directory: str | Path, clients: list[str] | tuple[str, ...] = ("client",)) -> dict[str, Path]:
    """Create (or complete) a key folder; returns {"server": server.key, NAME: NAME.key_secret, ...}."""
    root = Path(directory)
    (root / "authorized_clients").mkdir(parents=True, exist_ok=True)
    (root / "clients").mkdir(exist_ok=True)
    if not (root / "server.key_secret").is_file():
        _, secret = zmq.auth.create_certificates(str(root), "server")
        os.chmod(secret, 0o600)
    paths = {"server": root / "server.key"}
    for name in clients:
        public, secret = zmq.auth.create_certificates(str(root / "clients"), name)
        os.chmod(secret, 0o600)
        shutil.copy(public, root / "authorized_clients" / f"{name}.key")
        paths[name] = Path(secret)
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory")
    parser.add_argument("--client", action="append", help="client name (repeatable); default 'client'")


def run(args: argparse.Namespace) -> int:
    for name, path in create_keys(args.directory, args.client or ["client"]).items():
        print(f"{name:>12}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamvideo.bridge.keys", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
