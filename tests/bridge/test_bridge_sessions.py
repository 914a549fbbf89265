"""Bridge 1.1 on real loopback sockets: who can watch and drive a session, end-of-stream messages, and
requests that must be refused without changing anything (PROTOCOL.md sections 1.2, 3, 4)."""

import subprocess
import sys
import time

import msgpack
import numpy as np
import pytest
from servers import LOOPBACK, MODEL, Raw, start_server, subscriber

from streamvideo.bridge import BridgeError, Client, Limits, Server, ServerConfig, StreamEnded
from streamvideo.bridge import protocol as P

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------- who can watch, who can drive


def test_a_spy_subscriber_learns_nothing_it_can_use(server, client):
    """A subscriber to every prefix receives nothing; a leaked stream topic shows frames but drives nothing."""
    every_prefix = [b""] + [bytes([c]) for c in b"0123456789abcdef"]
    spy = subscriber(server.endpoints["pub"], *every_prefix)
    session = client.open(seed=0)
    stream = session.stream(fps=0)
    for _ in range(4):
        assert stream.recv(timeout=30) is not None
    assert not spy.poll(1000), "a wildcard subscriber received a stream message"

    watcher = subscriber(server.endpoints["pub"], session.topic.encode())      # someone who was given the topic
    received = []
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        if watcher.poll(100):
            received.append(watcher.recv_multipart())
    assert received, "a subscriber with the exact topic should see the frames"
    assert all(session.id.encode() not in part for part in received[0]), "the stream leaked the session id"

    raw = Raw(server.endpoints["control"])
    for op in ("step", "close", "reset"):
        reply = raw.call({"op": op, "session": session.topic})
        assert reply["error"]["code"] == "unknown_session"
    stats = raw.call({"op": "stats"})
    assert session.id not in repr(stats) and session.topic not in repr(stats)
    assert stream.recv(timeout=30) is not None                    # the owner's stream goes on
    session.stream(on=False)
    session.close()
    for sock in (spy, watcher):
        sock.close()
    raw.close()


def test_the_session_id_drives_the_session_from_a_new_connection(server, client):
    """Ownership is the secret id: a client that reconnects (new identity) resumes its session with it."""
    session = client.open(seed=3)
    session.step(0)
    with Client(server.endpoints["control"], timeout=30) as reconnected:
        header, _ = reconnected.request("step", session=session.id, action=1)
        assert header["index"] == 1
    assert session.step(0).index == 2
    session.close()


# ---------------------------------------------------------------------- end of stream


@pytest.mark.parametrize("how, reason", [("stop", "stopped"), ("close", "closed")])
def test_subscribers_are_told_why_a_stream_ended(client, how, reason):
    session = client.open(seed=0)
    stream = session.stream(fps=0)
    assert stream.recv(timeout=30) is not None
    session.stream(on=False) if how == "stop" else session.close()
    with pytest.raises(StreamEnded) as ended:
        while stream.recv(timeout=10) is not None:
            pass
    assert ended.value.reason == reason and ended.value.code == "stream_ended"
    stream.close()


def test_an_idle_streaming_session_ends_its_stream_with_the_reason():
    srv = start_server(limits=Limits(idle_timeout_ms=600))
    try:
        # a raw control socket: it never pings, so the session idles out while the stream keeps publishing
        raw = Raw(srv.endpoints["control"])
        opened = raw.call({"op": "open", "seed": 0})
        spy = subscriber(srv.endpoints["pub"], opened["topic"].encode())
        time.sleep(0.3)  # the subscription reaches the server first
        assert raw.call({"op": "stream", "session": opened["session"], "fps": 0})["ok"]
        end = None
        deadline = time.monotonic() + 30
        while end is None and time.monotonic() < deadline:
            if spy.poll(100):
                header = msgpack.unpackb(spy.recv_multipart()[1])
                end = header.get("end")
        assert end is not None and end["reason"] == "idle_timeout"
        assert raw.call({"op": "close", "session": opened["session"]})["error"]["code"] == "unknown_session"
        spy.close()
        raw.close()
    finally:
        srv.stop()


def test_stream_with_nil_on_is_refused(server, client):
    session = client.open(seed=0)
    raw = Raw(server.endpoints["control"])
    reply = raw.call({"op": "stream", "session": session.id, "on": None})
    assert reply["error"]["code"] == "bad_type" and "'on'" in reply["error"]["message"]
    assert session.stats()["streaming"] is False
    raw.close()
    session.close()


# ---------------------------------------------------------------------- refused requests change nothing


@pytest.mark.parametrize("shape", [(0, 64, 64, 3), (2, 32, 32, 3), (2, 64, 64, 4)])
def test_bad_context_frames_are_refused_and_leave_the_session_as_it_was(client, shape):
    session, twin = client.open(seed=5), client.open(seed=5)
    for s in (session, twin):
        s.step(1)
    with pytest.raises(BridgeError) as err:
        session.reset(context_frames=np.zeros(shape, np.uint8))
    assert err.value.code == "bad_array" and str(list(shape)) in err.value.message
    after, expected = session.step(2), twin.step(2)
    assert after.index == expected.index == 1
    assert np.array_equal(after.frames, expected.frames)
    session.close()
    twin.close()


def test_reset_reports_the_index_the_next_step_will_have(client):
    session = client.open(seed=0)
    fpc = session.frames_per_chunk
    assert session.reset(seed=1) == 0
    for n in (1, fpc, fpc + 1):
        context = np.zeros((n, session.height, session.width, 3), np.uint8)
        next_index = session.reset(seed=1, context_frames=context)
        assert next_index == -(-n // fpc) and session.step(0).index == next_index
    session.close()


def test_a_refused_hello_keeps_the_earlier_handshake(server):
    raw = Raw(server.endpoints["control"])
    for version, why in (("2.0", "major"), ("1.0", "topic")):
        reply = raw.call({"op": "hello", "version": version})
        assert reply["error"]["code"] == "version_mismatch" and why in reply["error"]["message"]
        assert raw.call({"op": "stats"})["ok"]
    raw.close()


def test_the_handshake_is_checked_before_the_fields(server):
    raw = Raw(server.endpoints["control"], hello=False)
    reply = raw.call({"op": "set_prompt", "session": "0" * 32})
    assert reply["error"]["code"] == "handshake_required"
    raw.close()


def _header_with(key: bytes, value: bytes, id_first: bool) -> bytes:
    """A raw MessagePack map {id: 41, op: "stats", key: value}, id first or last."""
    pack = msgpack.packb
    items = [pack("op") + pack("stats"), key + value]
    id_item = pack("id") + pack(41)
    items = [id_item, *items] if id_first else [*items, id_item]
    return b"\x83" + b"".join(items)


OVER_LIMIT = {
    "long list": (msgpack.packb("big"), b"\xdd" + (P.MAX_HEADER_LIST + 1).to_bytes(4, "big")
                  + b"\x00" * (P.MAX_HEADER_LIST + 1)),
    "big map": (msgpack.packb("big"), msgpack.packb({str(i): 0 for i in range(P.MAX_HEADER_MAP + 1)})),
    "ext type": (msgpack.packb("ext"), msgpack.packb(msgpack.ExtType(5, b"abc"))),
    "non-string key": (msgpack.packb(7), msgpack.packb(1)),
}


@pytest.mark.parametrize("kind", sorted(OVER_LIMIT))
@pytest.mark.parametrize("id_first", [True, False])
def test_headers_over_the_decoder_limits_are_answered_with_their_id(server, kind, id_first):
    raw = Raw(server.endpoints["control"])
    raw.send([_header_with(*OVER_LIMIT[kind], id_first)])
    reply = raw.reply()
    assert reply["id"] == 41 and reply["error"]["code"] == "bad_message"
    raw.close()


def test_deep_nesting_is_answered_with_the_id_when_it_comes_first(server):
    raw = Raw(server.endpoints["control"])
    nested = b"\x91" * (P.MAX_HEADER_DEPTH + 10) + b"\x00"
    raw.send([_header_with(msgpack.packb("deep"), nested, id_first=True)])
    assert raw.reply()["id"] == 41
    raw.close()


def test_hello_lists_every_limit_a_client_can_hit(client):
    limits = client.info["limits"]
    for key in ("max_name_chars", "max_fps", "max_prompt_chars", "max_context_frames", "max_action_items",
                "max_array_bytes", "max_header_list", "max_header_map", "max_header_depth", "max_request_id",
                "max_seed", "max_pending", "max_sessions_per_ping"):
        assert key in limits, key
    assert limits["max_seed"] == 2**63 - 1 and limits["max_name_chars"] == 256


def test_a_one_element_list_is_a_discrete_action(server, client):
    session, twin = client.open(seed=2), client.open(seed=2)
    raw = Raw(server.endpoints["control"])
    reply = raw.call({"op": "step", "session": session.id, "action": [3]})
    assert reply["ok"], reply
    assert raw.call({"op": "step", "session": session.id, "action": [3, 1]})["error"]["code"] == "bad_action"
    twin_chunk = twin.step(3)
    assert reply["index"] == twin_chunk.index == 0
    raw.close()
    session.close()
    twin.close()


def test_integer_fields_refuse_floats(server):
    raw = Raw(server.endpoints["control"])
    reply = raw.call({"op": "open", "seed": 1.0})
    assert reply["error"]["code"] == "bad_type" and "'seed'" in reply["error"]["message"]
    raw.close()


# ---------------------------------------------------------------------- start-up


def test_an_unknown_model_fails_at_start_up():
    with pytest.raises(ValueError, match="nonexistent"):
        Server(ServerConfig(bind=LOOPBACK, pub=LOOPBACK, models=("nonexistent",))).start()
    proc = subprocess.run([sys.executable, "-m", "streamvideo.apps.cli", "serve", "--bind", LOOPBACK, "--pub", LOOPBACK,
                           "--model", MODEL, "--model", "nonexistent"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "nonexistent" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def test_open_of_a_model_not_served_is_unknown_model(client):
    with pytest.raises(BridgeError) as err:
        client.open(model="default")
    assert err.value.code == "unknown_model" and MODEL in err.value.message


# ---------------------------------------------------------------------- batched sessions


def pipelined_steps(raw: Raw, sessions: list[str], actions: list[int]) -> dict[str, list[dict]]:
    """Send every step of every session at once (so the server finds them queued together), then collect the
    replies: {session: [reply of step 0, 1, ...]} with frames decoded."""
    sent = {}
    for action in actions:
        for sid in sessions:
            rid = next(raw.ids)
            sent[rid] = sid
            raw.send(P.pack({"id": rid, "op": "step", "session": sid, "action": action}))
    replies: dict[str, list[dict]] = {sid: [] for sid in sessions}
    for _ in sent:
        frames = raw.sock.recv_multipart() if raw.sock.poll(60_000) else pytest.fail("no reply")
        header = msgpack.unpackb(frames[0])
        assert header["ok"], header
        header["pixels"] = P.decode_chunk(header["frames"], frames[1:])
        replies[sent[header["id"]]].append(header)
    return replies


def test_a_sessions_frames_do_not_depend_on_who_shared_its_forward_pass(server):
    """Session A (seed 1) stepped in one pass with B, then (a fresh A) with C: same frames, bit for bit, at the
    same batch size; within one level of A stepped alone (a batch of 1 rounds floats differently)."""
    actions = [1, 2, 2, 0, 3, 3, 1, 4]          # 8 chunks: longer than the cache window
    raw = Raw(server.endpoints["control"])
    runs = []
    for partner in ({"seed": 7, "prompt": "sandy desert"}, {"seed": 8}, None):
        a = raw.call({"op": "open", "seed": 1})["session"]
        others = [raw.call({"op": "open", **partner})["session"]] if partner else []
        replies = pipelined_steps(raw, [a, *others], actions)
        runs.append(replies[a])
        for sid in [a, *others]:
            raw.call({"op": "close", "session": sid})
    with_b, with_c, alone = runs
    assert [r["index"] for r in with_b] == [r["index"] for r in alone] == list(range(len(actions)))
    assert all(r["batch"] == 1 for r in alone)
    assert any(r["batch"] == 2 for r in with_b) and any(r["batch"] == 2 for r in with_c), "nothing was batched"
    for b, c, solo in zip(with_b, with_c, alone):
        if b["batch"] == c["batch"]:
            assert np.array_equal(b["pixels"], c["pixels"]), f"chunk {b['index']} depends on the partner"
        for run in (b, c):
            assert np.abs(run["pixels"].astype(int) - solo["pixels"].astype(int)).max() <= 1
    raw.close()


def test_max_batch_one_steps_sessions_one_at_a_time():
    srv = start_server(max_batch=1)
    try:
        raw = Raw(srv.endpoints["control"])
        sessions = [raw.call({"op": "open", "seed": s})["session"] for s in (1, 2)]
        replies = pipelined_steps(raw, sessions, [0, 1])
        assert all(r["batch"] == 1 for rs in replies.values() for r in rs)
        raw.close()
    finally:
        srv.stop()


def test_stats_of_a_session_waits_behind_its_queued_steps(server):
    raw = Raw(server.endpoints["control"])
    sid = raw.call({"op": "open", "seed": 0})["session"]
    ids = [next(raw.ids) for _ in range(4)]
    for rid in ids[:3]:
        raw.send(P.pack({"id": rid, "op": "step", "session": sid}))
    raw.send(P.pack({"id": ids[3], "op": "stats", "session": sid}))
    replies = [msgpack.unpackb(raw.sock.recv_multipart()[0]) for _ in ids if raw.sock.poll(60_000)]
    assert [r["id"] for r in replies] == ids                      # answered in request order
    assert replies[3]["stats"]["chunks"] == 3 and replies[3]["stats"]["pending"] == 0
    raw.close()


def test_open_and_reset_without_a_seed_start_from_a_new_random_state(client):
    first, second = client.open(), client.open()
    assert not np.array_equal(first.step(0).frames, second.step(0).frames)
    first.reset()
    again = first.step(0).frames
    first.reset()
    assert not np.array_equal(again, first.step(0).frames)
    first.close()
    second.close()
