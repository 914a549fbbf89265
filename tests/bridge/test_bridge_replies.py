"""What replies say and which values requests may carry (PROTOCOL.md sections 2.3 and 4), on real loopback sockets:
a session's statistics, the words of a prompt the model does not know, a prompt cut to the text encoder's limit,
integers for float fields, and the 64-bit integers of `hello`."""

import threading
import time

import msgpack
import pytest
from servers import Raw, start_server

from streamvideo.bridge import Client, Limits
from streamvideo.bridge import protocol as P
from streamvideo.bridge.sessions import SharedModels

pytestmark = pytest.mark.timeout(120)
GENERATOR_STATS = {"chunks", "frames", "nfe", "nfe_per_chunk", "first_chunk_seconds", "mean_seconds", "p50_seconds",
                   "p95_seconds", "fps"}
SESSION_STATS = GENERATOR_STATS | {"streaming", "pending", "model", "episode", "subscribers"}


# ---------------------------------------------------------------------- stats


def test_session_stats_name_their_keys_and_a_reset_zeroes_them(client):
    session = client.open(seed=0)
    for action in (0, 1):
        session.step(action)
    stats = session.stats()
    assert set(stats) == SESSION_STATS
    assert (stats["chunks"], stats["frames"], stats["episode"]) == (2, 2 * session.frames_per_chunk, 0)
    assert stats["nfe"] > 0 and stats["fps"] > 0 and stats["streaming"] is False
    assert session.reset(seed=0) == 0
    stats = session.stats()
    assert {key: stats[key] for key in GENERATOR_STATS} == dict.fromkeys(GENERATOR_STATS, 0) and stats["episode"] == 1
    session.close()


class GatedSteps:
    """A server's loader whose generators wait in `step` until the test opens the gate, so that the requests sent
    meanwhile queue behind that step."""

    def __init__(self):
        self.models, self.entered, self.gate = SharedModels(), threading.Event(), threading.Event()

    def __call__(self, name: str, device=None, **settings):
        generator = self.models(name, device=device, **settings)
        step = generator.step

        def gated(action=None):
            self.entered.set()
            assert self.gate.wait(30)
            return step(action)
        generator.step = gated
        return generator


def test_stats_is_refused_busy_when_the_queue_is_full():
    gated = GatedSteps()
    srv = start_server(gated, limits=Limits(max_pending=2))
    try:
        raw = Raw(srv.endpoints["control"])
        sid = raw.call({"op": "open", "seed": 0})["session"]
        raw.send(P.pack({"id": 1, "op": "step", "session": sid}))
        assert gated.entered.wait(30)                     # the server computes step 1 ...
        for rid, op in ((2, "step"), (3, "step"), (4, "stats")):
            raw.send(P.pack({"id": rid, "op": op, "session": sid}))
        time.sleep(0.3)                                   # ... while steps 2, 3 and the stats reach its socket
        gated.gate.set()
        replies = {reply["id"]: reply for reply in (raw.reply() for _ in range(4))}
        assert [replies[rid]["index"] for rid in (1, 2, 3)] == [0, 1, 2]
        assert replies[4]["error"]["code"] == "busy" and "max_pending=2" in replies[4]["error"]["message"]
        assert raw.call({"op": "stats", "session": sid})["stats"]["chunks"] == 3
        raw.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- prompts


def test_prompt_words_outside_the_vocabulary_are_named_in_the_replies(zoo):
    """The ModelZoo's models were trained on "a grassy meadow" and "a sandy desert at night"."""
    raw = Raw(zoo.endpoints["control"])
    opened = raw.call({"op": "open", "model": "box", "prompt": "a grassy meadow with purple dragons"})
    sid = opened["session"]
    assert opened["unknown_words"] == ["with", "purple", "dragons"] and opened["vocabulary_size"] == 7
    reset = raw.call({"op": "reset", "session": sid})                        # keeps the prompt: same words
    assert reset["unknown_words"] == ["with", "purple", "dragons"]
    assert raw.call({"op": "set_prompt", "session": sid, "prompt": "a sandy meadow"})["unknown_words"] == []
    assert raw.call({"op": "reset", "session": sid, "prompt": "Zebra crossing, zebra!"})["unknown_words"] == \
        ["zebra", "crossing"]
    raw.call({"op": "close", "session": sid})
    raw.close()


def test_the_python_client_warns_about_unknown_prompt_words(zoo):
    with Client(zoo.endpoints["control"], timeout=30) as client:
        with pytest.warns(UserWarning, match="'dragons'"):
            session = client.open(model="box", prompt="a meadow of dragons")
        assert session.unknown_words == ["of", "dragons"]
        session.set_prompt("a grassy meadow")
        assert session.unknown_words == []
        session.close()


def test_a_model_without_a_vocabulary_reports_no_unknown_words(server):
    raw = Raw(server.endpoints["control"])
    opened = raw.call({"op": "open", "prompt": "purple dragons"})
    assert opened["vocabulary_size"] == 0 and opened["unknown_words"] == []
    raw.call({"op": "close", "session": opened["session"]})
    raw.close()


def test_a_prompt_cut_to_the_encoders_limit_is_reported_as_the_model_reads_it(server):
    """tiny-random's text encoder reads 16 tokens, its end token included: 15 words of a 40-word prompt."""
    words = [f"word{i}" for i in range(40)]
    raw = Raw(server.endpoints["control"])
    opened = raw.call({"op": "open", "prompt": " ".join(words)})
    assert opened["prompt"] == " ".join(words[:15])
    assert raw.call({"op": "step", "session": opened["session"]})["prompt"] == opened["prompt"]
    raw.call({"op": "close", "session": opened["session"]})
    raw.close()


# ---------------------------------------------------------------------- numbers


def test_float_fields_take_integers_and_integer_fields_refuse_floats(server):
    raw = Raw(server.endpoints["control"])
    assert raw.call({"op": "open", "seed": 1.0})["error"]["code"] == "bad_type"
    sid = raw.call({"op": "open", "seed": 1})["session"]
    assert raw.call({"op": "stream", "session": sid, "fps": 30})["ok"]               # an integer fps
    single = msgpack.packb({"id": 90, "op": "stream", "session": sid, "fps": 7.5}, use_single_float=True)
    raw.send([single])                                                               # a float32 fps
    assert raw.reply()["ok"]
    assert raw.call({"op": "close", "session": sid})["ok"]
    raw.close()


def test_the_largest_ids_and_seeds_travel_as_uint64(server):
    """2^63 - 1 leaves the server as a MessagePack uint64 (0xcf), beyond the 2^53 a JavaScript number holds."""
    raw = Raw(server.endpoints["control"], hello=False)
    raw.send(P.pack({"id": 1, "op": "hello", "version": P.PROTOCOL_VERSION}))
    hello = raw.sock.recv_multipart()[0] if raw.sock.poll(30_000) else pytest.fail("no hello reply")
    for key in ("max_request_id", "max_seed"):
        assert msgpack.packb(key) + b"\xcf" + (2**63 - 1).to_bytes(8, "big") in hello, key
    opened = raw.call({"op": "open", "seed": 2**63 - 1})
    raw.send(P.pack({"id": 2**63 - 1, "op": "close", "session": opened["session"]}))
    assert raw.reply()["id"] == 2**63 - 1
    raw.close()
