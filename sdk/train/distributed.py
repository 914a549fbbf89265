"""Training on many processes and machines: torchrun's environment -> a process group, this rank's rows of
every global batch, the models wrapped for DDP or sharded with FSDP2, and whole state dicts for rank 0.

Under `torchrun --nproc-per-node N [--nnodes M ...]` (WORLD_SIZE > 1) every process is one rank of a gloo
(CPU) or NCCL (GPU) process group and trains on its own device. Without torchrun no group is started and
every helper here is the identity, so a one-process run computes exactly what it did before.

Why N ranks make the one-process update:
- every rank draws the whole global batch with the same seeded CPU generator, in the one-process order
  (indices, noise levels, noise), and keeps its own contiguous rows: a batch built from indices is cut
  before the network (`shard`); noise drawn between network calls for rows a rank holds is drawn for all
  rows and cut (`draw`, `randn_like`);
- a mean whose denominator differs between shards (the masked losses) divides by the global denominator
  (`global_mean`), and DDP / FSDP average the gradients over ranks;
so each update is the one-process update up to the order of float sums, and the RNG state, the same on
every rank, is what rank 0 checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from ..engine.checkpoints import UserError
from ..engine.model import CausalDiT

# FSDP: the transformer blocks compute in bf16 on gathered copies of fp32 master weights and reduce gradients
# in fp32; their output is fp32 again, so the embedders and the head (kept fp32: the timestep path stays fp32,
# as in Wan) take it as they are. The blocks cast their inputs themselves (`checkpointed_block`).
COMPUTE_DTYPE = torch.bfloat16


# --------------------------------------------------------------------------- the process group

def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, metrics, outputs and the progress bar."""
    return rank() == 0


def device() -> torch.device:
    """This rank's device: its GPU (torchrun's LOCAL_RANK) on a machine with GPUs, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def start(fsdp: bool = False) -> None:
    """Join torchrun's process group when there is more than one process (or FSDP asks for one)."""
    if dist.is_initialized() or (int(os.environ.get("WORLD_SIZE", "1")) == 1 and not fsdp):
        return
    if "MASTER_ADDR" not in os.environ:
        raise UserError("--fsdp shards over torchrun's processes: run the stage under torchrun "
                        "(torchrun --nproc-per-node 1 ... for one GPU)")
    if torch.cuda.is_available():
        torch.cuda.set_device(device())
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard_size(global_batch: int, flag: str) -> int:
    """Rows per rank of a global batch; equal shards keep the gradient average equal to the one-process one."""
    if global_batch % world_size():
        raise UserError(f"{flag} {global_batch} does not split into {world_size()} equal shards: "
                        f"pass a multiple of the number of processes")
    return global_batch // world_size()


def main_only(work):
    """work() on rank 0 while the other ranks wait (a cheap stage without a gradient loop)."""
    result = work() if is_main() else 0
    barrier()
    return result


# --------------------------------------------------------------------------- this rank's rows

def each(fn, batch):
    """fn applied to every leaf (tensor, list) of a batch: tuples and dataclasses are walked, None passes."""
    if isinstance(batch, tuple):
        return tuple(each(fn, x) for x in batch)
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **{f.name: each(fn, getattr(batch, f.name))
                                             for f in dataclasses.fields(batch)})
    return None if batch is None else fn(batch)


def rows(batch):
    """This rank's contiguous rows of a global batch (where it is: indices stay on the CPU)."""
    size = world_size()
    if size == 1:
        return batch

    def mine(x):
        n = len(x) // size
        return x[rank() * n:(rank() + 1) * n]
    return each(mine, batch)


def to_device(batch):
    return each(lambda x: x.to(device()) if isinstance(x, torch.Tensor) else x, batch)


def shard(*batch):
    """This rank's rows of global-batch values, on its device (one value in, one out)."""
    mine = to_device(rows(batch))
    return mine[0] if len(batch) == 1 else mine


def draw(make, n_rows: int):
    """make(n) draws n rows; this draws the global batch (n_rows rows on each rank) and keeps this rank's
    rows: the numbers a one-process run draws, and the generator advances as there."""
    return rows(make(n_rows * world_size()))


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """torch.randn_like for this rank's rows x: the global batch's noise, drawn on the CPU generator (which
    the run checkpoints) into a tensor laid out as x (rows outermost; the fill order depends on the layout),
    then moved to x's device."""
    inner = sorted(range(1, x.ndim), key=lambda d: -x.stride(d))          # a row's dims, outermost in memory first
    to_logical = (0, *(1 + inner.index(d) for d in range(1, x.ndim)))

    def noise(n):
        return torch.empty(n, *(x.shape[d] for d in inner), dtype=x.dtype).permute(to_logical).normal_()
    return draw(noise, len(x)).to(x.device)


def global_mean(local: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of a per-rank value, differentiated as this rank's own value: DDP / FSDP average
    the gradients over ranks, so a loss built on it has the gradient of the one-process loss."""
    if world_size() == 1:
        return local
    total = local.detach().clone()
    dist.all_reduce(total)
    return local + (total / world_size() - local.detach())


def gather_rows(*parts):
    """Every rank's rows joined into the global batch, on every rank (the inverse of `shard`)."""
    if world_size() == 1:
        return parts[0] if len(parts) == 1 else parts
    joined = []
    for x in parts:
        pieces = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(pieces, x.contiguous())
        joined.append(torch.cat(pieces))
    return joined[0] if len(joined) == 1 else tuple(joined)


# --------------------------------------------------------------------------- models

class DDP(DistributedDataParallel):
    """DistributedDataParallel that also answers the wrapped module's attributes (`config`, `make_cache`), so
    a stage passes it wherever it passed the module. Gradients are averaged for what runs through its calls."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def distribute(module: nn.Module, fsdp: bool = False) -> nn.Module:
    """The module as this rank trains it: on its device and, under torchrun, wrapped in DDP (when it has
    trainable parameters; a frozen one is just replicated) or, with fsdp, sharded by FSDP2 (`fsdp_shard`)."""
    module = module.to(device())
    if fsdp:
        return fsdp_shard(module)
    if world_size() == 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    return DDP(module, device_ids=[device().index] if device().type == "cuda" else None)


def fsdp_shard(module: nn.Module) -> nn.Module:
    """FSDP2 full shard: every transformer block is one unit (bf16 compute, activations checkpointed), the
    rest of the module (embedders, head; all of a module without blocks) one fp32 unit. Frozen modules too."""
    precision = MixedPrecisionPolicy(param_dtype=COMPUTE_DTYPE, reduce_dtype=torch.float32,
                                     output_dtype=torch.float32, cast_forward_inputs=False)
    # about in-place changes of a model's output, which the stages never make (CausalDiT returns a reshape)
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    for block in getattr(module, "blocks", ()):
        checkpointed_block(block)
        fully_shard(block, mp_policy=precision)
    fully_shard(module, reshard_after_forward=True)   # also the root: an EMA copy updates its shards after a forward
    return module


class PassCache:
    """The KV cache as one block pass sees it: the slots it reads, copied when the pass starts (a checkpoint
    recompute in the backward must see them, not what later chunks wrote since) in the compute dtype; its
    writes reach the cache once, not again in the recompute."""

    def __init__(self, cache, layer: int, n_slots: int, dtype: torch.dtype):
        k, v = cache.read(layer, n_slots)
        self.k, self.v = k.to(dtype, copy=True), v.to(dtype, copy=True)
        self.cache = cache

    def read(self, layer: int, n_slots: int):
        return self.k, self.v

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        if self.cache is not None:
            self.cache.write(layer, k, v)
            self.cache = None


def checkpointed_block(block: nn.Module) -> None:
    """A WanBlock that takes its residual stream and text in bf16 (the fp32 adaLN modulation stays fp32, as
    in Wan) and keeps only its inputs for the backward, recomputing the rest (activation checkpointing)."""
    forward = block.forward

    def run(x, text, text_mask, mod, layer, ctx):
        x, text = x.to(COMPUTE_DTYPE), text.to(COMPUTE_DTYPE)
        if ctx.cache is not None:
            ctx = copy.copy(ctx)
            ctx.cache = PassCache(ctx.cache, layer, ctx.cache_slots, COMPUTE_DTYPE)
        if not torch.is_grad_enabled():
            return forward(x, text, text_mask, mod, layer, ctx)
        return checkpoint(forward, x, text, text_mask, mod, layer, ctx, use_reentrant=False)
    block.forward = run


def unwrapped(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


# --------------------------------------------------------------------------- whole state for rank 0

def whole_state(state):
    """A state dict (a module's or an optimizer's) with FSDP shards gathered: whole CPU tensors on rank 0,
    None elsewhere (collective: every rank calls it). Unsharded values pass as they are."""
    if isinstance(state, dict):
        return {k: whole_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [whole_state(v) for v in state]
    if isinstance(state, DTensor):
        whole = state.full_tensor()
        return whole.cpu() if is_main() else None
    return state


def sharded_like(value, like):
    """A whole tensor cut into this rank's shard when `like` (same shape) is FSDP-sharded, else as it is."""
    if isinstance(like, DTensor) and isinstance(value, torch.Tensor) and value.shape == like.shape:
        return distribute_tensor(value.to(like.device), like.device_mesh, like.placements, src_data_rank=None)
    return value


def module_state_like(saved: dict, module: nn.Module) -> dict:
    current = module.state_dict()
    return {k: sharded_like(v, current.get(k)) for k, v in saved.items()}


def optimizer_state_like(saved: dict, opt: torch.optim.Optimizer) -> dict:
    """A whole optimizer state with each parameter's moments cut like the parameter."""
    params = [p for group in opt.param_groups for p in group["params"]]
    state = {i: {k: sharded_like(v, params[i]) for k, v in s.items()} for i, s in saved["state"].items()}
    return {**saved, "state": state}


def gathered(model: nn.Module) -> CausalDiT | None:
    """A trained DiT with its whole weights to save, on rank 0 (a CPU copy when FSDP shards it); None on the
    other ranks. Collective: every rank calls it."""
    model = unwrapped(model)
    if isinstance(model, FSDPModule):
        state = whole_state(model.state_dict())
        if not is_main():
            return None
        with torch.device("meta"):
            whole = CausalDiT(model.config)
        whole.load_state_dict(state, assign=True)
        return whole
    return model if is_main() else None
