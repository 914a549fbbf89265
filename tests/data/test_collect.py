"""`streamvideo collect`: shards from the built-in game and from a stock Gymnasium env, read back as clips;
frame sizes and resizing, fps, prompts, and env ids whose namespace a plugin registers."""

from __future__ import annotations

import importlib.util
import json

import gymnasium as gym
import numpy as np
import pytest

from streamvideo.apps.cli import main as cli_main
from streamvideo.data import collect as collect_module
from streamvideo.data.collect import (
    CollectError,
    ExplorePolicy,
    FrameFit,
    RandomPolicy,
    collect,
    iter_clips,
    load_dataset,
    model_size,
)
from streamvideo.envs.game.env import GAME_ID, PLANT, register_game


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
    env = gym.make(GAME_ID, speed=2)     # a walk of 2 px: neither policy reaches the world's edge in 400 steps
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


# ------------------------------------------------------------------------------------ frame size and resizing

def test_sizes_parse_as_a_side_or_width_x_height():
    assert model_size(64) == (64, 64) and model_size("64") == (64, 64)
    assert model_size("64x40") == (40, 64) and model_size(64, height=40) == (40, 64)
    assert model_size("64x40", width=48) == (40, 48)
    with pytest.raises(CollectError, match="size must be N or WxH, e.g. 64 or 64x40, got '64by40'"):
        model_size("64by40")
    with pytest.raises(CollectError, match="height must be a positive integer, got 0"):
        model_size("64x0")


def test_pad_and_crop_keep_the_aspect_and_stretch_does_not():
    frame = np.full((20, 60, 3), 200, np.uint8)   # a 60x20 render (3:1) into a 30x30 model frame
    padded = FrameFit((20, 60), (30, 30), "pad").apply(frame)   # scaled to 30x10, 10 black rows above and below
    assert padded.shape == (30, 30, 3)
    assert np.all(padded[:10] == 0) and np.all(padded[10:20] == 200) and np.all(padded[20:] == 0)
    crop = FrameFit((20, 60), (30, 30), "crop")                  # scaled to 90x30, 30 columns cut each side
    assert crop.scaled_hw == (30, 90) and crop.apply(frame).shape == (30, 30, 3) and np.all(crop.apply(frame) == 200)
    stretched = FrameFit((20, 60), (30, 30), "stretch").apply(frame)
    assert stretched.shape == (30, 30, 3) and np.all(stretched == 200)


def test_the_resize_line_names_the_sizes_and_the_method():
    cartpole = (400, 600)
    assert FrameFit(cartpole, (64, 64), "pad").describe() == \
        "resize 600x400 -> 64x64 by pad: scaled to 64x43 (aspect kept), 21 black rows added"
    assert FrameFit(cartpole, (40, 64), "crop").describe() == \
        "resize 600x400 -> 64x40 by crop: scaled to 64x43 (aspect kept), 3 rows cut"
    assert FrameFit(cartpole, (64, 64), "stretch").describe() == \
        "resize 600x400 -> 64x64 by stretch: aspect 1.50 -> 1.00"
    assert FrameFit(cartpole, (32, 48), "crop").describe() == \
        "resize 600x400 -> 48x32 by crop: same aspect, scaled only"
    assert FrameFit((64, 64), (64, 64), "pad").describe() == \
        "resize 64x64 -> 64x64: none, the env renders the model's size"


# ------------------------------------------------------------------------------------ fps and prompts

class CountingEnv(gym.Env):
    """Renders its step count as the frame's brightness; gives each episode a level name, in reset's info
    only (steps give none) and as the text attribute `mission`; no "prompt"."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    LEVELS = ("a sunny level", "a rainy level")

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.spaces.Discrete(1)
        self.steps, self.mission = 0, ""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps, self.mission = 0, self.LEVELS[int(self.np_random.integers(2))]
        return 0, {"level_name": self.mission, "lives": 3}

    def step(self, action):
        self.steps += 1
        return 0, 0.0, False, self.steps >= 12, {}

    def render(self):
        return np.full((24, 40, 3), self.steps, np.uint8)


COUNTING_ID = "CountingForCollectTest-v0"
gym.register(id=COUNTING_ID, entry_point=CountingEnv, disable_env_checker=True)


def collect_counting(out, **kw):
    return collect(COUNTING_ID, steps=40, policy="random", out=out, size="40x24", progress=False, **kw)


def test_fps_is_the_envs_render_fps_over_the_frame_skip_unless_given(tmp_path):
    meta = collect_counting(tmp_path / "every", frame_skip=1)
    assert meta["fps"] == 30 and meta["env_render_fps"] == 30 and meta["frame_skip"] == 1
    meta = collect_counting(tmp_path / "third", frame_skip=3)
    assert meta["fps"] == 10 and meta["frame_skip"] == 3
    data = load_dataset(tmp_path / "third")
    assert data.frames[:6, 0, 0, 0].tolist() == [0, 3, 6, 9, 12, 0]   # every third step; the episode ends at 12
    assert collect_counting(tmp_path / "given", frame_skip=3, fps=12.5)["fps"] == 12.5


def test_no_prompt_one_prompt_or_each_episodes_from_an_info_key_or_attribute(tmp_path):
    meta = collect_counting(tmp_path / "none")
    assert meta["prompts"] == [] and np.all(load_dataset(tmp_path / "none").prompt_ids == -1)

    meta = collect_counting(tmp_path / "one", prompt="a counting world")
    assert meta["prompts"] == ["a counting world"] and np.all(load_dataset(tmp_path / "one").prompt_ids == 0)

    for key in ("level_name", "mission"):   # an info key (given at reset, held), a text attribute
        meta = collect_counting(tmp_path / key, prompt_key=key)
        data = load_dataset(tmp_path / key)
        assert set(meta["prompts"]) <= set(CountingEnv.LEVELS) and np.all(data.prompt_ids >= 0)
        for episode in np.unique(data.episode_ids):
            assert len(set(data.prompt_ids[data.episode_ids == episode])) == 1


def test_a_named_prompt_key_must_give_text(tmp_path):
    with pytest.raises(CollectError, match=r"--prompt-info-key 'levle': the env gives no text under that name "
                                           r"at reset \(got NoneType; its reset info has the keys "
                                           r"\['level_name', 'lives'\]"):
        collect_counting(tmp_path / "a", prompt_key="levle")
    with pytest.raises(CollectError, match="got int"):
        collect_counting(tmp_path / "b", prompt_key="lives")
    with pytest.raises(CollectError, match=r"\(--prompt\) or .* \(--prompt-info-key\), not both"):
        collect_counting(tmp_path / "c", prompt="x", prompt_key="level_name")


# ------------------------------------------------------------------------------------ namespaced env ids

def write_plugin(folder, module: str, register_call: str) -> None:
    (folder / f"{module}.py").write_text(
        "import gymnasium as gym\n"
        "from gymnasium.envs.classic_control import CartPoleEnv\n\n"
        f"def register_envs():\n    gym.register(id={register_call!r}, entry_point=CartPoleEnv)\n")


def test_a_namespace_registers_from_its_packages_entry_point(tmp_path, monkeypatch):
    """The "gymnasium.envs" entry point named as the namespace runs (inside the namespace), as Gymnasium < 1.0
    did on import."""
    write_plugin(tmp_path, "entry_point_plugin_for_test", "Tiny-v0")
    dist = tmp_path / "entry_point_plugin_for_test-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: entry-point-plugin-for-test\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[gymnasium.envs]\nEntryPointArcade = entry_point_plugin_for_test:register_envs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    meta = collect("EntryPointArcade/Tiny-v0", steps=3, out=tmp_path / "data", size=16, progress=False)
    assert meta["frames"] == 3 and "EntryPointArcade/Tiny-v0" in gym.registry


def test_a_known_namespace_imports_its_module_on_demand(tmp_path, monkeypatch):
    (tmp_path / "import_plugin_for_test.py").write_text(
        "import gymnasium as gym\nfrom gymnasium.envs.classic_control import CartPoleEnv\n\n"
        "gym.register(id='ImportArcade/Tiny-v0', entry_point=CartPoleEnv)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(collect_module.IMPORT_ON_DEMAND, "ImportArcade", ("import_plugin_for_test", "import-arcade"))
    assert collect("ImportArcade/Tiny-v0", steps=3, out=tmp_path / "data", size=16, progress=False)["frames"] == 3


def test_namespaced_ids_say_what_to_install_or_which_module_prefix_to_use(tmp_path, monkeypatch):
    monkeypatch.setitem(collect_module.IMPORT_ON_DEMAND, "MissingArcade", ("missing_arcade_module", "missing-arcade"))
    with pytest.raises(CollectError, match=r"'MissingArcade/Pong-v5' needs the package 'missing-arcade', which "
                                           r"registers the 'MissingArcade' envs when its module "
                                           r"'missing_arcade_module' is imported: pip install \"missing-arcade\""):
        collect("MissingArcade/Pong-v5", steps=3, out=tmp_path / "a", progress=False)
    with pytest.raises(CollectError, match=r"no installed package registers the namespace 'NoSuchPlugin' of "
                                           r"'NoSuchPlugin/Game-v0' .* --env MODULE:NoSuchPlugin/Game-v0"):
        collect("NoSuchPlugin/Game-v0", steps=3, out=tmp_path / "b", progress=False)
    with pytest.raises(CollectError, match=r"cannot create 'no_such_module_xyz:Game-v0': No module named "
                                           r"'no_such_module_xyz'.*install the package that provides it"):
        collect("no_such_module_xyz:Game-v0", steps=3, out=tmp_path / "c", progress=False)
    monkeypatch.setitem(collect_module.IMPORT_ON_DEMAND, "EmptyArcade", ("json", "json"))   # registers nothing
    with pytest.raises(CollectError, match="the plugin for the namespace 'EmptyArcade' loaded but registered no "
                                           "EmptyArcade/ env ids"):
        collect("EmptyArcade/Pong-v5", steps=3, out=tmp_path / "e", progress=False)
    if importlib.util.find_spec("ale_py") is None:   # the known plugin for ALE/... is ale-py
        with pytest.raises(CollectError, match=r"needs the package 'ale-py'.*pip install \"ale-py\""):
            collect("ALE/Pong-v5", steps=3, out=tmp_path / "d", progress=False)


def test_cli_flags_for_size_resize_fps_and_prompt(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["collect", "--env", "CartPole-v1", "--steps", "12", "--policy", "random", "--out", str(out),
                     "--size", "64x40", "--resize", "crop", "--frame-skip", "2", "--prompt", "a cart"]) == 0
    printed = capsys.readouterr().out
    assert "resize 600x400 -> 64x40 by crop: scaled to 64x43 (aspect kept), 3 rows cut" in printed
    assert "fps 25 (the env's render_fps 50 / frame skip 2)" in printed
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["width"], meta["height"], meta["resize"], meta["render_hw"]) == (64, 40, "crop", [400, 600])
    assert meta["fps"] == 25 and meta["prompts"] == ["a cart"]
    assert load_dataset(out).frames.shape == (12, 40, 64, 3)
