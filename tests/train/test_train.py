"""Every training stage end to end on a tiny config, resume after a simulated kill, and the
distillation losses' gradients reach the right parameters."""

import json

import pytest
import torch
from safetensors.torch import load_file

from streamvideo.apps.cli import main
from streamvideo.data.collect import collect
from streamvideo.engine.model import CausalDiT, ModelConfig
from streamvideo.engine.presets import GAME_ACTIONS
from streamvideo.engine.schedules import StepSchedule
from streamvideo.train.common import read_metrics
from streamvideo.train.data import load_codec, text_encoder
from streamvideo.train.distill import Args as DistillArgs
from streamvideo.train.distill import generator_losses
from streamvideo.train.objectives import FlowFeatures, ema_copy, flow_matching_loss

TINY_DIT = ["--heads", "2", "--head-dim", "8", "--layers", "1", "--ffn-dim", "16", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "game"
    collect("StreamVideoGame-v0", steps=240, out=out, size=32, seed=0, episode_steps=120)
    return out


def train(stage, out, *extra):
    assert main(["train", stage, "--out", str(out), *map(str, extra)]) == 0


def interrupted_equals_uninterrupted(tmp_path, stage, weights, *extra):
    """Run A straight through; run B stops after 1 step (a kill) and is restarted: same weights and metrics."""
    train(stage, tmp_path / "a", *extra)
    train(stage, tmp_path / "b", *extra, "--stop-after", 1)
    assert not (tmp_path / "b" / weights).exists()
    train(stage, tmp_path / "b", *extra)
    a, b = load_file(str(tmp_path / "a" / weights)), load_file(str(tmp_path / "b" / weights))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")


def test_codec_stage_resumes(tmp_path, data):
    interrupted_equals_uninterrupted(
        tmp_path, "codec", "codec.safetensors", "--kind", "taehv", "--data", data, "--steps", 3, "--save-every", 1,
        "--batch-size", 1, "--clip-frames", 8, "--latent-channels", 4, "--encoder-channels", 4,
        "--decoder-channels", "4,4,4,4", "--threads", 1)


def test_pca_codec_stage_fits_and_reports_psnr(tmp_path, data):
    train("codec", tmp_path, "--kind", "pca", "--data", data, "--latent-channels", 48, "--pca-frames", 160)
    codec = load_codec(tmp_path)
    assert codec.config() == {"name": "pca", "patch": 8, "channels": 48}
    (metrics,) = read_metrics(tmp_path)
    assert metrics["fit_frames"] == 160 and metrics["psnr"] > 20


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data):
    """pca codec -> teacher -> ode-pairs -> student, each stage checked for resume on the way."""
    root = tmp_path_factory.mktemp("pipeline")
    common = ["--save-every", 1]
    codec = root / "codec"
    train("codec", codec, "--kind", "pca", "--data", data, "--latent-channels", 16)
    teacher = ["--data", data, "--codec", codec, "--steps", 3, "--batch-size", 2, "--clip-chunks", 2,
               "--episode-chunks", 4, *TINY_DIT, *common]
    interrupted_equals_uninterrupted(root / "teacher", "teacher", "model/model.safetensors", *teacher)
    t_model = root / "teacher" / "a" / "model"
    pairs = ["--data", data, "--codec", codec, "--teacher", t_model, "--clip-chunks", 2, "--pairs", 6,
             "--batch-size", 2, "--sample-steps", 4, "--threads", 1, *common]
    train("ode-pairs", root / "pairs", *pairs)
    train("ode-pairs", root / "pairs-b", *pairs, "--stop-after", 2)
    train("ode-pairs", root / "pairs-b", *pairs)
    a, b = torch.load(root / "pairs" / "pairs.pt"), torch.load(root / "pairs-b" / "pairs.pt")
    assert torch.equal(a["xt"], b["xt"]) and a["xt"].shape[1] == 4
    student = ["--teacher", t_model, "--pairs", root / "pairs" / "pairs.pt", "--steps", 3, "--batch-size", 2,
               "--threads", 1, *common]
    interrupted_equals_uninterrupted(root / "student", "student", "model/model.safetensors", *student)
    return root, t_model, root / "student" / "a" / "model", root / "pairs" / "pairs.pt"


@pytest.mark.parametrize("ablation", [["--fresh-critic-rollouts"], ["--no-diagonal-forcing", "--no-flow-loss"]])
def test_distill_stage_resumes(tmp_path, pipeline, ablation):
    root, t_model, s_model, pairs = pipeline
    interrupted_equals_uninterrupted(
        tmp_path, "distill", "model/model.safetensors", "--student", s_model, "--teacher", t_model, "--pairs", pairs,
        "--steps", 2, "--batch-size", 2, "--critic-steps", 2, "--save-every", 1, "--threads", 1, *ablation)
    meta = json.loads((tmp_path / "a" / "model" / "streamvideo.json").read_text())
    assert meta["kv_noise"] == (0.0 if len(ablation) > 1 else None) and meta["schedule"] == "4322222"
    assert {"dmd", "reg", "critic"} <= set(read_metrics(tmp_path / "a")[0])


def tiny_dit(seed):
    torch.manual_seed(seed)
    return CausalDiT(ModelConfig(patch_size=(1, 1, 1), num_heads=2, head_dim=8, ffn_dim=16, num_layers=1,
                                 in_channels=4, out_channels=4, text_dim=64, chunk_frames=3, action=GAME_ACTIONS))


def test_dmd_and_flow_gradients_reach_the_right_parameters():
    student, teacher, critic = tiny_dit(0), tiny_dit(1).requires_grad_(False), tiny_dit(2)
    flow_net = FlowFeatures(4, (4, 4))
    n, frames = 2, 15          # 5 chunks: the rollout's window (1 sink + 2) evicts chunk 1 at chunk 4
    pairs = {"x0": torch.randn(n, 4, frames, 4, 4), "xt": torch.randn(n, 4, 4, frames, 4, 4),
             "action": torch.eye(6)[torch.randint(6, (n, frames))], "prompt_id": torch.zeros(n, dtype=torch.long),
             "has_ctx": torch.tensor([True, False]), "prompts": ["a red knight"],
             "sigmas": (1.0, 0.9331, 0.7326, 0.3571), "chunk_frames": 3}
    losses = generator_losses(student, teacher, critic, flow_net, ema_copy(flow_net), pairs, torch.arange(n),
                              text_encoder(), DistillArgs(), StepSchedule.parse("4322222"))
    losses["dmd"].backward(retain_graph=True)
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in teacher.parameters()) and all(p.grad is None for p in critic.parameters())
    losses["flow_dmd"].backward(retain_graph=True)
    flow_grads = [p.grad for p in flow_net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in flow_grads)
    student.zero_grad(set_to_none=True)
    flow_matching_loss(critic, losses["sample"], losses["ctx"], losses["cond"]).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters() if p.requires_grad)
    assert all(p.grad is None for p in student.parameters()) and all(p.grad is None for p in teacher.parameters())


def test_bad_arguments_name_the_problem():
    with pytest.raises(SystemExit, match="--data"):
        main(["train", "teacher", "--codec", "pixel:8"])
    with pytest.raises(ValueError, match="not both"):
        DistillArgs(no_diagonal_forcing=True, kv_noise=100.0).kv_level()


def test_teacher_windows_are_a_sink_then_consecutive_chunks_and_the_last_chunk_is_always_scored():
    from types import SimpleNamespace

    from streamvideo.train.teacher import Args, chunk_sigmas, window_batch
    torch.manual_seed(0)
    args = Args(clip_chunks=4, episode_chunks=10, chunk_frames=3, text_drop=0.0)
    frames = torch.arange(1.0, 31.0)[None, None, :, None, None].expand(5, 1, 30, 1, 1)  # latent = frame index + 1
    clips = SimpleNamespace(latents=frames, actions=torch.zeros(5, 30, 6), prompt_ids=torch.zeros(5, dtype=torch.long),
                            prompts=["p"])
    x0, action, prompts, anchor = window_batch(clips, torch.arange(5).repeat(20), args)
    idx = x0[:, 0, :, 0, 0].long() - 1                                                 # [B, 12] frame indices
    before = anchor[:, 0, :, 0, 0].long() - 1                                          # [B, 4] frame before each chunk
    assert (before[:, 0] == -1).all() and (before[:, 1:] == idx[:, 3::3] - 1).all()    # zeros before the sink
    assert (idx[:, :3] == torch.arange(3)).all()                                       # the sink: first chunk
    assert (idx[:, 3:].diff(dim=1) == 1).all() and (idx[:, 3] % 3 == 0).all()         # then consecutive chunks
    assert idx[:, 3].min() == 3 and idx[:, 3].max() > 3                                # contiguous and gapped windows
    assert action.shape == (100, 12, 6) and prompts == ["p"] * 100
    sigma, target = chunk_sigmas(1000, args)
    assert target[:, -1].all() and 0.2 < target[:, :-1].float().mean() < 0.6
    assert (sigma[~target] <= args.ctx_sigma_max).all() and sigma[target].mean() > 0.5


def test_steered_pipeline_runs_end_to_end_resumes_and_records_its_env(tmp_path):
    """The steered-anchor design through every stage (chunks of one frame, action tokens), the teacher's action
    probe in its metrics, resume after a kill, and the env of the data carried into every model folder."""
    data, game = tmp_path / "data", {"speed": 8, "dead_zone": 0.49, "screens": 16}   # moves scroll a token
    collect("StreamVideoGame-v0", steps=240, out=data, size=32, seed=0, episode_steps=60, env_kwargs=game,
            progress=False)
    codec = tmp_path / "codec"
    train("codec", codec, "--kind", "pca", "--data", data, "--latent-channels", 16)
    teacher = ["--data", data, "--codec", codec, "--steps", 3, "--batch-size", 2, "--chunk-frames", 1,
               "--clip-chunks", 3, "--episode-chunks", 12, "--anchor-radius", 1, "--action-tokens",
               "--anchor-noise", 0.3, "--self-context", 0.5, "--probe-every", 2,
               "--probe-windows", 4, "--save-every", 1, *TINY_DIT]
    interrupted_equals_uninterrupted(tmp_path / "teacher", "teacher", "model/model.safetensors", *teacher)
    probed = [m for m in read_metrics(tmp_path / "teacher" / "a") if "gap@0.6" in m]
    assert [m["step"] for m in probed] == [1, 2]
    assert {"x0_err_moved", "copy_err_moved", "direction", "direction_chance", "rollout_err_last"} <= set(probed[-1])
    t_model = tmp_path / "teacher" / "a" / "model"
    meta = json.loads((t_model / "streamvideo.json").read_text())
    assert meta["model"]["anchor_radius"] == 1 and meta["model"]["action_tokens"]
    assert meta["env"] == {"id": "StreamVideoGame-v0", "kwargs": game}
    train("ode-pairs", tmp_path / "pairs", "--data", data, "--codec", codec, "--teacher", t_model, "--clip-chunks", 3,
          "--pairs", 4, "--batch-size", 2, "--sample-steps", 3, "--threads", 1)
    pairs = tmp_path / "pairs" / "pairs.pt"
    train("student", tmp_path / "student", "--teacher", t_model, "--pairs", pairs, "--steps", 2, "--batch-size", 2,
          "--threads", 1)
    s_model = tmp_path / "student" / "model"
    interrupted_equals_uninterrupted(
        tmp_path / "distill", "distill", "model/model.safetensors", "--student", s_model, "--teacher", t_model,
        "--pairs", pairs, "--steps", 2, "--batch-size", 2, "--critic-steps", 1, "--save-every", 1, "--threads", 1)
    for folder in (s_model, tmp_path / "distill" / "a" / "model"):
        assert json.loads((folder / "streamvideo.json").read_text())["env"]["id"] == "StreamVideoGame-v0"


def test_self_generated_context_replaces_the_middle_chunks_and_their_anchors_only():
    """--self-context: the chosen windows keep their sink, their last chunk (the target) and the anchors of the
    data, except that the middle chunks are the EMA's predictions and the chunks after them anchor on those."""
    from streamvideo.train.objectives import ClipCond
    from streamvideo.train.teacher import Args, self_generated_context
    torch.manual_seed(0)
    cfg = ModelConfig(patch_size=(1, 1, 1), num_heads=2, head_dim=8, ffn_dim=16, num_layers=1, in_channels=4,
                      out_channels=4, text_dim=64, chunk_frames=1, action=GAME_ACTIONS, anchor_radius=1)
    ema = CausalDiT(cfg).eval()
    args = Args(chunk_frames=1, clip_chunks=4)
    x0, anchor = torch.randn(3, 4, 4, 4, 4), torch.randn(3, 4, 4, 4, 4)
    keys = torch.eye(6)[[1, 2, 3, 4]].expand(3, -1, -1)
    cond = ClipCond(torch.randn(3, 2, 64), torch.ones(3, 2, dtype=torch.bool), keys, anchor)
    rows = torch.tensor([True, False, True])
    new_x0, new_anchor = self_generated_context(ema, x0, cond, rows, args)
    assert torch.equal(new_x0[1], x0[1]) and torch.equal(new_anchor[1], anchor[1])       # a window not chosen
    assert torch.equal(new_x0[:, :, [0, 3]], x0[:, :, [0, 3]])                           # sink and target: data
    assert not torch.isclose(new_x0[rows][:, :, 1:3], x0[rows][:, :, 1:3]).any()        # the middle: guesses
    assert torch.equal(new_anchor[:, :, :2], anchor[:, :, :2])                           # the sink's and chunk 1's
    assert torch.equal(new_anchor[rows][:, :, 2:], new_x0[rows][:, :, 1:3])              # on the guesses before
    assert torch.isfinite(new_x0).all() and torch.isfinite(new_anchor).all()


def test_sequential_ode_sampler_anchors_on_its_own_samples_not_on_the_data():
    """With anchors the teacher samples chunk after chunk, each anchored on the sampled last frame before it:
    the data's frames outside the context are never read, the context is."""
    from streamvideo.train.objectives import ClipCond, ode_sample
    torch.manual_seed(0)
    cfg = ModelConfig(patch_size=(1, 1, 1), num_heads=2, head_dim=8, ffn_dim=16, num_layers=1, in_channels=4,
                      out_channels=4, text_dim=64, chunk_frames=1, action=GAME_ACTIONS, anchor_radius=1)
    model = CausalDiT(cfg).eval()
    x0_ctx = torch.randn(2, 4, 3, 4, 4)
    ctx = torch.tensor([[True, False, False]] * 2)
    keys = torch.eye(6)[[1, 2, 3]].expand(2, -1, -1)
    cond = ClipCond(torch.randn(2, 3, 64), torch.ones(2, 3, dtype=torch.bool), keys)

    def sample(x):
        torch.manual_seed(1)
        return ode_sample(model, x, ctx, cond, steps=4, record=(0.5,))
    out, states = sample(x0_ctx)
    assert torch.equal(out[:, :, 0], x0_ctx[:, :, 0]) and states[0.5].shape == out.shape
    other_data = x0_ctx.clone()
    other_data[:, :, 1:] = 100.0
    assert torch.equal(sample(other_data)[0], out)
    other_context = x0_ctx.clone()
    other_context[:, :, 0] += 1.0
    assert (sample(other_context)[0][:, :, 1:] - out[:, :, 1:]).abs().max() > 1e-3
