"""The link between a front and its workers (`serve --workers N`, `serve --attach`; PROTOCOL.md section 6), the
zguide's Paranoid Pirate (chapter 4): the messages both ends speak, and the worker's end of it.

A link message starts with an empty frame, which no client identity can be: [b"", kind, payload?]. A worker
attaches with READY (its models, capacity, pid), the front answers WELCOME (where to publish streams, its
heartbeat); both beat every heartbeat; a side silent for LIVENESS beats is dead; DISCONNECT tells a worker
the front declared it lost. The front's end is front.py, the worker's is `WorkerLink`, run by a Server in
worker mode (server.py).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time

import msgpack
import zmq

from .endpoint import MAX_POLL_MS, ServerConfig, common_options, waiting

log = logging.getLogger("streamvideo.bridge")

READY, WELCOME, HEARTBEAT, DISCONNECT = b"READY", b"WELCOME", b"HEARTBEAT", b"DISCONNECT"
LIVENESS = 3               # a peer that sent nothing for this many heartbeat intervals is dead
LINK_STREAM_HWM = 8        # stream messages queued on the worker -> front link (the front drains it at once)
WILDCARD_HOSTS = ("0.0.0.0", "*", "[::]", "::")


class WorkerLink:
    """A worker's end of the link to its front, on a thread of its own so that heartbeats keep flowing while the
    server thread computes a chunk (Paranoid Pirate, zguide chapter 4). It relays the front's requests to the
    server thread over an inproc PAIR and the replies back; it attaches with READY, hands the front's WELCOME
    to the server thread, and attaches again on a new socket when the front is silent for LIVENESS heartbeats
    or says DISCONNECT (it had declared this worker lost)."""

    def __init__(self, context: zmq.Context, config: ServerConfig, curve: tuple | None, ready: dict,
                 stop: threading.Event):
        self.address = f"inproc://streamvideo-link-{secrets.token_hex(8)}"
        self._context, self._config, self._curve = context, config, curve
        self._ready = msgpack.packb(ready)
        self._stop = stop                               # the server's: either side ending ends both
        self._heartbeat = config.heartbeat_ms / 1000    # the front's, once its WELCOME says it
        self._thread = threading.Thread(target=self._run, name="streamvideo-link", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        inner = self._context.socket(zmq.PAIR)
        inner.linger = 0
        inner.bind(self.address)
        try:
            while not self._stop.is_set():
                front = self._connect()
                try:
                    self._relay(front, inner)
                finally:
                    front.close(linger=0)
        except Exception:
            log.exception("the link to the front failed")
            self._stop.set()
        finally:
            inner.close(linger=0)

    def _connect(self) -> zmq.Socket:
        front = self._context.socket(zmq.DEALER)  # a new socket is a new identity: the front sees a new worker
        common_options(front, self._config.heartbeat_ms)
        if self._curve is not None:
            front.curve_serverkey, front.curve_publickey, front.curve_secretkey = self._curve
        front.connect(self._config.attach)
        front.send_multipart([b"", READY, self._ready])
        return front

    def _relay(self, front: zmq.Socket, inner: zmq.Socket) -> None:
        """Relay both ways and beat, until the front is lost (or the server stops)."""
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(inner, zmq.POLLIN)
        heard = next_beat = time.monotonic()
        while not self._stop.is_set():
            events = dict(poller.poll(min(MAX_POLL_MS, int(self._heartbeat * 1000))))
            now = time.monotonic()
            if front in events:
                heard = now
                if not self._from_front(front, inner):
                    return
            if inner in events:
                for frames in waiting(inner):
                    if not _send_quietly(front, frames):
                        break
            if now >= next_beat:
                _send_quietly(front, [b"", HEARTBEAT])
                next_beat = now + self._heartbeat
            if now - heard > LIVENESS * self._heartbeat:
                log.warning("no word from the front at %s for %.1f s: attaching again", self._config.attach,
                            now - heard)
                return
            if self._config.front_pid is not None and os.getppid() != self._config.front_pid:
                log.warning("the front that started this worker is gone: stopping")
                self._stop.set()

    def _from_front(self, front: zmq.Socket, inner: zmq.Socket) -> bool:
        """Pass the front's requests (and its WELCOME) to the server thread; False when told to DISCONNECT."""
        for frames in waiting(front):
            kind = frames[1].bytes if not frames[0].bytes else None
            if kind == DISCONNECT:
                log.warning("the front at %s dropped this worker: attaching again", self._config.attach)
                return False
            if kind == WELCOME:
                self._heartbeat = msgpack.unpackb(frames[2].bytes)["heartbeat_ms"] / 1000
            if kind in (None, WELCOME) and not _send_quietly(inner, frames):
                log.warning("request dropped: the server thread's queue is full")
        return True


def _send_quietly(sock: zmq.Socket, frames: list) -> bool:
    """Send without blocking; False when the peer's queue is full (the message is dropped)."""
    try:
        sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        return True
    except zmq.Again:
        return False


def host_of(endpoint: str) -> str:
    """The host of an endpoint: tcp://10.0.0.2:5557 -> 10.0.0.2."""
    return endpoint.partition("://")[2].rpartition(":")[0]


def with_host(endpoint: str, host: str) -> str:
    """An endpoint as bound, with a wildcard host (0.0.0.0, *) replaced by the host its peer can reach."""
    scheme, _, rest = endpoint.partition("://")
    bound, _, port = rest.rpartition(":")
    return f"{scheme}://{host}:{port}" if bound in WILDCARD_HOSTS else endpoint

