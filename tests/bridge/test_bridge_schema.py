"""bridge/protocol.schema.json against the server and PROTOCOL.md, so that the spec, its schema and the server cannot
drift apart: the schema names exactly the ops, fields, error codes, end reasons and limits the server knows; real
replies and stream messages of a live server fit it, closed (no field it does not list); and every field the schema
marks as new in 1.2 is in the changelog."""

import re
import time
from pathlib import Path

import msgpack
import pytest
from servers import start_server
from wire_schema import SCHEMA, CheckedRaw, conforms, exercise

from streamvideo.bridge import Limits
from streamvideo.bridge import protocol as P

pytestmark = pytest.mark.timeout(120)
DEFS = SCHEMA["$defs"]
SPEC = (Path(__file__).resolve().parents[2] / "bridge" / "PROTOCOL.md").read_text()


def spec_section(heading: str) -> str:
    """PROTOCOL.md from the line `heading` (e.g. "### 3.1 Error codes") to the next heading of its level or above."""
    start = re.search(rf"^{re.escape(heading)}$", SPEC, flags=re.M).start()
    level = len(heading) - len(heading.lstrip("#"))
    end = re.search(rf"^#{{1,{level}}} ", SPEC[start + len(heading):], flags=re.M)
    return SPEC[start:start + len(heading) + end.start()] if end else SPEC[start:]


def table_codes(section: str) -> list[str]:
    """The codes in the first column of the markdown tables of a section."""
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_the_schema_names_the_ops_and_fields_the_server_checks():
    assert {name.split(".")[0] for name in DEFS if name.endswith(".request")} == set(P.OPS)
    assert {name.split(".")[0] for name in DEFS if name.endswith(".reply")} == {*P.OPS, "error"}
    for op, fields in P.OPS.items():
        request = DEFS[f"{op}.request"]
        assert set(request["properties"]) == {"id", "op", *fields}, op
        assert set(request["required"]) == {"id", "op", *(name for name, (_, required) in fields.items() if required)}


def test_the_schema_spec_and_server_agree_on_codes_reasons_limits_and_version():
    assert DEFS["error"]["properties"]["code"]["enum"] == list(P.ERROR_CODES)
    assert table_codes(spec_section("### 3.1 Error codes")) == [*P.ERROR_CODES, *P.CLIENT_ERROR_CODES, "bad_reply"]
    reasons = DEFS["stream.end"]["properties"]["end"]["properties"]["reason"]["enum"]
    assert reasons == list(P.END_REASONS)
    assert all(f"`{reason}`" in spec_section("### `stream` — real-time mode on/off") for reason in reasons)
    assert set(DEFS["limits"]["properties"]) == set(Limits().as_dict())
    assert SCHEMA["x-protocol-version"] == P.PROTOCOL_VERSION
    assert SPEC.startswith(f"# streamvideo bridge protocol, version {P.PROTOCOL_VERSION}\n")


def test_every_field_new_in_1_2_is_in_the_changelog():
    changelog = spec_section("### 1.2")
    new = {name for definition in DEFS.values() for name, field in definition.get("properties", {}).items()
           if field.get("x-since") == "1.2" or DEFS.get(field.get("$ref", "").split("/")[-1], {}).get("x-since")}
    assert new and all(f"`{name}`" in changelog for name in new), sorted(new - set(re.findall(r"`(\w+)`", changelog)))


def test_the_schema_refuses_what_the_server_refuses():
    """A check of the checker: the closed schema refuses a float for an integer, a str for a bin, an unlisted field."""
    chunk = {"time": 1.0, "index": 0, "episode": 0, "nfe": 2, "seconds": 0.1, "prompt": "", "batch": 1,
             "frames": {"encoding": "raw", "shape": [3, 8, 8, 3], "dtype": "uint8", "buffer": 1}}
    conforms("stream.chunk", chunk)
    for broken in ({**chunk, "index": 0.0}, {**chunk, "session": "0" * 32}, {**chunk, "frames": {}}):
        with pytest.raises(AssertionError):
            conforms("stream.chunk", broken)
    array = {"dtype": "uint8", "shape": [1], "data": b"\x00"}
    conforms("array", array)
    with pytest.raises(AssertionError):
        conforms("array", {**array, "data": "\x00"})


def test_a_live_servers_messages_fit_the_schema(server):
    raw = CheckedRaw(server.endpoints["control"], server.endpoints["pub"])
    exercise(raw)
    raw.close()


def test_an_idle_timeout_ends_a_stream_with_a_message_that_fits_the_schema():
    srv = start_server(limits=Limits(idle_timeout_ms=500))
    try:
        raw = CheckedRaw(srv.endpoints["control"], srv.endpoints["pub"])
        raw.call({"op": "hello", "version": P.PROTOCOL_VERSION})
        opened = raw.call({"op": "open", "seed": 0})
        watcher = raw.watch(opened["topic"], opened["session"])
        raw.call({"op": "stream", "session": opened["session"], "fps": 0})
        started = time.monotonic()
        end = raw.published(watcher, until_end=True)   # nobody names the session again
        assert end["end"]["reason"] == "idle_timeout" and time.monotonic() - started < 10
        watcher.close()
        raw.close()
    finally:
        srv.stop()


def test_stream_messages_are_msgpack_maps_under_the_topic(server):
    """The frame layout around the header (section 1.1): [topic, header, buffers], the header one map."""
    raw = CheckedRaw(server.endpoints["control"], server.endpoints["pub"])
    raw.call({"op": "hello", "version": P.PROTOCOL_VERSION})
    opened = raw.call({"op": "open", "seed": 0})
    watcher = raw.watch(opened["topic"], opened["session"])
    raw.call({"op": "stream", "session": opened["session"], "fps": 0})
    assert watcher.poll(30_000)
    topic, header, *buffers = watcher.recv_multipart()
    assert topic == opened["topic"].encode() and len(buffers) == 1
    conforms("stream.chunk", msgpack.unpackb(header))
    raw.call({"op": "close", "session": opened["session"]})
    watcher.close()
    raw.close()
