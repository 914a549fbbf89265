"""PCACodec: pixel patches projected onto their top principal components (a linear autoencoder).

A 64x64 frame in 8x8 patches has 192 values per token, more than a small DiT is wide: a velocity
model cannot output that many independent noise values per token. Pixel-art patches lie close to
a much lower-dimensional subspace, so keeping their top principal components shrinks the token
without training a network (on the built-in game: 64 of 192 components keep 28.7 dB PSNR).

All components share one scale that gives the latents unit variance on average, matching the
DiT's unit noise. Not per-component whitening: on the built-in game the last components hold the
ground's speckle texture, which a 2-pixel scroll decorrelates (consecutive-frame MSE / variance
~1.0 there against 0.02-0.2 for the top components); whitened, they dominate the loss with detail
no model can predict from the previous frame, and a causal teacher did not learn to continue
a scene in 200 steps. Shared scaling keeps the loss proportional to pixel error.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .base import Codec
from .pixel import PixelCodec


class PCACodec(Codec):
    """Exact up to the dropped components, stateless, 1 frame per latent frame.

    latents = ((patches - mean) @ basis) / scale, patches = (latents * scale) @ basis.T + mean, with
    `basis` [3p^2, C] orthonormal columns and `scale` [C] (one value: the RMS of the projections).
    `fit` sets mean, basis and scale.
    """

    def __init__(self, patch: int = 8, channels: int = 64):
        super().__init__()
        self.pixels = PixelCodec(patch)
        width = self.pixels.latent_channels
        if not 0 < channels <= width:
            raise ValueError(f"PCACodec: channels must be in [1, {width}] for patch {patch}, got {channels}")
        self.patch, self.latent_channels = patch, channels
        self.spatial_factor, self.temporal_factor = patch, 1
        self.register_buffer("mean", torch.zeros(width))                     # [3p^2]
        self.register_buffer("basis", torch.eye(width)[:, :channels])        # [3p^2, C]
        self.register_buffer("scale", torch.ones(channels))                  # [C]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # codec files written before whitening have no scale: their latents are the plain projections
        state_dict.setdefault(prefix + "scale", torch.ones_like(self.scale))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def fit(self, frame_batches: Iterable[torch.Tensor]) -> PCACodec:
        """Set mean and basis from frames [B, T, 3, H, W] in [0, 1] (float64 moments, then eigh)."""
        width = self.pixels.latent_channels
        count, total, outer = 0, torch.zeros(width, dtype=torch.float64), torch.zeros(width, width, dtype=torch.float64)
        for frames in frame_batches:
            tokens = self.pixels.encode(frames).movedim(1, -1).reshape(-1, width).double()   # [N, 3p^2]
            count, total, outer = count + len(tokens), total + tokens.sum(0), outer + tokens.T @ tokens
        if count == 0:
            raise ValueError("PCACodec.fit: no frames")
        mean = total / count
        values, vectors = torch.linalg.eigh(outer / count - torch.outer(mean, mean))   # ascending eigenvalues
        self.mean.copy_(mean)
        self.basis.copy_(vectors.flip(1)[:, :self.latent_channels])
        self.scale.fill_(float(values.flip(0)[:self.latent_channels].clamp(min=1e-8).mean().sqrt()))
        return self

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] -> [B, C, T, H/p, W/p]."""
        patches = self.pixels.encode(frames) - self.mean[:, None, None, None]        # [B, 3p^2, T, h, w]
        latents = torch.einsum("bktij,kc->bctij", patches, self.basis.to(patches.dtype))
        return latents / self.scale.to(patches.dtype)[:, None, None, None]

    def decode(self, latents: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        self.check_latents(latents)
        latents = latents * self.scale.to(latents.dtype)[:, None, None, None]
        patches = torch.einsum("bctij,kc->bktij", latents, self.basis.to(latents.dtype))
        return self.pixels.decode(patches + self.mean.to(latents.dtype)[:, None, None, None], state)

    def config(self) -> dict:
        return {"name": "pca", "patch": self.patch, "channels": self.latent_channels}
