"""A front in front of worker processes (`serve --workers`, bridge/front.py) on real loopback sockets: sessions
spread over the workers, a session's frames equal to a single server's, a killed worker failing only its own
sessions, CURVE through the front and on the worker link, and the command line. Local workers: 2 CPU processes
with one torch thread each."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from servers import LOOPBACK, MODEL, Raw, serve_process, start_server
from wire_schema import CheckedRaw, exercise

from streamvideo.apps.cli import main
from streamvideo.bridge import (
    BridgeError,
    Client,
    Front,
    FrontConfig,
    Limits,
    Server,
    ServerConfig,
    StreamEnded,
    create_keys,
)
from streamvideo.bridge import protocol as P
from streamvideo.bridge.client import HANDSHAKE_FAILURES
from streamvideo.bridge.sessions import SharedModels
from streamvideo.engine.speedups import DEFAULT_SPEEDUPS

pytestmark = pytest.mark.timeout(120)
HEARTBEAT_MS = 200   # a worker is lost after 3 silent heartbeats: 0.6 s


def start_front(workers: int = 2, **overrides) -> Front:
    settings = {"bind": LOOPBACK, "pub": LOOPBACK, "models": (MODEL,), "heartbeat_ms": HEARTBEAT_MS,
                "limits": Limits(max_sessions=16, idle_timeout_ms=5000, stream_sndbuf=64 << 10), **overrides}
    return Front(FrontConfig(ServerConfig(**settings), workers=workers, threads=1)).start(timeout=120)


@pytest.fixture(scope="module")
def front():
    f = start_front()
    yield f
    f.stop()


def worker_of(front: Front, session):
    return front.sessions[session.id].worker


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP has taken effect): state T in /proc/PID/stat."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


# ---------------------------------------------------------------------- one endpoint, several workers


def test_sessions_spread_over_the_workers_behind_one_endpoint(front):
    with Client(front.endpoints["control"], timeout=30) as client:
        assert client.info["version"] == P.PROTOCOL_VERSION and client.info["pub"] == front.endpoints["pub"]
        sessions = [client.open(seed=i) for i in range(4)]
        assert sorted(len(w.sessions) for w in front.workers.values()) == [2, 2]   # the least-loaded worker
        assert len({worker_of(front, s).pid for s in sessions}) == 2
        assert [s.step(1).index for s in sessions] == [0, 0, 0, 0]
        stats = client.server_stats()
        assert stats["sessions"] == 4 and stats["workers"] == 2 and stats["chunks"] == 4
        for s in sessions:
            s.close()
        assert client.server_stats()["sessions"] == 0


def test_a_seeded_sessions_frames_through_the_front_equal_a_single_servers(front):
    server = start_server()
    try:
        with Client(front.endpoints["control"], timeout=30) as a, Client(server.endpoints["control"], timeout=30) as b:
            through, direct = a.open(seed=11, prompt="sandy desert"), b.open(seed=11, prompt="sandy desert")
            for action in [1, 2, 0, 3, 3, 1, 2, 0]:   # longer than the cache window
                x, y = through.step(action), direct.step(action)
                assert x.index == y.index and x.batch == y.batch == 1
                assert np.array_equal(x.frames, y.frames), f"chunk {x.index} differs"
            assert through.reset(seed=4) == direct.reset(seed=4) == 0
            assert np.array_equal(through.step(2).frames, direct.step(2).frames)
    finally:
        server.stop()


def test_the_front_checks_requests_and_topics_as_a_server_does(front):
    raw = Raw(front.endpoints["control"], hello=False)
    assert raw.call({"op": "open"})["error"]["code"] == "handshake_required"
    assert raw.call({"op": "hello", "version": P.PROTOCOL_VERSION})["ok"]
    assert raw.call({"op": "open", "seed": 1.0})["error"]["code"] == "bad_type"
    assert raw.call({"op": "step", "session": "0" * 32})["error"]["code"] == "unknown_session"
    opened = raw.call({"op": "open", "seed": 0})
    sid = opened["session"]
    assert raw.call({"op": "step", "session": sid, "action": 99})["error"]["code"] == "bad_action"  # the worker's
    assert raw.call({"op": "ping", "sessions": [sid, "0" * 32]})["unknown"] == ["0" * 32]

    spy = zmq.Context.instance().socket(zmq.SUB)            # subscribes to every prefix: must receive nothing
    watcher = zmq.Context.instance().socket(zmq.SUB)        # holds the topic: must see the frames
    for sock, prefix in ((spy, b""), (watcher, opened["topic"].encode())):
        sock.linger = 0
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
        sock.connect(front.endpoints["pub"])
    time.sleep(0.3)  # the subscriptions reach the front first
    assert raw.call({"op": "stream", "session": sid, "fps": 0})["ok"]
    assert watcher.poll(30_000) and watcher.recv_multipart()[0] == opened["topic"].encode()
    assert not spy.poll(500), "a wildcard subscriber received a stream message"
    assert raw.call({"op": "close", "session": sid})["ok"]
    for sock in (spy, watcher):
        sock.close()
    raw.close()


def test_the_front_counts_subscribers_and_relays_episodes(front):
    with Client(front.endpoints["control"], timeout=30) as client:
        session = client.open(seed=3)
        assert session.stats()["subscribers"] == 0
        stream = session.stream(fps=30, hwm=64)  # waits until the front counts its subscription; loses nothing
        assert session.stats()["subscribers"] == 1
        assert stream.recv(timeout=30).index == 0
        assert session.reset(seed=3) == 0 and session.episode == 1
        chunk = stream.recv(timeout=30)
        while chunk.episode == 0:
            chunk = stream.recv(timeout=30)
        assert (chunk.episode, chunk.index) == (1, 0)
        stream.close()
        session.close()


def test_the_fronts_messages_fit_the_schema(front):
    raw = CheckedRaw(front.endpoints["control"], front.endpoints["pub"])
    exercise(raw)
    raw.close()


# ---------------------------------------------------------------------- faults


def test_a_killed_worker_fails_only_its_own_sessions(front):
    with Client(front.endpoints["control"], timeout=30) as client:
        sessions = [client.open(seed=i) for i in range(4)]
        victim = worker_of(front, sessions[0])
        streaming, stepping = [s for s in sessions if worker_of(front, s) is victim]
        spared = [s for s in sessions if worker_of(front, s) is not victim]
        survivor = worker_of(front, spared[0])
        stream = streaming.stream(fps=0)
        assert stream.recv(timeout=30) is not None

        os.kill(victim.pid, signal.SIGSTOP)   # stalled first, so that the step below is surely in flight
        assert wait_until(lambda: stopped(victim.pid), 10)
        raw = Raw(front.endpoints["control"])
        raw.send(P.pack({"id": 99, "op": "step", "session": stepping.id}))
        time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        reply = raw.reply(timeout=10)
        assert reply["id"] == 99 and reply["error"]["code"] == "worker_lost"
        assert time.monotonic() - killed < 3, "a lost worker must be noticed within a few heartbeats"
        with pytest.raises(StreamEnded) as ended:
            while stream.recv(timeout=10) is not None:
                pass
        assert ended.value.reason == "worker_lost"
        with pytest.raises(BridgeError) as err:
            stepping.step(0)
        assert err.value.code == "worker_lost" and str(victim.pid) in err.value.message

        assert [s.step(1).index for s in spared] == [0, 0]     # the other worker's sessions go on
        fresh = client.open(seed=9)                           # before the restart, on the survivor
        assert worker_of(front, fresh) is survivor and fresh.step(0).index == 0

        assert wait_until(lambda: len(front.workers) == 2, 60), "the front did not restart the dead worker"
        restarted = next(w for w in front.workers.values() if w is not survivor)
        assert restarted.pid != victim.pid
        newer = client.open(seed=10)                          # the restarted worker holds none: it takes it
        assert worker_of(front, newer) is restarted and newer.step(0).index == 0
        for s in [*spared, fresh, newer]:
            s.close()
        stream.close()
        raw.close()


# ---------------------------------------------------------------------- CURVE


def test_curve_through_the_front_and_on_the_worker_link(tmp_path):
    keys = create_keys(tmp_path / "keys", ["robot", "remote"])
    front = start_front(workers=1, curve_keys=str(tmp_path / "keys"))   # its local worker uses the front's keys
    address = front.endpoints["control"]
    remote = None
    try:
        with Client(address, server_key=keys["server"], client_key=keys["robot"], timeout=30) as client:
            session = client.open(seed=0)
            assert session.step(0).index == 0
            stream = session.stream(fps=0)
            assert stream.recv(timeout=30) is not None        # the front's XPUB is CURVE too
            stream.close()
            with pytest.raises(BridgeError) as err:
                Client(address, timeout=10)
            assert err.value.code == "auth_failed"

            # a worker elsewhere attaches with its own authorized key ...
            remote = Server(ServerConfig(models=(MODEL,), heartbeat_ms=HEARTBEAT_MS, attach=front.endpoints["workers"],
                                         front_key=str(keys["server"]), worker_key=str(keys["remote"]))).start()
            assert wait_until(lambda: len(front.workers) == 2, 30)
            second = client.open(seed=1)
            assert worker_of(front, second).pid == os.getpid() and second.step(0).index == 0
        # ... and a plaintext one is refused at the handshake (its greeting alone is refused: no send, which
        # would block forever once the refused pipe is gone)
        plain = zmq.Context.instance().socket(zmq.DEALER)
        plain.linger = 0
        monitor = plain.get_monitor_socket(HANDSHAKE_FAILURES)   # which failure comes first is a race (PROTOCOL.md)
        plain.connect(front.endpoints["workers"])
        assert monitor.poll(10_000), "a plaintext worker was not refused"
        plain.disable_monitor()
        for sock in (monitor, plain):
            sock.close()
    finally:
        if remote is not None:
            remote.stop()
        front.stop()


# ---------------------------------------------------------------------- command line


def test_a_worker_that_cannot_start_fails_the_front():
    with pytest.raises(ValueError, match="exited with code 2 before attaching"):
        start_front(workers=1, models=("nonexistent",))


def test_serve_workers_from_the_command_line():
    # the front logs its endpoints once its workers attached
    proc, control, pub = serve_process("--workers", "2", "--threads", "1", "--heartbeat", "0.2")
    try:
        with Client(control, timeout=30) as client:
            assert client.info["pub"] == pub and client.server_stats()["workers"] == 2
            assert client.open(seed=0).step(0).index == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()


def test_a_bad_workers_value_is_a_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--workers", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--workers" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, says", [
    (["--devices", "cpu,"], "--devices"),
    (["--workers", "3", "--devices", "cpu,cpu"], "one device per worker"),
    (["--workers", "2", "--attach", "tcp://127.0.0.1:9"], "--attach runs only a worker"),
    (["--worker-key", "robot.key_secret"], "with --attach"),
    (["--speedups", "default,compile"], "not offered by serve"),
    (["--speedups", "warp"], "unknown speed-up 'warp'"),
])
def test_worker_options_that_disagree_are_one_line_errors(argv, says, capsys):
    try:
        code = main(["serve", *argv])
    except SystemExit as refusal:  # argparse
        code = refusal.code
    out = capsys.readouterr()
    message = (out.out + out.err).strip()
    assert code == 2 and says in message and len(message.splitlines()) == 1, message


def test_the_speedups_reach_the_servers_models_and_the_fronts_workers(front):
    assert SharedModels(()).speedups == () and Server(ServerConfig(speedups=()))._loader.speedups == ()
    for command in front._worker_commands():
        assert command[command.index("--speedups") + 1] == ",".join(DEFAULT_SPEEDUPS)


def test_a_worker_attaches_to_a_remote_front_only_with_keys():
    with pytest.raises(ValueError, match="--front-key"):
        Server(ServerConfig(models=(MODEL,), attach="tcp://10.0.0.1:5557")).start()
