"""Stable-Baselines3 on the world model: check_env, the batched SB3VecEnv adapter and a short PPO run."""

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from streamvideo.envs.registration import ENV_ID, register_envs
from streamvideo.envs.stream_env import StreamVideoEnv
from streamvideo.envs.vector_env import StreamVideoVectorEnv

try:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.vec_env import VecMonitor

    from streamvideo.envs.sb3 import SB3VecEnv
except ImportError:  # without the rl extra, only the ImportError test runs
    PPO = None

MODEL = "tiny-random"
needs_sb3 = pytest.mark.skipif(PPO is None, reason="needs the rl extra: pip install 'streamvideo[rl]'")
register_envs()


def venv_of(num_envs=2, **options) -> "SB3VecEnv":
    return SB3VecEnv(StreamVideoVectorEnv(num_envs, model=MODEL, device="cpu", **options))


def test_importing_the_adapter_without_sb3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.vec_env", None)  # None: ImportError on import
    monkeypatch.delitem(sys.modules, "streamvideo.envs.sb3", raising=False)
    with pytest.raises(ImportError, match=r"^streamvideo.envs.sb3 needs Stable-Baselines3: "
                                          r"pip install 'streamvideo\[rl\]'$"):
        importlib.import_module("streamvideo.envs.sb3")


@needs_sb3
@pytest.mark.parametrize("observation", ["frame", "stacked"])
def test_sb3_check_env_passes_without_warnings_on_image_observations(observation):
    env = StreamVideoEnv(model=MODEL, device="cpu", observation=observation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught] == []


@needs_sb3
def test_ppo_learns_on_the_batched_adapter():
    """A few hundred PPO steps: every step is one batched pass for both envs; rollouts have SB3's shapes."""
    envs = gym.make_vec(ENV_ID, num_envs=2, model=MODEL, device="cpu", max_episode_steps=8,
                        reward_fn=lambda frames, action, info: float(action == 0))
    generator = envs.unwrapped.generator
    passes = []
    step = generator.step
    generator.step = lambda actions: passes.append(actions) or step(actions)
    model = PPO("CnnPolicy", VecMonitor(SB3VecEnv(envs)), n_steps=32, batch_size=32, n_epochs=2, seed=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    assert len(passes) == 1 + 256 // 2 + 256 // 2 // 8  # first reset, steps, one restart per 8 steps
    assert all(len(actions) == 2 for actions in passes)  # every pass steps both envs
    buffer = model.rollout_buffer  # the last rollout, flattened for the updates: n_steps * num_envs samples
    assert buffer.observations.shape == (32 * 2, 3, 64, 64)  # VecTransposeImage: channels first for the CNN
    assert buffer.actions.shape == (32 * 2, 1) and buffer.rewards.shape == (32, 2)
    episodes = list(model.ep_info_buffer)  # VecMonitor's: 8 steps each, reward = no-op steps
    assert len(episodes) == 256 // 8 and all(e["l"] == 8 and e["r"] in range(9) for e in episodes)


@needs_sb3
def test_adapter_autoreset_gives_sb3_the_new_episode_and_the_terminal_observation():
    venv = venv_of(max_episode_steps=2)
    obs = venv.reset()
    assert obs.shape == (2, 64, 64, 3) and [info["chunk"] for info in venv.reset_infos] == [0, 0]
    obs, rewards, dones, infos = venv.step(np.array([1, 2]))
    assert rewards.dtype == np.float32 and not dones.any()
    assert [info["TimeLimit.truncated"] for info in infos] == [False, False]
    last = [info["frames"][-1] for info in infos]
    obs, _, dones, infos = venv.step(np.array([3, 4]))
    assert dones.tolist() == [True, True] and [info["chunk"] for info in infos] == [2, 2]
    assert [info["TimeLimit.truncated"] for info in infos] == [True, True]
    for i, info in enumerate(infos):
        assert np.array_equal(info["terminal_observation"], info["frames"][-1])
        assert np.array_equal(obs[i], venv.reset_infos[i]["frames"][-1])  # the new episode's first frame
        assert not np.array_equal(info["terminal_observation"], last[i])
    assert [info["chunk"] for info in venv.reset_infos] == [0, 0]
    _, _, dones, infos = venv.step(np.array([0, 0]))
    assert not dones.any() and [info["chunk"] for info in infos] == [1, 1]


@needs_sb3
def test_a_terminated_stream_restarts_all_streams_the_others_truncated():
    venv = venv_of(terminate_fn=lambda frames, action, info: action == 5)
    venv.reset()
    _, _, dones, infos = venv.step(np.array([5, 0]))
    assert dones.tolist() == [True, True]
    assert [info["TimeLimit.truncated"] for info in infos] == [False, True]  # stream 1 was cut short
    assert all("terminal_observation" in info for info in infos)
    assert [info["chunk"] for info in venv.reset_infos] == [0, 0]


@needs_sb3
def test_seed_and_options_apply_to_the_next_reset():
    venv = venv_of()
    venv.seed(3)
    first = venv.reset()
    venv.seed(3)
    venv.set_options({"prompt": ["sandy desert", "snowy ground"]})
    again = venv.reset()
    assert [info["prompt"] for info in venv.reset_infos] == ["sandy desert", "snowy ground"]
    venv.set_options({"prompt": "a random world"})
    venv.seed(3)
    assert np.array_equal(venv.reset(), first) and not np.array_equal(again, first)
    with pytest.raises(TypeError, match="one dict for all streams, got list"):
        venv.set_options([{}, {}])


@needs_sb3
def test_attributes_and_methods_reach_the_shared_batched_env():
    venv = venv_of(render_mode="rgb_array")
    assert venv.render_mode == "rgb_array" and venv.get_attr("num_envs") == [2, 2]
    venv.reset()
    assert venv.render().shape == (128, 64, 3)  # SB3 tiles the envs' latest frames
    venv.env_method("set_prompt", "sandy desert")
    assert venv.get_attr("prompts", indices=[1]) == [["sandy desert", "sandy desert"]]
    with pytest.raises(ValueError, match=r"set_attr\('prompts'\) acts on the batched env, shared by all 2 streams"):
        venv.set_attr("prompts", ["x"], indices=[0])


@needs_sb3
def test_adapter_takes_the_batched_env_in_gymnasium_vector_wrappers():
    envs = gym.wrappers.vector.GrayscaleObservation(StreamVideoVectorEnv(2, model=MODEL, device="cpu"), keep_dim=True)
    venv = SB3VecEnv(envs)
    assert venv.observation_space.shape == (64, 64, 1) and venv.reset().shape == (2, 64, 64, 1)
    assert venv.step(np.array([0, 1]))[0].shape == (2, 64, 64, 1)
    with pytest.raises(ValueError, match="next-step"):
        SB3VecEnv(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync",
                               vector_kwargs={"autoreset_mode": "SameStep"}))


@needs_sb3
def test_the_ppo_example_runs_on_tiny_random():
    example = Path(__file__).parents[2] / "examples" / "ppo_world_model.py"
    args = ["--model", MODEL, "--envs", "2", "--episode-steps", "4", "--n-steps", "16", "--timesteps", "32"]
    result = subprocess.run([sys.executable, str(example), *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    labels = [line.split(" (")[0].split(":")[0] for line in lines]
    assert labels == ["before training", "before training", "training", "after training"]
    assert all("env steps/s" in line for line in lines)
