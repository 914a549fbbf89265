"""`streamvideo eval --env ID` on any Gymnasium env: the action measure on ground truth (a "model" that
replays the real env scores 100 %, models that ignore actions score chance, actions that leave the frames
unchanged bound it), the action spaces a model must match, and end-to-end runs on CartPole-v1 and on the
built-in game with --agnostic."""

import argparse
import dataclasses
import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.model import CausalDiT
from streamvideo.engine.presets import save_model_folder, seeded_random, tiny_random
from streamvideo.evaluation.agnostic import (
    build_env_setting,
    candidate_actions,
    evaluate_env,
    hold_last,
    open_env,
    spec_of,
)
from streamvideo.evaluation.evaluate import add_arguments, check_args, run

LAMP_ID = "EvalTestLamp-v0"


class Lamp(gym.Env):
    """A lamp at a seeded random brightness: action 2 turns it up, actions 0 and 1 both leave it (no frame
    tells them apart). unseeded=True adds randomness that reset(seed) does not replay."""
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode=None, unseeded=False):
        self.render_mode, self.unseeded = render_mode, unseeded
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Box(0, 255, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.level = float(self.np_random.integers(0, 100))
        return np.array([self.level], np.float32), {}

    def step(self, action):
        self.level += 10 * (action == 2) + (np.random.default_rng().integers(1, 50) if self.unseeded else 0)
        return np.array([self.level % 256], np.float32), 0.0, False, False, {}

    def render(self):
        return np.full((16, 24, 3), int(self.level) % 256, np.uint8)


if LAMP_ID not in gym.registry:
    gym.register(LAMP_ID, entry_point=Lamp)


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(flags)


def small_args() -> argparse.Namespace:
    """2 episodes of 2 actions held 2 chunks; 6 action trials; no drift."""
    args = parse("--model", "m", "--episodes", "2", "--segments", "2", "--hold-chunks", "2", "--action-trials", "6",
                 "--drift-seconds", "0")
    check_args(args)
    return args


def setting_of(env_id: str, **env_args):
    return build_env_setting(open_env(env_id, env_args), small_args(), 32, 3, 15.0)


@pytest.fixture(scope="module")
def cartpole():
    return setting_of("CartPole-v1")


class Replay:
    """A 'model' that replays the real env: from the context's seed (through the trial's prefix), under each
    given action, or always under `only` (a model that ignores the action it is given)."""

    def __init__(self, s, only=None):
        self.real, self.fpc, self.only = s.real, s.fpc, only
        self.prefixes = {t.seed: t.prefix for t in s.trials}

    def reset(self, prompt, seed, context_frames):
        start, self.ended = self.real.play(seed, self.prefixes.get(seed, []))
        self.last = start.frames[-1]
        np.testing.assert_array_equal(context_frames[-1], self.last)

    def step(self, action):
        frames, self.ended = ([], True) if self.ended else self.real.steps(
            action if self.only is None else self.only, self.fpc)
        chunk = hold_last([self.last, *frames], self.fpc + 1)[1:]    # an ended episode shows its last frame
        self.last = chunk[-1]
        return SimpleNamespace(frames=chunk, nfe=0, seconds=0.0)


def test_a_model_that_replays_the_env_follows_every_action(cartpole):
    result, _ = evaluate_env(Replay(cartpole), cartpole, small_args())
    action = result["action_following"]
    assert action["accuracy"] == 1.0 and action["confusion"] == [[6, 0], [0, 6]] and action["chance"] == 0.5
    assert result["fidelity"]["psnr@8"] > 90        # its frames are the real ones
    assert cartpole.ground_truth == {"action_following": 1.0, "action_chance": 0.5, "action_separability": 1.0}


def test_models_that_ignore_actions_score_chance(cartpole):
    noop = evaluate_env(Replay(cartpole, only=0), cartpole, small_args())[0]["action_following"]
    assert noop["accuracy"] == noop["chance"] == 0.5 and noop["confusion"] == [[6, 0], [6, 0]]
    copy = cartpole.baselines["copy last frame"]["action_following"]   # one still picture for every action
    assert copy["accuracy"] == 0.5 and copy["confusion"][0] == copy["confusion"][1]


def test_actions_that_leave_the_frames_unchanged_bound_the_measure():
    lamp = setting_of(LAMP_ID)
    assert lamp.ground_truth["action_separability"] == pytest.approx(2 / 3)     # 0 and 1 look the same
    replay = evaluate_env(Replay(lamp), lamp, small_args())[0]["action_following"]
    assert replay["accuracy"] == lamp.ground_truth["action_following"] == pytest.approx(2 / 3)
    assert replay["confusion"] == [[6, 0, 0], [6, 0, 0], [0, 0, 6]] and replay["chance"] == pytest.approx(1 / 3)


def test_frames_are_renders_resized_as_collect_records_them_and_prompts_are_optional(cartpole):
    assert cartpole.episodes[0].frames.shape[1:] == (32, 32, 3) and cartpole.episodes[0].prompt is None
    assert all(len(seg) == 2 * 3 for t in cartpole.trials for seg in t.segments)


def test_an_env_that_does_not_replay_from_its_seed_is_refused():
    with pytest.raises(SystemExit, match="replays from its seed"):
        setting_of(LAMP_ID, unseeded=True)


def test_model_action_spaces_match_the_envs_exactly():
    """What eval requires of a model is the env's own space, whatever its kind and bounds."""
    spaces = gym.spaces
    for space in (spaces.Discrete(2), spaces.Discrete(3, start=1), spaces.MultiDiscrete([3, 2]),
                  spaces.MultiBinary(4), spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (1,))):
        env = SimpleNamespace(action_space=space, unwrapped=SimpleNamespace())
        assert spec_of(env).gym_space() == space
    assert spec_of(SimpleNamespace(action_space=spaces.Discrete(2), unwrapped=SimpleNamespace())) == \
        ActionSpec("discrete", n=2)


def test_candidates_are_every_discrete_action_or_distinct_seeded_samples():
    rng = lambda: np.random.default_rng(7)
    assert candidate_actions(gym.spaces.Discrete(3), 4, rng()) == [0, 1, 2]
    box = candidate_actions(gym.spaces.Box(-1, 1, (2,)), 4, rng())
    assert len(box) == 4 and np.array_equal(box, candidate_actions(gym.spaces.Box(-1, 1, (2,)), 4, rng()))
    assert len(candidate_actions(gym.spaces.MultiBinary(1), 4, rng())) == 2     # the space holds only two


@pytest.fixture(scope="module")
def cartpole_model(tmp_path_factory):
    """The tiny random model, with CartPole's Discrete(2) actions."""
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    config = dataclasses.replace(model.config, action=ActionSpec("discrete", n=2))
    model = seeded_random(lambda: CausalDiT(config), 0, "cpu", torch.float32)
    return save_model_folder(tmp_path_factory.mktemp("cartpole", numbered=False) / "model", model, codec,
                             {"name": "hash", "dim": 32, "max_tokens": 16, "seed": 0}, latent_hw, fps)


def run_quietly(*flags: str) -> int:
    threads = torch.get_num_threads()     # run() sets the process-wide count; put it back for other tests
    try:
        return run(parse(*flags))
    finally:
        torch.set_num_threads(threads)


def test_cli_end_to_end_on_cartpole(cartpole_model, tmp_path):
    # a drift rollout shorter than one 3-frame chunk still gets one segment to plot
    assert run_quietly("--model", str(cartpole_model), "--env", "CartPole-v1", "--episodes", "2", "--segments", "2",
                       "--hold-chunks", "2", "--horizons", "4,8,64", "--action-trials", "2", "--drift-seconds", "0.1",
                       "--segment-seconds", "0.1", "--threads", "1", "--out", str(tmp_path)) == 0
    folder = tmp_path / "cartpole"
    result = json.loads((folder / "eval.json").read_text())
    assert result["env"] == "CartPole-v1" and set(result["fidelity"]) == {"psnr@4", "psnr@8", "ssim@4", "ssim@8"}
    assert result["action_following"]["segments"] == 4 and result["action_following"]["actions"] == [0, 1]
    assert result["ground_truth"]["action_following"] == 1.0 and len(result["drift"]["segments"]) == 1
    assert result["speed"]["torch_threads"] == 1 and "avatar_presence" not in result
    assert all(0 < n <= 12 for n in result["real_episode_frames"])
    for png in ("contact_sheet.png", "eval.png"):
        assert (folder / png).stat().st_size > 1000
    table = (tmp_path / "table.md").read_text()
    assert "| cartpole |" in table and "baseline: copy last frame" in table and "avatar presence" not in table
    assert "Real rollouts scored as a model's" in table and "chance 50 %" in table


def test_a_model_of_other_actions_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"takes Discrete\(6\) actions but CartPole-v1 has Discrete\(2\)") as err:
        run_quietly("--model", "tiny-random", "--env", "CartPole-v1", "--out", str(tmp_path))
    assert str(err.value).startswith("streamvideo eval: ") and "\n" not in str(err.value)


def test_unknown_env_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="unknown Gymnasium env id 'NoSuchEnv-v0'") as err:
        run_quietly("--model", "tiny-random", "--env", "NoSuchEnv-v0", "--out", str(tmp_path))
    assert "\n" not in str(err.value)


def test_the_game_with_agnostic_measures(tmp_path):
    assert run_quietly("--model", "tiny-random", "--agnostic", "--episodes", "1", "--segments", "2", "--hold-chunks",
                       "1", "--horizons", "4", "--action-trials", "1", "--drift-seconds", "0", "--threads", "1",
                       "--out", str(tmp_path)) == 0
    result = json.loads((tmp_path / "tiny-random" / "eval.json").read_text())
    assert result["action_following"]["chance"] == pytest.approx(1 / 6) and "avatar_presence" not in result
    assert result["ground_truth"]["action_separability"] > 0.5
