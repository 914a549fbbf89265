"""The Unity C# client (bridge/unity) outside Unity: its engine-independent core built with Mono's mcs.

- unit.exe: the MessagePack codec against msgpack-python's bytes, Z85 and certificate files against pyzmq,
  key map, frame queue, chunk decoding (no server).
- conformance.exe: against a live `streamvideo serve` (a subprocess on free loopback ports), through a
  P/Invoke transport on the system libzmq.so.5: handshake, a seeded episode whose frames must hash equal
  to the Python client's, a prompt change, error replies, reconnect, the real-time stream, CURVE (a refused client key
  and a wrong server key are auth_failed after the handshake timeout).

Skipped when mcs, mono or libzmq.so.5 are missing: `bash bridge/unity/ci/run_conformance.sh install`.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

msgpack = pytest.importorskip("msgpack")
zmq = pytest.importorskip("zmq")

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "bridge" / "unity" / "ci" / "run_conformance.sh"
MODEL = "tiny-random"
EPISODE = {
    "model": MODEL,
    "prompt": "a grassy meadow at dawn",
    "seed": 1234,
    "actions": [0, 1, 2, 3, 4, 5, 1, 1],
    "prompt_change_at": 4,
    "prompt2": "a snowy mountain pass at night",
    "jpeg_quality": 85,
}
NOOP_CHUNKS = 12  # no-op rollout the stream's first chunks are compared with
SERVER_START_S = 90
PROGRAM_TIMEOUT_S = 90  # the programs stop themselves after 60 s


def _missing_tools() -> str | None:
    for tool in ("mcs", "mono"):
        if shutil.which(tool) is None:
            return tool
    try:
        ctypes.CDLL("libzmq.so.5")
    except OSError:
        return "libzmq.so.5"
    return None


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"{missing} not found: run `bash bridge/unity/ci/run_conformance.sh install` "
                    f"(apt: mono-mcs mono-runtime libzmq5) to test the Unity client")
    out = tmp_path_factory.mktemp("unity-build")
    build = subprocess.run(["bash", str(BUILD_SCRIPT), "build", str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"mcs build failed:\n{build.stdout}\n{build.stderr}"
    return out


def _run(program: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["mono", "--debug", str(program), *args], capture_output=True, text=True,
                            timeout=PROGRAM_TIMEOUT_S)
    print(result.stdout, result.stderr, sep="\n")
    return result


def _passed(result: subprocess.CompletedProcess) -> None:
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    assert result.returncode == 0 and not failures, "\n".join(failures) or result.stdout + result.stderr
    assert any(line.startswith("PASS") for line in lines)


# ---------------------------------------------------------------------------------------------- package

def test_package_layout():
    """package.json and the asmdefs are valid, reference each other by existing names, and gate NetMQ code."""
    unity = REPO / "bridge" / "unity"
    package = json.loads((unity / "package.json").read_text())
    assert package["name"].startswith("com.") and package["name"] == package["name"].lower()
    for sample in package["samples"]:
        assert (unity / sample["path"]).is_dir(), sample["path"]
    asmdefs = {path: json.loads(path.read_text()) for path in unity.rglob("*.asmdef")}
    names = {a["name"] for a in asmdefs.values()}
    for path, asmdef in asmdefs.items():
        for reference in asmdef["references"]:
            assert reference in names | {"UnityEngine.UI"}, f"{path.name} references unknown {reference}"
        uses_netmq = any("using NetMQ;" in cs.read_text() or "StreamVideo.NetMq" in cs.read_text()
                         for cs in path.parent.rglob("*.cs"))
        assert uses_netmq == ("STREAMVIDEO_NETMQ" in asmdef["defineConstraints"]), path.name
    core = next(a for a in asmdefs.values() if a["name"] == "StreamVideo.Core")
    assert core["noEngineReferences"] and not core["references"]


# ---------------------------------------------------------------------------------------------- unit

def _codec_values() -> dict:
    """Same names and values as bridge/unity/Tests~/Unit/CodecCases.cs."""
    blob = lambda n: bytes(i % 251 for i in range(n))  # noqa: E731
    values = {
        "nil": None, "true": True, "false": False, "uint64:max": 2**64 - 1,
        "double:0.5": 0.5, "double:-1.25e300": -1.25e300, "double:third": 1 / 3, "double:-0": -0.0,
        "str:unicode": "h\u00e9llo w\u00f6rld \u2713 \u4e16\u754c",
        "request": {"id": 7, "op": "step", "session": "9f0c" * 8, "action": [1, 0, 2], "fps": 15.0, "on": True,
                    "frames": {"dtype": "uint8", "shape": [2, 2, 3], "data": blob(12)}, "nothing": None},
    }
    for v in (0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2**63 - 1,
              -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -(2**63)):
        values[f"int:{v}"] = v
    for n in (0, 31, 32, 255, 256, 65535, 65536):
        values[f"str:{n}"] = "a" * n
    for n in (0, 255, 256, 65535, 65536):
        values[f"bin:{n}"] = blob(n)
    for n in (0, 15, 16, 65535, 65536):
        values[f"array:{n}"] = list(range(n))
    for n in (0, 15, 16, 65536):
        values[f"map:{n}"] = {f"k{i}": i for i in range(n)}
    return values


def _unit_fixture(directory: Path) -> Path:
    from zmq.utils import z85

    from streamvideo.bridge import create_keys

    keys = create_keys(directory / "keys", ["unity"])
    server_public, _ = zmq.auth.load_certificate(str(keys["server"]))
    client_public, client_secret = zmq.auth.load_certificate(str(keys["unity"]))
    fixture = {
        "values": {name: msgpack.packb(v, use_bin_type=True) for name, v in _codec_values().items()},
        "decode_only": {f"float32:{v}": msgpack.packb(v, use_single_float=True) for v in (0.5, -2.75)},
        "z85": [[z85.encode(raw).decode(), raw] for raw in (os.urandom(32) for _ in range(8))],
        "certificates": {"server_public_file": str(keys["server"]), "client_secret_file": str(keys["unity"]),
                         "server_public": z85.decode(server_public), "client_public": z85.decode(client_public),
                         "client_secret": z85.decode(client_secret)},
    }
    path = directory / "codec_fixture.msgpack"
    path.write_bytes(msgpack.packb(fixture, use_bin_type=True))
    return path


def test_unit_checks(programs, tmp_path):
    _passed(_run(programs / "unit.exe", str(_unit_fixture(tmp_path))))


# ---------------------------------------------------------------------------------------------- conformance

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serve(log: Path, *extra: str, client_keys: dict | None = None):
    """A `streamvideo serve` subprocess on free loopback ports (output to `log`); yields its control endpoint."""
    from streamvideo.bridge import BridgeError, Client

    control, pub = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--bind", control,
                                    "--pub", pub, "--model", MODEL, *extra], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert process.poll() is None, f"streamvideo serve exited:\n{log.read_text()}"
            try:
                Client(control, timeout=1.0, **(client_keys or {})).close()
                break
            except BridgeError:
                assert time.monotonic() < deadline, f"streamvideo serve did not answer within {SERVER_START_S} s"
        yield control
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _sha256(frames) -> list[str]:
    return [hashlib.sha256(frame.tobytes()).hexdigest() for frame in frames]


def _expected(control: str, path: Path) -> Path:
    """Run the episode with the Python client and write what the C# client must see."""
    from streamvideo.bridge import Client

    e = EPISODE
    with Client(control, timeout=60) as client:
        hello = {k: v for k, v in client.info.items() if k not in ("id", "ok")}
        session = client.open(model=MODEL, prompt=e["prompt"], seed=e["seed"])
        opened = {k: v for k, v in session.info.items() if k not in ("id", "ok", "session")}
        episode = []
        for k, action in enumerate(e["actions"]):
            if k == e["prompt_change_at"]:
                session.set_prompt(e["prompt2"])
            episode.append(_sha256(session.step(action).frames))
        session.close()

        noop = client.open(model=MODEL, prompt=e["prompt"], seed=e["seed"])
        noop_hashes = [_sha256(noop.step(None).frames) for _ in range(NOOP_CHUNKS)]
        noop.close()

        jpeg = client.open(model=MODEL, prompt=e["prompt"], seed=e["seed"], encoding="jpeg", quality=e["jpeg_quality"])
        _, jpeg_files = client.request("step", session=jpeg.id)
        jpeg.close()

    space = opened["action_space"]
    assert space["kind"] == "discrete", "the episode is written for a discrete action space"
    expected = {**e, "hello": hello, "open": opened, "episode_sha256": episode, "noop_sha256": noop_hashes,
                "jpeg_sha256": [hashlib.sha256(bytes(f)).hexdigest() for f in jpeg_files], "bad_action": space["n"]}
    path.write_bytes(msgpack.packb(expected, use_bin_type=True))
    return path


def test_conformance_against_live_server(programs, tmp_path):
    from streamvideo.bridge import create_keys

    keys = create_keys(tmp_path / "keys", ["unity", "stranger"])
    (tmp_path / "keys" / "authorized_clients" / "stranger.key").unlink()
    other_server_key = create_keys(tmp_path / "other", [])["server"]
    curve_args = ("--curve-keys", str(tmp_path / "keys"))
    curve_client = {"server_key": keys["server"], "client_key": keys["unity"]}
    with (_serve(tmp_path / "serve.log") as control,
          _serve(tmp_path / "serve-curve.log", *curve_args, client_keys=curve_client) as curve):
        expected = _expected(control, tmp_path / "expected.msgpack")
        result = _run(programs / "conformance.exe", "--control", control, "--expected", str(expected),
                      "--curve-control", curve, "--server-key", str(keys["server"]),
                      "--client-key", str(keys["unity"]), "--stranger-key", str(keys["stranger"]),
                      "--other-server-key", str(other_server_key))
    _passed(result)
