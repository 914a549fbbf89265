"""Bridge protocol: pure message, array and chunk codec tests (no sockets, no model)."""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvideo.bridge import protocol as P
from streamvideo.bridge.protocol import BridgeError, Limits
from streamvideo.engine.actions import ActionSpec

pytestmark = pytest.mark.timeout(60)
LIMITS = Limits()


@pytest.mark.parametrize("dtype", sorted(P.DTYPES))
@pytest.mark.parametrize("inline", [True, False])
def test_array_round_trip(dtype, inline):
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    buffers = None if inline else []
    header, out = P.unpack(P.pack({"a": P.encode_array(array, buffers)}, buffers or []), LIMITS)
    back = P.decode_array(header["a"], out, LIMITS)
    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)


@pytest.mark.parametrize("value, code, words", [
    ({"dtype": "object", "shape": [1], "data": b"x"}, "bad_array", "dtype"),
    ({"dtype": "uint8", "shape": [-1], "data": b""}, "bad_array", "shape"),
    ({"dtype": "uint8", "shape": [1] * 9, "data": b"x"}, "bad_array", "at most 8"),
    ({"dtype": "uint8", "shape": [3], "data": b"xy"}, "bad_array", "needs 3"),
    ({"dtype": "uint8", "shape": [1], "data": b"x", "buffer": 1}, "bad_array", "exactly one"),
    ({"dtype": "uint8", "shape": [1], "buffer": 5}, "bad_array", "frame index"),
    ({"dtype": "float64", "shape": [1 << 40], "data": b""}, "too_large", "max_array_bytes"),
    ([1, 2], "bad_array", "map"),
])
def test_bad_arrays_are_refused_with_a_reason(value, code, words):
    with pytest.raises(BridgeError) as err:
        P.decode_array(value, [], LIMITS)
    assert err.value.code == code and words in err.value.message


@pytest.mark.parametrize("encoding", P.ENCODINGS)
def test_chunk_round_trip(encoding):
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([xx * 4, yy * 5, (xx + yy + 10 * t) % 256], -1) for t in range(3)]).astype(np.uint8)
    buffers = []
    header = {"frames": P.encode_chunk(frames, encoding, buffers, quality=95)}
    header, out = P.unpack(P.pack(header, buffers), LIMITS)
    back = P.decode_chunk(header["frames"], out)
    assert back.shape == frames.shape and back.dtype == np.uint8
    error = np.abs(back.astype(int) - frames.astype(int)).mean()
    assert error == 0 if encoding == "raw" else error < 4


def test_requests_are_validated_field_by_field():
    request = P.parse_request({"id": 3, "op": "open", "seed": 5, "prompt": "a meadow", "future": 1}, LIMITS)
    assert (request.id, request.op, request.fields) == (3, "open", {"seed": 5, "prompt": "a meadow"})
    cases = [
        ({"op": "hello", "version": "1.0"}, "bad_message", "'id'"),
        ({"id": -1, "op": "hello"}, "bad_message", "'id'"),
        ({"id": 1, "op": 7}, "bad_message", "'op'"),
        ({"id": 1, "op": "teleport"}, "unknown_op", "teleport"),
        ({"id": 1, "op": "hello"}, "bad_type", "needs field 'version'"),
        ({"id": 1, "op": "hello", "version": "one"}, "bad_type", "MAJOR.MINOR"),
        ({"id": 1, "op": "open", "seed": True}, "bad_type", "'seed' must be an integer"),
        ({"id": 1, "op": "open", "encoding": "png"}, "bad_type", "['raw', 'jpeg']"),
        ({"id": 1, "op": "step", "session": "nope"}, "bad_type", "session id"),
        ({"id": 1, "op": "stream", "session": "a" * 32, "fps": float("nan")}, "bad_type", "'fps'"),
        ({"id": 1, "op": "open", "prompt": "x" * 5000}, "too_large", "4096"),
    ]
    for header, code, words in cases:
        with pytest.raises(BridgeError) as err:
            P.parse_request(header, LIMITS)
        assert err.value.code == code and words in err.value.message, header


def test_actions_decode_then_validate_against_the_space():
    spec = ActionSpec("multi_discrete", sizes=(3, 2))
    assert spec.validate(P.decode_action([2, 1], [], LIMITS)).tolist() == [2, 1]
    buffers = []
    wire = P.encode_array(np.array([1, 0], np.int32), buffers)
    assert spec.validate(P.decode_action(wire, buffers, LIMITS)).tolist() == [1, 0]
    assert P.decode_action(None, [], LIMITS) is None
    for bad, code in [("left", "bad_action"), ([1, "a"], "bad_action"), ([True], "bad_action"),
                      (list(range(2000)), "too_large")]:
        with pytest.raises(BridgeError) as err:
            P.decode_action(bad, [], LIMITS)
        assert err.value.code == code


def test_undecodable_headers_are_bad_messages():
    for frames in ([], [b"\xc1"], [msgpack.packb([1, 2])], [b"\x81\xa1"], [msgpack.packb({1: 2})]):
        with pytest.raises(BridgeError) as err:
            P.unpack(frames, LIMITS)
        assert err.value.code == "bad_message"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.builds(msgpack.packb, st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4))))
def test_any_bytes_either_parse_or_raise_a_bridge_error(data):
    try:
        header, _ = P.unpack([data], LIMITS)
        P.parse_request(header, LIMITS)
    except BridgeError as err:
        assert err.code in P.ERROR_CODES and err.message
