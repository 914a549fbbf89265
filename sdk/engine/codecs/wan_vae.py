"""WanVAECodec: the Wan 2.1 video VAE (diffusers' `AutoencoderKLWan`) behind the `Codec` interface.

Needs the `wan` extra (`pip install streamvideo[wan]`); diffusers is imported lazily.

Latents are normalised as Wan's pipelines do, `(z - latents_mean) / latents_std` from the VAE
config, i.e. they live in the space the Wan DiT denoises (the same one TAEHV decodes).

Streaming decode uses the VAE's own causal cache: diffusers decodes one latent frame at a time,
passing a list of cached activations (`feat_cache`, the last two frames of every causal conv)
from frame to frame. We keep that list in the decode state, one per stream element, so chunk by
chunk decoding equals whole-sequence decoding. The first latent frame of a stream decodes to a
single video frame (Wan's `1 + 4k` frames convention); it is repeated `temporal_factor` times so
every chunk has `F * temporal_factor` frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .base import Codec, Index, as_index


def _diffusers_wan():
    try:
        from diffusers.models.autoencoders import autoencoder_kl_wan
    except ImportError as err:
        raise ImportError(
            "WanVAECodec needs diffusers (the `wan` extra): pip install 'streamvideo[wan]'"
        ) from err
    return autoencoder_kl_wan


@dataclass
class WanVAEState:
    """Per stream element, the VAE decoder's causal cache (`feat_cache`): entries are None
    (not yet filled), the marker "Rep" (after the first frame) or activation tensors [1, C, <=2, h, w]."""

    caches: list[list]


def _signature(cache: list) -> tuple:
    """Elements whose caches have the same structure can be decoded as one batch."""
    return tuple(e if e is None or isinstance(e, str) else tuple(e.shape[1:]) for e in cache)


class WanVAECodec(Codec):
    """Wrap an `AutoencoderKLWan`; use `WanVAECodec.from_pretrained(folder)` to load one from disk."""

    def __init__(self, vae, path: str | Path | None = None):
        super().__init__()
        wan = _diffusers_wan()
        if not isinstance(vae, wan.AutoencoderKLWan):
            raise TypeError(f"WanVAECodec expects a diffusers AutoencoderKLWan, got {type(vae).__name__}")
        self.vae = vae.eval().requires_grad_(False)
        self.path = None if path is None else str(path)
        cfg = vae.config
        self.latent_channels = cfg.z_dim
        self.spatial_factor = cfg.scale_factor_spatial
        self.temporal_factor = cfg.scale_factor_temporal
        # one cache slot per causal conv of the decoder, as diffusers' clear_cache counts them
        self._n_cache = sum(isinstance(m, wan.WanCausalConv3d) for m in vae.decoder.modules())
        if min(len(cfg.latents_mean), len(cfg.latents_std)) < cfg.z_dim:
            raise ValueError(f"Wan VAE config: latents_mean / latents_std need {cfg.z_dim} values (z_dim)")
        shape = (1, cfg.z_dim, 1, 1, 1)
        self.register_buffer(
            "latents_mean", torch.tensor(cfg.latents_mean[: cfg.z_dim]).view(shape), persistent=False
        )
        self.register_buffer(
            "latents_std", torch.tensor(cfg.latents_std[: cfg.z_dim]).view(shape), persistent=False
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> WanVAECodec:
        """Load from a diffusers folder: the VAE folder itself, or a pipeline folder with `vae/`."""
        folder = Path(path)
        if (folder / "vae" / "config.json").is_file():
            folder = folder / "vae"
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no Wan VAE at {path}: expected a diffusers AutoencoderKLWan folder (config.json + weights) "
                "or a pipeline folder containing vae/"
            )
        vae = _diffusers_wan().AutoencoderKLWan.from_pretrained(folder, torch_dtype=dtype)
        return cls(vae, path=folder).to(device)

    def config(self) -> dict:
        if self.path is None:
            raise ValueError(
                "WanVAECodec built from an in-memory model has no config; save it and use from_pretrained"
            )
        return {"name": "wan-vae", "path": self.path}

    # ---- encode --------------------------------------------------------------------------------

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] in [0, 1] -> normalised latents [B, C, F, h, w], F = ceil(T / temporal_factor).

        Wan encodes `1 + tf * (F - 1)` frames into F latents; the first `T - (tf * F - tf + 1)` frames
        (at most tf - 1, the ones `decode` fills on a stream's first chunk) are dropped.
        """
        self.check_frames(frames)
        tf = self.temporal_factor
        n_latent = -(-frames.shape[1] // tf)
        x = frames[:, frames.shape[1] - (tf * (n_latent - 1) + 1) :]
        x = x.transpose(1, 2).to(self.vae.dtype) * 2 - 1  # [B, 3, T', H, W] in [-1, 1]
        z = self.vae.encode(x).latent_dist.mode()  # [B, C, F, h, w]
        return (z - self.latents_mean) / self.latents_std

    # ---- streaming decode -------------------------------------------------------------------

    def init_state(self, batch_size: int) -> WanVAEState:
        return WanVAEState([[None] * self._n_cache for _ in range(batch_size)])

    def reset_state(self, state: WanVAEState, index: Index) -> WanVAEState:
        caches = list(state.caches)
        for i in as_index(index, len(caches)).tolist():
            caches[i] = [None] * self._n_cache
        return WanVAEState(caches)

    def decode(self, latents: torch.Tensor, state: WanVAEState) -> tuple[torch.Tensor, WanVAEState]:
        self.check_latents(latents)
        B, _, n_latent = latents.shape[:3]
        if B != len(state.caches):
            raise ValueError(f"WanVAECodec.decode: batch {B} != decode state batch {len(state.caches)}")
        z = latents.to(self.vae.dtype) * self.latents_std + self.latents_mean  # back to raw VAE latents
        x = self.vae.post_quant_conv(z)  # 1x1x1 conv: no temporal context
        caches = list(state.caches)
        frames = [None] * B
        groups: dict[tuple, list[int]] = {}
        for i, cache in enumerate(caches):
            groups.setdefault(_signature(cache), []).append(i)
        for members in groups.values():
            # batch the group's caches: tensors concatenated, markers shared
            cache = [
                torch.cat([caches[i][k] for i in members]) if torch.is_tensor(entry) else entry
                for k, entry in enumerate(caches[members[0]])
            ]
            out = [self._decode_frame(x[members, :, f : f + 1], cache) for f in range(n_latent)]
            video = torch.cat(out, 2)  # [b, 3, F*tf, H, W]
            for j, i in enumerate(members):
                frames[i] = video[j]
                caches[i] = [e[j : j + 1] if torch.is_tensor(e) else e for e in cache]
        video = torch.stack(frames).transpose(1, 2)  # [B, F*tf, 3, H, W]
        return ((video.float().clamp(-1, 1) + 1) / 2), WanVAEState(caches)

    def _decode_frame(self, x: torch.Tensor, cache: list) -> torch.Tensor:
        """One latent frame [b, C, 1, h, w] -> [b, 3, tf, H, W] in [-1, 1]; updates `cache` in place."""
        first = all(e is None for e in cache)
        y = self.vae.decoder(x, feat_cache=cache, feat_idx=[0], first_chunk=first)
        if self.vae.config.patch_size is not None:
            y = _diffusers_wan().unpatchify(y, patch_size=self.vae.config.patch_size)
        if y.shape[2] < self.temporal_factor:  # a stream's first frame: repeat it to fill the chunk
            y = torch.cat([y[:, :, :1].expand(-1, -1, self.temporal_factor - y.shape[2], -1, -1), y], 2)
        return y
