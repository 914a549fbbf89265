"""Stage 3, `streamvideo train ode-pairs`: teacher ODE trajectories at the student's timesteps.

Each pair: a data clip's first chunk as clean context (or, with probability 1 - ctx_prob, none),
its actions and prompt; the causal teacher's block-causal Euler trajectory from noise, kept at the noise levels the
student's schedule visits (for 4322222: sigma 1.0, 0.9331, 0.7326, 0.3571), and its end point x0.
One step = one batch of pairs; the pairs fill a buffer that is checkpointed like a model, so a
killed run resumes where it stopped. Writes `OUT/pairs.pt`, with the teacher's action space ("action_space",
`ActionSpec.to_dict`); a dataset recorded with another space is refused.

Under torchrun the sampling is sharded: every rank draws each batch whole, samples its own rows with its
copy of the teacher, and the rows are gathered back on every rank (so every rank's buffer, and the
checkpoint rank 0 writes, hold the whole batch). --batch-size and --pairs split into equal shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..engine.presets import from_folder
from ..engine.schedules import StepSchedule
from .common import Run, RunArgs, add_dataclass_arguments, arg, from_namespace
from .data import cached_latent_clips, check_same_actions, dataset_actions, noop_context, text_encoder
from .distributed import distribute, gather_rows, is_main, shard
from .objectives import ClipCond, ode_sample

PAIRS = "pairs.pt"


@dataclass
class Args(RunArgs):
    data: str = arg(None, "dataset folder written by `streamvideo collect`")
    codec: str = arg("runs/codec", "the teacher's --codec (a codec folder holding the latent cache, or pixel:P)")
    teacher: str = arg("runs/teacher/model", "teacher model folder")
    out: str = arg("runs/ode-pairs", "output folder (checkpoint, metrics, pairs.pt)")
    clip_chunks: int = arg(4, "chunks per clip: the teacher's training window (1 sink + 2 previous + current)")
    schedule: str = arg("4322222", "the student's step allocation: its noise levels are recorded")
    pairs: int = arg(512, "number of pairs", split=True)
    batch_size: int = arg(16, "pairs per step", split=True)
    ctx_prob: float = arg(0.75, "probability that a pair starts from a clean context chunk")
    sample_steps: int = arg(24, "teacher Euler steps (the student timesteps are added to the grid)")
    save_every: int = arg(4, "checkpoint every N steps")


class PairBuffer(nn.Module):
    """Preallocated pair tensors as buffers, so Run checkpoints them with the step."""

    def __init__(self, n: int, latent_shape, action_dim: int, levels: int):
        super().__init__()
        self.register_buffer("x0", torch.zeros(n, *latent_shape))                 # teacher end points
        self.register_buffer("xt", torch.zeros(n, levels, *latent_shape))         # states at the student's sigmas
        self.register_buffer("action", torch.zeros(n, latent_shape[1], action_dim))
        self.register_buffer("prompt_id", torch.zeros(n, dtype=torch.long))
        self.register_buffer("has_ctx", torch.zeros(n, dtype=torch.bool))


def add_arguments(parser) -> None:
    add_dataclass_arguments(parser, Args)


def run(namespace) -> int:
    args = from_namespace(Args, namespace)
    if args.data is None:
        raise SystemExit("streamvideo train ode-pairs: --data DATASET_FOLDER is required")
    args.start()
    teacher, codec, _, _, _, _, _ = from_folder(Path(args.teacher), "cpu", torch.float32)
    teacher.eval().requires_grad_(False)
    cf, action_spec = teacher.config.chunk_frames, teacher.config.action
    check_same_actions(dataset_actions(args.data), args.data, action_spec, f"the teacher {args.teacher}")
    clips = cached_latent_clips(args.codec, args.data, args.clip_chunks * cf * codec.temporal_factor, action_spec)
    text = text_encoder()
    teacher = distribute(teacher)                # on this rank's device
    sigmas = StepSchedule.parse(args.schedule).all_sigmas()
    buffer = PairBuffer(args.pairs, clips.latents.shape[1:], clips.actions.shape[-1], len(sigmas))
    steps = -(-args.pairs // args.batch_size)
    run = Run(args.out, args, seed=args.seed, total_steps=steps, save_every=args.save_every,
              modules={"pairs": buffer}, optimizers={}, desc="ode-pairs")
    frames = clips.latents.shape[2]
    for step in run.steps(args.stop_after):
        lo, hi = step * args.batch_size, min((step + 1) * args.batch_size, args.pairs)
        idx = torch.randint(len(clips), (hi - lo,))
        has_ctx = torch.rand(hi - lo) < args.ctx_prob
        ctx = has_ctx[:, None] & (torch.arange(frames) < cf)[None]                    # [B, F]
        action = noop_context(clips.actions[idx], has_ctx, cf, action_spec)
        tokens, mask = text.encode([clips.prompts[i] for i in clips.prompt_ids[idx].tolist()])
        x0_ctx, ctx_rows, cond = shard(clips.latents[idx].float(), ctx, ClipCond(tokens, mask, action))
        x0, states = ode_sample(teacher, x0_ctx, ctx_rows, cond, args.sample_steps, record=sigmas)
        x0, xt = gather_rows(x0, torch.stack([states[s] for s in sigmas], 1))    # the whole batch, on every rank
        buffer.x0[lo:hi] = x0
        buffer.xt[lo:hi] = xt
        buffer.action[lo:hi], buffer.prompt_id[lo:hi], buffer.has_ctx[lo:hi] = action, clips.prompt_ids[idx], has_ctx
        run.log(x0_rms=x0.pow(2).mean().sqrt().item())
    if run.finished and is_main():
        torch.save({**buffer.state_dict(), "prompts": clips.prompts, "sigmas": sigmas, "chunk_frames": cf,
                    "action_space": action_spec.to_dict()}, Path(args.out) / PAIRS)
        print(f"ode pairs -> {Path(args.out) / PAIRS}")
    return 0
