"""Losses and samplers the stages share: flow matching, the teacher's ODE sampler, DMD, flow features.

Clips are latents [B, C, F, h, w] with per-frame noise levels sigma [B, F]. Context frames (the
first chunk of clips that start from known frames) are clean (sigma = 0) and never scored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..engine import flow
from ..engine.model import CausalDiT
from .distributed import draw, global_mean, randn_like


def chunk_anchors(x0: torch.Tensor, chunk_frames: int, first: torch.Tensor | None = None) -> torch.Tensor:
    """The clean frame before each chunk of contiguous clean latents x0 [B, C, F, h, w] -> [B, C, K, h, w]: the
    last frame of the chunk before, and `first` ([B, C, h, w], default zeros: a stream's start) for chunk 0."""
    before = x0[:, :, chunk_frames - 1:-1:chunk_frames]
    first = torch.zeros_like(x0[:, :, 0]) if first is None else first
    return torch.cat([first[:, :, None], before], dim=2)


@dataclass
class ClipCond:
    text: torch.Tensor          # [B, L, text_dim]
    text_mask: torch.Tensor     # [B, L] bool
    action: torch.Tensor        # [B, F, A] per latent frame
    anchor: torch.Tensor | None = None   # [B, C, K, h, w] clean frame before each chunk (config.reads_anchor)


def frame_mask(ctx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B, F] bool (True = context) -> float weights of the scored frames, broadcastable to latents."""
    return (~ctx).to(like.dtype)[:, None, :, None, None]


def masked_mse(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the frames with weight 1 (weight [B, 1, F, 1, 1]); under torchrun over the
    scored elements of the global batch (each rank's count differs)."""
    per_elem = (a - b).pow(2) * weight
    return per_elem.sum() / global_mean(weight.expand_as(a).sum()).clamp(min=1)


def velocity(model: CausalDiT, xt: torch.Tensor, sigma: torch.Tensor, cond: ClipCond, causal: bool = False):
    """xt [B, C, F, h, w], sigma [B, F] -> velocity [B, C, F, h, w]."""
    return model(xt, flow.network_timestep(sigma), cond.text, cond.text_mask, cond.action, causal=causal,
                 anchor=cond.anchor)


def predict_x0(model: CausalDiT, xt, sigma, cond: ClipCond, causal: bool = False) -> torch.Tensor:
    return flow.x0_from_velocity(xt, velocity(model, xt, sigma, cond, causal), flow.frame_sigma(sigma, xt))


def noise_clip(x0: torch.Tensor, sigma: torch.Tensor, ctx: torch.Tensor):
    """Noise every non-context frame of x0 to its level: sigma [B] -> (xt, eps, per-frame sigma [B, F]).
    x0 is this rank's rows; eps is their rows of the global batch's noise (`distributed.randn_like`)."""
    sigma_f = torch.where(ctx, torch.zeros_like(ctx, dtype=x0.dtype), sigma[:, None].to(x0))
    eps = randn_like(x0)
    return flow.add_noise(x0, eps, flow.frame_sigma(sigma_f, x0)), eps, sigma_f


def random_sigma(batch: int, t_min: float = 0.0, t_max: float = 1000.0) -> torch.Tensor:
    """Schedule time uniform in [t_min, t_max], warped by the shift -> sigma [B]."""
    return flow.sigma_of(t_min + (t_max - t_min) * torch.rand(batch))


def flow_matching_loss(model: CausalDiT, x0, ctx, cond: ClipCond, sigma=None, causal: bool = False):
    """The teacher's (and the critic's) denoising loss: velocity MSE on the non-context frames."""
    sigma = draw(random_sigma, len(x0)) if sigma is None else sigma
    xt, eps, sigma_f = noise_clip(x0, sigma, ctx)
    v = velocity(model, xt, sigma_f, cond, causal)
    return masked_mse(v, flow.velocity(x0, eps), frame_mask(ctx, x0))


@torch.no_grad()
def ode_sample(model: CausalDiT, x0_ctx, ctx, cond: ClipCond, steps: int, record=()):
    """The causal teacher's many-step Euler sampler over whole clips, context frames held clean.

    Block-causal: all chunks descend the grid together, each seeing the earlier ones at its own level,
    a case the teacher trains on with `sync_prob`. A model that reads the clean frame before each chunk
    (`config.reads_anchor`) samples chunk after chunk instead, each seeing the finished ones clean (context,
    as the teacher trains on) and anchored on the last of them; `cond.anchor` is then ignored.
    x0_ctx [B, C, F, h, w] (only its context frames are read); ctx [B, F] bool; record: noise levels sigma
    at which to keep the state (they are added to the grid of `steps` shift-warped levels).
    returns (x0 [B, C, F, h, w], {sigma: x_sigma} for the recorded levels).
    """
    uniform = {round(float(flow.shift_sigma(1 - i / steps)), 7) for i in range(steps + 1)}
    grid = sorted(uniform | {float(s) for s in record}, reverse=True)
    weight = frame_mask(ctx, x0_ctx)
    x = randn_like(x0_ctx) * weight + x0_ctx * (1 - weight)
    if not model.config.reads_anchor:
        return euler(model, x, ctx, cond, grid, record, weight)
    cf, frames = model.config.chunk_frames, x.shape[2]
    states = {s: x.clone() for s in record}
    for end in range(cf, frames + 1, cf):        # chunk by chunk: frames [end - cf, end) move, earlier are done
        if ctx[:, end - cf:end].all():
            continue
        prefix = x[:, :, :end]
        done = ctx[:, :end] | (torch.arange(end, device=ctx.device) < end - cf)
        part = ClipCond(cond.text, cond.text_mask, cond.action[:, :end], chunk_anchors(prefix, cf))
        prefix, chunk_states = euler(model, prefix, done, part, grid, record, frame_mask(done, prefix))
        x = torch.cat([prefix, x[:, :, end:]], dim=2)
        for s in record:
            states[s][:, :, end - cf:end] = chunk_states[s][:, :, end - cf:end]
    return x, states


def euler(model: CausalDiT, x, done, cond: ClipCond, grid, record, weight):
    """Euler steps along the sigma grid for the frames not `done` (held at sigma 0) -> (x, {sigma: state})."""
    states = {}
    for s_now, s_next in zip(grid[:-1], grid[1:]):
        if s_now in record:
            states[s_now] = x.clone()
        v = velocity(model, x, torch.where(done, 0.0, s_now), cond, causal=True)
        x = x + (s_next - s_now) * v * weight
    return x, states


# --------------------------------------------------------------------------- DMD

def dmd_target(x: torch.Tensor, real_x0: torch.Tensor, fake_x0: torch.Tensor, weight: torch.Tensor):
    """DMD (Yin et al. 2024): the generator sample moves along fake - real score, normalised per sample.

    x, real_x0, fake_x0 [B, C, F, h, w]; returns the stop-gradient target x - grad.
    """
    dims = tuple(range(1, x.ndim))
    norm = ((x - real_x0).abs() * weight).sum(dims, keepdim=True) / weight.expand_as(x).sum(dims, keepdim=True)
    grad = (fake_x0 - real_x0) / norm.clamp(min=1e-6)
    return (x - grad).detach()


def dmd_scores(teacher: CausalDiT, critic: CausalDiT, x: torch.Tensor, ctx, cond: ClipCond, t_min=20.0, t_max=980.0):
    """Noise the generated clip once; x0 predictions of the real score (teacher) and fake score (critic),
    both block-causal as the teacher is trained."""
    with torch.no_grad():
        xt, _, sigma_f = noise_clip(x.detach(), draw(lambda n: random_sigma(n, t_min, t_max), len(x)), ctx)
        return predict_x0(teacher, xt, sigma_f, cond, causal=True), predict_x0(critic, xt, sigma_f, cond, causal=True)


# --------------------------------------------------------------------------- flow distribution matching

class FlowFeatures(nn.Module):
    """Motion features of a latent clip (paper appendix G): conv on consecutive latent differences + MLP.

    [B, C, F, h, w] -> L2-normalised features [B, F-1, dim].
    """

    def __init__(self, channels: int, latent_hw: tuple[int, int], width: int = 32, dim: int = 64):
        super().__init__()
        flat = width * ((latent_hw[0] + 1) // 2) * ((latent_hw[1] + 1) // 2)
        self.conv = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU())
        self.mlp = nn.Sequential(nn.Linear(flat, dim * 2), nn.SiLU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = (x[:, :, 1:] - x[:, :, :-1]).transpose(1, 2)                # [B, F-1, C, h, w]
        h = self.conv(diff.flatten(0, 1)).flatten(1)                        # [B*(F-1), width*h/2*w/2]
        return F.normalize(self.mlp(h).unflatten(0, diff.shape[:2]), dim=-1)


def ema_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o, 1 - decay)
