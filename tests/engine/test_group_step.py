"""step_group: sessions sharing one model step in one batched pass, each as it would alone."""

import numpy as np
import pytest
import torch

from streamvideo.engine import presets
from streamvideo.engine.group_step import group_key, step_group

CHUNKS = 8          # > sink + window (3 chunks): the window evicts, and the schedule 4322222 wraps to 4 steps
A_ACTIONS = [1, 4, 4, 2, 0, 3, 5, 1]
# partners of stream A: (prompt, seed, the step at which they reset to seed + 10, actions); they reset at
# different steps, so they sit at other chunk indices (and step counts) than A in the shared passes
PARTNERS = {"B": ("snow", 2, 3, [2, 2, 3, 3, 5, 5, 0, 0]),
            "C": ("sand", 3, 5, [5, 1, 5, 1, 5, 1, 5, 1])}
# A batch of 2 runs other CPU kernels than a batch of 1 (GEMMs with another row count), which moves latents by
# ~1e-6; rounding to uint8 then flips some pixels by one level. Partners of the same group size are bit-exact.
BATCHING_LEVELS = 1


def shared_parts(name="tiny-random"):
    """Weights several generators share, as the bridge server's SharedModels loads them."""
    parts = presets.load_parts(name, device="cpu")
    with torch.no_grad():   # the random preset's action path starts at zero; give it weight so actions matter
        parts[0].action_embedder.mlp.linear_2.weight.normal_(generator=torch.Generator().manual_seed(0))
    return parts


def session(parts, prompt, seed, **settings):
    gen = presets.generator_from_parts(parts, **settings)
    gen.reset(prompt=prompt, seed=seed)
    return gen


def run_a(parts, partner=None, grouped=True):
    """Stream A's chunks: alone through gen.step (grouped=False), in a group of one, or sharing every pass
    with a partner session."""
    a = session(parts, "grass", 1)
    other = session(parts, *PARTNERS[partner][:2]) if partner else None
    chunks = []
    for t in range(CHUNKS):
        if not grouped:
            chunks.append(a.step(A_ACTIONS[t]))
        elif other is None:
            chunks.append(step_group([a], [A_ACTIONS[t]])[0])
        else:
            prompt, seed, reset_at, actions = PARTNERS[partner]
            if t == reset_at:
                other.reset(prompt=prompt, seed=seed + 10)
            chunks.append(step_group([a, other], [A_ACTIONS[t], actions[t]])[0])
    return chunks, a


def max_level_diff(x, y) -> int:
    return max(int(np.abs(p.frames.astype(int) - q.frames.astype(int)).max()) for p, q in zip(x, y))


def frames_equal(x, y) -> bool:
    return all(np.array_equal(p.frames, q.frames) for p, q in zip(x, y))


def test_a_session_frames_do_not_depend_on_who_shared_its_passes():
    parts = shared_parts()
    alone, gen_alone = run_a(parts, grouped=False)
    one, _ = run_a(parts)
    with_b, gen_b = run_a(parts, "B")
    with_c, _ = run_a(parts, "C")
    assert frames_equal(one, alone)                  # a group of one is gen.step, bit for bit
    assert frames_equal(with_b, with_c)              # same group size: exact whatever the partner does
    assert max_level_diff(with_b, alone) <= BATCHING_LEVELS
    for grouped in (one, with_b):
        assert [c.frames.shape for c in grouped] == [c.frames.shape for c in alone] == [(3, 64, 64, 3)] * CHUNKS
        assert [c.latents.shape[0] for c in grouped] == [1] * CHUNKS
        assert [(c.index, c.nfe, c.prompt) for c in grouped] == [(c.index, c.nfe, c.prompt) for c in alone]
    assert [c.nfe for c in alone] == [4, 3, 2, 2, 2, 2, 2, 4]
    stats = gen_b.stats
    assert (stats["chunks"], stats["frames"], stats["nfe"]) == (CHUNKS, 3 * CHUNKS, 21)
    assert {k: gen_alone.stats[k] for k in ("chunks", "frames", "nfe")} == \
        {k: stats[k] for k in ("chunks", "frames", "nfe")}
    assert stats["fps"] > 0 and all(c.seconds > 0 for c in with_b)


def test_self_forcing_sessions_group_too():
    parts = shared_parts()
    gens = [session(parts, p, s, mode="self_forcing") for p, s in (("grass", 1), ("snow", 2))]
    alone = session(parts, "grass", 1, mode="self_forcing")
    for t in range(3):
        chunk, _ = step_group(gens, [A_ACTIONS[t], 2])
        ref = alone.step(A_ACTIONS[t])
        assert (chunk.index, chunk.nfe) == (ref.index, ref.nfe) == (t, 5)
        assert np.abs(chunk.frames.astype(int) - ref.frames.astype(int)).max() <= BATCHING_LEVELS


def test_a_bad_action_for_one_member_raises_before_any_member_steps():
    parts = shared_parts()
    a, b = session(parts, "grass", 1), session(parts, "snow", 2)
    step_group([a, b], [0, 0])
    noise_before = [g.noise.generators[0].get_state() for g in (a, b)]
    with pytest.raises(ValueError, match=r"stream 1 of the group: action 9 is outside .*Discrete\(6\)"):
        step_group([a, b], [0, 9])
    for gen, state in zip((a, b), noise_before):
        assert int(gen.rollout.chunk_index[0]) == 1 and gen.stats["chunks"] == 1
        assert torch.equal(gen.noise.generators[0].get_state(), state)
    with pytest.raises(ValueError, match="expected 2 actions"):
        step_group([a, b], [0])
    with pytest.raises(ValueError, match="appears twice"):
        step_group([a, a], [0, 0])


def test_recache_after_grouped_steps_matches_the_same_session_run_alone():
    parts = shared_parts()

    def run(grouped):
        a, b = session(parts, "grass", 1), session(parts, "snow", 2)
        out = []
        for t in range(6):
            if t == 4:      # the window now holds chunks written in shared passes
                a.set_prompt("sand", recache=True)
            out.append(step_group([a, b], [A_ACTIONS[t], 3])[0] if grouped else a.step(A_ACTIONS[t]))
        return out

    grouped, alone = run(True), run(False)
    assert [c.prompt for c in grouped] == [c.prompt for c in alone] == ["grass"] * 4 + ["sand"] * 2
    assert max_level_diff(grouped, alone) <= BATCHING_LEVELS
    # the recache re-encoded A's own rows: without it the chunks after the switch differ
    no_recache = session(parts, "grass", 1)
    for t in range(4):
        no_recache.step(A_ACTIONS[t])
    no_recache.set_prompt("sand")
    assert max_level_diff([no_recache.step(A_ACTIONS[4])], grouped[4:5]) > BATCHING_LEVELS


def test_group_key_admits_sessions_of_one_model_and_schedule_only():
    parts = shared_parts()
    a, b = session(parts, "grass", 1), session(parts, "snow", 2)
    assert group_key(a) is not None and group_key(a) == group_key(b)
    other_model = session(shared_parts(), "grass", 1)
    refused = {
        "another model": other_model,
        "another schedule": session(parts, "grass", 1, schedule="432"),
        "another window": session(parts, "grass", 1, window_chunks=3),
        "self_forcing": session(parts, "grass", 1, mode="self_forcing"),
    }
    for why, gen in refused.items():
        assert group_key(gen) != group_key(a), why
    assert group_key(session(parts, "grass", 1, mode="hierarchical", schedule="4")) is None
    assert group_key(session(parts, "grass", 1, batch_size=2)) is None
    with pytest.raises(ValueError, match="cannot share a pass"):
        step_group([a, other_model], [0, 0])
    assert int(a.rollout.chunk_index[0]) == 0
