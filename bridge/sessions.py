"""A bridge server's sessions: each one's generator, queued requests and real-time state; whose turn it is to
run (round-robin, chunks of one model batched into one forward pass); the models they share; and what makes a
request a retry. Sockets are the server's (server.py); nothing here sends or receives.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque

from streamvideo.engine.group_step import group_key
from streamvideo.engine.speedups import DEFAULT_SPEEDUPS

from . import protocol as P


class Session:
    """One client stream: its generator, its queued requests and its real-time state."""

    def __init__(self, sid: str, model: str, generator, prompt: str | None, encoding: str, quality: int):
        self.id, self.model, self.gen = sid, model, generator
        self.topic = secrets.token_hex(16)  # stream topic: lets its holder watch, not drive
        self.group = group_key(generator)   # sessions with equal keys share forward passes (None: never)
        self.prompt = prompt               # None: the model's default prompt
        self.encoding, self.quality = encoding, quality
        self.queue: deque = deque()        # (identity, Request, decoded payload, retry key)
        self.streaming = False
        self.period = 0.0                  # seconds between real-time chunks (0: as fast as possible)
        self.next_due = 0.0
        self.action = None                 # latest action of a real-time session (kept across resets)
        self.episode = 0                   # resets since open: (episode, index) names a chunk
        self.last_index = -1               # index of the last published chunk of this episode
        self.last_seen = time.monotonic()
        self.last_reply: tuple | None = None  # (retry_key, frames): answers a retried request

    def due(self, now: float) -> bool:
        return self.streaming and now >= self.next_due

    def chunk_ready(self, now: float) -> bool:
        """Its next unit of work is a chunk: a queued lock-step `step`, or (nothing queued) a due real-time one."""
        if self.queue:
            return self.queue[0][1].op == "step" and not self.streaming  # while streaming: bad_state
        return self.due(now)


class Turns:
    """Whose turn it is: round-robin over the sessions that have work, so every session waits at most one unit
    of each other session. A unit is one queued request, or one chunk for every session of the same model
    (`group_step.group_key`) that has a chunk to make, all in one batched forward pass (up to max_batch)."""

    def __init__(self, max_batch: int):
        self.max_batch = max_batch
        self._next = 0   # where the next round starts, an index into the sessions in their opening order

    def next_unit(self, sessions: list[Session], now: float) -> tuple[Session, list[Session] | None] | None:
        """The session whose turn it is and, when its unit is a chunk, the sessions that make theirs in the same
        pass (None: its unit is its next queued request); None when no session has work."""
        for k in range(len(sessions)):
            session = sessions[(self._next + k) % len(sessions)]
            if session.chunk_ready(now):
                order = [sessions[(self._next + k + j) % len(sessions)] for j in range(len(sessions))]
                batch = self._batch_for(session, order, now)
            elif session.queue:
                batch = None
            else:
                continue
            self._next = (self._next + k + 1) % len(sessions)
            return session, batch
        return None

    def _batch_for(self, lead: Session, order: list[Session], now: float) -> list[Session]:
        """lead and the sessions after it (round-robin order) of its model with a chunk ready, up to max_batch."""
        if lead.group is None:
            return [lead]
        batch = [s for s in order if s.group == lead.group and s.chunk_ready(now)]
        return batch[:self.max_batch]


class SharedModels:
    """Builds session generators that share one copy of each model's weights (per model name and device), with
    the model's trained prompts and start frames as `streamvideo.load` gives them; every session still has its
    own KV cache, noise and decode state."""

    def __init__(self, speedups=DEFAULT_SPEEDUPS):
        self._parts: dict[tuple, tuple] = {}
        self.speedups = speedups   # applied to each model as it loads

    def __call__(self, name: str, device=None, **settings):
        from streamvideo.engine.presets import checked_start_frames, generator_from_parts, load_parts, trained_prompts
        key = (name, str(device))
        if key not in self._parts:
            parts, prompts = load_parts(name, device=device, speedups=self.speedups), trained_prompts(name)
            self._parts[key] = parts, prompts, checked_start_frames(name, parts, prompts)
        parts, prompts, start_frames = self._parts[key]
        return generator_from_parts(parts, trained_prompts=prompts, start_frames=start_frames, **settings)


def start_frames(generator, prompt: str | None, wanted: bool):
    """What a stream starts from on `open` / `reset` with `start_frames` (`wanted`): the model's real start frames
    of `prompt` (None: the model's default prompt), as `streamvideo play` starts; None (the prompt alone) when not
    wanted or the model ships none."""
    return generator.start_frames_for(generator.default_prompt if prompt is None else prompt) if wanted else None


def retry_key(request: P.Request, buffers) -> tuple:
    """What makes a request a retry: the same id and the same content, from whichever connection (a client
    that reconnected has a new identity); another request that happens to reuse the id is run normally."""
    digest = hashlib.sha256(repr((request.op, sorted(request.fields.items()))).encode())
    for b in buffers:
        digest.update(bytes(b))
    return request.id, digest.hexdigest()

