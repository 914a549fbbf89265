"""Stage 4, `streamvideo train student`: the causal student's init (CausVid-style ODE regression).

The student starts from the teacher's weights and runs block-causally (each chunk sees its own and
earlier chunks). Every chunk of an ODE pair is fed at one of the student's noise levels, drawn per
chunk, and the student regresses the teacher's x0. A context chunk is fed as the generator writes
it at inference (re-noised to `ctx_sigma`, the diagonal schedule's last level) and not scored.
Writes `OUT/model/` (a model folder with the default schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..engine import flow
from ..engine.actions import ActionSpec
from ..engine.presets import GAME_ACTIONS, from_folder, save_model_folder, trained_env, trained_start_frames
from ..engine.schedules import DIAGONAL_SIGMAS
from .common import DiTRunArgs, Run, add_dataclass_arguments, arg, from_namespace, linear_warmup, set_lr
from .data import TEXT_SPEC, check_same_actions, text_encoder
from .distributed import distribute, gathered, is_main, shard
from .objectives import ClipCond, chunk_anchors, frame_mask, masked_mse, predict_x0

CACHE_SIGMA = DIAGONAL_SIGMAS[2][-1]    # 0.3571: the level of diagonal mode's cache entries (warped t = 100)


@dataclass
class Args(DiTRunArgs):
    teacher: str = arg("runs/teacher/model", "teacher model folder (the student's init)")
    pairs: str = arg("runs/ode-pairs/pairs.pt", "pairs.pt written by `streamvideo train ode-pairs`")
    out: str = arg("runs/student", "output folder (checkpoint, metrics, model/)")
    steps: int = arg(400, "optimizer steps")
    batch_size: int = arg(8, "pairs per step", split=True)
    lr: float = arg(2e-4, "AdamW learning rate")
    warmup: int = arg(20, "linear warm-up steps")
    ctx_sigma: float = arg(CACHE_SIGMA, "noise level the context chunk is re-noised to (the generator's write level)")
    schedule: str = arg("4322222", "step allocation stored in the model folder")
    save_every: int = arg(50, "checkpoint every N steps")
    log_every: int = arg(10, "write a metrics line every N steps")


def add_arguments(parser) -> None:
    add_dataclass_arguments(parser, Args)


def load_pairs(path, action_spec: ActionSpec, model: str) -> dict:
    """pairs.pt, refused when its teacher took another action space than `model`'s `action_spec`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `streamvideo train ode-pairs` first")
    pairs = torch.load(path, weights_only=False)
    recorded = ActionSpec.from_dict(pairs.get("action_space", GAME_ACTIONS.to_dict()))  # older pairs: the game's
    check_same_actions(recorded, str(path), action_spec, model)
    return pairs


def pair_batch(pairs: dict, idx: torch.Tensor, text, ctx_sigma: float):
    """A batch of ODE pairs as block-causal student inputs.

    returns (xt [B, C, F, h, w], sigma [B, F], x0 target, ctx [B, F] bool, ClipCond with the teacher's clean
    frame before each chunk as its anchor).
    """
    x0, xt_all, has_ctx = pairs["x0"][idx], pairs["xt"][idx], pairs["has_ctx"][idx]   # xt_all [B, S, C, F, h, w]
    batch, n_t, _, frames = xt_all.shape[:4]
    cf = pairs["chunk_frames"]
    chunk = torch.arange(frames) // cf                                                  # [F]
    pick = torch.randint(n_t, (batch, frames // cf))[:, chunk]                          # [B, F] timestep per chunk
    xt = xt_all.gather(1, pick[:, None, None, :, None, None].expand(-1, 1, *xt_all.shape[2:]).contiguous())[:, 0]
    sigma = torch.tensor(pairs["sigmas"], dtype=torch.float32)[pick]                   # [B, F]
    ctx = has_ctx[:, None] & (chunk < 1)[None]                                          # [B, F]
    ctx_xt = flow.add_noise(x0, torch.randn_like(x0), ctx_sigma)
    xt = torch.where(ctx[:, None, :, None, None], ctx_xt, xt)
    sigma = torch.where(ctx, ctx_sigma, sigma)
    tokens, mask = text.encode([pairs["prompts"][i] for i in pairs["prompt_id"][idx].tolist()])
    return xt, sigma, x0, ctx, ClipCond(tokens, mask, pairs["action"][idx], chunk_anchors(x0, cf))


def regression_loss(student, pairs: dict, idx, text, ctx_sigma: float) -> tuple[torch.Tensor, ...]:
    """Block-causal x0 regression on ODE pairs -> (loss, student x0 [B, C, F, h, w], teacher x0).

    idx: the global batch, the same on every rank; the batch is drawn whole and each rank keeps its rows.
    """
    xt, sigma, x0, ctx, cond = shard(*pair_batch(pairs, idx, text, ctx_sigma))
    pred = predict_x0(student, xt, sigma, cond, causal=True)
    return masked_mse(pred, x0, frame_mask(ctx, x0)), pred, x0


def run(namespace) -> int:
    args = from_namespace(Args, namespace)
    args.start()
    student, codec, _, latent_hw, fps, prompt, _ = from_folder(Path(args.teacher), "cpu", torch.float32)
    pairs = load_pairs(args.pairs, student.config.action, f"the teacher {args.teacher}")
    text = text_encoder()
    student = distribute(student, args.fsdp)     # DDP under torchrun, or FSDP2 shards (--fsdp)
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    run = Run(args.out, args, seed=args.seed, total_steps=args.steps, save_every=args.save_every,
              modules={"student": student}, optimizers={"opt": opt}, desc="student")
    for step in run.steps(args.stop_after):
        idx = torch.randint(len(pairs["x0"]), (args.batch_size,))   # the global batch, drawn alike on every rank
        loss, _, _ = regression_loss(student, pairs, idx, text, args.ctx_sigma)
        set_lr(opt, args.lr * linear_warmup(step, args.warmup))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0:
            run.log(loss=loss.item())
    if run.finished:
        student = gathered(student)              # every rank joins in; rank 0 gets the whole weights and writes
    if run.finished and is_main():
        folder = save_model_folder(Path(args.out) / "model", student, codec, TEXT_SPEC, latent_hw, fps, prompt,
                                   schedule=args.schedule, prompts=pairs["prompts"],
                                   extra={"role": "student", "env": trained_env(args.teacher)},
                                   start_frames=trained_start_frames(args.teacher, pairs["prompts"]))
        print(f"student -> {folder}")
    return 0
