"""Python client of the bridge: a DEALER control socket, sessions, and SUB streams (see PROTOCOL.md).

    with Client("tcp://127.0.0.1:5555") as client:
        session = client.open(prompt="a grassy meadow", seed=0)
        chunk = session.step(2)                  # lock-step: frames uint8 [T, H, W, 3]
        stream = session.stream()                # real-time: the server keeps generating
        session.act(1, wait=False)
        latest = stream.latest(timeout=0.1)      # newest chunk, or None

A ZMTP handshake that fails (a refused key, a wrong server key, plaintext against CURVE) or does not complete within
`handshake_timeout` raises `auth_failed` naming the likely cause, instead of waiting for replies that never come.

Not thread-safe (ZeroMQ sockets are not): use a client from one thread.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from . import protocol as P
from .keys import load_curve
from .protocol import BridgeError

CLIENT_MAX_MESSAGE = 1 << 30
HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
HANDSHAKE_EVENT_MS = 100   # a send refused for want of a peer looks this long for the handshake failure behind it
SUBSCRIBE_POLL_S = 0.005   # how often stream() asks whether the server has seen its subscription


@dataclass
class RemoteChunk:
    frames: np.ndarray      # uint8 [T, H, W, 3] (raw encoding: read-only view on the received message)
    index: int              # within its episode
    nfe: int
    seconds: float          # generation time on the server
    prompt: str
    time: float | None = None  # server wall-clock time of publication (real-time streams)
    batch: int = 1             # sessions that shared the server's forward pass
    episode: int = 0           # the session's resets before this chunk (1.1 servers: always 0)


class Client:
    """A connection to a bridge server; performs the `hello` handshake on construction.

    server_key: the server's public key file (server.key); client_key: this client's secret key file
    (NAME.key_secret). Give both to use CURVE. handshake_timeout: seconds a connection's ZMTP handshake may take
    before it fails with `auth_failed` (ZMQ_HANDSHAKE_IVL).
    """

    def __init__(self, address: str = "tcp://127.0.0.1:5555", *, timeout: float = 10.0, retries: int = 0,
                 server_key: str | Path | None = None, client_key: str | Path | None = None,
                 name: str = "streamvideo-python", context: zmq.Context | None = None, handshake_timeout: float = 3.0):
        self.address, self.timeout, self.retries = address, timeout, retries
        self.handshake_timeout = handshake_timeout
        self._context = context or zmq.Context.instance()
        self._curve = load_curve(server_key, client_key)
        self._ids = itertools.count(1)
        self.sessions: dict[str, Session] = {}
        self.async_errors: list[dict] = []  # errors answering requests sent with wait=False (latest 16)
        self._sock = self._socket(zmq.DEALER)
        self._sock.maxmsgsize = CLIENT_MAX_MESSAGE
        self._monitor = self._sock.get_monitor_socket(HANDSHAKE_FAILURES)  # a failed handshake fails fast
        self._sock.connect(address)
        self._last_sent = time.monotonic()
        try:
            self.info = self.request("hello", version=P.PROTOCOL_VERSION, client=name)[0]
        except BaseException:
            self.close()
            raise
        self.heartbeat_s = self.info["heartbeat_ms"] / 1000

    # ------------------------------------------------------------------ requests

    def request(self, op: str, buffers: list | tuple = (), timeout: float | None = None, **fields):
        """Send a request and wait for its reply: (reply header, reply buffers). Raises BridgeError."""
        rid = self.send(op, buffers, **fields)
        timeout = self.timeout if timeout is None else timeout
        for attempt in range(self.retries + 1):
            if attempt:
                self._send_frames(P.pack({"id": rid, "op": op, **fields}, buffers))
            reply = self._wait(rid, time.monotonic() + timeout)
            if reply is not None:
                header, out = reply
                if not header.get("ok"):
                    raise BridgeError(header["error"]["code"], header["error"]["message"])
                return header, out
        raise BridgeError("timeout", f"no reply to {op!r} from {self.address} within {timeout} s")

    def send(self, op: str, buffers: list | tuple = (), **fields) -> int:
        """Send a request without waiting; its reply is discarded when it comes (errors go to async_errors)."""
        rid = next(self._ids)
        self._send_frames(P.pack({"id": rid, "op": op, **fields}, buffers))
        return rid

    def _send_frames(self, frames: list) -> None:
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:  # a full queue, or no connection to queue for: one whose handshake just failed
            if self._monitor.poll(HANDSHAKE_EVENT_MS):
                self._raise_handshake_failure()
            raise BridgeError("timeout", f"cannot send to {self.address}: outgoing queue full") from None
        self._last_sent = time.monotonic()

    def _wait(self, rid: int, deadline: float):
        """The reply to `rid`, or None at the deadline. Other replies are dropped (late or fire-and-forget)."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            events = dict(poller.poll(max(1, int(left * 1000))))
            if self._monitor in events:
                self._raise_handshake_failure()
            if self._sock in events:
                reply = self._receive()
                if reply[0].get("id") == rid:
                    return reply
        return None

    def _receive(self):
        frames = self._sock.recv_multipart(copy=False)
        header, out = P.unpack(frames, P.Limits(max_array_bytes=CLIENT_MAX_MESSAGE))
        if not header.get("ok", True):
            self.async_errors = [*self.async_errors[-15:], header]
        return header, [f.buffer for f in out]

    def _raise_handshake_failure(self) -> None:
        event = recv_monitor_message(self._monitor)
        raise BridgeError("auth_failed", self._handshake_failure(event["event"], event["value"]))

    def _handshake_failure(self, event: int, value: int) -> str:
        """What a failed ZMTP handshake (a socket monitor event and its value) most likely means (PROTOCOL.md 1.2)."""
        where = self.address
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (f"{where} refused this client's CURVE key (ZAP status {value}): its public key is not in the "
                    f"server's authorized_clients/")
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and value == errno.EAGAIN:
            return (f"the handshake with {where} did not complete within {self.handshake_timeout:g} s: the peer "
                    f"answers no ZeroMQ handshake (is a streamvideo server listening there?)")
        if self._curve is None:
            return (f"{where} ended the handshake: the server probably requires CURVE (serve --curve-keys); pass "
                    f"server_key=server.key and client_key=NAME.key_secret")
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return (f"{where} is a plaintext server (not started with --curve-keys): connect without server_key "
                    f"and client_key, or restart it with --curve-keys")
        why = os.strerror(value) if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL else f"ZMTP error {value:#x}"
        return (f"{where} closed the connection during the CURVE handshake ({why}): most likely the server key is "
                f"wrong (server_key must be that server's server.key: a server that cannot decrypt a client's "
                f"hello drops the connection without a word), or it is a plaintext server (no --curve-keys)")

    def drain(self) -> None:
        """Read and drop whatever replies are waiting (fire-and-forget requests), without blocking."""
        while self._sock.poll(0):
            self._receive()

    def heartbeat(self) -> None:
        """Ping for this client's sessions if nothing was sent for heartbeat_ms (does not wait)."""
        self.drain()
        if time.monotonic() - self._last_sent >= self.heartbeat_s:
            self.send("ping", sessions=list(self.sessions))

    # ------------------------------------------------------------------ operations

    def open(self, **options) -> Session:
        """Open a session: model, prompt, seed, mode, schedule, encoding ("raw" | "jpeg"), quality."""
        info = self.request("open", **{k: v for k, v in options.items() if v is not None})[0]
        session = Session(self, info)
        self.sessions[session.id] = session
        return session

    def ping(self) -> dict:
        return self.request("ping", sessions=list(self.sessions))[0]

    def server_stats(self) -> dict:
        return self.request("stats")[0]["stats"]

    def close(self) -> None:
        for sock in (self._monitor, getattr(self, "_sock", None)):
            if sock is not None and not sock.closed:
                sock.close(linger=0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ sockets

    def _socket(self, kind: int) -> zmq.Socket:
        sock = self._context.socket(kind)
        sock.linger = 0
        sock.handshake_ivl = round(self.handshake_timeout * 1000)
        if self._curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self._curve
        return sock

    def _stream_address(self) -> str:
        """The server's PUB endpoint, with a wildcard host replaced by the control host."""
        pub = self.info["pub"]
        host = self.address.split("://", 1)[1].rsplit(":", 1)[0]
        scheme, rest = pub.split("://", 1)
        pub_host, port = rest.rsplit(":", 1)
        if pub_host in ("0.0.0.0", "*", "[::]", "::"):
            pub_host = host
        return f"{scheme}://{pub_host}:{port}"


class Session:
    """One server-side stream, driven lock-step (`step`) or in real time (`stream` + `act`)."""

    def __init__(self, client: Client, info: dict):
        self.client, self.info = client, info
        self.id: str = info["session"]          # the session's secret: whoever holds it can drive the session
        self.topic: str = info["topic"]         # its stream topic: lets a subscriber watch, nothing more
        self.frames_per_chunk, self.height, self.width = info["frames_per_chunk"], info["height"], info["width"]
        self.fps: float = info["fps"]
        self.episode = 0                        # resets since open
        self.unknown_words: list[str] = []      # words of the current prompt the model does not know
        self._note_prompt(info)

    def reset(self, prompt: str | None = None, seed: int | None = None, context_frames=None) -> int:
        """Restart the stream (seed None: a new random state); returns the index the next step will have."""
        buffers: list = []
        fields = {k: v for k, v in dict(prompt=prompt, seed=seed).items() if v is not None}
        if context_frames is not None:
            fields["context_frames"] = P.encode_array(np.asarray(context_frames, np.uint8), buffers)
        reply = self._call("reset", buffers, **fields)[0]
        self.episode = reply.get("episode", self.episode + 1)
        self._note_prompt(reply)
        return reply["next_index"]

    def step(self, action=None) -> RemoteChunk:
        buffers: list = []
        header, out = self._call("step", buffers, action=_wire_action(action, buffers))
        return _chunk(header, out)

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        self._note_prompt(self._call("set_prompt", prompt=prompt, recache=recache)[0])

    def stats(self) -> dict:
        return self._call("stats")[0]["stats"]

    def stream(self, on: bool = True, fps: float | None = None, hwm: int = 2,
               rcvbuf: int | None = None) -> Stream | None:
        """Start real-time mode; returns the Stream, which receives the first chunk: it subscribes first and waits
        until the server has seen the subscription (slow joiner, PROTOCOL.md section 4, `stream`).

        on=False stops it (returns None). fps: frames per second to generate at (0: as fast as possible).
        """
        fields = {"on": on} if fps is None else {"on": on, "fps": float(fps)}
        if not on:
            self._call("stream", **fields)
            return None
        before = self.stats().get("subscribers")  # a 1.1 server does not count them
        subscriber = Stream(self.client, self.topic, hwm, rcvbuf)
        try:
            if before is not None:
                self._await_subscriber(before)
            self._call("stream", **fields)
        except BaseException:
            subscriber.close()
            raise
        return subscriber

    def _await_subscriber(self, before: int) -> None:
        """Wait until the server counts one more subscriber of this session's topic than `before`."""
        deadline = time.monotonic() + self.client.timeout
        while self.stats()["subscribers"] <= before:
            if time.monotonic() > deadline:
                raise BridgeError("timeout", f"the stream socket {self.client._stream_address()} did not see this "
                                             f"client's subscription within {self.client.timeout} s: can this "
                                             f"machine reach it?")
            time.sleep(SUBSCRIBE_POLL_S)

    def act(self, action, wait: bool = True) -> int | None:
        """Set the real-time action. wait=False never blocks on the network (the reply is dropped)."""
        buffers: list = []
        fields = {"session": self.id, "action": _wire_action(action, buffers)}
        if not wait:
            self.client.drain()
            self.client.send("act", buffers, **fields)
            return None
        return self.client.request("act", buffers, **fields)[0]["index"]

    def close(self) -> None:
        self.client.sessions.pop(self.id, None)
        self._call("close")

    def _call(self, op: str, buffers: list | tuple = (), **fields):
        return self.client.request(op, buffers, session=self.id, **fields)

    def _note_prompt(self, reply: dict) -> None:
        """Keep the prompt words an open, reset or set_prompt reply names as unknown to the model, and warn about
        them as the in-process generator does (they do not steer it)."""
        self.unknown_words = list(reply.get("unknown_words", []))
        if self.unknown_words:
            warnings.warn(f"prompt words not in the model's vocabulary: {', '.join(map(repr, self.unknown_words))} "
                          f"(they do not steer this model)", stacklevel=3)


class StreamEnded(BridgeError):
    """The server ended a real-time stream: `reason` is stopped | closed | idle_timeout | error | worker_lost."""

    def __init__(self, reason: str, message: str, index: int, episode: int = 0):
        super().__init__("stream_ended", f"stream ended ({reason}) after chunk {index}: {message}")
        self.reason, self.index, self.episode = reason, index, episode


class Stream:
    """A subscription to one session's real-time chunks (lossy: a slow reader gets the newest ones).

    recv() and latest() raise StreamEnded once the server ends the stream (stopped, closed, idle timeout or
    a failed chunk)."""

    def __init__(self, client: Client, topic: str, hwm: int = 2, rcvbuf: int | None = None):
        """hwm: chunks queued in ZeroMQ; rcvbuf: kernel receive buffer in bytes (None: the OS default)."""
        self.client = client
        self.sock = client._socket(zmq.SUB)
        self.sock.rcvhwm = hwm
        if rcvbuf is not None:
            self.sock.rcvbuf = rcvbuf
        self.sock.maxmsgsize = CLIENT_MAX_MESSAGE
        self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.sock.connect(client._stream_address())

    def recv(self, timeout: float | None = None) -> RemoteChunk | None:
        """The next chunk, or None after `timeout` seconds (None: wait forever). Sends heartbeats."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.client.heartbeat()
            left = self.client.heartbeat_s
            if deadline is not None:
                left = min(max(0.0, deadline - time.monotonic()), left)
            if self.sock.poll(int(left * 1000)):
                return self._read()
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def latest(self, timeout: float = 0.0) -> RemoteChunk | None:
        """The newest chunk waiting (older ones are dropped), else wait up to `timeout` for one."""
        newest = None
        while self.sock.poll(0):
            newest = self._read()
        return newest if newest is not None else self.recv(timeout)

    def _read(self) -> RemoteChunk:
        frames = self.sock.recv_multipart(copy=False)
        header, out = P.unpack(frames[1:], P.Limits(max_array_bytes=CLIENT_MAX_MESSAGE))
        if "end" in header:
            raise StreamEnded(header["end"]["reason"], header["end"]["message"], header["index"],
                              header.get("episode", 0))
        return _chunk(header, [f.buffer for f in out])

    def close(self) -> None:
        self.sock.close(linger=0)


def _chunk(header: dict, buffers: list) -> RemoteChunk:
    return RemoteChunk(P.decode_chunk(header["frames"], buffers), header["index"], header["nfe"],
                       header["seconds"], header["prompt"], header.get("time"), header.get("batch", 1),
                       header.get("episode", 0))


def _wire_action(action, buffers: list):
    """Python action -> wire value: integers as is, arrays as array maps (inline when small)."""
    if action is None or isinstance(action, (int, np.integer)):
        return None if action is None else int(action)
    array = np.asarray(action)
    return P.encode_array(array, buffers if array.nbytes > 4096 else None)
