"""What the bridge publishes on its stream socket (PROTOCOL.md section 3): a session's chunks and the message
that ends its stream. A Server publishes its sessions' streams; a Front republishes its workers' and ends
those of a worker it lost.

Streams go out under a session's topic, a random token apart from its id (the secret that drives it), and
the XPUB applies only subscriptions to exactly a live topic (`Endpoint._read_subscriptions`), so a subscriber
to every prefix receives nothing and never learns an id.
"""

from __future__ import annotations

import time

from . import protocol as P

FAILURES = {"error": "internal", "worker_lost": "worker_lost"}  # end reasons that carry an error map too


def chunk_fields(chunk, batch: int, episode: int, encoding: str, quality: int) -> tuple[dict, list]:
    """A chunk as the fields of a `step` reply or a stream message, and the buffers its frames travel in
    (batch: the sessions that shared its forward pass; episode: the session's resets so far)."""
    out: list = []
    frames = P.encode_chunk(chunk.frames, encoding, out, quality)
    return {"index": int(chunk.index), "episode": episode, "nfe": int(chunk.nfe), "seconds": float(chunk.seconds),
            "prompt": chunk.prompt, "batch": batch, "frames": frames}, out


def chunk_message(topic: bytes, chunk, batch: int, episode: int, encoding: str, quality: int) -> list:
    """A real-time chunk as published: [topic, header, buffers...]; `time` is Unix time, as `ping`'s."""
    fields, out = chunk_fields(chunk, batch, episode, encoding, quality)
    return [topic, *P.pack({"time": time.time(), **fields}, out)]


def end_message(topic: bytes, index: int, episode: int, reason: str, message: str) -> list:
    """The last message of a stream (PROTOCOL.md, End of stream); a failure carries an error map too."""
    header = {"time": time.time(), "index": index, "episode": episode, "end": {"reason": reason, "message": message}}
    if reason in FAILURES:
        header["error"] = {"code": FAILURES[reason], "message": message}
    return [topic, *P.pack(header)]
