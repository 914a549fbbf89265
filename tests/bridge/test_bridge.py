"""Bridge over real loopback sockets: handshake, lock-step RemoteEnv, real-time streams, crashed clients,
CURVE, and fuzzing with malformed messages. Servers bind tcp://127.0.0.1:* (a free port chosen by the OS).
"""

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import msgpack
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import LOOPBACK, MODEL, Raw, serve_process, start_server

import streamvideo
import streamvideo.envs  # noqa: F401  (registers StreamVideo-v0)
from streamvideo.bridge import BridgeError, Client, Limits, RemoteEnv, Server, ServerConfig, Stream, create_keys
from streamvideo.bridge import protocol as P

pytestmark = pytest.mark.timeout(120)


def test_handshake_reports_version_models_and_limits(client):
    assert client.info["version"] == P.PROTOCOL_VERSION and client.info["models"] == [MODEL]
    assert client.info["limits"]["max_sessions"] == 16 and set(client.info["encodings"]) == {"raw", "jpeg"}


def test_major_version_mismatch_is_refused_and_handshake_is_required(server):
    raw = Raw(server.endpoints["control"], hello=False)
    reply = raw.call({"op": "open"})
    assert reply["error"]["code"] == "handshake_required" and "hello" in reply["error"]["message"]
    reply = raw.call({"op": "hello", "version": "2.0"})
    assert not reply["ok"] and reply["error"]["code"] == "version_mismatch"
    assert "2.0" in reply["error"]["message"] and P.PROTOCOL_VERSION in reply["error"]["message"]
    assert raw.call({"op": "stats"})["error"]["code"] == "handshake_required"
    assert raw.call({"op": "hello", "version": "1.9"})["ok"]  # minor versions differ freely
    assert raw.call({"op": "stats"})["ok"]
    raw.close()


# ---------------------------------------------------------------------- lock-step


def test_remote_env_is_identical_to_the_in_process_env(server):
    local = gym.make("StreamVideo-v0", model=MODEL, prompt="a grassy meadow", observation="stacked").unwrapped
    remote = RemoteEnv(server.endpoints["control"], model=MODEL, prompt="a grassy meadow", observation="stacked",
                       client={"timeout": 60})
    try:
        assert remote.observation_space == local.observation_space
        assert remote.action_space == local.action_space
        local.action_space.seed(5)
        actions = [local.action_space.sample() for _ in range(4)]
        (obs_l, _), (obs_r, _) = local.reset(seed=3), remote.reset(seed=3)
        assert np.array_equal(obs_l, obs_r)
        steps = [(local.step(a), remote.step(a)) for a in actions]
        local.set_prompt("sandy desert")
        remote.set_prompt("sandy desert")
        steps.append((local.step(actions[0]), remote.step(actions[0])))
        for out_l, out_r in steps:
            assert np.array_equal(out_l[0], out_r[0]) and out_l[1:4] == out_r[1:4]
            assert data_equivalence(out_l[4], out_r[4])  # info["frames"] too
        assert steps[-1][1][4]["prompt"] == "sandy desert"
        assert np.array_equal(local.render(), remote.render())
    finally:
        local.close()
        remote.close()


def test_remote_env_passes_the_gymnasium_env_checker(server):
    env = RemoteEnv(server.endpoints["control"], model=MODEL, render_mode="rgb_array", client={"timeout": 60})
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()


def test_retried_request_is_answered_again_without_running_twice(client, server):
    session = client.open(seed=1)
    raw = Raw(server.endpoints["control"])
    step = P.pack({"id": 77, "op": "step", "session": session.id, "action": 1})
    raw.send(step)
    first = raw.reply()
    raw.send(step)
    again = raw.reply()
    raw.close()
    reconnected = Raw(server.endpoints["control"])    # a new connection resends the timed-out request
    reconnected.send(step)
    assert first["ok"] and again == first and reconnected.reply() == first
    assert session.stats()["chunks"] == 1
    other = P.pack({"id": 77, "op": "step", "session": session.id, "action": 2})
    reconnected.send(other)                           # same id, other content: a new request
    assert reconnected.reply()["index"] == 1 and session.stats()["chunks"] == 2
    session.close()
    reconnected.close()


def test_jpeg_frames_are_the_raw_frames_through_jpeg(client):
    raw, jpeg = client.open(seed=4), client.open(seed=4, encoding="jpeg", quality=90)
    frames = raw.step(2).frames
    buffers = []
    expected = P.decode_chunk(P.encode_chunk(frames, "jpeg", buffers, quality=90), buffers)
    assert np.array_equal(jpeg.step(2).frames, expected)
    raw.close()
    jpeg.close()


def test_sessions_are_limited_and_models_allow_listed(server):
    with Client(server.endpoints["control"]) as c:
        with pytest.raises(BridgeError) as err:
            c.open(model="../../etc/passwd")
        assert err.value.code == "unknown_model" and MODEL in err.value.message
    srv = start_server(limits=Limits(max_sessions=1))
    try:
        with Client(srv.endpoints["control"]) as c:
            c.open()
            with pytest.raises(BridgeError) as err:
                c.open()
            assert err.value.code == "server_full"
    finally:
        srv.stop()


def test_plaintext_on_a_public_address_is_refused():
    with pytest.raises(ValueError, match="--curve-keys"):
        Server(ServerConfig(bind="tcp://0.0.0.0:*", pub=LOOPBACK, models=(MODEL,))).start()


# ---------------------------------------------------------------------- real time


def test_realtime_stream_reaches_two_subscribers_while_one_stalls(server):
    with Client(server.endpoints["control"], timeout=30) as c:
        session = c.open(seed=2)
        watcher = Stream(c, session.topic)
        stalled = session.stream(fps=0, hwm=1, rcvbuf=4096)  # both subscribed before the stream starts
        got = [watcher.recv(timeout=30) for _ in range(16)]
        assert all(chunk is not None for chunk in got)
        indices = [chunk.index for chunk in got]
        assert indices == sorted(indices) and indices[-1] >= 15
        late = [stalled.recv(timeout=30).index]
        while late[-1] <= indices[-1] and len(late) <= indices[-1] + 1:
            late.append(stalled.recv(timeout=30).index)
        # it got what queued while it stalled (a few old chunks), lost the rest, then fresh ones again
        assert late[-1] > indices[-1] and len(late) < late[-1] + 1
        stalled.close()
        watcher.close()
        session.close()


def test_realtime_stream_is_paced_and_uses_the_latest_action(client):
    session = client.open(seed=6)
    chunk_s = session.frames_per_chunk / 12.0
    stream = session.stream(fps=12.0)
    session.act(3)
    first = stream.recv(timeout=30)
    for _ in range(3):
        last = stream.recv(timeout=30)
    # generated at 12 frames/s at most: never faster than the model's chunk period
    assert last.time - first.time >= 3 * chunk_s * 0.9
    assert session.act(2) >= last.index
    with pytest.raises(BridgeError) as err:
        session.step(1)
    assert err.value.code == "bad_state"
    stream.close()
    session.close()


KILLABLE_CLIENT = textwrap.dedent("""
    import sys
    from streamvideo.bridge import Client
    client = Client(sys.argv[1], timeout=30)
    session = client.open(seed=0)
    stream = session.stream(fps=0)
    stream.recv(timeout=30)
    print(session.id, flush=True)
    while True:
        stream.recv(timeout=1)
""")


def test_a_killed_client_frees_its_session():
    srv = start_server(limits=Limits(idle_timeout_ms=1000))
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_CLIENT, srv.endpoints["control"]],
                            stdout=subprocess.PIPE, text=True)
    try:
        sid = proc.stdout.readline().strip()  # the client is streaming once it prints its session
        assert re.fullmatch("[0-9a-f]{32}", sid) and srv.sessions[sid].streaming
        proc.kill()
        proc.wait(10)
        with Client(srv.endpoints["control"]) as watcher:
            deadline = time.monotonic() + 20
            while watcher.server_stats()["sessions"] and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the server's own count, with a deadline
            assert watcher.server_stats()["sessions"] == 0
    finally:
        proc.kill()
        srv.stop()


# ---------------------------------------------------------------------- CURVE


def test_curve_serves_a_known_key_and_refuses_an_unknown_one(tmp_path):
    keys = create_keys(tmp_path / "keys", ["robot"])
    stranger = create_keys(tmp_path / "other", ["stranger"])["stranger"]
    srv = start_server(curve_keys=str(tmp_path / "keys"))
    address = srv.endpoints["control"]
    try:
        with Client(address, server_key=keys["server"], client_key=keys["robot"], timeout=30) as good:
            session = good.open(seed=0)
            assert session.step(0).frames.shape == (session.frames_per_chunk, session.height, session.width, 3)
            stream = session.stream(fps=0)
            assert stream.recv(timeout=30) is not None  # the PUB socket is CURVE too
        with pytest.raises(BridgeError) as err:
            Client(address, server_key=keys["server"], client_key=stranger, timeout=10)
        assert err.value.code == "auth_failed"
        with pytest.raises(BridgeError) as err:
            Client(address, timeout=10)  # plaintext against a CURVE server: refused at once, and says so
        assert err.value.code == "auth_failed" and "CURVE" in err.value.message
    finally:
        srv.stop()


def test_streamvideo_keys_writes_the_files_the_spec_lists(tmp_path):
    """PROTOCOL.md section 1.2's table of key files, for a client NAME, is what `streamvideo keys` writes."""
    spec = (Path(__file__).resolve().parents[2] / "bridge" / "PROTOCOL.md").read_text()
    table = spec[spec.index("| file | holds | who needs it |"):spec.index("Each file is a ZeroMQ certificate")]
    listed = {name.replace("NAME", "robot") for name in re.findall(r"^\| `DIR/([^`]+)` \|", table, flags=re.M)}
    create_keys(tmp_path, ["robot"])
    assert listed == {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}


def test_curve_handshake_failures_are_errors_that_name_their_cause(tmp_path):
    """No handshake failure is a silent timeout: each raises auth_failed at once, naming the likely cause."""
    keys = create_keys(tmp_path / "keys", ["robot"])
    other_server = create_keys(tmp_path / "other", [])["server"]
    curve, plain = start_server(curve_keys=str(tmp_path / "keys")), start_server()
    cases = [  # (server, client options, what the message must name)
        (curve, {"server_key": other_server, "client_key": keys["robot"]}, "the server key is wrong"),
        (curve, {}, "requires CURVE"),
        (plain, {"server_key": keys["server"], "client_key": keys["robot"]}, "plaintext server"),
    ]
    try:
        for srv, options, cause in cases:
            start = time.monotonic()
            with pytest.raises(BridgeError) as err:
                Client(srv.endpoints["control"], timeout=10, **options)
            assert err.value.code == "auth_failed" and cause in err.value.message, err.value.message
            assert time.monotonic() - start < 2, f"{cause}: {time.monotonic() - start:.2f} s"
    finally:
        curve.stop()
        plain.stop()


def test_a_handshake_that_never_completes_fails_after_the_handshake_timeout(tmp_path):
    keys = create_keys(tmp_path / "keys", ["robot"])
    with socket.create_server(("127.0.0.1", 0)) as silent:   # accepts the connection, never answers
        start = time.monotonic()
        with pytest.raises(BridgeError) as err:
            Client(f"tcp://127.0.0.1:{silent.getsockname()[1]}", timeout=10, handshake_timeout=0.5,
                   server_key=keys["server"], client_key=keys["robot"])
        took = time.monotonic() - start
    assert err.value.code == "auth_failed" and "did not complete within 0.5 s" in err.value.message
    assert 0.4 < took < 2, took


# ---------------------------------------------------------------------- fuzzing


WIRE_INT = st.integers(-2**63, 2**64 - 1)  # what MessagePack can carry


def bad_value():
    return st.one_of(st.none(), st.booleans(), WIRE_INT, st.floats(), st.text(max_size=12),
                     st.binary(max_size=12), st.lists(WIRE_INT, max_size=3),
                     st.dictionaries(st.text(max_size=4), WIRE_INT, max_size=2))


def malformed_messages(sid: str, n_actions: int):
    """Multipart messages that must each be answered with an error: none is a valid request."""
    garbage = st.binary(max_size=48).filter(lambda b: not _is_map(b)).map(lambda b: [b])
    no_id = st.fixed_dictionaries({"op": st.sampled_from(sorted(P.OPS))}, optional={
        "id": bad_value().filter(lambda v: P.request_id({"id": v}) is None)})
    bad_action = st.one_of(
        WIRE_INT.filter(lambda a: not 0 <= a < n_actions), st.floats(), st.text(max_size=4), st.booleans(),
        st.lists(st.integers(0, n_actions - 1), min_size=2, max_size=5),
        st.lists(st.lists(st.integers(0, 3), max_size=2), min_size=1, max_size=2),
        st.builds(lambda d, shape: {"dtype": d, "shape": shape, "data": b"\x00" * 3},
                  st.sampled_from(["uint8", "int64", "float32", "complex64", "object"]),
                  st.lists(st.integers(0, 1 << 40), max_size=3)),
    )
    bodies = st.one_of(
        st.fixed_dictionaries({"op": st.text(max_size=20).filter(lambda op: op not in P.OPS)}),
        st.fixed_dictionaries({"op": st.just("hello"), "version": st.text(max_size=6).filter(
            lambda v: not P.VERSION.fullmatch(v))}),
        st.fixed_dictionaries({"op": st.sampled_from(["step", "act"]), "action": bad_action}),
        st.fixed_dictionaries({"op": st.just("reset"), "seed": bad_value().filter(
            lambda v: v is not None and not (type(v) is int and 0 <= v < 2**63))}),
        st.fixed_dictionaries({"op": st.just("set_prompt"), "prompt": bad_value().filter(
            lambda v: not isinstance(v, str))}),
        st.fixed_dictionaries({"op": st.just("stream"), "fps": st.one_of(
            st.floats().filter(lambda f: not 0 <= f <= 1000), st.text(max_size=3))}),
        st.fixed_dictionaries({"op": st.just("reset"), "context_frames": st.builds(
            lambda shape: {"dtype": "uint8", "shape": shape, "data": b"\x01" * 7},
            st.lists(st.integers(0, 9), min_size=1, max_size=4))}),
        st.fixed_dictionaries({"op": st.sampled_from(["step", "close", "set_prompt"]), "session": st.one_of(
            st.text(max_size=40), WIRE_INT, st.just("0" * 32))}),
    )
    with_id = st.tuples(st.integers(0, 2**62), bodies).map(
        lambda pair: [msgpack.packb({"id": pair[0], "session": sid, **pair[1]})])
    return st.one_of(garbage, no_id.map(lambda m: [msgpack.packb(m)]), with_id)


def _is_map(data: bytes) -> bool:
    try:
        return isinstance(msgpack.unpackb(data), dict)
    except Exception:
        return False


def test_fuzzing_with_malformed_messages_leaves_sessions_and_server_unharmed():
    limits = Limits(max_sessions=4, idle_timeout_ms=60_000, max_message_bytes=4 << 20, max_array_bytes=1 << 20)
    srv = start_server(limits=limits)
    address = srv.endpoints["control"]
    reference = streamvideo.load(MODEL)
    reference.reset(seed=9)
    try:
        good = Client(address, timeout=60)
        session = good.open(seed=9)
        assert np.array_equal(session.step(1).frames, reference.step(1).frames)
        n_actions = session.info["action_space"]["n"]
        raw = Raw(address)
        answered = []

        @settings(max_examples=1100, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(malformed_messages(session.id, n_actions))
        def fuzz(frames):
            raw.send(frames)
            reply = raw.reply(timeout=10)
            assert reply["ok"] is False and reply["error"]["code"] in P.ERROR_CODES, (frames, reply)
            assert reply["error"]["message"]
            answered.append(reply["error"]["code"])

        fuzz()
        assert len(answered) >= 1000 and len(set(answered)) >= 5
        # arrays over the limit are answered; frames over MAXMSGSIZE disconnect only that peer
        big = P.encode_array(np.zeros(2 << 20, np.uint8), [])
        reply = raw.call({"op": "step", "session": session.id, "action": {**big, "buffer": 1}},
                         [np.zeros(2 << 20, np.uint8).tobytes()])
        assert reply["error"]["code"] == "too_large"
        raw.send(P.pack({"id": 5, "op": "stats"}, [b"\x00" * (5 << 20)]))
        assert not raw.sock.poll(500)
        # the good client and its session are served exactly as before
        for action in (2, 0, 5):
            assert np.array_equal(session.step(action).frames, reference.step(action).frames)
        assert good.server_stats()["sessions"] == 1
        good.close()
        raw.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- command line


def test_streamvideo_serve_command(tmp_path):
    proc, control, pub = serve_process("--idle-timeout", "5", "--max-sessions", "2")
    try:
        with Client(control, timeout=30) as c:
            assert c.info["pub"] == pub and c.info["limits"]["max_sessions"] == 2
            session = c.open(prompt="a meadow", seed=0)
            assert session.stats()["chunks"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
