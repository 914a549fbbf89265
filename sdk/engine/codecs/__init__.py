"""Latent codecs: frames [B, T, 3, H, W] in [0, 1] <-> latents [B, C, F, h, w], with streaming decode.

- `PixelCodec`: the frames themselves (tests, tiny-random preset)
- `PCACodec`: pixel patches on their top principal components (the default model's codec)
- `TAEHVCodec`: TAEHV, the tiny streaming video decoder the paper times (loads taehv / taew2_1 weights)
- `WanVAECodec`: Wan 2.1's VAE through diffusers (the `wan` extra)

`build(name, **kwargs)` makes one by name (`build(**codec.config())` rebuilds a codec);
`load_codec(path)` recognises a TAEHV checkpoint file or a diffusers Wan VAE folder.
"""

from __future__ import annotations

from pathlib import Path

from .base import Codec
from .pca import PCACodec
from .pixel import PixelCodec
from .taehv import TAEHVCodec, TAEHVState
from .wan_vae import WanVAECodec, WanVAEState

__all__ = [
    "Codec",
    "PCACodec",
    "PixelCodec",
    "TAEHVCodec",
    "TAEHVState",
    "WanVAECodec",
    "WanVAEState",
    "build",
    "load_codec",
]

CODECS = {"pixel": PixelCodec, "pca": PCACodec, "taehv": TAEHVCodec, "wan-vae": WanVAECodec.from_pretrained}


def build(name: str, **kwargs) -> Codec:
    """Codec by name: "pixel" (patch=), "pca" (patch=, channels=), "taehv" (TAEHVCodec arguments),
    "wan-vae" (path=)."""
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; expected one of {sorted(CODECS)}")
    return CODECS[name](**kwargs)


def load_codec(path: str | Path, device: str = "cpu") -> Codec:
    """Load a pretrained codec: a TAEHV checkpoint file (.pth / .pt / .safetensors) or a diffusers
    AutoencoderKLWan folder (or a Wan pipeline folder with vae/)."""
    path = Path(path)
    if path.is_dir():
        return WanVAECodec.from_pretrained(path, device=device)
    if path.is_file() and path.suffix in (".pth", ".pt", ".safetensors"):
        return TAEHVCodec.from_file(path).to(device)
    raise FileNotFoundError(
        f"no codec at {path}: expected a TAEHV checkpoint (.pth / .pt / .safetensors) or a Wan VAE folder"
    )
