"""The action probe: is a run learning what the keys do? Three measures on held-out windows of the data.

- **action gap**: the x0 error of a window's last chunk under a wrong key divided by the error under the
  true key, on windows where the picture moved (ratio of summed errors, every wrong key of a Discrete
  space, the farthest value of a Box, each key set moved by one for MultiDiscrete). Same noise for both,
  context clean. An action-blind model reads 1.00; a model that knows each key's effect reads far above.
- **copy check**: on windows where nothing moved, the x0 error at high noise (sigma 0.9) beside the error
  of copying the frame before the chunk. Until the model copies that well, no key can lower its loss.
- **direction check**: the last chunk sampled (Euler, `sample_steps`) from real context under each key of a
  Discrete space; the whole-latent-pixel shift from the frame before to the chunk's first frame (the best of
  the shifts within `MAX_SHIFT`) is compared with the shift the data shows most often under that key. Chance
  is what an action-blind model scores (the largest share of keys with one common shift); the same detector
  on the real frames is the ceiling. A space whose keys never move the picture by a whole latent pixel
  (CartPole) reports none.
- **rollout check**: the three measures above ask about one step ahead of real frames; a world model is played
  on its own. From CONTEXT_CHUNKS real chunks of each held-out clip, the engine (`ChunkRollout`, `sample_steps`
  uniform steps per chunk, the inference window) generates ROLLOUT_CHUNKS chunks under the clip's actions; the
  latent MSE against the data of the first and the last generated chunk is reported beside copying the last
  real frame. An error that climbs from the first chunk to the last is compounding (exposure bias).

Everything runs under `torch.random.fork_rng` with its own seed: probing never changes the run it watches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine import flow
from ..engine.actions import ActionSpec
from ..engine.rollout import ChunkRollout, Conditioning, NoiseSource
from ..engine.schedules import StepSchedule
from .objectives import ClipCond, ode_sample

DIRECTION_WINDOWS = 16  # windows the direction check samples from (each under every key)
MAX_SHIFT = 2          # latent pixels the direction detector searches in each axis
MOVED = 0.25           # a window moved when its last chunk differs from the frame before by this share of ...
STILL = 0.05           # ... the frame's own spread; below this share it stood still
PROBE_SIGMAS = (0.3, 0.6, 0.9)
CONTEXT_CHUNKS = 3     # real chunks a rollout check starts from (the inference window: 1 sink + 2 chunks)
ROLLOUT_CHUNKS = 8     # chunks it then generates on the model's own output


@dataclass
class ProbeWindows:
    x0: torch.Tensor        # [B, C, F, h, w] clean latents, contiguous chunks
    action: torch.Tensor    # [B, F, A]
    anchor: torch.Tensor    # [B, C, K, h, w]
    text: torch.Tensor      # [B, L, text_dim]
    text_mask: torch.Tensor
    chunk_frames: int
    sequence: torch.Tensor | None = None          # [B, C, T, h, w] each clip from its start, T = (CONTEXT_CHUNKS +
    sequence_action: torch.Tensor | None = None   # ROLLOUT_CHUNKS) chunks, and its actions [B, T, A] (rollout check)

    @property
    def last(self) -> slice:
        return slice(self.x0.shape[2] - self.chunk_frames, None)

    def head(self, n: int) -> ProbeWindows:
        """The first n windows."""
        return ProbeWindows(self.x0[:n], self.action[:n], self.anchor[:n], self.text[:n], self.text_mask[:n],
                            self.chunk_frames, *(None if t is None else t[:n]
                                                 for t in (self.sequence, self.sequence_action)))

    def cond(self, action: torch.Tensor | None = None) -> ClipCond:
        return ClipCond(self.text, self.text_mask, self.action if action is None else action, self.anchor)

    def change(self) -> torch.Tensor:
        """[B] how much the last chunk differs from the frame before it, relative to that frame's spread."""
        before = self.x0[:, :, self.last.start - 1:self.last.start]
        diff = (self.x0[:, :, self.last] - before).abs().mean((1, 2, 3, 4))
        return diff / (before - before.mean((3, 4), keepdim=True)).abs().mean((1, 2, 3, 4)).clamp(min=1e-6)

    def with_last_action(self, vector: torch.Tensor) -> torch.Tensor:
        """The windows' actions with every frame of the last chunk set to vector [B, A]."""
        action = self.action.clone()
        action[:, self.last] = vector[:, None]
        return action


def wrong_actions(true: torch.Tensor, spec: ActionSpec) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Alternatives to the true action vectors [B, A]: a list of (vectors [B, A], rows where they differ [B])."""
    if spec.kind == "discrete":
        eye = torch.eye(spec.n)
        return [(eye[k].expand_as(true), true.argmax(-1) != k) for k in range(spec.n)]
    if spec.kind == "continuous":   # the farthest bound of the rescaled [-1, 1] range, value by value
        far = torch.where(true >= 0, -1.0, 1.0)
        return [(far, torch.ones(len(true), dtype=torch.bool))]
    if spec.kind == "multi_discrete":   # every key set moved on by one choice
        parts, start = [], 0
        for size in spec.sizes:
            parts.append(true[:, start:start + size].roll(1, dims=-1))
            start += size
        return [(torch.cat(parts, -1), torch.ones(len(true), dtype=torch.bool))]
    return []


def last_chunk_error(model, windows: ProbeWindows, sigma: float, eps: torch.Tensor, action=None) -> torch.Tensor:
    """[B] x0 MSE of the last chunk at noise level sigma, context chunks clean."""
    frames = windows.x0.shape[2]
    sig = torch.zeros(len(eps), frames)
    sig[:, windows.last] = sigma
    xt = flow.add_noise(windows.x0, eps, flow.frame_sigma(sig, windows.x0))
    v = model(xt, flow.network_timestep(sig), windows.text, windows.text_mask,
              windows.action if action is None else action, causal=True, anchor=windows.anchor)
    x0 = flow.x0_from_velocity(xt, v, flow.frame_sigma(sig, xt))
    return (x0 - windows.x0)[:, :, windows.last].pow(2).mean((1, 2, 3, 4))


def best_shift(frame: torch.Tensor, before: torch.Tensor, r: int = MAX_SHIFT) -> torch.Tensor:
    """[B, 2] the (dx, dy) in [-r, r] with frame(p) closest to before(p + d), over the overlap: [B, C, h, w] each."""
    h, w = frame.shape[-2:]
    errors, shifts = [], []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            a = frame[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
            b = before[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
            errors.append((a - b).pow(2).mean((1, 2, 3)))
            shifts.append((dx, dy))
    return torch.tensor(shifts)[torch.stack(errors, 1).argmin(1)]


def key_shifts(windows: ProbeWindows, spec: ActionSpec) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """({key: the shift the real frames show most often under it}, [B] whether each window's real frames show
    their key's shift), over all the windows."""
    start = windows.last.start
    real_shift = best_shift(windows.x0[:, :, start], windows.x0[:, :, start - 1])
    keys = windows.action[:, start].argmax(-1)
    modes = {}
    for k in range(spec.n):
        seen = real_shift[keys == k]
        if len(seen):
            values, counts = seen.unique(dim=0, return_counts=True)
            modes[k] = values[counts.argmax()]
    return modes, (real_shift == torch.stack([modes[int(k)] for k in keys])).all(-1)


def direction_check(model, windows: ProbeWindows, spec: ActionSpec, sample_steps: int, sampled: int) -> dict:
    """Accuracy of sampled rollouts' shifts (from the first `sampled` windows) against the data's shift per key,
    with chance and the real frames' score (the detector's ceiling on this data)."""
    if spec.kind != "discrete":
        return {}
    modes, real = key_shifts(windows, spec)
    if not any(m.abs().sum() > 0 for m in modes.values()):
        return {}
    windows, start = windows.head(sampled), windows.last.start
    before = windows.x0[:, :, start - 1]
    keys = windows.action[:, start]
    ctx = torch.zeros(len(keys), windows.x0.shape[2], dtype=torch.bool)
    ctx[:, :start] = True
    hits = []
    for k in modes:
        action = windows.with_last_action(torch.eye(spec.n)[k].expand(len(keys), -1))
        sample, _ = ode_sample(model, windows.x0, ctx, windows.cond(action), sample_steps)
        hits.append((best_shift(sample[:, :, start], before) == modes[k]).all(-1).float())
    shared = torch.stack(list(modes.values())).unique(dim=0, return_counts=True)[1].max()
    return {"direction": torch.stack(hits).mean().item(), "direction_chance": shared.item() / len(modes),
            "direction_real": real.float().mean().item()}


def rollout_check(model, windows: ProbeWindows, spec: ActionSpec, sample_steps: int) -> dict:
    """Latent MSE of the first and last chunk a rollout generates on its own output from real context, beside
    copying the last real frame (see the module doc); {} without sequences."""
    if windows.sequence is None:
        return {}
    seq, action, cf = windows.sequence, windows.sequence_action, windows.chunk_frames
    batch, channels, frames, height, width = seq.shape
    context = CONTEXT_CHUNKS * cf
    schedule = StepSchedule.parse([sample_steps], sigmas="uniform")
    rollout = ChunkRollout(model, schedule, batch, (channels, cf, height, width), {})
    noise = NoiseSource(batch, seq.device, seq.dtype)
    for i in range(batch):
        noise.seed(i, i)
    noop = spec.encode([spec.noop()] * batch).to(seq)       # context frames carry the no-op, as in the generator
    rollout.write_context(seq[:, :, :context], Conditioning(windows.text, windows.text_mask, noop), noise)
    errors = []
    for start in range(context, frames, cf):
        cond = Conditioning(windows.text, windows.text_mask, action[:, start:start + cf])
        chunk = rollout.next_chunk(cond, noise).latents                                       # [B, C, cf, h, w]
        errors.append((chunk - seq[:, :, start:start + cf]).pow(2).mean().item())
    copy = (seq[:, :, context - 1:context] - seq[:, :, -cf:]).pow(2).mean().item()
    return {"rollout_err_first": errors[0], "rollout_err_last": errors[-1], "rollout_copy_last": copy}


@torch.no_grad()
def action_probe(model, windows: ProbeWindows, spec: ActionSpec, sample_steps: int = 8, seed: int = 0) -> dict:
    """The probe's numbers (see the module doc); {} for a model without actions."""
    if spec.kind == "none":
        return {}
    was_training = model.training
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        change = windows.change()
        moved, still = change > MOVED, change < STILL
        eps = torch.randn_like(windows.x0)
        out = {"probe_moved": int(moved.sum()), "probe_still": int(still.sum())}
        true_action = windows.action[:, windows.last.start]
        for sigma in PROBE_SIGMAS:
            true_err = last_chunk_error(model, windows, sigma, eps)
            wrong, right = torch.zeros(()), torch.zeros(())
            for vectors, differs in wrong_actions(true_action, spec):
                rows = differs & moved
                if rows.any():
                    err = last_chunk_error(model, windows, sigma, eps, windows.with_last_action(vectors))
                    wrong, right = wrong + err[rows].sum(), right + true_err[rows].sum()
            if right > 0 or wrong > 0:   # no window moved: no gap to report
                out[f"gap@{sigma}"] = (wrong / right).item() if right > 0 else float("inf")
            if sigma == PROBE_SIGMAS[-1]:
                last = windows.x0[:, :, windows.last]
                copy = (windows.x0[:, :, windows.last.start - 1:windows.last.start] - last).pow(2).mean((1, 2, 3, 4))
                for name, rows in (("still", still), ("moved", moved)):
                    if rows.any():
                        out[f"x0_err_{name}"] = true_err[rows].mean().item()
                        out[f"copy_err_{name}"] = copy[rows].mean().item()
        out.update(direction_check(model, windows, spec, sample_steps, DIRECTION_WINDOWS))
        out.update(rollout_check(model, windows, spec, sample_steps))
    model.train(was_training)
    return out


def short(metrics: dict) -> str:
    """The probe's headline numbers for a progress bar."""
    parts = []
    if "gap@0.6" in metrics:
        parts.append(f"gap {metrics['gap@0.6']:.3f}")
    if "x0_err_still" in metrics:
        parts.append(f"copy {metrics['x0_err_still']:.3f}/{metrics['copy_err_still']:.3f}")
    if "direction" in metrics:
        parts.append(f"dir {metrics['direction']:.0%} (chance {metrics['direction_chance']:.0%})")
    if "rollout_err_last" in metrics:
        parts.append(f"roll {metrics['rollout_err_first']:.3f}>{metrics['rollout_err_last']:.3f} "
                     f"(copy {metrics['rollout_copy_last']:.3f})")
    return " ".join(parts)
