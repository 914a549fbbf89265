"""Training data: frame clips from `streamvideo collect`, latent clips, text tokens, codec folders, and the
start frames a model folder takes from a data set (`add_start_frames`).

Alignment: a latent frame k covers video frames [k*tf, (k+1)*tf) (tf = the codec's temporal factor);
its action vector is the mean of the network's vectors (`ActionSpec.vectors`: one-hots, Box values rescaled
to [-1, 1]) of the actions that produced those frames, so a held action gives the vector the generator feeds
at inference. The action space is the one `streamvideo collect` recorded in the dataset's meta.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.collect import META_FILE, first_frames, load_dataset
from ..engine.actions import ActionSpec
from ..engine.checkpoints import UserError
from ..engine.codecs import Codec, PixelCodec
from ..engine.codecs import build as build_codec
from ..engine.generator import check_start_frames
from ..engine.presets import (
    MODEL_FILE,
    find_folder,
    read_meta,
    text_encoder_from_meta,
    trained_prompts,
    write_start_frames,
)
from ..engine.text import TextEncoder

CODEC_META = "codec.json"
CODEC_WEIGHTS = "codec.safetensors"
# The default text encoder (docs/training.md explains the choice): offline, no download, instant start-up.
TEXT_SPEC = {"name": "hash", "dim": 64, "max_tokens": 24, "seed": 0}


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div(255)


def check_frame_size(data_dir, hw: tuple[int, int], factor: int) -> None:
    """Refuse, in one line and before any work, frames the codec cannot cut into whole patches."""
    if hw[0] % factor or hw[1] % factor:
        fitting = "x".join(str(max(factor, round(n / factor) * factor)) for n in (hw[1], hw[0]))
        raise UserError(f"{data_dir} holds {hw[1]}x{hw[0]} frames, but the codec needs sides that are multiples "
                        f"of {factor}: collect it again with --size {fitting}, say")


def latent_actions(actions: np.ndarray, spec: ActionSpec, temporal_factor: int) -> torch.Tensor:
    """Actions [N, T, *action shape] -> the mean action vector per latent frame [N, T // tf, A]."""
    n, t = actions.shape[:2]
    if t % temporal_factor:
        raise ValueError(f"clip length {t} is not a multiple of the codec's temporal factor {temporal_factor}")
    return spec.vectors(actions).reshape(n, t // temporal_factor, temporal_factor, spec.embed_inputs).mean(2)


def dataset_actions(data_dir) -> ActionSpec:
    """The action space `streamvideo collect` recorded in the dataset's meta.json."""
    file = Path(data_dir) / META_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: is {data_dir} a `streamvideo collect` output?")
    try:
        return ActionSpec.from_dict(json.loads(file.read_text())["action_space"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{file}: cannot read its action space ({type(err).__name__}: {err})") from None


def check_same_actions(recorded: ActionSpec, source: str, spec: ActionSpec, model: str) -> None:
    """Refuse, in one line, data (a dataset, ODE pairs, another model) of another action space than `model`'s."""
    if recorded != spec:
        raise UserError(f"{source} has {recorded.describe()} actions but {model} takes {spec.describe()}")


def noop_context(actions: torch.Tensor, has_ctx: torch.Tensor, ctx_frames: int, spec: ActionSpec) -> torch.Tensor:
    """Context latent frames get the no-op action, as `StreamGenerator.write_context` feeds them.

    actions [B, F, A]; has_ctx [B] bool -> [B, F, A].
    """
    noop = spec.encode([spec.noop()])[0]                                    # [A]
    out = actions.clone()
    out[has_ctx, :ctx_frames] = noop
    return out


# --------------------------------------------------------------------------- codec folders

def save_codec(folder, codec: Codec) -> None:
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, str(folder / CODEC_WEIGHTS))
    (folder / CODEC_META).write_text(json.dumps(codec.config(), indent=2))


def load_codec(spec) -> Codec:
    """A codec folder written by `streamvideo train codec`, or "pixel:P" (frames as P x P patches, no training)."""
    from streamvideo.engine.checkpoints import load_file_checked
    if str(spec).startswith("pixel:"):
        return PixelCodec(patch=int(str(spec).split(":")[1]))
    folder = Path(spec)
    if not (folder / CODEC_META).exists():
        raise FileNotFoundError(f"{folder / CODEC_META} not found: pass the output folder of `streamvideo train codec`")
    codec = build_codec(**json.loads((folder / CODEC_META).read_text()))
    load_file_checked(codec, folder / CODEC_WEIGHTS, f"the weights of the {codec.config()['name']!r} codec")
    return codec.eval().requires_grad_(False)


# --------------------------------------------------------------------------- latent clips

@dataclass
class LatentClips:
    latents: torch.Tensor    # [N, C, F, h, w] clean latents, float16 (memory); .float() per batch
    actions: torch.Tensor    # [N, F, A] mean one-hot per latent frame
    prompt_ids: torch.Tensor # [N] index into prompts
    prompts: list[str]

    def __len__(self) -> int:
        return len(self.latents)


def encode_clips(codec: Codec, data_dir, clip_frames: int, action_spec: ActionSpec, batch_size: int = 32,
                 max_clips: int = 6000) -> LatentClips:
    """Non-overlapping clips of `clip_frames` frames inside one episode (a seeded subset of at most
    `max_clips`), each encoded from a fresh codec state; their actions as `action_spec`'s vectors."""
    dataset = load_dataset(data_dir)
    check_frame_size(data_dir, dataset.frames.shape[1:3], codec.spatial_factor)
    starts = dataset.clip_starts(clip_frames)
    starts = np.sort(np.random.default_rng(0).permutation(starts)[:max_clips])
    clips = dataset.clips(clip_frames, starts=starts)
    if len(clips.frames) == 0:
        raise ValueError(f"{data_dir} has no clip of {clip_frames} frames inside one episode")
    latents = []
    with torch.inference_mode():
        for i in range(0, len(clips.frames), batch_size):
            latents.append(codec.encode(frames_to_tensor(clips.frames[i:i + batch_size])).half())
    prompts = sorted(set(clips.prompts))
    ids = torch.tensor([prompts.index(p) for p in clips.prompts])
    return LatentClips(torch.cat(latents), latent_actions(clips.actions, action_spec, codec.temporal_factor),
                       ids, prompts)


def cached_latent_clips(codec_dir, data_dir, clip_frames: int, action_spec: ActionSpec) -> LatentClips:
    """encode_clips, cached next to a trained codec (one file per data folder and clip length)."""
    if str(codec_dir).startswith("pixel:"):
        return encode_clips(load_codec(codec_dir), data_dir, clip_frames, action_spec)
    key = f"latents-{Path(data_dir).resolve().name}-{clip_frames}.pt"
    path = Path(codec_dir) / key
    if path.exists():
        clips = LatentClips(**torch.load(path, weights_only=False))
        if clips.actions.shape[-1] == action_spec.embed_inputs:  # older caches hold every space as Discrete(6)
            return clips
    clips = encode_clips(load_codec(codec_dir), data_dir, clip_frames, action_spec)
    torch.save(vars(clips), path)
    return clips


def text_encoder() -> TextEncoder:
    return text_encoder_from_meta(TEXT_SPEC, Path("."))


def add_start_frames(folder, data_dir) -> Path:
    """Give an existing model folder start frames: for each of its recorded prompts, the first chunk of
    frames of the first episode with that prompt in `data_dir` (a `streamvideo collect` dataset)."""
    folder = find_folder(str(folder))
    meta = read_meta(folder)
    prompts = trained_prompts(folder)
    if not prompts:
        raise ValueError(f"{folder / MODEL_FILE} records no trained prompts to pair start frames with")
    codec = build_codec(**meta["codec"])
    frames = first_frames(data_dir, prompts, frames=meta["model"]["chunk_frames"] * codec.temporal_factor)
    height, width = (n * codec.spatial_factor for n in meta["latent_hw"])
    write_start_frames(folder, check_start_frames(frames, prompts, height, width))
    return folder
