"""CausalDiT against diffusers' WanTransformer3DModel, and its three attention paths against each other."""

import pytest
import torch

from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.model import CausalDiT, ModelConfig

TINY = dict(num_heads=2, head_dim=16, ffn_dim=48, num_layers=2, text_dim=24, in_channels=4, out_channels=4,
            chunk_frames=2)


def tiny_model(**kw) -> CausalDiT:
    torch.manual_seed(0)
    model = CausalDiT(ModelConfig(**{**TINY, **kw})).eval()
    with torch.no_grad():  # adaLN tables and zero-init layers would hide bugs: randomise everything
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def test_bidirectional_matches_diffusers_and_keys_match():
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
        text_dim=24, ffn_dim=48, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads").eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.2)
    ours = CausalDiT(ModelConfig(**TINY)).eval()
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)

    x = torch.randn(2, 4, 4, 8, 6)
    t = torch.tensor([[900.0, 900, 500, 500], [100, 200, 300, 400]])
    text = torch.randn(2, 7, 24)
    with torch.no_grad():
        # diffusers takes per-token timesteps when given a 2-D tensor: expand ours per frame
        t_tok = t.repeat_interleave(4 * 3, dim=1)
        expected = ref(x, t_tok, text, return_dict=False)[0]
        got = ours(x, t, text)
    assert (got - expected).abs().max() < 1e-4


def test_scalar_timestep_broadcasts_per_frame():
    model = tiny_model()
    x, text = torch.randn(1, 4, 4, 4, 4), torch.randn(1, 3, 24)
    with torch.no_grad():
        a = model(x, torch.tensor([500.0]), text)
        b = model(x, torch.full((1, 4), 500.0), text)
    assert torch.equal(a, b)


def test_block_causal_equals_streaming_with_cache():
    """Teacher forcing: chunk k through the block-causal path == chunk k streamed after chunks 0..k-1."""
    model = tiny_model()
    chunks, cf = 3, 2
    x = torch.randn(1, 4, chunks * cf, 4, 6)
    t = torch.tensor([[700.0, 700, 300, 300, 50, 50]])
    text = torch.randn(1, 5, 24)
    with torch.no_grad():
        full = model(x, t, text, causal=True)
        cache = model.make_cache(1, 4, 6, window_chunks=4)
        for k in range(chunks):
            part = slice(k * cf, (k + 1) * cf)
            out = model(x[:, :, part], t[:, part], text, cache=cache, write_chunks=1)
            assert (out - full[:, :, part]).abs().max() < 1e-4, f"chunk {k}"
        # and the causal path really is causal: changing a later chunk leaves earlier chunks alone
        x2 = x.clone()
        x2[:, :, -cf:] += 1.0
        full2 = model(x2, t, text, causal=True)
    assert torch.allclose(full2[:, :, :-cf], full[:, :, :-cf], atol=1e-5)
    assert not torch.allclose(full2[:, :, -cf:], full[:, :, -cf:], atol=1e-3)


def test_streaming_multi_chunk_write_equals_one_by_one():
    """Writing two chunks in one pass (HiAR's fused context write) == writing them one at a time."""
    model = tiny_model()
    x, text = torch.randn(1, 4, 6, 4, 4), torch.randn(1, 5, 24)
    t = torch.full((1, 6), 400.0)
    with torch.no_grad():
        c1 = model.make_cache(1, 4, 4)
        model(x[:, :, :4], t[:, :4], text, cache=c1, write_chunks=2)
        a = model(x[:, :, 4:], t[:, 4:], text, cache=c1)
        c2 = model.make_cache(1, 4, 4)
        model(x[:, :, :2], t[:, :2], text, cache=c2, write_chunks=1)
        model(x[:, :, 2:4], t[:, 2:4], text, cache=c2, write_chunks=1)
        b = model(x[:, :, 4:], t[:, 4:], text, cache=c2)
    assert (a - b).abs().max() < 1e-5


def test_batched_streams_with_different_histories_match_single_streams():
    model = tiny_model()
    text = torch.randn(2, 5, 24)
    xs = torch.randn(4, 1, 4, 2, 4, 4)
    t = torch.full((1, 2), 300.0)
    with torch.no_grad():
        batched = model.make_cache(2, 4, 4)
        model(torch.cat([xs[0], xs[0]]), t.expand(2, 2), text, cache=batched, write_chunks=1)
        batched.reset([1])   # stream 1 starts over: the streams now hold different numbers of chunks
        model(torch.cat([xs[1], xs[2]]), t.expand(2, 2), text, cache=batched, write_chunks=1)
        out = model(torch.cat([xs[3], xs[3]]), t.expand(2, 2), text, cache=batched)
        for b, history in ((0, [xs[0], xs[1]]), (1, [xs[2]])):
            single = model.make_cache(1, 4, 4)
            for h in history:
                model(h, t, text[b:b + 1], cache=single, write_chunks=1)
            ref = model(xs[3], t, text[b:b + 1], cache=single)
            assert (out[b:b + 1] - ref).abs().max() < 1e-4, f"stream {b}"


def test_action_embedding_starts_at_zero_and_conditions_after_training():
    base = tiny_model()
    acted = CausalDiT(ModelConfig(**TINY, action=ActionSpec("discrete", n=5))).eval()
    acted.load_state_dict(base.state_dict(), strict=False)
    x, t, text = torch.randn(1, 4, 2, 4, 4), torch.full((1, 2), 500.0), torch.randn(1, 3, 24)
    act = torch.zeros(1, 2, 5)
    act[..., 3] = 1
    with torch.no_grad():
        assert torch.allclose(acted(x, t, text, action=act), base(x, t, text), atol=1e-6)
        acted.action_embedder.mlp.linear_2.weight.normal_()
        assert not torch.allclose(acted(x, t, text, action=act), base(x, t, text), atol=1e-3)
    with pytest.raises(ValueError, match="no action conditioning"):
        base(x, t, text, action=act)


def test_wan_1_3b_preset_on_meta_device_has_1_42b_params():
    model = CausalDiT.from_preset("wan2.1-1.3b", device="meta")
    n = model.num_params()
    assert 1.40e9 < n < 1.44e9, n
    assert next(model.parameters()).device.type == "meta"


def test_fused_qkv_gives_the_same_output_and_keeps_the_state_dict():
    model = tiny_model()
    x, t, text = torch.randn(1, 4, 2, 4, 4), torch.full((1, 2), 500.0), torch.randn(1, 3, 24)
    keys = set(model.state_dict())
    with torch.no_grad():
        ref = model(x, t, text, causal=True)
        model.fuse_qkv()
        fused = model(x, t, text, causal=True)
    assert (fused - ref).abs().max() < 1e-5
    assert set(model.state_dict()) == keys
