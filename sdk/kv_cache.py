"""Streaming KV cache: preallocated per layer, S sink chunks + a ring of W window chunks.

Slots 0..S-1 hold the first S chunks of a stream forever (attention sinks); slots S..S+W-1 form a
ring where chunk k (k >= S) lands in slot S + (k - S) % W, overwriting chunk k - W. Storage is
allocated once; writes are in-place index copies, so memory stays flat however long the stream
runs. Keys are stored after RoPE, so attention never needs to know where a slot came from.

Every batch element is an independent stream with its own chunk counter (a vector env resets
streams at different times), so the number of valid slots can differ across the batch.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, num_layers: int, batch_size: int, tokens_per_chunk: int, heads: int, head_dim: int,
                 window_chunks: int = 4, sink_chunks: int = 0, device=None, dtype=torch.float32, static: bool = False):
        if window_chunks < 1:
            raise ValueError(f"window_chunks must be >= 1, got {window_chunks}")
        if sink_chunks < 0:
            raise ValueError(f"sink_chunks must be >= 0, got {sink_chunks}")
        self.num_layers, self.batch_size = num_layers, batch_size
        self.tokens_per_chunk = tokens_per_chunk
        self.window_chunks, self.sink_chunks = window_chunks, sink_chunks
        self.slots = window_chunks + sink_chunks
        # static: always attend over the whole buffer with a mask built on the device, so every chunk step
        # has the same shapes and no host sync (what torch.compile and CUDA graphs need)
        self.static = static
        shape = (num_layers, batch_size, self.slots * tokens_per_chunk, heads, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        # chunks written per stream since its reset == index of the stream's next chunk
        self.next_chunk = torch.zeros(batch_size, dtype=torch.long, device=device)

    # ---------------------------------------------------------------- bookkeeping

    def reset(self, index=None) -> None:
        """Forget streams `index` (all when None). Storage is kept; stale slots are masked out."""
        if index is None:
            self.next_chunk.zero_()
        else:
            self.next_chunk[torch.as_tensor(index, dtype=torch.long, device=self.next_chunk.device)] = 0

    def seek(self, chunk_index: torch.Tensor) -> None:
        """Set every stream's next chunk index (used to re-write the window, e.g. on re-cache)."""
        self.next_chunk.copy_(chunk_index)

    def slot_of(self, chunk_index: torch.Tensor) -> torch.Tensor:
        """Slot of chunk `chunk_index` ([B] long) in the sink + ring layout."""
        ring = self.sink_chunks + (chunk_index - self.sink_chunks).remainder(self.window_chunks)
        return torch.where(chunk_index < self.sink_chunks, chunk_index, ring)

    def valid_slots(self) -> torch.Tensor:
        """[B] number of filled slots; slots fill in order, so they are always the first ones."""
        return self.next_chunk.clamp(max=self.slots)

    # ---------------------------------------------------------------- attention I/O

    def read(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Keys and values a query may attend to, as views into the storage (no copy).

        returns k, v: [B, N, heads, head_dim] with N = max filled slots * tokens_per_chunk, and a
        key mask [B, N] (True = attend) when streams of the batch hold different numbers of chunks.
        """
        filled = self.valid_slots()
        if self.static:
            slot_of_key = torch.arange(self.k.shape[2], device=self.k.device) // self.tokens_per_chunk
            return self.k[layer], self.v[layer], slot_of_key[None, :] < filled[:, None]
        n_max = int(filled.max()) if self.batch_size else 0
        n_tok = n_max * self.tokens_per_chunk
        k, v = self.k[layer, :, :n_tok], self.v[layer, :, :n_tok]
        if bool((filled == n_max).all()):
            return k, v, None
        slot_of_key = torch.arange(n_tok, device=k.device) // self.tokens_per_chunk
        return k, v, slot_of_key[None, :] < filled[:, None]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store chunks starting at each stream's `next_chunk`. k, v: [B, n*tokens_per_chunk, heads, head_dim]."""
        n_chunks = k.shape[1] // self.tokens_per_chunk
        tok = torch.arange(self.tokens_per_chunk, device=k.device)
        for i in range(n_chunks):
            slot = self.slot_of(self.next_chunk + i)                              # [B]
            rows = (slot[:, None] * self.tokens_per_chunk + tok[None, :])         # [B, tok]
            batch = torch.arange(self.batch_size, device=k.device)[:, None]
            part = slice(i * self.tokens_per_chunk, (i + 1) * self.tokens_per_chunk)
            self.k[layer][batch, rows] = k[:, part].to(self.k.dtype)
            self.v[layer][batch, rows] = v[:, part].to(self.v.dtype)

    def advance(self, n_chunks: int = 1) -> None:
        """Called once all layers wrote: the written chunks become visible to later chunks."""
        self.next_chunk += n_chunks

    def storage_pointers(self) -> tuple[int, int]:
        """Data pointers of the storage (tests check that streaming never reallocates)."""
        return self.k.data_ptr(), self.v.data_ptr()

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2
