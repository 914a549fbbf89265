"""`streamvideo eval`: every detector on ground-truth frames (where it must succeed and where it must fail),
the action plan, the model folder's themes, bad input, and one end-to-end run on the tiny-random model."""

import argparse
import json

import numpy as np
import pytest
import torch

from streamvideo.envs.game.themes import theme
from streamvideo.evaluation.agnostic import EvalError
from streamvideo.evaluation.detectors import (
    PLANT,
    ActionDetector,
    ThemeClassifier,
    avatar_present,
    colour_histograms,
    psnr,
    ssim,
)
from streamvideo.evaluation.evaluate import (
    add_arguments,
    build_setting,
    check_args,
    model_themes,
    out_names,
    recorded_env,
    resolve_model,
    run,
)
from streamvideo.evaluation.game import action_plan, make_game, play


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(flags)


@pytest.fixture(scope="module")
def setting():
    """The real side of a small eval: 18 held-action segments, 3 memory trials, 2 switch trials."""
    args = parse("--model", "tiny-random", "--env", "StreamVideoGame-v0", "--episodes", "3", "--segments", "6",
                 "--memory-trials", "3", "--switch-trials", "2", "--references", "2", "--drift-seconds", "0")
    check_args(args)
    return build_setting(args, 64, 3, 15.0, [0, 1])


def test_fidelity_metrics():
    a = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert np.all(psnr(a, a) > 90) and np.allclose(ssim(a, a), 1.0)
    assert np.all(psnr(a, 255 - a) < 10)


def test_action_plan_holds_every_action_equally_often_and_never_plants_on_the_last_spot():
    plan = action_plan(np.random.default_rng(1000), 48)
    assert plan == action_plan(np.random.default_rng(1000), 48)
    assert [plan.count(a) for a in range(6)] == [8] * 6
    assert not any(b == PLANT and a in (0, PLANT) for a, b in zip(plan, plan[1:]))


def test_action_detector_reads_real_frames_and_only_them(setting):
    gt = setting.ground_truth
    assert gt["action_following"] >= 0.98
    assert gt["action_chance"] < 0.3
    # frames that never change (the copy baseline) read as "no-op" every time: right only on no-op segments
    per_label = setting.baselines["copy last frame"]["action_following"]["per_label"]
    hits, total = per_label.pop("NOOP").split("/")
    assert hits == total and all(v.startswith("0/") for v in per_label.values())


def test_action_detector_follows_scrolling():
    """Walking right until the dead zone pins the avatar: the camera scrolls, and it still reads RIGHT."""
    game = make_game("StreamVideoGame-v0", 64, [0], {"dead_zone": 0.25, "speed": 2, "screens": 4})   # the old game
    real = play(game, 1001, 0, 3, [4] * 12)
    assert real.screen[-12][0] == real.screen[-1][0] and real.camera[-1][0] > real.camera[-12][0]
    assert ActionDetector(real.sprites, 12 * game.speed)(real.frames[-13], real.frames[-1]) == 4


@pytest.mark.parametrize("action", [1, 2, 3, 4])
def test_action_detector_reads_a_walk_that_scrolls_past_half_a_frame(action):
    """The default follow camera scrolls 8 px a frame: 12 frames move the view 96 px, more than the frame; read
    4 frames (32 px) apart and summed, the walk still reads as its key."""
    game = make_game("StreamVideoGame-v0", 64, [0])
    def central(seed):                    # the avatar starts far from the world's edges
        return np.all(np.abs(np.array(game.reset(seed=seed)[1]["avatar_xy"]) - game.config.world_size / 2) < 100)
    seed = next(s for s in range(1001, 1100) if central(s))
    real = play(game, seed, 0, 3, [action] * 5)     # the first move may bring the avatar to the margin: skipped
    assert np.abs(real.camera[-1] - real.camera[-13]).max() == 96
    assert ActionDetector(real.sprites, 96, 32).read(list(real.frames[-13::4])) == action


def test_avatar_presence_on_real_frames_and_without_the_avatar(setting):
    gt = setting.ground_truth
    assert gt["avatar_presence"] == 1.0
    assert gt["avatar_presence_avatar_removed"] == 0.0
    assert gt["avatar_presence_theme_mean"] == 0.0
    real = setting.episodes[0]
    assert not avatar_present(real.frames[5], real.sprites, real.screen[5] + 12), "the avatar is not 12 px away"


def test_theme_classifier_on_real_frames_and_noise(setting):
    assert setting.switch_themes == (0, 1)
    assert setting.ground_truth["theme_classifier"] == 1.0
    noise = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert np.all(setting.classifier(noise) == -1)


def test_theme_classifier_tells_palettes_apart():
    game = make_game("StreamVideoGame-v0", 64, [0, 64])
    walk = [1, 4, 2, 3] * 3
    refs = {t: np.concatenate([play(game, s, t, 3, walk).frames for s in (1, 2)]) for t in (0, 64)}
    classifier = ThemeClassifier(refs)
    assert all(np.all(classifier(play(game, 1003, t, 3, walk).frames) == t) for t in (0, 64))
    assert colour_histograms(refs[0][:2]).sum(1) == pytest.approx([1, 1])


def test_memory_check_sees_the_planted_flower_and_no_other(setting):
    gt = setting.ground_truth
    assert gt["memory_with_flower"] == {"planted": 1.0, "remembered": 1.0}
    assert gt["memory_without_flower"] == {"planted": 0.0, "remembered": 0.0}


def test_fog_is_matched_through_fogged_sprites():
    fog = next(t for t in range(64) if theme(t).weather.name == "fog")
    game = make_game("StreamVideoGame-v0", 64, [fog])
    real = play(game, 1002, fog, 3, [2] * 4)
    assert all(avatar_present(f, real.sprites, xy) for f, xy in zip(real.frames, real.screen))
    assert max(rgb.max() for rgb, _ in real.sprites.avatars) < 255      # the templates are fogged too


def test_model_themes_and_output_names():
    assert model_themes("m", {}) == [0, 1]
    assert model_themes("m", {"prompts": [theme(5).prompt, theme(2).prompt, theme(5).prompt]}) == [5, 2]
    with pytest.raises(SystemExit, match="not the prompt of a game theme"):
        model_themes("m", {"prompts": ["a purple sky"]})
    assert out_names(["runs/teacher/model", "runs/distill/model/", "default", "default"]) == \
        ["teacher", "distill", "default", "default-2"]


@pytest.mark.parametrize("flags, message", [
    (["--model", "no/such/folder"], "no model 'no/such/folder'"),
    (["--model", "tiny-random", "--episodes", "1", "--segments", "5"], "hold every action"),
    (["--model", "tiny-random", "--horizons", "8,x"], "--horizons"),
    (["--model", "tiny-random", "--switch-chunks", "2"], "--switch-chunks"),
    (["--model", "tiny-random", "--context-chunks", "0"], "--context-chunks must be at least 1"),
    (["--model", "tiny-random", "--env", "CartPole-v1", "--context-chunks", "2"], "--context-chunks is a measure"),
    # drift is measured per segment: a shorter rollout once crashed the plot after eval.json was written
    (["--model", "tiny-random", "--drift-seconds", "5", "--segment-seconds", "10"],
     r"--drift-seconds \(5\) must be at least --segment-seconds \(10\)"),
])
def test_bad_input_is_one_line(flags, message):
    with pytest.raises(SystemExit, match=message) as err:
        run(parse(*flags))
    assert str(err.value).startswith("streamvideo eval: ") and "\n" not in str(err.value)


def test_cli_end_to_end_on_tiny_random(tmp_path):
    threads = torch.get_num_threads()     # run() sets the process-wide count; put it back for other tests
    assert run(parse("--model", "tiny-random", "--episodes", "1", "--hold-chunks", "1", "--horizons", "8,16",
                     "--memory-trials", "1", "--memory-chunks", "1", "--switch-trials", "1", "--switch-chunks", "3",
                     "--references", "1", "--drift-seconds", "1", "--segment-seconds", "0.4", "--threads", "1",
                     "--out", str(tmp_path))) == 0
    torch.set_num_threads(threads)
    folder = tmp_path / "tiny-random"
    result = json.loads((folder / "eval.json").read_text())
    assert set(result["fidelity"]) == {"psnr@8", "psnr@16", "ssim@8", "ssim@16"}
    assert result["action_following"]["segments"] == 6 and result["speed"]["torch_threads"] == 1
    assert {"prompt_following", "memory", "drift", "ground_truth", "baselines"} <= set(result)
    assert result["ground_truth"]["action_following"] >= 0.98
    for png in ("contact_sheet.png", "prompt_switch.png", "eval.png"):
        assert (folder / png).stat().st_size > 1000
    table = (tmp_path / "table.md").read_text()
    assert "| tiny-random |" in table and "baseline: copy last frame" in table and "baseline: theme mean frame" in table
    assert "Detectors on real frames" in table and "chance" in table and "Torch CPU threads: 1" in table


def test_recache_is_measured_only_where_the_generator_keeps_the_cache_inputs():
    import streamvideo
    from streamvideo.evaluation.evaluate import supports_recache
    assert supports_recache(streamvideo.load("tiny-random", device="cpu"))
    assert not supports_recache(streamvideo.load("tiny-random", device="cpu", kv_noise=0.0))   # clean-KV models


def test_eval_plays_the_env_the_model_folders_record():
    old = {"env": {"id": "StreamVideoGame-v0", "kwargs": {"speed": 2, "dead_zone": 0.25}}}
    assert recorded_env(parse("--model", "m"), [old, {}]) == ("StreamVideoGame-v0", {"speed": 2, "dead_zone": 0.25})
    assert recorded_env(parse("--model", "m", "--env-arg", "speed=4"), [old])[1] == {"speed": 4, "dead_zone": 0.25}
    assert recorded_env(parse("--model", "m"), [{}]) == ("StreamVideoGame-v0", {})   # older folders: the game
    assert recorded_env(parse("--model", "m", "--env", "CartPole-v1"), [old]) == ("CartPole-v1", {})
    other = {"env": {"id": "CartPole-v1", "kwargs": {}}}
    with pytest.raises(EvalError, match="different envs"):
        recorded_env(parse("--model", "m"), [old, other])
    # the shipped default model was trained on the game's earlier settings, and says so
    assert resolve_model("default")[1]["env"]["kwargs"]["speed"] == 2


def test_rollouts_start_from_the_context_chunks_asked_for():
    """--context-chunks 3: every rollout starts from 3 chunks of real no-op frames (the attention window), the
    played frames after them the same as from one chunk (no-ops do not move the avatar)."""
    def setting_with(chunks: int):
        args = parse("--model", "tiny-random", "--env", "StreamVideoGame-v0", "--episodes", "1", "--memory-trials",
                     "0", "--switch-trials", "0", "--references", "1", "--drift-seconds", "0",
                     "--context-chunks", str(chunks))
        check_args(args)
        return build_setting(args, 64, 3, 15.0, [0])

    one, three = setting_with(1), setting_with(3)
    assert one.context == 3 and three.context == 9
    assert [len(r.context) for r in one.episodes] == [3] and [len(r.context) for r in three.episodes] == [9]
    assert (one.episodes[0].screen == three.episodes[0].screen).all()
