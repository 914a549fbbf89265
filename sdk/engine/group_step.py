"""Step several single-stream generators that share one model in one batched forward pass.

Why: a server holds one batch_size=1 `StreamGenerator` per session. Stepping N sessions one after
another runs N small forward passes per denoising step; `step_group` runs them as one batch of N, while
every session keeps its own generator (KV cache, noise, prompt, decode state, recache history, stats),
so reset, context frames, set_prompt(recache=True) and the rest keep working per session.

What must match (`group_key`): the same model object, codec and text encoder, mode, step schedule
(steps and noise levels), kv_noise, latent shape and cache settings (window, sinks, rope, static, dtype,
device). Each member draws its noise from its own seeded generator and writes only its own cache row,
so a session's frames do not depend on who shared its pass (up to float batching noise: a batch of N
may pick other kernels than a batch of 1).

Not grouped: hierarchical mode (its wavefront pipeline state is per generator), batched generators,
and generators of different schedules or models.

Cost: sessions at different chunk indices may have different step counts ("4322222"); the batch runs
the most steps any member needs, and members with fewer idle through the first passes (the padding
`ChunkRollout.next_chunk` already does for batched streams), so a 2-step session grouped with a
4-step one spends 4 passes of compute on its row. Reads also copy the members' cached K/V into one
batch every layer and pass.
"""

from __future__ import annotations

import time

import torch

from .generator import Chunk, StreamGenerator
from .kv_cache import KVCache
from .rollout import ChunkOut, ChunkRollout, Conditioning, NoiseSource


def group_key(gen: StreamGenerator) -> tuple | None:
    """Generators with equal keys can step together in `step_group`; None: this one never groups (a batch
    of its own, or hierarchical mode). Objects compare by identity: the generators keep them alive."""
    if gen.batch_size != 1 or not isinstance(gen.rollout, ChunkRollout):
        return None
    schedule, cache = gen.schedule, gen.rollout.cache
    return (id(gen.model), id(gen.codec), id(gen.text_encoder), gen.mode,
            schedule.steps, schedule.extend, tuple(schedule.sigmas[n] for n in sorted(set(schedule.steps))),
            gen.rollout.kv_noise, gen.latent_shape,
            cache.window_chunks, cache.sink_chunks, cache.rope, cache.static, cache.k.dtype, cache.k.device)


class GroupCache:
    """The members' KV caches as one batch, in the interface CausalDiT's streaming pass uses: reads
    join the members' rows, writes and advances go to each member's own cache."""

    def __init__(self, caches: list[KVCache]):
        self.caches = caches
        first = caches[0]
        self.sink_chunks, self.window_chunks = first.sink_chunks, first.window_chunks
        self.rope, self.static = first.rope, first.static
        self.context_memo: tuple | None = None   # as KVCache.context_memo, for the passes of this grouped step

    @property
    def next_chunk(self) -> torch.Tensor:
        """[B] each member's next chunk index."""
        return torch.cat([c.next_chunk for c in self.caches])

    def slots_read(self) -> int:
        """Slots the pass reads: the most any member reads (a member's extra slots are empty, so masked)."""
        return max(c.key_chunks().shape[1] for c in self.caches)

    def key_chunks(self) -> torch.Tensor:
        """[B, n_slots] chunk index each read slot holds (-1 = empty)."""
        n = self.slots_read()
        return torch.cat([c.slot_chunk[:, :n] for c in self.caches])

    def read(self, layer: int, n_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v [B, n_slots * tokens, heads, head_dim]: copies, so later writes cannot change them."""
        keys, values = zip(*(c.read(layer, n_slots) for c in self.caches))
        return torch.cat(keys), torch.cat(values)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v [B, n*tokens, heads, head_dim]: row i goes to member i's cache at its own next chunk."""
        for i, cache in enumerate(self.caches):
            cache.write(layer, k[i:i + 1], v[i:i + 1])

    def advance(self, n_chunks: int = 1) -> None:
        for cache in self.caches:
            cache.advance(n_chunks)

    def anchor_for(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([c.anchor_for(x[i:i + 1]) for i, c in enumerate(self.caches)])

    def set_anchor(self, frame: torch.Tensor) -> None:
        for i, cache in enumerate(self.caches):
            cache.set_anchor(frame[i:i + 1])


class GroupRollout(ChunkRollout):
    """`ChunkRollout.next_chunk` over the members' rollouts as one batch. It owns no cache or history
    (no super().__init__): it reads and writes the members' caches through a GroupCache and files each
    member's cache input in that member's own history. Built per grouped step; only next_chunk is used."""

    def __init__(self, members: list[ChunkRollout]):
        lead = members[0]
        self.model, self.schedule, self.kv_noise = lead.model, lead.schedule, lead.kv_noise
        self.latent_shape = lead.latent_shape
        self.cache = GroupCache([m.cache for m in members])
        self.members = members

    def remember(self, x, sigma, cond: Conditioning) -> None:
        """x [B, C, F, h, w], sigma [B]: member i keeps row i, so its own recache re-encodes its own chunks."""
        for i, member in enumerate(self.members):
            member.remember(x[i:i + 1], sigma[i:i + 1], cond.row(i))


def check_group(gens: list[StreamGenerator], actions: list) -> None:
    if not gens:
        raise ValueError("step_group needs at least one generator")
    if len(actions) != len(gens):
        raise ValueError(f"expected {len(gens)} actions (one per generator), got {len(actions)}")
    if len({id(g) for g in gens}) != len(gens):
        raise ValueError("a generator appears twice in the group; it can take one step per pass")
    keys = [group_key(g) for g in gens]
    if keys[0] is None or any(k != keys[0] for k in keys):
        raise ValueError("these generators cannot share a pass (see group_key): they need batch_size 1, "
                         "a non-hierarchical mode, and the same model, schedule and cache settings")


def validated_actions(gens: list[StreamGenerator], actions: list) -> list:
    """Each member's action through its own spec; a bad one names its stream (its position in the group)."""
    out = []
    for i, (gen, action) in enumerate(zip(gens, actions)):
        try:
            out.append(gen.action_spec.validate(action))
        except ValueError as err:
            raise ValueError(f"stream {i} of the group: {err}") from err
    return out


def member_out(out: ChunkOut, i: int) -> ChunkOut:
    """Member i's share of a grouped chunk, shaped as its own rollout returns it (batch of one)."""
    return ChunkOut(out.latents[i:i + 1], [out.nfe[i]], [out.index[i]])


def step_group(gens: list[StreamGenerator], actions: list) -> list[Chunk]:
    """One step of every generator in one batched rollout: `[g.step(a) for g, a in zip(gens, actions)]`,
    with one forward pass per denoising step instead of one per generator. All actions are checked before
    anything runs. gens must share a `group_key`; each chunk's seconds run from the start of the pass to
    that member's decoded frames."""
    check_group(gens, actions)
    valid = validated_actions(gens, actions)
    start = time.perf_counter()
    with torch.inference_mode():
        cond = Conditioning.cat([g.conditioning([a]) for g, a in zip(gens, valid)])   # [N, ...]
        noise = NoiseSource.joined([g.noise for g in gens])
        out = GroupRollout([g.rollout for g in gens]).next_chunk(cond, noise)         # latents [N, C, F, h, w]
    return [gen.emit(member_out(out, i), start) for i, gen in enumerate(gens)]
