"""One client-facing endpoint in front of N worker processes: `streamvideo serve --workers N` (local workers, one
device or a share of the CPU threads each) and `streamvideo serve --attach ENDPOINT` (a worker on another machine).

Clients see the protocol of a single server (PROTOCOL.md): the front binds the same ROUTER and XPUB, checks and
answers `hello`, `ping` and server `stats` itself (and counts the subscribers a session's `stats` and `stream`
replies report), and hands every other request to a worker: `open` to the live worker with the fewest sessions, a
session's requests to the worker holding it. A worker is the ordinary `Server` in worker mode (server.py). The link
is the zguide's Paranoid Pirate (link.py):

    clients   --ROUTER-->  front  --ROUTER (worker_bind)-->  worker DEALER   [worker, client, header, buffers...]
    watchers  <--XPUB---   front  <--SUB (worker_pub)-----   worker PUB      [topic, header, buffers...]

so a worker receives [client, header, buffers] exactly as its own ROUTER would give them, and its replies
[client, ...] come back as [worker, client, ...]. Link messages start with an empty frame (READY, WELCOME,
HEARTBEAT, DISCONNECT). Both sides beat every heartbeat_ms; a side silent for LIVENESS beats is dead.

A lost worker fails only its own sessions: its requests in flight are answered `worker_lost`, its streams end
with reason `worker_lost`, and requests naming its sessions are answered `worker_lost` for an idle timeout,
`unknown_session` after. The front starts a dead local worker again; a remote worker attaches again by itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import zmq

from streamvideo.engine.threads import default_threads

from . import protocol as P
from .endpoint import MAX_POLL_MS, SWEEP_SECONDS, Endpoint, ServerConfig, check_exposure, waiting
from .link import DISCONNECT, HEARTBEAT, LINK_STREAM_HWM, LIVENESS, READY, WELCOME, with_host
from .protocol import BridgeError
from .streams import end_message

log = logging.getLogger("streamvideo.bridge.front")

FRONT_IDENTITY = b"\x00front"   # the client identity of the front's own requests (pings): no ROUTER peer has it
RESTART_SECONDS = 1.0           # a local worker is started again at most this often


@dataclass
class FrontConfig:
    server: ServerConfig                  # the client side (bind, pub, models, CURVE, limits, heartbeat); local
                                          # workers get the same models, limits, max_batch and heartbeat
    workers: int = 0                      # local worker processes, started again when one dies
    devices: tuple[str, ...] = ()         # torch device of each local worker (empty: server.device for all)
    threads: int | None = None            # torch threads of each local worker (None: theirs by default)
    worker_bind: str = "tcp://127.0.0.1:*"
    worker_pub: str | None = None         # None: worker_bind's host, a free port
    start_timeout: float = 300.0          # seconds local workers may take to load their models and attach


def front_config(server: ServerConfig, workers: int | None, devices: tuple[str, ...] | None, threads: int | None,
                 worker_bind: str | None, worker_pub: str | None) -> FrontConfig:
    """The command line's front settings (None: not given). Raises ValueError when they disagree."""
    devices = tuple(devices or ())
    if devices and workers and workers != len(devices):
        raise ValueError(f"--workers {workers} but --devices names {len(devices)}: give one device per worker")
    count = len(devices) or workers or 0
    if threads is None and count:
        threads = max(1, default_threads() // count)  # the cores are shared among the workers
    return FrontConfig(server, count, devices, threads, worker_bind or FrontConfig.worker_bind, worker_pub)


@dataclass(eq=False)
class Worker:
    """An attached worker, as the front sees it."""

    identity: bytes          # its link identity on the front's backend ROUTER
    models: tuple[str, ...]
    capacity: int            # its max_sessions
    pid: int
    name: str                # pid@host, for messages and logs
    heard: float             # when it last sent anything (monotonic)
    sessions: set[str] = field(default_factory=set)
    in_flight: dict[tuple, P.Request] = field(default_factory=dict)  # (client, request id) -> request

    def load(self) -> int:
        """Sessions it holds or is opening."""
        return len(self.sessions) + sum(request.op == "open" for request in self.in_flight.values())


@dataclass(eq=False)
class PlacedSession:
    """Where a session lives, and what the front needs to know of it."""

    worker: Worker
    topic: bytes
    last_seen: float         # the last request naming it (the worker's idle timer runs alike)
    streaming: bool = False
    last_index: int = -1     # the last chunk published
    episode: int = 0         # the worker's count of the session's resets


class Front(Endpoint):
    """The front: `Front(FrontConfig(ServerConfig(...), workers=2, threads=1)).start()`; endpoints as a Server's,
    plus `workers` and `worker_streams` (where workers attach and publish)."""

    def __init__(self, config: FrontConfig):
        super().__init__(config.server)
        self.front_config = config
        self.workers: dict[bytes, Worker] = {}          # live workers by link identity
        self.sessions: dict[str, PlacedSession] = {}
        self._lost: dict[str, tuple[float, str]] = {}   # session of a lost worker -> (until when, why)
        self._local = LocalWorkers() if config.workers else None
        self._worker_pub = config.worker_pub or _any_port(config.worker_bind)
        self._next_beat = 0.0

    # ------------------------------------------------------------------ lifecycle

    def _prepare(self) -> None:
        config = self.config
        check_exposure(config, [config.bind, config.pub, self.front_config.worker_bind, self._worker_pub])

    def _open(self, context: zmq.Context) -> tuple:
        router, pub = self._bind_clients(context)
        backend, streams = self._socket(context, zmq.ROUTER), self._socket(context, zmq.SUB)
        backend.router_mandatory = 1  # a send to a worker whose connection closed fails instead of vanishing
        backend.sndhwm = backend.rcvhwm = 1000
        streams.rcvhwm = LINK_STREAM_HWM
        streams.setsockopt(zmq.SUBSCRIBE, b"")  # a trusted link: everything; the XPUB applies the topic rule
        self.endpoints["workers"] = self._bind(backend, self.front_config.worker_bind)
        self.endpoints["worker_streams"] = self._bind(streams, self._worker_pub)
        self._backend, self._streams = backend, streams
        if self._local is not None:
            self._local.start(self._worker_commands())
            self._await_workers(self.front_config.workers)
        log.info("serving %s on %s, streams on %s (workers attach at %s; %d attached)%s", list(self.config.models),
                 self.endpoints["control"], self.endpoints["pub"], self.endpoints["workers"], len(self.workers),
                 " (CURVE)" if self.config.curve_keys else "")
        return router, pub, backend, streams

    def _worker_commands(self) -> list[list[str]]:
        """`streamvideo serve --attach` for each local worker, with this front's settings."""
        config, front = self.config, self.front_config
        command = [sys.executable, "-m", "streamvideo.apps.cli", "serve", "--front-pid", str(os.getpid()),
                   "--attach", with_host(self.endpoints["workers"], "127.0.0.1"),
                   "--max-sessions", str(config.limits.max_sessions), "--max-batch", str(config.max_batch),
                   "--idle-timeout", str(config.limits.idle_timeout_ms / 1000),
                   "--heartbeat", str(config.heartbeat_ms / 1000)]
        command += [arg for model in config.models for arg in ("--model", model)]
        command += ["--speedups", ",".join(config.speedups) or "none"]
        if front.threads:
            command += ["--threads", str(front.threads)]
        if config.curve_keys:  # the link is CURVE too; a local worker may use the front's own key pair
            key = str(Path(config.curve_keys) / "server.key_secret")
            command += ["--front-key", key, "--worker-key", key]
        return [[*command, "--device", device] for device in front.devices or (config.device,) * front.workers]

    def _await_workers(self, count: int) -> None:
        """Serve nobody before the local workers attached (they load their models first); one that exits first is
        a start-up error (its own message is on stderr, above)."""
        deadline = time.monotonic() + self.front_config.start_timeout
        while len(self.workers) < count and not self._stop.is_set():
            if exited := self._local.exited():
                raise ValueError(f"local worker {exited[0][0]} exited with code {exited[0][1]} before attaching")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count - len(self.workers)} local workers did not attach within "
                                   f"{self.front_config.start_timeout:g} s")
            if self._backend.poll(MAX_POLL_MS):
                self._read_backend()
            self._tick(time.monotonic())

    def _shutdown(self) -> None:
        if self._local is not None:
            self._local.stop()

    # ------------------------------------------------------------------ main loop

    def _loop(self, router: zmq.Socket, pub: zmq.Socket, backend: zmq.Socket, streams: zmq.Socket) -> None:
        poller = zmq.Poller()
        for sock in (router, pub, backend, streams):
            poller.register(sock, zmq.POLLIN)
        tick = min(SWEEP_SECONDS, self.config.heartbeat_ms / 2000)
        next_tick = 0.0
        while not self._stop.is_set():
            events = dict(poller.poll(MAX_POLL_MS))
            if backend in events:
                self._read_backend()
            if streams in events:
                self._relay_streams()
            if pub in events:
                self._read_subscriptions()
            if router in events:
                self._read_control()
            now = time.monotonic()
            if now >= next_tick:
                self._tick(now)
                if self._local is not None:
                    self._local.restart_exited()
                next_tick = now + tick

    def _tick(self, now: float) -> None:
        """Heartbeats out, silent workers lost, idle sessions forgotten."""
        heartbeat = self.config.heartbeat_ms / 1000
        for worker in [w for w in self.workers.values() if now - w.heard > LIVENESS * heartbeat]:
            self._lose(worker, f"no heartbeat for {now - worker.heard:.1f} s")
        if now >= self._next_beat:
            for worker in list(self.workers.values()):
                with suppress(BridgeError):
                    self._to_worker(worker, [b"", HEARTBEAT])
            self._next_beat = now + heartbeat
        timeout = self.limits.idle_timeout_ms / 1000
        for sid in [sid for sid, s in self.sessions.items() if now - s.last_seen > timeout]:
            self._forget(sid)  # its worker reclaims it too (and ends its stream)
        self._lost = {sid: lost for sid, lost in self._lost.items() if lost[0] > now}

    # ------------------------------------------------------------------ workers

    def _read_backend(self) -> None:
        for frames in waiting(self._backend):
            identity, client = frames[0].bytes, frames[1].bytes
            worker = self.workers.get(identity)
            if not client and frames[2].bytes == READY:
                self._welcome(identity, msgpack.unpackb(frames[3].bytes))
            elif worker is None:  # lost already: it must attach again, without its old sessions
                with suppress(zmq.ZMQError):
                    self._backend.send_multipart([identity, b"", DISCONNECT], zmq.NOBLOCK)
            else:
                worker.heard = time.monotonic()
                if client:
                    self._relay_reply(worker, client, frames[2:])

    def _welcome(self, identity: bytes, ready: dict) -> None:
        if identity in self.workers:
            self._lose(self.workers[identity], "it attached again")
        worker = Worker(identity, tuple(ready["models"]), ready["max_sessions"], ready["pid"],
                        f"{ready['pid']}@{ready['host']}", time.monotonic())
        self.workers[identity] = worker
        welcome = {"stream": self.endpoints["worker_streams"], "pub": self.endpoints["pub"],
                   "heartbeat_ms": self.config.heartbeat_ms}
        with suppress(BridgeError):
            self._to_worker(worker, [b"", WELCOME, msgpack.packb(welcome)])
        log.info("worker %s attached (%s on %s); %d live", worker.name, list(worker.models), ready["device"],
                 len(self.workers))

    def _to_worker(self, worker: Worker, frames: list) -> None:
        """Send to a worker. Raises BridgeError: busy (its queue is full) or worker_lost (its connection closed)."""
        try:
            self._backend.send_multipart([worker.identity, *frames], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise BridgeError("busy", f"worker {worker.name} has too many requests queued; retry") from None
        except zmq.ZMQError as err:  # EHOSTUNREACH (ROUTER_MANDATORY)
            raise self._lose(worker, f"its connection closed: {err}") from None

    def _lose(self, worker: Worker, why: str) -> BridgeError:
        """A worker is gone: its requests in flight are answered worker_lost, its streams end with that reason, its
        sessions answer worker_lost for an idle timeout (then unknown_session). Returns the error it answered."""
        del self.workers[worker.identity]
        lost = BridgeError("worker_lost", f"the worker holding this session ({worker.name}) was lost ({why}); "
                                          f"its sessions are gone: open a new one")
        for client, rid in worker.in_flight:
            self._send_error(client, rid, lost)
        until = time.monotonic() + self.limits.idle_timeout_ms / 1000
        for sid in list(worker.sessions):
            session = self._forget(sid)
            self._lost[sid] = (until, lost.message)
            if session.streaming:
                self._pub.send_multipart(end_message(session.topic, session.last_index, session.episode,
                                                     "worker_lost", lost.message))
        with suppress(zmq.ZMQError):  # if it lives on (stalled, cut off), it attaches again without them
            self._backend.send_multipart([worker.identity, b"", DISCONNECT], zmq.NOBLOCK)
        log.warning("worker %s lost (%s): %d sessions, %d requests in flight; %d live", worker.name, why,
                    len(worker.sessions), len(worker.in_flight), len(self.workers))
        return lost

    # ------------------------------------------------------------------ requests and replies

    def _route(self, identity: bytes, request: P.Request, frames: list) -> None:
        """`open` to the least-loaded live worker serving the model, a session's requests to the worker holding it."""
        if request.op == "open":
            model = self._model_to_open(request, sum(w.load() for w in self.workers.values()))
            worker = self._least_loaded(model)
            # the model named: a worker's default may differ from the front's
            frames = P.pack({"id": request.id, "op": "open", **request.fields, "model": model})
        else:
            session = self._placed(request.fields["session"])
            session.last_seen = time.monotonic()
            worker = session.worker
        self._to_worker(worker, [identity, *frames])
        worker.in_flight[(identity, request.id)] = request

    def _least_loaded(self, model: str) -> Worker:
        candidates = [w for w in self.workers.values() if model in w.models and w.load() < w.capacity]
        if not candidates:
            raise BridgeError("server_full", f"no live worker has room for a {model!r} session "
                                             f"({len(self.workers)} attached)")
        return min(candidates, key=Worker.load)

    def _placed(self, sid: str) -> PlacedSession:
        if sid in self.sessions:
            return self.sessions[sid]
        if sid in self._lost:
            raise BridgeError("worker_lost", self._lost[sid][1])
        raise self._unknown_session(sid)

    def _relay_reply(self, worker: Worker, client: bytes, frames: list) -> None:
        header = msgpack.unpackb(frames[0].bytes)
        request = worker.in_flight.pop((client, header.get("id")), None)
        if request is None:  # nobody waits for it: the front's own ping
            return
        self._note_reply(worker, request, header)
        session = self.sessions.get(request.fields.get("session"))
        if header["ok"] and request.op in ("stats", "stream") and session is not None:
            # subscriptions reach the front's stream socket, never the worker's: the front counts them
            (header["stats"] if request.op == "stats" else header)["subscribers"] = self.subscribers(session.topic)
            frames = [*P.pack(header), *frames[1:]]
        self._send(client, frames)

    def _note_reply(self, worker: Worker, request: P.Request, header: dict) -> None:
        """Keep the session table in step with what the worker answered."""
        sid = request.fields.get("session")
        if not header["ok"]:
            self._counts["errors"] += 1
            if header["error"]["code"] == "unknown_session":
                self._forget(sid)  # the worker reclaimed it a moment before the front would have
        elif request.op == "open":
            self._place(header["session"], header["topic"].encode(), worker)
        elif request.op == "close":
            self._forget(sid)
        elif request.op == "step":
            self._counts["chunks"] += 1
        elif request.op == "stream" and sid in self.sessions:
            self.sessions[sid].streaming = request.fields.get("on", True)
        elif request.op == "reset" and sid in self.sessions:
            self._note_published(self.sessions[sid], header["episode"], -1)

    def _place(self, sid: str, topic: bytes, worker: Worker) -> None:
        self.sessions[sid] = PlacedSession(worker, topic, time.monotonic())
        self._topics[topic] = sid
        worker.sessions.add(sid)

    def _forget(self, sid: str) -> PlacedSession | None:
        session = self.sessions.pop(sid, None)
        if session is not None:
            self._drop_topic(session.topic)
            session.worker.sessions.discard(sid)
        return session

    def _relay_streams(self) -> None:
        """Republish the workers' stream messages; the XPUB sends each only to the subscribers it let in."""
        for frames in waiting(self._streams):
            self._note_stream(frames[0].bytes, msgpack.unpackb(frames[1].bytes))
            self._pub.send_multipart(frames, copy=False)

    def _note_stream(self, topic: bytes, header: dict) -> None:
        sid = self._topics.get(topic)
        if sid is None:
            return
        if "end" not in header:
            self._note_published(self.sessions[sid], header["episode"], header["index"])
            self._counts["chunks"] += 1
        elif header["end"]["reason"] in ("closed", "idle_timeout"):
            self._forget(sid)
        else:
            self.sessions[sid].streaming = False

    @staticmethod
    def _note_published(session: PlacedSession, episode: int, index: int) -> None:
        """The session's last published chunk (index -1: none yet in a new episode). The reply to a reset and the
        last chunks before it travel on different links: an earlier episode's news never overrides a later one."""
        if (episode, index) > (session.episode, session.last_index):
            session.episode, session.last_index = episode, index

    # ------------------------------------------------------------------ ops the front answers

    def _streaming_flags(self) -> list[bool]:
        return [s.streaming for s in self.sessions.values()]

    def _op_server_stats(self, identity: bytes, request: P.Request, buffers: list):
        fields, out = super()._op_server_stats(identity, request, buffers)
        fields["stats"]["workers"] = len(self.workers)
        return fields, out

    def _op_ping(self, identity: bytes, request: P.Request, buffers: list):
        """Refresh the sessions' idle timers here and on their workers (whose replies are dropped)."""
        now, unknown, by_worker = time.monotonic(), [], {}
        for sid in request.fields.get("sessions", []):
            if sid not in self.sessions:
                unknown.append(sid)
                continue
            self.sessions[sid].last_seen = now
            by_worker.setdefault(self.sessions[sid].worker, []).append(sid)
        for worker, sids in by_worker.items():
            with suppress(BridgeError):
                self._to_worker(worker, [FRONT_IDENTITY, *P.pack({"id": 0, "op": "ping", "sessions": sids})])
        return {"time": time.time(), "unknown": unknown}, []


class LocalWorkers:
    """The worker processes a front starts on its own machine; one that exits is started again (at most once per
    RESTART_SECONDS, so a worker that fails at start does not spin)."""

    def __init__(self):
        self._commands: list[list[str]] = []
        self._procs: list[subprocess.Popen] = []
        self._started: list[float] = []

    def start(self, commands: list[list[str]]) -> None:
        self._commands = commands
        self._procs = [_spawn(command) for command in commands]
        self._started = [time.monotonic()] * len(commands)

    def exited(self) -> list[tuple[int, int]]:
        """(index, exit code) of the workers that are not running."""
        return [(i, proc.returncode) for i, proc in enumerate(self._procs) if proc.poll() is not None]

    def restart_exited(self) -> None:
        for i, code in self.exited():
            if time.monotonic() - self._started[i] >= RESTART_SECONDS:
                log.warning("local worker %d (pid %d) exited with code %s: starting it again", i,
                            self._procs[i].pid, code)
                self._procs[i] = _spawn(self._commands[i])
                self._started[i] = time.monotonic()

    def stop(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _spawn(command: list[str]) -> subprocess.Popen:
    """A local worker, in a session of its own: a Ctrl-C at the terminal reaches the front alone, which stops its
    workers (and does not mistake them for crashed ones)."""
    return subprocess.Popen(command, start_new_session=True)


def _any_port(endpoint: str) -> str:
    """The default worker_pub: worker_bind's host, a free port."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        raise ValueError(f"give the workers' stream endpoint (--worker-pub) for a {scheme} --worker-bind")
    return f"tcp://{rest.rpartition(':')[0]}:*"
