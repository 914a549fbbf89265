"""Stage 1, `streamvideo train codec`: a video autoencoder for the dataset's frame size (any H x W whose
sides are multiples of the spatial factor: the patch for pca, 8 for taehv).

`--kind pca` (the default model's codec): 8x8 pixel patches on their top `--latent-channels`
principal components, fitted in closed form on `--pca-frames` frames (seconds, nothing to resume).

`--kind taehv`: a small TAEHV trained by gradient descent, 8x spatial, 4x temporal compression
(64x64 frames -> 8x8 latents, 12 frames -> 3 latent frames). Loss: MSE + L1 on the decoder's raw
output for a fresh stream (before the [0, 1] clamp, which would stop gradients; its first tf-1
frames are the ones the codec fills in and are not scored), plus a weak pull of the latents'
second moment towards 1 so the DiT's unit-variance noise matches the latent scale.

Under torchrun: pca fits on rank 0 while the other ranks wait (seconds; nothing to share out); taehv
trains with DDP, each rank on its rows of every batch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.collect import load_dataset
from ..engine.codecs import PCACodec, TAEHVCodec
from ..engine.codecs.taehv import MemBlock, run_blocks
from .common import Run, RunArgs, add_dataclass_arguments, arg, from_namespace, linear_warmup, set_lr
from .data import check_frame_size, frames_to_tensor, save_codec
from .distributed import distribute, global_mean, is_main, main_only, shard


@dataclass
class Args(RunArgs):
    data: str = arg(None, "dataset folder written by `streamvideo collect`")
    out: str = arg("runs/codec", "output folder (checkpoint, metrics, codec.json + codec.safetensors)")
    kind: str = arg("pca", "pca (8x8 patches on their principal components, closed form: the default model's "
                           "codec) or taehv (a conv autoencoder trained by gradient descent)")
    patch: int = arg(8, "pca: pixel patch size (the spatial factor)")
    pca_frames: int = arg(20000, "pca: frames the components are fitted on (a seeded subset)")
    latent_channels: int = arg(64, "latent channels (pca: the components kept; the default model's codec has 64)")
    steps: int = arg(2000, "taehv: optimizer steps")
    batch_size: int = arg(8, "taehv: clips per step", split=True)
    clip_frames: int = arg(24, "taehv: frames per clip (a multiple of the temporal factor 4)")
    lr: float = arg(2e-3, "taehv: AdamW learning rate")
    warmup: int = arg(100, "taehv: linear warm-up steps")
    encoder_channels: int = arg(32, "taehv: width of every encoder stage")
    decoder_channels: str = arg("64,48,32,32", "taehv: widths of the three decoder stages and the output conv")
    scale_weight: float = arg(0.01, "taehv: weight of the (mean z^2 - 1)^2 latent-scale term")
    save_every: int = arg(200, "taehv: checkpoint every N steps")
    log_every: int = arg(10, "taehv: write a metrics line every N steps")


def add_arguments(parser) -> None:
    add_dataclass_arguments(parser, Args)


def build(args: Args) -> TAEHVCodec:
    """TAEHV with He-initialised convs and damped residual branches: with PyTorch's default conv init
    the deep ReLU stack starts near a constant output and sits at the mean-colour solution for hundreds
    of steps (measured: ~11 dB after 250 steps at 64x64)."""
    widths = tuple(int(c) for c in args.decoder_channels.split(","))
    codec = TAEHVCodec(latent_channels=args.latent_channels, encoder_channels=args.encoder_channels,
                       decoder_channels=widths)
    for m in codec.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        if isinstance(m, MemBlock):
            m.conv[-1].weight.data.mul_(0.2)
    return codec


class Reconstruction(torch.nn.Module):
    """taehv's training pass as one module call (DDP averages the gradients of what runs through a call):
    frames [B, T, 3, H, W] -> latents [B, C, T/4, h, w] and the decoder's raw output [B, T, 3, H, W]."""

    def __init__(self, codec: TAEHVCodec):
        super().__init__()
        self.codec = codec

    def forward(self, x: torch.Tensor):
        z = self.codec.encode(x)
        y, _ = run_blocks(self.codec.decoder, z.transpose(1, 2), None)       # unclamped
        return z, y


def fit_pca(args: Args, dataset) -> int:
    """Fit a PCACodec on a seeded frame subset; report PSNR on held-out frames (a tenth, at most 2000)."""
    order = np.random.default_rng(args.seed).permutation(len(dataset))
    held_out = max(1, min(2000, len(dataset) // 10))
    test_idx, fit_idx = np.sort(order[:held_out]), np.sort(order[held_out:held_out + args.pca_frames])
    batches = (frames_to_tensor(dataset.frames[fit_idx[i:i + 1000]])[:, None]       # [B, 1, 3, H, W]
               for i in range(0, len(fit_idx), 1000))
    codec = PCACodec(args.patch, args.latent_channels).fit(tqdm(batches, total=-(-len(fit_idx) // 1000), desc="pca"))
    test = frames_to_tensor(dataset.frames[test_idx])[:, None]
    decoded, _ = codec.decode(codec.encode(test))
    psnr = -10 * torch.log10(F.mse_loss(decoded, test)).item()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(asdict(args), indent=2))
    (out / "metrics.jsonl").write_text(json.dumps({"fit_frames": len(fit_idx), "test_frames": len(test_idx),
                                                   "psnr": psnr}) + "\n")
    save_codec(out, codec)
    print(f"pca codec ({args.latent_channels} of {codec.pixels.latent_channels} components): "
          f"{psnr:.2f} dB on {len(test_idx)} held-out frames -> {out}")
    return 0


def run(namespace) -> int:
    args = from_namespace(Args, namespace)
    if args.data is None:
        raise SystemExit("streamvideo train codec: --data DATASET_FOLDER is required")
    if args.kind not in ("taehv", "pca"):
        raise SystemExit(f"streamvideo train codec: --kind must be taehv or pca, got {args.kind!r}")
    args.start()
    dataset = load_dataset(args.data)
    if args.kind == "pca":
        check_frame_size(args.data, dataset.frames.shape[1:3], args.patch)
        return main_only(lambda: fit_pca(args, dataset))
    codec = build(args)
    check_frame_size(args.data, dataset.frames.shape[1:3], codec.spatial_factor)
    starts = dataset.clip_starts(args.clip_frames, stride=1)                   # any clip inside an episode
    reconstruction = distribute(Reconstruction(codec))
    opt = torch.optim.AdamW(codec.parameters(), lr=args.lr, weight_decay=0.0)
    run = Run(args.out, args, seed=args.seed, total_steps=args.steps, save_every=args.save_every,
              modules={"codec": codec}, optimizers={"opt": opt}, desc="codec")
    skip = codec.temporal_factor - 1                                           # fill-in frames of a fresh decode
    for step in run.steps(args.stop_after):
        pick = starts[torch.randint(len(starts), (args.batch_size,)).numpy()]
        x = frames_to_tensor(dataset.frames[pick[:, None] + np.arange(args.clip_frames)])   # [B, T, 3, H, W]
        x = shard(x)                                                           # this rank's rows of the batch
        z, y = reconstruction(x)
        # global-batch values (the scale term, psnr and latent_rms are not linear in them)
        mse = global_mean(F.mse_loss(y[:, skip:], x[:, skip:]))
        l1 = F.l1_loss(y[:, skip:], x[:, skip:])
        z2 = global_mean(z.pow(2).mean())
        scale = (z2 - 1).pow(2)
        loss = mse + l1 + args.scale_weight * scale
        set_lr(opt, args.lr * linear_warmup(step, args.warmup))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0:
            run.log(loss=loss.item(), mse=mse.item(), psnr=-10 * np.log10(max(mse.item(), 1e-10)),
                    latent_rms=z2.sqrt().item())
    if run.finished and is_main():
        save_codec(args.out, codec)
        print(f"codec -> {args.out}")
    return 0
