"""Servers for the bridge tests, on free loopback ports: one in this process (`start_server`), or `streamvideo
serve` in a subprocess (`serve_process`); and `Raw`, a bare DEALER speaking the wire format. The `server` and
`client` fixtures built on them are in conftest.py."""

import os
import re
import subprocess
import sys

import msgpack
import zmq

from streamvideo.bridge import Limits, Server, ServerConfig
from streamvideo.bridge import protocol as P

MODEL = "tiny-random"
LOOPBACK = "tcp://127.0.0.1:*"


def start_server(**overrides) -> Server:
    limits = overrides.pop("limits", Limits(max_sessions=16, idle_timeout_ms=5000, stream_sndbuf=64 << 10))
    config = ServerConfig(bind=LOOPBACK, pub=LOOPBACK, models=(MODEL,), heartbeat_ms=200, limits=limits, **overrides)
    return Server(config).start()


class Raw:
    """A bare DEALER speaking the wire format, for what the Client would never send."""

    def __init__(self, address: str, hello: bool = True):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)
        self.ids = iter(range(1, 1 << 62))
        if hello:
            assert self.call({"op": "hello", "version": P.PROTOCOL_VERSION})["ok"]

    def send(self, frames: list) -> None:
        self.sock.send_multipart(frames)

    def reply(self, timeout: float = 30.0) -> dict:
        assert self.sock.poll(int(timeout * 1000)), "no reply from the server"
        return msgpack.unpackb(self.sock.recv_multipart()[0])

    def call(self, header: dict, buffers: list = ()) -> dict:
        header = {"id": next(self.ids), **header}
        self.send(P.pack(header, buffers))
        reply = self.reply()
        assert reply["id"] == header["id"]
        return reply

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------- handshake


def serve_process(*options: str) -> tuple[subprocess.Popen, str, str]:
    """`streamvideo serve` of MODEL on free loopback ports in a subprocess, once it serves: (process, control
    endpoint, stream endpoint), as the server logs them."""
    proc = subprocess.Popen([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--bind", LOOPBACK,
                             "--pub", LOOPBACK, "--model", MODEL, *options],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stderr:
        if match := re.search(r"on (tcp://\S+), streams on (tcp://\S+)", line):
            return proc, match.group(1), match.group(2)
    proc.kill()
    raise AssertionError(f"streamvideo serve {' '.join(options)} exited (rc {proc.wait()}) before serving")
