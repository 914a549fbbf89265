"""Text encoders: prompts -> (tokens [B, L, dim] float32, mask [B, L] bool).

- `HashTextEncoder`: small, deterministic, offline (tests, tiny-random, the embedded default)
- `UMT5Encoder`: Wan's umT5 encoder from a local folder through transformers (the `wan` extra)

Both pad to a fixed `max_tokens` with zeros beyond the mask (as Wan does), and keep a small LRU
cache of encoded prompts: games repeat the same few prompts. A prompt longer than `max_tokens` (its end
token included) is cut to its first tokens; `fit(prompt)` says which part of the prompt is read.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

HASH_TOKEN = re.compile(r"\w+|[^\w\s]")   # what the hash encoder reads: words and single punctuation marks


@dataclass(frozen=True)
class PromptFit:
    """The part of a prompt a text encoder reads: all of it, or the beginning that fits its `max_tokens`."""
    text: str     # what the encoder reads (encoding it gives the prompt's tokens); the prompt itself when it fits
    kept: int     # the prompt's tokens the encoder keeps (the end token not counted)
    total: int    # the prompt's tokens

    @property
    def cut(self) -> bool:
        return self.kept < self.total


class TextEncoder:
    """Base class: subclasses set `dim` and `max_tokens` and implement `_encode` (uncached)."""

    dim: int
    max_tokens: int

    def __init__(self, cache_size: int = 256):
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts -> (tokens [B, max_tokens, dim] float32, mask [B, max_tokens] bool)."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"{type(self).__name__}.encode expects a list of strings, got {prompts!r}")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            tokens, mask = self._encode(missing)
            for i, p in enumerate(missing):
                self._cache[p] = (tokens[i], mask[i])
        for p in prompts:
            self._cache.move_to_end(p)
        entries = [self._cache[p] for p in prompts]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return torch.stack([t for t, _ in entries]), torch.stack([m for _, m in entries])

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def fit(self, prompt: str) -> PromptFit:
        """How much of `prompt` fits in `max_tokens`: the text the encoder actually reads."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
#                            Prompt words (the vocabulary of a model)
# ---------------------------------------------------------------------------------------------


def prompt_words(prompt: str) -> list[str]:
    """The words of a prompt as the hash encoder sees them: lower-cased, punctuation dropped."""
    return re.findall(r"\w+", prompt.lower())


def vocabulary(prompts: list[str]) -> list[str]:
    """Sorted distinct words of `prompts`: what a hash-encoded model trained on them can respond to."""
    return sorted({word for prompt in prompts for word in prompt_words(prompt)})


def unknown_words(prompt: str, known: set[str] | list[str]) -> list[str]:
    """The prompt's words missing from `known`, each once, in the order they appear."""
    known = set(known)
    return list(dict.fromkeys(word for word in prompt_words(prompt) if word not in known))


# ---------------------------------------------------------------------------------------------
#                                     Hashing encoder
# ---------------------------------------------------------------------------------------------


class HashTextEncoder(TextEncoder):
    """Deterministic word-hash encoder: every lower-cased word gets a fixed random vector (seeded
    by a stable hash of the word and `seed`), plus a sinusoidal position signal; an end token
    closes every prompt, so even "" has one valid token. Same prompt -> same tokens, in any process.
    """

    END = "</s>"

    def __init__(
        self,
        dim: int = 64,
        max_tokens: int = 32,
        seed: int = 0,
        device: str | torch.device = "cpu",
        cache_size: int = 256,
    ):
        super().__init__(cache_size)
        if dim < 2 or max_tokens < 1:
            raise ValueError(
                f"HashTextEncoder: need dim >= 2 and max_tokens >= 1, got dim={dim}, max_tokens={max_tokens}"
            )
        self.dim, self.max_tokens, self.seed, self.device = dim, max_tokens, seed, torch.device(device)
        # sinusoidal positions [max_tokens, dim], small next to the unit-variance word vectors
        pos = torch.arange(max_tokens, dtype=torch.float64)[:, None]
        freq = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        pe = torch.zeros(max_tokens, dim, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: dim // 2])
        self.positions = (0.1 * pe).float()

    def word_vector(self, word: str) -> torch.Tensor:
        digest = hashlib.blake2b(f"{self.seed}:{word}".encode(), digest_size=8).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
        return torch.randn(self.dim, generator=gen)

    def fit(self, prompt: str) -> PromptFit:
        ends = [match.end() for match in HASH_TOKEN.finditer(prompt.lower())]
        kept = min(len(ends), self.max_tokens - 1)  # the end token takes the last place
        if kept == len(ends):
            return PromptFit(prompt, kept, kept)
        lowered_end = ends[kept - 1] if kept else 0
        # lower() lengthens a few characters ("İ" -> "i̇"): cut the prompt where its lowered prefix reaches the end
        lowered_lengths = itertools.accumulate((len(char.lower()) for char in prompt), initial=0)
        cut = next(i for i, length in enumerate(lowered_lengths) if length >= lowered_end)
        return PromptFit(prompt[:cut], kept, len(ends))

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.zeros(len(prompts), self.max_tokens, self.dim)
        mask = torch.zeros(len(prompts), self.max_tokens, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            words = HASH_TOKEN.findall(prompt.lower())[: self.max_tokens - 1] + [self.END]
            tokens[i, : len(words)] = (
                torch.stack([self.word_vector(w) for w in words]) + self.positions[: len(words)]
            )
            mask[i, : len(words)] = True
        return tokens.to(self.device), mask.to(self.device)


# ---------------------------------------------------------------------------------------------
#                                    umT5 (Wan's encoder)
# ---------------------------------------------------------------------------------------------


class UMT5Encoder(TextEncoder):
    """umT5 encoder (Wan 2.1's text encoder) from a local folder, through transformers.

    `folder` holds the encoder (`config.json` + weights, model_type "umt5" or "t5") and its
    tokenizer; a Wan pipeline folder with `text_encoder/` and `tokenizer/` works too. Returns the
    last hidden states, padded to `max_tokens` with zeros beyond the mask (Wan zeroes padding).
    """

    def __init__(
        self,
        folder: str | Path,
        max_tokens: int = 512,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        cache_size: int = 256,
    ):
        super().__init__(cache_size)
        try:
            from transformers import AutoConfig, AutoTokenizer, T5EncoderModel, UMT5EncoderModel
        except ImportError as err:
            raise ImportError(
                "UMT5Encoder needs transformers (the `wan` extra): pip install 'streamvideo[wan]'"
            ) from err
        root = Path(folder)
        model_dir = root / "text_encoder" if (root / "text_encoder" / "config.json").is_file() else root
        tok_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else model_dir
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"no umT5 encoder at {folder}: expected config.json + weights + tokenizer files "
                "(or a Wan pipeline folder with text_encoder/ and tokenizer/)"
            )
        model_type = AutoConfig.from_pretrained(model_dir).model_type
        if model_type not in ("umt5", "t5"):
            raise ValueError(
                f"UMT5Encoder: {model_dir} holds a {model_type!r} model, expected 'umt5' or 't5'"
            )
        model_cls = UMT5EncoderModel if model_type == "umt5" else T5EncoderModel
        self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        self.model = model_cls.from_pretrained(model_dir, dtype=dtype).to(device).eval().requires_grad_(False)
        self.dim = self.model.config.d_model
        self.max_tokens = max_tokens
        self.device = torch.device(device)

    def fit(self, prompt: str) -> PromptFit:
        ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
        room = self.max_tokens - self.tokenizer.num_special_tokens_to_add()  # the end token </s> closes a prompt
        if len(ids) <= room:
            return PromptFit(prompt, len(ids), len(ids))
        return PromptFit(self.tokenizer.decode(ids[:room], skip_special_tokens=True), room, len(ids))

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.max_tokens,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        ).to(self.device)
        mask = batch.attention_mask.bool()  # [B, L]
        hidden = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        tokens = hidden.float() * mask[..., None]  # [B, L, dim], zeros beyond the mask
        return tokens, mask
