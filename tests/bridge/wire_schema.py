"""bridge/protocol.schema.json as the tests hold the wire to it: `conforms` checks one decoded MessagePack header
against one of the schema's definitions, closed (a message may carry no field the schema does not list) and with
MessagePack's types (an integer is never a float, a bin is never a str); `exercise` drives a live endpoint through
every op, checking every request it sends and every reply and stream message it receives."""

import json
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import zmq
from jsonschema import Draft202012Validator, ValidationError, validators
from servers import Raw, subscriber, subscribers_become

from streamvideo.bridge import protocol as P

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "bridge" / "protocol.schema.json").read_text())


def _closed(schema):
    """Every map of the schema closed to the fields it lists (`unevaluatedProperties: false`)."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(value) for key, value in schema.items()}
    if schema.get("type") == "object":
        out["unevaluatedProperties"] = False
    return out


def _msgpack_type(validator, kind, instance, schema):
    if kind == "bin" and not isinstance(instance, bytes):
        yield ValidationError(f"{instance!r} is not a MessagePack bin")


_Validator = validators.extend(
    Draft202012Validator, validators={"x-msgpack": _msgpack_type},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))
_CLOSED = _closed(SCHEMA)
_VALIDATORS = {name: _Validator({"$defs": _CLOSED["$defs"], "$ref": f"#/$defs/{name}"}) for name in SCHEMA["$defs"]}


def conforms(definition: str, message: dict) -> dict:
    """`message` itself when it fits the schema's `definition`; else AssertionError naming each fault."""
    faults = [f"{'.'.join(map(str, e.absolute_path)) or 'header'}: {e.message}"
              for e in _VALIDATORS[definition].iter_errors(message)]
    assert not faults, f"{definition} {message!r}: " + "; ".join(faults)
    return message


class CheckedRaw(Raw):
    """A Raw whose requests, replies and stream messages are checked against the schema, counted by definition."""

    def __init__(self, address: str, pub: str):
        self.checked: Counter = Counter()
        super().__init__(address, hello=False)
        self.pub = pub

    def check(self, definition: str, message: dict) -> dict:
        self.checked[definition] += 1
        return conforms(definition, message)

    def call(self, header: dict, buffers: list = ()) -> dict:
        request = self.check(f"{header['op']}.request", {"id": next(self.ids), **header})
        self.send(P.pack(request, buffers))
        reply = self.reply()
        assert reply["id"] == request["id"]
        return self.check(f"{request['op']}.reply" if reply["ok"] else "error.reply", reply)

    def refused(self, header: dict, code: str, buffers: list = ()) -> dict:
        """Send a request the server must refuse with `code` (unchecked: it need not fit the schema)."""
        self.send(P.pack({"id": next(self.ids), **header}, buffers))
        reply = self.check("error.reply", self.reply())
        assert reply["error"]["code"] == code, reply
        return reply

    def watch(self, topic: str, sid: str) -> zmq.Socket:
        """A subscriber of `topic`, once the server counts it (the `subscribers` of the session's stats)."""
        sock = subscriber(self.pub, topic.encode())
        assert subscribers_become(self, sid, 1), "the subscription never reached the server"
        return sock

    def published(self, sock: zmq.Socket, until_end: bool = False) -> dict:
        """The next stream message's header, checked (a chunk, or with until_end the end message)."""
        while True:
            assert sock.poll(30_000), "no stream message"
            header = msgpack.unpackb(sock.recv_multipart()[1])
            self.check("stream.end" if "end" in header else "stream.chunk", header)
            if "end" in header or not until_end:
                return header


def exercise(raw: CheckedRaw) -> None:
    """Every op with its optional fields, refusals of each kind, and real-time streams ended by `stream` off and
    by `close`: each message checked, and every kind of message met."""
    raw.refused({"op": "open"}, "handshake_required")
    raw.send([b"\xc1"])
    assert raw.check("error.reply", raw.reply())["id"] is None                 # undecodable: id nil
    raw.refused({"op": "hello", "version": "2.0"}, "version_mismatch")
    raw.call({"op": "hello", "version": P.PROTOCOL_VERSION, "client": "schema check"})
    raw.call({"op": "stats"})
    raw.call({"op": "ping"})
    opened = raw.call({"op": "open", "prompt": "a grassy meadow", "seed": 1, "mode": "diagonal",
                       "schedule": "4322222", "encoding": "raw"})
    jpeg = raw.call({"op": "open", "seed": 2, "encoding": "jpeg", "quality": 80})
    sid, n_actions = opened["session"], opened["action_space"]["n"]
    raw.call({"op": "step", "session": sid, "action": 1})
    raw.call({"op": "step", "session": sid, "action": P.encode_array(np.array([2], np.int64))})
    raw.call({"op": "step", "session": jpeg["session"]})
    raw.call({"op": "set_prompt", "session": sid, "prompt": "a sandy desert", "recache": True})
    frames = np.zeros((2, opened["height"], opened["width"], 3), np.uint8)
    buffers: list = []
    raw.call({"op": "reset", "session": sid, "prompt": "a meadow", "seed": 3,
              "context_frames": P.encode_array(frames, buffers)}, buffers)
    raw.call({"op": "stats", "session": sid})
    raw.call({"op": "ping", "sessions": [sid, "0" * 32]})
    for header, code in [({"op": "teleport"}, "unknown_op"), ({"op": "open", "seed": 1.0}, "bad_type"),
                         ({"op": "step", "session": sid, "action": n_actions}, "bad_action"),
                         ({"op": "step", "session": sid, "action": {}}, "bad_array"),
                         ({"op": "open", "prompt": "x" * 5000}, "too_large"),
                         ({"op": "close", "session": "0" * 32}, "unknown_session"),
                         ({"op": "open", "model": "no-such-model"}, "unknown_model")]:
        raw.refused(header, code)

    for session, ended_by in ((opened, "stream"), (jpeg, "close")):
        watcher = raw.watch(session["topic"], session["session"])
        raw.call({"op": "act", "session": session["session"], "action": 1})
        raw.call({"op": "stream", "session": session["session"], "on": True, "fps": 0})
        raw.published(watcher)
        raw.refused({"op": "step", "session": session["session"]}, "bad_state")
        if ended_by == "stream":
            raw.call({"op": "stream", "session": session["session"], "on": False})
        raw.call({"op": "close", "session": session["session"]})
        assert raw.published(watcher, until_end=True)["end"]["reason"] == ("stopped" if ended_by == "stream"
                                                                            else "closed")
        watcher.close()
    kinds = {f"{op}.{kind}" for op in P.OPS for kind in ("request", "reply")} | {"error.reply", "stream.chunk",
                                                                                "stream.end"}
    assert kinds <= set(raw.checked), f"never met: {sorted(kinds - set(raw.checked))}"
