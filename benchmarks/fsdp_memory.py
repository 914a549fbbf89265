"""GPU memory of training the wan2.1-1.3b preset: DDP against FSDP2 (`--fsdp`) over 1 to 64 GPUs.

    python benchmarks/fsdp_memory.py [--batch-frames 21] [--resolution 832x480]

COMPUTED, NOT MEASURED ON A GPU (none was lent). Every number is bytes = count x element size:
- parameters: counted on `CausalDiT.from_preset("wan2.1-1.3b", device="meta")` (nothing allocated);
- model states per GPU: DDP keeps fp32 weights, fp32 gradients and AdamW's two fp32 moments of every
  trained model on every GPU (the stages compute in fp32 without --fsdp), frozen models as fp32 weights;
  FSDP2 (`--fsdp`: per block, bf16 compute, fp32 master weights and gradient reduction) keeps 1/N of
  each, plus the units it has gathered at a time: two blocks in bf16 (the running one and the prefetched
  next), the fp32 root (embedders, head) and one block's unsharded fp32 gradients;
- activations per sample at 832x480 with 21 latent frames (the papers' setting; 8x spatial / 4x temporal
  VAE, patch 1x2x2 -> 21 x 30 x 52 = 32,760 tokens): what autograd keeps for the backward, per token of
  one transformer block and of the rest of the network, MEASURED ON THIS CPU with saved-tensor hooks on
  one real-width block (d 1536, FFN 8960, 512 text tokens; a short sequence, no mask) and scaled to the
  token count; plus, counted, the block-causal mask (PyTorch's efficient attention turns the bool mask
  into a bf16 bias each block keeps: tokens^2 x 2 bytes) and, with activation checkpointing, the block
  inputs each block keeps (bf16 residual stream and text, and the fp32 modulation shared by all);
- distill: the generator's backward holds the 7-chunk rollout's exit passes (each chunk attending to up
  to 1 sink + 2 cached chunks, whose K/V it keeps) and the regression pass over the clip; the critic's
  backward comes after it and is smaller; the frozen teacher runs without gradients.
GPU memory that fits: 90 % of 80 GB (H100) and 141 GB (H200), the rest left to the CUDA context and the
allocator's fragmentation.
"""

import argparse
from dataclasses import dataclass

import torch

from streamvideo.engine.model import PRESETS, CausalDiT, StreamContext, WanBlock
from streamvideo.engine.rope import rope_angles

PRESET = "wan2.1-1.3b"
GPUS = (1, 8, 16, 64)
MEMORY = {"H100 80 GB": 80e9, "H200 141 GB": 141e9}
USABLE = 0.9
TEXT_TOKENS = 512                     # umT5, zero-padded: Wan attends to all of them
VAE_SPATIAL, VAE_TEMPORAL = 8, 4
GB = 1e9


# --------------------------------------------------------------------------- parameters and model states

@dataclass
class Params:
    total: int
    block: int        # one transformer block
    rest: int         # embedders and head (FSDP's fp32 root unit)


def preset_params() -> Params:
    model = CausalDiT.from_preset(PRESET, device="meta")
    block = sum(p.numel() for p in model.blocks[0].parameters())
    return Params(model.num_params(), block, model.num_params() - block * len(model.blocks))


@dataclass
class States:
    """Bytes per GPU of the model states of one stage."""
    master: float = 0.0      # fp32 weights (DDP computes on them; FSDP keeps 1/N)
    compute: float = 0.0     # FSDP's gathered units (bf16 blocks, fp32 root, one block's fp32 gradients)
    grads: float = 0.0
    adam: float = 0.0

    @property
    def total(self) -> float:
        return self.master + self.compute + self.grads + self.adam


def model_states(p: Params, trained: int, frozen: int, gpus: int, fsdp: bool) -> States:
    share = 1 / gpus if fsdp else 1.0
    states = States(master=4 * p.total * (trained + frozen) * share, grads=4 * p.total * trained * share,
                    adam=8 * p.total * trained * share)
    if fsdp:
        states.compute = 2 * 2 * p.block + 4 * p.rest + 4 * p.block
    return states


# --------------------------------------------------------------------------- activations, measured per token

def saved_bytes(run, exclude: list[torch.Tensor]) -> int:
    """Bytes of the tensors autograd keeps for the backward while run() runs (each storage once; the
    parameters in `exclude` are not activations)."""
    seen = {t.untyped_storage().data_ptr() for t in exclude}
    total = 0

    def pack(t):
        nonlocal total
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return total


def block_bytes(block: WanBlock, cfg, dtype, tokens_hw: tuple[int, int], frames: int) -> int:
    """Saved bytes of one block pass over frames x h x w tokens, inputs in `dtype` as the blocks get them
    (the fp32 modulation as it is); no mask: the mask is counted apart."""
    h, w = tokens_hw
    n = frames * h * w
    x = torch.randn(1, n, cfg.dim, dtype=dtype, requires_grad=True)
    text = torch.randn(1, TEXT_TOKENS, cfg.dim, dtype=dtype, requires_grad=True)
    mod = torch.randn(1, n, 6, cfg.dim, requires_grad=True)
    ctx = StreamContext(rope_angles(torch.arange(frames)[None], h, w, cfg.head_dim), None)
    return saved_bytes(lambda: block(x, text, None, mod, 0, ctx), list(block.parameters()))


def rest_bytes(model: CausalDiT, cfg, tokens_hw: tuple[int, int], frames: int) -> int:
    """Saved bytes of the network without its blocks (patch embedding, time / text embedders, head; fp32)."""
    p_t, p_h, p_w = cfg.patch_size
    x = torch.randn(1, cfg.in_channels, frames * p_t, tokens_hw[0] * p_h, tokens_hw[1] * p_w)
    t, text = torch.rand(1, frames * p_t) * 1000, torch.randn(1, TEXT_TOKENS, cfg.text_dim)
    return saved_bytes(lambda: model(x, t, text), list(model.parameters()))


@dataclass
class PerToken:
    """Saved bytes per token, and per sample (the text's share), of one block and of the rest of the network."""
    block: float
    block_sample: float
    rest: float
    rest_sample: float
    elem: int             # bytes per element of the blocks' compute dtype


def per_token_and_sample(measure, grid=(4, 8), frames=(1, 2)) -> tuple[float, float]:
    """Two sequence lengths fit bytes = a * tokens + b (the text's projections and K/V are per sample)."""
    small, large = (measure(grid, f) for f in frames)
    tokens = [f * grid[0] * grid[1] for f in frames]
    a = (large - small) / (tokens[1] - tokens[0])
    return a, small - a * tokens[0]


def per_token(dtype) -> PerToken:
    cfg = PRESETS[PRESET]()
    torch.manual_seed(0)
    block, rest = WanBlock(cfg).to(dtype), CausalDiT(cfg.with_overrides(num_layers=0))
    block_tok, block_smp = per_token_and_sample(lambda grid, f: block_bytes(block, cfg, dtype, grid, f))
    rest_tok, rest_smp = per_token_and_sample(lambda grid, f: rest_bytes(rest, cfg, grid, f))
    return PerToken(block_tok, block_smp, rest_tok, rest_smp, dtype.itemsize)


# --------------------------------------------------------------------------- activations of a stage

@dataclass
class Pass:
    """One forward with gradients: tokens through the network, cached tokens each block attends to."""
    tokens: int
    kv_tokens: int = 0
    causal: bool = False      # block-causal mask over the tokens (a whole clip)


def pass_bytes(p: Pass, m: PerToken, cfg, checkpointing: bool) -> tuple[float, float]:
    """(bytes kept until the backward, bytes of one block recomputed in it) of one pass."""
    d, layers = cfg.dim, cfg.num_layers
    kv = p.kv_tokens * 2 * d * m.elem                        # the cached K and V a block's attention keeps
    bias = m.elem * p.tokens ** 2 if p.causal else 0         # the bool mask as an additive bias, per block
    mask = p.tokens ** 2 if p.causal else 0                  # the bool mask itself, shared
    block = p.tokens * m.block + m.block_sample + kv + bias
    if not checkpointing:
        return layers * block + p.tokens * m.rest + m.rest_sample + mask, 0.0
    inputs = (p.tokens + TEXT_TOKENS) * d * m.elem + kv      # what a checkpointed block keeps
    shared = p.tokens * 6 * d * 4                            # the fp32 modulation every block reads
    return layers * inputs + p.tokens * m.rest + m.rest_sample + shared + mask, block


def activation_bytes(passes: list[Pass], m: PerToken, cfg, checkpointing: bool) -> float:
    kept, recomputed = zip(*(pass_bytes(p, m, cfg, checkpointing) for p in passes))
    return sum(kept) + max(recomputed)


def clip_tokens(cfg, width: int, height: int, latent_frames: int) -> tuple[int, int]:
    """(tokens of the clip, tokens of one chunk)."""
    p_t, p_h, p_w = cfg.patch_size
    per_frame = (height // VAE_SPATIAL // p_h) * (width // VAE_SPATIAL // p_w)
    return latent_frames // p_t * per_frame, cfg.chunk_frames // p_t * per_frame


def stage_passes(cfg, clip: int, chunk: int, sink: int = 1, window: int = 2) -> dict[str, list[Pass]]:
    rollout = [Pass(chunk, min(k, sink + window) * chunk) for k in range(clip // chunk)]
    return {"teacher / student": [Pass(clip, causal=True)],
            "distill (generator's backward)": rollout + [Pass(clip, causal=True)]}


# --------------------------------------------------------------------------- tables

STAGES = {"teacher / student": (1, 0), "distill (generator's backward)": (2, 1)}    # (trained, frozen) models


def print_states(p: Params) -> None:
    print(f"\nModel states per GPU, GB (computed; {p.total / 1e9:.3f} B parameters, {p.block / 1e6:.1f} M per block, "
          f"{p.rest / 1e6:.1f} M outside the blocks)")
    print(f"{'stage':<32}{'mode':<14}{'master fp32':>12}{'gathered':>10}{'grads':>8}{'AdamW':>8}{'total':>8}")
    for stage, (trained, frozen) in STAGES.items():
        for fsdp, gpus in [(False, 1)] + [(True, n) for n in GPUS]:
            s = model_states(p, trained, frozen, gpus, fsdp)
            mode = f"FSDP x{gpus}" if fsdp else "DDP (any N)"
            print(f"{stage:<32}{mode:<14}{s.master / GB:>12.1f}{s.compute / GB:>10.2f}{s.grads / GB:>8.1f}"
                  f"{s.adam / GB:>8.1f}{s.total / GB:>8.1f}")


def print_activations(acts: dict) -> None:
    print("\nActivations per sample, GB (per-token bytes measured on this CPU, scaled; masks counted)")
    print(f"{'stage':<32}{'fp32, no AC (DDP)':>20}{'bf16, no AC':>14}{'bf16 + AC (--fsdp)':>20}")
    for stage, (fp32, bf16, ac) in acts.items():
        print(f"{stage:<32}{fp32 / GB:>20.1f}{bf16 / GB:>14.1f}{ac / GB:>20.1f}")


def samples_that_fit(memory: float, states: float, per_sample: float) -> int:
    return max(0, int((USABLE * memory - states) // per_sample))


def print_fits(p: Params, acts: dict) -> None:
    print(f"\nSamples per GPU that fit in {USABLE:.0%} of the memory (0: not even one)")
    print(f"{'stage':<32}{'mode':<24}" + "".join(f"{name:>14}" for name in MEMORY))
    for stage, (trained, frozen) in STAGES.items():
        fp32, _, ac = acts[stage]
        rows = [("DDP, fp32, no AC", model_states(p, trained, frozen, 1, False).total, fp32)]
        rows += [(f"FSDP x{n}, bf16 + AC", model_states(p, trained, frozen, n, True).total, ac) for n in GPUS]
        for mode, states, per_sample in rows:
            fits = "".join(f"{samples_that_fit(m, states, per_sample):>14}" for m in MEMORY.values())
            print(f"{stage:<32}{mode:<24}{fits}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="832x480", help="WIDTHxHEIGHT in pixels")
    ap.add_argument("--latent-frames", type=int, default=21, help="latent frames per clip (21 = 81 video frames)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.resolution.split("x"))
    cfg = PRESETS[PRESET]()
    clip, chunk = clip_tokens(cfg, width, height, args.latent_frames)
    print(f"{PRESET} at {width}x{height}, {args.latent_frames} latent frames: {clip:,} tokens per clip, "
          f"{chunk:,} per chunk (COMPUTED, no GPU was used)")
    p = preset_params()
    print_states(p)
    fp32, bf16 = per_token(torch.float32), per_token(torch.bfloat16)
    print(f"\nmeasured per token: one block {fp32.block / 1e3:.1f} KB fp32 / {bf16.block / 1e3:.1f} KB bf16 "
          f"(+ {bf16.block_sample / 1e6:.1f} MB per sample for the text), the rest of the network "
          f"{bf16.rest / 1e3:.1f} KB (+ {bf16.rest_sample / 1e6:.1f} MB per sample)")
    acts = {stage: (activation_bytes(passes, fp32, cfg, False), activation_bytes(passes, bf16, cfg, False),
                    activation_bytes(passes, bf16, cfg, True))
            for stage, passes in stage_passes(cfg, clip, chunk).items()}
    print_activations(acts)
    print_fits(p, acts)


if __name__ == "__main__":
    main()
