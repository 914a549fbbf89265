"""Stage 2, `streamvideo train teacher`: a many-step flow-matching DiT, action + text conditioned,
bidirectional over clips of `clip_chunks` chunks.

With probability `ctx_prob` a clip's first chunk is clean context (sigma = 0, no-op actions, not
scored), so the teacher learns to continue known frames, as the world model is used.
Writes `OUT/model/`, a model folder (`streamvideo.json` role "teacher") that `ode-pairs` and `eval` read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..model import CausalDiT, ModelConfig
from ..presets import GAME_ACTIONS, save_model_folder
from .common import Run, RunArgs, add_dataclass_arguments, arg, from_namespace, linear_warmup, set_lr
from .data import TEXT_SPEC, cached_latent_clips, load_codec, noop_context, text_encoder
from .objectives import ClipCond, flow_matching_loss


@dataclass
class Args(RunArgs):
    data: str = arg(None, "dataset folder written by `streamvideo collect`")
    codec: str = arg("runs/codec", "output folder of `streamvideo train codec`, or pixel:P for P x P pixel patches")
    out: str = arg("runs/teacher", "output folder (checkpoint, metrics, model/)")
    steps: int = arg(1500, "optimizer steps")
    batch_size: int = arg(8, "clips per step")
    clip_chunks: int = arg(7, "chunks per training clip (7, as the ODE pairs and distillation rollouts)")
    chunk_frames: int = arg(3, "latent frames per chunk")
    ctx_prob: float = arg(0.75, "probability that a clip's first chunk is clean context")
    heads: int = arg(4, "attention heads")
    head_dim: int = arg(32, "channels per head (width = heads * head_dim)")
    layers: int = arg(6, "transformer blocks")
    ffn_dim: int = arg(512, "feed-forward hidden width")
    lr: float = arg(6e-4, "AdamW learning rate")
    warmup: int = arg(100, "linear warm-up steps")
    sample_steps: int = arg(32, "Euler steps the teacher samples with (stored in the model folder)")
    fps: float = arg(15.0, "frames per second of the data (the game's render_fps)")
    save_every: int = arg(100, "checkpoint every N steps")
    log_every: int = arg(10, "write a metrics line every N steps")


def add_arguments(parser) -> None:
    add_dataclass_arguments(parser, Args)


def model_config(args: Args, latent_channels: int) -> ModelConfig:
    return ModelConfig(patch_size=(1, 1, 1), num_heads=args.heads, head_dim=args.head_dim, ffn_dim=args.ffn_dim,
                       num_layers=args.layers, in_channels=latent_channels, out_channels=latent_channels,
                       text_dim=TEXT_SPEC["dim"], freq_dim=128, chunk_frames=args.chunk_frames, action=GAME_ACTIONS)


def run(namespace) -> int:
    args = from_namespace(Args, namespace)
    if args.data is None:
        raise SystemExit("streamvideo train teacher: --data DATASET_FOLDER is required")
    args.start()
    codec = load_codec(args.codec)
    clips = cached_latent_clips(args.codec, args.data, args.clip_chunks * args.chunk_frames * codec.temporal_factor)
    text = text_encoder()
    model = CausalDiT(model_config(args, codec.latent_channels))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    run = Run(args.out, args, seed=args.seed, total_steps=args.steps, save_every=args.save_every,
              modules={"model": model}, optimizers={"opt": opt}, desc="teacher")
    frames = clips.latents.shape[2]
    for step in run.steps(args.stop_after):
        idx = torch.randint(len(clips), (args.batch_size,))
        x0 = clips.latents[idx].float()                                                    # [B, C, F, h, w]
        has_ctx = torch.rand(args.batch_size) < args.ctx_prob                         # [B]
        ctx = has_ctx[:, None] & (torch.arange(frames) < args.chunk_frames)[None]     # [B, F]
        tokens, mask = text.encode([clips.prompts[i] for i in clips.prompt_ids[idx].tolist()])
        cond = ClipCond(tokens, mask, noop_context(clips.actions[idx], has_ctx, args.chunk_frames, GAME_ACTIONS))
        loss = flow_matching_loss(model, x0, ctx, cond)
        set_lr(opt, args.lr * linear_warmup(step, args.warmup))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0:
            run.log(loss=loss.item(), grad_norm=grad_norm.item())
    if run.finished:
        folder = save_model_folder(Path(args.out) / "model", model, codec, TEXT_SPEC, clips.latents.shape[-2:],
                                   args.fps, clips.prompts[0], extra={"role": "teacher",
                                                                      "sample_steps": args.sample_steps})
        print(f"teacher -> {folder}")
    return 0
