"""The cached engine equals the slow reference rollout (tests/engine/reference_rollout.py) in every mode, for three
attention windows and more, with sinks on and off, batched streams with different histories, and re-cache."""

import pytest
import torch
from reference_rollout import HierarchicalReference, ReferenceCache, chunk_rollout

import streamvideo
from streamvideo.engine import flow
from streamvideo.engine.rollout import NoiseSource
from streamvideo.engine.schedules import warped

TOL = 1e-3   # fp32, same inputs: only summation order differs (a real difference is > 1e-2)


def reference_noise(gen, seed):
    noise = NoiseSource(1, gen.device, gen.dtype)
    noise.seed(0, seed)
    return noise


def one_stream(cond, i):
    """Stream i's slice of a batched Conditioning."""
    return type(cond)(cond.text[i:i + 1], cond.text_mask[i:i + 1], cond.action[i:i + 1])


def actions_for(n, seed=0):
    return torch.randint(0, 6, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


CASES = {
    # name: (load kwargs, chunks)
    "diagonal": (dict(mode="diagonal", schedule="4322222"), 12),
    "diagonal-no-sink": (dict(mode="diagonal", schedule="4322222", window_chunks=3, sink_chunks=0), 12),
    "diagonal-two-sinks-absolute-rope": (dict(mode="diagonal", schedule="432", sink_chunks=2, rope="absolute"), 15),
    "self_forcing": (dict(mode="self_forcing", schedule="3"), 12),
    "kv_noise": (dict(mode="diagonal", schedule="32", kv_noise=500.0), 12),
    "hierarchical": (dict(mode="hierarchical", schedule="3"), 12),
}


@pytest.mark.parametrize("preset", ["tiny-random", "tiny-random-steered"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_equals_reference_for_three_windows(case, preset):
    kw, chunks = CASES[case]
    gen = streamvideo.load(preset, **kw)
    gen.reset(prompt="a red knight walking", seed=3)
    sinks, width = kw.get("sink_chunks", 1), kw.get("window_chunks", 2)
    assert chunks >= 3 * (sinks + width + 1)
    noise, shape = reference_noise(gen, 3), gen.latent_shape
    if kw["mode"] == "hierarchical":
        ref = HierarchicalReference(gen.model, gen.schedule.sigmas_for(0), sinks, width, shape)
    else:
        ref = ReferenceCache(gen.model, sinks, width, kw.get("rope", "window"))
        kv_sigma = 0.0 if kw["mode"] == "self_forcing" else kw.get("kv_noise")
        kv_sigma = None if kv_sigma is None else warped(kv_sigma)
    with torch.inference_mode():
        for n, action in enumerate(actions_for(chunks)):
            cond = gen.conditioning([action])
            out = gen.step(action).latents
            if kw["mode"] == "hierarchical":
                expected = ref.next_chunk(cond, noise)
            else:
                expected = chunk_rollout(ref, n, gen.schedule.sigmas_for(n), cond, noise, shape, kv_sigma)
            err = float((out - expected).abs().max())
            assert err < TOL, f"{case}: chunk {n} differs from the reference by {err:.2e}"


@pytest.mark.parametrize("preset", ["tiny-random", "tiny-random-steered"])
def test_batched_streams_with_different_histories_equal_their_references(preset):
    """Streams reset at different times run different step counts in one batch; each must equal its own
    single-stream reference (so a stream's noise and output never depend on its neighbours, nor its anchor
    on theirs)."""
    gen = streamvideo.load(preset, schedule="4322222", batch_size=3)
    prompts, seeds = ["a red knight walking", "a blue robot", "snowy ground"], [11, 12, 13]
    gen.reset(prompt=prompts, seed=seeds)
    refs = [ReferenceCache(gen.model, 1, 2) for _ in range(3)]
    noises = [reference_noise(gen, s) for s in seeds]
    counts = [0, 0, 0]
    resets = {2: 1, 5: 2, 7: 0}          # at step k, stream i starts a new episode (seed + 100)
    with torch.inference_mode():
        for k, actions in enumerate(zip(actions_for(14, 1), actions_for(14, 2), actions_for(14, 3))):
            if k in resets:
                i = resets[k]
                gen.reset(prompt=prompts[i], seed=seeds[i] + 100, index=[i])
                refs[i], noises[i], counts[i] = ReferenceCache(gen.model, 1, 2), reference_noise(gen, seeds[i] + 100), 0
            cond = gen.conditioning(list(actions))
            out = gen.step(list(actions)).latents
            for i in range(3):
                expected = chunk_rollout(refs[i], counts[i], gen.schedule.sigmas_for(counts[i]), one_stream(cond, i),
                                         noises[i], gen.latent_shape)
                err = float((out[i:i + 1] - expected).abs().max())
                assert err < TOL, f"step {k}, stream {i} (chunk {counts[i]}) differs by {err:.2e}"
                counts[i] += 1


@pytest.mark.parametrize("preset", ["tiny-random", "tiny-random-steered"])
def test_recache_equals_reference_on_a_stream_past_the_window(preset):
    gen = streamvideo.load(preset, schedule="4322222")
    gen.reset(prompt="a red knight walking", seed=5)
    ref, noise = ReferenceCache(gen.model, 1, 2), reference_noise(gen, 5)
    with torch.inference_mode():
        for n, action in enumerate(actions_for(12, 4)):
            if n in (6, 9):
                gen.set_prompt("a blue robot on sand" if n == 6 else "snowy ground", recache=True)
                ref.recache(gen.conditioning([0]))
            cond = gen.conditioning([action])
            out = gen.step(action).latents
            expected = chunk_rollout(ref, n, gen.schedule.sigmas_for(n), cond, noise, gen.latent_shape)
            err = float((out - expected).abs().max())
            assert err < TOL, f"chunk {n} differs from the reference by {err:.2e}"


def test_same_prompt_recache_reproduces_a_cache_that_evicted_nothing():
    gens = [streamvideo.load("tiny-random", schedule="4322222") for _ in range(2)]
    outs = []
    for recache, gen in zip((False, True), gens):
        gen.reset(prompt="a red knight walking", seed=9)
        for action in (1, 2, 3):                         # 3 chunks: sink + window, nothing evicted
            gen.step(action)
        if recache:
            gen.set_prompt("a red knight walking", recache=True)
        outs.append(gen.step(4).latents)
    assert float((outs[0] - outs[1]).abs().max()) < TOL


def test_window_rope_keeps_sink_distance_bounded():
    """With rope='window' chunk 10_000 sees its sink at the same distance as chunk 3 does."""
    from streamvideo.engine.kv_cache import rope_chunk_position
    for newest in (3, 10, 10_000):
        newest_t = torch.tensor(newest)
        pos_sink = rope_chunk_position(torch.tensor(0), newest_t, 1, 2, "window")
        pos_query = rope_chunk_position(newest_t, newest_t, 1, 2, "window")
        assert int(pos_sink) == 0 and int(pos_query) == min(newest, 3)
    assert int(rope_chunk_position(torch.tensor(9), torch.tensor(10), 1, 2, "absolute")) == 9


def test_noise_levels_are_the_releases():
    """DiagDistill's scheduler (shift 5, 1000 entries, sigma_min 0): warp only 1000 and 100; 933 and 733 are raw
    network timesteps snapped to the nearest table entry. Self-Forcing / HiAR: [1000, 750, 500, 250] warped."""
    table = torch.linspace(1.0, 0.0, 1001)[:-1]
    table = 5 * table / (1 + 4 * table)
    nearest = {t: float(table[int((table * 1000 - t).abs().argmin())]) for t in (933, 733)}
    warp = {t: float(torch.cat([table, torch.zeros(1)])[1000 - t]) for t in (1000, 750, 500, 250, 100)}
    from streamvideo.engine.schedules import DIAGONAL_SIGMAS, UNIFORM_SIGMAS
    expected = {4: (warp[1000], nearest[933], nearest[733], warp[100]), 3: (warp[1000], nearest[933], warp[100]),
                2: (warp[1000], warp[100])}
    for n, levels in expected.items():
        assert DIAGONAL_SIGMAS[n] == pytest.approx(levels, abs=1e-6), n
    assert UNIFORM_SIGMAS[4] == pytest.approx((warp[1000], warp[750], warp[500], warp[250]), abs=1e-6)
    gen = streamvideo.load("tiny-random", mode="diagonal")
    seen = []
    original = gen.model.forward
    gen.model.forward = lambda x, t, *a, **k: seen.append(float(t[0, 0])) or original(x, t, *a, **k)
    gen.reset(seed=0)
    gen.step(0)
    assert seen == pytest.approx([1000.0, 933.06, 732.62, 357.14], abs=0.01)   # network timesteps of chunk 0
    assert flow.network_timestep(torch.tensor(warp[100])) == pytest.approx(357.14, abs=0.01)
