"""3-D rotary position embedding (Wan2.1 layout) computed on the fly, so streams have no length limit.

Wan splits each head's channels into a time, a height and a width part and rotates each pair of
channels by `position * frequency`. diffusers precomputes a table of 1024 positions per axis, which
is why public streaming code breaks past ~1024 latent frames. Here the angles are computed from
the positions in float64 every call: a stream at frame 10**9 is as valid as one at frame 0.
"""

from __future__ import annotations

import torch


def axis_split(head_dim: int) -> tuple[int, int, int]:
    """Channels per axis (t, h, w) of one head, as Wan splits them."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def axis_frequencies(dim: int, theta: float, device) -> torch.Tensor:
    """[dim/2] rotation frequencies of one axis (float64)."""
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device)[: dim // 2] / dim)


def rope_angles(frame_pos: torch.Tensor, height: int, width: int, head_dim: int,
                theta: float = 10000.0) -> torch.Tensor:
    """Unit rotations e^(i * angle) for every token of a latent grid.

    frame_pos: [B, F] absolute frame positions (any size, any offset).
    returns [B, F*height*width, 1, head_dim/2] complex64 (token order f, h, w).
    """
    device = frame_pos.device
    t_dim, h_dim, w_dim = axis_split(head_dim)
    batch, frames = frame_pos.shape
    ang_t = frame_pos.to(torch.float64)[..., None] * axis_frequencies(t_dim, theta, device)   # [B, F, t/2]
    ang_h = torch.arange(height, dtype=torch.float64, device=device)[:, None] * axis_frequencies(h_dim, theta, device)
    ang_w = torch.arange(width, dtype=torch.float64, device=device)[:, None] * axis_frequencies(w_dim, theta, device)
    grid = (batch, frames, height, width)
    angles = torch.cat([
        ang_t[:, :, None, None, :].expand(*grid, -1),
        ang_h[None, None, :, None, :].expand(*grid, -1),
        ang_w[None, None, None, :, :].expand(*grid, -1),
    ], dim=-1).reshape(batch, frames * height * width, 1, head_dim // 2)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (0,1), (2,3), ... of x [B, N, heads, head_dim] (one complex multiply:
    a third of the time of the cos/sin form on the CPU, where RoPE was ~12 % of a chunk)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())   # [B, N, heads, head_dim/2]
    return torch.view_as_real(pairs * rotation).flatten(-2).type_as(x)
