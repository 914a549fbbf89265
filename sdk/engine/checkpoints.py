"""Loading and saving CausalDiT weights in the two layouts Wan checkpoints come in.

(a) diffusers: a folder with `config.json` + `*.safetensors` (maybe sharded), parameter names of
    `WanTransformer3DModel` — exactly our names. Read directly: no `accelerate` needed.
(b) original Wan / Self-Forcing: one state-dict file (`.safetensors`, `.pt`, `.pth`), keys like
    `model.diffusion_model.blocks.0.self_attn.q.weight`, `ffn.0`, `modulation`, `head.head`, and
    `norm3` for the cross-attention norm (diffusers calls it `norm2`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .actions import ActionSpec
from .model import CausalDiT, ModelConfig

# original Wan name -> diffusers name, applied to every key in order (mirrors diffusers' single-file converter)
WAN_TO_DIFFUSERS = [
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("self_attn.", "attn1."),
    ("cross_attn.", "attn2."),
    (".o.", ".to_out.0."),
    (".q.", ".to_q."),
    (".k.", ".to_k."),
    (".v.", ".to_v."),
    ("head.modulation", "scale_shift_table"),
    ("head.head.", "proj_out."),
    (".modulation", ".scale_shift_table"),
    ("ffn.0.", "ffn.net.0.proj."),
    ("ffn.2.", "ffn.net.2."),
]
# Wan's norm3 (before cross-attention) is diffusers' norm2 and vice versa
NORM_SWAP = {"norm2": "norm3", "norm3": "norm2"}
ORIGINAL_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")
# diffusers config.json field -> ModelConfig field
DIFFUSERS_CONFIG = {"patch_size": "patch_size", "num_attention_heads": "num_heads", "attention_head_dim": "head_dim",
                    "in_channels": "in_channels", "out_channels": "out_channels", "text_dim": "text_dim",
                    "freq_dim": "freq_dim", "ffn_dim": "ffn_dim", "num_layers": "num_layers",
                    "cross_attn_norm": "cross_attn_norm", "eps": "eps"}
NAMED_KEYS = 5   # an error names this many keys of each kind, then counts the rest


class UserError(ValueError):
    """A mistake of the user's, not a bug: the message says what was wrong and what was expected (naming the
    file or value); the command line (`streamvideo.apps.cli`) prints it in one line and exits 2. A ValueError, so
    library callers that catch those keep working. It lives here, not in cli.py: the engine raises it and imports
    nothing from the apps (docs/architecture.md), and the package imports this module at start-up, while
    `python -m streamvideo.apps.cli` warns when cli.py was imported before it runs."""


class CheckpointError(UserError):
    """A model or checkpoint file that is missing, cannot be read or does not fit its module; the message
    names the file, and the keys when they are the problem."""


# ----------------------------------------------------------------------------- key conversion

def swap_norms(key: str) -> str:
    return re.sub(r"\.(norm2|norm3)\.", lambda m: f".{NORM_SWAP[m.group(1)]}.", key)


def wan_key_to_ours(key: str) -> str:
    for prefix in ORIGINAL_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    for old, new in WAN_TO_DIFFUSERS:
        key = key.replace(old, new)
    return swap_norms(key)


def our_key_to_wan(key: str) -> str:
    key = swap_norms(key)
    for old, new in reversed(WAN_TO_DIFFUSERS):
        key = key.replace(new, old)
    return "model.diffusion_model." + key


# ----------------------------------------------------------------------------- file reading

def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or not a checkpoint at all
        kind = "safetensors" if file.suffix == ".safetensors" else "torch"
        raise CheckpointError(f"cannot read {file}: {err}; expected a {kind} state dict (is the file "
                              f"truncated?)") from err
    for wrapper in ("generator_ema", "generator", "state_dict", "model"):  # Self-Forcing / trainer wrappers
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file} does not hold a state dict of tensors")
    return state


def read_folder(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"no *.safetensors weights in {folder}")
    state = {}
    for f in files:
        state.update(read_state_dict(f))
    return state


def config_from_diffusers(folder: Path) -> ModelConfig:
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {folder / 'config.json'}: {err}") from err
    if raw.get("image_dim") or raw.get("added_kv_proj_dim"):
        raise CheckpointError(f"{folder} is an image-to-video Wan model (image_dim set); "
                              "only text-to-video is supported")
    # Wan checkpoints were trained attending to all zero-padded text tokens
    return ModelConfig.from_dict({**{ours: raw[theirs] for theirs, ours in DIFFUSERS_CONFIG.items() if theirs in raw},
                                  "mask_text_padding": False})


def config_from_shapes(state: dict[str, torch.Tensor], file: Path, head_dim: int | None) -> ModelConfig:
    """Infer the architecture of an original-layout checkpoint from its tensor shapes.

    Head count is not visible in the shapes: Wan uses 128 channels per head; other models pass head_dim.
    """
    try:
        patch = state["patch_embedding.weight"]                          # [dim, C_in, p_t, p_h, p_w]
        dim = patch.shape[0]
        layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        head_dim = head_dim or 128
        if dim % head_dim:
            raise CheckpointError(f"{file}: width {dim} is not a multiple of head_dim {head_dim}; pass head_dim=")
        return ModelConfig(
            patch_size=tuple(patch.shape[2:]), num_heads=dim // head_dim, head_dim=head_dim,
            in_channels=patch.shape[1], out_channels=state["proj_out.weight"].shape[0] // patch.shape[2:].numel(),
            text_dim=state["condition_embedder.text_embedder.linear_1.weight"].shape[1],
            freq_dim=state["condition_embedder.time_embedder.linear_1.weight"].shape[1],
            ffn_dim=state["blocks.0.ffn.net.0.proj.weight"].shape[0], num_layers=layers,
            cross_attn_norm="blocks.0.norm2.weight" in state, mask_text_padding=False)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{file}: cannot infer the Wan architecture, missing or odd key {err}") from err


# ----------------------------------------------------------------------------- load / save

def first_few(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED_KEYS])
    return shown + (f" and {len(items) - NAMED_KEYS} more" if len(items) > NAMED_KEYS else "")


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], source,
                       optional: tuple[str, ...] = ()) -> None:
    """Load `state` into `module` only if it fills every parameter and buffer with the right shape, so
    nothing runs on uninitialised weights; otherwise a CheckpointError names `source` and the keys.

    optional: key prefixes the file may lack (a text-only Wan checkpoint has no action embedder).
    """
    expected = module.state_dict()
    wrong = [k for k, v in expected.items() if k in state and state[k].shape != v.shape]
    # the module's own load hooks run (e.g. a default for a key older files lack), so ask it what is missing
    result = module.load_state_dict({k: v for k, v in state.items() if k not in wrong}, strict=False)
    missing = [k for k in result.missing_keys if k not in wrong and not k.startswith(optional)]
    problems = {
        "missing keys": [repr(k) for k in missing],
        "unexpected keys": [repr(k) for k in result.unexpected_keys],
        "wrong shapes": [f"{k!r} {list(state[k].shape)} instead of {list(expected[k].shape)}" for k in wrong],
    }
    found = [f"{kind} {first_few(items)}" for kind, items in problems.items() if items]
    if found:
        raise CheckpointError(f"{source} does not fit the {type(module).__name__}: {'; '.join(found)}")


def load_file_checked(module: torch.nn.Module, file: Path, what: str) -> None:
    """Fill `module` from the state-dict file `file` (`what` it should hold, for the error when it is missing)."""
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: expected {what}")
    load_state_checked(module, read_state_dict(file), file)


def load_wan(path, device=None, dtype=None, **overrides) -> CausalDiT:
    """A CausalDiT from a diffusers folder or an original Wan / Self-Forcing file.

    overrides: ModelConfig fields, e.g. chunk_frames=3 or action=ActionSpec("discrete", n=6).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.is_dir():
        if (path / "transformer" / "config.json").exists():   # a whole diffusers pipeline folder
            path = path / "transformer"
        cfg, state = config_from_diffusers(path), read_folder(path)
    else:
        state = {wan_key_to_ours(k): v for k, v in read_state_dict(path).items()}
        cfg = config_from_shapes(state, path, overrides.get("head_dim"))
        overrides.setdefault("num_heads", cfg.dim // cfg.head_dim)
    if isinstance(overrides.get("action"), dict):
        overrides["action"] = ActionSpec(**overrides["action"])
    model = CausalDiT(cfg.with_overrides(**overrides))
    load_state_checked(model, state, path, optional=("action_embedder.",))
    return model.to(device=device, dtype=dtype)


def save_diffusers(model: CausalDiT, folder) -> Path:
    """Write `config.json` + `diffusion_pytorch_model.safetensors` as diffusers would (text-only weights)."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    config = {theirs: cfg[ours] for theirs, ours in DIFFUSERS_CONFIG.items()}
    config.update(_class_name="WanTransformer3DModel", qk_norm="rms_norm_across_heads", rope_max_seq_len=1024)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("action_embedder.")}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    return folder


def save_wan_original(model: CausalDiT, file) -> Path:
    """Write an original-layout (Wan / Self-Forcing) state dict file."""
    file = Path(file)
    state = {our_key_to_wan(k): v.contiguous() for k, v in model.state_dict().items()
             if not k.startswith("action_embedder.")}
    if file.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(file))
    else:
        torch.save(state, file)
    return file
