"""CURVE keys: create them for `streamvideo serve --curve-keys DIR`, and put them on sockets.

    streamvideo keys DIR --client unity --client robot        (or: python -m streamvideo.bridge.keys ...)

writes DIR/server.key + DIR/server.key_secret (the server's pair), DIR/clients/NAME.key_secret (give
each client its own file and server.key) and DIR/authorized_clients/NAME.key (the allow-list the
server reads at start). Existing server keys are kept; delete a client's authorized_clients/NAME.key
and restart the server to revoke it.

A server or front binds its sockets as the CURVE server (`curve_server`) behind a ZAP handler that lets in
exactly the authorized keys (`start_authenticator`); clients and workers connect with `load_curve`'s keys.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

import zmq
import zmq.auth

log = logging.getLogger("streamvideo.bridge")


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


def load_curve(server_key, client_key) -> tuple[bytes, bytes, bytes] | None:
    """A connecting socket's CURVE keys (server public, own public, own secret) from the server's public key
    file and the connecting side's secret key file; None when neither is given."""
    if server_key is None and client_key is None:
        return None
    if server_key is None or client_key is None:
        raise ValueError("CURVE needs both server_key (server.key) and client_key (NAME.key_secret)")
    server_public, _ = zmq.auth.load_certificate(str(server_key))
    public, secret = zmq.auth.load_certificate(str(client_key))
    if secret is None:
        raise ValueError(f"{client_key} holds no secret key; pass the NAME.key_secret file")
    return server_public, public, secret


class _AllowedKeys:
    """CURVE client keys (Z85) the ZAP handler lets in."""

    def __init__(self, keys: set[bytes]):
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def start_authenticator(context: zmq.Context, keys_dir: str):
    """ZAP handler allowing exactly the public keys in keys_dir/authorized_clients/, and the server's own (the
    workers a front starts on its machine authenticate with it)."""
    from zmq.auth.thread import ThreadAuthenticator
    allowed = Path(keys_dir) / "authorized_clients"
    if not allowed.is_dir() or not (Path(keys_dir) / "server.key_secret").is_file():
        raise FileNotFoundError(f"{keys_dir} needs server.key_secret and authorized_clients/; create them with "
                                f"`streamvideo keys {keys_dir}`")
    own, _ = zmq.auth.load_certificate(str(Path(keys_dir) / "server.key_secret"))
    auth = ThreadAuthenticator(context, log=log.getChild("auth"))
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowedKeys(
        {*zmq.auth.load_certificates(str(allowed)), own}))
    return auth


def curve_server(sock: zmq.Socket, keys_dir: str) -> None:
    """Make a socket about to bind the CURVE server, with keys_dir's server key pair."""
    public, secret = zmq.auth.load_certificate(str(Path(keys_dir) / "server.key_secret"))
    sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True


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
