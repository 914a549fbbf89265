"""Stage 5, `streamvideo train distill`: diagonal distillation (paper section 3, appendices B, E, G).

Per generator step:
1. Diagonal Forcing self-rollout: the student generates a clip chunk by chunk with the diagonal
   schedule (chunk k runs `schedule.sigmas_for(k)`) through the streaming KV cache with the
   inference window (1 sink + 2 chunks): a chunk's cache entry is the K/V of its last denoising
   pass, still noisy (sigma 0.357). A 7-chunk clip (as the release trains) evicts and uses the sink.
   Gradients flow through one randomly chosen denoising step per chunk (Self Forcing's exit step);
   the cached context is detached, as in SF and the DD release. `--no-diagonal-forcing` writes clean
   outputs instead (t = 0, the Self-Forcing baseline), `--kv-noise T_C` re-noises them to T_C.
2. Loss = 4 * DMD (real score = frozen teacher, fake score = critic) + ODE regression
          + gamma * (4 * flow-DMD + flow regression)                              (paper eq. 12)
   flow-DMD / flow regression compare `FlowFeatures` (conv on consecutive latent differences + MLP)
   of the student's output with an EMA target copy's features of the DMD target / the teacher's x0.
3. `critic_steps` (5) critic updates: flow matching on the detached rollout (fresh noise and t each),
   or on a fresh no-grad rollout each with `--fresh-critic-rollouts` (as the release does).
The critic's learning rate defaults to 0.2x the generator's (the release: 4e-7 vs 2e-6).
Writes `OUT/model/` (a model folder with the schedule, and `kv_noise` for the clean / t_c ablations).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine import flow
from ..engine.model import CausalDiT
from ..engine.presets import from_folder, save_model_folder, trained_env, trained_start_frames
from ..engine.rollout import Conditioning, predict_x0, write_pass
from ..engine.schedules import StepSchedule
from .common import DiTRunArgs, Run, add_dataclass_arguments, arg, from_namespace, linear_warmup, set_lr
from .data import TEXT_SPEC, check_same_actions, text_encoder
from .distributed import distribute, draw, gathered, is_main, shard
from .objectives import (
    ClipCond,
    FlowFeatures,
    chunk_anchors,
    dmd_scores,
    dmd_target,
    ema_copy,
    ema_update,
    flow_matching_loss,
    frame_mask,
    masked_mse,
)
from .student import CACHE_SIGMA, load_pairs, regression_loss

LAMBDA_SPATIAL = 4.0   # weight of DMD (paper eq. 12)
LAMBDA_FLOW = 4.0      # weight of flow-DMD


@dataclass
class Args(DiTRunArgs):
    student: str = arg("runs/student/model", "student model folder (output of `streamvideo train student`)")
    teacher: str = arg("runs/teacher/model", "teacher model folder (real score; the critic starts from it)")
    pairs: str = arg("runs/ode-pairs/pairs.pt", "ODE pairs: rollout conditioning and the regression loss")
    out: str = arg("runs/distill", "output folder (checkpoint, metrics, model/)")
    steps: int = arg(200, "generator steps")
    batch_size: int = arg(4, "clips per generator step", split=True)
    critic_steps: int = arg(5, "critic updates per generator update")
    lr: float = arg(5e-5, "generator AdamW learning rate")
    critic_lr: float | None = arg(None, "critic AdamW learning rate (default: 0.2 x --lr, the release's ratio)")
    fresh_critic_rollouts: bool = arg(False, "a fresh no-grad rollout for every critic update (the release; slower)")
    window_chunks: int = arg(2, "attention window of the rollout, in past chunks (as inference)")
    sink_chunks: int = arg(1, "sink chunks of the rollout (as inference)")
    warmup: int = arg(10, "linear warm-up steps of both optimizers")
    schedule: str = arg("4322222", "diagonal step allocation of the rollout (and of the saved model)")
    no_diagonal_forcing: bool = arg(False, "ablation: clean KV context (t = 0) instead of the last noisy pass")
    kv_noise: float | None = arg(None, "ablation T_C: context = the clean output re-noised to T_C")
    no_flow_loss: bool = arg(False, "ablation: drop the flow-DMD and flow regression terms")
    gamma: float = arg(1.0, "weight of the temporal (flow) terms")
    flow_ema: float = arg(0.99, "EMA decay of the flow-feature target")
    ctx_sigma: float = arg(CACHE_SIGMA, "noise level of context chunks in the regression loss (as the student stage)")
    save_every: int = arg(20, "checkpoint every N steps")
    log_every: int = arg(1, "write a metrics line every N steps")

    def kv_level(self) -> float | None:
        """None = Diagonal Forcing; otherwise the schedule time the clean output is re-noised to."""
        if self.no_diagonal_forcing and self.kv_noise is not None:
            raise ValueError("pass --no-diagonal-forcing (t_c = 0) or --kv-noise T_C, not both")
        return 0.0 if self.no_diagonal_forcing else self.kv_noise


def add_arguments(parser) -> None:
    add_dataclass_arguments(parser, Args)


def self_rollout(student: CausalDiT, x_ctx, has_ctx, cond: ClipCond, schedule: StepSchedule, kv_level, args: Args):
    """Generate a clip chunk by chunk through the streaming cache; chunk 0 of has_ctx streams is the given context.

    x_ctx [B, C, F, h, w] (its first chunk is read); has_ctx [B] bool; kv_level None = Diagonal Forcing.
    returns x [B, C, F, h, w] with gradients through one exit step per chunk.
    """
    batch, _, frames, h, w = x_ctx.shape
    cf = student.config.chunk_frames
    cache = student.make_cache(batch, h, w, window_chunks=args.window_chunks, sink_chunks=args.sink_chunks)
    keep = has_ctx[:, None, None, None, None]

    def noise(shape):   # this rank's rows of the global batch's noise
        return draw(lambda n: torch.randn(n, *shape), batch).to(x_ctx.device)

    outputs = []
    for k in range(frames // cf):
        chunk_cond = Conditioning(cond.text, cond.text_mask, cond.action[:, k * cf:(k + 1) * cf])
        real = x_ctx[:, :, k * cf:(k + 1) * cf]
        sigmas = schedule.sigmas_for(k)
        exit_step = int(torch.randint(len(sigmas), ()))
        x, out = noise(real.shape[1:]), None
        for i, sigma in enumerate(sigmas):
            write = i + 1 == len(sigmas) and kv_level is None
            if write and k == 0:       # a context chunk is cached as inference writes known frames
                x = torch.where(keep, flow.add_noise(real, noise(real.shape[1:]), sigma), x)
            with torch.set_grad_enabled(i == exit_step and torch.is_grad_enabled()):
                x0 = predict_x0(student, x, torch.full((batch,), sigma), chunk_cond, cache, write)
            if i == exit_step:
                out = x0
            if i + 1 < len(sigmas):
                x = flow.add_noise(x0.detach(), noise(x0.shape[1:]), sigmas[i + 1])
        if k == 0:
            out = torch.where(keep, real, out)
            if student.config.reads_anchor:     # the next chunk anchors on the known context, as inference
                cache.set_anchor(torch.where(keep[:, :, 0], real[:, :, -1], cache.anchor_for(real)[:, :, 0]))
        if kv_level is not None:      # ablation: the clean output (or the real context) re-noised to t_c
            clean = torch.where(keep, real, x0.detach()) if k == 0 else x0.detach()
            with torch.no_grad():
                write_pass(student, clean, flow.sigma_of(torch.full((batch,), float(kv_level))), chunk_cond, noise,
                           cache)
        outputs.append(out)
    return torch.cat(outputs, dim=2)


def generator_losses(student, teacher, critic, flow_net, flow_target, pairs, idx, text, args: Args,
                     schedule: StepSchedule) -> dict:
    """All generator terms for one batch of pair indices (DMD, regression, flow-DMD, flow regression)."""
    cf = student.config.chunk_frames
    has_ctx = pairs["has_ctx"][idx]
    x_real = pairs["x0"][idx]                                        # context chunk = real latents (held clean)
    tokens, mask = text.encode([pairs["prompts"][i] for i in pairs["prompt_id"][idx].tolist()])
    cond = ClipCond(tokens, mask, pairs["action"][idx])
    ctx = has_ctx[:, None] & (torch.arange(x_real.shape[2]) < cf)[None]            # [B, F]
    has_ctx, x_real, cond, ctx = shard(has_ctx, x_real, cond, ctx)   # idx is the global batch: this rank's rows
    x = self_rollout(student, x_real, has_ctx, cond, schedule, args.kv_level(), args)
    weight = frame_mask(ctx, x)
    cond = dataclasses.replace(cond, anchor=chunk_anchors(x.detach(), cf))     # the scores see the clip's own frames
    real_x0, fake_x0 = dmd_scores(teacher, critic, x, ctx, cond)
    target = dmd_target(x, real_x0, fake_x0, weight)
    losses = {"dmd": 0.5 * masked_mse(x, target, weight)}
    losses["reg"], pred, x0_teacher = regression_loss(student, pairs, idx, text, args.ctx_sigma)
    if not args.no_flow_loss:
        with torch.no_grad():
            target_feat, teacher_feat = flow_target(target), flow_target(x0_teacher)
        losses["flow_dmd"] = F.mse_loss(flow_net(x), target_feat)
        losses["flow_reg"] = F.mse_loss(flow_net(pred), teacher_feat)
    losses["total"] = (LAMBDA_SPATIAL * losses["dmd"] + losses["reg"]
                       + args.gamma * (LAMBDA_FLOW * losses.get("flow_dmd", 0) + losses.get("flow_reg", 0)))
    losses["sample"], losses["ctx"], losses["cond"], losses["has_ctx"] = x.detach(), ctx, cond, has_ctx
    return losses


def run(namespace) -> int:
    args = from_namespace(Args, namespace)
    kv_level = args.kv_level()
    args.start()
    schedule = StepSchedule.parse(args.schedule)
    student, codec, _, latent_hw, fps, prompt, _ = from_folder(Path(args.student), "cpu", torch.float32)
    teacher = from_folder(Path(args.teacher), "cpu", torch.float32)[0].eval().requires_grad_(False)
    student_name = f"the student {args.student}"
    check_same_actions(teacher.config.action, f"the teacher {args.teacher}", student.config.action, student_name)
    critic = from_folder(Path(args.teacher), "cpu", torch.float32)[0].train()
    flow_net = FlowFeatures(student.config.in_channels, latent_hw)
    flow_target = ema_copy(flow_net)
    pairs = load_pairs(args.pairs, student.config.action, student_name)
    text = text_encoder()
    # under torchrun: DDP for the trained ones, the frozen ones replicated; or all sharded by FSDP2 (--fsdp)
    student, teacher, critic, flow_net, flow_target = (distribute(m, args.fsdp)
                                                       for m in (student, teacher, critic, flow_net, flow_target))
    gen_params = list(student.parameters()) + list(flow_net.parameters())
    opt = torch.optim.AdamW(gen_params, lr=args.lr, weight_decay=0.01, betas=(0.0, 0.999))
    critic_lr = 0.2 * args.lr if args.critic_lr is None else args.critic_lr
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=critic_lr, weight_decay=0.01, betas=(0.0, 0.999))
    run = Run(args.out, args, seed=args.seed, total_steps=args.steps, save_every=args.save_every,
              modules={"student": student, "critic": critic, "flow": flow_net, "flow_target": flow_target},
              optimizers={"opt": opt, "critic_opt": critic_opt}, desc="distill")
    cf = student.config.chunk_frames
    for step in run.steps(args.stop_after):
        scale = linear_warmup(step, args.warmup)
        set_lr(opt, args.lr * scale)
        set_lr(critic_opt, critic_lr * scale)
        idx = torch.randint(len(pairs["x0"]), (args.batch_size,))   # the global batch, drawn alike on every rank
        losses = generator_losses(student, teacher, critic, flow_net, flow_target, pairs, idx, text, args, schedule)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(gen_params, 1.0)
        opt.step()
        ema_update(flow_target, flow_net, args.flow_ema)
        for _ in range(args.critic_steps):
            sample = losses["sample"]
            if args.fresh_critic_rollouts:
                with torch.no_grad():
                    sample = self_rollout(student, shard(pairs["x0"][idx]), losses["has_ctx"], losses["cond"], schedule,
                                          kv_level, args)
            critic_cond = dataclasses.replace(losses["cond"], anchor=chunk_anchors(sample, cf))
            critic_loss = flow_matching_loss(critic, sample, losses["ctx"], critic_cond, causal=True)
            critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
            critic_opt.step()
        if step % args.log_every == 0:
            run.log(critic=critic_loss.item(), **{k: v.item() for k, v in losses.items()
                                                  if k in ("total", "dmd", "reg", "flow_dmd", "flow_reg")})
    if run.finished:
        student = gathered(student)              # every rank joins in; rank 0 gets the whole weights and writes
    if run.finished and is_main():
        folder = save_model_folder(Path(args.out) / "model", student, codec, TEXT_SPEC, latent_hw, fps, prompt,
                                   schedule=args.schedule, prompts=pairs["prompts"],
                                   extra={"role": "student", "kv_noise": kv_level, "env": trained_env(args.student)},
                                   start_frames=trained_start_frames(args.student, pairs["prompts"]))
        print(f"distilled student -> {folder}")
    return 0
