"""Stage 2, `streamvideo train teacher`: a many-step *causal* flow-matching DiT, action + text conditioned.

A bidirectional clip teacher has to learn whole clips from noise and cannot continue a scene. This
teacher learns the dynamics directly (Causal Forcing's argument): block-causal attention over a
training window laid out as the generator's attention window (1 sink chunk + `clip_chunks - 1`
consecutive chunks, at window-relative positions 0, 1, ...), and an independent noise level per
chunk (diffusion forcing). Each chunk is either
- a target (scored): sigma from the shift-warped training distribution, or
- context (not scored): lightly noised, sigma in [0, ctx_sigma_max], covering every level the
  streaming cache is written at (0 clean, 0.139 for the teacher's own 32 steps, 0.357 diagonal).
The sink is the episode chunk `clip_chunks - 1 + gap` chunks before the window's last, so far
context is seen as the stream's sink is; with `sync_prob` all targets share one level (the joint
sampler `ode-pairs` uses). A fraction `text_drop` of clips gets the empty prompt (for guidance).
The saved model is the EMA of the weights; it samples as a StreamGenerator in diagonal mode with
`sample_steps` uniform steps per chunk (`streamvideo.load(OUT/model)`).
Writes `OUT/model/`, a model folder (`streamvideo.json` role "teacher"); the model takes the action space
the dataset was recorded with (its meta.json), which the folder keeps as "action".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.collect import dataset_env, dataset_fps, first_frames
from ..engine import flow
from ..engine.actions import ActionSpec
from ..engine.model import CausalDiT, ModelConfig
from ..engine.presets import save_model_folder
from .common import DiTRunArgs, Run, add_dataclass_arguments, arg, from_namespace, linear_warmup, set_lr
from .data import TEXT_SPEC, cached_latent_clips, dataset_actions, load_codec, text_encoder
from .distributed import distribute, gathered, is_main, shard, unwrapped
from .objectives import (
    ClipCond,
    chunk_anchors,
    ema_copy,
    ema_update,
    frame_mask,
    masked_mse,
    random_sigma,
    velocity,
)
from .probe import CONTEXT_CHUNKS, ROLLOUT_CHUNKS, ProbeWindows, action_probe, short


@dataclass
class Args(DiTRunArgs):
    data: str = arg(None, "dataset folder written by `streamvideo collect`")
    codec: str = arg("runs/codec", "output folder of `streamvideo train codec`, or pixel:P for P x P pixel patches")
    out: str = arg("runs/teacher", "output folder (checkpoint, metrics, model/)")
    steps: int = arg(3000, "optimizer steps")
    batch_size: int = arg(16, "windows per step", split=True)
    clip_chunks: int = arg(4, "chunks per training window: the inference window (1 sink + 2 previous + current)")
    episode_chunks: int = arg(16, "chunks per data clip the windows are cut from (how far back a sink may lie)")
    chunk_frames: int = arg(3, "latent frames per chunk")
    target_prob: float = arg(0.4, "probability that a non-final chunk is a target (the final one always is)")
    ctx_sigma_max: float = arg(0.45, "context chunks are noised to a level uniform in [0, this]")
    sync_prob: float = arg(0.3, "probability that all targets of a window share one noise level")
    text_drop: float = arg(0.1, "probability of the empty prompt (classifier-free guidance)")
    heads: int = arg(4, "attention heads")
    head_dim: int = arg(32, "channels per head (width = heads * head_dim)")
    layers: int = arg(6, "transformer blocks")
    ffn_dim: int = arg(512, "feed-forward hidden width")
    lr: float = arg(6e-4, "AdamW learning rate")
    warmup: int = arg(100, "linear warm-up steps")
    ema: float = arg(0.998, "decay of the weight EMA that is saved as the teacher")
    anchor_radius: int = arg(-1, "-1: off; r >= 0: every frame reads the clean frame before its chunk through a "
                                 "(2r+1)^2 window of offsets its actions weight (ModelConfig.anchor_radius)")
    action_tokens: bool = arg(False, "also add an action embedding to every token of its frame")
    anchor_noise: float = arg(0.0, "Gaussian noise of std uniform in [0, this] added to each window's anchors, so "
                                   "the model learns to take the imperfect frames it will anchor on in a rollout")
    self_context: float = arg(0.0, "probability that a window's middle chunks and their anchors are the EMA's own x0 "
                                    "predictions (SELF_LEVELS passes deep, SELF_SIGMA noise), its last chunk the "
                                    "only target: the model learns to correct the imperfect frames a rollout feeds it")
    probe_every: int = arg(200, "run the action probe (sdk/train/probe.py) every N steps and at the end; 0: never")
    probe_windows: int = arg(64, "clips held out of training for the probe (the dataset's last ones)")
    sample_steps: int = arg(32, "uniform Euler steps per chunk the teacher samples with (stored in the model folder)")
    fps: float | None = arg(None, "frames per second the model plays at (default: the dataset's, from its meta.json)")
    save_every: int = arg(100, "checkpoint every N steps")
    log_every: int = arg(10, "write a metrics line every N steps")


def add_arguments(parser) -> None:
    add_dataclass_arguments(parser, Args)


def model_config(args: Args, latent_channels: int, action: ActionSpec) -> ModelConfig:
    return ModelConfig(patch_size=(1, 1, 1), num_heads=args.heads, head_dim=args.head_dim, ffn_dim=args.ffn_dim,
                       num_layers=args.layers, in_channels=latent_channels, out_channels=latent_channels,
                       text_dim=TEXT_SPEC["dim"], freq_dim=128, chunk_frames=args.chunk_frames, action=action,
                       anchor_radius=args.anchor_radius, action_tokens=args.action_tokens)


def window_chunks(batch: int, args: Args) -> torch.Tensor:
    """Which episode chunks form each training window: [B, clip_chunks] = sink, then consecutive chunks.

    Half the windows are contiguous from the episode clip's start (chunk 0 is then both the stream's
    first chunk and the sink, as at the start of a stream); the rest put a gap after the sink.
    """
    n = args.clip_chunks - 1
    gap = torch.randint(0, args.episode_chunks - n, (batch,))
    gap = torch.where(torch.rand(batch) < 0.5, 0, gap)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), 1 + gap[:, None] + torch.arange(n)[None]], 1)


def chunk_sigmas(batch: int, args: Args, last_only: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk noise levels [B, K] and which chunks are scored targets [B, K] bool (only the last one in the
    rows last_only [B] bool)."""
    k = args.clip_chunks
    target = torch.rand(batch, k) < args.target_prob
    if last_only is not None:
        target &= ~last_only[:, None]
    target[:, -1] = True
    sigma = random_sigma(batch * k).view(batch, k)
    sync = torch.rand(batch) < args.sync_prob
    sigma = torch.where(sync[:, None], sigma[:, -1:], sigma)
    ctx_sigma = torch.rand(batch, k) * args.ctx_sigma_max
    return torch.where(target, sigma, ctx_sigma), target


def window_batch(clips, idx: torch.Tensor, args: Args):
    """Latents [B, C, F, h, w], actions [B, F, A], prompts, and the clean frame before each chunk [B, C, K, h, w]
    (zeros before the sink, as before a stream's first chunk) of the windows cut from clips idx."""
    cf = args.chunk_frames
    chunks = window_chunks(len(idx), args)                                                     # [B, K]
    frames = (chunks[:, :, None] * cf + torch.arange(cf)).flatten(1)                            # [B, F]
    x0 = clips.latents[idx[:, None], :, frames].float().permute(0, 2, 1, 3, 4)                  # [B, C, F, h, w]
    action = clips.actions[idx[:, None], frames]                                                # [B, F, A]
    prompts = [clips.prompts[i] if torch.rand(()) >= args.text_drop else ""
               for i in clips.prompt_ids[idx].tolist()]
    before = clips.latents[idx[:, None], :, (chunks * cf - 1).clamp(min=0)].float().permute(0, 2, 1, 3, 4)
    anchor = before * (chunks > 0)[:, None, :, None, None]
    return x0, action, prompts, anchor


def held_out_count(clips, args: Args) -> int:
    """Clips held out of training for the probe (the dataset's last ones): at most a quarter of them, so a tiny
    dataset keeps most for training; none when the run is not probed."""
    return min(args.probe_windows, len(clips) // 4) if args.probe_every else 0


def held_out_windows(clips, n: int, args: Args, text) -> ProbeWindows:
    """The probe's windows: one from each of the last n clips, the same ones every time, and the clips' starts for
    the rollout check (when a clip is long enough)."""
    held = torch.arange(len(clips) - n, len(clips))
    with torch.random.fork_rng():
        torch.manual_seed(args.seed + 1)
        x0, action, _, anchor = window_batch(clips, held, args)
    tokens, mask = text.encode([clips.prompts[i] for i in clips.prompt_ids[held].tolist()])
    frames = (CONTEXT_CHUNKS + ROLLOUT_CHUNKS) * args.chunk_frames
    sequence = () if clips.latents.shape[2] < frames else (clips.latents[held, :, :frames].float(),
                                                           clips.actions[held, :frames])
    return ProbeWindows(x0, action, anchor, tokens, mask, args.chunk_frames, *sequence)


SELF_LEVELS = 2            # passes of self-generated context: chunk k's frames at pass p rest on chunk k-1's at p-1
SELF_SIGMA = (0.1, 0.7)    # noise levels the EMA predicts its context from: a few-step sampler's last passes


@torch.no_grad()
def self_generated_context(ema: CausalDiT, x0, cond: ClipCond, rows: torch.Tensor, args: Args):
    """Windows whose chunks 1..K-2 (and the anchors of chunks 2..K-1) are the EMA's x0 predictions instead of the
    data: each pass noises the data to SELF_SIGMA levels and predicts it from the previous pass's anchors, so
    after SELF_LEVELS passes an error made on chunk 1 is carried into chunk 2's prediction, as in a rollout. The
    sink, chunk 1's anchor (the frame before the window) and the last chunk (the target) stay real.
    x0 [B, C, F, h, w], cond.anchor [B, C, K, h, w], rows [B] bool: which windows -> (x0, anchor)."""
    cf, k = args.chunk_frames, args.clip_chunks
    real, (low, high) = x0[rows], SELF_SIGMA
    part = ClipCond(cond.text[rows], cond.text_mask[rows], cond.action[rows], cond.anchor[rows])
    for _ in range(SELF_LEVELS):
        sigma = (low + (high - low) * torch.rand(len(real), k)).repeat_interleave(cf, 1)        # [b, F]
        xt = flow.add_noise(real, torch.randn_like(real), flow.frame_sigma(sigma, real))
        guess = flow.x0_from_velocity(xt, velocity(ema, xt, sigma, part, causal=True), flow.frame_sigma(sigma, xt))
        # the sink's and chunk 1's anchors stay the data's; chunks 2..K-1 anchor on the guesses before them
        anchor = torch.cat([part.anchor[:, :, :2], chunk_anchors(guess, cf)[:, :, 2:]], dim=2)
        part = ClipCond(part.text, part.text_mask, part.action, anchor)
    x0, full_anchor = x0.clone(), cond.anchor.clone()
    x0[rows] = torch.cat([real[:, :, :cf], guess[:, :, cf:(k - 1) * cf], real[:, :, (k - 1) * cf:]], dim=2)
    full_anchor[rows] = part.anchor
    return x0, full_anchor


def diffusion_forcing_loss(model: CausalDiT, x0, cond: ClipCond, args: Args,
                           last_only: torch.Tensor | None = None) -> torch.Tensor:
    """Velocity MSE on the target chunks; every chunk noised to its own level, block-causal attention.

    x0, cond: the global batch, the same on every rank; each rank trains on its rows once the noise is drawn.
    last_only [B] bool: windows whose last chunk is their only target (self-generated context).
    """
    sigma, target = chunk_sigmas(len(x0), args, last_only)
    sigma_f = sigma.repeat_interleave(args.chunk_frames, 1)                                      # [B, F]
    eps = torch.randn_like(x0)
    x0, eps, sigma_f, target, cond = shard(x0, eps, sigma_f, target, cond)
    xt = flow.add_noise(x0, eps, flow.frame_sigma(sigma_f, x0))
    v = velocity(model, xt, sigma_f, cond, causal=True)
    scored = ~target.repeat_interleave(args.chunk_frames, 1)                                    # True = not scored
    return masked_mse(v, flow.velocity(x0, eps), frame_mask(scored, x0))


def latent_caches(codec_dir: str) -> set[Path]:
    """The encoded-dataset files `cached_latent_clips` keeps in a codec folder (none for pixel:P)."""
    return set(Path(codec_dir).glob("latents-*.pt"))


def report_new_latent_caches(codec_dir: str, before: set[Path]) -> None:
    # the cache is large (hundreds of MB for a collected dataset) and outlives the run: say where it went
    for path in sorted(latent_caches(codec_dir) - before):
        print(f"cached the encoded dataset in {path} ({path.stat().st_size / 1e6:,.1f} MB; "
              f"delete it to free the space, the next run re-encodes)")


def run(namespace) -> int:
    args = from_namespace(Args, namespace)
    if args.data is None:
        raise SystemExit("streamvideo train teacher: --data DATASET_FOLDER is required")
    if args.self_context > 0 and (args.anchor_radius < 0 or args.clip_chunks < 3 or args.fsdp):
        raise SystemExit("streamvideo train teacher: --self-context needs --anchor-radius >= 0, --clip-chunks >= 3 "
                         "and no --fsdp (the EMA predicts the context whole on every rank)")
    if args.clip_chunks < 2 or args.episode_chunks < args.clip_chunks:
        raise SystemExit(f"streamvideo train teacher: need 2 <= --clip-chunks <= --episode-chunks, "
                         f"got {args.clip_chunks} and {args.episode_chunks}")
    args.start()
    codec = load_codec(args.codec)
    caches_before = latent_caches(args.codec)
    action_spec = dataset_actions(args.data)   # the model takes the space the env's data was recorded with
    clips = cached_latent_clips(args.codec, args.data, args.episode_chunks * args.chunk_frames * codec.temporal_factor,
                                action_spec)
    if is_main():
        report_new_latent_caches(args.codec, caches_before)
    # one chunk of real frames per prompt for the model folder, read now so a bad dataset fails before training
    start_frames = first_frames(args.data, clips.prompts, args.chunk_frames * codec.temporal_factor)
    text = text_encoder()
    # held out with or without FSDP, so both train on the same clips; FSDP shards the EMA over the ranks, so such
    # a run is not probed
    held = held_out_count(clips, args)
    probe = held_out_windows(clips, held, args, text) if held and not args.fsdp else None
    train_clips = len(clips) - held
    model = CausalDiT(model_config(args, codec.latent_channels, action_spec))
    ema = distribute(ema_copy(model), args.fsdp)
    model = distribute(model, args.fsdp)         # DDP under torchrun, or FSDP2 shards (--fsdp)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    run = Run(args.out, args, seed=args.seed, total_steps=args.steps, save_every=args.save_every,
              modules={"model": model, "ema": ema}, optimizers={"opt": opt}, desc="teacher")
    for step in run.steps(args.stop_after):
        idx = torch.randint(train_clips, (args.batch_size,))         # the global batch, drawn alike on every rank
        x0, action, prompts, anchor = window_batch(clips, idx, args)
        if args.anchor_noise > 0:   # drawn whole, as every rank draws the batch (std per window)
            anchor = anchor + torch.rand(len(anchor), 1, 1, 1, 1) * args.anchor_noise * torch.randn_like(anchor)
        tokens, mask = text.encode(prompts)
        cond = ClipCond(tokens, mask, action, anchor)
        self_rows = torch.rand(len(x0)) < args.self_context if args.self_context > 0 else None
        if self_rows is not None and self_rows.any():
            x0, cond.anchor = self_generated_context(unwrapped(ema), x0, cond, self_rows, args)
        loss = diffusion_forcing_loss(model, x0, cond, args, self_rows)
        set_lr(opt, args.lr * linear_warmup(step, args.warmup))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema, model, min(args.ema, (1 + step) / (10 + step)))
        probed = {}
        if probe is not None and ((step + 1) % args.probe_every == 0 or step + 1 == args.steps):
            probed = action_probe(unwrapped(ema), probe, action_spec)   # on every rank: the log averages over them
            run.show(short(probed))
        if step % args.log_every == 0 or probed:
            run.log(loss=loss.item(), grad_norm=grad_norm.item(), **probed)
    if run.finished:
        ema = gathered(ema)                      # every rank joins in; rank 0 gets the whole weights and writes
    if run.finished and is_main():
        folder = save_model_folder(Path(args.out) / "model", ema, codec, TEXT_SPEC, clips.latents.shape[-2:],
                                   args.fps or dataset_fps(args.data), clips.prompts[0], schedule=[args.sample_steps],
                                   prompts=clips.prompts,
                                   start_frames=start_frames,
                                   extra={"role": "teacher", "env": dataset_env(args.data)})
        print(f"teacher -> {folder}")
    return 0
