"""`streamvideo collect`: shards from the built-in game and from a stock Gymnasium env, read back as clips."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from streamvideo.cli import main as cli_main
from streamvideo.collect import CollectError, ExplorePolicy, RandomPolicy, collect, iter_clips, load_dataset
from streamvideo.envs.game import GAME_ID, PLANT, register_game


@pytest.fixture(scope="module")
def game_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("game")
    meta = collect(GAME_ID, steps=300, policy="explore", out=out, shard_size=128, seed=5,
                   episode_steps=100, progress=False)
    return out, meta


def test_game_collection_writes_shards_and_meta(game_data):
    out, meta = game_data
    assert sorted(p.name for p in out.glob("shard_*.npz")) == ["shard_00000.npz", "shard_00001.npz",
                                                               "shard_00002.npz"]
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    assert meta["frames"] == 300 and meta["episodes"] == 3  # 101 + 101 + 98 frames
    assert [s["frames"] for s in meta["shards"]] == [128, 128, 44]
    assert meta["action_space"]["kind"] == "discrete" and meta["action_space"]["n"] == 6
    assert meta["action_space"]["meanings"][PLANT] == "PLANT"
    assert meta["height"] == meta["width"] == 64 and meta["env_id"] == GAME_ID
    assert len(meta["prompts"]) == 3 and all("walking on" in p for p in meta["prompts"])


def test_dataset_reads_back_frames_actions_episodes_and_prompts(game_data):
    out, meta = game_data
    data = load_dataset(out)
    assert len(data) == 300
    assert data.frames.shape == (300, 64, 64, 3) and data.frames.dtype == np.uint8
    assert data.actions.shape == (300,) and data.actions.min() >= 0 and data.actions.max() < 6
    np.testing.assert_array_equal(np.flatnonzero(data.first), [0, 101, 202])
    np.testing.assert_array_equal(np.unique(data.episode_ids), [0, 1, 2])
    assert np.all(data.prompt_ids >= 0) and data.prompts == meta["prompts"]


def test_recorded_actions_replay_to_the_recorded_frames(game_data):
    """actions[i] produced frames[i]: replaying episode 0 in the game reproduces it exactly."""
    out, _ = game_data
    data = load_dataset(out)
    register_game()
    env = gym.make(GAME_ID)
    frame, info = env.reset(seed=5)
    np.testing.assert_array_equal(frame, data.frames[0])
    assert data.prompts[data.prompt_ids[0]] == info["prompt"]
    for i in range(1, 101):
        frame, *_ = env.step(int(data.actions[i]))
        np.testing.assert_array_equal(frame, data.frames[i])


def test_clips_stay_inside_one_episode(game_data):
    out, _ = game_data
    data = load_dataset(out)
    clips = data.clips(16)
    assert clips.frames.shape == (18, 16, 64, 64, 3)  # 6 whole clips of 16 in each ~100-frame episode
    assert clips.actions.shape == (18, 16) and len(clips.prompts) == 18
    for start in data.clip_starts(16, stride=4):
        assert len(set(data.episode_ids[start:start + 16])) == 1
    batches = list(iter_clips(out, length=16, batch_size=5, seed=0))
    assert [len(b.prompts) for b in batches] == [5, 5, 5, 3]
    assert all(b.frames.shape[1:] == (16, 64, 64, 3) for b in batches)


def distinct_tiles_visited(policy_cls, steps=400, seed=0):
    register_game()
    env = gym.make(GAME_ID)
    _, info = env.reset(seed=seed)
    policy = policy_cls(env, np.random.default_rng(seed))
    tiles = set()
    for _ in range(steps):
        _, _, _, _, info = env.step(policy())
        tiles.add((info["avatar_xy"][0] // 8, info["avatar_xy"][1] // 8))
    return len(tiles)


def test_explore_policy_covers_more_world_than_uniform_random():
    for seed in range(3):
        assert distinct_tiles_visited(ExplorePolicy, seed=seed) > 2 * distinct_tiles_visited(RandomPolicy, seed=seed)


def test_explore_policy_holds_moves_and_sometimes_uses_the_verb(game_data):
    actions = load_dataset(game_data[0]).actions
    assert np.mean(actions[1:] == actions[:-1]) > 0.6
    assert np.any(actions == PLANT)


def test_collects_a_stock_gymnasium_env_resized(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    meta = collect("CartPole-v1", steps=80, policy="random", out=tmp_path, size=32, shard_size=50, progress=False)
    data = load_dataset(tmp_path)
    assert data.frames.shape == (80, 32, 32, 3)
    assert meta["prompts"] == [] and np.all(data.prompt_ids == -1)
    assert meta["action_space"]["kind"] == "discrete" and meta["action_space"]["n"] == 2
    assert meta["episodes"] >= 2 and data.first.sum() == meta["episodes"]  # random CartPole falls fast
    assert data.frames.min() < 100 < data.frames.max(), "the dark cart on a white background survives resizing"


def test_errors_name_the_bad_value_and_the_choices(tmp_path):
    with pytest.raises(CollectError, match="unknown Gymnasium env id 'StreamVideoGam-v0'.*StreamVideoGame-v0"):
        collect("StreamVideoGam-v0", steps=5, out=tmp_path / "a", progress=False)
    with pytest.raises(CollectError, match="unknown policy 'greedy'; choose one of random, explore"):
        collect(GAME_ID, steps=5, policy="greedy", out=tmp_path / "b", progress=False)
    with pytest.raises(CollectError, match="steps must be a positive integer, got 0"):
        collect(GAME_ID, steps=0, out=tmp_path / "c", progress=False)
    with pytest.raises(CollectError, match=r"env kwargs \{'themes': \[999\]\}: themes must be .* in \[0, 192\)"):
        collect(GAME_ID, steps=5, out=tmp_path / "d", progress=False, env_kwargs={"themes": [999]})


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_refuses_env_without_rgb_array_rendering(tmp_path):
    class NoFrames(gym.Env):
        metadata = {"render_modes": ["human"]}
        action_space = gym.spaces.Discrete(2)
        observation_space = gym.spaces.Discrete(1)

        def __init__(self, render_mode=None):
            self.render_mode = render_mode

    gym.register(id="NoFramesForCollectTest-v0", entry_point=NoFrames)
    with pytest.raises(CollectError, match="cannot render 'rgb_array'.*\\['human'\\]"):
        collect("NoFramesForCollectTest-v0", steps=5, out=tmp_path, progress=False)


def test_refuses_to_overwrite_an_existing_dataset(game_data):
    with pytest.raises(CollectError, match="already holds a dataset"):
        collect(GAME_ID, steps=5, out=game_data[0], progress=False)


def test_cli_collects_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(["collect", "--env", GAME_ID, "--steps", "40", "--out", str(out), "--shard-size", "16",
                     "--seed", "1", "--env-arg", "screens=2"])
    assert code == 0 and len(load_dataset(out)) == 40
    assert json.loads((out / "meta.json").read_text())["env_kwargs"] == {"screens": 2}
    assert cli_main(["collect", "--env", "Nope-v9", "--steps", "5", "--out", str(tmp_path / "x")]) == 2
    assert "unknown Gymnasium env id 'Nope-v9'" in capsys.readouterr().err
