"""Training stages under torchrun: 2 gloo processes make the 1-process update (DDP, and FSDP2 exactly in
fp32 / closely in bf16), a killed 2-process run resumes to the same weights, and per-block activation
checkpointing keeps the gradients of a rollout through the KV cache.

Tolerances (measured on the 2-core CPU): DDP 2-process weights are within 4e-9..1.2e-7 of the 1-process
run and its metrics within 1e-7 (relative; the order of float sums differs), asserted 1e-5; FSDP2 in fp32
likewise (1.2e-7), asserted 1e-6. FSDP2 in bf16 (the --fsdp default) rounds every block's matmuls: its
metrics are within 2e-3 of the 1-process run (relative to max(|value|, 1e-3); the largest is distill's
near-zero DMD term), asserted 1e-2; its weights only within what Adam allows (each step moves a weight by
about lr, either way for a gradient near zero; measured 1.2e-3), asserted 2 * lr * steps.
"""

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from streamvideo.apps.cli import main
from streamvideo.data.collect import collect
from streamvideo.engine.checkpoints import UserError
from streamvideo.engine.schedules import StepSchedule
from streamvideo.train import distributed
from streamvideo.train.common import check_equal_shares, read_metrics
from streamvideo.train.distill import Args as DistillArgs
from streamvideo.train.distill import self_rollout
from streamvideo.train.objectives import ClipCond

TINY_DIT = ["--heads", "2", "--head-dim", "8", "--layers", "2", "--ffn-dim", "16", "--threads", "1"]
MODEL = "model/model.safetensors"
THREADS = {**os.environ, "OMP_NUM_THREADS": "1"}
TEACHER_LR, TEACHER_STEPS = 6e-4, 3


def train(out, stage, *extra):
    assert main(["train", stage, "--out", str(out), *map(str, extra)]) == 0


def torchrun(out, stage, *extra):
    """`torchrun --nproc-per-node 2 -m streamvideo.apps.cli train STAGE ...` (gloo on this CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "streamvideo.apps.cli", "train", stage, "--out", str(out), *map(str, extra)]
    done = subprocess.run(cmd, env=THREADS, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def max_weight_diff(a, b) -> float:
    wa, wb = load_file(str(a / MODEL)), load_file(str(b / MODEL))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def assert_metrics_close(a, b, rel: float) -> None:
    """Metrics of run b close to run a's; an FSDP run (b) is not probed, so a's probe values are left out."""
    ma, mb = read_metrics(a), read_metrics(b)
    if not any("probe_moved" in m for m in mb):
        ma = [{k: m[k] for k in ("step", "loss", "grad_norm")} if "probe_moved" in m else m for m in ma]
    assert [m.keys() for m in ma] == [m.keys() for m in mb] and ma
    for x, y in zip(ma, mb):
        assert all(abs(x[k] - y[k]) <= rel * max(abs(x[k]), 1e-3) for k in x), (x, y)


def assert_same_run(a, b) -> None:
    wa, wb = load_file(str(a / MODEL)), load_file(str(b / MODEL))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert read_metrics(a) == read_metrics(b)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Data, a pca codec and one-process runs of teacher -> ode-pairs -> student, and the arguments of each."""
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "game"
    collect("StreamVideoGame-v0", steps=240, out=data, size=32, seed=0, episode_steps=120)
    train(root / "codec", "codec", "--kind", "pca", "--data", data, "--latent-channels", 16)
    args = {"teacher": ["--data", data, "--codec", root / "codec", "--steps", TEACHER_STEPS, "--batch-size", 4,
                        "--clip-chunks", 2, "--episode-chunks", 4, "--lr", TEACHER_LR, "--warmup", 1,
                        "--save-every", 1, "--log-every", 1, *TINY_DIT]}
    train(root / "teacher", "teacher", *args["teacher"])
    train(root / "pairs", "ode-pairs", "--data", data, "--codec", root / "codec", "--teacher", root / "teacher/model",
          "--clip-chunks", 2, "--pairs", 8, "--batch-size", 4, "--sample-steps", 4, "--threads", 1)
    train(root / "student", "student", "--teacher", root / "teacher/model", "--pairs", root / "pairs/pairs.pt",
          "--steps", 2, "--batch-size", 4, "--threads", 1)
    args["distill"] = ["--student", root / "student/model", "--teacher", root / "teacher/model",
                       "--pairs", root / "pairs/pairs.pt", "--steps", 2, "--batch-size", 4, "--critic-steps", 2,
                       "--warmup", 1, "--save-every", 1, "--threads", 1, "--fresh-critic-rollouts"]
    train(root / "distill", "distill", *args["distill"])
    return root, args


def test_two_processes_train_the_teacher_as_one_and_resume_after_a_kill(tmp_path, pipeline):
    root, args = pipeline
    torchrun(tmp_path / "straight", "teacher", *args["teacher"])
    assert max_weight_diff(root / "teacher", tmp_path / "straight") < 1e-5
    assert_metrics_close(root / "teacher", tmp_path / "straight", rel=1e-5)
    torchrun(tmp_path / "killed", "teacher", *args["teacher"], "--stop-after", 1)
    assert not (tmp_path / "killed" / MODEL).exists()
    torchrun(tmp_path / "killed", "teacher", *args["teacher"])
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_two_processes_distill_as_one(tmp_path, pipeline):
    root, args = pipeline
    torchrun(tmp_path, "distill", *args["distill"])
    assert max_weight_diff(root / "distill", tmp_path) < 1e-5
    assert_metrics_close(root / "distill", tmp_path, rel=1e-5)


def test_fsdp_in_bf16_stays_close_to_one_process(tmp_path, pipeline):
    root, args = pipeline
    torchrun(tmp_path / "teacher", "teacher", *args["teacher"], "--fsdp")
    assert_metrics_close(root / "teacher", tmp_path / "teacher", rel=1e-2)
    assert max_weight_diff(root / "teacher", tmp_path / "teacher") < 2 * TEACHER_LR * TEACHER_STEPS
    torchrun(tmp_path / "distill", "distill", *args["distill"], "--fsdp")
    assert_metrics_close(root / "distill", tmp_path / "distill", rel=1e-2)


def fp32_fsdp_worker(rank: int, port: int, runs: list) -> None:
    """One of 2 ranks, set up as torchrun would, running `streamvideo train` with FSDP computing in fp32."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", OMP_NUM_THREADS="1")
    distributed.COMPUTE_DTYPE = torch.float32
    for argv in runs:
        assert main(argv) == 0
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsdp_in_fp32_makes_the_one_process_update_also_after_a_kill(tmp_path, pipeline):
    """Sharding, gathering the whole state into the checkpoint, cutting it into shards again on resume and
    activation checkpointing change nothing but float sums (the teacher is killed after 2 of 3 steps)."""
    root, args = pipeline
    teacher, distill = (["train", stage, "--out", str(tmp_path / stage), *map(str, args[stage]), "--fsdp"]
                        for stage in ("teacher", "distill"))
    mp.spawn(fp32_fsdp_worker, args=(free_port(), [teacher + ["--stop-after", "2"], teacher, distill]), nprocs=2)
    for stage in ("teacher", "distill"):
        assert max_weight_diff(root / stage, tmp_path / stage) < 1e-6
        assert_metrics_close(root / stage, tmp_path / stage, rel=1e-5)


def test_a_batch_that_does_not_split_into_equal_shards_is_a_one_line_error(monkeypatch):
    from streamvideo.train.ode_pairs import Args as PairsArgs
    from streamvideo.train.teacher import Args as TeacherArgs

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert distributed.shard_size(4, "--batch-size") == 2
    check_equal_shares(TeacherArgs(batch_size=4))
    with pytest.raises(UserError, match=r"^--batch-size 3 does not split into 2 equal shards"):
        check_equal_shares(TeacherArgs(batch_size=3))
    with pytest.raises(UserError, match=r"^--pairs 5 does not split into 2 equal shards"):
        check_equal_shares(PairsArgs(pairs=5, batch_size=4))


def test_checkpointed_blocks_keep_the_gradients_of_a_rollout_through_the_kv_cache(monkeypatch):
    """A recompute in the backward sees the cache as the forward did, though later chunks overwrote it."""
    from test_train import tiny_dit

    monkeypatch.setattr(distributed, "COMPUTE_DTYPE", torch.float32)
    plain, checkpointed = tiny_dit(0), tiny_dit(0)
    for block in checkpointed.blocks:
        distributed.checkpointed_block(block)
    args = DistillArgs(window_chunks=1)          # 5 chunks through 1 sink + 1: the ring overwrites slots
    cond = ClipCond(torch.randn(2, 3, 64), torch.ones(2, 3, dtype=torch.bool), torch.eye(6)[torch.randint(6, (2, 15))])
    x_ctx, has_ctx = torch.randn(2, 4, 15, 4, 4), torch.tensor([True, False])
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)
        self_rollout(model, x_ctx, has_ctx, cond, StepSchedule.parse("4322222"), None, args).square().sum().backward()
        grads.append([p.grad for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(*grads))
