"""`streamvideo serve --web`: the page in a real headless Chromium (it loads, connects, frames advance, keys and
the mouse reach the session as play's key map reads them, a typed prompt reaches the session, pause, reset and
a WebM recording work, a bad token is refused), and, over real sockets without a browser, the access rules, the
message size limit and the errors a bad message gets."""

import base64
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import numpy as np
import pytest
import torch
from chromium import Chromium, find_chromium
from servers import LOOPBACK, MODEL, start_server
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

import streamvideo
from streamvideo.bridge import BridgeError, Client, Server, ServerConfig, create_keys
from streamvideo.bridge.web import (
    CHUNK_HEADER,
    MAX_KEYS_HELD,
    MAX_UNACKED,
    WebFront,
    access_token,
    chunk_message,
    is_loopback,
    message_limit,
    web_address,
)
from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.keymap import KeyMap
from streamvideo.engine.model import CausalDiT
from streamvideo.engine.presets import GAME_ACTIONS, save_model_folder, seeded_random, tiny_random

TOKEN = "0123456789abcdef0123456789abcdef"
BOX = ActionSpec("continuous", dim=2, low=(-2.0, -1.0), high=(2.0, 1.0))
TEXT_SPEC = {"name": "hash", "dim": 32, "max_tokens": 16, "seed": 0}
PROMPTS = ["a grassy meadow", "a sandy desert"]

pytestmark = pytest.mark.timeout(300)   # a hung page or socket fails its test, not the whole run


@pytest.fixture(scope="module")
def box_model(tmp_path_factory):
    """The tiny random model with a Box(2) action space: arrows and the mouse."""
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    config = dataclasses.replace(model.config, action=BOX)
    model = seeded_random(lambda: CausalDiT(config), 0, "cpu", torch.float32)
    return str(save_model_folder(tmp_path_factory.mktemp("box") / "model", model, codec, TEXT_SPEC, latent_hw, fps))


@pytest.fixture(scope="module")
def start_model(tmp_path_factory):
    """The tiny random model with start frames: 3 real frames for each of its two trained prompts."""
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    frames = np.random.default_rng(1).integers(0, 256, (len(PROMPTS), 3, 64, 64, 3), dtype=np.uint8)
    return str(save_model_folder(tmp_path_factory.mktemp("start") / "model", model, codec, TEXT_SPEC, latent_hw,
                                 fps, prompt=PROMPTS[0], prompts=PROMPTS, start_frames=frames))


@pytest.fixture(scope="module")
def server(box_model, start_model):
    srv = start_server(models=(MODEL, box_model, start_model))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def front(server):
    """The page on loopback, without a token (the default)."""
    web = WebFront(server, "127.0.0.1", 0).start()
    yield web
    web.stop()


@pytest.fixture(scope="module")
def token_front(server):
    """The page behind an access token, as any bind off loopback is."""
    web = WebFront(server, "127.0.0.1", 0, token=TOKEN).start()
    yield web
    web.stop()


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium on the PATH: .ci/run installs Debian's chromium package for these tests")
        pytest.skip("no Chromium on the PATH (apt-get install chromium): the page is not tested in a browser")
    with Chromium() as chromium:
        yield chromium


def wait_until(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout:g} s"
        time.sleep(0.02)
    return value


def playing(front: WebFront, server: Server, browser: Chromium, url: str | None = None):
    """Open the page, wait for frames on its canvas; the page and the server's session it plays."""
    page = browser.page
    page.navigate(url or front.url)
    page.wait_for("window.streamvideo && window.streamvideo.framesDrawn >= 3")
    player = wait_until(lambda: len(front.players) == 1 and next(iter(front.players)), what="one page connected")
    sid = wait_until(lambda: player.session and player.session["session"], what="its session")
    return page, server.sessions[sid]


# ------------------------------------------------------------------------------------ in the browser

def test_the_page_plays_keys_prompt_pause_reset_and_record(front, server, browser):
    page, session = playing(front, server, browser)
    assert page.evaluate("window.streamvideo.connected") is True
    first = page.evaluate("window.streamvideo.lastChunk.index")
    page.wait_for(f"window.streamvideo.lastChunk.index >= {first + 3}")         # frames advance

    # the canvas holds the frames at their size; CSS scales it by a whole number, pixels kept crisp
    canvas = page.evaluate("(() => { const c = document.getElementById('screen'), s = getComputedStyle(c); "
                           "return [c.width, c.height, s.imageRendering, parseFloat(s.width)]; })()")
    assert canvas[:3] == [64, 64, "pixelated"] and canvas[3] % 64 == 0 and canvas[3] >= 64
    help_text = page.evaluate("document.getElementById('keys').textContent")
    assert "Up/W  UP: action 1" in help_text and "Space  PLANT: action 5" in help_text   # play's key map

    page.key("ArrowUp", True)                                                    # a key press reaches the session
    wait_until(lambda: session.action == 1, what="UP (action 1) received")
    latency = page.wait_for("window.streamvideo.latencies.length && window.streamvideo.latencies[0]")
    assert 0 < latency < 10_000
    page.key("Space", True)                                                      # newest press wins: PLANT
    wait_until(lambda: session.action == 5, what="PLANT (action 5) received")
    page.key("Space", False)
    page.key("ArrowUp", False)
    wait_until(lambda: session.action == 0, what="NOOP once the keys are up")

    page.press("Enter")                                                          # Enter: the prompt box
    page.type_text("sandy desert at dusk")
    page.press("Enter")
    wait_until(lambda: session.prompt == "sandy desert at dusk", what="the typed prompt in the session")
    page.wait_for("window.streamvideo.prompt === 'sandy desert at dusk'")        # chunks made under it came back
    assert "sandy desert at dusk" in page.evaluate("document.getElementById('hud-prompt').textContent")
    hud = page.evaluate("document.getElementById('hud-numbers').textContent")
    assert re.search(r"FPS · chunk #\d+ · NFE \d+ · gen \d+ ms · key→frame \d+ ms", hud), hud

    page.press("KeyP")
    wait_until(lambda: not session.streaming, what="paused")
    page.press("KeyP")
    wait_until(lambda: session.streaming, what="resumed")

    before = page.evaluate("window.streamvideo.lastChunk.index")
    page.press("KeyR")
    page.wait_for(f"window.streamvideo.lastChunk.index < {before}")              # a new stream, from chunk 0

    page.press("KeyV")
    page.wait_for("window.streamvideo.framesDrawn > 0 && document.getElementById('record').classList.contains('on')")
    drawn = page.evaluate("window.streamvideo.framesDrawn")
    page.wait_for(f"window.streamvideo.framesDrawn > {drawn + 10}")
    page.press("KeyV")
    recording = page.wait_for("window.streamvideo.lastRecording")
    assert recording["size"] > 0 and recording["type"] == "video/webm"
    webm = wait_until(lambda: [p for p in browser.downloads.glob("*.webm")], what="the WebM download")[0]
    assert webm.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"                          # EBML: a WebM file


def test_a_box_model_takes_arrows_and_the_mouse(front, server, browser, box_model):
    page, session = playing(front, server, browser, f"{front.url}?model={quote(box_model)}")
    assert "left button held" in page.evaluate("document.getElementById('keys').textContent")
    page.key("ArrowRight", True)
    wait_until(lambda: session.action is not None and session.action.tolist() == [2.0, 0.0], what="right: x high")
    page.key("ArrowRight", False)
    box = page.evaluate("(() => { const r = document.getElementById('screen').getBoundingClientRect(); "
                        "return [r.left, r.top, r.width, r.height]; })()")
    x, y = box[0] + box[2] / 4, box[1] + box[3] / 4                           # the pointer at (-0.5, +0.5)
    page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    page.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
    expected = KeyMap(BOX).action([], pointer=(-0.5, 0.5)).tolist()               # [-1.0, 0.5]
    wait_until(lambda: np.allclose(session.action, expected, atol=0.05), what=f"the pointer's action {expected}")
    page.call("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)
    wait_until(lambda: session.action.tolist() == [0.0, 0.0], what="the no-op once the button is up")


def test_the_page_decodes_chunk_messages_as_the_server_packs_them(front, server, browser):
    page, _ = playing(front, server, browser)
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    header = {"index": 7, "nfe": 2, "seconds": 0.25,
              "frames": {"encoding": "raw", "shape": [3, 64, 64, 3], "dtype": "uint8", "buffer": 1}}
    message = base64.b64encode(chunk_message(header, [frames.tobytes()], input_seq=41)).decode()
    decoded = page.evaluate(f"parseChunk(Uint8Array.from(atob('{message}'), c => c.charCodeAt(0)).buffer)"
                            ".then(c => [c.index, c.input, c.nfe, c.seconds, c.count, c.encoding, "
                            "Array.from(c.frames[2].subarray(0, 12)), c.frames[2].length])")
    assert decoded[:6] == [7, 41, 2, 0.25, 3, "raw"]
    assert decoded[6] == frames[2].reshape(-1)[:12].tolist() and decoded[7] == 64 * 64 * 3


def test_a_bad_token_is_refused_in_the_browser(token_front, server, browser):
    page = browser.page
    port = token_front.port
    page.navigate(f"http://127.0.0.1:{port}/{'f' * 32}/")
    assert "missing or wrong access token" in page.evaluate("document.body.textContent")
    assert page.evaluate("typeof window.streamvideo") == "undefined"
    code = page.evaluate(f"new Promise(done => {{ const s = new WebSocket('ws://127.0.0.1:{port}/{'f' * 32}/ws'); "
                         "s.onopen = () => done('opened'); s.onclose = (e) => done(e.code); })")
    assert code == 1006                                                          # the handshake was refused
    playing(token_front, server, browser)                               # the right token plays


# ------------------------------------------------------------------------------------ without a browser

def test_web_address_and_token_rules():
    assert web_address("8000") == ("127.0.0.1", 8000)
    assert web_address("0.0.0.0:8000") == ("0.0.0.0", 8000) and web_address("[::1]:9000") == ("::1", 9000)
    for bad in ("", "host:", "eighty", "70000", ":80"):
        with pytest.raises(ValueError, match=r"--web expects \[HOST:\]PORT"):
            web_address(bad)
    assert access_token("127.0.0.1") is None and access_token("localhost") is None and access_token("::1") is None
    tokens = {access_token("0.0.0.0") for _ in range(2)} | {access_token("192.168.1.5")}
    assert len(tokens) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens)
    assert not is_loopback("127.0.0.1.example.com") and not is_loopback("localhost.example.com")


def get(url: str, **headers) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode(), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def socket_url(front: WebFront, prefix: str | None = None) -> str:
    return f"ws://127.0.0.1:{front.port}{front.prefix if prefix is None else prefix}ws"


def test_a_token_front_refuses_every_path_without_its_token(token_front):
    base = f"http://127.0.0.1:{token_front.port}"
    for path in ("/", "/app.js", f"/{'0' * 32}/", f"/{TOKEN[:-1]}/", "/ws"):
        status, body, _ = get(base + path)
        assert status == 403 and "missing or wrong access token" in body, path
    status, body, headers = get(token_front.url)
    assert status == 200 and "<canvas" in body and "default-src 'self'" in headers["Content-Security-Policy"]
    assert get(token_front.url + "app.js")[0] == 200 and get(token_front.url + "nothing.js")[0] == 404
    with pytest.raises(InvalidStatus, match="403"):
        connect(socket_url(token_front, f"/{'0' * 32}/"))
    with connect(socket_url(token_front)) as ws:
        assert json.loads(ws.recv())["type"] == "hello"


def test_loopback_refuses_other_host_names_and_other_sites_pages(front):
    assert get(front.url, Host="attacker.example:80")[0] == 403                  # DNS rebinding
    assert get(front.url, Host=f"localhost:{front.port}")[0] == 200
    with pytest.raises(InvalidStatus, match="403"):
        connect(socket_url(front), origin="http://attacker.example")             # another site's page
    with connect(socket_url(front), origin=f"http://127.0.0.1:{front.port}") as ws:
        assert json.loads(ws.recv())["type"] == "hello"


def recv_until(ws, kind: str, timeout: float = 60.0, ack: bool = True):
    """The next message of type `kind` (a chunk: bytes), skipping the others; every chunk read is acknowledged,
    as the page does, unless ack=False."""
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(message, bytes) and ack:
            ws.send(json.dumps({"op": "ack"}))
        if kind == "chunk" and isinstance(message, bytes):
            return message
        if isinstance(message, str) and json.loads(message)["type"] == kind:
            return json.loads(message)


def test_bad_messages_get_one_line_errors_and_the_page_plays_on(front, server):
    with connect(socket_url(front)) as ws:
        recv_until(ws, "hello")
        ws.send(json.dumps({"op": "input", "seq": 1, "keys": []}))
        assert recv_until(ws, "error")["code"] == "bad_state"                   # before open
        ws.send(json.dumps({"op": "open", "model": "nonexistent"}))
        refused = recv_until(ws, "error")                                         # the bridge's own error
        assert refused["code"] == "unknown_model" and "expected one of" in refused["message"]
        ws.send(json.dumps({"op": "open", "seed": 3}))
        assert recv_until(ws, "session")["keys"] == sorted(KeyMap(GAME_ACTIONS).keys)   # tiny-random's, named
        cases = [("not json", "bad_message", "not JSON"), (b"\x00\x01", "bad_message", "JSON text"),
                 (json.dumps({"op": "fly"}), "unknown_op", "expected open, input"),
                 (json.dumps({"op": "input", "seq": -1, "keys": []}), "bad_type", "input.seq"),
                 (json.dumps({"op": "input", "seq": 1, "keys": ["A"] * (MAX_KEYS_HELD + 1)}), "bad_type",
                  "input.keys"),
                 (json.dumps({"op": "input", "seq": 1, "keys": [], "pointer": [2, 0]}), "bad_type", "input.pointer"),
                 (json.dumps({"op": "pause", "on": "yes"}), "bad_type", "pause.on"),
                 (json.dumps({"op": "prompt", "prompt": "x" * (server.limits.max_prompt_chars + 1)}), "too_large",
                  "the limit is")]
        for message, code, words in cases:
            ws.send(message)
            error = recv_until(ws, "error")
            assert error["code"] == code and words in error["message"] and "\n" not in error["message"], message
        recv_until(ws, "chunk")                                                   # still playing
        recv_until(ws, "chunk")


def test_a_message_over_the_limit_closes_only_its_own_websocket(front, server):
    limit = message_limit(server.limits)
    longest = json.dumps({"op": "prompt", "prompt": "\u0001" * server.limits.max_prompt_chars})
    assert len(longest.encode()) <= limit                       # any prompt the bridge takes fits, escaped or not
    with connect(socket_url(front)) as other, connect(socket_url(front), max_size=None) as big:
        for ws in (other, big):
            recv_until(ws, "hello")
            ws.send(json.dumps({"op": "open"}))
            recv_until(ws, "session")
        big.send(json.dumps({"op": "prompt", "prompt": "x" * limit}))
        with pytest.raises(ConnectionClosedError) as closed:
            recv_until(big, "never")
        assert closed.value.rcvd.code == 1009                                    # message too big
        other.send(json.dumps({"op": "prompt", "prompt": "still here"}))
        message = recv_until(other, "chunk")
        header = CHUNK_HEADER.unpack_from(message)
        assert header[4:7] == (3, 64, 64) and len(message) == CHUNK_HEADER.size + 3 * 64 * 64 * 3


def test_a_page_that_does_not_acknowledge_chunks_gets_no_more_than_two_then_the_newest(front):
    """A slow page (a busy browser, a slow network) is never sent a backlog: chunks would wait in the socket
    buffers, seconds of them between a key press and its frame."""
    with connect(socket_url(front)) as ws:
        recv_until(ws, "hello")
        ws.send(json.dumps({"op": "open"}))
        recv_until(ws, "session")
        first = [CHUNK_HEADER.unpack_from(recv_until(ws, "chunk", ack=False))[0] for _ in range(MAX_UNACKED)]
        with pytest.raises(TimeoutError):        # 5 chunk periods of the model: nothing more without an ack
            recv_until(ws, "chunk", timeout=5 * 3 / 15, ack=False)
        ws.send(json.dumps({"op": "ack"}))
        newest = CHUNK_HEADER.unpack_from(recv_until(ws, "chunk", ack=False))[0]
        assert newest >= first[-1] + 2           # chunks made meanwhile were dropped, not queued


def test_chunk_messages_carry_jpeg_images_with_their_sizes():
    images = [b"\xff\xd8first\xff\xd9", b"\xff\xd8second!\xff\xd9"]
    header = {"index": 3, "nfe": 4, "seconds": 0.5,
              "frames": {"encoding": "jpeg", "shape": [2, 8, 8, 3], "dtype": "uint8", "buffer": 1, "count": 2}}
    message = chunk_message(header, images, input_seq=9)
    assert CHUNK_HEADER.unpack_from(message) == (3, 9, 0.5, 4, 2, 8, 8, 1)
    sizes = np.frombuffer(message, "<u4", 2, CHUNK_HEADER.size).tolist()
    assert sizes == [len(b) for b in images] and message[CHUNK_HEADER.size + 8:] == b"".join(images)


def test_serve_web_off_loopback_prints_a_url_with_a_token():
    proc = subprocess.Popen([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--bind", LOOPBACK, "--pub",
                             LOOPBACK, "--model", MODEL, "--web", "0.0.0.0:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        url = re.search(r"play in a browser at (http://\S+)", line).group(1)
        token = re.fullmatch(r"http://[^/:]+:(\d+)/([0-9a-f]{32})/", url)   # this machine's name
        assert token, line
        port = token.group(1)
        assert get(f"http://127.0.0.1:{port}/")[0] == 403
        assert get(f"http://127.0.0.1:{port}/{token.group(2)}/")[0] == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0                                        # SIGTERM stops it cleanly


@pytest.mark.parametrize("taken", ["web", "bind"])
def test_serve_web_on_a_taken_port_is_one_line_without_a_traceback(taken):
    """Whichever of the page's port and the bridge's fails to bind (each serves on a thread of its own)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        web, bind = (f"127.0.0.1:{port}", LOOPBACK) if taken == "web" else ("127.0.0.1:0", f"tcp://127.0.0.1:{port}")
        proc = subprocess.run([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--bind", bind, "--pub",
                               LOOPBACK, "--model", MODEL, "--web", web], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line, = proc.stdout.splitlines()
    assert line.startswith("streamvideo serve: ") and "in use" in line and str(port) in line, line


def test_open_and_reset_can_start_from_the_models_start_frames(server, start_model):
    """The bridge's hook the page uses to start as play does; a plain open still starts from the prompt alone."""
    local = streamvideo.load(start_model)
    local.reset(prompt=PROMPTS[1], seed=5, context_frames=local.start_frames_for(PROMPTS[1]))
    expected = local.step(2)
    with Client(server.endpoints["control"], timeout=60) as client:
        session = client.open(model=start_model, prompt=PROMPTS[1], seed=5, start_frames=True)
        chunk = session.step(2)
        assert chunk.index == expected.index == 1 and np.array_equal(chunk.frames, expected.frames)
        assert client.request("reset", session=session.id, start_frames=True)[0]["next_index"] == 1
        with pytest.raises(BridgeError, match="context_frames or start_frames, not both"):
            session_frames = np.zeros((3, 64, 64, 3), np.uint8)
            client.request("reset", [session_frames], session=session.id, start_frames=True,
                           context_frames={"dtype": "uint8", "shape": [3, 64, 64, 3], "buffer": 1})
        assert session.step(0).index == 1                               # the refused reset changed nothing
        assert client.open(model=start_model, prompt=PROMPTS[1]).step(0).index == 0


def test_the_page_starts_from_start_frames_unless_told_not_to(front, start_model):
    """The page gets its stream's first chunk (it waits until the server counts its subscription), the one a local
    generator makes from the model's start frames (chunk 1: they are chunk 0), or from the prompt alone with
    start_frames=false (chunk 0)."""
    for options, start in (({}, True), ({"start_frames": False}, False)):
        with connect(socket_url(front)) as ws:
            recv_until(ws, "hello")
            ws.send(json.dumps({"op": "open", "model": start_model, "seed": 5, **options}))
            recv_until(ws, "session")
            message = recv_until(ws, "chunk")
        index = CHUNK_HEADER.unpack_from(message)[0]
        assert index == int(start), options
        local = streamvideo.load(start_model)
        local.reset(seed=5, context_frames=local.start_frames_for(PROMPTS[0]) if start else None)
        chunks = [local.step(None) for _ in range(index + 1 - start)]
        assert chunks[-1].index == index
        frames = np.frombuffer(message, np.uint8, offset=CHUNK_HEADER.size).reshape(3, 64, 64, 3)
        assert np.array_equal(frames, chunks[-1].frames), options


def test_the_page_plays_from_a_curve_server(tmp_path):
    """With --curve-keys the page's connection to the bridge uses the server's own key pair."""
    create_keys(tmp_path / "keys")
    curve_server = Server(ServerConfig(bind=LOOPBACK, pub=LOOPBACK, models=(MODEL,), heartbeat_ms=200,
                                       curve_keys=str(tmp_path / "keys"))).start()
    web = WebFront(curve_server, "127.0.0.1", 0).start()
    try:
        with connect(socket_url(web)) as ws:
            recv_until(ws, "hello")
            ws.send(json.dumps({"op": "open"}))
            recv_until(ws, "session")
            assert CHUNK_HEADER.unpack_from(recv_until(ws, "chunk"))[4:7] == (3, 64, 64)
    finally:
        web.stop()
        curve_server.stop()
