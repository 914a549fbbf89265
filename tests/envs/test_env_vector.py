"""Vector envs: Gymnasium's sync / async around StreamVideoEnv, and the batched vector_entry_point env."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import streamvideo
import streamvideo.engine.threads
from streamvideo.envs.registration import ENV_ID, register_envs
from streamvideo.envs.stream_env import StreamVideoEnv
from streamvideo.envs.vector_env import StreamVideoVectorEnv

MODEL = "tiny-random"
OBS_SHAPE = (64, 64, 3)  # "frame", the default: each chunk's last frame
register_envs()


def chunk_indices_over_steps(envs, steps: int, actions=None):
    """Per step: (chunk index per stream, truncated, rewards), after a seeded reset."""
    envs.reset(seed=0)
    history = []
    for _ in range(steps):
        frames, rewards, terminated, truncated, infos = envs.step(actions if actions is not None
                                                                 else envs.action_space.sample())
        assert frames.shape == (envs.num_envs, *OBS_SHAPE) and frames.dtype == np.uint8
        history.append((infos["chunk"].tolist(), truncated.tolist(), rewards.tolist()))
    return history


@pytest.mark.parametrize("mode", ["sync", "async", "vector_entry_point"])
def test_vector_envs_step_and_autoreset_on_the_next_step(mode):
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, model=MODEL, device="cpu",
                        max_episode_steps=2, reward_fn=lambda frames, action, info: 1.0)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.single_observation_space.shape == OBS_SHAPE
    history = chunk_indices_over_steps(envs, 4)
    envs.close()
    assert history == [
        ([1, 1], [False, False], [1.0, 1.0]),
        ([2, 2], [True, True], [1.0, 1.0]),
        ([0, 0], [False, False], [0.0, 0.0]),   # next-step autoreset: the first chunk of a new episode
        ([1, 1], [False, False], [1.0, 1.0]),
    ]


def test_default_vectorization_is_the_batched_env():
    envs = gym.make_vec(ENV_ID, num_envs=2, model=MODEL, device="cpu")
    assert isinstance(envs.unwrapped, StreamVideoVectorEnv)
    assert envs.unwrapped.generator.batch_size == 2


def test_batched_streams_restart_independently():
    """Stream 0 ends (terminate_fn on action 5) while stream 1 keeps going on its own KV cache."""
    envs = StreamVideoVectorEnv(3, model=MODEL, device="cpu", terminate_fn=lambda frames, action, info: action == 5)
    envs.reset(seed=[10, 11, 12])
    steps = [envs.step(actions) for actions in ([0, 0, 0], [5, 0, 0], [1, 1, 1], [1, 1, 1])]
    chunks = [step[4]["chunk"].tolist() for step in steps]
    terminated = [step[2].tolist() for step in steps]
    assert terminated == [[False] * 3, [True, False, False], [False] * 3, [False] * 3]
    assert chunks == [[1, 1, 1], [2, 2, 2], [0, 3, 3], [1, 4, 4]]


def test_batched_streams_have_their_own_seed_and_prompt():
    envs = StreamVideoVectorEnv(3, model=MODEL, device="cpu", prompt=["a grassy meadow", "sandy desert", "x"])
    frames, infos = envs.reset(seed=[5, 5, 6])
    assert infos["prompt"].tolist() == ["a grassy meadow", "sandy desert", "x"]
    assert not np.array_equal(frames[0], frames[1])  # same seed, different prompt
    frames, infos = envs.reset(seed=[5, 5, 6], options={"prompt": "sandy desert"})
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    envs.set_prompt("snowy ground", index=[2])
    _, _, _, _, infos = envs.step([0, 0, 0])
    assert infos["prompt"].tolist() == ["sandy desert", "sandy desert", "snowy ground"]


def test_batched_stream_matches_a_single_env_with_the_same_seed():
    actions = [[1, 2], [4, 4], [5, 0]]
    envs = StreamVideoVectorEnv(2, model=MODEL, device="cpu", prompt="a grassy meadow", observation="chunk")
    batched = [envs.reset(seed=[3, 4])[0]] + [envs.step(a)[0] for a in actions]
    single = StreamVideoEnv(model=MODEL, device="cpu", prompt="a grassy meadow", observation="chunk")
    alone = [single.reset(seed=4)[0]] + [single.step(a[1])[0] for a in actions]
    for b, s in zip(batched, alone):
        assert np.abs(b[1].astype(int) - s.astype(int)).max() <= 2  # float batching noise only


def test_batched_seeding_is_reproducible():
    envs = StreamVideoVectorEnv(2, model=MODEL, device="cpu", max_episode_steps=1)
    runs = []
    for _ in range(2):
        frames = [envs.reset(seed=9)[0]] + [envs.step([1, 3])[0] for _ in range(3)]  # crosses an autoreset
        runs.append(np.stack(frames))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0][:, 0], runs[0][:, 1])  # seed 9 and seed 10


def test_single_stream_batched_env():
    envs = StreamVideoVectorEnv(1, model=MODEL, device="cpu")
    frames, infos = envs.reset(seed=0)
    assert frames.shape == (1, *OBS_SHAPE) and infos["chunk"].tolist() == [0]
    assert envs.step([2])[0].shape == (1, *OBS_SHAPE)


def test_batched_env_errors_name_what_was_expected():
    envs = StreamVideoVectorEnv(2, model=MODEL, device="cpu", render_mode="rgb_array")
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        envs.step([0, 0])
    envs.reset(seed=0)
    assert [f.shape for f in envs.render()] == [(64, 64, 3)] * 2
    with pytest.raises(ValueError, match=r"expected one action per stream \(2 in all\)"):
        envs.step([0, 0, 0])
    with pytest.raises(ValueError, match=r"action 9 is outside the model's action space Discrete\(6\)"):
        envs.step([0, 9])
    with pytest.raises(ValueError, match="no 'reset_mask'"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(ValueError, match="a list of 2 seeds, got 3"):
        envs.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="renders only 'rgb_array'"):
        StreamVideoVectorEnv(2, model=MODEL, device="cpu", render_mode="human")
    with pytest.raises(ValueError, match="batch_size=1, this env needs batch_size=2"):
        StreamVideoVectorEnv(2, model=streamvideo.load(MODEL, device="cpu"))
    with pytest.raises(ValueError, match=r"^observation must be one of \['frame', 'stacked', 'chunk'\], got None$"):
        StreamVideoVectorEnv(2, model=MODEL, device="cpu", observation=None)


def test_batched_env_keeps_no_bad_prompt_and_refuses_steps_once_closed():
    with pytest.raises(TypeError, match=r"^prompt must be a str or a list of 2 str, got int: 7$"):
        StreamVideoVectorEnv(2, model=MODEL, device="cpu", prompt=7)
    envs = StreamVideoVectorEnv(2, model=MODEL, device="cpu", prompt="a grassy meadow")
    with pytest.raises(TypeError, match=r"^prompt must be a str, got NoneType: None$"):
        envs.reset(seed=0, options={"prompt": ["sandy desert", None]})
    assert envs.reset(seed=0)[1]["prompt"].tolist() == ["a grassy meadow"] * 2
    envs.close()
    with pytest.raises(gym.error.ClosedEnvironmentError, match=r"StreamVideoVectorEnv.step\(\) called after "
                                                               r"close\(\): the env is closed"):
        envs.step([0, 0])


def test_batched_observation_modes_show_the_same_chunks():
    runs = {}
    for observation in ("frame", "stacked", "chunk"):
        envs = StreamVideoVectorEnv(2, model=MODEL, device="cpu", observation=observation)
        envs.reset(seed=[1, 2])
        obs, _, _, _, infos = envs.step([3, 4])
        assert obs.shape == envs.observation_space.shape and envs.observation_space.contains(obs)
        runs[observation] = obs, infos["frames"]
    chunks = runs["chunk"][0]
    assert chunks.shape == (2, 3, 64, 64, 3)
    assert all(np.array_equal(frames, chunks) for _, frames in runs.values())
    assert np.array_equal(runs["frame"][0], chunks[:, -1])
    assert np.array_equal(runs["stacked"][0][..., 3:6], chunks[:, 1])


def test_gymnasium_vector_wrappers_apply_to_the_batched_env():
    """make_vec refuses single-env `wrappers=` with vector_entry_point; gym.wrappers.vector.* is the way."""
    envs = gym.make_vec(ENV_ID, num_envs=2, model=MODEL, device="cpu", max_episode_steps=2)
    envs = gym.wrappers.vector.GrayscaleObservation(envs, keep_dim=True)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    assert envs.single_observation_space.shape == (64, 64, 1)
    obs, _ = envs.reset(seed=0)
    infos = [envs.step([0, 1])[4] for _ in range(2)][-1]
    assert obs.shape == (2, 64, 64, 1) and infos["episode"]["l"].tolist() == [2, 2]


@pytest.fixture
def torch_threads():
    """Tests that set torch's thread count give it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.timeout(120)  # a forked worker given more threads hangs in its first torch op
def test_threads_default_to_all_cores_but_one_and_forked_workers_keep_one(torch_threads, monkeypatch):
    monkeypatch.setattr(streamvideo.engine.threads, "default_threads", lambda: 2)
    assert StreamVideoEnv(model=MODEL, device="cpu").threads == 2 == torch.get_num_threads()
    assert StreamVideoEnv(model=MODEL, device="cpu", threads=1).threads == 1 == torch.get_num_threads()
    assert StreamVideoVectorEnv(2, model=MODEL, device="cpu").threads == 2 == torch.get_num_threads()
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        StreamVideoVectorEnv(2, model=MODEL, device="cpu", threads=0)
    # forked workers keep one thread each (N processes on N cores), unless threads= says otherwise
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", model=MODEL, device="cpu")
    assert envs.get_attr("threads") == (1, 1)
    envs.close()
