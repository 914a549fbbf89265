"""Any Gymnasium env's action space becomes the world model's: Discrete(n) with the env's action names, Box
with its bounds. collect -> train codec -> teacher -> ode-pairs -> student -> distill on tiny budgets, the
folder loaded by gym.make("StreamVideo-v0", model=folder) offers the env's own space, mismatched data is a
one-line error, and play's keys follow the action names."""

import json

import gymnasium as gym
import numpy as np
import pygame
import pytest
import torch

import streamvideo
from streamvideo.apps.cli import main
from streamvideo.apps.keymap import KeyMap
from streamvideo.apps.play import PlaySession
from streamvideo.data.collect import collect, describe_action_space
from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.presets import GAME_ACTIONS, MODEL_FILE, save_model_folder, tiny_random
from streamvideo.envs.game.env import ACTION_MEANINGS

TINY_DIT = ["--heads", "2", "--head-dim", "8", "--layers", "1", "--ffn-dim", "16", "--threads", "1"]
ARCADE_ID = "TinyArcade-v0"
ARCADE_MEANINGS = ("NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "UPFIRE")


class TinyArcade(gym.Env):
    """An Atari-like env: a square moved by 9 named actions (more than the game's 6), rendered 16 x 16."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}
    MOVES = {"UP": (0, -1), "DOWN": (0, 1), "LEFT": (-1, 0), "RIGHT": (1, 0)}

    def __init__(self, render_mode=None):
        self.action_space = gym.spaces.Discrete(len(ARCADE_MEANINGS))
        self.observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
        self.render_mode, self.xy = render_mode, np.array([8, 8])

    def get_action_meanings(self):
        return list(ARCADE_MEANINGS)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.xy = self.np_random.integers(2, 14, 2)
        return self.render(), {}

    def step(self, action):
        name = ARCADE_MEANINGS[action]
        for word, move in self.MOVES.items():
            if word in name:
                self.xy = np.clip(self.xy + move, 0, 15)
        return self.render(), 0.0, False, False, {}

    def render(self):
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[self.xy[1], self.xy[0]] = 255
        return frame


gym.register(ARCADE_ID, entry_point=TinyArcade, max_episode_steps=60)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(stage, out, *extra):
    assert main(["train", stage, "--out", str(out), *map(str, extra)]) == 0
    return out / "model"


def teacher_of(root, env_id, steps=180):
    """Collect `steps` random frames of env_id, fit a pca codec, train a one-step tiny teacher:
    (dataset, codec folder, teacher model folder)."""
    data = root / "data"
    collect(env_id, steps, policy="random", out=data, size=32, seed=0, episode_steps=60, progress=False)
    codec = root / "codec"
    train("codec", codec, "--kind", "pca", "--data", data, "--latent-channels", 16, "--pca-frames", 60)
    teacher = train("teacher", root / "teacher", "--data", data, "--codec", codec, "--steps", 1, "--batch-size", 1,
                    "--clip-chunks", 2, "--episode-chunks", 2, *TINY_DIT)
    return data, codec, teacher


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    return teacher_of(tmp_path_factory.mktemp("cartpole"), "CartPole-v1")


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    """Pendulum's Box(-2, 2, (1,)) through every stage: (dataset, codec, pairs, {stage: model folder})."""
    root = tmp_path_factory.mktemp("pendulum")
    data, codec, teacher = teacher_of(root, "Pendulum-v1")
    pairs = root / "pairs" / "pairs.pt"
    train("ode-pairs", root / "pairs", "--data", data, "--codec", codec, "--teacher", teacher, "--clip-chunks", 2,
          "--pairs", 2, "--batch-size", 2, "--sample-steps", 2, "--threads", 1)
    student = train("student", root / "student", "--teacher", teacher, "--pairs", pairs, "--steps", 1,
                    "--batch-size", 1, "--threads", 1)
    distilled = train("distill", root / "distill", "--student", student, "--teacher", teacher, "--pairs", pairs,
                      "--steps", 1, "--batch-size", 1, "--critic-steps", 1, "--threads", 1)
    return data, codec, pairs, {"teacher": teacher, "student": student, "distill": distilled}


def model_env(folder):
    return gym.make("StreamVideo-v0", model=str(folder), device="cpu", threads=1)


def steps_with_samples(env, n=2):
    """reset, then n steps with samples of the env's own action space: the chunks' frames."""
    env.reset(seed=0)
    env.action_space.seed(0)
    return [env.step(env.action_space.sample())[4]["frames"] for _ in range(n)]


# ------------------------------------------------------------------------------------ trained folders

def test_a_discrete_env_with_two_actions_gives_a_model_of_exactly_those(cartpole):
    _, _, teacher = cartpole
    env = model_env(teacher)
    assert env.action_space == gym.make("CartPole-v1").action_space == gym.spaces.Discrete(2)
    assert all(frames.shape[1:] == (32, 32, 3) for frames in steps_with_samples(env))
    with pytest.raises(ValueError, match=r"action 2 is outside the model's action space Discrete\(2\)"):
        env.step(2)


def test_box_bounds_survive_every_stage_and_the_env_offers_them(pendulum):
    *_, models = pendulum
    real = gym.make("Pendulum-v1").action_space
    for stage, folder in models.items():
        entry = json.loads((folder / MODEL_FILE).read_text())["action"]
        assert entry == {"kind": "continuous", "dim": 1, "shape": [1], "low": [-2.0], "high": [2.0],
                         "repr": "Box(-2.0, 2.0, (1,), float32)"}, stage
        env = model_env(folder)
        assert env.action_space == real and type(env.action_space) is gym.spaces.Box, stage
        assert np.array_equal(env.action_space.low, real.low) and np.array_equal(env.action_space.high, real.high)
        steps_with_samples(env, n=1)
    env.step(np.array([-2.0], np.float32))   # the bounds themselves are actions
    with pytest.raises(ValueError, match="outside the model's action space"):
        env.step(np.array([2.5], np.float32))


def test_a_box_of_minus_one_to_one_and_more_named_actions_than_the_game(tmp_path):
    _, _, box_teacher = teacher_of(tmp_path / "car", "MountainCarContinuous-v0", steps=120)
    box_env = model_env(box_teacher)
    assert box_env.action_space == gym.make("MountainCarContinuous-v0").action_space
    steps_with_samples(box_env, n=1)
    _, _, arcade_teacher = teacher_of(tmp_path / "arcade", ARCADE_ID, steps=120)
    arcade = model_env(arcade_teacher)
    assert arcade.action_space == gym.spaces.Discrete(9)
    assert arcade.unwrapped.generator.action_spec.meanings == ARCADE_MEANINGS
    steps_with_samples(arcade, n=1)


# ------------------------------------------------------------------------------------ refusals

def run_refused(capsys, *argv):
    """main(argv) refuses: exit code 2 and one line on stderr, returned."""
    assert main(list(map(str, argv))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_data_of_another_action_space_is_a_one_line_error(tmp_path, capsys, cartpole, pendulum):
    cart_data, cart_codec, cart_teacher = cartpole
    _, _, pairs, models = pendulum
    err = run_refused(capsys, "train", "ode-pairs", "--out", tmp_path / "pairs", "--data", cart_data,
                      "--codec", cart_codec, "--teacher", models["teacher"], "--clip-chunks", 2, "--pairs", 2)
    assert err == (f"streamvideo train ode-pairs: {cart_data} has Discrete(2) actions but the teacher "
                   f"{models['teacher']} takes Box(-2.0, 2.0, (1,), float32)")
    err = run_refused(capsys, "train", "student", "--out", tmp_path / "student", "--teacher", cart_teacher,
                      "--pairs", pairs, "--steps", 1)
    assert "has Box(-2.0, 2.0, (1,), float32) actions but the teacher" in err
    err = run_refused(capsys, "train", "distill", "--out", tmp_path / "distill", "--student", models["student"],
                      "--teacher", cart_teacher, "--pairs", pairs, "--steps", 1)
    assert err.endswith(f"the teacher {cart_teacher} has Discrete(2) actions but the student {models['student']} "
                        f"takes Box(-2.0, 2.0, (1,), float32)")


# ------------------------------------------------------------------------------------ spaces and folders

class SpaceOnly(gym.Env):
    def __init__(self, space):
        self.action_space = space


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3, start=1), gym.spaces.MultiDiscrete([3, 2]),
                                   gym.spaces.MultiBinary((2, 3)), gym.spaces.Box(-1, 1, (2, 3)),
                                   gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))])
def test_every_space_collect_records_comes_back_exactly(space):
    spec = ActionSpec.from_dict(describe_action_space(SpaceOnly(space)))
    assert spec.gym_space() == space and type(spec.gym_space()) is type(space)
    assert ActionSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    space.seed(0)
    actions = [spec.validate(space.sample()) for _ in range(3)]
    vectors = spec.encode(actions)
    assert vectors.shape == (3, spec.embed_inputs) and vectors.abs().max() <= 1
    flat = np.stack([np.asarray(a).reshape(-1) for a in actions]) if spec.shape else np.array(actions)
    assert torch.equal(spec.vectors(flat), vectors)   # collect's flat records read as the actions themselves


def test_box_actions_are_rescaled_to_minus_one_one_for_the_model():
    spec = ActionSpec("continuous", dim=2, low=(-2.0, 0.0), high=(2.0, 1.0))
    assert spec.encode([np.array([-2.0, 1.0]), np.array([1.0, 0.25])]).tolist() == [[-1.0, 1.0], [0.5, -0.5]]
    assert spec.noop().tolist() == [0.0, 0.0] and spec.encode([spec.noop()]).tolist() == [[0.0, -1.0]]
    assert np.allclose(spec.unscaled(spec.scaled([1.0, 0.25])), [1.0, 0.25])


def test_older_folders_load_as_the_games_named_actions(tmp_path):
    assert GAME_ACTIONS.meanings == ACTION_MEANINGS
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    folder = save_model_folder(tmp_path / "old", model, codec, {"name": "hash", "dim": 32, "max_tokens": 16},
                               latent_hw, fps)
    meta = json.loads((folder / MODEL_FILE).read_text())
    del meta["action"]          # written before the entry existed
    (folder / MODEL_FILE).write_text(json.dumps(meta))
    spec = streamvideo.load(folder, device="cpu").action_spec
    assert spec == GAME_ACTIONS and spec.meanings == ACTION_MEANINGS
    assert model_env(folder).action_space == gym.spaces.Discrete(6)


# ------------------------------------------------------------------------------------ keys

def test_keys_follow_the_action_names():
    keymap = KeyMap(ActionSpec("discrete", n=len(ARCADE_MEANINGS), meanings=ARCADE_MEANINGS))
    arrows = [pygame.K_UP, pygame.K_RIGHT, pygame.K_LEFT, pygame.K_DOWN, pygame.K_SPACE]
    assert [keymap.action([key]) for key in arrows] == [2, 3, 4, 5, 1]
    assert keymap.action([]) == 0
    assert keymap.action([pygame.K_UP, pygame.K_RIGHT]) == 6 and keymap.action([pygame.K_a, pygame.K_w]) == 7
    assert keymap.action([pygame.K_UP, pygame.K_SPACE]) == 8                  # UPFIRE
    assert keymap.action([pygame.K_DOWN, pygame.K_SPACE]) == 1                # no DOWNFIRE: the newest press wins
    assert keymap.action([pygame.K_UP, pygame.K_DOWN, pygame.K_RIGHT]) == 3   # opposites cancel out
    assert " together  UPRIGHT 6, UPLEFT 7, UPFIRE 8" in keymap.help_lines()
    plant = KeyMap(GAME_ACTIONS)                                              # a name of its own gets space
    assert plant.action([pygame.K_SPACE]) == 5 and plant.help_lines()[-1] == "    Space  PLANT: action 5"


def test_keys_without_names_are_numbers_and_box_keys_reach_the_bounds():
    numbered = KeyMap(ActionSpec("discrete", n=12))
    assert [numbered.action([getattr(pygame, f"K_{i}")]) for i in (1, 9, 0)] == [1, 9, 10]
    assert numbered.action([pygame.K_SPACE]) == 11 and numbered.action([]) == 0 and not numbered.unbound
    assert numbered.help_lines()[:2] == [" (no key)  action 0", "        1  action 1"]
    box = KeyMap(ActionSpec("continuous", dim=1, low=(-2.0,), high=(2.0,)))
    assert [box.action(keys).tolist() for keys in ([pygame.K_LEFT], [pygame.K_d], [])] == [[-2.0], [2.0], [0.0]]
    assert box.action([pygame.K_LEFT], pointer=(0.5, -1.0)).tolist() == [1.0]  # the mouse overrides the keys


def test_play_drives_a_box_with_the_mouse(pendulum):
    *_, models = pendulum
    session = PlaySession(streamvideo.load(models["teacher"], device="cpu"), "pendulum", paced=False, scale=2)
    width, _ = session.screen.get_size()
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=(width * 3 // 4, 0)))
    session.handle_events()
    request = session.controls.take()
    assert request.pointer == (0.5, 1.0) and session.keymap.action(request.keys, request.pointer).tolist() == [1.0]
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=(0, 0)))
    session.handle_events()
    assert session.controls.take().pointer is None
    pygame.display.quit()
