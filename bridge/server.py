"""The bridge server: sessions of streaming world models for clients over ZeroMQ + MessagePack (PROTOCOL.md);
`streamvideo serve` starts one (serve.py).

One thread owns the sockets (an Endpoint's, endpoint.py) and every session's generator. Cheap requests are
answered at once; `step` requests queue per session; real-time sessions fall due at their rate. Between
control reads the server runs one unit of work, the session whose turn it is (sessions.py: round-robin, a
model's chunks batched into one forward pass, up to `max_batch` sessions), and publishes real-time chunks
(streams.py).

    server = Server(ServerConfig(bind="tcp://127.0.0.1:*", pub="tcp://127.0.0.1:*", models=("tiny-random",)))
    server.start()            # background thread; server.endpoints holds the bound addresses
    ...
    server.stop()

A Server can also be one worker of a front (front.py, `serve --attach`): then it binds nothing; its requests
come from the front over a DEALER (relayed by the link thread, link.py, which keeps heartbeats flowing while
a chunk computes) and its streams go out on a PUB connected to the front, which republishes them.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time

import msgpack
import zmq

from streamvideo.engine.group_step import step_group

from . import protocol as P
from .endpoint import MAX_POLL_MS, SWEEP_SECONDS, Endpoint, ServerConfig, check_exposure
from .keys import load_curve
from .link import LINK_STREAM_HWM, WorkerLink, host_of, with_host
from .protocol import BridgeError
from .sessions import Session, SharedModels, Turns, retry_key, start_frames
from .streams import chunk_fields, chunk_message, end_message

log = logging.getLogger("streamvideo.bridge")


class Server(Endpoint):
    """The bridge server. `loader(name, device=..., mode=..., schedule=...)` builds a session's generator."""

    def __init__(self, config: ServerConfig, loader=None):
        super().__init__(config)
        self.sessions: dict[str, Session] = {}
        self._loader = loader or SharedModels(config.speedups)
        self._turns = Turns(config.max_batch)
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
        curve = load_curve(self.config.front_key, self.config.worker_key)
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
        """Run one unit of work, the session whose turn it is (sessions.Turns): its next queued request, or a chunk
        for it together with every session of its model that has one to make too."""
        unit = self._turns.next_unit(list(self.sessions.values()), now)
        if unit is None:
            return
        session, batch = unit
        if batch is None:
            self._execute(session, *session.queue.popleft())
        else:
            self._make_chunks(batch, now)

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
        self._drop_topic(session.topic.encode())

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
        self._stream_link = with_host(welcome["stream"], host_of(self.config.attach))
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
            gen.reset(prompt=f.get("prompt"), seed=f.get("seed"),
                      context_frames=start_frames(gen, f.get("prompt"), f.get("start_frames", False)))
        except ValueError as err:
            raise BridgeError("bad_type", f"cannot open {model!r} with {settings}: {err}") from None
        sid = secrets.token_hex(16)
        session = Session(sid, model, gen, f.get("prompt"), f.get("encoding", "raw"), f.get("quality", 85))
        self.sessions[sid] = session
        self._topics[session.topic.encode()] = sid
        log.info("session %s opened (%s, %d open)", sid[:8], model, len(self.sessions))  # ids stay out of logs
        return {"session": sid, "topic": session.topic, "model": model, "frames_per_chunk": gen.frames_per_chunk,
                "height": gen.height, "width": gen.width, "fps": float(gen.fps),
                "action_space": P.describe_space(gen.action_spec), "encoding": session.encoding,
                "vocabulary_size": len(gen.known_words), **prompt_fields(gen)}, []

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
        if context_frames is not None and f.get("start_frames"):
            raise BridgeError("bad_type", "reset takes context_frames or start_frames, not both")
        session.prompt = f.get("prompt", session.prompt)  # reset keeps the current prompt unless given
        if context_frames is None:
            context_frames = start_frames(session.gen, session.prompt, f.get("start_frames", False))
        session.gen.reset(prompt=session.prompt, seed=f.get("seed"), context_frames=context_frames)
        session.episode += 1
        session.last_index = -1
        return {"next_index": next_index(session), "episode": session.episode, **prompt_fields(session.gen)}, []

    def _op_step(self, session: Session, request: P.Request, action):
        """Reached only while streaming: a step that can run is made by _make_chunks."""
        raise BridgeError("bad_state", "session is streaming: send act, or stream with on=false first")

    def _step_reply(self, session: Session, chunk, batch: int):
        self._counts["chunks"] += 1
        return chunk_fields(chunk, batch, session.episode, session.encoding, session.quality)

    def _op_set_prompt(self, session: Session, request: P.Request, payload):
        session.gen.set_prompt(request.fields["prompt"], recache=request.fields.get("recache", False))
        session.prompt = request.fields["prompt"]
        return prompt_fields(session.gen), []

    def _op_stats(self, session: Session, request: P.Request, payload):
        stats = {**session.gen.stats, "streaming": session.streaming, "pending": len(session.queue),
                 "model": session.model, "episode": session.episode,
                 "subscribers": self.subscribers(session.topic.encode())}
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
        return {"topic": session.topic, "pub": self.endpoints["pub"], "next_index": next_index(session),
                "episode": session.episode, "subscribers": self.subscribers(session.topic.encode())}, []

    def _op_act(self, session: Session, request: P.Request, action):
        session.action = action
        return {"index": session.last_index, "episode": session.episode}, []

    def _publish_chunk(self, session: Session, chunk, batch: int) -> None:
        message = chunk_message(session.topic.encode(), chunk, batch, session.episode, session.encoding,
                                session.quality)
        session.last_index = int(chunk.index)
        self._counts["chunks"] += 1
        self._pub.send_multipart(message, copy=False)

    def _end_stream(self, session: Session, reason: str, message: str) -> None:
        """Stop a streaming session and tell its subscribers why, in a last message without frames."""
        if not session.streaming:
            return
        session.streaming = False
        self._pub.send_multipart(end_message(session.topic.encode(), session.last_index, session.episode, reason,
                                             message))


def next_index(session: Session) -> int:
    """The index of the session's next chunk (after a reset with context frames: the chunks they fill)."""
    return int(session.gen.rollout.chunk_index[0])


def prompt_fields(gen) -> dict:
    """What the model reads of a session's prompt: the text (cut to the text encoder's limit) and its words outside
    the model's vocabulary, which do not steer it (none when the model records no vocabulary)."""
    return {"prompt": gen.prompt, "unknown_words": gen.unknown_words(gen.prompt)}


def _raise(err: BaseException):
    raise err
