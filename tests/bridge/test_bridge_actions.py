"""Actions on the wire (PROTOCOL.md section 2.1a), against a live server of models on every kind of action space:
which values and dtypes each space takes, the row-major layout of a many-dimensional space, Discrete values
counted from `start`, and which error a wrongly typed action gets."""

import numpy as np
import pytest
from servers import ModelZoo, Raw

from streamvideo.bridge import protocol as P

pytestmark = pytest.mark.timeout(120)
INTEGER_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


@pytest.fixture
def raw(zoo):
    r = Raw(zoo.endpoints["control"])
    yield r
    for sid in zoo.sessions.copy():
        assert r.call({"op": "close", "session": sid})["ok"]
    r.close()


def open_sessions(raw: Raw, model: str, count: int = 1) -> list[str]:
    """`count` sessions of `model` with the same seed: the same actions give them the same frames."""
    return [raw.call({"op": "open", "model": model, "seed": 3})["session"] for _ in range(count)]


def step(raw: Raw, sid: str, action, buffers: list = ()) -> dict:
    reply = raw.call({"op": "step", "session": sid, "action": action}, buffers)
    if reply["ok"]:
        reply["pixels"] = np.frombuffer(raw.last_buffers[0], np.uint8)
    return reply


def array_map(values, dtype: str) -> dict:
    return P.encode_array(np.asarray(values, dtype))


def test_the_open_reply_describes_the_space_under_both_names(raw):
    for model, spec in ModelZoo.SPACES.items():
        space = raw.call({"op": "open", "model": model})["action_space"]
        assert space["repr"] == space["describe"] == spec.describe(), model
        assert space["kind"] == spec.kind


def test_a_discrete_space_takes_its_gymnasium_values_counted_from_start(raw):
    """Discrete(3, start=1) takes 1, 2, 3 as they are, in any integer dtype; 0 and 4 are outside."""
    (sid,) = open_sessions(raw, "start-at-one")
    for action in (1, 3, [2], *(array_map(3, dtype) for dtype in INTEGER_DTYPES)):
        assert step(raw, sid, action)["ok"], action
    for action in (0, 4, [0]):
        error = step(raw, sid, action)["error"]
        assert error["code"] == "bad_action" and "Discrete(3, start=1)" in error["message"], action


def test_a_many_dimensional_space_takes_its_values_flat_in_row_major_order(raw):
    """MultiBinary((2, 3)): a flat list of 6, an array of shape [6] or [2, 3] are one action, read row by row."""
    values = [[1, 1, 0], [0, 0, 0]]
    forms = [sum(values, []), array_map(sum(values, []), "int64"), array_map(values, "uint8")]
    sessions = open_sessions(raw, "multi-binary", len(forms) + 1)
    frames = [step(raw, sid, form)["pixels"] for sid, form in zip(sessions, forms)]
    column_major = np.asarray(sum(values, [])).reshape(2, 3, order="F").tolist()
    other = step(raw, sessions[-1], sum(column_major, []))["pixels"]
    assert all(np.array_equal(frames[0], f) for f in frames[1:])
    assert not np.array_equal(frames[0], other), "the model does not tell the two layouts apart"


def test_integer_spaces_take_only_integers(raw):
    (sid,) = open_sessions(raw, "multi-binary")
    for values in ([1, 0, 1, 0, 1, 2], [1, 0, 1]):
        assert step(raw, sid, values)["error"]["code"] == "bad_action"
    for dtype in ("float32", "float64", "bool"):
        error = step(raw, sid, array_map(np.ones((2, 3)), dtype))["error"]
        assert error["code"] == "bad_action" and dtype in error["message"] and "integers" in error["message"]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32"])
def test_a_box_takes_any_numeric_dtype_as_float32(raw, dtype):
    """Box([-2, 0], [2, 1]): values in its own bounds, from an array of any integer or float dtype, or a list."""
    first, second = open_sessions(raw, "box", 2)
    values = [1.0, 0.0] if dtype == "int32" else [-1.5, 0.25]
    assert np.array_equal(step(raw, first, array_map(values, dtype))["pixels"], step(raw, second, values)["pixels"])
    error = step(raw, first, [3.0, 0.5])["error"]   # outside low / high
    assert error["code"] == "bad_action" and "Box" in error["message"]
    assert step(raw, first, array_map([True, False], "bool"))["error"]["code"] == "bad_action"


def test_a_float_for_a_discrete_action_is_refused_for_its_type(raw):
    (sid,) = open_sessions(raw, "start-at-one")
    error = step(raw, sid, 2.0)["error"]
    assert error["code"] == "bad_action" and "float64" in error["message"] and "integers" in error["message"]


@pytest.mark.parametrize("action, code", [(True, "bad_action"), ("1", "bad_action"), (b"\x01", "bad_action"),
                                          ([True], "bad_action"), ({}, "bad_array"),
                                          ({"dtype": "int64", "shape": [1]}, "bad_array")])
def test_which_error_a_wrongly_typed_action_gets(raw, action, code):
    """A value of none of the wire forms is bad_action; every map is read as an array map, so a malformed one is
    bad_array. Either way the session is unharmed."""
    (sid,) = open_sessions(raw, "start-at-one")
    reply = step(raw, sid, action)
    assert reply["error"]["code"] == code and reply["error"]["message"]
    assert step(raw, sid, 1)["index"] == 0
