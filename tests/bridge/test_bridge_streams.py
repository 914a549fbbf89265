"""Real-time streams on real loopback sockets (PROTOCOL.md section 4, `stream` and `act`): when a subscription has
reached the server, the first streamed index, turning streaming on while on and off while off, a reset while
streaming (a new episode), the clock of `time`, and an `act` before `stream`."""

import time

import msgpack
import numpy as np
import pytest
from servers import Raw, subscriber, subscribers_become

from streamvideo.bridge import Client, StreamEnded

pytestmark = pytest.mark.timeout(120)


def chunks_until(stream, done, timeout: float = 30.0) -> list:
    """Chunks received until done(chunk) holds for the last one."""
    got = [stream.recv(timeout=timeout)]
    while got[-1] is not None and not done(got[-1]):
        got.append(stream.recv(timeout=timeout))
    assert got[-1] is not None, "the stream stalled"
    return got


def test_the_server_counts_the_subscribers_of_a_topic(server):
    """A client subscribes, then asks `stats` until `subscribers` counts it: then `stream` loses nothing."""
    raw = Raw(server.endpoints["control"])
    opened = raw.call({"op": "open", "seed": 0})
    sid, topic, pub = opened["session"], opened["topic"].encode(), server.endpoints["pub"]
    assert raw.call({"op": "stats", "session": sid})["stats"]["subscribers"] == 0
    wildcard = subscriber(pub, b"")                                     # never applied, never counted
    first, second = subscriber(pub, topic), subscriber(pub, topic)
    assert subscribers_become(raw, sid, 2)
    second.close()                                                      # a closed subscriber withdraws
    assert subscribers_become(raw, sid, 1)
    started = raw.call({"op": "stream", "session": sid, "fps": 0})
    assert started["subscribers"] == 1 and started["next_index"] == 0
    assert first.poll(30_000), "no chunk on the subscribed socket"
    assert msgpack.unpackb(first.recv_multipart()[1])["index"] == 0    # the very first chunk
    raw.call({"op": "close", "session": sid})
    for sock in (wildcard, first):
        sock.close()
    raw.close()


def test_the_first_streamed_chunk_continues_the_lock_step_index(client):
    session = client.open(seed=1)
    assert [session.step(0).index for _ in range(2)] == [0, 1]
    assert session.act(1) == -1                         # act counts published chunks only: none yet
    stream = session.stream(fps=0)                      # the client waits until the server counts it
    first = stream.recv(timeout=30)
    assert (first.index, first.episode) == (2, 0)
    assert session.act(1) >= 2
    stream.close()
    session.close()


def test_stream_on_while_on_changes_the_rate_and_off_while_off_changes_nothing(client):
    session = client.open(seed=2)
    stream = session.stream(fps=0)
    before = stream.recv(timeout=30)
    period = session.frames_per_chunk / 15.0            # 5 chunks a second: 0.2 s apart, where fps=0 made them
    again = client.request("stream", session=session.id, on=True, fps=15.0)[0]     # in about 0.05 s
    assert again["next_index"] > before.index and again["episode"] == 0
    paced = chunks_until(stream, lambda c: c.index >= again["next_index"] + 4)
    paced = [c for c in paced if c.index >= again["next_index"]]   # due one period apart (a late first one shortens)
    assert len(paced) >= 5 and paced[-1].time - paced[0].time >= 0.8 * (len(paced) - 1) * period
    session.stream(on=False)
    with pytest.raises(StreamEnded) as ended:
        chunks_until(stream, lambda c: False)
    assert ended.value.reason == "stopped"
    session.stream(on=False)                            # off while off: ok, and no second end message
    assert stream.recv(timeout=1.0) is None
    assert session.stats()["streaming"] is False
    stream.close()
    session.close()


def test_a_reset_while_streaming_starts_a_new_episode_from_its_next_index(client):
    session = client.open(seed=3)
    stream = session.stream(fps=30.0, hwm=64)          # a queue that loses nothing at 10 chunks a second
    chunks_until(stream, lambda c: c.index >= 2)
    assert session.reset(seed=4) == 0 and session.episode == 1
    after = chunks_until(stream, lambda c: c.episode == 1)
    assert all(c.episode == 0 for c in after[:-1]) and after[-1].index == 0
    assert client.request("act", session=session.id, action=0)[0]["episode"] == 1
    session.stream(on=False)
    with pytest.raises(StreamEnded) as ended:
        chunks_until(stream, lambda c: False)
    assert ended.value.episode == 1
    stream.close()
    session.close()


def test_stream_times_are_unix_times(client):
    session = client.open(seed=0)
    start = time.time()
    stream = session.stream(fps=0)
    chunk = stream.recv(timeout=30)
    assert start <= chunk.time <= time.time()
    stream.close()
    session.close()


def test_an_act_before_stream_sets_the_action_of_the_first_streamed_chunk(zoo):
    """The ModelZoo's start-at-one model (Discrete(3, start=1)) draws other frames for other actions."""
    with Client(zoo.endpoints["control"], timeout=30) as client:
        acted, twin, idle = (client.open(model="start-at-one", seed=5) for _ in range(3))
        expected, noop = twin.step(3), idle.step(None)
        assert not np.array_equal(expected.frames, noop.frames), "the model ignores its actions"
        assert acted.act(3) == -1
        stream = acted.stream(fps=0)
        first = stream.recv(timeout=30)
        assert first.index == 0 and first.batch == 1 and np.array_equal(first.frames, expected.frames)
        stream.close()
        for session in (acted, twin, idle):
            session.close()
