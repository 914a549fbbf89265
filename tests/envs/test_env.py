"""StreamVideoEnv: Gymnasium API, observation modes, determinism, clear errors, prompts, RecordVideo and
registration."""

import subprocess
import sys
import warnings

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import streamvideo
from streamvideo.envs.registration import ENV_ID, register_envs
from streamvideo.envs.stream_env import StreamVideoEnv

MODEL = "tiny-random"
register_envs()


@pytest.fixture(scope="module")
def generator():
    """One tiny model shared by the tests that pass a ready StreamGenerator."""
    return streamvideo.load(MODEL, device="cpu")


def rollout(env, seed, actions):
    frames, _ = env.reset(seed=seed)
    return [frames] + [env.step(a)[0] for a in actions]


def test_check_env_passes_without_warnings():
    env = gym.make(ENV_ID, model=MODEL, device="cpu", render_mode="rgb_array").unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=False)  # also re-makes the env in every other render mode
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)  # "frame", the default
    assert env.action_space == gym.spaces.Discrete(6)
    assert env.metadata["render_fps"] == env.generator.fps


@pytest.mark.parametrize("observation", ["stacked", "chunk"])
def test_check_env_passes_in_the_other_observation_modes(generator, observation):
    env = StreamVideoEnv(model=generator, observation=observation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)  # render does not depend on the mode: checked above


def test_observation_modes_show_the_same_chunk(generator):
    """frame: its last frame; stacked: its frames on channels; chunk: all of it. info["frames"] in every mode."""
    shapes = {"frame": (64, 64, 3), "stacked": (64, 64, 9), "chunk": (3, 64, 64, 3)}
    steps = {}
    for observation, shape in shapes.items():
        env = StreamVideoEnv(model=generator, observation=observation, render_mode="rgb_array")
        assert env.observation_space.shape == shape
        env.reset(seed=4)
        obs, _, _, _, info = env.step(2)
        assert obs.shape == shape and obs.dtype == np.uint8 and env.observation_space.contains(obs)
        assert np.array_equal(env.render(), info["frames"][-1])  # render: the latest frame in every mode
        steps[observation] = obs, info["frames"]
    chunk = steps["chunk"][0]
    assert all(np.array_equal(frames, chunk) for _, frames in steps.values())  # same seed, same chunk
    assert np.array_equal(steps["frame"][0], chunk[-1])
    stacked = steps["stacked"][0]
    assert all(np.array_equal(stacked[..., 3 * t:3 * t + 3], chunk[t]) for t in range(3))


def test_same_seed_and_actions_give_same_frames(generator):
    env = StreamVideoEnv(model=generator)
    actions = [1, 4, 4, 5, 0, 2]
    first, again = rollout(env, 7, actions), rollout(env, 7, actions)
    other_seed = rollout(env, 8, actions)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other_seed))


def test_unseeded_reset_continues_the_seeded_random_stream(generator):
    env = StreamVideoEnv(model=generator)
    env.reset(seed=3)
    after_seeded = env.reset()[0]
    env.reset(seed=3)
    assert np.array_equal(env.reset()[0], after_seeded)


@pytest.mark.parametrize("action", [6, -1, 2.5, [1, 2], "left"])
def test_invalid_action_names_the_action_space(generator, action):
    env = StreamVideoEnv(model=generator)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the model's action space Discrete\(6\)"):
        env.step(action)


def test_misuse_gives_clear_errors(generator):
    env = StreamVideoEnv(model=generator)
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        env.step(0)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['promt'\]; expected any of"):
        env.reset(options={"promt": "typo"})
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        StreamVideoEnv(model=generator, render_mode="rgb")
    with pytest.raises(ValueError, match=r"device cannot be applied to a ready StreamGenerator"):
        StreamVideoEnv(model=generator, device="cpu")
    with pytest.raises(TypeError, match="model must be a preset name, a checkpoint path or a StreamGenerator"):
        StreamVideoEnv(model=42)
    with pytest.raises(ValueError, match="no model 'no-such-model'"):
        StreamVideoEnv(model="no-such-model")
    with pytest.raises(ValueError, match=r"^observation must be one of \['frame', 'stacked', 'chunk'\], "
                                         r"got 'frames'$"):
        StreamVideoEnv(model=generator, observation="frames")


def test_bad_prompt_in_reset_options_is_not_kept(generator):
    env = StreamVideoEnv(model=generator, prompt="a grassy meadow")
    with pytest.raises(TypeError, match=r"^prompt must be a str, got int: 5$"):
        env.reset(seed=0, options={"prompt": 5})
    assert env.reset(seed=0)[1]["prompt"] == "a grassy meadow"
    assert env.reset(seed=0, options={"prompt": "sandy desert"})[1]["prompt"] == "sandy desert"
    with pytest.raises(TypeError, match=r"^prompt must be a str, got list: \['x'\]$"):
        env.unwrapped.set_prompt(["x"])
    assert env.step(0)[4]["prompt"] == "sandy desert"


def test_bad_prompt_fails_at_construction():
    with pytest.raises(TypeError, match=r"^prompt must be a str, got int: 123 ") as error:  # gym.make adds its
        gym.make(ENV_ID, model=MODEL, device="cpu", prompt=123)                          # env id and kwargs
    assert "\n" not in str(error.value)


def test_step_after_close_says_the_env_is_closed(generator):
    env = StreamVideoEnv(model=generator)
    env.reset(seed=0)
    env.close()
    with pytest.raises(gym.error.ClosedEnvironmentError, match=r"^StreamVideoEnv.step\(\) called after close\(\): "
                                                               r"the env is closed; make a new one$"):
        env.step(0)
    with pytest.raises(gym.error.ClosedEnvironmentError, match="the env is closed"):
        env.reset(seed=0)
    env.close()  # closing twice is fine


def test_prompts_from_reset_options_and_mid_episode(generator):
    env = StreamVideoEnv(model=generator, prompt="a grassy meadow")
    _, info = env.reset(seed=1)
    assert set(info) == {"frames", "chunk", "nfe", "prompt"}
    assert info["chunk"] == 0 and info["nfe"] >= 1 and info["prompt"] == "a grassy meadow"
    _, info = env.reset(seed=1, options={"prompt": "sandy desert"})
    assert info["prompt"] == "sandy desert"
    kept = [env.step(2)[0] for _ in range(3)]

    env.reset(seed=1, options={"prompt": "sandy desert"})
    env.step(2)
    env.unwrapped.set_prompt("snowy ground under falling snow")
    frames, _, _, _, info = env.step(2)
    assert info["prompt"] == "snowy ground under falling snow" and info["chunk"] == 2
    assert not np.array_equal(frames, kept[1])  # the world changed at the next chunk
    assert env.reset(seed=1)[1]["prompt"] == "snowy ground under falling snow"  # kept across resets


def test_timing_info_adds_generation_seconds(generator):
    env = StreamVideoEnv(model=generator, timing_info=True)
    _, info = env.reset(seed=0)
    assert set(info) == {"frames", "chunk", "nfe", "prompt", "seconds"} and 0 < info["seconds"] < 60


def test_context_frames_start_the_stream(generator):
    env = StreamVideoEnv(model=generator)
    plain, _ = env.reset(seed=2)
    context = np.full((6, 64, 64, 3), 200, np.uint8)
    continued, _ = env.reset(seed=2, options={"context_frames": context})
    assert continued.shape == plain.shape and not np.array_equal(continued, plain)


def test_reward_and_terminate_functions_see_frames_action_and_info(generator):
    seen = []

    def brightness(frames, action, info):
        seen.append((frames.shape, action, info["chunk"], "frames" in info))
        return frames.mean() / 255

    env = StreamVideoEnv(model=generator, reward_fn=brightness,
                         terminate_fn=lambda frames, action, info: action == 5)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(3)
    assert reward == pytest.approx(info["frames"].mean() / 255) and not terminated and not truncated
    assert env.step(5)[2] is True
    assert seen == [((3, 64, 64, 3), 3, 1, False), ((3, 64, 64, 3), 5, 2, False)]  # the chunk, whatever the mode


def test_max_episode_steps_truncates_through_registration():
    env = gym.make(ENV_ID, model=MODEL, device="cpu", max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(3)] == [False, False, True]


def test_record_video_writes_the_latest_frame_of_each_step(tmp_path):
    env = gym.make(ENV_ID, model=MODEL, device="cpu", render_mode="rgb_array", max_episode_steps=5)
    env = gym.wrappers.RecordVideo(env, str(tmp_path / "videos"), name_prefix="run", disable_logger=True)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    recorded = list(env.recorded_frames)
    env.close()
    assert len(recorded) == 6 and recorded[0].shape == (64, 64, 3)  # reset + 5 steps
    video = imageio.mimread(tmp_path / "videos" / "run-episode-0.mp4")
    assert len(video) in (5, 6) and video[0].shape == (64, 64, 3)  # moviepy 2.1 drops the last frame


def test_human_render_shows_chunks_in_a_pygame_window(generator):
    env = StreamVideoEnv(model=generator, render_mode="human")
    env.reset(seed=0)
    env.step(1)
    assert env._window.screen.get_size() == (512, 512)
    env.close()
    assert env._window is None


@pytest.mark.parametrize("code", [
    "import gymnasium as gym, streamvideo; gym.make('StreamVideo-v0', model='tiny-random', device='cpu')",
    "import gymnasium as gym; gym.make('streamvideo:StreamVideo-v0', model='tiny-random', device='cpu')",
])
def test_registered_when_streamvideo_is_imported(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
