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
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import secrets
import signal
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import zmq

from streamvideo.group_step import group_key, step_group
from streamvideo.threads import add_threads_argument, positive_int, set_threads

from . import protocol as P
from .protocol import BridgeError, Limits

log = logging.getLogger("streamvideo.bridge")

MAX_PEERS = 4096           # remembered handshakes (least recently seen are forgotten first)
READS_PER_TURN = 64        # control messages read between two chunks
SWEEP_SECONDS = 0.2        # how often idle sessions are looked for
MAX_POLL_MS = 100          # longest sleep; bounds the reaction time to stop()
LOOPBACK_HOSTS = ("127.", "localhost", "::1", "[::1]")


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


class Server:
    """The bridge server. `loader(name, device=..., mode=..., schedule=...)` builds a session's generator."""

    def __init__(self, config: ServerConfig, loader=None):
        self.config = config
        self.limits = config.limits
        self.endpoints: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self._loader = loader or SharedModels()
        self._peers: OrderedDict[bytes, float] = OrderedDict()
        self._counts = {"requests": 0, "errors": 0, "chunks": 0}
        self._started = time.monotonic()
        self._rr = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._topics: set[bytes] = set()   # stream topics of open sessions (the only subscriptions applied)
        self._handlers = {"hello": self._op_hello, "open": self._op_open, "stats": self._op_server_stats,
                          "ping": self._op_ping}
        self._session_ops = {"reset": self._op_reset, "step": self._op_step, "set_prompt": self._op_set_prompt,
                             "stats": self._op_stats, "close": self._op_close, "stream": self._op_stream,
                             "act": self._op_act}

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> Server:
        """Serve on a background thread; returns once the sockets are bound (raises if binding failed)."""
        self._thread = threading.Thread(target=self._serve_quietly, name="streamvideo-bridge", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"bridge server did not bind within {timeout} s")
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
        auth, sockets = None, []
        try:
            self._check_models()
            auth = _start_authenticator(context, self.config.curve_keys) if self.config.curve_keys else None
            sockets = self._bind(context)
            self._ready.set()
            self._loop(*sockets)
        except BaseException as err:
            self._failure = err  # for start(), which waits for _ready
            raise
        finally:
            self._ready.set()
            for sock in sockets:
                sock.close(linger=0)
            if auth is not None:
                auth.stop()
            context.term()

    def _serve_quietly(self) -> None:
        try:
            self.serve_forever()
        except BaseException:  # start() re-raises it if binding failed
            log.exception("bridge server stopped")

    def _check_models(self) -> None:
        """Load every served model once before binding, so a bad name fails at start-up, not at `open`."""
        for name in self.config.models:
            try:
                self._loader(name, device=self.config.device)
            except (ValueError, FileNotFoundError, OSError) as err:
                raise ValueError(f"cannot serve model {name!r}: {err}") from None

    def _bind(self, context: zmq.Context) -> list:
        _check_exposure(self.config)
        router, pub = context.socket(zmq.ROUTER), context.socket(zmq.XPUB)
        pub.setsockopt(zmq.XPUB_MANUAL, 1)  # subscriptions are applied by _read_subscriptions, exact tokens only
        for sock in (router, pub):
            _common_options(sock, self.config.heartbeat_ms)
            if self.config.curve_keys:
                _curve_server(sock, self.config.curve_keys)
        router.maxmsgsize = self.limits.max_message_bytes
        router.sndhwm = router.rcvhwm = 1000
        pub.sndhwm = self.limits.stream_hwm
        pub.sndbuf = self.limits.stream_sndbuf
        pub.maxmsgsize = 1024  # subscription messages only
        router.bind(self.config.bind)
        pub.bind(self.config.pub)
        self.endpoints = {"control": router.last_endpoint.decode(), "pub": pub.last_endpoint.decode()}
        log.info("serving %s on %s, streams on %s%s", list(self.config.models), self.endpoints["control"],
                 self.endpoints["pub"], " (CURVE)" if self.config.curve_keys else "")
        return [router, pub]

    # ------------------------------------------------------------------ main loop

    def _loop(self, router: zmq.Socket, pub: zmq.Socket) -> None:
        self._router, self._pub = router, pub
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pub, zmq.POLLIN)
        next_sweep = 0.0
        while not self._stop.is_set():
            if poller.poll(self._poll_ms(time.monotonic())):
                self._read_subscriptions()
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

    def _read_control(self) -> None:
        for _ in range(READS_PER_TURN):
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._handle(frames[0].bytes, frames[1:])

    def _read_subscriptions(self) -> None:
        """Apply a subscriber's (un)subscription only when it names exactly an open session's stream topic;
        a subscription to any other prefix (the empty one included) is never applied, so it receives nothing."""
        for _ in range(READS_PER_TURN):
            try:
                message = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if message[:1] in (b"\x00", b"\x01") and message[1:] in self._topics:
                option = zmq.SUBSCRIBE if message[:1] == b"\x01" else zmq.UNSUBSCRIBE
                self._pub.setsockopt(option, message[1:])  # applies to the subscriber that sent it

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
            if "session" in request.fields:
                self._session_request(identity, request, buffers)
                return
            fields, out = self._handlers[request.op](identity, request, buffers)
            self._send(identity, P.pack(P.ok(rid, **fields), out))
        except BridgeError as err:
            self._send_error(identity, rid, err)

    def _check_handshake(self, identity: bytes, op: str) -> None:
        if op == "hello":
            return
        if identity not in self._peers:
            raise BridgeError("handshake_required", f"send hello with version {P.PROTOCOL_VERSION!r} "
                                                    f"before {op!r} (after a reconnect: hello, then resend)")
        self._peers.move_to_end(identity)

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
            raise BridgeError("unknown_session", f"no session {sid}: never opened, closed, or reclaimed "
                                                 f"after {self.limits.idle_timeout_ms} ms idle") from None

    def _send(self, identity: bytes, parts: list) -> None:
        self._router.send_multipart([identity, *parts], copy=False)  # ROUTER drops, never blocks

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
        from streamvideo import __version__
        return {"version": P.PROTOCOL_VERSION, "server": f"streamvideo {__version__}",
                "models": list(self.config.models), "encodings": list(P.ENCODINGS),
                "pub": self.endpoints["pub"], "heartbeat_ms": self.config.heartbeat_ms,
                "limits": self.limits.as_dict()}, []

    def _op_open(self, identity: bytes, request: P.Request, buffers: list):
        f = request.fields
        if len(self.sessions) >= self.limits.max_sessions:
            raise BridgeError("server_full", f"{len(self.sessions)} sessions open "
                                             f"(max_sessions={self.limits.max_sessions}); close one first")
        model = f.get("model", self.config.models[0])
        if model not in self.config.models:
            raise BridgeError("unknown_model", f"model {model!r} is not served; expected one of "
                                               f"{list(self.config.models)}")
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

    def _op_server_stats(self, identity: bytes, request: P.Request, buffers: list):
        stats = {"sessions": len(self.sessions), "streaming": sum(s.streaming for s in self.sessions.values()),
                 "uptime_s": time.monotonic() - self._started, **self._counts}
        return {"stats": stats}, []

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
        header = {"time": time.time(), "index": session.last_index, "end": {"reason": reason, "message": message}}
        if reason == "error":
            header["error"] = {"code": "internal", "message": message}
        self._pub.send_multipart([session.topic.encode(), *P.pack(header)], copy=False)


# ---------------------------------------------------------------------- sockets and security

def _raise(err: BaseException):
    raise err


def retry_key(request: P.Request, buffers) -> tuple:
    """What makes a request a retry: the same id and the same content, from whichever connection (a client
    that reconnected has a new identity); another request that happens to reuse the id is run normally."""
    digest = hashlib.sha256(repr((request.op, sorted(request.fields.items()))).encode())
    for b in buffers:
        digest.update(bytes(b))
    return request.id, digest.hexdigest()


class SharedModels:
    """Builds session generators that share one copy of each model's weights (per model name and device);
    every session still has its own KV cache, noise and decode state."""

    def __init__(self):
        self._parts: dict[tuple, tuple] = {}

    def __call__(self, name: str, device=None, **settings):
        from streamvideo.presets import generator_from_parts, load_parts, trained_prompts
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


def _is_local(endpoint: str) -> bool:
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0]
    return host.startswith(LOOPBACK_HOSTS)


def _check_exposure(config: ServerConfig) -> None:
    exposed = [e for e in (config.bind, config.pub) if not _is_local(e)]
    if exposed and not config.curve_keys and not config.insecure:
        raise ValueError(f"refusing to serve plaintext on non-loopback {exposed}: pass --curve-keys DIR "
                         f"(create one with `streamvideo keys DIR`) or --insecure")


def _start_authenticator(context: zmq.Context, keys_dir: str):
    """ZAP handler allowing exactly the public keys in keys_dir/authorized_clients/."""
    from zmq.auth.thread import ThreadAuthenticator
    allowed = Path(keys_dir) / "authorized_clients"
    if not allowed.is_dir() or not (Path(keys_dir) / "server.key_secret").is_file():
        raise FileNotFoundError(f"{keys_dir} needs server.key_secret and authorized_clients/; create them with "
                                f"`streamvideo keys {keys_dir}`")
    auth = ThreadAuthenticator(context, log=log.getChild("auth"))
    auth.start()
    auth.configure_curve(domain="*", location=str(allowed))
    return auth


def _curve_server(sock: zmq.Socket, keys_dir: str) -> None:
    public, secret = zmq.auth.load_certificate(str(Path(keys_dir) / "server.key_secret"))
    sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True


# ---------------------------------------------------------------------- command line

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
                        help="heartbeat interval in seconds (ZMTP and client pings)")
    parser.add_argument("--curve-keys", metavar="DIR", help="CURVE keys: DIR/server.key_secret and "
                                                            "DIR/authorized_clients/*.key")
    parser.add_argument("--insecure", action="store_true", help="allow plaintext on non-loopback addresses")
    add_threads_argument(parser)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    limits = replace(Limits(), max_sessions=args.max_sessions, idle_timeout_ms=int(args.idle_timeout * 1000))
    return ServerConfig(bind=args.bind, pub=args.pub, models=tuple(args.model or ServerConfig.models),
                        device=args.device, curve_keys=args.curve_keys, insecure=args.insecure,
                        heartbeat_ms=int(args.heartbeat * 1000), max_batch=args.max_batch, limits=limits)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log.info("torch CPU threads: %d", set_threads(args.threads))
    server = Server(config_from_args(args))
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    except (ValueError, FileNotFoundError, zmq.ZMQError) as err:
        print(f"streamvideo serve: {err}")
        return 2
    return 0
