"""Flow-matching conventions of Wan2.1 (paper appendix B).

t in [0, 1000] is the schedule's time; sigma = t/1000 warped by the shift k = 5:
    sigma' = k*s / (1 + (k-1)*s)
x_t = (1 - sigma) x0 + sigma eps; the network predicts the velocity v = eps - x0 and takes
1000 * sigma as its timestep input (as diffusers' FlowMatchEulerDiscreteScheduler does).
"""

from __future__ import annotations

import torch

SHIFT = 5.0


def shift_sigma(s, shift: float = SHIFT):
    """Warp a uniform sigma in [0, 1] towards the noisy end."""
    return shift * s / (1 + (shift - 1) * s)


def sigma_of(t, shift: float = SHIFT):
    """Schedule time t in [0, 1000] -> noise level sigma in [0, 1]."""
    return shift_sigma(torch.as_tensor(t, dtype=torch.float32) / 1000.0, shift)


def network_timestep(sigma):
    """What the network sees as its timestep for noise level sigma."""
    return sigma * 1000.0


def add_noise(x0: torch.Tensor, eps: torch.Tensor, sigma) -> torch.Tensor:
    return (1 - sigma) * x0 + sigma * eps


def velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return eps - x0


def x0_from_velocity(xt: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    return xt - sigma * v


def eps_from_velocity(xt: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    return xt + (1 - sigma) * v


def frame_sigma(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B, F] per-frame sigmas -> broadcastable to latents [B, C, F, H, W]."""
    return sigma.to(like.dtype)[:, None, :, None, None]
