"""Chunk-by-chunk rollouts over latents: diagonal, self_forcing and hierarchical.

All modes share one few-step sampler (predict x0 at t_j, re-noise it to t_{j+1} with fresh noise)
and differ in what goes into the KV cache and when:

- diagonal (Diagonal Distillation, Algorithm 1): chunk k runs `schedule.steps_for(k)` steps; the
  K/V of its last, still noisy pass (t ~ 100) become its cache entry. NFE per chunk == steps.
- self_forcing: uniform steps, then one more pass on the clean output at t = 0 writes the cache.
  NFE per chunk == steps + 1. `kv_noise=t_c` generalises it: re-noise the output to t_c first.
- hierarchical (HiAR): step-first. One cache per denoising step j holds earlier chunks at the
  matched noise level t_{j+1}. Chunks move through the S steps as a wavefront: each pass advances
  up to S chunks, each at a different step, and writes the previous chunk's context into that
  step's cache in the same forward (HiAR's fused context write). Once the pipe is full one clean
  chunk leaves per pass; an action reaches the output S-1 chunks after it was given.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from . import flow
from .model import CausalDiT
from .schedules import StepSchedule

MODES = ("diagonal", "self_forcing", "hierarchical")


@dataclass
class Conditioning:
    text: torch.Tensor                  # [B, L, text_dim]
    text_mask: torch.Tensor | None      # [B, L] bool
    action: torch.Tensor | None         # [B, A] encoded action of this chunk, or None

    def action_frames(self, frames: int) -> torch.Tensor | None:
        """The chunk's action repeated for each latent frame: [B, frames, A]."""
        return None if self.action is None else self.action[:, None].expand(-1, frames, -1)


class NoiseSource:
    """Per-stream seeded Gaussian noise: a stream's noise does not depend on its batch neighbours."""

    def __init__(self, batch_size: int, device, dtype):
        self.generators = [torch.Generator() for _ in range(batch_size)]
        self.device, self.dtype = device, dtype

    def seed(self, index: int, seed: int) -> None:
        self.generators[index].manual_seed(int(seed))

    def __call__(self, shape) -> torch.Tensor:
        """shape of one stream's tensor -> [B, *shape]."""
        noise = torch.stack([torch.randn(shape, generator=g) for g in self.generators])
        return noise.to(self.device, self.dtype)


@dataclass
class ChunkOut:
    latents: torch.Tensor   # [B, C, chunk_frames, h, w] clean latents
    nfe: list[int]          # denoising network evaluations spent on this chunk, per stream
    index: list[int]        # chunk index within each stream's episode


def denoise_step(model: CausalDiT, x, t_now, t_next, cond: Conditioning, noise: NoiseSource, cache, write: bool,
                 t_next_override=None):
    """One few-step sampler step for a chunk. x: [B, C, F, h, w]; t_now, t_next: [B] schedule times.

    returns (x0 prediction, x re-noised to t_next).
    """
    frames = x.shape[2]
    sigma = flow.sigma_of(t_now).to(x.device)                                       # [B]
    t_net = flow.network_timestep(sigma)[:, None].expand(-1, frames)
    v = model(x, t_net, cond.text, cond.text_mask, cond.action_frames(frames), cache=cache,
              write_chunks=int(write))
    x0 = flow.x0_from_velocity(x, v, sigma.to(x.dtype)[:, None, None, None, None])
    sigma_next = flow.sigma_of(t_next).to(x.device).to(x.dtype)[:, None, None, None, None]
    return x0, flow.add_noise(x0, noise(x.shape[1:]), sigma_next)


def write_pass(model: CausalDiT, x0, t, cond: Conditioning, noise: NoiseSource, cache):
    """Write x0 re-noised to schedule time t ([B]) into the cache with one forward pass."""
    sigma = flow.sigma_of(t).to(x0.device)
    xt = flow.add_noise(x0, noise(x0.shape[1:]), sigma.to(x0.dtype)[:, None, None, None, None]) if (t > 0).any() else x0
    frames = x0.shape[2]
    model(xt, flow.network_timestep(sigma)[:, None].expand(-1, frames), cond.text, cond.text_mask,
          cond.action_frames(frames), cache=cache, write_chunks=1)


class ChunkRollout:
    """diagonal / self_forcing / kv_noise: one chunk at a time, one cache."""

    def __init__(self, model: CausalDiT, schedule: StepSchedule, batch_size: int, latent_shape, cache_kw: dict,
                 kv_noise: float | None = None):
        self.model, self.schedule, self.kv_noise = model, schedule, kv_noise
        self.latent_shape = latent_shape                                         # (C, chunk_frames, h, w)
        self.cache = model.make_cache(batch_size, latent_shape[2], latent_shape[3], **cache_kw)
        # (cache input, t, action, chunk index) of the chunks the cache holds: sinks, then the window
        self.sink_history: list = []
        self.history = deque(maxlen=self.cache.window_chunks)

    def reset(self, index=None) -> None:
        self.cache.reset(index)
        self.sink_history.clear()
        self.history.clear()

    @property
    def chunk_index(self) -> torch.Tensor:
        return self.cache.next_chunk

    def next_chunk(self, cond: Conditioning, noise: NoiseSource) -> ChunkOut:
        chunk = self.cache.next_chunk.tolist()
        plans = [self.schedule.timesteps_for(k) for k in chunk]
        n_pass = max(len(p) for p in plans)
        # streams with fewer steps idle in the first passes, so every stream's last pass is the same one
        padded = [(p[0],) * (n_pass - len(p)) + p for p in plans]
        x = noise(self.latent_shape)
        x0 = x
        for i in range(n_pass):
            t_now = torch.tensor([p[i] for p in padded], dtype=torch.float32)
            t_next = torch.tensor([p[i + 1] if i + 1 < n_pass else 0 for p in padded], dtype=torch.float32)
            last = i == n_pass - 1
            write = last and self.kv_noise is None
            if write:
                self.remember(x, t_now, cond)
            x0, x_next = denoise_step(self.model, x, t_now, t_next, cond, noise, self.cache, write)
            active = torch.tensor([i >= n_pass - len(p) for p in plans], device=x.device)[:, None, None, None, None]
            x = torch.where(active, x_next, x)
        if self.kv_noise is not None:
            t_c = torch.full((len(chunk),), float(self.kv_noise))
            write_pass(self.model, x0, t_c, cond, noise, self.cache)
        steps = [len(p) + (self.kv_noise is not None) for p in plans]
        return ChunkOut(x0, steps, chunk)

    def remember(self, x, t, cond: Conditioning) -> None:
        entry = (x, t, cond.action, self.cache.next_chunk.clone())
        is_sink = int(self.cache.next_chunk.min()) < self.cache.sink_chunks
        (self.sink_history.append if is_sink else self.history.append)(entry)

    def write_context(self, latents: torch.Tensor, cond: Conditioning, noise: NoiseSource) -> None:
        """Feed known clean latents [B, C, n*chunk_frames, h, w] as past chunks."""
        cf = self.latent_shape[1]
        for start in range(0, latents.shape[2], cf):
            x0 = latents[:, :, start:start + cf]
            k = self.cache.next_chunk.tolist()
            level = float(self.kv_noise) if self.kv_noise is not None else float(self.schedule.timesteps_for(k[0])[-1])
            write_pass(self.model, x0, torch.full((x0.shape[0],), level), cond, noise, self.cache)

    def recache(self, cond: Conditioning) -> None:
        """Re-write the cached window under new conditioning (a new prompt), from the stored pass inputs."""
        if self.kv_noise is not None:
            raise ValueError("recache needs the stored cache inputs of diagonal mode; "
                             "it is not available with kv_noise")
        resume = self.cache.next_chunk.clone()
        for x, t, action, k in [*self.sink_history, *self.history]:
            self.cache.seek(k)
            sigma = flow.sigma_of(t).to(x.device)
            frames = x.shape[2]
            self.model(x, flow.network_timestep(sigma)[:, None].expand(-1, frames), cond.text, cond.text_mask,
                       None if action is None else action[:, None].expand(-1, frames, -1), cache=self.cache,
                       write_chunks=1)
        self.cache.seek(resume)


class HierarchicalRollout:
    """HiAR's step-first wavefront with one cache per denoising step (see module doc)."""

    def __init__(self, model: CausalDiT, schedule: StepSchedule, batch_size: int, latent_shape, cache_kw: dict):
        steps = set(schedule.steps)
        if len(steps) != 1:
            raise ValueError(f"hierarchical mode needs a uniform step count (e.g. '4'), got schedule {schedule}")
        self.model, self.latent_shape, self.batch_size = model, latent_shape, batch_size
        self.timesteps = tuple(schedule.timesteps_for(0)) + (0,)      # t_0 > ... > t_{S-1} > t_S = 0
        self.steps = len(self.timesteps) - 1
        self.caches = [model.make_cache(batch_size, latent_shape[2], latent_shape[3], **cache_kw)
                       for _ in range(self.steps)]
        self.reset()

    def reset(self, index=None) -> None:
        if index is not None and len(set(index)) != self.batch_size:
            raise ValueError("hierarchical mode keeps all streams of a batch in one pipeline; reset them together")
        for c in self.caches:
            c.reset()
        self.stage_input: list[torch.Tensor | None] = [None] * self.steps    # chunk waiting for step j (at t_j)
        self.stage_context: list[torch.Tensor | None] = [None] * self.steps  # step j's last output (at t_{j+1})
        self.entered = 0        # chunks that entered the pipe
        self.emitted = 0        # chunks that left it

    @property
    def chunk_index(self) -> torch.Tensor:
        return torch.full((self.batch_size,), self.emitted, dtype=torch.long)

    def next_chunk(self, cond: Conditioning, noise: NoiseSource) -> ChunkOut:
        out = None
        while out is None:
            out = self.advance(cond, noise)
        return ChunkOut(out, [self.steps] * self.batch_size, [self.emitted - 1] * self.batch_size)

    def advance(self, cond: Conditioning, noise: NoiseSource) -> torch.Tensor | None:
        """One wavefront pass: a new chunk enters step 0, every chunk in flight moves one step on."""
        self.stage_input[0] = noise(self.latent_shape)
        self.entered += 1
        outputs: list[torch.Tensor | None] = [None] * self.steps
        for j in range(self.steps):
            if self.stage_input[j] is not None:
                outputs[j] = self.run_stage(j, cond, noise)
        emitted = None
        for j in reversed(range(self.steps)):      # shift the wavefront: step j's output feeds step j+1
            if outputs[j] is None:
                continue
            self.stage_context[j] = outputs[j]
            if j + 1 < self.steps:
                self.stage_input[j + 1] = outputs[j]
            else:
                emitted = outputs[j]
                self.emitted += 1
            self.stage_input[j] = None
        return emitted

    def run_stage(self, j: int, cond: Conditioning, noise: NoiseSource) -> torch.Tensor:
        """Denoise the chunk at step j; fused with writing the previous chunk (at t_{j+1}) into cache j."""
        x, ctx = self.stage_input[j], self.stage_context[j]
        t_j, t_next = self.timesteps[j], self.timesteps[j + 1]
        cf = x.shape[2]
        sig_j, sig_next = float(flow.sigma_of(t_j)), float(flow.sigma_of(t_next))
        inp, sig = x, [sig_j] * cf
        if ctx is not None:
            inp, sig = torch.cat([ctx, x], dim=2), [sig_next] * cf + sig
        t_net = flow.network_timestep(torch.tensor(sig, device=x.device))[None].expand(x.shape[0], -1)
        v = self.model(inp, t_net, cond.text, cond.text_mask, cond.action_frames(inp.shape[2]),
                       cache=self.caches[j], write_chunks=int(ctx is not None))[:, :, -cf:]
        x0 = flow.x0_from_velocity(x, v, sig_j)
        return flow.add_noise(x0, noise(x.shape[1:]), sig_next) if t_next > 0 else x0

    def write_context(self, latents: torch.Tensor, cond: Conditioning, noise: NoiseSource) -> None:
        cf = self.latent_shape[1]
        for start in range(0, latents.shape[2], cf):
            x0 = latents[:, :, start:start + cf]
            for j, cache in enumerate(self.caches):
                write_pass(self.model, x0, torch.full((x0.shape[0],), float(self.timesteps[j + 1])), cond, noise,
                           cache)

    def recache(self, cond: Conditioning) -> None:
        raise ValueError("recache=True is not available in hierarchical mode (its caches hold chunks at "
                         "several noise levels); use mode='diagonal' or recache=False")
