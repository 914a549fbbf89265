"""Every inference speed-up gives the plain path's stream, within a stated tolerance, in every mode and through
the moves that change what a pass sees (resets, context frames, a re-cache, batched streams that reset apart)."""

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import streamvideo
from streamvideo.engine.checkpoints import UserError
from streamvideo.engine.model import FeedForward, gelu_tanh_in_place
from streamvideo.engine.speedups import DEFAULT_SPEEDUPS, apply_speedups, parse_speedups

# fp32 latents of a 10-chunk stream. The speed-ups change only rounding (GELU's formula, and a batch of 1
# broadcast instead of expanded): measured differences are ~1e-6; a real error (a stale position or key) is > 1e-2
TOL = 1e-4
ACTIONS = [1, 4, 4, 2, 0, 3, 5, 1, 2, 2]


@functools.cache   # seeded, and only read: the plain streams the tests share are made once
def stream(preset: str, speedups: str, mode: str = "diagonal", batch_size: int = 1) -> torch.Tensor:
    """Latents [chunks, B, C, F, h, w] of a scripted stream: context frames, a reset of one stream (batched) or
    a new prompt (single; re-cached in diagonal mode), then more chunks."""
    gen = streamvideo.load(preset, mode=mode, batch_size=batch_size, speedups=speedups,
                           schedule="4322222" if mode == "diagonal" else "3")
    context = np.random.default_rng(0).integers(0, 256, (batch_size, 4, gen.height, gen.width, 3), dtype=np.uint8)
    gen.reset(prompt="a red knight walking", seed=3, context_frames=context)
    out = []
    for n, action in enumerate(ACTIONS):
        if n == 5 and batch_size > 1:
            gen.reset(prompt="snow", seed=9, index=[1])
        elif n == 5:   # re-cache: diagonal mode only (the others keep no pass inputs to re-encode)
            gen.set_prompt("a red knight walking on snow", recache=mode == "diagonal")
        out.append(gen.step([action] * batch_size if batch_size > 1 else action).latents)
    return torch.stack(out)


@pytest.mark.parametrize("speedups", ["gelu", "context", "fuse-qkv", "gelu,context,fuse-qkv"])
@pytest.mark.parametrize("mode", ["diagonal", "self_forcing", "hierarchical"])
def test_each_speedup_gives_the_plain_stream(speedups, mode):
    plain = stream("tiny-random-steered", "none", mode)
    fast = stream("tiny-random-steered", speedups, mode)
    assert float((fast - plain).abs().max()) < TOL


def test_batched_streams_that_reset_apart_give_the_plain_streams():
    plain = stream("tiny-random-steered", "none", batch_size=2)
    fast = stream("tiny-random-steered", "default", batch_size=2)
    assert float((fast - plain).abs().max()) < TOL


def test_the_shipped_model_with_default_speedups_gives_the_plain_stream():
    plain = stream("default", "none")
    fast = stream("default", "default")
    assert float((fast - plain).abs().max()) < TOL


def test_compiled_forward_gives_the_plain_stream():
    """torch.compile (inductor) over the static cache; the compiled kernels sum in other orders."""
    plain = stream("tiny-random-steered", "none")
    fast = stream("tiny-random-steered", "default,compile")
    assert float((fast - plain).abs().max()) < TOL


def test_fast_gelu_equals_torch_gelu_tanh():
    x = torch.linspace(-12, 12, 100_001)
    assert float((gelu_tanh_in_place(x.clone()) - F.gelu(x, approximate="tanh")).abs().max()) < 1e-6


def test_training_keeps_the_differentiable_gelu():
    ffn = FeedForward(8, 16)
    ffn.fast_gelu = True
    x = torch.randn(2, 5, 8, requires_grad=True)
    out = ffn(x)
    out.sum().backward()   # the in-place form would break autograd: with gradients on, torch's GELU runs
    assert x.grad is not None and torch.allclose(out, ffn.net[2](F.gelu(ffn.net[0].proj(x), approximate="tanh")))


def test_speedup_names_parse_and_a_bad_one_is_named():
    assert parse_speedups("default") == DEFAULT_SPEEDUPS
    assert parse_speedups("none") == ()
    assert parse_speedups("default,compile") == (*DEFAULT_SPEEDUPS, "compile")
    with pytest.raises(UserError, match="unknown speed-up 'turbo'.*gelu, context, fuse-qkv, compile"):
        parse_speedups("gelu,turbo")


def test_compile_without_a_cpp_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match="needs a C\\+\\+ compiler"):
        streamvideo.load("tiny-random", speedups="default,compile")


def test_speedups_apply_once():
    gen = streamvideo.load("tiny-random")
    assert gen.model.speedups == DEFAULT_SPEEDUPS
    with pytest.raises(ValueError, match="already applied"):
        apply_speedups(gen.model, "gelu")


def test_bench_refuses_an_unknown_speedup(capsys):
    from streamvideo.apps.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--speedups", "warp"])
    assert exit_.value.code == 2 and "unknown speed-up 'warp'" in capsys.readouterr().err
