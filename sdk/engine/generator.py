"""StreamGenerator: prompt + actions in, uint8 video chunks out, one `step()` at a time."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .actions import ActionSpec
from .codecs import Codec
from .model import CausalDiT
from .rollout import MODES, ChunkOut, ChunkRollout, Conditioning, HierarchicalRollout, NoiseSource
from .schedules import MODE_SIGMAS, StepSchedule
from .text import PromptFit, TextEncoder, prompt_words, unknown_words, vocabulary

PROMPT_WARNING_LEVEL = 4   # warn_... <- check_prompt <- reset / set_prompt <- the caller


@dataclass
class Chunk:
    frames: np.ndarray              # uint8 [T, H, W, 3] (batched: [B, T, H, W, 3])
    latents: torch.Tensor           # [B, C, chunk_frames, h, w] clean latents
    index: int | list[int]          # chunk index within the episode (per stream when batched)
    nfe: int | list[int]            # denoising network evaluations spent on this chunk
    seconds: float                  # wall time of this step (generation + decode)
    prompt: str | list[str]         # prompt the chunk was generated under


def as_list(value, batch_size: int, name: str) -> list:
    """One value per stream: a scalar is shared, a list must have batch_size entries."""
    if isinstance(value, (list, tuple)):
        if len(value) != batch_size:
            raise ValueError(f"{name} has {len(value)} entries; expected one per stream ({batch_size})")
        return list(value)
    return [value] * batch_size


def check_start_frames(frames, prompts: list[str], height: int, width: int) -> np.ndarray:
    """Start frames uint8 [P, T, H, W, 3]: one clip of T real frames per prompt, at the model's resolution."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 5 \
            or frames.shape[0] != len(prompts) or frames.shape[1] < 1 or frames.shape[2:] != (height, width, 3):
        got = f"{frames.dtype} {list(frames.shape)}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"start_frames must be uint8 [{len(prompts)}, T, {height}, {width}, 3] "
                         f"(one clip per trained prompt), got {got}")
    return frames


class StreamGenerator:
    """Prompt + actions in, video chunks out: `reset()` starts episodes, `step(action)` returns the next chunk.

    The constructor ends with `reset()` (the default prompt, a fresh random seed), so a new generator can
    `step()` right away; there is no un-reset state. Prompts longer than the text encoder's limit are cut
    (with a warning) and the generator keeps and reports the text it used (`prompt`, `Chunk.prompt`).
    """

    def __init__(self, model: CausalDiT, codec: Codec, text_encoder: TextEncoder, latent_hw: tuple[int, int],
                 mode: str = "diagonal", schedule="4322222", batch_size: int = 1, fps: float = 16.0,
                 window_chunks: int = 2, sink_chunks: int = 1, kv_noise: float | None = None,
                 default_prompt: str = "", extend: str = "cyclic", static_cache: bool = False, sigmas=None,
                 rope: str = "window", trained_prompts: list[str] | None = None,
                 start_frames: np.ndarray | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.codec, self.text_encoder = model.eval(), codec.eval(), text_encoder
        self.mode, self.batch_size, self.fps = mode, batch_size, float(fps)
        # noise levels: the release's lists of this mode unless given (a set name or {steps: [sigma, ...]})
        self.schedule = StepSchedule.parse(schedule, extend=extend,
                                           sigmas=MODE_SIGMAS[mode] if sigmas is None else sigmas)
        self.default_prompt = default_prompt
        # a hash-encoded model responds only to words it was trained on: warn once per prompt about the others
        self.trained_prompts = list(trained_prompts or [])
        self.known_words = set(vocabulary(self.trained_prompts))
        self.checked_prompts: set[str] = set()
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        cfg = model.config
        self.latent_shape = (cfg.in_channels, cfg.chunk_frames, *latent_hw)     # one chunk of one stream
        self.frames_per_chunk = cfg.chunk_frames * codec.temporal_factor
        self.height, self.width = latent_hw[0] * codec.spatial_factor, latent_hw[1] * codec.spatial_factor
        # real frames [P, T, H, W, 3] per trained prompt, offered by start_frames_for(); reset() never uses them
        self.start_frames = (None if start_frames is None
                             else check_start_frames(start_frames, self.trained_prompts, self.height, self.width))
        # a compiled forward (the "compile" speed-up) needs the fixed shapes of the static cache
        static_cache = static_cache or "compile" in model.speedups
        cache_kw = dict(window_chunks=window_chunks, sink_chunks=sink_chunks, static=static_cache, rope=rope)
        if mode == "hierarchical":
            if kv_noise is not None:
                raise ValueError("kv_noise applies to the diagonal and self_forcing modes, not hierarchical")
            self.rollout = HierarchicalRollout(model, self.schedule, batch_size, self.latent_shape, cache_kw)
        else:
            noise_level = 0.0 if mode == "self_forcing" and kv_noise is None else kv_noise
            self.rollout = ChunkRollout(model, self.schedule, batch_size, self.latent_shape, cache_kw, noise_level)
        self.noise = NoiseSource(batch_size, self.device, self.dtype)
        self.prompts = [default_prompt] * batch_size
        self.seeds = [0] * batch_size
        self.decode_state = codec.init_state(batch_size)
        self.timings: list[float] = []
        self.frames_out = 0
        self.nfe_total = 0
        self.reset()

    # ----------------------------------------------------------------------- properties

    @property
    def action_spec(self) -> ActionSpec:
        return self.model.config.action

    @property
    def prompt(self) -> str | list[str]:
        return self.prompts[0] if self.batch_size == 1 else list(self.prompts)

    @property
    def stats(self) -> dict:
        t = np.asarray(self.timings) if self.timings else np.zeros(1)
        total = float(np.sum(self.timings))
        return {
            "chunks": len(self.timings), "frames": self.frames_out, "nfe": self.nfe_total,
            "nfe_per_chunk": self.nfe_total / max(len(self.timings), 1) / self.batch_size,
            "first_chunk_seconds": float(self.timings[0]) if self.timings else 0.0,
            "mean_seconds": float(t.mean()), "p50_seconds": float(np.percentile(t, 50)),
            "p95_seconds": float(np.percentile(t, 95)),
            "fps": self.frames_out / total if total > 0 else 0.0,
        }

    # ----------------------------------------------------------------------- control

    def reset(self, prompt=None, seed=None, context_frames=None, index=None) -> None:
        """Start new episodes for streams `index` (all when None) with their prompt and seed."""
        idx = list(range(self.batch_size)) if index is None else [int(i) for i in np.atleast_1d(index)]
        bad = [i for i in idx if not 0 <= i < self.batch_size]
        if bad:
            raise ValueError(f"stream index {bad} out of range for batch_size {self.batch_size}")
        prompts = as_list(prompt if prompt is not None else None, len(idx), "prompt")
        seeds = as_list(seed, len(idx), "seed")
        for i, p, s in zip(idx, prompts, seeds):
            self.prompts[i] = self.default_prompt if p is None else self.check_prompt(p)
            self.seeds[i] = int(np.random.SeedSequence().entropy % 2**63) if s is None else int(s)
            self.noise.seed(i, self.seeds[i])
        self.rollout.reset(None if index is None else idx)
        self.decode_state = (self.codec.init_state(self.batch_size) if index is None
                             else self.codec.reset_state(self.decode_state, idx))
        if index is None:
            self.timings, self.frames_out, self.nfe_total = [], 0, 0
        if context_frames is not None:
            self.write_context(context_frames)

    def set_prompt(self, prompt, recache: bool = False, index=None) -> None:
        """New prompt from the next chunk on; recache=True re-encodes the cached window under it."""
        idx = list(range(self.batch_size)) if index is None else [int(i) for i in np.atleast_1d(index)]
        for i, p in zip(idx, as_list(prompt, len(idx), "prompt")):
            self.prompts[i] = self.check_prompt(p)
        if recache:
            if self.batch_size != 1:
                raise ValueError("recache=True is supported for single streams (batch_size=1)")
            with torch.inference_mode():
                self.rollout.recache(self.conditioning([self.action_spec.noop()]))

    def example_prompts(self) -> list[str]:
        """The prompts the model was trained on (empty when its folder does not record them)."""
        return list(self.trained_prompts)

    def start_frames_for(self, prompt: str) -> np.ndarray | None:
        """Real frames uint8 [T, H, W, 3] to start a stream of `prompt` from, `reset(context_frames=...)`:
        those of that trained prompt, else of the trained prompt sharing the most words with it (the
        earliest on a tie), else None (the model ships no start frames, or no trained prompt shares a word)."""
        if self.start_frames is None:
            return None
        if prompt in self.trained_prompts:
            return self.start_frames[self.trained_prompts.index(prompt)].copy()
        words = set(prompt_words(prompt))
        shared = [len(words & set(prompt_words(p))) for p in self.trained_prompts]
        if max(shared, default=0) == 0:
            return None
        return self.start_frames[shared.index(max(shared))].copy()

    def vocabulary(self) -> list[str]:
        """Sorted words of the trained prompts: the only words that steer a hash-encoded model."""
        return sorted(self.known_words)

    def check_prompt(self, prompt) -> str:
        """The text of `prompt` the text encoder reads: all of it, or the beginning that fits the encoder's
        token limit. The generator keeps and reports (gen.prompt, chunk.prompt) that text; once per distinct
        prompt it warns about a cut and about words outside the vocabulary."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}: {prompt!r}")
        if prompt in self.trained_prompts:   # trained under the same cut: nothing to warn about, its name is kept
            return prompt
        fit = self.text_encoder.fit(prompt)
        if prompt not in self.checked_prompts:
            self.checked_prompts.add(prompt)
            self.warn_cut(prompt, fit)
            self.warn_unknown_words(fit.text)
        return fit.text

    def warn_cut(self, prompt: str, fit: PromptFit) -> None:
        if fit.cut:
            warnings.warn(f"prompt cut to the text encoder's limit of {self.text_encoder.max_tokens} tokens (the "
                          f"end token included): kept its first {len(fit.text)} of {len(prompt)} characters "
                          f"({fit.kept} of {fit.total} tokens); gen.prompt and chunk.prompt give the kept text",
                          stacklevel=PROMPT_WARNING_LEVEL)

    def unknown_words(self, prompt: str) -> list[str]:
        """The prompt's words outside the model's vocabulary (they do not steer it); none when it is unknown."""
        return unknown_words(prompt, self.known_words) if self.known_words else []

    def warn_unknown_words(self, prompt: str) -> None:
        """Warn about words outside the vocabulary; silent when the vocabulary is unknown."""
        unknown = self.unknown_words(prompt)
        if unknown:
            warnings.warn(f"prompt words not in the model's vocabulary: {', '.join(map(repr, unknown))} "
                          f"(they do not steer this model; see gen.example_prompts())", stacklevel=PROMPT_WARNING_LEVEL)

    # ----------------------------------------------------------------------- generation

    def conditioning(self, actions: list) -> Conditioning:
        tokens, mask = self.text_encoder.encode(self.prompts)
        tokens = tokens.to(self.device, self.dtype)
        action = None
        if self.action_spec.kind != "none":
            action = self.action_spec.encode(actions).to(self.device, self.dtype)
        return Conditioning(tokens, mask.to(self.device), action)

    def validate_actions(self, action) -> list:
        if self.batch_size == 1:
            return [self.action_spec.validate(action)]
        actions = [None] * self.batch_size if action is None else list(action)
        if len(actions) != self.batch_size:
            raise ValueError(f"expected {self.batch_size} actions (one per stream), got {len(actions)}")
        return [self.action_spec.validate(a) for a in actions]

    def step(self, action=None) -> Chunk:
        actions = self.validate_actions(action)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.rollout.next_chunk(self.conditioning(actions), self.noise)
        return self.emit(out, start)

    def emit(self, out: ChunkOut, start: float) -> Chunk:
        """Decode generated latents with this generator's decode state, count them in its stats and wrap them
        as the Chunk `step` returns (also each member's share of a grouped pass, `group_step.step_group`).
        start: `time.perf_counter()` when the step began; the chunk's seconds run from it to its frames."""
        with torch.inference_mode():
            frames, self.decode_state = self.codec.decode(out.latents, self.decode_state)   # [B, T, 3, H, W]
            frames = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.timings.append(seconds)
        self.frames_out += frames.shape[0] * frames.shape[1]
        self.nfe_total += sum(out.nfe)
        single = self.batch_size == 1
        return Chunk(frames=frames[0] if single else frames, latents=out.latents,
                     index=out.index[0] if single else out.index, nfe=out.nfe[0] if single else out.nfe,
                     seconds=seconds, prompt=self.prompt)

    def write_context(self, context_frames) -> None:
        """Known frames uint8 [T, H, W, 3] (batched [B, T, H, W, 3]) become the start of the stream."""
        frames = np.asarray(context_frames)
        if frames.ndim == 4:
            frames = frames[None]
        expected = (self.batch_size, self.height, self.width, 3)
        if frames.ndim != 5 or (frames.shape[0], *frames.shape[2:]) != expected or frames.dtype != np.uint8:
            raise ValueError(f"context_frames must be uint8 [T, {self.height}, {self.width}, 3] per stream, "
                             f"got {frames.dtype} {list(frames.shape)}")
        pixels = torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float().div(255).to(self.device)
        with torch.inference_mode():
            latents = self.codec.encode(pixels.to(next(self.codec.parameters(), pixels).dtype)).to(self.dtype)
            cf = self.latent_shape[1]
            pad = (-latents.shape[2]) % cf   # whole chunks only: repeat the first frame in front
            latents = torch.cat([latents[:, :, :1].expand(-1, -1, pad, -1, -1), latents], dim=2)
            cond = self.conditioning([self.action_spec.noop()] * self.batch_size)
            self.rollout.write_context(latents, cond, self.noise)
            _, self.decode_state = self.codec.decode(latents, self.decode_state)
