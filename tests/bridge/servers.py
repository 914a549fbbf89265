"""Servers for the bridge tests, on free loopback ports: one in this process (`start_server`), or `streamvideo
serve` in a subprocess (`serve_process`); `ModelZoo`, tiny models on other action spaces and with a vocabulary;
and `Raw`, a bare DEALER speaking the wire format. The `server` and `client` fixtures built on them are in
conftest.py."""

import dataclasses
import os
import re
import subprocess
import sys
import time

import msgpack
import torch
import zmq

from streamvideo.bridge import Limits, Server, ServerConfig
from streamvideo.bridge import protocol as P
from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.model import CausalDiT
from streamvideo.engine.presets import generator_from_parts, tiny_random

MODEL = "tiny-random"
LOOPBACK = "tcp://127.0.0.1:*"


def start_server(loader=None, **overrides) -> Server:
    settings = {"models": (MODEL,), "heartbeat_ms": 200,
                "limits": Limits(max_sessions=16, idle_timeout_ms=5000, stream_sndbuf=64 << 10), **overrides}
    config = ServerConfig(bind=LOOPBACK, pub=LOOPBACK, **settings)
    return Server(config, loader).start()


class ModelZoo:
    """A server's loader (`start_server(ModelZoo(), models=tuple(ModelZoo.SPACES))`): tiny random models whose
    action space is one the built-in game does not have, whose actions change the frames (action tokens drawn at
    random, not zero as in an untrained model), and whose trained prompts make a vocabulary."""

    SPACES = {
        "start-at-one": ActionSpec("discrete", n=3, start=1),                                   # Discrete(3, start=1)
        "multi-binary": ActionSpec("multi_discrete", sizes=(2,) * 6, shape=(2, 3), binary=True),  # MultiBinary((2, 3))
        "multi-discrete": ActionSpec("multi_discrete", sizes=(3, 2)),                           # MultiDiscrete([3 2])
        "box": ActionSpec("continuous", dim=2, low=(-2.0, 0.0), high=(2.0, 1.0)),               # Box([-2 0], [2 1])
    }
    PROMPTS = ["a grassy meadow", "a sandy desert at night"]   # the vocabulary: a, grassy, meadow, sandy, ...

    def __call__(self, name: str, device=None, **settings):
        model, codec, text, latent_hw, fps, prompt = tiny_random("cpu", torch.float32)
        torch.manual_seed(0)
        model = CausalDiT(dataclasses.replace(model.config, action=self.SPACES[name], action_tokens=True))
        torch.nn.init.normal_(model.action_token_embedder.mlp.linear_2.weight, std=0.5)
        return generator_from_parts((model, codec, text, latent_hw, fps, self.PROMPTS[0], None),
                                    trained_prompts=self.PROMPTS, **settings)


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
        """The next reply's header; its buffers are kept in `last_buffers`."""
        assert self.sock.poll(int(timeout * 1000)), "no reply from the server"
        header, *self.last_buffers = self.sock.recv_multipart()
        return msgpack.unpackb(header)

    def call(self, header: dict, buffers: list = ()) -> dict:
        header = {"id": next(self.ids), **header}
        self.send(P.pack(header, buffers))
        reply = self.reply()
        assert reply["id"] == header["id"]
        return reply

    def close(self) -> None:
        self.sock.close()


def subscriber(endpoint: str, *prefixes: bytes) -> zmq.Socket:
    """A SUB socket on a stream endpoint, subscribed to each of `prefixes`."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.linger = 0
    for prefix in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock


def subscribers_become(raw: Raw, sid: str, count: int, timeout: float = 10.0) -> bool:
    """Whether the `subscribers` of session `sid`'s stats come to read `count` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while raw.call({"op": "stats", "session": sid})["stats"]["subscribers"] != count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


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
