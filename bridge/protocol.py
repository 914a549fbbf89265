"""Bridge protocol v1.2 (PROTOCOL.md; every message's shape in protocol.schema.json): message framing, request
validation, arrays, chunks, errors.

Pure functions over bytes and Python values; no sockets here. Both the server and the client use it.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import asdict, dataclass

import msgpack
import numpy as np

PROTOCOL_VERSION = "1.2"
OLDEST_MINOR = 1           # 1.0 clients subscribe to the session id, which 1.1 never publishes: refused at hello
SESSION_ID = re.compile(r"[0-9a-f]{32}")
VERSION = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}")
MAX_REQUEST_ID = 2**63
MAX_SEED = 2**63 - 1
ENCODINGS = ("raw", "jpeg")
DTYPES = frozenset({"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32",
                    "uint64", "int64", "float16", "float32", "float64"})
MAX_DIMS = 8
MAX_ACTION_ITEMS = 1024
MAX_SESSIONS_PER_PING = 64
MAX_NAME_CHARS = 256       # client, model, mode, schedule
MAX_FPS = 1000.0
# MessagePack decoder limits on the header (arrays travel in buffers, not in the header)
MAX_HEADER_LIST = 1 << 16
MAX_HEADER_MAP = 1024
MAX_HEADER_DEPTH = 1024    # msgpack-python's fixed parser stack

ERROR_CODES = ("bad_message", "unknown_op", "bad_type", "bad_action", "bad_array", "too_large",
               "version_mismatch", "handshake_required", "unknown_session", "unknown_model",
               "server_full", "busy", "bad_state", "internal", "worker_lost")
END_REASONS = ("stopped", "closed", "idle_timeout", "error", "worker_lost")  # why a real-time stream ended
CLIENT_ERROR_CODES = ("timeout", "auth_failed", "stream_ended")  # raised by clients, never sent by a server


class BridgeError(Exception):
    """An error with a protocol code; servers send it as `{code, message}`, clients raise it.

    Client-side codes (CLIENT_ERROR_CODES): `timeout` (no reply in time), `auth_failed` (the ZMTP handshake failed:
    a key refused, a wrong server key, plaintext against CURVE), `stream_ended` (the server ended a stream).
    """

    def __init__(self, code: str, message: str, request_id=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id   # the id of a request whose header failed to decode, when readable


@dataclass(frozen=True)
class Limits:
    max_sessions: int = 8
    idle_timeout_ms: int = 60_000
    max_message_bytes: int = 64 << 20   # ZMQ MAXMSGSIZE: larger frames disconnect the peer
    max_array_bytes: int = 32 << 20     # larger arrays are answered with too_large
    max_pending: int = 8                # queued requests per session
    max_prompt_chars: int = 4096
    max_context_frames: int = 1024      # frames a reset may carry
    stream_hwm: int = 2                 # PUB high-water mark, in messages per subscriber
    stream_sndbuf: int = 256 << 10      # kernel send buffer per subscriber (bounds stale frames queued)

    def as_dict(self) -> dict:
        """Every limit a client can hit: this server's settings and the protocol's fixed bounds."""
        return {**asdict(self), "max_name_chars": MAX_NAME_CHARS, "max_fps": MAX_FPS,
                "max_action_items": MAX_ACTION_ITEMS, "max_array_dims": MAX_DIMS,
                "max_sessions_per_ping": MAX_SESSIONS_PER_PING, "max_header_list": MAX_HEADER_LIST,
                "max_header_map": MAX_HEADER_MAP, "max_header_depth": MAX_HEADER_DEPTH,
                "max_request_id": MAX_REQUEST_ID - 1, "max_seed": MAX_SEED}


# ----------------------------------------------------------------------------- framing

def pack(header: dict, buffers: list | tuple = ()) -> list:
    """Header map + raw buffers -> multipart frames."""
    return [msgpack.packb(header, use_bin_type=True, default=_plain)] + list(buffers)


def unpack(frames: list, limits: Limits) -> tuple[dict, list]:
    """Multipart frames -> (header map, buffers). Raises BridgeError(bad_message)."""
    if not frames:
        raise BridgeError("bad_message", "empty message: expected [header, buffers...]")
    cap = limits.max_array_bytes
    data = bytes(frames[0])
    try:
        header = msgpack.unpackb(data, raw=False, strict_map_key=True, max_str_len=cap, max_bin_len=cap,
                                 max_array_len=MAX_HEADER_LIST, max_map_len=MAX_HEADER_MAP, max_ext_len=0)
    except Exception as err:  # msgpack raises many types (ValueError, ExtraData, StackError, ...)
        raise BridgeError("bad_message", f"header is not valid MessagePack within the decoder limits "
                                         f"(hello.limits max_header_*): {type(err).__name__}: {err}",
                          request_id=salvage_id(data)) from None
    if not isinstance(header, dict):
        raise BridgeError("bad_message", f"header must be a MessagePack map, got {type(header).__name__}")
    return header, list(frames[1:])


def salvage_id(data: bytes):
    """The `id` of a header the strict decoder refused (too big, too deep, ext types, odd keys), so the error
    reply can still carry it; None when no valid id can be read before the fault."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key == "id":
                return request_id({"id": unpacker.unpack()})
            unpacker.skip()
    except Exception:  # the fault itself, before any id
        pass
    return None


def _plain(value):
    """msgpack fallback: numpy scalars/arrays and tuples -> plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def ok(request_id, **fields) -> dict:
    return {"id": request_id, "ok": True, **fields}


def error(request_id, code: str, message: str) -> dict:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


# ----------------------------------------------------------------------------- arrays

def encode_array(array: np.ndarray, buffers: list | None = None) -> dict:
    """Array -> map; inline `data`, or appended to `buffers` and referenced by index when given."""
    array = np.ascontiguousarray(array)
    if array.dtype.name not in DTYPES:
        raise BridgeError("bad_array", f"dtype {array.dtype.name} is not one of {sorted(DTYPES)}")
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    out = {"dtype": array.dtype.name, "shape": list(array.shape)}
    if buffers is None:
        out["data"] = array.tobytes()
    else:
        buffers.append(memoryview(array).cast("B") if array.size else b"")  # memoryview cannot cast empty shapes
        out["buffer"] = len(buffers)
    return out


def decode_array(value, buffers: list, limits: Limits, what: str = "array") -> np.ndarray:
    """Array map -> read-only numpy array. Raises BridgeError(bad_array | too_large)."""
    if not isinstance(value, dict) or "dtype" not in value or "shape" not in value:
        raise BridgeError("bad_array", f"{what} must be a map {{dtype, shape, data | buffer}}")
    dtype, shape = value["dtype"], value["shape"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise BridgeError("bad_array", f"{what}.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BridgeError("bad_array", f"{what}.shape must be a list of at most {MAX_DIMS} "
                                       f"non-negative integers, got {shape!r}")
    itemsize = np.dtype(dtype).itemsize
    nbytes = math.prod(shape) * itemsize
    if nbytes > limits.max_array_bytes:
        raise BridgeError("too_large", f"{what} of shape {shape} ({nbytes} bytes) exceeds "
                                       f"max_array_bytes={limits.max_array_bytes}")
    data = _array_bytes(value, buffers, what)
    if len(data) != nbytes:
        raise BridgeError("bad_array", f"{what} holds {len(data)} bytes, but {dtype} {shape} needs {nbytes}")
    return np.frombuffer(data, np.dtype(dtype).newbyteorder("<")).reshape(shape)


def _array_bytes(value: dict, buffers: list, what: str):
    if ("data" in value) == ("buffer" in value):
        raise BridgeError("bad_array", f"{what} needs exactly one of data (bin) or buffer (frame index)")
    if "data" in value:
        if not isinstance(value["data"], bytes):
            raise BridgeError("bad_array", f"{what}.data must be bin, got {type(value['data']).__name__}")
        return value["data"]
    index = value["buffer"]
    if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= len(buffers):
        raise BridgeError("bad_array", f"{what}.buffer must be a frame index in 1..{len(buffers)}, got {index!r}")
    return memoryview(buffers[index - 1]).cast("B")


# ----------------------------------------------------------------------------- video chunks

def encode_chunk(frames: np.ndarray, encoding: str, buffers: list, quality: int = 85) -> dict:
    """uint8 [T,H,W,3] -> chunk map; pixel data appended to `buffers` (raw: one frame, jpeg: one per image)."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    out = {"encoding": encoding, "dtype": "uint8", "shape": list(frames.shape), "buffer": len(buffers) + 1}
    if encoding == "raw":
        buffers.append(memoryview(frames).cast("B"))
        return out
    from PIL import Image
    for frame in frames:
        stream = io.BytesIO()
        Image.fromarray(frame).save(stream, "JPEG", quality=quality)
        buffers.append(stream.getvalue())
    out["count"] = len(frames)
    return out


def decode_chunk(value: dict, buffers: list) -> np.ndarray:
    """Chunk map -> uint8 [T,H,W,3] (raw: a read-only view on the received frame)."""
    shape, encoding, first = value["shape"], value["encoding"], value["buffer"]
    if encoding == "raw":
        return np.frombuffer(buffers[first - 1], np.uint8).reshape(shape)
    if encoding != "jpeg":
        raise BridgeError("bad_message", f"unknown frame encoding {encoding!r}, expected one of {ENCODINGS}")
    from PIL import Image
    images = [np.asarray(Image.open(io.BytesIO(bytes(buffers[first - 1 + t]))).convert("RGB"))
              for t in range(value["count"])]
    return np.stack(images).reshape(shape)


# ----------------------------------------------------------------------------- requests

@dataclass
class Request:
    id: int
    op: str
    fields: dict  # validated op fields (absent optional fields are left out)


def _kind(value) -> str:
    return "nil" if value is None else type(value).__name__


def _shown(value) -> str:
    """A value as an error message quotes it: its repr, cut to 60 characters."""
    return repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."


def _bad(name, expected, value) -> BridgeError:
    return BridgeError("bad_type", f"field {name!r} must be {expected}, got {_kind(value)} {_shown(value)}")


def _string(max_chars: int | None = None, choices: tuple | None = None):
    def check(name, value, limits):
        if not isinstance(value, str):
            raise _bad(name, "a string", value)
        cap = max_chars or limits.max_prompt_chars
        if len(value) > cap:
            raise BridgeError("too_large", f"field {name!r} has {len(value)} characters, the limit is {cap}")
        if choices and value not in choices:
            raise _bad(name, f"one of {list(choices)}", value)
        return value
    return check


def _integer(lo: int, hi: int):
    def check(name, value, limits):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise _bad(name, f"an integer in [{lo}, {hi}]", value)
        return value
    return check


def _number(lo: float, hi: float):
    def check(name, value, limits):
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok_type or not math.isfinite(value) or not lo <= value <= hi:
            raise _bad(name, f"a number in [{lo}, {hi}]", value)
        return float(value)
    return check


def _boolean(name, value, limits):
    if not isinstance(value, bool):
        raise _bad(name, "true or false", value)
    return value


def _session(name, value, limits):
    if not isinstance(value, str) or not SESSION_ID.fullmatch(value):
        raise _bad(name, "a session id (32 lowercase hex characters, from open)", value)
    return value


def _sessions(name, value, limits):
    if not isinstance(value, list) or len(value) > MAX_SESSIONS_PER_PING:
        raise _bad(name, f"a list of at most {MAX_SESSIONS_PER_PING} session ids", value)
    return [_session(f"{name}[{i}]", v, limits) for i, v in enumerate(value)]


def _version(name, value, limits):
    if not isinstance(value, str) or not VERSION.fullmatch(value):
        raise _bad(name, 'a version string "MAJOR.MINOR"', value)
    return value


def _raw(name, value, limits):
    """A value decoded later, once the buffers are known (actions, arrays)."""
    return value


_SEED = _integer(0, MAX_SEED)
_PROMPT = _string()
_NAME = _string(max_chars=MAX_NAME_CHARS)

# op -> {field: (checker, required)}
OPS = {
    "hello": {"version": (_version, True), "client": (_NAME, False)},
    "open": {"model": (_NAME, False), "prompt": (_PROMPT, False), "seed": (_SEED, False),
             "mode": (_NAME, False), "schedule": (_NAME, False),
             "encoding": (_string(16, ENCODINGS), False), "quality": (_integer(1, 95), False),
             "start_frames": (_boolean, False)},
    "reset": {"session": (_session, True), "prompt": (_PROMPT, False), "seed": (_SEED, False),
              "context_frames": (_raw, False), "start_frames": (_boolean, False)},
    "step": {"session": (_session, True), "action": (_raw, False)},
    "set_prompt": {"session": (_session, True), "prompt": (_PROMPT, True), "recache": (_boolean, False)},
    "stats": {"session": (_session, False)},
    "close": {"session": (_session, True)},
    "ping": {"sessions": (_sessions, False)},
    "stream": {"session": (_session, True), "on": (_boolean, False), "fps": (_number(0.0, MAX_FPS), False)},
    "act": {"session": (_session, True), "action": (_raw, False)},
}


def request_id(header: dict):
    """The request's id if valid, else None (the error reply then carries id nil)."""
    rid = header.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < MAX_REQUEST_ID:
        return rid
    return None


# fields where nil is a value (the model's no-op action); elsewhere nil is refused: leave a field out instead
NIL_MEANS_DEFAULT = frozenset({"action"})


def parse_op(header: dict) -> tuple[int, str]:
    """(id, op) of a request header. Raises BridgeError(bad_message | unknown_op)."""
    rid = request_id(header)
    if rid is None:
        shown = repr(header.get("id"))[:40]
        raise BridgeError("bad_message", f"field 'id' must be an integer in [0, 2^63), got {shown}")
    op = header.get("op")
    if not isinstance(op, str):
        raise BridgeError("bad_message", f"field 'op' must be a string, got {_kind(op)}")
    if op not in OPS:
        raise BridgeError("unknown_op", f"unknown op {op[:40]!r}; expected one of {sorted(OPS)}")
    return rid, op


def parse_fields(rid: int, op: str, header: dict, limits: Limits) -> Request:
    """Validate the op's fields against OPS. Raises BridgeError naming the bad field."""
    fields = {}
    for name, (check, required) in OPS[op].items():
        if name not in header or (header[name] is None and name in NIL_MEANS_DEFAULT):
            if required:
                raise BridgeError("bad_type", f"op {op!r} needs field {name!r}")
            continue
        if header[name] is None:
            raise BridgeError("bad_type", f"field {name!r} is nil; leave it out to use its default")
        fields[name] = check(name, header[name], limits)
    return Request(rid, op, fields)


def parse_request(header: dict, limits: Limits) -> Request:
    """parse_op, then parse_fields."""
    return parse_fields(*parse_op(header), header, limits)


def decode_action(value, buffers: list, limits: Limits, spec=None):
    """Wire action (nil | integer | flat list of numbers | array map) -> None | int | numpy array.

    The wire form is checked here, and with the model's ActionSpec (`spec`) the type its space takes
    (PROTOCOL.md section 2.1a): integer spaces take integers only, and a flat list or array of as many values
    as the space's shape holds is that shape in row-major order; a Discrete space reads a one-element list or
    array as its element. The space's own check (ActionSpec.validate) comes after, for the values.
    """
    action = _wire_action_value(value, buffers, limits)
    if spec is None or not isinstance(action, np.ndarray):
        return action
    integral = spec.kind != "continuous"
    if not np.issubdtype(action.dtype, np.integer if integral else np.number):
        takes = "integers (MessagePack integers or an integer array map)" if integral else "numbers"
        shown = _shown(action.tolist()) if action.size <= 16 else f"of shape {list(action.shape)}"
        raise BridgeError("bad_action", f"action {shown} has dtype {action.dtype.name}, but the "
                                        f"model's action space ({spec.describe()}) takes {takes}")
    if spec.kind in ("discrete", "none") and action.shape == (1,):
        return action.reshape(())
    if spec.kind in ("multi_discrete", "continuous") and action.ndim == 1 and action.size == math.prod(spec.shape):
        return action.reshape(spec.shape)  # the flat, row-major form of a many-dimensional space
    return action


def _wire_action_value(value, buffers: list, limits: Limits):
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float):
        return np.asarray(value)
    if isinstance(value, dict):  # any map is an array map: a malformed one is bad_array
        return decode_array(value, buffers, limits, what="action")
    if isinstance(value, list):
        if len(value) > MAX_ACTION_ITEMS:
            raise BridgeError("too_large", f"action list has {len(value)} items, the limit is {MAX_ACTION_ITEMS}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise BridgeError("bad_action", f"action list must hold only numbers, got {_shown(value)}")
        try:
            return np.asarray(value)
        except OverflowError:
            raise BridgeError("bad_action", "action list holds an integer out of range") from None
    raise BridgeError("bad_action", f"action must be nil, an integer, a list of numbers or an array map, "
                                    f"got {_kind(value)} {_shown(value)}")


def describe_space(spec) -> dict:
    """ActionSpec -> the `action_space` map of the open reply: kind, n, sizes, dim and describe (1.0's keys), and
    the whole space (`ActionSpec.to_dict`: start, shape, low/high, binary, meanings) for exact rebuilding."""
    return {**spec.to_dict(), "kind": spec.kind, "n": spec.n, "sizes": list(spec.sizes), "dim": spec.dim,
            "describe": spec.describe()}


def major(version: str) -> int:
    return int(version.split(".")[0])


def minor(version: str) -> int:
    return int(version.split(".")[1])
