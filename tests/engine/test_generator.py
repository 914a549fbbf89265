"""StreamGenerator: NFE per mode (counted on the model's forward), determinism, actions, prompts."""

import numpy as np
import pytest
import torch

import streamvideo
from streamvideo.engine.flow import (
    SHIFT,
    add_noise,
    eps_from_velocity,
    network_timestep,
    sigma_of,
    velocity,
    x0_from_velocity,
)
from streamvideo.engine.schedules import UNIFORM_SIGMAS, StepSchedule


def count_forwards(gen):
    """Wrap the model's forward to count network evaluations."""
    calls = []
    original = gen.model.forward

    def counted(*args, **kwargs):
        calls.append(args[0].shape[2])
        return original(*args, **kwargs)

    gen.model.forward = counted
    return calls


def nfe_sequence(gen, chunks):
    calls = count_forwards(gen)
    seq = []
    for _ in range(chunks):
        before = len(calls)
        chunk = gen.step(0)
        seq.append(len(calls) - before)
        assert chunk.nfe == seq[-1]
    return seq


def test_diagonal_nfe_follows_the_allocation_and_extends_cyclically():
    gen = streamvideo.load("tiny-random", mode="diagonal", schedule="4322222")
    gen.reset(seed=0)
    assert nfe_sequence(gen, 9) == [4, 3, 2, 2, 2, 2, 2, 4, 3]


def test_hold_extension_keeps_the_last_step_count():
    gen = streamvideo.load("tiny-random", mode="diagonal", schedule="432", extend="hold")
    gen.reset(seed=0)
    assert nfe_sequence(gen, 5) == [4, 3, 2, 2, 2]


def test_self_forcing_spends_one_extra_pass_on_the_clean_chunk():
    gen = streamvideo.load("tiny-random", mode="self_forcing", schedule="4")
    gen.reset(seed=0)
    assert nfe_sequence(gen, 4) == [5, 5, 5, 5]


def test_kv_noise_writes_with_an_explicit_pass():
    gen = streamvideo.load("tiny-random", mode="diagonal", schedule="2", kv_noise=100)
    gen.reset(seed=0)
    assert nfe_sequence(gen, 3) == [3, 3, 3]


def test_hierarchical_emits_one_chunk_per_step_like_the_others():
    gen = streamvideo.load("tiny-random", mode="hierarchical", schedule="4")
    gen.reset(seed=0)
    calls = count_forwards(gen)
    chunks = [gen.step(1) for _ in range(6)]
    assert [c.index for c in chunks] == list(range(6))
    assert all(c.frames.shape == (gen.frames_per_chunk, 64, 64, 3) for c in chunks)
    # warm-up fills the 4-stage pipe (1+2+3+4 stage passes), then each chunk costs 4 stage passes; each stage
    # also writes its previous chunk into its cache (one pass each, as the release's single-GPU pipeline)
    assert len(calls) == (10 + 5 * 4) + (8 + 7 + 6 + 5)
    assert [c.nfe for c in chunks[1:]] == [8] * 5
    assert gen.stats["chunks"] == 6


@pytest.mark.parametrize("mode", ["diagonal", "self_forcing", "hierarchical"])
def test_same_seed_and_actions_give_identical_frames(mode):
    frames = []
    for _ in range(2):
        gen = streamvideo.load("tiny-random", mode=mode)
        gen.reset(prompt="a knight on snow", seed=7)
        frames.append(np.stack([gen.step(a).frames for a in (1, 4, 4, 2)]))
    assert np.array_equal(frames[0], frames[1])
    gen.reset(prompt="a knight on snow", seed=8)
    assert not np.array_equal(frames[0][0], gen.step(1).frames)


def test_actions_change_the_output():
    gen = streamvideo.load("tiny-random")
    with torch.no_grad():   # the random preset's action path starts at zero; give it weight
        gen.model.action_embedder.mlp.linear_2.weight.normal_()
    outs = []
    for a in (1, 3):
        gen.reset(seed=0)
        outs.append(gen.step(a).frames)
    assert not np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("bad", [6, -1, 1.5, "up", [1, 2]])
def test_action_outside_the_space_names_space_and_value(bad):
    gen = streamvideo.load("tiny-random")
    with pytest.raises(ValueError, match=r"Discrete\(6\)") as err:
        gen.step(bad)
    assert repr(bad) in str(err.value)


def test_prompt_change_takes_effect_at_the_next_chunk_and_recache_rewrites_the_window():
    def run(change, recache=False):
        gen = streamvideo.load("tiny-random")
        gen.reset(prompt="grass", seed=3)
        first = [gen.step(0).frames for _ in range(2)]
        if change:
            gen.set_prompt("snow", recache=recache)
        return first, gen.step(0), gen

    base_first, base_next, _ = run(False)
    first, nxt, gen = run(True)
    assert all(np.array_equal(a, b) for a, b in zip(base_first, first))
    assert nxt.prompt == "snow" and not np.array_equal(nxt.frames, base_next.frames)
    _, recached, _ = run(True, recache=True)
    assert not np.array_equal(recached.frames, nxt.frames)
    with pytest.raises(TypeError, match="prompt must be a str"):
        gen.set_prompt(3)


def test_context_frames_condition_the_stream():
    rng = np.random.default_rng(0)
    ctx = rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    gen = streamvideo.load("tiny-random")
    gen.reset(seed=0, context_frames=ctx)
    with_ctx = gen.step(0)
    assert with_ctx.index == 2          # the context took chunks 0 and 1
    gen.reset(seed=0)
    assert not np.array_equal(gen.step(0).frames, with_ctx.frames)
    with pytest.raises(ValueError, match="context_frames must be uint8"):
        gen.reset(context_frames=ctx[..., 0])


@pytest.mark.parametrize("preset", ["tiny-random", "tiny-random-steered"])
def test_batched_streams_have_their_own_seed_prompt_and_reset(preset):
    gen = streamvideo.load(preset, batch_size=2)
    gen.reset(prompt=["grass", "snow"], seed=[1, 2])
    a = gen.step([1, 2])
    assert a.frames.shape == (2, 3, 64, 64, 3) and a.index == [0, 0]
    gen.reset(index=[1], seed=5)
    b = gen.step([0, 0])
    assert b.index == [1, 0] and gen.prompt == ["grass", gen.default_prompt]
    fresh = streamvideo.load(preset)
    fresh.reset(seed=5)
    # a stream reset in a batch starts over: no cache, and no anchor, of its earlier episode
    assert np.abs(fresh.step(0).frames.astype(int) - b.frames[1].astype(int)).max() <= 1
    gen.reset(seed=[1, 2], prompt=["grass", "snow"])
    assert np.abs(gen.step([1, 2]).frames.astype(int) - a.frames.astype(int)).max() <= 1
    single = streamvideo.load(preset)
    single.reset(seed=1, prompt="grass")
    # stream 0 of the batch is the same stream as a single generator with its seed and prompt
    assert np.abs(single.step(1).frames.astype(int) - a.frames[0].astype(int)).max() <= 1
    with pytest.raises(ValueError, match="expected 2 actions"):
        gen.step([0])


def test_stats_report_speed():
    gen = streamvideo.load("tiny-random")
    gen.reset(seed=0)
    for _ in range(3):
        gen.step()
    s = gen.stats
    assert s["chunks"] == 3 and s["frames"] == 9 and s["nfe"] == 4 + 3 + 2
    assert s["fps"] > 0 and s["p95_seconds"] >= s["p50_seconds"] > 0


def test_flow_sigmas_match_diffusers_scheduler():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)
    t = torch.arange(1000, 0, -1).float()
    assert torch.allclose(sigma_of(t), sched.sigmas.float(), atol=1e-6)
    assert torch.allclose(network_timestep(sigma_of(t)), sched.timesteps.float(), atol=1e-3)
    # Self-Forcing's uniform 4 steps, warped: diffusers shifts the sigmas we give it the same way
    sched.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25])
    assert torch.allclose(sigma_of(torch.tensor([1000.0, 750, 500, 250])), sched.sigmas[:-1].float(), atol=1e-6)


def test_flow_conversions_are_consistent():
    x0, eps, sigma = torch.randn(2, 3), torch.randn(2, 3), torch.tensor(0.3)
    xt = add_noise(x0, eps, sigma)
    v = velocity(x0, eps)
    assert torch.allclose(x0_from_velocity(xt, v, sigma), x0, atol=1e-6)
    assert torch.allclose(eps_from_velocity(xt, v, sigma), eps, atol=1e-6)


def test_schedule_parsing_and_errors():
    s = StepSchedule.parse("4322222")
    assert [len(s.sigmas_for(k)) for k in range(8)] == [4, 3, 2, 2, 2, 2, 2, 4]
    assert s.sigmas_for(2) == pytest.approx((1.0, 0.357143), abs=1e-6)
    assert len(StepSchedule.parse("5432222").sigmas_for(0)) == 5          # the paper's 5-step first chunk
    assert StepSchedule.parse("4", sigmas="uniform").sigmas_for(0) == pytest.approx((1.0, 0.9375, 0.833333, 0.625),
                                                                                    abs=1e-6)
    assert StepSchedule.parse("6", sigmas={6: [1, .9, .8, .7, .5, .2]}).steps_for(3) == 6
    assert StepSchedule.parse([32]).sigmas_for(5) == pytest.approx(UNIFORM_SIGMAS[32])   # a many-step teacher
    with pytest.raises(ValueError, match="no noise levels for 65 steps"):
        StepSchedule.parse([65])
    with pytest.raises(ValueError, match="string of digits"):
        StepSchedule.parse("4-3")
    with pytest.raises(ValueError, match="decreasing"):
        StepSchedule.parse("2", sigmas={2: [0.1, 1.0]})
    with pytest.raises(ValueError, match="unknown sigma set"):
        StepSchedule.parse("2", sigmas="karras")


def test_modes_default_to_their_releases_noise_levels_and_load_overrides_them():
    assert streamvideo.load("tiny-random", mode="self_forcing").schedule.sigmas_for(0)[1] == pytest.approx(0.9375)
    assert streamvideo.load("tiny-random", mode="diagonal").schedule.sigmas_for(0)[1] == pytest.approx(0.93306, 1e-4)
    gen = streamvideo.load("tiny-random", mode="self_forcing", sigmas="diagonal")
    assert gen.schedule.sigmas_for(0)[1] == pytest.approx(0.93306, 1e-4)
    gen = streamvideo.load("tiny-random", mode="hierarchical", schedule="2", sigmas={2: [1.0, 0.5]})
    assert gen.schedule.sigmas_for(0) == (1.0, 0.5)


def test_bf16_forward_matches_fp32():
    """bf16 runs end to end (the affine norm2 computes in fp32) and stays within 5 % of fp32 (relative RMS)."""
    from streamvideo.engine.model import CausalDiT
    torch.manual_seed(0)
    model = CausalDiT.from_preset("tiny").eval()
    half = CausalDiT.from_preset("tiny").eval()
    half.load_state_dict(model.state_dict())
    half = half.to(torch.bfloat16)
    x, t, text = torch.randn(2, 4, 6, 8, 8), torch.full((2,), 600.0), torch.randn(2, 5, 32)
    with torch.no_grad():
        ref = model(x, t, text)
        out = half(x.bfloat16(), t, text.bfloat16()).float()
    rel = float((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    assert rel < 0.05, rel
    gen = streamvideo.load("tiny-random", dtype="bfloat16")
    gen.reset(seed=0)
    for action in (1, 2, 3, 4):                     # past the window: cache writes and reads in bf16
        frames = gen.step(action).frames
    assert frames.dtype == np.uint8 and frames.std() > 0
