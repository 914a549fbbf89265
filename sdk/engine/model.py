"""CausalDiT: the Wan2.1 text-to-video transformer, made causal and streamable, with action input.

Parameter names follow `diffusers.WanTransformer3DModel`, so a diffusers-format state dict loads
with strict=True (see `streamvideo.engine.checkpoints`). One set of weights serves three attention paths:

- bidirectional: every frame attends to every frame (the teacher, and diffusers parity);
- block-causal: frames attend to their own and earlier chunks of `chunk_frames` latent frames
  (training the causal student);
- streaming: the input chunk(s) attend to a `KVCache` of earlier chunks plus themselves; the
  first `write_chunks` input chunks are written to the cache (Diagonal Forcing writes the K/V of
  the last, still noisy denoising pass; Self-Forcing writes from an extra pass on clean latents).

Timesteps are per latent frame ([B, F]), and so are actions, whose embedding is added to the
time embedding that drives the adaLN modulation (as DIAMOND and Oasis do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .actions import ActionSpec
from .kv_cache import KVCache, rope_chunk_position, visible
from .rope import apply_rope, rope_angles


@dataclass
class ModelConfig:
    patch_size: tuple[int, int, int] = (1, 2, 2)   # (t, h, w) patch of the 3-D patch embedding
    num_heads: int = 12                   # attention heads
    head_dim: int = 128                   # channels per head; model width = num_heads * head_dim
    in_channels: int = 16                 # latent channels in
    out_channels: int = 16                # latent channels out (velocity)
    text_dim: int = 4096                  # width of the text encoder's tokens (umT5-XXL: 4096)
    freq_dim: int = 256                   # sinusoidal timestep embedding width
    ffn_dim: int = 8960                   # hidden width of the GELU-tanh feed-forward
    num_layers: int = 30                  # transformer blocks
    cross_attn_norm: bool = True          # LayerNorm (affine) before cross-attention, as Wan2.1
    eps: float = 1e-6                     # norm epsilon
    rope_theta: float = 10000.0           # RoPE base
    chunk_frames: int = 3                 # latent frames per autoregressive chunk
    action: ActionSpec = field(default_factory=ActionSpec)  # action conditioning (kind "none" = off)
    mask_text_padding: bool = True        # cross-attend to real text tokens only; Wan2.1 attends to all 512 zero-padded
                                          # umT5 tokens (False), which real Wan weights need to match the reference
    anchor_radius: int = -1               # -1 off (Wan). r >= 0: every frame also reads the clean latent frame before
                                          # its chunk through a (2r+1)^2 window of offsets that its actions
                                          # weight (SteeredAnchor)
    action_tokens: bool = False           # also add an action embedding to every token of its frame (a direct path)

    @property
    def reads_anchor(self) -> bool:
        """Does the model read the clean latent frame before each chunk (the steered anchor)?"""
        return self.anchor_radius >= 0

    @property
    def dim(self) -> int:
        return self.num_heads * self.head_dim

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["patch_size"] = list(self.patch_size)
        d["action"] = {"kind": self.action.kind, "n": self.action.n, "sizes": list(self.action.sizes),
                       "dim": self.action.dim}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; expected some of "
                             f"{sorted(cls.__dataclass_fields__)}")
        d = dict(d)
        if "patch_size" in d:
            d["patch_size"] = tuple(d["patch_size"])
        if isinstance(d.get("action"), dict):
            a = d["action"]
            d["action"] = ActionSpec(a.get("kind", "none"), a.get("n", 0), tuple(a.get("sizes", ())), a.get("dim", 0))
        return cls(**d)

    def with_overrides(self, **kw) -> ModelConfig:
        return replace(self, **kw)


# Model sizes, DiT-style: one dict of small factories.
PRESETS = {
    "wan2.1-1.3b": lambda: ModelConfig(num_heads=12, head_dim=128, ffn_dim=8960, num_layers=30, text_dim=4096,
                                       mask_text_padding=False),
    "wan2.1-14b": lambda: ModelConfig(num_heads=40, head_dim=128, ffn_dim=13824, num_layers=40, text_dim=4096,
                                      mask_text_padding=False),
    "tiny": lambda: ModelConfig(num_heads=2, head_dim=16, ffn_dim=64, num_layers=2, text_dim=32, in_channels=4,
                                out_channels=4),
}


#################################################################################
#                      Embedding layers for timesteps, text, actions            #
#################################################################################

def timestep_sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[N] timesteps -> [N, dim] (cos, sin) features, as diffusers' Timesteps(flip_sin_to_cos=True)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLP2(nn.Module):
    """linear_1 -> activation -> linear_2 (diffusers' TimestepEmbedding / PixArtAlphaTextProjection names)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, act: nn.Module):
        super().__init__()
        self.linear_1 = nn.Linear(d_in, d_hidden)
        self.act = act
        self.linear_2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class ConditionEmbedder(nn.Module):
    """Timestep -> (temb, 6 modulation vectors); text tokens -> model width."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.freq_dim = cfg.freq_dim
        self.time_embedder = MLP2(cfg.freq_dim, cfg.dim, cfg.dim, nn.SiLU())
        self.act_fn = nn.SiLU()
        self.time_proj = nn.Linear(cfg.dim, cfg.dim * 6)
        self.text_embedder = MLP2(cfg.text_dim, cfg.dim, cfg.dim, nn.GELU(approximate="tanh"))

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """t: [B, F] -> temb [B, F, dim] (float32: the time path stays in fp32, as in Wan)."""
        freqs = timestep_sinusoid(t.flatten(), self.freq_dim)
        dtype = self.time_embedder.linear_1.weight.dtype
        return self.time_embedder(freqs.to(dtype)).float().unflatten(0, t.shape)

    def modulation(self, temb: torch.Tensor) -> torch.Tensor:
        """temb [B, F, dim] -> [B, F, 6, dim]."""
        return self.time_proj(self.act_fn(temb).to(self.time_proj.weight.dtype)).float().unflatten(-1, (6, -1))


class SteeredAnchor(nn.Module):
    """The clean latent frame before a chunk, read by each of the chunk's frames through a window of offsets
    whose weights the actions taken since that frame pick.

    A key that scrolls the picture by up to `radius` latent pixels per chunk becomes a choice among offsets of
    a frame the network already holds: learnable from the first steps, where attention has to discover the
    routing (measured: it never did in 2,500 steps). Copying is free (the offset weights start on 0, a
    copy), and the network still predicts everything else (new edges, sprites, noise). Works for any action
    space: the weights are a function of the summed action vectors since the anchor.
    """

    GROUPS = 4   # independent offset mixtures, so the network can hedge between offsets while unsure

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.radius = cfg.anchor_radius
        window = (2 * self.radius + 1) ** 2
        self.offset_logits = nn.Linear(max(cfg.action.embed_inputs, 1), self.GROUPS * window)
        nn.init.zeros_(self.offset_logits.weight)
        with torch.no_grad():   # start as a copy: offset 0 (the window's centre) holds ~95 % of the weight
            self.offset_logits.bias.copy_(torch.zeros(self.GROUPS, window).index_fill_(1, torch.tensor([window // 2]),
                                                                                      math.log(20 * window)).flatten())
        self.embedding = nn.Conv3d(self.GROUPS * cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size,
                                   stride=cfg.patch_size)

    def forward(self, anchor: torch.Tensor, action: torch.Tensor | None, chunk_frames: int) -> torch.Tensor:
        """anchor [B, C, K, H, W] (the frame before each of K chunks, zeros where none); action [B, F, A] or None,
        F = K * chunk_frames -> token inputs [B, N, dim]."""
        batch, channels, chunks, height, width = anchor.shape
        frames, r = chunks * chunk_frames, self.radius
        if action is None:
            steer = anchor.new_zeros(batch, frames, self.offset_logits.in_features)
        else:   # the actions since the anchor: a running sum within each chunk
            steer = action.float().unflatten(1, (chunks, chunk_frames)).cumsum(2).flatten(1, 2)
        weights = self.offset_logits(steer.to(self.offset_logits.weight.dtype))
        weights = weights.unflatten(-1, (self.GROUPS, -1)).softmax(-1)                           # [B, F, G, k*k]
        windows = F.unfold(anchor.transpose(1, 2).flatten(0, 1), 2 * r + 1, padding=r)          # [B*K, C*k*k, H*W]
        windows = windows.view(batch, chunks, channels, -1, height, width)
        windows = windows.repeat_interleave(chunk_frames, dim=1)                                 # [B, F, C, k*k, H, W]
        view = torch.einsum("bfgo,bfcohw->bgcfhw", weights.to(windows.dtype), windows)           # [B, G, C, F, H, W]
        return self.embedding(view.flatten(1, 2)).flatten(2).transpose(1, 2)                    # [B, N, dim]


class ActionEmbedder(nn.Module):
    """Per-frame action vector -> time-embedding offset. Last layer starts at zero: no effect until trained."""

    def __init__(self, spec: ActionSpec, dim: int):
        super().__init__()
        self.mlp = MLP2(spec.embed_inputs, dim, dim, nn.SiLU())
        nn.init.zeros_(self.mlp.linear_2.weight)
        nn.init.zeros_(self.mlp.linear_2.bias)

    def forward(self, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(action.to(self.mlp.linear_1.weight.dtype)).float()


#################################################################################
#                                 Core blocks                                   #
#################################################################################

def by_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, N, ...] tokens -> [B, frames, N/frames, ...] (a view: tokens are ordered frame by frame)."""
    return x.unflatten(1, (frames, -1))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [B, N, dim] tokens; shift, scale [B, F, 1, dim] per latent frame -> x * (1 + scale) + shift, token by
    token (broadcast over each frame's tokens, never expanded to one row per token)."""
    return (by_frame(x, shift.shape[1]) * (1 + scale) + shift).flatten(1, 2)


def gated(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """x [B, N, dim] times gate [B, F, 1, dim] per latent frame."""
    return (by_frame(x, gate.shape[1]) * gate).flatten(1, 2)


def per_token(mod: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """[B, F, ..., dim] per-frame values -> [B, F*tokens_per_frame, ..., dim]."""
    return mod.repeat_interleave(tokens_per_frame, dim=1)


class FP32LayerNorm(nn.LayerNorm):
    """Affine LayerNorm computed in fp32 whatever the weights' dtype (diffusers' FP32LayerNorm): the
    residual stream is fp32, and a bf16 LayerNorm weight on fp32 input is an error."""

    def forward(self, x):
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)


GELU_TANH_SLOPE = 2 * math.sqrt(2 / math.pi)


def gelu_tanh_in_place(x: torch.Tensor) -> torch.Tensor:
    """GELU-tanh of x, written over x: 0.5 x (1 + tanh(z)) == x sigmoid(2z). On the CPU `F.gelu(approximate=
    "tanh")` spends its time in a slow tanh; this form runs 2.4x faster and agrees to 5e-7. Inference only."""
    gate = x * x
    gate.mul_(0.044715 * GELU_TANH_SLOPE).add_(GELU_TANH_SLOPE).mul_(x).sigmoid_()
    return x.mul_(gate)


class FeedForward(nn.Module):
    """GELU-tanh MLP with diffusers' FeedForward names (net.0.proj, net.2)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        gelu = nn.Module()
        gelu.proj = nn.Linear(dim, hidden)
        self.net = nn.ModuleList([gelu, nn.Dropout(0.0), nn.Linear(hidden, dim)])
        self.fast_gelu = False   # the "gelu" speed-up (streamvideo.engine.speedups): fp32 inference only

    def forward(self, x):
        h = self.net[0].proj(x)
        if self.fast_gelu and h.dtype == torch.float32 and not torch.is_grad_enabled():
            return self.net[2](gelu_tanh_in_place(h))
        return self.net[2](F.gelu(h, approximate="tanh"))


class Attention(nn.Module):
    """Multi-head attention with RMSNorm on q and k across heads (diffusers' WanAttention names)."""

    def __init__(self, dim: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)

    def project(self, x: torch.Tensor, source: torch.Tensor):
        """x [B, N, dim], source [B, M, dim] -> q [B, N, h, d], k, v [B, M, h, d]."""
        if hasattr(self, "to_qkv") and source is x:     # one matmul instead of three (inference only)
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.to_q(x), self.to_k(source), self.to_v(source)
        q = self.norm_q(q).unflatten(-1, (self.heads, -1))
        k = self.norm_k(k).unflatten(-1, (self.heads, -1))
        return q, k, v.unflatten(-1, (self.heads, -1))

    @torch.no_grad()
    def fuse_qkv(self) -> None:
        """Add a fused q|k|v projection (kept out of the state dict, so checkpoints keep Wan's names)."""
        fused = nn.Linear(self.to_q.in_features, 3 * self.to_q.out_features, device=self.to_q.weight.device,
                          dtype=self.to_q.weight.dtype)
        fused.weight.copy_(torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight]))
        fused.bias.copy_(torch.cat([self.to_q.bias, self.to_k.bias, self.to_v.bias]))
        object.__setattr__(self, "to_qkv", fused)   # not a registered submodule: no state-dict entry

    def attend(self, q, k, v, mask=None) -> torch.Tensor:
        """q [B, N, h, d], k, v [B, M, h, d], mask broadcastable to [B, h, N, M] (True = attend)."""
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
        return self.to_out[0](out.transpose(1, 2).flatten(2))


class StreamContext:
    """What a forward pass needs to know about attention: positions, masks, cache."""

    def __init__(self, rope, self_mask, cache: KVCache | None = None, cache_rope=None, cache_slots: int = 0,
                 write_tokens: int = 0, joined: dict | None = None):
        self.rope = rope                  # complex rotations of the input tokens
        self.self_mask = self_mask        # bool mask over the keys ([cache keys |] input keys), None = all visible
        self.cache = cache
        self.cache_rope = cache_rope      # complex rotations of the cached keys
        self.cache_slots = cache_slots    # cache slots every layer reads (fixed when the pass begins)
        self.write_tokens = write_tokens  # leading input tokens whose K/V go into the cache
        # {layer: (keys, values)} shared by the passes of one chunk (the "context" speed-up), None = not kept
        self.joined = joined

    def keys_and_values(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor):
        """The cached keys (rotated) and values followed by the input's own: [B, M, h, d] each. When the passes
        of a chunk share them, the cached part is rotated and copied once per chunk; later passes write only
        their own tokens into the kept tensors."""
        if self.joined is not None and layer in self.joined:
            keys, values = self.joined[layer]
            keys[:, -k_new.shape[1]:].copy_(k_new)
            values[:, -v_new.shape[1]:].copy_(v_new)
            return keys, values
        k_old, v_old = self.cache.read(layer, self.cache_slots)
        keys = torch.cat([apply_rope(k_old, self.cache_rope), k_new], dim=1)
        values = torch.cat([v_old, v_new], dim=1)
        if self.joined is not None:
            self.joined[layer] = (keys, values)
        return keys, values


class WanBlock(nn.Module):
    """adaLN self-attention (RoPE) -> cross-attention to text -> adaLN GELU-tanh FFN."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim = cfg.dim
        self.norm1 = nn.LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.attn1 = Attention(dim, cfg.num_heads, cfg.eps)
        self.attn2 = Attention(dim, cfg.num_heads, cfg.eps)
        self.norm2 = FP32LayerNorm(dim, cfg.eps) if cfg.cross_attn_norm else nn.Identity()
        self.ffn = FeedForward(dim, cfg.ffn_dim)
        self.norm3 = nn.LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def self_attention(self, x: torch.Tensor, layer: int, ctx: StreamContext) -> torch.Tensor:
        q, k, v = self.attn1.project(x, x)
        k_rot = apply_rope(k, ctx.rope)
        q = apply_rope(q, ctx.rope)
        if ctx.cache is None:
            return self.attn1.attend(q, k_rot, v, ctx.self_mask)
        # join before writing: the write may land in a slot the read views (the ring's oldest chunk)
        keys, values = ctx.keys_and_values(layer, k_rot, v)
        if ctx.write_tokens:
            ctx.cache.write(layer, k[:, :ctx.write_tokens], v[:, :ctx.write_tokens])
        return self.attn1.attend(q, keys, values, ctx.self_mask)

    def forward(self, x, text, text_mask, mod, layer: int, ctx: StreamContext):
        """x [B, N, dim], N = F latent frames x their tokens; text [B, L, dim]; mod [B, F, 6, 1, dim] (per frame,
        fp32)."""
        table = self.scale_shift_table[:, :, None]                                                 # [1, 6, 1, dim]
        shift_msa, scale_msa, gate_msa, c_shift, c_scale, c_gate = (table + mod).unbind(2)       # [B, F, 1, dim]
        h = modulate(self.norm1(x.float()), shift_msa, scale_msa).type_as(x)
        x = (x.float() + gated(self.self_attention(h, layer, ctx), gate_msa)).type_as(x)
        h = self.norm2(x.float()).type_as(x)
        q, k, v = self.attn2.project(h, text)
        x = x + self.attn2.attend(q, k, v, None if text_mask is None else text_mask[:, None, None, :])
        h = modulate(self.norm3(x.float()), c_shift, c_scale).type_as(x)
        return (x.float() + gated(self.ffn(h).float(), c_gate)).type_as(x)


def same_view(seen: tuple, shape: tuple, next_chunk: torch.Tensor, key_chunks: torch.Tensor) -> bool:
    """Does this pass see what an earlier one saw (`seen`: its input shape, chunk counters and slots)?"""
    return seen[0] == shape and torch.equal(seen[1], next_chunk) and torch.equal(seen[2], key_chunks)


def block_causal_mask(frames: int, chunk_frames: int, tokens_per_frame: int, device) -> torch.Tensor:
    """[N, N] True where a query's chunk >= the key's chunk."""
    chunk = torch.arange(frames, device=device).div(chunk_frames, rounding_mode="floor")
    chunk = chunk.repeat_interleave(tokens_per_frame)
    return chunk[:, None] >= chunk[None, :]


#################################################################################
#                                  CausalDiT                                    #
#################################################################################

class CausalDiT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.patch_embedding = nn.Conv3d(cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.condition_embedder = ConditionEmbedder(cfg)
        self.action_embedder = ActionEmbedder(cfg.action, cfg.dim) if cfg.action.kind != "none" else None
        self.action_token_embedder = ActionEmbedder(cfg.action, cfg.dim) \
            if cfg.action_tokens and cfg.action.kind != "none" else None
        self.steered_anchor = SteeredAnchor(cfg) if cfg.reads_anchor else None
        self.blocks = nn.ModuleList([WanBlock(cfg) for _ in range(cfg.num_layers)])
        self.norm_out = nn.LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(cfg.dim, cfg.out_channels * math.prod(cfg.patch_size))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)
        self.speedups: tuple[str, ...] = ()   # inference speed-ups switched on (streamvideo.engine.speedups)

    @classmethod
    def from_preset(cls, name: str, device=None, dtype=None, **overrides) -> CausalDiT:
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
        with torch.device(device or "cpu"):
            model = cls(PRESETS[name]().with_overrides(**overrides))
        return model.to(dtype) if dtype is not None else model

    @property
    def reuse_chunk_context(self) -> bool:
        """The "context" speed-up: the passes of one chunk share its positions, masks and joined keys. Not under
        compile: its graph builds them itself, and a memo outside the graph would recompile it every chunk."""
        return "context" in self.speedups and "compile" not in self.speedups

    def fuse_qkv(self) -> CausalDiT:
        """Fuse every self-attention's q, k, v projections for inference. Call after moving the model to its
        device and dtype: the fused copies are not parameters, so `.to()` does not move them."""
        for block in self.blocks:
            block.attn1.fuse_qkv()
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def make_cache(self, batch_size: int, height: int, width: int, window_chunks: int = 2, sink_chunks: int = 1,
                   device=None, dtype=None, static: bool = False, rope: str = "window") -> KVCache:
        """A cache for latents of spatial size height x width (before patching)."""
        cfg = self.config
        p_t, p_h, p_w = cfg.patch_size
        tokens = (cfg.chunk_frames // p_t) * (height // p_h) * (width // p_w)
        ref = self.proj_out.weight
        return KVCache(cfg.num_layers, batch_size, tokens, cfg.num_heads, cfg.head_dim, window_chunks, sink_chunks,
                       device=device or ref.device, dtype=dtype or ref.dtype, static=static, rope=rope)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None,
                action: torch.Tensor | None = None, *, causal: bool = False, cache: KVCache | None = None,
                write_chunks: int = 0, anchor: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the flow velocity.

        x: [B, C, F, H, W] latents; t: [B, F] or [B] timesteps in [0, 1000] (network scale);
        text: [B, L, text_dim]; text_mask: [B, L] bool or None; action: [B, F, A] encoded actions or None.
        causal: block-causal over chunks of `chunk_frames` (implied by `cache`).
        cache: attend to it (and write the first `write_chunks` input chunks into it, then advance it).
        anchor: [B, C, K, H, W], the clean latent frame before each of the input's K chunks (zeros where there is
        none); read only by models with `config.reads_anchor`, which need it.
        returns [B, C_out, F, H, W].
        """
        cfg = self.config
        batch, _, frames, height, width = x.shape
        p_t, p_h, p_w = cfg.patch_size
        fp, hp, wp = frames // p_t, height // p_h, width // p_w
        if t.ndim == 1:
            t = t[:, None].expand(batch, frames)
        if t.shape != (batch, frames):
            raise ValueError(f"timesteps must have shape [B]=[{batch}] or [B, F]=[{batch}, {frames}], "
                             f"got {list(t.shape)}")

        tokens = self.patch_embedding(x).flatten(2).transpose(1, 2)                  # [B, N, dim], N = fp*hp*wp
        if self.steered_anchor is not None:
            if anchor is None:
                raise ValueError("this model reads the clean latent frame before each chunk: "
                                 "pass anchor=[B, C, K, H, W]")
            tokens = tokens + self.steered_anchor(anchor.to(tokens.dtype), action, cfg.chunk_frames).to(tokens.dtype)
        if self.action_token_embedder is not None and action is not None:
            tokens = tokens + per_token(self.action_token_embedder(action[:, ::p_t]), hp * wp).to(tokens.dtype)
        temb = self.condition_embedder.time_embedding(t[:, ::p_t])                  # [B, fp, dim]
        if action is not None:
            if self.action_embedder is None:
                raise ValueError("this model has no action conditioning (ModelConfig.action.kind == 'none')")
            temb = temb + self.action_embedder(action[:, ::p_t])
        mod = self.condition_embedder.modulation(temb)[:, :, :, None]                # [B, fp, 6, 1, dim]
        text = self.condition_embedder.text_embedder(text.to(tokens.dtype))        # [B, L, dim]
        if not cfg.mask_text_padding:
            text_mask = None

        ctx = self.stream_context(batch, fp, hp, wp, tokens.device, causal or cache is not None, cache, write_chunks)
        for layer, block in enumerate(self.blocks):
            tokens = block(tokens, text, text_mask, mod, layer, ctx)
        if cache is not None and write_chunks:
            cache.advance(write_chunks)

        shift, scale = (self.scale_shift_table[:, None, :, None] + temb[:, :, None, None]).unbind(2)  # [B, fp, 1, dim]
        tokens = modulate(self.norm_out(tokens.float()), shift, scale).type_as(tokens)
        out = self.proj_out(tokens)                                                   # [B, N, C*p_t*p_h*p_w]
        out = out.reshape(batch, fp, hp, wp, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return out.reshape(batch, -1, frames, height, width)

    def stream_context(self, batch, fp, hp, wp, device, causal, cache, write_chunks) -> StreamContext:
        cfg = self.config
        chunk_fp = cfg.chunk_frames // cfg.patch_size[0]
        frame_offset = torch.arange(fp, device=device)
        if cache is None:
            rope = rope_angles(frame_offset[None].expand(batch, -1), hp, wp, cfg.head_dim, cfg.rope_theta)
            self_mask = block_causal_mask(fp, chunk_fp, hp * wp, device) if causal and fp > chunk_fp else None
            return StreamContext(rope, self_mask)
        if fp % chunk_fp:
            raise ValueError(f"streaming input must be whole chunks of {chunk_fp} latent frames, got {fp}")
        tok = chunk_fp * hp * wp
        # the passes of a chunk share its context (inference only: later passes write into the joined keys)
        reuse = self.reuse_chunk_context and not torch.is_grad_enabled()
        key_chunks = cache.key_chunks()                                                    # [B, n_slots]
        memo = cache.context_memo if reuse else None
        if memo is not None and same_view(memo[0], (fp, hp, wp), cache.next_chunk, key_chunks):
            ctx = memo[1]   # an earlier pass of this chunk: what passes see has not changed since
            return StreamContext(ctx.rope, ctx.self_mask, cache, ctx.cache_rope, ctx.cache_slots, write_chunks * tok,
                                 ctx.joined)
        # input chunk i of stream b is chunk next_chunk[b] + i; the newest one anchors the RoPE positions
        n_in = fp // chunk_fp
        in_chunks = cache.next_chunk[:, None] + torch.arange(n_in, device=device)[None]     # [B, n_in]
        newest = in_chunks[:, -1:]
        S, W, mode = cache.sink_chunks, cache.window_chunks, cache.rope

        def chunk_rope(chunks):   # [B, n] chunk indices -> rotations of all their tokens
            first = rope_chunk_position(chunks, newest, S, W, mode) * chunk_fp             # [B, n]
            frames = (first[:, :, None] + torch.arange(chunk_fp, device=device)).flatten(1)
            return rope_angles(frames, hp, wp, cfg.head_dim, cfg.rope_theta)

        # [B, n_in, n_slots + n_in] which chunks each input chunk sees, expanded to tokens
        sees = visible(in_chunks[:, :, None], torch.cat([key_chunks, in_chunks], 1)[:, None, :], S, W)
        mask = None
        if cache.static or not bool(sees.all()):
            mask = sees.repeat_interleave(tok, 1).repeat_interleave(tok, 2)[:, None]          # [B, 1, N, M]
        ctx = StreamContext(chunk_rope(in_chunks), mask, cache, chunk_rope(key_chunks), key_chunks.shape[1],
                            write_chunks * tok, {} if reuse else None)
        if reuse:   # snapshots: the cache's counters and slots change in place
            cache.context_memo = (((fp, hp, wp), cache.next_chunk.clone(), key_chunks.clone()), ctx)
        return ctx
