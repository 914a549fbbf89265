"""Streaming KV cache: preallocated per layer, S sink chunks + a ring of W window chunks.

Slots 0..S-1 hold the first S chunks of a stream forever (attention sinks); slots S..S+W-1 form a
ring where chunk k (k >= S) lands in slot S + (k - S) % W, overwriting chunk k - W. Storage is
allocated once; writes are in-place index copies, so memory stays flat however long the stream
runs. Each slot remembers which chunk it holds (`slot_chunk`), so what a query may see is decided
by one rule (`visible`) whatever order slots were written in (a re-cache rewrites old chunks).

Keys are stored *before* RoPE and rotated at read time (the release's "Block-Relativistic RoPE",
`causal_model_infinity.py`): with `rope="window"` the sinks sit at positions 0..S-1 and every other
chunk keeps its distance to the newest chunk of the pass, which sits at most at S+W. Query-key
distances then never exceed what the model saw on a window-long clip, on streams of any length.
`rope="absolute"` keeps chunk k at position k (the release's default inference; sink distances grow).

Every batch element is an independent stream with its own chunk counter (a vector env resets
streams at different times), so streams of one batch can see different numbers of chunks.
"""

from __future__ import annotations

import torch

ROPE_MODES = ("window", "absolute")


def visible(query_chunk: torch.Tensor, key_chunk: torch.Tensor, sink_chunks: int, window_chunks: int) -> torch.Tensor:
    """The attention window: a chunk sees the sinks, the W chunks before it and itself (-1 = empty slot)."""
    earlier = (key_chunk >= 0) & (key_chunk <= query_chunk)
    return earlier & ((key_chunk < sink_chunks) | (key_chunk >= query_chunk - window_chunks))


def rope_chunk_position(chunk: torch.Tensor, newest: torch.Tensor, sink_chunks: int, window_chunks: int,
                        rope: str) -> torch.Tensor:
    """RoPE position (in chunks) of `chunk` in a pass whose newest input chunk is `newest` (broadcastable)."""
    if rope == "absolute":
        return chunk
    shift = (newest - (sink_chunks + window_chunks)).clamp(min=0)
    return torch.where(chunk < sink_chunks, chunk, chunk - shift)


class KVCache:
    def __init__(self, num_layers: int, batch_size: int, tokens_per_chunk: int, heads: int, head_dim: int,
                 window_chunks: int = 2, sink_chunks: int = 1, device=None, dtype=torch.float32, static: bool = False,
                 rope: str = "window"):
        if window_chunks < 1:
            raise ValueError(f"window_chunks must be >= 1, got {window_chunks}")
        if sink_chunks < 0:
            raise ValueError(f"sink_chunks must be >= 0, got {sink_chunks}")
        if rope not in ROPE_MODES:
            raise ValueError(f"rope must be one of {ROPE_MODES}, got {rope!r}")
        self.num_layers, self.batch_size = num_layers, batch_size
        self.tokens_per_chunk = tokens_per_chunk
        self.window_chunks, self.sink_chunks, self.rope = window_chunks, sink_chunks, rope
        self.slots = window_chunks + sink_chunks
        # static: always attend over the whole buffer with a mask built on the device, so every chunk step
        # has the same shapes and no host sync (what torch.compile and CUDA graphs need)
        self.static = static
        shape = (num_layers, batch_size, self.slots * tokens_per_chunk, heads, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)      # un-roped keys
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        # chunks written per stream since its reset == index of the stream's next chunk
        self.next_chunk = torch.zeros(batch_size, dtype=torch.long, device=device)
        # [B, slots] chunk index each slot holds, -1 = empty
        self.slot_chunk = torch.full((batch_size, self.slots), -1, dtype=torch.long, device=device)
        # [B, C, h, w] the clean latent frame before the next chunk, for models that read it (config.reads_anchor);
        # allocated on first use, zeros at a stream's start
        self.anchor: torch.Tensor | None = None
        # (what the last pass saw, its StreamContext): later passes over the same cache state reuse it
        # (the "context" speed-up, `CausalDiT.stream_context`)
        self.context_memo: tuple | None = None

    # ---------------------------------------------------------------- bookkeeping

    def reset(self, index=None) -> None:
        """Forget streams `index` (all when None). Storage is kept; empty slots are masked out."""
        if index is None:
            self.next_chunk.zero_()
            self.slot_chunk.fill_(-1)
            self.anchor = None           # zeros again on first use (a new tensor: the old may be an inference tensor)
        else:
            index = torch.as_tensor(index, dtype=torch.long, device=self.next_chunk.device)
            self.next_chunk[index] = 0
            self.slot_chunk[index] = -1
            if self.anchor is not None:
                self.anchor = self.anchor.clone()
                self.anchor[index] = 0

    def seek(self, chunk_index: torch.Tensor) -> None:
        """Set every stream's next chunk index (used to re-write the window, e.g. on re-cache)."""
        self.next_chunk.copy_(chunk_index)

    def slot_of(self, chunk_index: torch.Tensor) -> torch.Tensor:
        """Slot of chunk `chunk_index` ([B] long) in the sink + ring layout."""
        ring = self.sink_chunks + (chunk_index - self.sink_chunks).remainder(self.window_chunks)
        return torch.where(chunk_index < self.sink_chunks, chunk_index, ring)

    def filled_slots(self) -> int:
        """Slots any stream of the batch has written (slots fill in order, so they are the first ones)."""
        return int((self.slot_chunk >= 0).sum(1).max()) if self.batch_size else 0

    def anchor_for(self, x: torch.Tensor) -> torch.Tensor:
        """The clean latent frame before the next chunk, for a one-chunk input x [B, C, F, h, w]: [B, C, 1, h, w]."""
        shape = (x.shape[0], x.shape[1], *x.shape[3:])
        if self.anchor is None or self.anchor.shape != shape:
            self.anchor = x.new_zeros(shape)
        return self.anchor[:, :, None]

    def set_anchor(self, frame: torch.Tensor) -> None:
        """frame [B, C, h, w]: the clean (or best-estimate) last latent frame of the chunk just written."""
        self.anchor = frame.detach().to(self.k.device).clone()

    # ---------------------------------------------------------------- attention I/O

    def key_chunks(self) -> torch.Tensor:
        """[B, N_slots] chunk index of every slot `read` returns (-1 = empty)."""
        return self.slot_chunk if self.static else self.slot_chunk[:, :self.filled_slots()]

    def read(self, layer: int, n_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-roped keys and values of the first `n_slots` slots (those `key_chunks()` named when the pass
        began): k, v [B, n_slots * tokens, heads, head_dim].

        Views into the storage: callers must be done with them before `write` changes the storage.
        """
        n_tok = n_slots * self.tokens_per_chunk
        return self.k[layer, :, :n_tok], self.v[layer, :, :n_tok]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store chunks starting at each stream's `next_chunk`. k (un-roped), v: [B, n*tokens, heads, head_dim]."""
        n_chunks = k.shape[1] // self.tokens_per_chunk
        tok = torch.arange(self.tokens_per_chunk, device=k.device)
        batch = torch.arange(self.batch_size, device=k.device)[:, None]
        for i in range(n_chunks):
            slot = self.slot_of(self.next_chunk + i)                              # [B]
            rows = slot[:, None] * self.tokens_per_chunk + tok[None, :]           # [B, tok]
            part = slice(i * self.tokens_per_chunk, (i + 1) * self.tokens_per_chunk)
            # detached: training rollouts (like SF / DD) do not backpropagate through cached context
            self.k[layer][batch, rows] = k[:, part].detach().to(self.k.dtype)
            self.v[layer][batch, rows] = v[:, part].detach().to(self.v.dtype)
            if layer == self.num_layers - 1:
                self.slot_chunk[batch[:, 0], slot] = self.next_chunk + i

    def advance(self, n_chunks: int = 1) -> None:
        """Called once all layers wrote: the written chunks become visible to later chunks."""
        self.next_chunk += n_chunks

    def storage_pointers(self) -> tuple[int, int]:
        """Data pointers of the storage (tests check that streaming never reallocates)."""
        return self.k.data_ptr(), self.v.data_ptr()

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2
