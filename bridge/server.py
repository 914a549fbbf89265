"""`streamvideo serve`: sessions of streaming world models over ZeroMQ + MessagePack (see PROTOCOL.md).

One thread owns the ROUTER (control) and XPUB (stream) sockets and every session's generator. Cheap
requests are answered at once; `step` requests queue per session; real-time sessions fall due at
their rate. Between control reads the server runs one unit of work, picking round-robin among the
sessions that have work, so every session waits at most one unit of each other session. A unit is
one queued request, or one chunk for every session of the same model (`group_step.group_key`) that
has a chunk to make, all in one batched forward pass (up to `max_batch` sessions).

Who may drive a session: whoever presents its id. The id is a 128-bit secret that only the `open`
reply carries; streams are published under a separate random token, and the stream socket applies
only subscriptions to exactly a live token (XPUB_MANUAL), so a subscriber to every prefix receives
nothing and never learns an id.

    server = Server(ServerConfig(bind="tcp://127.0.0.1:*", pub="tcp://127.0.0.1:*", models=("tiny-random",)))
    server.start()            # background thread; server.endpoints holds the bound addresses
    ...
    server.stop()

A Server can also be one worker of a front (`front.py`, `serve --attach`): then it binds nothing; its
requests come from the front over a DEALER (relayed by a link thread, which keeps heartbeats flowing
while a chunk computes) and its streams go out on a PUB connected to the front, which republishes them.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import msgpack
import zmq

from streamvideo.engine.group_step import group_key, step_group
from streamvideo.engine.threads import add_threads_argument, positive_int, set_threads

from . import protocol as P
from .client import _load_curve
from .protocol import BridgeError, Limits

log = logging.getLogger("streamvideo.bridge")

MAX_PEERS = 4096           # remembered handshakes (least recently seen are forgotten first)
READS_PER_TURN = 64        # control messages read between two chunks
SWEEP_SECONDS = 0.2        # how often idle sessions are looked for
MAX_POLL_MS = 100          # longest sleep; bounds the reaction time to stop()
LOOPBACK_HOSTS = ("127.", "localhost", "::1", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "*", "[::]", "::")
FAILURES = {"error": "internal", "worker_lost": "worker_lost"}  # end reasons that carry an error map too

# The front/worker link (Paranoid Pirate, zguide ch. 4). A link message starts with an empty frame, which no
# client identity can be: [b"", kind, payload?].
READY, WELCOME, HEARTBEAT, DISCONNECT = b"READY", b"WELCOME", b"HEARTBEAT", b"DISCONNECT"
LIVENESS = 3               # a peer that sent nothing for this many heartbeat intervals is dead
LINK_STREAM_HWM = 8        # stream messages queued on the worker -> front link (the front drains it at once)


@dataclass
class ServerConfig:
    bind: str = "tcp://127.0.0.1:5555"        # control socket (ROUTER)
    pub: str = "tcp://127.0.0.1:5556"         # real-time stream socket (PUB)
    models: tuple[str, ...] = ("default",)    # models clients may open; the first is the default
    device: str = "cpu"
    curve_keys: str | None = None             # folder with server.key_secret + authorized_clients/
    insecure: bool = False                    # allow plaintext on non-loopback addresses
    heartbeat_ms: int = 1000
    max_batch: int = 8                        # sessions stepped in one forward pass (1: one at a time)
    limits: Limits = field(default_factory=Limits)
    attach: str | None = None                 # serve as a worker of the front whose worker endpoint this is
    front_key: str | None = None              # worker: the front's public key file (server.key), for CURVE
    worker_key: str | None = None             # worker: its own secret key file (NAME.key_secret), for CURVE
    front_pid: int | None = None              # worker started by a local front: stop when that process is gone


class Session:
    """One client stream: its generator, its queued requests and its real-time state."""

    def __init__(self, sid: str, model: str, generator, prompt: str | None, encoding: str, quality: int):
        self.id, self.model, self.gen = sid, model, generator
        self.topic = secrets.token_hex(16)  # stream topic: lets its holder watch, not drive
        self.group = group_key(generator)   # sessions with equal keys share forward passes (None: never)
        self.prompt = prompt               # None: the model's default prompt
        self.encoding, self.quality = encoding, quality
        self.queue: deque = deque()        # (identity, Request, decoded payload, retry key)
        self.streaming = False
        self.period = 0.0                  # seconds between real-time chunks (0: as fast as possible)
        self.next_due = 0.0
        self.action = None                 # latest action of a real-time session
        self.last_index = -1               # index of the last published chunk
        self.last_seen = time.monotonic()
        self.last_reply: tuple | None = None  # (retry_key, frames): answers a retried request

    def due(self, now: float) -> bool:
        return self.streaming and now >= self.next_due


class Endpoint:
    """What clients connect to, shared by Server (runs the sessions) and Front (front.py: hands them to worker
    processes): the thread, the client-facing ROUTER and XPUB, request decoding and validation, the handshake,
    `hello`, server `stats` and the exact-topic subscription rule.

    Requests it does not answer itself (`_handlers`) go to `_route`: a session's requests, and for a Front `open`.
    """

    def __init__(self, config: ServerConfig):
        self.config = config
        self.limits = config.limits
        self.endpoints: dict[str, str] = {}
        self._peers: OrderedDict[bytes, float] = OrderedDict()
        self._counts = {"requests": 0, "errors": 0, "chunks": 0}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._sockets: list[zmq.Socket] = []   # every socket this thread opened, closed when it ends
        self._topics: set[bytes] = set()       # stream topics of open sessions (the only subscriptions applied)
        self._handlers = {"hello": self._op_hello, "stats": self._op_server_stats, "ping": self._op_ping}

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0):
        """Serve on a background thread; returns once it serves (raises if binding or starting failed)."""
        self._thread = threading.Thread(target=self._serve_quietly, name=f"streamvideo-{type(self).__name__}",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"bridge {type(self).__name__} did not start within {timeout} s")
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def serve_forever(self) -> None:
        """Bind and serve in the calling thread until stop()."""
        context = zmq.Context()
        auth = None
        try:
            self._prepare()
            auth = _start_authenticator(context, self.config.curve_keys) if self.config.curve_keys else None
            sockets = self._open(context)
            self._ready.set()
            self._loop(*sockets)
        except BaseException as err:
            self._failure = err  # for start(), which waits for _ready
            raise
        finally:
            self._ready.set()
            self._shutdown()
            for sock in self._sockets:
                sock.close(linger=0)
            if auth is not None:
                auth.stop()
            context.term()

    def _serve_quietly(self) -> None:
        try:
            self.serve_forever()
        except BaseException:  # start() re-raises it if starting failed
            log.exception("bridge %s stopped", type(self).__name__)

    def _prepare(self) -> None:
        """Checks before any socket opens."""

    def _open(self, context: zmq.Context) -> tuple:
        """Open the sockets; returns the arguments of _loop."""
        raise NotImplementedError

    def _loop(self, *sockets) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Release what the endpoint holds besides its sockets (threads, processes)."""

    def _socket(self, context: zmq.Context, kind: int) -> zmq.Socket:
        sock = context.socket(kind)
        self._sockets.append(sock)
        _common_options(sock, self.config.heartbeat_ms)
        return sock

    def _bind(self, sock: zmq.Socket, endpoint: str) -> str:
        """Bind (CURVE server when keys are given: every socket an endpoint binds); returns the bound address."""
        if self.config.curve_keys:
            _curve_server(sock, self.config.curve_keys)
        sock.bind(endpoint)
        return sock.last_endpoint.decode()

    def _bind_clients(self, context: zmq.Context) -> tuple[zmq.Socket, zmq.Socket]:
        """The client-facing sockets: control ROUTER and stream XPUB (PROTOCOL.md section 1)."""
        router, pub = self._socket(context, zmq.ROUTER), self._socket(context, zmq.XPUB)
        pub.setsockopt(zmq.XPUB_MANUAL, 1)  # subscriptions are applied by _read_subscriptions, exact tokens only
        router.maxmsgsize = self.limits.max_message_bytes
        router.sndhwm = router.rcvhwm = 1000
        pub.sndhwm = self.limits.stream_hwm
        pub.sndbuf = self.limits.stream_sndbuf
        pub.maxmsgsize = 1024  # subscription messages only
        self.endpoints = {"control": self._bind(router, self.config.bind), "pub": self._bind(pub, self.config.pub)}
        self._control, self._pub = router, pub
        return router, pub

    # ------------------------------------------------------------------ reading

    def _read_control(self) -> None:
        for frames in waiting(self._control):
            self._handle(frames[0].bytes, frames[1:])

    def _read_subscriptions(self) -> None:
        """Apply a subscriber's (un)subscription only when it names exactly an open session's stream topic;
        a subscription to any other prefix (the empty one included) is never applied, so it receives nothing."""
        for (message,) in waiting(self._pub, copy=True):
            if message[:1] in (b"\x00", b"\x01") and message[1:] in self._topics:
                option = zmq.SUBSCRIBE if message[:1] == b"\x01" else zmq.UNSUBSCRIBE
                self._pub.setsockopt(option, message[1:])  # applies to the subscriber that sent it

    # ------------------------------------------------------------------ requests

    def _handle(self, identity: bytes, frames: list) -> None:
        self._counts["requests"] += 1
        rid = None
        try:
            try:
                header, buffers = P.unpack(frames, self.limits)
            except BridgeError as err:
                rid = err.request_id
                raise
            rid = P.request_id(header)
            rid, op = P.parse_op(header)
            self._check_handshake(identity, op)
            request = P.parse_fields(rid, op, header, self.limits)
            if "session" in request.fields or request.op not in self._handlers:
                self._route(identity, request, frames)
                return
            fields, out = self._handlers[request.op](identity, request, buffers)
            self._send(identity, P.pack(P.ok(rid, **fields), out))
        except BridgeError as err:
            self._send_error(identity, rid, err)

    def _route(self, identity: bytes, request: P.Request, frames: list) -> None:
        """A request the endpoint does not answer itself; frames are the request as received."""
        raise NotImplementedError

    def _check_handshake(self, identity: bytes, op: str) -> None:
        if op == "hello":
            return
        if identity not in self._peers:
            raise BridgeError("handshake_required", f"send hello with version {P.PROTOCOL_VERSION!r} "
                                                    f"before {op!r} (after a reconnect: hello, then resend)")
        self._peers.move_to_end(identity)

    def _unknown_session(self, sid: str) -> BridgeError:
        return BridgeError("unknown_session", f"no session {sid}: never opened, closed, or reclaimed "
                                              f"after {self.limits.idle_timeout_ms} ms idle")

    def _send(self, identity: bytes, parts: list) -> None:
        try:
            self._control.send_multipart([identity, *parts], zmq.NOBLOCK, copy=False)  # a ROUTER drops, never blocks
        except zmq.Again:  # a worker's link to its front is full: like a ROUTER, drop
            log.warning("reply dropped: the link to the front is full")

    def _send_error(self, identity: bytes, rid, err: BridgeError) -> None:
        self._counts["errors"] += 1
        self._send(identity, P.pack(P.error(rid, err.code, err.message)))

    # ------------------------------------------------------------------ connection-level ops

    def _op_hello(self, identity: bytes, request: P.Request, buffers: list):
        version = request.fields["version"]
        if P.major(version) != P.major(P.PROTOCOL_VERSION):
            raise BridgeError("version_mismatch", f"client speaks protocol {version}, this server speaks "
                                                  f"{P.PROTOCOL_VERSION}; major versions must match")
        if P.minor(version) < P.OLDEST_MINOR:
            raise BridgeError("version_mismatch", f"client speaks protocol {version}, this server speaks "
                                                  f"{P.PROTOCOL_VERSION}: since 1.1 streams are published under "
                                                  f"the `topic` of the open reply, not the session id; update "
                                                  f"the client (PROTOCOL.md, Changelog)")
        self._peers[identity] = time.monotonic()
        self._peers.move_to_end(identity)
        while len(self._peers) > MAX_PEERS:
            self._peers.popitem(last=False)
        return {"version": P.PROTOCOL_VERSION, "server": f"streamvideo {metadata.version('streamvideo')}",
                "models": list(self.config.models), "encodings": list(P.ENCODINGS),
                "pub": self.endpoints["pub"], "heartbeat_ms": self.config.heartbeat_ms,
                "limits": self.limits.as_dict()}, []

    def _op_server_stats(self, identity: bytes, request: P.Request, buffers: list):
        streaming = self._streaming_flags()
        stats = {"sessions": len(streaming), "streaming": sum(streaming),
                 "uptime_s": time.monotonic() - self._started, **self._counts}
        return {"stats": stats}, []

    def _streaming_flags(self) -> list[bool]:
        """One flag per open session: is it streaming."""
        raise NotImplementedError

    def _model_to_open(self, request: P.Request, sessions: int) -> str:
        """The model an `open` asks for, once the session limit (sessions: open or opening) and the model
        allow-list let it through."""
        if sessions >= self.limits.max_sessions:
            raise BridgeError("server_full", f"{sessions} sessions open (max_sessions="
                                             f"{self.limits.max_sessions}); close one first")
        model = request.fields.get("model", self.config.models[0])
        if model not in self.config.models:
            raise BridgeError("unknown_model", f"model {model!r} is not served; expected one of "
                                               f"{list(self.config.models)}")
        return model

    def _op_ping(self, identity: bytes, request: P.Request, buffers: list):
        raise NotImplementedError


class Server(Endpoint):
    """The bridge server. `loader(name, device=..., mode=..., schedule=...)` builds a session's generator."""

    def __init__(self, config: ServerConfig, loader=None):
        super().__init__(config)
        self.sessions: dict[str, Session] = {}
        self._loader = loader or SharedModels()
        self._rr = 0
        self._link: WorkerLink | None = None
        self._stream_link: str | None = None   # worker: the front endpoint its PUB is connected to
        self._handlers["open"] = self._op_open
        self._session_ops = {"reset": self._op_reset, "step": self._op_step, "set_prompt": self._op_set_prompt,
                             "stats": self._op_stats, "close": self._op_close, "stream": self._op_stream,
                             "act": self._op_act}

    # ------------------------------------------------------------------ lifecycle

    def _prepare(self) -> None:
        """Load every served model once before binding, so a bad name fails at start-up, not at `open`."""
        config = self.config
        check_exposure(config, [config.attach] if config.attach is not None else [config.bind, config.pub])
        for name in self.config.models:
            try:
                self._loader(name, device=self.config.device)
            except (ValueError, FileNotFoundError, OSError) as err:
                raise ValueError(f"cannot serve model {name!r}: {err}") from None

    def _open(self, context: zmq.Context) -> tuple:
        if self.config.attach is None:
            self._bind_clients(context)
            log.info("serving %s on %s, streams on %s%s", list(self.config.models), self.endpoints["control"],
                     self.endpoints["pub"], " (CURVE)" if self.config.curve_keys else "")
        else:
            self._attach(context)
        return self._control, self._pub

    def _attach(self, context: zmq.Context) -> None:
        """Worker mode: requests arrive from the link thread over inproc; streams leave on a PUB that connects
        to the front once the link is welcomed (_on_link)."""
        curve = _load_curve(self.config.front_key, self.config.worker_key)
        ready = {"models": list(self.config.models), "max_sessions": self.limits.max_sessions,
                 "device": self.config.device, "pid": os.getpid(), "host": socket.gethostname()}
        self._link = WorkerLink(context, self.config, curve, ready, self._stop)
        self._control = self._socket(context, zmq.PAIR)
        self._control.connect(self._link.address)
        self._pub = self._socket(context, zmq.PUB)
        self._pub.sndhwm = LINK_STREAM_HWM
        if curve is not None:
            self._pub.curve_serverkey, self._pub.curve_publickey, self._pub.curve_secretkey = curve
        self._link.start()
        log.info("worker of %s: serving %s on %s%s", self.config.attach, list(self.config.models),
                 self.config.device, " (CURVE)" if curve else "")

    def _shutdown(self) -> None:
        if self._link is not None:
            self._link.join()

    # ------------------------------------------------------------------ main loop

    def _loop(self, control: zmq.Socket, pub: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(control, zmq.POLLIN)
        if pub.socket_type == zmq.XPUB:  # a worker's PUB receives nothing
            poller.register(pub, zmq.POLLIN)
        next_sweep = 0.0
        while not self._stop.is_set():
            events = dict(poller.poll(self._poll_ms(time.monotonic())))
            if pub in events:
                self._read_subscriptions()
            if control in events:
                self._read_control()
            now = time.monotonic()
            self._run_next(now)
            if now >= next_sweep:
                self._reclaim_idle(now)
                next_sweep = now + SWEEP_SECONDS

    def _poll_ms(self, now: float) -> int:
        if any(s.queue for s in self.sessions.values()):
            return 0
        due = [s.next_due for s in self.sessions.values() if s.streaming]
        wait = min(due, default=now + 1.0) - now
        return max(0, min(MAX_POLL_MS, math.ceil(wait * 1000)))

    def _run_next(self, now: float) -> None:
        """Run one unit of work, round-robin over sessions: a queued request, or a chunk for the first session
        with one to make together with every session of its model that has one too."""
        ids = list(self.sessions)
        for k in range(len(ids)):
            session = self.sessions[ids[(self._rr + k) % len(ids)]]
            if self._chunk_ready(session, now):
                order = [self.sessions[ids[(self._rr + k + j) % len(ids)]] for j in range(len(ids))]
                self._make_chunks(self._batch_for(session, order, now), now)
            elif session.queue:
                self._execute(session, *session.queue.popleft())
            else:
                continue
            self._rr = (self._rr + k + 1) % len(ids)
            return

    def _chunk_ready(self, session: Session, now: float) -> bool:
        """Its next unit of work is a chunk: a queued lock-step `step`, or (nothing queued) a due real-time one."""
        if session.queue:
            return session.queue[0][1].op == "step" and not session.streaming  # while streaming: bad_state
        return session.due(now)

    def _batch_for(self, lead: Session, order: list[Session], now: float) -> list[Session]:
        """lead and the sessions after it (round-robin order) of its model with a chunk ready, up to max_batch."""
        if lead.group is None:
            return [lead]
        batch = [s for s in order if s.group == lead.group and self._chunk_ready(s, now)]
        return batch[:self.config.max_batch]

    def _make_chunks(self, batch: list[Session], now: float) -> None:
        """One chunk for each session of the batch in one forward pass; replies to lock-step requests, publishes
        real-time chunks."""
        jobs = [session.queue.popleft() if session.queue else None for session in batch]  # None: real-time
        actions = [job[2] if job else session.action for session, job in zip(batch, jobs)]
        failure = None
        try:
            if len(batch) == 1:
                chunks = [batch[0].gen.step(actions[0])]
            else:
                chunks = step_group([session.gen for session in batch], actions)
        except Exception as err:
            log.exception("sessions %s: chunk failed", [s.id[:8] for s in batch])
            chunks, failure = [None] * len(batch), err
        for session, job, chunk in zip(batch, jobs, chunks):
            if job is not None:
                identity, request, _, key = job
                reply = (lambda s=session, c=chunk: self._step_reply(s, c, len(batch))) if failure is None else \
                    (lambda: _raise(failure))
                self._answer(session, identity, request, key, reply)
            elif failure is not None:
                self._end_stream(session, "error", f"{type(failure).__name__}: {failure}")
            else:
                session.next_due = max(session.next_due + session.period, now)  # never bursts to catch up
                self._publish_chunk(session, chunk, len(batch))

    def _reclaim_idle(self, now: float) -> None:
        timeout = self.limits.idle_timeout_ms / 1000
        for session in [s for s in self.sessions.values() if now - s.last_seen > timeout]:
            self._remove(session, "idle_timeout", f"no request named the session for {timeout:g} s")
            log.info("session %s reclaimed after %.1f s without a request", session.id[:8], timeout)

    def _remove(self, session: Session, reason: str, message: str) -> None:
        self._end_stream(session, reason, message)
        self.sessions.pop(session.id, None)
        self._topics.discard(session.topic.encode())

    # ------------------------------------------------------------------ requests

    def _handle(self, identity: bytes, frames: list) -> None:
        if identity:
            super()._handle(identity, frames)
        else:  # from the link thread: no client identity is empty
            self._on_link(frames)

    def _on_link(self, frames: list) -> None:
        """Worker mode: the link was welcomed by a front (again). Sessions of an earlier link are gone (that
        front answered worker_lost for them); streams now go to this front, whose `pub` the replies name."""
        welcome = msgpack.unpackb(frames[1].bytes)
        if self._stream_link is not None:  # first, so that the ends below reach nobody: the front told them
            self._pub.disconnect(self._stream_link)
        for session in list(self.sessions.values()):
            self._remove(session, "worker_lost", "this worker re-attached to its front")
        self._stream_link = _with_host(welcome["stream"], _host(self.config.attach))
        self._pub.connect(self._stream_link)
        self.endpoints["pub"] = welcome["pub"]
        log.info("attached to the front at %s, streams to %s", self.config.attach, self._stream_link)

    def _check_handshake(self, identity: bytes, op: str) -> None:
        if self.config.attach is None:  # a worker trusts its front, which checked the handshake
            super()._check_handshake(identity, op)

    def _route(self, identity: bytes, request: P.Request, frames: list) -> None:
        self._session_request(identity, request, frames[1:])

    def _session_request(self, identity: bytes, request: P.Request, buffers: list) -> None:
        session = self._session(request.fields["session"])
        session.last_seen = time.monotonic()
        key = retry_key(request, buffers)
        if session.last_reply is not None and session.last_reply[0] == key:
            self._send(identity, session.last_reply[1])  # a retry: same answer, not run twice
            return
        if any(item[1].id == request.id for item in session.queue):
            return  # a retry of a request still queued: its reply will come once
        payload = self._payload(session, request, buffers)
        if request.op != "step" and not session.queue:
            self._execute(session, identity, request, payload, key)
        elif len(session.queue) >= self.limits.max_pending:
            raise BridgeError("busy", f"session has {len(session.queue)} requests queued "
                                      f"(max_pending={self.limits.max_pending}); wait for replies")
        else:
            session.queue.append((identity, request, payload, key))

    def _payload(self, session: Session, request: P.Request, buffers: list):
        """Decode and validate what a session request carries, before it is queued."""
        if request.op in ("step", "act"):
            spec = session.gen.action_spec
            action = P.decode_action(request.fields.get("action"), buffers, self.limits, spec)
            try:
                return spec.validate(action)
            except ValueError as err:
                raise BridgeError("bad_action", str(err)) from None
        if request.op == "reset" and "context_frames" in request.fields:
            frames = P.decode_array(request.fields["context_frames"], buffers, self.limits, "context_frames")
            gen, most = session.gen, self.limits.max_context_frames
            if (frames.dtype.name != "uint8" or frames.ndim != 4 or not 1 <= len(frames) <= most
                    or frames.shape[1:] != (gen.height, gen.width, 3)):
                raise BridgeError("bad_array", f"context_frames must be uint8 [N, {gen.height}, {gen.width}, 3] "
                                               f"with 1 <= N <= {most}, got {frames.dtype.name} {list(frames.shape)}")
            return frames
        return None

    def _execute(self, session: Session, identity: bytes, request: P.Request, payload, key: tuple) -> None:
        self._answer(session, identity, request, key, lambda: self._session_ops[request.op](session, request, payload))

    def _answer(self, session: Session, identity: bytes, request: P.Request, key: tuple, run) -> None:
        """Reply to a session request with what run() returns (fields, buffers) or raises; remembered for retries."""
        try:
            fields, out = run()
            header = P.ok(request.id, **fields)
        except BridgeError as err:
            header, out = P.error(request.id, err.code, err.message), []
        except ValueError as err:  # the generator refused a value the client chose
            header, out = P.error(request.id, "bad_type", str(err)), []
        except Exception as err:
            log.exception("session %s: %s failed", session.id, request.op)
            header, out = P.error(request.id, "internal", f"{type(err).__name__}: {err}"), []
        if not header["ok"]:
            self._counts["errors"] += 1
        parts = P.pack(header, out)
        session.last_reply = (key, parts)
        self._send(identity, parts)

    def _session(self, sid: str) -> Session:
        try:
            return self.sessions[sid]
        except KeyError:
            raise self._unknown_session(sid) from None

    # ------------------------------------------------------------------ connection-level ops

    def _op_open(self, identity: bytes, request: P.Request, buffers: list):
        f = request.fields
        model = self._model_to_open(request, len(self.sessions))
        settings = {k: f[k] for k in ("mode", "schedule") if k in f}
        try:
            gen = self._loader(model, device=self.config.device, **settings)
            gen.reset(prompt=f.get("prompt"), seed=f.get("seed"))
        except ValueError as err:
            raise BridgeError("bad_type", f"cannot open {model!r} with {settings}: {err}") from None
        sid = secrets.token_hex(16)
        session = Session(sid, model, gen, f.get("prompt"), f.get("encoding", "raw"), f.get("quality", 85))
        self.sessions[sid] = session
        self._topics.add(session.topic.encode())
        log.info("session %s opened (%s, %d open)", sid[:8], model, len(self.sessions))  # ids stay out of logs
        return {"session": sid, "topic": session.topic, "model": model, "frames_per_chunk": gen.frames_per_chunk,
                "height": gen.height, "width": gen.width, "fps": float(gen.fps),
                "action_space": P.describe_space(gen.action_spec), "encoding": session.encoding}, []

    def _streaming_flags(self) -> list[bool]:
        return [s.streaming for s in self.sessions.values()]

    def _op_ping(self, identity: bytes, request: P.Request, buffers: list):
        now, unknown = time.monotonic(), []
        for sid in request.fields.get("sessions", []):
            if sid in self.sessions:
                self.sessions[sid].last_seen = now
            else:
                unknown.append(sid)
        return {"time": time.time(), "unknown": unknown}, []

    # ------------------------------------------------------------------ session ops

    def _op_reset(self, session: Session, request: P.Request, context_frames):
        f = request.fields
        session.prompt = f.get("prompt", session.prompt)  # reset keeps the current prompt unless given
        session.gen.reset(prompt=session.prompt, seed=f.get("seed"), context_frames=context_frames)
        session.last_index = -1
        # the context frames fill whole chunks, so the next step's index is their count (0 without context)
        return {"next_index": int(session.gen.rollout.chunk_index[0])}, []

    def _op_step(self, session: Session, request: P.Request, action):
        """Reached only while streaming: a step that can run is made by _make_chunks."""
        raise BridgeError("bad_state", "session is streaming: send act, or stream with on=false first")

    def _step_reply(self, session: Session, chunk, batch: int):
        out: list = []
        frames = P.encode_chunk(chunk.frames, session.encoding, out, session.quality)
        self._counts["chunks"] += 1
        return {"index": int(chunk.index), "nfe": int(chunk.nfe), "seconds": float(chunk.seconds),
                "prompt": chunk.prompt, "batch": batch, "frames": frames}, out

    def _op_set_prompt(self, session: Session, request: P.Request, payload):
        session.gen.set_prompt(request.fields["prompt"], recache=request.fields.get("recache", False))
        session.prompt = request.fields["prompt"]
        return {}, []

    def _op_stats(self, session: Session, request: P.Request, payload):
        stats = {**session.gen.stats, "streaming": session.streaming, "pending": len(session.queue),
                 "model": session.model}
        return {"stats": stats}, []

    def _op_close(self, session: Session, request: P.Request, payload):
        self._remove(session, "closed", "the session was closed")
        log.info("session %s closed (%d open)", session.id[:8], len(self.sessions))
        return {}, []

    def _op_stream(self, session: Session, request: P.Request, payload):
        if not request.fields.get("on", True):
            self._end_stream(session, "stopped", "stream on=false")
        else:
            session.streaming = True
            fps = request.fields.get("fps", float(session.gen.fps))
            session.period = session.gen.frames_per_chunk / fps if fps > 0 else 0.0
            session.next_due = time.monotonic()
        return {"topic": session.topic, "pub": self.endpoints["pub"]}, []

    def _op_act(self, session: Session, request: P.Request, action):
        session.action = action
        return {"index": session.last_index}, []

    def _publish_chunk(self, session: Session, chunk, batch: int) -> None:
        out: list = []
        header = {"time": time.time(), "index": int(chunk.index), "nfe": int(chunk.nfe),
                  "seconds": float(chunk.seconds), "prompt": chunk.prompt, "batch": batch,
                  "frames": P.encode_chunk(chunk.frames, session.encoding, out, session.quality)}
        session.last_index = int(chunk.index)
        self._counts["chunks"] += 1
        self._pub.send_multipart([session.topic.encode(), *P.pack(header, out)], copy=False)

    def _end_stream(self, session: Session, reason: str, message: str) -> None:
        """Stop a streaming session and tell its subscribers why, in a last message without frames."""
        if not session.streaming:
            return
        session.streaming = False
        self._pub.send_multipart(end_message(session.topic.encode(), session.last_index, reason, message))


# ---------------------------------------------------------------------- messages, sockets and security

def _raise(err: BaseException):
    raise err


def retry_key(request: P.Request, buffers) -> tuple:
    """What makes a request a retry: the same id and the same content, from whichever connection (a client
    that reconnected has a new identity); another request that happens to reuse the id is run normally."""
    digest = hashlib.sha256(repr((request.op, sorted(request.fields.items()))).encode())
    for b in buffers:
        digest.update(bytes(b))
    return request.id, digest.hexdigest()


def end_message(topic: bytes, index: int, reason: str, message: str) -> list:
    """The last message of a stream (PROTOCOL.md, End of stream); a failure carries an error map too."""
    header = {"time": time.time(), "index": index, "end": {"reason": reason, "message": message}}
    if reason in FAILURES:
        header["error"] = {"code": FAILURES[reason], "message": message}
    return [topic, *P.pack(header)]


class SharedModels:
    """Builds session generators that share one copy of each model's weights (per model name and device);
    every session still has its own KV cache, noise and decode state."""

    def __init__(self):
        self._parts: dict[tuple, tuple] = {}

    def __call__(self, name: str, device=None, **settings):
        from streamvideo.engine.presets import generator_from_parts, load_parts, trained_prompts
        key = (name, str(device))
        if key not in self._parts:
            self._parts[key] = load_parts(name, device=device), trained_prompts(name)
        parts, prompts = self._parts[key]
        return generator_from_parts(parts, trained_prompts=prompts, **settings)


def _common_options(sock: zmq.Socket, heartbeat_ms: int) -> None:
    sock.linger = 0
    sock.heartbeat_ivl = heartbeat_ms
    sock.heartbeat_timeout = 3 * heartbeat_ms
    sock.heartbeat_ttl = 3 * heartbeat_ms


def waiting(sock: zmq.Socket, copy: bool = False):
    """The messages waiting on `sock`, read without blocking, at most READS_PER_TURN of them, so that one busy
    socket cannot starve the others (or the chunks due) of a loop."""
    for _ in range(READS_PER_TURN):
        try:
            yield sock.recv_multipart(zmq.NOBLOCK, copy=copy)
        except zmq.Again:
            return


def _send_quietly(sock: zmq.Socket, frames: list) -> bool:
    """Send without blocking; False when the peer's queue is full (the message is dropped)."""
    try:
        sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        return True
    except zmq.Again:
        return False


def _host(endpoint: str) -> str:
    return endpoint.partition("://")[2].rpartition(":")[0]


def _with_host(endpoint: str, host: str) -> str:
    """An endpoint as bound, with a wildcard host (0.0.0.0, *) replaced by the host its peer can reach."""
    scheme, _, rest = endpoint.partition("://")
    bound, _, port = rest.rpartition(":")
    return f"{scheme}://{host}:{port}" if bound in WILDCARD_HOSTS else endpoint


def _is_local(endpoint: str) -> bool:
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0]
    return host.startswith(LOOPBACK_HOSTS)


def check_exposure(config: ServerConfig, endpoints: list[str]) -> None:
    """Plaintext only on loopback (or with --insecure): a front or server binds CURVE sockets with --curve-keys,
    a worker attaches with --front-key and --worker-key."""
    exposed = [e for e in endpoints if not _is_local(e)]
    if not exposed or config.insecure:
        return
    if config.attach is not None and not config.worker_key:
        raise ValueError(f"refusing to attach in plaintext to non-loopback {exposed}: pass --front-key "
                         f"(the front's server.key) and --worker-key (NAME.key_secret), or --insecure")
    if config.attach is None and not config.curve_keys:
        raise ValueError(f"refusing to serve plaintext on non-loopback {exposed}: pass --curve-keys DIR "
                         f"(create one with `streamvideo keys DIR`) or --insecure")


class _AllowedKeys:
    """CURVE client keys (Z85) the ZAP handler lets in."""

    def __init__(self, keys: set[bytes]):
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def _start_authenticator(context: zmq.Context, keys_dir: str):
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


def _curve_server(sock: zmq.Socket, keys_dir: str) -> None:
    public, secret = zmq.auth.load_certificate(str(Path(keys_dir) / "server.key_secret"))
    sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True


# ---------------------------------------------------------------------- worker mode: the link to a front

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
        _common_options(front, self._config.heartbeat_ms)
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


# ---------------------------------------------------------------------- command line

def device_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated torch devices, e.g. cuda:0,cuda:1."""
    devices = tuple(d.strip() for d in text.split(","))
    if not all(devices):
        raise argparse.ArgumentTypeError(f"expected comma-separated devices such as cuda:0,cuda:1, got {text!r}")
    return devices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    parser.add_argument("--bind", default=d.bind, help="control (ROUTER) endpoint; loopback by default")
    parser.add_argument("--pub", default=d.pub, help="real-time stream (PUB) endpoint")
    parser.add_argument("--model", action="append", help="model clients may open (repeatable; the first is "
                                                         f"the default); default {d.models[0]!r}")
    parser.add_argument("--device", default=d.device, help="torch device for the generators")
    parser.add_argument("--max-sessions", type=int, default=d.limits.max_sessions)
    parser.add_argument("--max-batch", type=positive_int, default=d.max_batch,
                        help="sessions of one model stepped in one forward pass (1: one at a time, bit-exact "
                             "with an in-process generator)")
    parser.add_argument("--idle-timeout", type=float, default=d.limits.idle_timeout_ms / 1000,
                        help="seconds without a request after which a session is closed")
    parser.add_argument("--heartbeat", type=float, default=d.heartbeat_ms / 1000,
                        help="heartbeat interval in seconds (ZMTP, client pings, front/worker link)")
    parser.add_argument("--curve-keys", metavar="DIR", help="CURVE keys: DIR/server.key_secret and "
                                                            "DIR/authorized_clients/*.key")
    parser.add_argument("--insecure", action="store_true", help="allow plaintext on non-loopback addresses")
    add_threads_argument(parser)
    group = parser.add_argument_group("workers", "one endpoint in front of several worker processes "
                                                 "(PROTOCOL.md section 6); clients see the same protocol")
    group.add_argument("--workers", type=positive_int, metavar="N", help="serve through N local worker processes (this "
                                                            "process is their front and restarts a dead one); "
                                                            "--threads is then per worker")
    group.add_argument("--devices", type=device_list, metavar="LIST", help="one torch device per local worker, e.g. "
                                                           "cuda:0,cuda:1 (sets --workers)")
    group.add_argument("--worker-bind", metavar="ENDPOINT", help="front: where workers attach (default a free "
                                                                 "loopback port; e.g. tcp://0.0.0.0:5557 for "
                                                                 "remote workers, with --curve-keys)")
    group.add_argument("--worker-pub", metavar="ENDPOINT", help="front: where workers publish streams (default "
                                                                "the --worker-bind host, a free port)")
    group.add_argument("--attach", metavar="ENDPOINT", help="run only a worker, attached to the front at "
                                                            "ENDPOINT (its --worker-bind)")
    group.add_argument("--front-key", metavar="FILE", help="with --attach: the front's server.key (CURVE)")
    group.add_argument("--worker-key", metavar="FILE", help="with --attach: this worker's NAME.key_secret, "
                                                            "listed in the front's authorized_clients/")
    group.add_argument("--front-pid", type=int, help=argparse.SUPPRESS)  # set by a local front: stop with it


def is_front(args: argparse.Namespace) -> bool:
    return bool(args.workers or args.devices or args.worker_bind or args.worker_pub)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    if args.attach and (is_front(args) or args.curve_keys):
        raise ValueError("--attach runs only a worker: it takes no --workers, --devices, --worker-bind, "
                         "--worker-pub or --curve-keys (the link's keys are --front-key and --worker-key)")
    if not args.attach and (args.front_key or args.worker_key):
        raise ValueError("--front-key and --worker-key are a worker's keys: use them with --attach")
    limits = replace(Limits(), max_sessions=args.max_sessions, idle_timeout_ms=round(args.idle_timeout * 1000))
    return ServerConfig(bind=args.bind, pub=args.pub, models=tuple(args.model or ServerConfig.models),
                        device=args.device, curve_keys=args.curve_keys, insecure=args.insecure,
                        heartbeat_ms=round(args.heartbeat * 1000), max_batch=args.max_batch, limits=limits,
                        attach=args.attach, front_key=args.front_key, worker_key=args.worker_key,
                        front_pid=args.front_pid)


def endpoint_from_args(args: argparse.Namespace) -> Endpoint:
    """A Front when --workers, --devices or --worker-bind say so; else a Server (a worker with --attach)."""
    config = config_from_args(args)
    if is_front(args):
        from .front import Front, front_config
        return Front(front_config(config, args.workers, args.devices, args.threads, args.worker_bind,
                                  args.worker_pub))
    log.info("torch CPU threads: %d", set_threads(args.threads))
    return Server(config)


def run(args: argparse.Namespace) -> int:
    role = f" worker {os.getpid()}" if args.attach else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(name)s{role} %(message)s")
    try:
        endpoint = endpoint_from_args(args)
        signal.signal(signal.SIGTERM, lambda *_: endpoint.stop())
        endpoint.serve_forever()
    except KeyboardInterrupt:
        pass
    except (ValueError, FileNotFoundError, TimeoutError, zmq.ZMQError) as err:
        print(f"streamvideo serve: {err}")
        return 2
    return 0
