"""`streamvideo serve --web [HOST:]PORT`: play in a browser. One HTTP port serves the page (the files in
`bridge/static/`: no build step, nothing fetched from elsewhere) and a WebSocket per browser tab.

Behind each WebSocket is an ordinary bridge client connection (a DEALER and a SUB) to the endpoint this process
serves, a Server or a Front with its workers: every request of the page goes through the same request checks,
sessions, batching, limits and error codes as a ZeroMQ client's, because it is one. Nothing here runs a session;
it translates. What it adds is what a browser needs: the page's keys turned into the session's action by the key
map `streamvideo play` uses (`streamvideo.engine.keymap`), chunks re-packed as one binary WebSocket message each
(`chunk_message`) and sent only as fast as the page takes them (`send_chunk`), streams started from the model's
start frames as play starts them, and the session kept alive while the tab is open.

Safe by default (as Jupyter): on loopback the page and its WebSocket answer only requests whose Host is a
loopback name (a DNS-rebinding page cannot reach them) and WebSockets whose Origin is the page's own (another
site open in the same browser cannot); any other bind also needs a random access token, the first part of the
URL printed at start (`http://HOST:PORT/TOKEN/`), and refuses every path without it. A page message is at most
`message_limit(limits)` bytes: enough for the longest prompt the bridge takes; a larger one closes that
WebSocket (1009) and nothing else.

The page's messages, and the layout of a chunk message, are in docs/web.md.

Why the `websockets` library: it is the most used WebSocket implementation for Python's asyncio, maintained since
2013, pure Python with no dependencies, and it answers plain HTTP GETs from the same port through its
`process_request` hook, which is all a page of three static files needs; pyzmq's asyncio sockets share its loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import math
import secrets
import signal
import socket
import struct
import threading
from importlib import resources
from pathlib import Path

import zmq
import zmq.asyncio
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.keymap import KeyMap

from . import protocol as P
from .client import SUBSCRIBE_POLL_S
from .endpoint import Endpoint, common_options, serve_quietly
from .keys import load_curve
from .link import WILDCARD_HOSTS, with_host
from .protocol import BridgeError, Limits

log = logging.getLogger("streamvideo.bridge.web")

STATIC = {"": ("index.html", "text/html; charset=utf-8"), "index.html": ("index.html", "text/html; charset=utf-8"),
          "app.js": ("app.js", "text/javascript; charset=utf-8"), "style.css": ("style.css", "text/css; charset=utf-8")}
SOCKET_PATH = "ws"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",          # the token is in the URL: never hand it to another site
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' blob:; media-src blob:; "
                               "frame-ancestors 'none'",
}
OPEN_FIELDS = ("model", "prompt", "seed", "mode", "schedule", "encoding", "quality", "start_frames")  # to `open`
MAX_KEYS_HELD = 32          # key names in one `input` (the key map reads 23 keys)
MAX_KEY_NAME = 32           # characters of one key name
MAX_INPUT_SEQ = 2**32 - 1   # the page numbers its inputs; a chunk message carries the number in 32 bits
MAX_IN_FLIGHT = 64          # requests of one tab waiting for their replies; more are refused with `busy`
MAX_UNACKED = 2             # chunks sent to a tab that it has not acknowledged; newer ones wait, the newest wins
CONNECTIONS_PER_SESSION = 4  # WebSockets open at once, per `max_sessions` (a reloading tab holds two for a moment)
REPLY_TIMEOUT = 30.0        # seconds a request waits for the endpoint's reply
ENCODING_CODES = {"raw": 0, "jpeg": 1}
# A chunk message: this header, then the frames (raw: T*H*W*3 bytes RGB; jpeg: T uint32 sizes, then the images).
CHUNK_HEADER = struct.Struct("<IIfHHHHB")   # index, input, seconds, nfe, count, height, width, encoding


# ------------------------------------------------------------------------------------ addresses and access

def web_address(text: str) -> tuple[str, int]:
    """`--web [HOST:]PORT` -> (host, port); the host is loopback when left out."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (sep and not host):
        raise ValueError(f"--web expects [HOST:]PORT, e.g. 8000 or 0.0.0.0:8000, got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Is `host` (a name or address, IPv6 with or without brackets) this machine's loopback: localhost,
    127.0.0.0/8 or ::1. Strict, so that a name such as 127.0.0.1.example.com is not."""
    name = host.strip("[]")
    try:
        return name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a Host header, without its port: localhost:8000 -> localhost, [::1]:8000 -> ::1."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0]


def access_token(host: str) -> str | None:
    """A random token a bind to `host` requires in every URL: none on loopback, 128 bits anywhere else."""
    return None if is_loopback(host) else secrets.token_hex(16)


def message_limit(limits: Limits) -> int:
    """The largest message a page may send: the longest prompt the bridge takes, every character JSON-escaped
    (6 bytes), and room for the other fields."""
    return 6 * limits.max_prompt_chars + 4096


def page_url(host: str, port: int, token: str | None) -> str:
    """The page's URL as a browser opens it: a wildcard bind (0.0.0.0, ::) is named by this machine's name."""
    shown = socket.gethostname() if host in WILDCARD_HOSTS else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/{token + '/' if token else ''}"


# ------------------------------------------------------------------------------------ page messages

def parse_message(message) -> tuple[str, dict]:
    """A page message (a JSON object with an `op`) -> (op, fields). Raises BridgeError(bad_message)."""
    if not isinstance(message, str):
        raise BridgeError("bad_message", "the page sends JSON text messages, got a binary one")
    try:
        fields = json.loads(message)
    except (ValueError, RecursionError) as err:
        raise BridgeError("bad_message", f"message is not JSON: {err}") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("op"), str):
        raise BridgeError("bad_message", f"expected a JSON object with a string 'op', got {message[:60]!r}")
    return fields.pop("op"), fields


def parse_input(fields: dict) -> tuple[int, list[str], tuple[float, float] | None]:
    """An `input` message's (seq, keys held oldest first, pointer). Raises BridgeError(bad_type)."""
    seq, keys, pointer = fields.get("seq"), fields.get("keys"), fields.get("pointer")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_INPUT_SEQ:
        raise BridgeError("bad_type", f"input.seq must be an integer in [0, {MAX_INPUT_SEQ}], got {seq!r}")
    if (not isinstance(keys, list) or len(keys) > MAX_KEYS_HELD
            or not all(isinstance(k, str) and len(k) <= MAX_KEY_NAME for k in keys)):
        raise BridgeError("bad_type", f"input.keys must be a list of at most {MAX_KEYS_HELD} key names "
                                      f"(KeyboardEvent.code), got {str(keys)[:60]}")
    if pointer is not None:
        if (not isinstance(pointer, list) or len(pointer) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           and -1 <= v <= 1 for v in pointer)):
            raise BridgeError("bad_type", f"input.pointer must be null or [x, y] in [-1, 1], got {str(pointer)[:60]}")
        pointer = (float(pointer[0]), float(pointer[1]))
    return seq, keys, pointer


def chunk_message(header: dict, buffers: list, input_seq: int) -> bytes:
    """A published chunk (its stream header and buffers) as one binary WebSocket message: CHUNK_HEADER, then the
    frames as the bridge encoded them. `input_seq`: the page's last input this chunk was made with."""
    frames = header["frames"]
    count, height, width = frames["shape"][:3]
    first = frames["buffer"] - 1
    head = CHUNK_HEADER.pack(header["index"], input_seq, header["seconds"], header["nfe"], count, height, width,
                             ENCODING_CODES[frames["encoding"]])
    if frames["encoding"] == "raw":
        return head + bytes(buffers[first])
    images = [bytes(b) for b in buffers[first:first + count]]
    return b"".join([head, struct.pack(f"<{count}I", *map(len, images)), *images])


# ------------------------------------------------------------------------------------ the bridge connection

class BridgeConnection:
    """A bridge client connection (PROTOCOL.md section 1): a DEALER whose requests are matched to replies by id,
    and a SUB for the stream of the topic it subscribes to."""

    def __init__(self, front: WebFront):
        self.limits = front.limits
        self.sock = self._socket(front, zmq.DEALER)
        self.sub = self._socket(front, zmq.SUB)
        self.sock.connect(front.control)
        self.sub.connect(front.pub)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}

    @staticmethod
    def _socket(front: WebFront, kind: int) -> zmq.asyncio.Socket:
        sock = front.context.socket(kind)
        common_options(sock, front.heartbeat_ms)
        if kind == zmq.SUB:
            sock.rcvhwm = 2   # latest-frame viewing (PROTOCOL.md section 1.3)
        if front.curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = front.curve
        return sock

    async def send(self, op: str, **fields) -> asyncio.Future:
        """Send a request; returns the future of its reply header (BridgeError when the reply is an error)."""
        if len(self._waiting) >= MAX_IN_FLIGHT:
            raise BridgeError("busy", f"{len(self._waiting)} requests wait for replies (at most {MAX_IN_FLIGHT})")
        rid = next(self._ids)
        reply = self._waiting[rid] = asyncio.get_running_loop().create_future()
        await self.sock.send_multipart(P.pack({"id": rid, "op": op, **fields}))
        return reply

    async def request(self, op: str, **fields) -> dict:
        reply = await self.send(op, **fields)
        return await wait_reply(reply, op)

    async def read_replies(self) -> None:
        while True:
            header, _ = P.unpack(await self.sock.recv_multipart(), self.limits)
            reply = self._waiting.pop(header.get("id"), None)
            if reply is None or reply.done():
                continue
            if header.get("ok"):
                reply.set_result(header)
            else:
                reply.set_exception(BridgeError(header["error"]["code"], header["error"]["message"]))

    async def watch(self, session: str, topic: bytes) -> None:
        """Subscribe to a newly opened session's stream before it starts, and wait until the server counts the
        subscription (the slow joiner of PROTOCOL.md section 4, `stream`, as `Client`'s `Session.stream` does),
        so the page gets the stream's first chunk."""
        self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        deadline = asyncio.get_running_loop().time() + REPLY_TIMEOUT
        while (await self.request("stats", session=session))["stats"]["subscribers"] < 1:
            if asyncio.get_running_loop().time() > deadline:
                raise BridgeError("timeout", f"the stream socket did not see this page's subscription within "
                                             f"{REPLY_TIMEOUT:g} s")
            await asyncio.sleep(SUBSCRIBE_POLL_S)

    def close(self) -> None:
        for reply in self._waiting.values():
            reply.cancel()
        for sock in (self.sock, self.sub):
            sock.close(linger=0)


async def wait_reply(reply: asyncio.Future, op: str) -> dict:
    try:
        return await asyncio.wait_for(reply, REPLY_TIMEOUT)
    except asyncio.TimeoutError:
        raise BridgeError("timeout", f"no reply to {op!r} within {REPLY_TIMEOUT:g} s") from None


# ------------------------------------------------------------------------------------ one browser tab

class Player:
    """One browser tab: its bridge connection, the session it plays, its key map, and what the page shows."""

    def __init__(self, front: WebFront, websocket: ServerConnection):
        self.front, self.websocket = front, websocket
        self.bridge = BridgeConnection(front)   # connected now: its SUB is connected long before a stream starts
        self.session: dict | None = None      # the open reply
        self.topic: bytes | None = None       # its stream topic
        self.keymap: KeyMap | None = None
        self.paused = False
        self.start_frames = True              # streams start from the model's start frames (open, reset)
        # acts answered: ((episode, chunk index) from which the action applies, input seq)
        self.applied: list[tuple[tuple[int, int], int]] = []
        self.input_seq = 0                    # the page's last input the chunks now made carry
        self.episode = 0                      # the session's resets answered so far: chunks of earlier episodes
                                              # were made before the last reset and are skipped
        self.prompt: str | None = None        # the prompt of the last chunk sent
        self.waiting_chunk: bytes | None = None   # the newest chunk message not sent yet (the page is behind)
        self.unacked = 0                      # chunks sent that the page has not acknowledged
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        self.spawn(self.bridge.read_replies())
        self.spawn(self.forward_stream())
        try:
            hello = await self.bridge.request("hello", version=P.PROTOCOL_VERSION, client="streamvideo web page")
            await self.tell(type="hello", models=hello["models"], server=hello["server"],
                            max_prompt_chars=hello["limits"]["max_prompt_chars"])
            self.spawn(self.keep_alive())
            async for message in self.websocket:
                try:
                    op, fields = parse_message(message)
                    await self.handle(op, fields)
                except BridgeError as err:
                    await self.tell_error(err)
        except BridgeError as err:   # no answer to hello: the endpoint is gone, nothing to play
            await self.tell_error(err)
        except ConnectionClosed:
            pass
        finally:
            await self.leave()

    async def handle(self, op: str, fields: dict) -> None:
        if op == "open":   # from the model's start frames unless the page says not, as play starts
            await self.open({"start_frames": True, **{k: fields[k] for k in OPEN_FIELDS if k in fields}})
            return
        if op == "ack":   # the page has a chunk: room for the next
            self.unacked = max(0, self.unacked - 1)
            await self.send_chunk()
            return
        if op not in ("input", "prompt", "reset", "pause"):
            raise BridgeError("unknown_op", f"unknown op {op!r}; expected open, input, prompt, reset, pause or ack")
        if self.session is None:
            raise BridgeError("bad_state", f"{op!r} before a session is open: send open first")
        sid = self.session["session"]
        if op == "input":
            seq, keys, pointer = parse_input(fields)
            reply = await self.bridge.send("act", session=sid, action=self.keymap.action(keys, pointer))
            self.spawn(self.after_act(reply, seq))
        elif op == "prompt":
            self.spawn(self.answered(await self.bridge.send("set_prompt", session=sid, prompt=fields.get("prompt")),
                                     "prompt"))
        elif op == "reset":
            self.spawn(self.after_reset(await self.bridge.send("reset", session=sid,
                                                               start_frames=self.start_frames)))
        else:
            if not isinstance(fields.get("on"), bool):
                raise BridgeError("bad_type", f"pause.on must be true or false, got {fields.get('on')!r}")
            self.paused = fields["on"]
            self.spawn(self.answered(await self.bridge.send("stream", session=sid, on=not self.paused), "pause"))

    async def open(self, options: dict) -> None:
        """Open a session (closing the tab's earlier one), subscribe to its stream, start it in real time."""
        await self.close_session()
        info = await self.bridge.request("open", **options)
        self.start_frames = options["start_frames"]   # a reset starts the same way
        self.session, self.paused, self.applied, self.input_seq, self.prompt = info, False, [], 0, None
        self.episode = 0   # a new session has not been reset
        self.waiting_chunk, self.unacked = None, 0
        self.keymap = KeyMap(ActionSpec.from_dict(info["action_space"]))
        self.topic = info["topic"].encode()
        await self.bridge.watch(info["session"], self.topic)
        await self.tell(type="session", **{k: info[k] for k in ("model", "frames_per_chunk", "height", "width", "fps",
                                                               "encoding", "action_space")},
                        keys=sorted(self.keymap.keys), help=self.keymap.help_lines())   # before its first chunk
        await self.bridge.request("stream", session=info["session"], on=True)

    async def forward_stream(self) -> None:
        """Each chunk of the session's stream to the page as one binary message, as long as the page keeps up;
        when it does not, only the newest chunk waits for it (send_chunk)."""
        while True:
            frames = await self.bridge.sub.recv_multipart()
            if frames[0] != self.topic:
                continue   # the stream of a session this tab has left
            header, buffers = P.unpack(frames[1:], self.front.limits)
            if "end" in header:
                if header["end"]["reason"] != "stopped" or not self.paused:
                    await self.tell(type="ended", **header["end"])
                continue
            chunk = (header["episode"], header["index"])
            if chunk[0] < self.episode:
                continue   # made before the reset
            while self.applied and self.applied[0][0] <= chunk:   # an act answered in an earlier episode applies too
                self.input_seq = max(self.input_seq, self.applied.pop(0)[1])
            if header["prompt"] != self.prompt:
                self.prompt = header["prompt"]
                await self.tell(type="prompt", prompt=self.prompt)
            self.waiting_chunk = chunk_message(header, buffers, self.input_seq)   # replaces one not sent yet
            await self.send_chunk()

    async def send_chunk(self) -> None:
        """Send the waiting chunk while fewer than MAX_UNACKED chunks are unacknowledged. Chunks a slow page (a
        busy browser, a slow network) has not taken would otherwise queue up in the socket buffers, seconds of
        them, between a key press and its frame."""
        if self.waiting_chunk is not None and self.unacked < MAX_UNACKED:
            message, self.waiting_chunk = self.waiting_chunk, None
            self.unacked += 1
            await self.websocket.send(message)

    async def after_act(self, reply: asyncio.Future, seq: int) -> None:
        """The act's reply names the last chunk published: the action applies from the next one."""
        try:
            answer = await wait_reply(reply, "act")
            self.applied.append(((answer["episode"], answer["index"] + 1), seq))
        except BridgeError as err:
            await self.tell_error(err)

    async def after_reset(self, reply: asyncio.Future) -> None:
        try:
            answer = await wait_reply(reply, "reset")
        except BridgeError as err:
            await self.tell_error(err)
            return
        self.episode = answer["episode"]
        await self.tell(type="reset", next_index=answer["next_index"])

    async def answered(self, reply: asyncio.Future, op: str) -> None:
        try:
            await wait_reply(reply, op)
        except BridgeError as err:
            await self.tell_error(err)

    async def keep_alive(self) -> None:
        """Ping the session while the tab is open, so it is not reclaimed as idle while the player only watches
        (or is paused)."""
        while True:
            await asyncio.sleep(self.front.heartbeat_ms / 1000)
            if self.session is not None:
                self.spawn(self.answered(await self.bridge.send("ping", sessions=[self.session["session"]]), "ping"))

    async def close_session(self) -> None:
        if self.topic is not None:
            self.bridge.sub.setsockopt(zmq.UNSUBSCRIBE, self.topic)
            self.topic = None
        if self.session is not None:
            session, self.session = self.session, None
            try:
                await self.bridge.request("close", session=session["session"])
            except BridgeError as err:   # already gone (idle, worker lost): nothing left to free
                log.info("closing a page's session: %s", err)

    async def leave(self) -> None:
        """The tab is gone: free its session and sockets."""
        try:
            await asyncio.wait_for(self.close_session(), REPLY_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        for task in self.tasks:
            task.cancel()
        self.bridge.close()

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and not isinstance(task.exception(), (ConnectionClosed, type(None))):
            log.error("a page's task failed", exc_info=task.exception())

    async def tell(self, **message) -> None:
        await self.websocket.send(json.dumps(message))

    async def tell_error(self, err: BridgeError) -> None:
        try:
            await self.tell(type="error", code=err.code, message=err.message)
        except ConnectionClosed:
            pass


# ------------------------------------------------------------------------------------ the HTTP + WebSocket port

class WebFront:
    """The page and its WebSockets on `host:port`, for the bridge endpoint `endpoint` (already started).

        front = WebFront(server, "127.0.0.1", 0).start()   # background thread; front.url is the page
        ...
        front.stop()
    """

    def __init__(self, endpoint: Endpoint, host: str, port: int, token: str | None = None):
        self.host, self.port, self.token = host, port, token
        self.limits, self.heartbeat_ms = endpoint.limits, endpoint.config.heartbeat_ms
        self.control = with_host(endpoint.endpoints["control"], "127.0.0.1")
        self.pub = with_host(endpoint.endpoints["pub"], "127.0.0.1")
        keys = endpoint.config.curve_keys   # a CURVE server accepts its own key pair besides its clients'
        self.curve = load_curve(Path(keys) / "server.key", Path(keys) / "server.key_secret") if keys else None
        self.prefix = f"/{token}/" if token else "/"
        static = resources.files("streamvideo.bridge").joinpath("static")
        self.files = {name: (static.joinpath(file).read_bytes(), kind) for name, (file, kind) in STATIC.items()}
        self.players: set[Player] = set()
        self.context: zmq.asyncio.Context | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None   # what kept it from starting, for start() to raise
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return page_url(self.host, self.port, self.token)

    def start(self, timeout: float = 30.0) -> WebFront:
        """Serve on a background thread; returns once it serves (raises if binding failed)."""
        self._thread = threading.Thread(target=serve_quietly, args=(self,), name="streamvideo-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the web front did not start within {timeout} s")
        if self._failure is not None:
            raise self._failure
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop()."""
        try:
            asyncio.run(self._serve())
        except BaseException as err:
            if not self._ready.is_set():
                self._failure = err  # a failure to start: start() raises it
            raise
        finally:
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _serve(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        self.context = zmq.asyncio.Context()
        try:
            async with serve(self._play, self.host, self.port, process_request=self._http,
                             max_size=message_limit(self.limits), server_header=None) as server:
                self.port = server.sockets[0].getsockname()[1]
                log.info("play in a browser: %s", self.url)
                self._ready.set()
                await self._stopped.wait()
        finally:
            self.context.term()

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Every HTTP request: the access checks, then a static file, or None to go on with a WebSocket."""
        path = request.path.partition("?")[0]
        refusal = self._refusal(request, path)
        if refusal is not None:
            log.info("refused a request: %s", refusal)
            return connection.respond(403, refusal + "\n")
        name = path[len(self.prefix):]
        if name == SOCKET_PATH:
            if len(self.players) >= CONNECTIONS_PER_SESSION * self.limits.max_sessions:
                return connection.respond(503, f"{len(self.players)} pages are connected: close one first\n")
            return None
        if name not in self.files:
            return connection.respond(404, f"no {name!r} here: the page is at {self.prefix}\n")
        body, content_type = self.files[name]
        headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)), **SECURITY_HEADERS})
        return Response(200, "OK", headers, body)

    def _refusal(self, request: Request, path: str) -> str | None:
        """Why a request may not see the page or open a WebSocket (None: it may)."""
        host = request.headers.get("Host", "")
        if self.token is None and not is_loopback(host_name(host)):
            return f"Host {host!r} is not a loopback name: open the page at {self.url}"
        if self.token is not None:
            given, slash, _ = path[1:].partition("/")
            if not (slash and secrets.compare_digest(given.encode(), self.token.encode())):
                return "missing or wrong access token: open the URL that streamvideo serve printed, token included"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return f"Origin {origin!r} is not this page's own: a WebSocket opens only from the page itself"
        return None

    async def _play(self, websocket: ServerConnection) -> None:
        player = Player(self, websocket)
        self.players.add(player)
        try:
            await player.run()
        finally:
            self.players.discard(player)


def serve_web(endpoint: Endpoint, address: str) -> int:
    """`streamvideo serve --web [HOST:]PORT`: the endpoint and the page, each on a thread of its own, until Ctrl-C
    or SIGTERM; prints the page's URL (with its token off loopback)."""
    host, port = web_address(address)
    endpoint.start()
    try:
        front = WebFront(endpoint, host, port, access_token(host)).start()
        print(f"streamvideo serve: play in a browser at {front.url}", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            stopped.wait()
        finally:
            front.stop()
    finally:
        endpoint.stop()
    return 0
