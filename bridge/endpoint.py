"""What clients connect to (PROTOCOL.md section 1), shared by the bridge's two kinds of endpoint: a Server
(server.py), which runs the sessions, and a Front (front.py), which hands them to worker processes.

An endpoint is one thread that owns its sockets: the client-facing ROUTER (control) and XPUB (streams), and
whatever else its kind needs. It decodes and checks every request, keeps the handshake, answers `hello`,
`ping` and server `stats`, and applies the exact-topic subscription rule; the rest goes to its kind's
`_route`. The socket helpers every bridge socket uses, and the rule that plaintext stays on loopback, are here
too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import metadata

import zmq

from streamvideo.engine.speedups import DEFAULT_SPEEDUPS

from . import protocol as P
from .keys import curve_server, start_authenticator
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
    attach: str | None = None                 # serve as a worker of the front whose worker endpoint this is
    front_key: str | None = None              # worker: the front's public key file (server.key), for CURVE
    worker_key: str | None = None             # worker: its own secret key file (NAME.key_secret), for CURVE
    front_pid: int | None = None              # worker started by a local front: stop when that process is gone
    speedups: tuple[str, ...] = DEFAULT_SPEEDUPS  # the models' inference speed-ups (streamvideo.engine.speedups)


def serve_quietly(server) -> None:
    """The thread of a background server's start() (an Endpoint or the web front): a failure to start is start()'s
    to raise, so the command line prints it as one line; a failure after the server started is logged, with its
    traceback."""
    try:
        server.serve_forever()
    except BaseException as err:
        if err is not server._failure:
            log.exception("%s stopped", type(server).__name__)


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
        self._failure: BaseException | None = None   # what kept it from starting, for start() to raise
        self._sockets: list[zmq.Socket] = []   # every socket this thread opened, closed when it ends
        self._topics: dict[bytes, str] = {}    # stream topic -> session id, of open sessions (the only ones applied)
        self._subscribers: dict[bytes, int] = {}  # topic -> subscriptions applied and not withdrawn
        self._handlers = {"hello": self._op_hello, "stats": self._op_server_stats, "ping": self._op_ping}

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0):
        """Serve on a background thread; returns once it serves (raises if binding or starting failed)."""
        self._thread = threading.Thread(target=serve_quietly, args=(self,), name=f"streamvideo-{type(self).__name__}",
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
            auth = start_authenticator(context, self.config.curve_keys) if self.config.curve_keys else None
            sockets = self._open(context)
            self._ready.set()
            self._loop(*sockets)
        except BaseException as err:
            if not self._ready.is_set():
                self._failure = err  # a failure to start: start() raises it
            raise
        finally:
            self._ready.set()
            self._shutdown()
            for sock in self._sockets:
                sock.close(linger=0)
            if auth is not None:
                auth.stop()
            context.term()

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
        common_options(sock, self.config.heartbeat_ms)
        return sock

    def _bind(self, sock: zmq.Socket, endpoint: str) -> str:
        """Bind (CURVE server when keys are given: every socket an endpoint binds); returns the bound address."""
        if self.config.curve_keys:
            curve_server(sock, self.config.curve_keys)
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
        a subscription to any other prefix (the empty one included) is never applied, so it receives nothing.
        Counts them per topic: `stats` and `stream` report it, so a client knows its subscription arrived."""
        for (message,) in waiting(self._pub, copy=True):
            topic = message[1:]
            if message[:1] in (b"\x00", b"\x01") and topic in self._topics:
                subscribe = message[:1] == b"\x01"
                self._pub.setsockopt(zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE, topic)  # for its sender
                self._subscribers[topic] = max(0, self._subscribers.get(topic, 0) + (1 if subscribe else -1))

    def subscribers(self, topic: bytes) -> int:
        """Subscriber sockets the stream socket has let in on `topic` (a socket that closes withdraws)."""
        return self._subscribers.get(topic, 0)

    def _drop_topic(self, topic: bytes) -> None:
        """The session is gone: its topic is subscribable no more."""
        self._topics.pop(topic, None)
        self._subscribers.pop(topic, None)

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


def common_options(sock: zmq.Socket, heartbeat_ms: int) -> None:
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
