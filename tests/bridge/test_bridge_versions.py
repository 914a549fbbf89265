"""The version policy (PROTOCOL.md section 7): a minor version never breaks a client of an earlier minor. A client
that speaks only 1.1, as 1.1's spec describes it, runs every op against this server and finds every field it
reads, with its 1.1 type and meaning."""

import msgpack
import pytest
from servers import Raw, subscriber

from streamvideo.bridge import protocol as P

pytestmark = pytest.mark.timeout(120)

number, integer, text = (int, float), int, str
# what a 1.1 client reads of each message (the 1.1 spec), frozen here: 1.2 may add to these, never take away
V1_1 = {
    "hello": {"version": text, "server": text, "models": list, "encodings": list, "pub": text, "heartbeat_ms": integer,
              "limits": dict},
    "open": {"session": text, "topic": text, "model": text, "frames_per_chunk": integer, "height": integer,
             "width": integer, "fps": number, "action_space": dict, "encoding": text},
    "action_space": {"kind": text, "n": integer, "sizes": list, "dim": integer, "describe": text, "repr": text,
                     "start": integer, "meanings": list},
    "step": {"index": integer, "nfe": integer, "seconds": number, "prompt": text, "batch": integer, "frames": dict},
    "reset": {"next_index": integer},
    "stats": {"chunks": integer, "frames": integer, "nfe": integer, "mean_seconds": number, "p95_seconds": number,
              "fps": number, "streaming": bool, "pending": integer, "model": text},
    "stream": {"topic": text, "pub": text},
    "act": {"index": integer},
    "ping": {"time": number, "unknown": list},
    "chunk": {"index": integer, "nfe": integer, "seconds": number, "time": number, "prompt": text, "batch": integer,
              "frames": dict},
    "end": {"index": integer, "time": number, "end": dict},
}


def reads(kind: str, message: dict) -> dict:
    """`message`, once it holds every field a 1.1 client reads for `kind`, with its 1.1 type."""
    for name, kinds in V1_1[kind].items():
        value = message.get(name)
        typed = isinstance(value, bool) if kinds is bool else isinstance(value, kinds) and not isinstance(value, bool)
        assert name in message and typed, (kind, name, value)
    return message


class Client11(Raw):
    """A bare 1.1 client: says hello with 1.1, sends only 1.1 fields, reads only 1.1 fields."""

    def __init__(self, address: str):
        super().__init__(address, hello=False)
        self.hello = reads("hello", self.ok({"op": "hello", "version": "1.1", "client": "a 1.1 client"}))

    def ok(self, header: dict, buffers: list = ()) -> dict:
        reply = self.call(header, buffers)
        assert reply["ok"], reply
        return reply

    def chunk(self, sock) -> dict:
        assert sock.poll(30_000), "no stream message"
        header = msgpack.unpackb(sock.recv_multipart()[1])
        return reads("end" if "end" in header else "chunk", header)


def test_a_1_1_client_is_served_as_by_a_1_1_server(server):
    client = Client11(server.endpoints["control"])
    assert client.hello["version"] == P.PROTOCOL_VERSION and client.hello["pub"] == server.endpoints["pub"]
    opened = reads("open", client.ok({"op": "open", "prompt": "a grassy meadow", "seed": 7}))
    space = reads("action_space", opened["action_space"])
    sid = opened["session"]
    first = reads("step", client.ok({"op": "step", "session": sid, "action": 1}))
    assert first["index"] == 0 and first["frames"]["shape"][0] == opened["frames_per_chunk"]
    assert client.ok({"op": "set_prompt", "session": sid, "prompt": "a sandy desert"})["ok"]
    assert reads("step", client.ok({"op": "step", "session": sid, "action": [2]}))["prompt"] == "a sandy desert"
    assert reads("reset", client.ok({"op": "reset", "session": sid, "seed": 7}))["next_index"] == 0
    assert reads("stats", client.ok({"op": "stats", "session": sid})["stats"])["chunks"] == 0
    assert reads("ping", client.ok({"op": "ping", "sessions": [sid]}))["unknown"] == []
    for action, code in ((space["n"], "bad_action"), (True, "bad_action"), ({}, "bad_array")):   # 1.1's codes
        assert client.call({"op": "step", "session": sid, "action": action})["error"]["code"] == code

    # real time, as a 1.1 client does it: subscribe to the topic first, then stream
    sock = subscriber(client.hello["pub"], opened["topic"].encode())
    assert reads("act", client.ok({"op": "act", "session": sid, "action": 3}))["index"] == -1
    assert reads("stream", client.ok({"op": "stream", "session": sid, "fps": 30}))["topic"] == opened["topic"]
    chunk = client.chunk(sock)
    while chunk["index"] < 2:
        chunk = client.chunk(sock)
    assert reads("act", client.ok({"op": "act", "session": sid, "action": 0}))["index"] >= 2
    assert client.ok({"op": "reset", "session": sid})["next_index"] == 0     # the stream goes on from 0
    while chunk["index"] >= 2:
        chunk = client.chunk(sock)
    assert client.ok({"op": "stream", "session": sid, "on": False})
    while "end" not in chunk:
        chunk = client.chunk(sock)
    assert chunk["end"]["reason"] == "stopped"
    assert client.ok({"op": "close", "session": sid})
    sock.close()
    client.close()

