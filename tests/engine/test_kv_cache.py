"""KVCache: ring + sink layout, no reallocation, no length limit."""

import resource

import torch

from streamvideo.engine.kv_cache import KVCache
from streamvideo.engine.model import CausalDiT, ModelConfig


def test_ring_and_sink_slots():
    cache = KVCache(1, 1, tokens_per_chunk=2, heads=1, head_dim=2, window_chunks=3, sink_chunks=1)
    slots = [int(cache.slot_of(torch.tensor([k]))) for k in range(8)]
    assert slots == [0, 1, 2, 3, 1, 2, 3, 1]


def test_sink_chunk_is_never_evicted():
    cache = KVCache(1, 1, tokens_per_chunk=1, heads=1, head_dim=1, window_chunks=2, sink_chunks=1)
    for k in range(10):
        cache.write(0, torch.full((1, 1, 1, 1), float(k)), torch.zeros(1, 1, 1, 1))
        cache.advance()
    k, _ = cache.read(0, cache.key_chunks().shape[1])
    assert sorted(k.flatten().tolist()) == [0.0, 8.0, 9.0]   # sink chunk 0 + the last two
    assert sorted(cache.key_chunks().flatten().tolist()) == [0, 8, 9]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def test_two_thousand_chunks_stream_without_growth_or_reallocation():
    torch.manual_seed(0)
    cfg = ModelConfig(num_heads=2, head_dim=12, ffn_dim=32, num_layers=1, text_dim=8, in_channels=2, out_channels=2,
                      chunk_frames=1)
    model = CausalDiT(cfg).eval()
    cache = model.make_cache(1, 2, 2, window_chunks=4)
    pointers = cache.storage_pointers()
    x, t, text = torch.randn(1, 2, 1, 2, 2), torch.full((1, 1), 100.0), torch.randn(1, 2, 8)
    rss = []
    with torch.no_grad():
        for k in range(2000):
            out = model(x, t, text, cache=cache, write_chunks=1)
            assert torch.isfinite(out).all()
            if k in (200, 1999):
                rss.append(rss_mb())
    assert int(cache.next_chunk) == 2000          # frame positions far past 1024
    assert cache.storage_pointers() == pointers   # never reallocated
    assert rss[1] - rss[0] < 20, rss               # resident memory flat


def test_static_cache_gives_the_same_stream_as_the_dynamic_one():
    """The compile-ready path (whole buffer + device-side mask) matches the sliced path chunk for chunk."""
    torch.manual_seed(0)
    cfg = ModelConfig(num_heads=2, head_dim=12, ffn_dim=32, num_layers=2, text_dim=8, in_channels=2, out_channels=2,
                      chunk_frames=1)
    model = CausalDiT(cfg).eval()
    caches = [model.make_cache(1, 2, 2, window_chunks=2, static=s) for s in (False, True)]
    text = torch.randn(1, 2, 8)
    with torch.no_grad():
        for _ in range(5):
            x = torch.randn(1, 2, 1, 2, 2)
            outs = [model(x, torch.full((1, 1), 100.0), text, cache=c, write_chunks=1) for c in caches]
            assert (outs[0] - outs[1]).abs().max() < 1e-5
