"""The `Codec` interface: frames <-> latents, with a streaming decode state.

Layouts (docs/architecture.md):
- frames: float `[B, T, 3, H, W]` in `[0, 1]`
- latents: `[B, C, F, h, w]` (Wan layout), `H = h * spatial_factor`

`decode` is streaming: it takes one chunk of latent frames plus the state left by
the previous call and always returns `F * temporal_factor` frames, so every chunk of
a stream has the same frame count. A batched stream resets one element at a time
(vector envs reset independently) through `reset_state(state, index)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

Index = int | Sequence[int] | torch.Tensor


class Codec(nn.Module):
    """Base class of latent codecs. Subclasses set the three attributes and implement
    `encode` and `decode`; stateful decoders also override `init_state` / `reset_state`."""

    latent_channels: int  # C
    spatial_factor: int  # H = h * spatial_factor
    temporal_factor: int  # video frames per latent frame in steady state

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """`[B, T, 3, H, W]` in [0, 1] -> latents `[B, C, ceil(T / temporal_factor), h, w]`."""
        raise NotImplementedError

    def init_state(self, batch_size: int) -> Any:
        """Decode state of a fresh stream of `batch_size` elements (None when stateless)."""
        return None

    def reset_state(self, state: Any, index: Index) -> Any:
        """Return `state` with the elements at `index` restarted as fresh streams."""
        return state

    def decode(self, latents: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Latents `[B, C, F, h, w]` -> (frames `[B, F * temporal_factor, 3, H, W]` in [0, 1], new state)."""
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments plus `name`, so `streamvideo.engine.codecs.build(**codec.config())` rebuilds it."""
        raise NotImplementedError

    # ---- shared argument checks -------------------------------------------------------------

    def check_frames(self, frames: torch.Tensor) -> None:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(
                f"{type(self).__name__}.encode expects frames [B, T, 3, H, W], got {tuple(frames.shape)}"
            )
        H, W = frames.shape[-2:]
        if H % self.spatial_factor or W % self.spatial_factor:
            raise ValueError(
                f"{type(self).__name__}: frame size {H}x{W} must be divisible by "
                f"spatial_factor {self.spatial_factor}"
            )

    def check_latents(self, latents: torch.Tensor) -> None:
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"{type(self).__name__}.decode expects latents [B, {self.latent_channels}, F, h, w], "
                f"got {tuple(latents.shape)}"
            )


def as_index(index: Index, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """int / list of ints / bool mask / index tensor -> LongTensor of batch positions, range-checked."""
    idx = torch.as_tensor(index, device=device)
    if idx.dtype == torch.bool:
        if idx.shape != (batch_size,):
            raise ValueError(f"boolean reset mask must have shape ({batch_size},), got {tuple(idx.shape)}")
        idx = idx.nonzero().flatten()
    idx = idx.long().flatten()
    if idx.numel() and (idx.min() < 0 or idx.max() >= batch_size):
        raise IndexError(f"reset index {idx.tolist()} out of range for batch size {batch_size}")
    return idx
