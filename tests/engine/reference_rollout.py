"""A slow, obviously-correct rollout: the oracle the cached engine must equal.

No ring, no slots, no views, no in-place writes. Each cache is a log of what was written (chunk
index, pass input, noise level, conditioning). Before every pass the K/V of every chunk are
recomputed from that log, oldest first, each chunk seeing exactly the chunks the attention
window allows (sinks + the W chunks before it), and the pass then attends to those.
One stream (batch 1) at a time; batched engine streams are compared stream by stream.
"""

from __future__ import annotations

import torch

from streamvideo.engine import flow
from streamvideo.engine.model import CausalDiT
from streamvideo.engine.rollout import Conditioning


def plain_copy(model: CausalDiT) -> CausalDiT:
    """The model's weights in a fresh CausalDiT: the plain path, whatever speed-ups the engine's copy runs."""
    plain = CausalDiT(model.config).to(next(model.parameters()).dtype)
    plain.load_state_dict(model.state_dict())
    return plain.eval()


def window(chunks, n: int, sinks: int, width: int) -> list[int]:
    """Chunks that chunk n sees, oldest first: the sinks and the `width` chunks before n."""
    return [c for c in sorted(chunks) if c < n and (c < sinks or c >= n - width)]


class ListCache:
    """Duck-types KVCache for one pass: exactly the visible chunks' K/V, as fresh tensors."""

    def __init__(self, model, n: int, kv: dict, visible: list[int], sinks: int, width: int, rope: str):
        cfg = model.config
        self.next_chunk = torch.tensor([n])
        self.sink_chunks, self.window_chunks, self.rope, self.static = sinks, width, rope, False
        self.kv, self.chunks, self.layers = kv, visible, cfg.num_layers
        self.empty = torch.zeros(1, 0, cfg.num_heads, cfg.head_dim)
        self.written: dict[int, tuple] = {}

    def key_chunks(self):
        return torch.tensor([self.chunks], dtype=torch.long).reshape(1, -1)

    def read(self, layer, n_slots):
        assert n_slots == len(self.chunks)
        ks = [self.kv[c][layer][0] for c in self.chunks] or [self.empty]
        vs = [self.kv[c][layer][1] for c in self.chunks] or [self.empty]
        return torch.cat(ks, 1), torch.cat(vs, 1)

    def write(self, layer, k, v):
        self.written[layer] = (k.clone(), v.clone())

    def advance(self, n=1):
        pass


class ReferenceCache:
    """The log of one stream's cache. A model that reads the frame before each chunk (config.reads_anchor) gets
    the anchor the engine's rule gives: the known clean chunk where the writer passes it (self_forcing,
    kv_noise), else the x0 prediction of the pass that wrote the chunk before (diagonal, hierarchical)."""

    def __init__(self, model, sinks: int, width: int, rope: str = "window"):
        self.model, self.sinks, self.width, self.rope = plain_copy(model), sinks, width, rope
        self.log: list = []
        self.anchor = None        # [1, C, h, w] the next chunk's anchor; None = zeros (a stream's start)

    def write(self, n: int, x, sigma: float, cond: Conditioning, clean=None) -> None:
        predicted = self.predict(n, x, sigma, cond)
        self.log.append(("write", n, x, sigma, cond, self.anchor))
        self.anchor = (predicted if clean is None else clean)[:, :, -1]

    def recache(self, cond: Conditioning) -> None:
        self.log.append(("recache", cond))

    def forward(self, n: int, x, sigma: float, cond: Conditioning, kv: dict, anchor):
        """One pass of chunk n over the chunks of `kv` it may see -> (x0, its per-layer K/V)."""
        cache = ListCache(self.model, n, kv, window(kv, n, self.sinks, self.width), self.sinks, self.width,
                          self.rope)
        frames = x.shape[2]
        t = flow.network_timestep(torch.tensor([sigma]))[:, None].expand(1, frames)
        if self.model.config.reads_anchor:
            anchor = (torch.zeros_like(x[:, :, 0]) if anchor is None else anchor)[:, :, None]
        v = self.model(x, t, cond.text, cond.text_mask, cond.action_frames(frames), cache=cache, write_chunks=1,
                       anchor=anchor if self.model.config.reads_anchor else None)
        return flow.x0_from_velocity(x, v, sigma), [cache.written[i] for i in range(cache.layers)]

    def replay(self) -> dict:
        """Every chunk's K/V, recomputed from the log."""
        kv, inputs = {}, {}
        for event in self.log:
            if event[0] == "write":
                _, n, x, sigma, cond, anchor = event
                inputs[n] = (x, sigma, cond, anchor)
                kv[n] = self.forward(n, x, sigma, cond, kv, anchor)[1]
            else:                                   # re-encode what the cache still holds under the new text
                newest = max(kv) + 1
                kv_new = {}
                for c in window(kv, newest, self.sinks, self.width):
                    x, sigma, old, anchor = inputs[c]
                    inputs[c] = (x, sigma, Conditioning(event[1].text, event[1].text_mask, old.action), anchor)
                    kv_new[c] = self.forward(c, x, sigma, inputs[c][2], kv_new, anchor)[1]
                kv = kv_new
        return kv

    def predict(self, n: int, x, sigma: float, cond: Conditioning):
        return self.forward(n, x, sigma, cond, self.replay(), self.anchor)[0]


def chunk_rollout(ref: ReferenceCache, n: int, sigmas, cond, noise, shape, kv_sigma=None):
    """Chunk n of a diagonal (kv_sigma None), self_forcing (0) or t_c (kv_sigma) stream."""
    x = noise(shape)
    for i, sigma in enumerate(sigmas):
        x0 = ref.predict(n, x, sigma, cond)
        if i + 1 == len(sigmas) and kv_sigma is None:
            ref.write(n, x, sigma, cond)
        if i + 1 < len(sigmas):
            x = flow.add_noise(x0, noise(shape), sigmas[i + 1])
    if kv_sigma is not None:
        ref.write(n, flow.add_noise(x0, noise(shape), kv_sigma) if kv_sigma > 0 else x0, kv_sigma, cond, clean=x0)
    return x0


class HierarchicalReference:
    """HiAR's wavefront, written plainly: advance p feeds chunk p, then moves chunk p - j through step j."""

    def __init__(self, model, sigmas, sinks, width, shape):
        self.sigmas = tuple(sigmas) + (0.0,)
        self.caches = [ReferenceCache(model, sinks, width) for _ in sigmas]
        self.shape, self.advances, self.emitted = shape, 0, []
        self.inputs, self.context = {}, {}   # (chunk, step) -> (x at sigma_step, cond); step -> (chunk, x, cond)

    def advance(self, cond, noise):
        p, steps = self.advances, len(self.caches)
        self.inputs[(p, 0)] = (noise(self.shape), cond)
        outputs = {}
        for j in range(steps):
            c = p - j
            if (c, j) not in self.inputs:
                continue
            x, own = self.inputs.pop((c, j))
            if j in self.context:
                prev, ctx, ctx_cond = self.context[j]
                self.caches[j].write(prev, ctx, self.sigmas[j + 1], ctx_cond)
            x0 = self.caches[j].predict(c, x, self.sigmas[j], own)
            nxt = self.sigmas[j + 1]
            outputs[j] = (c, flow.add_noise(x0, noise(self.shape), nxt) if nxt > 0 else x0, own)
        for j, (c, out, own) in outputs.items():
            self.context[j] = (c, out, own)
            if j + 1 < steps:
                self.inputs[(c, j + 1)] = (out, own)
            else:
                self.emitted.append(out)
        self.advances += 1

    def next_chunk(self, cond, noise):
        count = len(self.emitted)
        while len(self.emitted) == count:
            self.advance(cond, noise)
        return self.emitted[-1]
