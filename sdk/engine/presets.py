"""`streamvideo.load`: a StreamGenerator from a preset name or a model folder.

A model folder (what `streamvideo train` writes, and what ships as "default") holds `streamvideo.json`
(architecture, action space, codec, text encoder, latent size, fps, schedule, default prompt, the prompts it
was trained on) and safetensors weights: `model.safetensors`, and `codec.safetensors` unless the codec has no weights
(pixel); a umT5 text encoder is a subfolder that streamvideo.json names. It may also hold
`start_frames.npz` ("frames": uint8 [P, T, H, W, 3]), a few real frames per trained prompt that play and
the envs start streams from.

Loading checks every file: a missing, unreadable or ill-fitting one raises a `CheckpointError` naming the
file and what was expected (and the keys, for weights), so nothing runs on uninitialised weights.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from .actions import ActionSpec
from .checkpoints import CheckpointError, UserError, load_file_checked
from .codecs import PixelCodec, TAEHVCodec
from .codecs import build as build_codec
from .generator import StreamGenerator, check_start_frames
from .model import PRESETS, CausalDiT, ModelConfig
from .speedups import DEFAULT_SPEEDUPS, apply_speedups, parse_speedups
from .text import HashTextEncoder, TextEncoder

PACKAGE_WEIGHTS = Path(__file__).parents[1] / "weights"  # sdk/weights: the package data of `streamvideo`
# the built-in game's actions, named as its get_action_meanings() names them
GAME_ACTIONS = ActionSpec("discrete", n=6, meanings=("NOOP", "UP", "DOWN", "LEFT", "RIGHT", "PLANT"))
RANDOM_PRESETS = ("tiny-random", "tiny-random-steered", "wan2.1-1.3b")
MODEL_FILE = "streamvideo.json"
MODEL_WEIGHTS = "model.safetensors"
CODEC_WEIGHTS = "codec.safetensors"
START_FRAMES_FILE = "start_frames.npz"
REQUIRED_META = ("model", "codec", "text", "latent_hw", "fps")   # what from_folder reads without a default


def preset_names() -> list[str]:
    shipped = sorted(p.name for p in PACKAGE_WEIGHTS.glob("*") if (p / MODEL_FILE).exists())
    return shipped + list(RANDOM_PRESETS)


def resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        try:
            return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                    "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
        except KeyError:
            raise UserError(f"unknown dtype {dtype!r}; expected float32, bfloat16 or float16") from None
    return dtype


def resolve_device(device) -> torch.device:
    """The torch device to run on (None: cuda when available, else cpu), refusing one this machine lacks
    before any weights are built on it."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {str(device)!r}; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {str(device)!r}: CUDA is not available on this machine (torch "
                        f"{torch.__version__}); use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def seeded_random(module_factory, seed: int, device, dtype):
    """Random weights that are the same on every machine (initialised on the CPU generator)."""
    torch.manual_seed(seed)
    if torch.device(device).type == "cpu":
        return module_factory().to(dtype)
    with torch.device(device):   # full-size models: initialise in place, never on the host
        return module_factory().to(dtype)


def tiny_random(device, dtype, resolution=None, steered: bool = False):
    """A few-MB random model on the built-in game's action space: tests and smoke runs. steered: with the
    steered anchor (radius 1) and action tokens, their zero-initialised layers drawn at random too, so the
    action and the anchor change the output as a trained model's do."""
    height, width = resolution or (64, 64)
    patch = 4
    cfg = ModelConfig(num_heads=2, head_dim=32, ffn_dim=128, num_layers=2, text_dim=32, in_channels=3 * patch**2,
                      out_channels=3 * patch**2, chunk_frames=3, action=GAME_ACTIONS,
                      anchor_radius=1 if steered else -1, action_tokens=steered)

    def build():
        model = CausalDiT(cfg)
        if steered:
            for layer in (model.steered_anchor.offset_logits, model.action_token_embedder.mlp.linear_2):
                torch.nn.init.normal_(layer.weight, std=0.5)
        return model
    model = seeded_random(build, 0, device, dtype)
    text = HashTextEncoder(dim=32, max_tokens=16)
    return model, PixelCodec(patch=patch), text, (height // patch, width // patch), 15.0, "a random world"


def wan_random(device, dtype, resolution=None):
    """Wan2.1-1.3B's architecture with random weights, TAEHV decoder, umT5-sized random text: speed work."""
    height, width = resolution or (480, 832)
    model = seeded_random(lambda: CausalDiT(PRESETS["wan2.1-1.3b"]()), 0, device, dtype)
    codec = seeded_random(TAEHVCodec, 0, device, dtype)
    text = HashTextEncoder(dim=4096, max_tokens=512)
    return model, codec, text, (height // 8, width // 8), 16.0, "a random world"


def missing_meta(folder: Path) -> CheckpointError:
    return CheckpointError(f"{folder / MODEL_FILE} is missing: expected a model folder, as `save_model_folder` "
                           f"and `streamvideo train` write")


def read_meta(folder: Path) -> dict:
    """A model folder's streamvideo.json, with every field loading needs."""
    file = folder / MODEL_FILE
    if not file.is_file():
        raise missing_meta(folder)
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {file}: {err}; expected the JSON object `save_model_folder` "
                              f"writes") from None
    missing = [key for key in REQUIRED_META if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise CheckpointError(f"{file} lacks {', '.join(map(repr, missing))}; expected a JSON object with "
                              f"{', '.join(map(repr, REQUIRED_META))}")
    return meta


def built(file: Path, entry: str, build):
    """build() the part streamvideo.json's `entry` describes; a description that does not build names both."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise CheckpointError(f"{file}: cannot build its {entry!r} entry ({type(err).__name__}: {err})") from err


def from_folder(folder: Path, device, dtype):
    """A model folder written by `save_model_folder`."""
    meta = read_meta(folder)
    file = folder / MODEL_FILE
    config = built(file, "model", lambda: ModelConfig.from_dict(meta["model"]))
    actions = built(file, "action", lambda: recorded_actions(meta, config.action))
    model = built(file, "model", lambda: CausalDiT(config.with_overrides(action=actions)))
    load_file_checked(model, folder / MODEL_WEIGHTS, f"the model's weights for the architecture {MODEL_FILE} describes")
    codec = built(file, "codec", lambda: build_codec(**meta["codec"]))
    if codec.state_dict() or (folder / CODEC_WEIGHTS).exists():   # a codec without weights (pixel) has no file
        load_file_checked(codec, folder / CODEC_WEIGHTS,
                          f"the weights of the {meta['codec'].get('name')!r} codec {MODEL_FILE} names")
    text = built(file, "text", lambda: text_encoder_from_meta(meta["text"], folder))
    return (model.to(device, dtype), codec.to(device, dtype), text, tuple(meta["latent_hw"]), meta["fps"],
            meta.get("prompt", ""), meta.get("schedule"))


def recorded_actions(meta: dict, embedded: ActionSpec) -> ActionSpec:
    """The action space streamvideo.json's "action" entry records (`ActionSpec.to_dict`); `embedded` is what
    its "model" entry gives the action embedder. Folders written before the entry existed were trained on
    the built-in game: its Discrete(6) comes back with the game's action names."""
    if "action" not in meta:
        return GAME_ACTIONS if embedded == GAME_ACTIONS else embedded
    spec = ActionSpec.from_dict(meta["action"])
    if spec.embed_inputs != embedded.embed_inputs:
        raise ValueError(f"{spec.describe()} takes {spec.embed_inputs} action inputs, the model's action embedder "
                         f"{embedded.embed_inputs}")
    return spec


def text_encoder_from_meta(spec: dict, folder: Path) -> TextEncoder:
    kind = spec.get("name")
    if kind == "hash":
        return HashTextEncoder(dim=spec["dim"], max_tokens=spec["max_tokens"], seed=spec.get("seed", 0))
    if kind == "umt5":
        from .text import UMT5Encoder
        return UMT5Encoder(folder / spec["folder"], max_tokens=spec.get("max_tokens", 512))
    raise ValueError(f"unknown text encoder {kind!r}; expected 'hash' or 'umt5'")


def save_model_folder(folder, model: CausalDiT, codec, text: dict, latent_hw, fps: float, prompt: str = "",
                      schedule: str | None = None, extra: dict | None = None, prompts: list[str] | None = None,
                      start_frames: np.ndarray | None = None) -> Path:
    """Write a model folder that `streamvideo.load(folder)` reads back.

    prompts: the prompts the model was trained on; the generator offers them as `example_prompts()` and
    warns about prompt words outside them.
    start_frames: uint8 [P, T, H, W, 3], T real frames for each of the P prompts (in their order) at the
    model's resolution; play and the envs start streams from them (`generator.start_frames_for`).
    """
    from safetensors.torch import save_file
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts or []):
        raise TypeError(f"prompts must be a list of str, got {prompts!r}")
    if start_frames is not None:
        if prompts is None:
            raise ValueError("start_frames need prompts= (one clip per trained prompt, in their order)")
        check_start_frames(start_frames, prompts, latent_hw[0] * codec.spatial_factor,
                           latent_hw[1] * codec.spatial_factor)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": model.config.to_dict(), "action": model.config.action.to_dict(), "codec": codec.config(),
            "text": text, "latent_hw": list(latent_hw),
            # the frame size (latent_hw x the codec's spatial factor), for readers of the file
            "height": latent_hw[0] * codec.spatial_factor, "width": latent_hw[1] * codec.spatial_factor,
            "fps": fps, "prompt": prompt, "prompts": None if prompts is None else list(prompts),
            "schedule": schedule, **(extra or {})}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    codec_state = codec.state_dict()
    if codec_state:
        save_file({k: v.contiguous() for k, v in codec_state.items()}, str(folder / "codec.safetensors"))
    (folder / MODEL_FILE).write_text(json.dumps(meta, indent=2))
    write_start_frames(folder, start_frames)
    return folder


def write_start_frames(folder: Path, frames: np.ndarray | None) -> None:
    """Write (or, with None, remove) the folder's start frames: a stale file would pair a re-saved
    model's prompts with another run's frames."""
    if frames is None:
        (folder / START_FRAMES_FILE).unlink(missing_ok=True)
    else:
        np.savez_compressed(folder / START_FRAMES_FILE, frames=frames)


def load_parts(name_or_path="default", device=None, dtype=None, random_weights: bool = False, resolution=None,
               speedups=DEFAULT_SPEEDUPS):
    """(model, codec, text encoder, latent_hw, fps, default prompt, model's own schedule) without a generator,
    so several generators (e.g. one per rollout mode in `streamvideo bench`) can share one model.
    speedups: the inference speed-ups to switch on (`streamvideo.engine.speedups`)."""
    speedups = parse_speedups(speedups)   # a bad name fails before any weights load
    parts = built_parts(str(name_or_path), resolve_device(device), dtype, random_weights, resolution)
    apply_speedups(parts[0], speedups)
    return parts


def built_parts(name: str, device: torch.device, dtype, random_weights: bool, resolution):
    dtype = resolve_dtype(dtype, device)
    if name in ("tiny-random", "tiny-random-steered"):
        return (*tiny_random(device, dtype, resolution, steered=name.endswith("steered")), None)
    if name == "wan2.1-1.3b":
        if not random_weights:
            raise UserError("weights for wan2.1-1.3b are not shipped: pass a diffusers Wan2.1 folder as the path, "
                            "or random_weights=True (--random-weights) to measure speed on the full-size "
                            "architecture")
        return (*wan_random(device, dtype, resolution), None)
    return from_folder(find_folder(name), device, dtype)


def find_folder(name: str) -> Path:
    """The model folder a name refers to: a shipped model's, or a path holding streamvideo.json."""
    for folder in (PACKAGE_WEIGHTS / name, Path(name)):
        if (folder / MODEL_FILE).exists():
            return folder
    if Path(name).is_dir():
        raise missing_meta(Path(name))
    raise CheckpointError(f"no model {name!r}: expected a preset ({', '.join(preset_names())}) or a folder "
                          f"containing {MODEL_FILE}")


def trained_env(name_or_path="default") -> dict | None:
    """The env a model's data was recorded from ({"id": ..., "kwargs": {...}}), as its folder records it; None
    for random presets and folders written before models kept it. Reads only streamvideo.json."""
    name = str(name_or_path)
    if name in RANDOM_PRESETS:
        return None
    return read_meta(find_folder(name)).get("env")


def trained_prompts(name_or_path="default") -> list[str]:
    """The prompts a model was trained on, as its folder records them ([] for random presets and older
    folders); reads only streamvideo.json, no weights."""
    name = str(name_or_path)
    if name in RANDOM_PRESETS:
        return []
    return list(read_meta(find_folder(name)).get("prompts") or [])


def trained_start_frames(name_or_path="default", prompts: list[str] | None = None) -> np.ndarray | None:
    """The real start frames uint8 [P, T, H, W, 3] a model folder ships, one clip per trained prompt; None
    for random presets and folders without them. Reads only start_frames.npz (and streamvideo.json).

    prompts: the clips of these prompts instead, in their order (a training stage saving a derived folder
    whose prompts may be ordered differently); None, with a warning, when the folder lacks one of them.
    """
    name = str(name_or_path)
    if name in RANDOM_PRESETS:
        return None
    folder = find_folder(name)
    if not (folder / START_FRAMES_FILE).exists():
        return None
    frames = read_start_frames(folder / START_FRAMES_FILE)
    if prompts is None:
        return frames
    recorded = trained_prompts(folder)
    missing = [p for p in prompts if p not in recorded]
    if missing:
        warnings.warn(f"{folder} has no start frames for prompts {missing}; giving none", stacklevel=2)
        return None
    return frames[[recorded.index(p) for p in prompts]]


def read_start_frames(file: Path) -> np.ndarray:
    try:
        with np.load(file) as data:
            return data["frames"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:  # truncated, not an npz, no "frames"
        raise CheckpointError(f"cannot read {file}: {err}; expected an npz archive with \"frames\" uint8 "
                              f"[P, T, H, W, 3]") from None


def checked_start_frames(name_or_path, parts, prompts: list[str]) -> np.ndarray | None:
    """The folder's start frames, checked against its prompts and the model's frame size (naming the file)."""
    frames = trained_start_frames(name_or_path)
    if frames is None:
        return None
    codec, latent_hw = parts[1], parts[3]
    try:
        return check_start_frames(frames, prompts, latent_hw[0] * codec.spatial_factor,
                                  latent_hw[1] * codec.spatial_factor)
    except ValueError as err:
        raise CheckpointError(f"{find_folder(str(name_or_path)) / START_FRAMES_FILE}: {err}") from None


def generator_from_parts(parts, mode: str = "diagonal", schedule=None, **kw) -> StreamGenerator:
    model, codec, text, latent_hw, fps, prompt, own_schedule = parts
    if schedule is None:
        schedule = (own_schedule or "4322222") if mode == "diagonal" else "4"
    device = next(model.parameters()).device
    return StreamGenerator(model, codec.to(device), text, latent_hw, mode=mode, schedule=schedule, fps=fps,
                           default_prompt=prompt, **kw)


def load(name_or_path="default", device=None, dtype=None, mode: str = "diagonal", schedule=None,
         batch_size: int = 1, random_weights: bool = False, resolution=None, window_chunks: int = 2,
         sink_chunks: int = 1, kv_noise: float | None = None, extend: str = "cyclic", sigmas=None,
         rope: str = "window", speedups=DEFAULT_SPEEDUPS) -> StreamGenerator:
    """A ready StreamGenerator.

    name_or_path: "default" (shipped), "tiny-random", "wan2.1-1.3b" (random_weights=True), or a model folder.
    resolution: (height, width) for the random presets.
    schedule: step allocation such as "4322222" (diagonal) or "4" (self_forcing / hierarchical);
              None takes the model's own (or 4322222 / 4).
    sigmas: noise levels per step count: "diagonal" (the DD release's, default of mode diagonal), "uniform"
            (Self-Forcing / HiAR's [1000, 750, 500, 250] warped, default of the other modes), or a dict
            {steps: [sigma, ...]} (decreasing, in (0, 1]; the network's timestep is 1000 * sigma).
    window_chunks, sink_chunks: the attention window, as the release: 1 sink chunk + 2 previous chunks + the
            current one (12 latent frames). rope: "window" (positions relative to the window, for unbounded
            streams) or "absolute" (chunk k at position k, the release's default inference).
    speedups: inference speed-ups, as names or one comma-separated text (`streamvideo.engine.speedups`):
            "default" (gelu, context), "none" (the plain path), or a list such as "gelu,context,compile"
            (with "compile", load runs one throwaway chunk so the compilation happens here).
    A model folder's recorded training prompts become the generator's `example_prompts()` and vocabulary,
    its start frames (if any) the generator's `start_frames_for(prompt)`.
    """
    parts = load_parts(name_or_path, device, dtype, random_weights, resolution, speedups)
    prompts = trained_prompts(name_or_path)
    start_frames = checked_start_frames(name_or_path, parts, prompts)
    gen = generator_from_parts(parts, mode, schedule, batch_size=batch_size, window_chunks=window_chunks,
                               sink_chunks=sink_chunks, kv_noise=kv_noise, extend=extend, sigmas=sigmas, rope=rope,
                               trained_prompts=prompts, start_frames=start_frames)
    if "compile" in parts[0].speedups:   # compile now, not in the caller's first step: one throwaway chunk
        gen.step()
        gen.reset()
    return gen
