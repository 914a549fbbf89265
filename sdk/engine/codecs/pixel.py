"""PixelCodec: latents are the frames themselves (for tests and the tiny-random preset)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Codec


class PixelCodec(Codec):
    """Exact, stateless codec: frames mapped to [-1, 1], space-to-depth by `patch`.

    Latent channels are `3 * patch**2`, `spatial_factor = patch`, `temporal_factor = 1`.
    """

    def __init__(self, patch: int = 1):
        super().__init__()
        if patch < 1:
            raise ValueError(f"PixelCodec: patch must be >= 1, got {patch}")
        self.patch = patch
        self.latent_channels = 3 * patch * patch
        self.spatial_factor = patch
        self.temporal_factor = 1

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        self.check_frames(frames)
        B, T = frames.shape[:2]
        z = F.pixel_unshuffle(frames.flatten(0, 1) * 2 - 1, self.patch)  # [B*T, 3p^2, h, w]
        return z.unflatten(0, (B, T)).transpose(1, 2)  # [B, C, T, h, w]

    def decode(self, latents: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        self.check_latents(latents)
        B, _, T = latents.shape[:3]
        x = F.pixel_shuffle(latents.transpose(1, 2).flatten(0, 1), self.patch)  # [B*T, 3, H, W]
        return ((x + 1) / 2).clamp(0, 1).unflatten(0, (B, T)), state

    def config(self) -> dict:
        return {"name": "pixel", "patch": self.patch}
