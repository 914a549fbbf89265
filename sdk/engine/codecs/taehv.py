"""TAEHV: a tiny streaming video autoencoder (madebyollin/taehv layout), 8x spatial, 4x temporal.

The module tree mirrors TAEHV exactly (`encoder` / `decoder` as `nn.Sequential`s of Conv2d,
MemBlock, TPool, TGrow, ...), so the published checkpoints (`taehv.pth`, `taew2_1.pth`,
safetensors) load with `strict=True`; `TAEHVCodec.from_file` infers the configuration from the
weights. TAEHV works on raw frames in [0, 1] (no latent mean/std scaling) and, for Wan 2.1,
in the same normalised latent space the DiT denoises.

Temporal alignment: TAEHV's decoder is causal. One latent frame gives `temporal_factor` frames;
TAEHV drops the first `temporal_factor - 1` frames of a whole video (they come before the first
real frame). We keep a constant `F * temporal_factor` frames per chunk instead: on a stream's
first chunk those leading frames are filled by repeating the first real frame. Decoding chunk by
chunk equals decoding the whole sequence at once: every MemBlock keeps its input of the previous
latent-rate frame in the decode state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import Codec, Index, as_index


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


# ---------------------------------------------------------------------------------------------
#                                   TAEHV building blocks
# ---------------------------------------------------------------------------------------------


class Clamp(nn.Module):
    """Soft clamp of latents to (-3, 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """Residual conv block that also sees its own input at the previous frame (`past`)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv = nn.Sequential(
            conv(n_in * 2, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out)
        )
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(torch.cat([x, past], 1)) + self.skip(x))


class TPool(nn.Module):
    """Temporal pooling: `stride` consecutive frames -> one, by a 1x1 conv over stacked channels."""

    def __init__(self, n_f: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f * stride, n_f, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C, H, W] -> [B, T / stride, C, H, W]
        B, T, C, H, W = x.shape
        if T % self.stride:
            raise ValueError(f"TPool: {T} frames is not a multiple of the stride {self.stride}")
        return self.conv(x.reshape(B * T // self.stride, self.stride * C, H, W)).unflatten(0, (B, -1))


class TGrow(nn.Module):
    """Temporal upsampling: one frame -> `stride` frames, by a 1x1 conv to stacked channels."""

    def __init__(self, n_f: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f, n_f * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C, H, W] -> [B, T * stride, C, H, W]
        B, T, C, H, W = x.shape
        return self.conv(x.flatten(0, 1)).reshape(B, T * self.stride, C, H, W)


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, memory: Sequence[torch.Tensor] | None):
    """Apply a TAEHV block sequence to all frames at once, blocks one after another.

    x: [B, T, C, H, W]. `memory` holds, per MemBlock in order, its input at the frame just before
    this call ([B, 1, C, H, W]), or None for a fresh stream (zeros, as in TAEHV).
    Returns (output [B, T', C', H', W'], new memory).
    """
    new_memory = []
    for block in blocks:
        if isinstance(block, MemBlock):
            past = memory[len(new_memory)] if memory is not None else torch.zeros_like(x[:, :1])
            past = torch.cat([past, x[:, :-1]], 1)  # [B, T, C, H, W]: frame t sees frame t-1
            new_memory.append(x[:, -1:].clone())  # clone: a view would keep the whole chunk alive
            x = block(x.flatten(0, 1), past.flatten(0, 1)).unflatten(0, x.shape[:2])
        elif isinstance(block, (TPool, TGrow)):
            x = block(x)
        else:  # per-frame 2D layers
            x = block(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    return x, tuple(new_memory)


# ---------------------------------------------------------------------------------------------
#                                        The codec
# ---------------------------------------------------------------------------------------------


@dataclass
class TAEHVState:
    """Streaming decode state of a batch of streams."""

    fresh: torch.Tensor  # [B] bool: element has not produced frames yet (first chunk fills leading frames)
    memory: tuple[torch.Tensor, ...] | None = None  # per decoder MemBlock: its input at the last frame


class TAEHVCodec(Codec):
    """TAEHV encoder + streaming decoder.

    Defaults are TAEHV for Wan 2.1 (`taew2_1.pth`): 16 latent channels, 8x spatial (three stride-2
    stages times `patch_size`), 4x temporal. Narrow widths give tiny configs for tests and small models.

    Args:
        latent_channels: latent channels C (16 for Wan 2.1 / Hunyuan).
        patch_size: pixel (un)shuffle factor around the network; spatial_factor = 8 * patch_size.
        encoder_channels: width of every encoder stage (64 in TAEHV).
        decoder_channels: widths of the decoder's three stages and its output conv ((256, 128, 64, 64)).
        encoder_time_downscale: per encoder stage, whether it halves the frame rate.
        decoder_time_upscale: per decoder stage, whether it doubles the frame rate.
    """

    def __init__(
        self,
        latent_channels: int = 16,
        patch_size: int = 1,
        encoder_channels: int = 64,
        decoder_channels: Sequence[int] = (256, 128, 64, 64),
        encoder_time_downscale: Sequence[bool] = (True, True, False),
        decoder_time_upscale: Sequence[bool] = (False, True, True),
    ):
        super().__init__()
        if len(decoder_channels) != 4 or len(encoder_time_downscale) != 3 or len(decoder_time_upscale) != 3:
            raise ValueError(
                "TAEHVCodec: expected 4 decoder_channels and 3 flags each for encoder_time_downscale / "
                f"decoder_time_upscale, got {decoder_channels}, {encoder_time_downscale}, "
                f"{decoder_time_upscale}"
            )
        if sum(map(bool, encoder_time_downscale)) != sum(map(bool, decoder_time_upscale)):
            raise ValueError(
                "TAEHVCodec: the encoder's temporal downscale must match the decoder's upscale, got "
                f"{encoder_time_downscale} vs {decoder_time_upscale}"
            )
        self.latent_channels = latent_channels
        self.patch_size = patch_size
        self.spatial_factor = 8 * patch_size
        self.temporal_factor = 2 ** sum(map(bool, decoder_time_upscale))
        self._config = dict(
            latent_channels=latent_channels,
            patch_size=patch_size,
            encoder_channels=encoder_channels,
            decoder_channels=tuple(decoder_channels),
            encoder_time_downscale=tuple(map(bool, encoder_time_downscale)),
            decoder_time_upscale=tuple(map(bool, decoder_time_upscale)),
        )

        e, n_px = encoder_channels, 3 * patch_size**2

        def enc_stage(down: bool) -> list[nn.Module]:
            return [
                TPool(e, 2 if down else 1),
                conv(e, e, stride=2, bias=False),
                *(MemBlock(e, e) for _ in range(3)),
            ]

        # indices (TAEHV): 0 conv, 1 ReLU, [2 TPool, 3 conv, 4-6 MemBlock] x3 stages, 17 conv
        self.encoder = nn.Sequential(
            conv(n_px, e),
            nn.ReLU(),
            *(m for d in encoder_time_downscale for m in enc_stage(d)),
            conv(e, latent_channels),
        )

        def dec_stage(n_in: int, n_out: int, up: bool) -> list[nn.Module]:
            return [
                *(MemBlock(n_in, n_in) for _ in range(3)),
                nn.Upsample(scale_factor=2),
                TGrow(n_in, 2 if up else 1),
                conv(n_in, n_out, bias=False),
            ]

        d = decoder_channels
        # indices (TAEHV): 0 Clamp, 1 conv, 2 ReLU, [3-5 MemBlock, 6 Upsample, 7 TGrow, 8 conv] x3,
        # 21 ReLU, 22 conv
        self.decoder = nn.Sequential(
            Clamp(), conv(latent_channels, d[0]), nn.ReLU(),
            *(m for i, up in enumerate(decoder_time_upscale) for m in dec_stage(d[i], d[i + 1], up)),
            nn.ReLU(), conv(d[3], n_px),
        )  # fmt: skip

    # ---- loading published weights ---------------------------------------------------------

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> TAEHVCodec:
        """Build the configuration the TAEHV-layout `state_dict` describes and load it strictly."""

        def out_in(key: str) -> tuple[int, int]:
            return tuple(state_dict[key].shape[:2])

        try:
            e, n_px = out_in("encoder.0.weight")
            config = dict(
                latent_channels=state_dict["decoder.1.weight"].shape[1],
                patch_size=round((n_px // 3) ** 0.5),
                encoder_channels=e,
                decoder_channels=tuple(state_dict[f"decoder.{i}.weight"].shape[0] for i in (1, 8, 14, 20)),
                encoder_time_downscale=tuple(
                    state_dict[f"encoder.{i}.conv.weight"].shape[1] == 2 * e for i in (2, 7, 12)
                ),
                decoder_time_upscale=tuple(
                    out_in(f"decoder.{i}.conv.weight")[0] == 2 * out_in(f"decoder.{i}.conv.weight")[1]
                    for i in (7, 13, 19)
                ),
            )
        except KeyError as err:
            raise ValueError(
                f"not a TAEHV state dict: key {err} is missing (expected TAEHV's encoder.N / decoder.N names)"
            ) from None
        codec = cls(**config)
        codec.load_state_dict(state_dict, strict=True)
        return codec

    @classmethod
    def from_file(cls, path: str | Path) -> TAEHVCodec:
        """Load a TAEHV checkpoint (`.pth` / `.pt` saved by torch, or `.safetensors`)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"TAEHV checkpoint not found: {path} (expected e.g. taew2_1.pth or .safetensors)"
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state_dict = load_file(path)
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        return cls.from_state_dict(state_dict)

    def config(self) -> dict:
        return {"name": "taehv", **self._config}

    # ---- encode / decode ---------------------------------------------------------------------

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Whole clip, [B, T, 3, H, W] in [0, 1] -> [B, C, ceil(T / temporal_factor), h, w].

        As TAEHV does, T is padded at the end to a multiple of temporal_factor by repeating the last frame.
        """
        self.check_frames(frames)
        dtype = next(self.parameters()).dtype
        x = frames.to(dtype)
        n_pad = -x.shape[1] % self.temporal_factor
        x = torch.cat([x, x[:, -1:].expand(-1, n_pad, -1, -1, -1)], 1)
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x.flatten(0, 1), self.patch_size).unflatten(0, x.shape[:2])
        z, _ = run_blocks(self.encoder, x, None)  # [B, F, C, h, w]
        return z.transpose(1, 2)  # [B, C, F, h, w]

    def init_state(self, batch_size: int) -> TAEHVState:
        device = next(self.parameters()).device
        return TAEHVState(fresh=torch.ones(batch_size, dtype=torch.bool, device=device))

    def reset_state(self, state: TAEHVState, index: Index) -> TAEHVState:
        idx = as_index(index, len(state.fresh), state.fresh.device)
        fresh = state.fresh.index_fill(0, idx, True)
        if state.memory is None:
            return TAEHVState(fresh)
        # zero memory == a fresh stream (TAEHV pads the past with zeros)
        return TAEHVState(fresh, tuple(m.index_fill(0, idx.to(m.device), 0) for m in state.memory))

    def decode(self, latents: torch.Tensor, state: TAEHVState) -> tuple[torch.Tensor, TAEHVState]:
        self.check_latents(latents)
        if latents.shape[0] != len(state.fresh):
            raise ValueError(
                f"TAEHVCodec.decode: batch {latents.shape[0]} != decode state batch {len(state.fresh)}"
            )
        dtype = next(self.parameters()).dtype
        x, memory = run_blocks(
            self.decoder, latents.transpose(1, 2).to(dtype), state.memory
        )  # [B, F*tf, 3p^2, h', w']
        if self.patch_size > 1:
            x = F.pixel_shuffle(x.flatten(0, 1), self.patch_size).unflatten(0, x.shape[:2])
        frames = fill_leading_frames(x.float().clamp(0, 1), state.fresh, self.temporal_factor - 1)
        return frames, TAEHVState(torch.zeros_like(state.fresh), memory)


def fill_leading_frames(frames: torch.Tensor, fresh: torch.Tensor, n_missing: int) -> torch.Tensor:
    """Replace the first `n_missing` frames of fresh stream elements by their first real frame.

    frames: [B, T, 3, H, W]; fresh: [B] bool. These are the frames TAEHV trims from a whole video.
    """
    if n_missing == 0 or not bool(fresh.any()):
        return frames
    t = torch.arange(frames.shape[1], device=frames.device)
    replace = fresh.to(frames.device)[:, None] & (t < n_missing)[None, :]  # [B, T]
    return torch.where(replace[:, :, None, None, None], frames[:, n_missing : n_missing + 1], frames)
