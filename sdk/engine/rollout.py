"""Chunk-by-chunk rollouts over latents: diagonal, self_forcing and hierarchical.

All modes share one few-step sampler (predict x0 at sigma_j, re-noise it to sigma_{j+1} with fresh
noise)
and differ in what goes into the KV cache and when:

- diagonal (Diagonal Distillation, Algorithm 1): chunk k runs `schedule.steps_for(k)` steps; the
  K/V of its last, still noisy pass (sigma 0.357) become its cache entry. NFE per chunk == steps.
- self_forcing: uniform steps, then one more pass on the clean output at sigma = 0 writes the cache.
  NFE per chunk == steps + 1. `kv_noise=t_c` generalises it: re-noise the output to t_c first.
- hierarchical (HiAR): step-first. One cache per denoising step j holds earlier chunks at the
  matched noise level sigma_{j+1}. Chunks move through the S steps as a wavefront: each advance
  moves up to S chunks one step on, each at a different step, after writing the previous chunk's
  step-j output into step j's cache. Once the pipe is full one clean chunk leaves per advance; an
  action reaches the output S-1 chunks after it was given (each chunk keeps the action and prompt
  it entered with for all its steps).
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
    action: torch.Tensor | None         # [B, A] encoded action of this chunk, [B, frames, A] per frame, or None

    def action_frames(self, frames: int) -> torch.Tensor | None:
        """The chunk's action for each latent frame: [B, frames, A]."""
        if self.action is None or self.action.ndim == 3:
            return self.action
        return self.action[:, None].expand(-1, frames, -1)

    @classmethod
    def cat(cls, conds: list[Conditioning]) -> Conditioning:
        """Streams of several conditionings as one batch, in order."""
        def joined(parts):
            return None if parts[0] is None else torch.cat(parts)
        return cls(joined([c.text for c in conds]), joined([c.text_mask for c in conds]),
                   joined([c.action for c in conds]))

    def row(self, i: int) -> Conditioning:
        """Stream i alone (batch of one)."""
        def pick(t):
            return None if t is None else t[i:i + 1]
        return Conditioning(self.text[i:i + 1], pick(self.text_mask), pick(self.action))


class NoiseSource:
    """Per-stream seeded Gaussian noise: a stream's noise does not depend on its batch neighbours."""

    def __init__(self, batch_size: int, device, dtype):
        self.generators = [torch.Generator() for _ in range(batch_size)]
        self.device, self.dtype = device, dtype

    @classmethod
    def joined(cls, sources: list[NoiseSource]) -> NoiseSource:
        """One batch drawing from the sources' own generators, in order: each stream draws what it would alone."""
        noise = cls(0, sources[0].device, sources[0].dtype)
        noise.generators = [g for s in sources for g in s.generators]
        return noise

    def seed(self, index: int, seed: int) -> None:
        self.generators[index].manual_seed(int(seed))

    def __call__(self, shape, active=None) -> torch.Tensor:
        """shape of one stream's tensor -> [B, *shape]; streams not `active` draw nothing (zeros)."""
        noise = torch.stack([torch.randn(shape, generator=g) if active is None or active[i] else torch.zeros(shape)
                             for i, g in enumerate(self.generators)])
        return noise.to(self.device, self.dtype)


@dataclass
class ChunkOut:
    latents: torch.Tensor   # [B, C, chunk_frames, h, w] clean latents
    nfe: list[int]          # denoising network evaluations spent on this chunk, per stream
    index: list[int]        # chunk index within each stream's episode


def as_latent(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] noise levels -> broadcastable to latents [B, C, F, h, w]."""
    return sigma.to(like.device, like.dtype)[:, None, None, None, None]


def predict_x0(model: CausalDiT, x, sigma, cond: Conditioning, cache, write: bool, clean=None) -> torch.Tensor:
    """One forward pass on chunk x [B, C, F, h, w] at noise levels sigma [B] -> x0 prediction.

    A model that reads the frame before each chunk (`config.reads_anchor`) gets it from the cache; a pass that
    writes the chunk into the cache also leaves the chunk's last frame there as the next anchor: of `clean`
    (the chunk's known clean latents) where given, else of its x0 prediction."""
    frames = x.shape[2]
    t_net = flow.network_timestep(sigma.to(x.device))[:, None].expand(-1, frames)
    anchor = cache.anchor_for(x) if model.config.reads_anchor else None
    v = model(x, t_net, cond.text, cond.text_mask, cond.action_frames(frames), cache=cache, write_chunks=int(write),
              anchor=anchor)
    x0 = flow.x0_from_velocity(x, v, as_latent(sigma, x))
    if write and anchor is not None:
        cache.set_anchor((x0 if clean is None else clean)[:, :, -1])
    return x0


def write_pass(model: CausalDiT, x0, sigma, cond: Conditioning, noise, cache) -> None:
    """Write x0 re-noised to noise levels sigma ([B]) into the cache with one forward pass; x0's last frame,
    known clean, is the next chunk's anchor."""
    xt = flow.add_noise(x0, noise(x0.shape[1:]), as_latent(sigma, x0)) if (sigma > 0).any() else x0
    predict_x0(model, xt, sigma, cond, cache, write=True, clean=x0)


class ChunkRollout:
    """diagonal / self_forcing / kv_noise: one chunk at a time, one cache."""

    def __init__(self, model: CausalDiT, schedule: StepSchedule, batch_size: int, latent_shape, cache_kw: dict,
                 kv_noise: float | None = None):
        self.model, self.schedule, self.kv_noise = model, schedule, kv_noise
        self.latent_shape = latent_shape                                         # (C, chunk_frames, h, w)
        self.cache = model.make_cache(batch_size, latent_shape[2], latent_shape[3], **cache_kw)
        # (cache input, sigma, action, chunk index, anchor) of the chunks the cache holds: sinks, then the window
        self.sink_history: list = []
        self.history = deque(maxlen=self.cache.window_chunks)

    def reset(self, index=None) -> None:
        self.cache.reset(index)
        self.sink_history.clear()
        self.history.clear()

    @property
    def chunk_index(self) -> torch.Tensor:
        return self.cache.next_chunk

    def kv_sigma(self, batch: int) -> torch.Tensor:
        """[B] noise level of the explicit cache write (kv_noise is schedule time t_c, warped like the paper's)."""
        return flow.sigma_of(torch.full((batch,), float(self.kv_noise)))

    def next_chunk(self, cond: Conditioning, noise: NoiseSource) -> ChunkOut:
        chunk = self.cache.next_chunk.tolist()
        plans = [self.schedule.sigmas_for(k) for k in chunk]
        n_pass = max(len(p) for p in plans)
        # streams with fewer steps idle in the first passes, so every stream's last pass is the same one
        padded = [(p[0],) * (n_pass - len(p)) + p for p in plans]
        x = noise(self.latent_shape)
        x0 = x
        for i in range(n_pass):
            sigma = torch.tensor([p[i] for p in padded])
            write = i == n_pass - 1 and self.kv_noise is None
            if write:
                self.remember(x, sigma, cond)
            x0 = predict_x0(self.model, x, sigma, cond, self.cache, write)
            if i + 1 < n_pass:
                active = [i >= n_pass - len(p) for p in plans]        # streams whose pass i was a real step
                sigma_next = torch.tensor([p[i + 1] for p in padded])
                renoised = flow.add_noise(x0, noise(x.shape[1:], active), as_latent(sigma_next, x0))
                x = torch.where(torch.tensor(active, device=x.device)[:, None, None, None, None], renoised, x)
        if self.kv_noise is not None:
            write_pass(self.model, x0, self.kv_sigma(len(chunk)), cond, noise, self.cache)
        steps = [len(p) + (self.kv_noise is not None) for p in plans]
        return ChunkOut(x0, steps, chunk)

    def remember(self, x, sigma, cond: Conditioning) -> None:
        anchor = self.cache.anchor_for(x).clone() if self.model.config.reads_anchor else None
        entry = (x, sigma, cond.action, self.cache.next_chunk.clone(), anchor)
        is_sink = int(self.cache.next_chunk.min()) < self.cache.sink_chunks
        (self.sink_history.append if is_sink else self.history.append)(entry)

    def write_context(self, latents: torch.Tensor, cond: Conditioning, noise: NoiseSource) -> None:
        """Feed known clean latents [B, C, n*chunk_frames, h, w] as past chunks, at the level the stream writes."""
        cf = self.latent_shape[1]
        for start in range(0, latents.shape[2], cf):
            x0 = latents[:, :, start:start + cf]
            if self.kv_noise is not None:
                write_pass(self.model, x0, self.kv_sigma(len(x0)), cond, noise, self.cache)
                continue
            sigma = torch.tensor([self.schedule.sigmas_for(k)[-1] for k in self.cache.next_chunk.tolist()])
            xt = flow.add_noise(x0, noise(x0.shape[1:]), as_latent(sigma, x0))
            self.remember(xt, sigma, cond)
            predict_x0(self.model, xt, sigma, cond, self.cache, write=True, clean=x0)

    def recache(self, cond: Conditioning) -> None:
        """Re-write the cached chunks under new conditioning (a new prompt), oldest first, from their stored
        pass inputs. Each re-written chunk sees what the window rule lets it see among the chunks still
        cached: the sinks and the re-written chunks before it. A chunk whose own context was evicted is
        re-encoded without it, so only streams no longer than the cache reproduce it exactly."""
        if self.kv_noise is not None:
            raise ValueError("recache needs the stored cache inputs of diagonal mode; "
                             "it is not available with kv_noise")
        resume, anchor = self.cache.next_chunk.clone(), self.cache.anchor
        for x, sigma, action, k, chunk_anchor in [*self.sink_history, *self.history]:
            self.cache.seek(k)
            if chunk_anchor is not None:      # each chunk is re-encoded from the anchor it was written with
                self.cache.set_anchor(chunk_anchor[:, :, 0])
            predict_x0(self.model, x, sigma, Conditioning(cond.text, cond.text_mask, action), self.cache, write=True)
        self.cache.seek(resume)
        self.cache.anchor = anchor      # the newest chunk's output stays the next chunk's anchor


class HierarchicalRollout:
    """HiAR's step-first wavefront with one cache per denoising step (see module doc).

    Every chunk in flight carries the conditioning (action, prompt) it entered the pipe with, so one
    chunk's steps all see one action, as in training."""

    def __init__(self, model: CausalDiT, schedule: StepSchedule, batch_size: int, latent_shape, cache_kw: dict):
        steps = set(schedule.steps)
        if len(steps) != 1:
            raise ValueError(f"hierarchical mode needs a uniform step count (e.g. '4'), got schedule {schedule}")
        self.model, self.latent_shape, self.batch_size = model, latent_shape, batch_size
        self.sigmas = tuple(schedule.sigmas_for(0)) + (0.0,)          # sigma_0 > ... > sigma_{S-1} > sigma_S = 0
        self.steps = len(self.sigmas) - 1
        self.caches = [model.make_cache(batch_size, latent_shape[2], latent_shape[3], **cache_kw)
                       for _ in range(self.steps)]
        self.reset()

    def reset(self, index=None) -> None:
        if index is not None and len(set(index)) != self.batch_size:
            raise ValueError("hierarchical mode keeps all streams of a batch in one pipeline; reset them together")
        for c in self.caches:
            c.reset()
        none = [None] * self.steps
        self.stage_input: list = list(none)      # (chunk waiting for step j at sigma_j, its conditioning)
        self.stage_context: list = list(none)    # (step j's last output at sigma_{j+1}, its conditioning)
        self.entered = 0        # chunks that entered the pipe
        self.emitted = 0        # chunks that left it
        self.passes = 0         # forward passes since the last emitted chunk

    @property
    def chunk_index(self) -> torch.Tensor:
        return torch.full((self.batch_size,), self.emitted, dtype=torch.long)

    def next_chunk(self, cond: Conditioning, noise: NoiseSource) -> ChunkOut:
        """NFE = the forward passes this call ran: S denoising + S context writes once the pipe is full."""
        out, self.passes = None, 0
        while out is None:
            out = self.advance(cond, noise)
        return ChunkOut(out, [self.passes] * self.batch_size, [self.emitted - 1] * self.batch_size)

    def advance(self, cond: Conditioning, noise: NoiseSource) -> torch.Tensor | None:
        """One wavefront pass: a new chunk enters step 0 under `cond`, every chunk in flight moves one step on."""
        self.stage_input[0] = (noise(self.latent_shape), cond)
        self.entered += 1
        outputs: list = [None] * self.steps
        for j in range(self.steps):
            if self.stage_input[j] is not None:
                outputs[j] = (self.run_stage(j, noise), self.stage_input[j][1])
        emitted = None
        for j in reversed(range(self.steps)):      # shift the wavefront: step j's output feeds step j+1
            if outputs[j] is None:
                continue
            self.stage_context[j] = outputs[j]
            if j + 1 < self.steps:
                self.stage_input[j + 1] = outputs[j]
            else:
                emitted = outputs[j][0]
                self.emitted += 1
            self.stage_input[j] = None
        return emitted

    def run_stage(self, j: int, noise: NoiseSource) -> torch.Tensor:
        """Denoise the chunk at step j, after writing the previous chunk's step-j output (at sigma_{j+1}, under
        its own conditioning) into cache j. Two passes, as the release's single-GPU pipeline: HiAR's fused
        form runs both chunks in one pass of twice the tokens."""
        x, cond = self.stage_input[j]
        batch = x.shape[0]
        if self.stage_context[j] is not None:
            ctx, ctx_cond = self.stage_context[j]
            predict_x0(self.model, ctx, torch.full((batch,), self.sigmas[j + 1]), ctx_cond, self.caches[j], True)
            self.passes += 1
        x0 = predict_x0(self.model, x, torch.full((batch,), self.sigmas[j]), cond, self.caches[j], write=False)
        self.passes += 1
        sig_next = self.sigmas[j + 1]
        return flow.add_noise(x0, noise(x.shape[1:]), sig_next) if sig_next > 0 else x0

    def write_context(self, latents: torch.Tensor, cond: Conditioning, noise: NoiseSource) -> None:
        cf = self.latent_shape[1]
        for start in range(0, latents.shape[2], cf):
            x0 = latents[:, :, start:start + cf]
            for j, cache in enumerate(self.caches):
                write_pass(self.model, x0, torch.full((x0.shape[0],), self.sigmas[j + 1]), cond, noise, cache)

    def recache(self, cond: Conditioning) -> None:
        raise ValueError("recache=True is not available in hierarchical mode (its caches hold chunks at "
                         "several noise levels); use mode='diagonal' or recache=False")
