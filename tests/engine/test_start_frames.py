"""Start frames: real frames per trained prompt in a model folder (save, load, add to a folder, carried
through training), the generator's choice of them, and play and the envs starting streams from them."""

import numpy as np
import pygame
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence

import streamvideo
from streamvideo.apps.cli import main
from streamvideo.apps.play import PlaySession, key_event
from streamvideo.data.collect import collect, first_frames, load_dataset
from streamvideo.engine.presets import (
    START_FRAMES_FILE,
    save_model_folder,
    tiny_random,
    trained_prompts,
    trained_start_frames,
)
from streamvideo.envs.stream_env import StreamVideoEnv
from streamvideo.envs.vector_env import StreamVideoVectorEnv
from streamvideo.train.data import add_start_frames

TEXT_SPEC = {"name": "hash", "dim": 32, "max_tokens": 16, "seed": 0}
SIZE = 32
TINY_DIT = ["--heads", "2", "--head-dim", "8", "--layers", "1", "--ffn-dim", "16", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Six 10-frame episodes of two game themes (grassy meadow, sandy desert), each theme several times."""
    out = tmp_path_factory.mktemp("data") / "game"
    collect("StreamVideoGame-v0", steps=60, out=out, size=SIZE, seed=0, episode_steps=9,
            env_kwargs={"themes": [0, 1]}, progress=False)
    return out


def save_tiny(folder, prompts, start_frames=None):
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32, resolution=(SIZE, SIZE))
    return save_model_folder(folder, model, codec, TEXT_SPEC, latent_hw, fps, prompt=prompts[0], prompts=prompts,
                             start_frames=start_frames)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data):
    """A tiny random model 'trained' on the dataset's prompts, given start frames afterwards."""
    folder = save_tiny(tmp_path_factory.mktemp("model"), load_dataset(data).prompts)
    return add_start_frames(folder, data)


def random_frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------------------------ model folders

def test_start_frames_round_trip_through_the_folder_and_load(tmp_path):
    prompts = ["a red knight on snowy ground", "a red knight on sandy desert"]
    frames = random_frames((2, 3, SIZE, SIZE, 3))
    folder = save_tiny(tmp_path, prompts, frames)
    with np.load(folder / START_FRAMES_FILE) as stored:
        assert stored.files == ["frames"] and np.array_equal(stored["frames"], frames)
    assert np.array_equal(trained_start_frames(folder), frames)
    assert np.array_equal(streamvideo.load(folder, device="cpu").start_frames, frames)
    # re-saved without them, the folder holds none (never another run's frames)
    save_tiny(tmp_path, prompts)
    assert trained_start_frames(tmp_path) is None and streamvideo.load(tmp_path, device="cpu").start_frames is None
    assert trained_start_frames("tiny-random") is None


def test_start_frames_must_match_the_prompts_and_the_resolution(tmp_path):
    prompts = ["a red knight on snowy ground", "a red knight on sandy desert"]
    expected = r"start_frames must be uint8 \[2, T, 32, 32, 3\] \(one clip per trained prompt\), got "
    for bad in (random_frames((1, 3, SIZE, SIZE, 3)), random_frames((2, 3, 64, 64, 3)),
                random_frames((2, 3, SIZE, SIZE, 3)).astype(np.float32), random_frames((2, SIZE, SIZE, 3))):
        with pytest.raises(ValueError, match=expected + f"{bad.dtype} \\{list(bad.shape)}"):
            save_tiny(tmp_path, prompts, bad)
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32, resolution=(SIZE, SIZE))
    with pytest.raises(ValueError, match="start_frames need prompts="):
        save_model_folder(tmp_path, model, codec, TEXT_SPEC, latent_hw, fps,
                          start_frames=random_frames((2, 3, SIZE, SIZE, 3)))


def test_start_frames_for_an_exact_a_nearest_and_an_unrelated_prompt(tmp_path):
    prompts = ["a red knight on snowy ground", "a red knight on sandy desert", "a blue robot on sandy desert"]
    frames = random_frames((3, 3, SIZE, SIZE, 3))
    gen = streamvideo.load(save_tiny(tmp_path, prompts, frames), device="cpu")
    assert np.array_equal(gen.start_frames_for(prompts[1]), frames[1])
    assert np.array_equal(gen.start_frames_for("Sandy desert, a red knight!"), frames[1])   # 5 words shared
    assert np.array_equal(gen.start_frames_for("a knight on the sand"), frames[0])          # a tie: the first
    assert np.array_equal(gen.start_frames_for("robot"), frames[2])
    assert gen.start_frames_for("purple fog") is None
    assert streamvideo.load("tiny-random", device="cpu").start_frames_for("a random world") is None


def test_start_frames_reordered_for_another_prompt_order(folder):
    prompts = trained_prompts(folder)
    frames = trained_start_frames(folder)
    assert np.array_equal(trained_start_frames(folder, prompts[::-1]), frames[::-1])
    with pytest.warns(UserWarning, match="has no start frames for prompts \\['purple fog'\\]; giving none"):
        assert trained_start_frames(folder, [prompts[0], "purple fog"]) is None


# ------------------------------------------------------------------------------------ from a dataset

def test_first_frames_are_the_start_of_the_first_episode_of_each_prompt(data, folder):
    dataset = load_dataset(data)
    starts = np.flatnonzero(dataset.first)
    episode_prompts = [dataset.prompt_at(s) for s in starts]
    assert len(dataset.prompts) == 2 and all(episode_prompts.count(p) >= 2 for p in dataset.prompts)
    clips = first_frames(data, dataset.prompts[::-1], frames=4)
    assert clips.shape == (2, 4, SIZE, SIZE, 3) and clips.dtype == np.uint8
    for prompt, clip in zip(dataset.prompts[::-1], clips):
        start = starts[episode_prompts.index(prompt)]
        assert np.array_equal(clip, dataset.frames[start:start + 4])
    # add_start_frames gave the folder one chunk (3 frames) of each of its prompts
    assert np.array_equal(trained_start_frames(folder), first_frames(data, trained_prompts(folder), frames=3))


def test_first_frames_name_a_prompt_without_an_episode(data):
    with pytest.raises(ValueError, match="has no episode of at least 3 frames with prompt 'purple fog'"):
        first_frames(data, ["purple fog"])
    with pytest.raises(ValueError, match="has no episode of at least 11 frames with prompt "):
        first_frames(data, load_dataset(data).prompts, frames=11)


def test_training_records_start_frames_in_the_teacher_and_carries_them_on(tmp_path, data):
    def train(stage, out, *extra):
        assert main(["train", stage, "--out", str(tmp_path / out), *map(str, extra)]) == 0
        return tmp_path / out / "model"

    codec = tmp_path / "codec"
    train("codec", "codec", "--kind", "pca", "--data", data, "--latent-channels", 16, "--pca-frames", 60)
    teacher = train("teacher", "teacher", "--data", data, "--codec", codec, "--steps", 1, "--batch-size", 1,
                    "--clip-chunks", 2, "--episode-chunks", 2, *TINY_DIT)
    frames = trained_start_frames(teacher)
    assert np.array_equal(frames, first_frames(data, trained_prompts(teacher), frames=3))
    pairs = tmp_path / "pairs" / "pairs.pt"
    train("ode-pairs", "pairs", "--data", data, "--codec", codec, "--teacher", teacher, "--clip-chunks", 2,
          "--pairs", 2, "--batch-size", 2, "--sample-steps", 2, "--threads", 1)
    student = train("student", "student", "--teacher", teacher, "--pairs", pairs, "--steps", 1, "--batch-size", 1,
                    "--threads", 1)
    distilled = train("distill", "distill", "--student", student, "--teacher", teacher, "--pairs", pairs,
                      "--steps", 1, "--batch-size", 1, "--critic-steps", 1, "--threads", 1)
    for model in (student, distilled):
        assert trained_prompts(model) == trained_prompts(teacher)
        assert np.array_equal(trained_start_frames(model), frames)


# ------------------------------------------------------------------------------------ envs and play

def test_env_reset_starts_from_the_prompts_start_frames(folder):
    gen = streamvideo.load(folder, device="cpu")
    prompt = trained_prompts(folder)[1]
    env = StreamVideoEnv(model=gen, prompt=prompt)
    started, info = env.reset(seed=3)
    explicit, explicit_info = env.reset(seed=3, options={"context_frames": gen.start_frames_for(prompt)})
    assert np.array_equal(started, explicit) and data_equivalence(info, explicit_info)
    assert info["chunk"] == 1   # the first generated chunk, after one chunk of start frames
    other, _ = env.reset(seed=3, options={"context_frames": trained_start_frames(folder)[0]})
    assert not np.array_equal(started, other)


def test_env_start_frames_false_starts_from_the_prompt_alone(folder):
    gen = streamvideo.load(folder, device="cpu")
    off = StreamVideoEnv(model=gen, start_frames=False)
    plain, info = off.reset(seed=3)
    assert info["chunk"] == 0
    assert not np.array_equal(plain, StreamVideoEnv(model=gen).reset(seed=3)[0])


def test_vector_env_reset_starts_every_stream_from_its_prompts_start_frames(folder):
    prompts = trained_prompts(folder)
    gen = streamvideo.load(folder, device="cpu", batch_size=2)
    envs = StreamVideoVectorEnv(2, model=gen, prompt=prompts)
    started, infos = envs.reset(seed=5)
    context = np.stack([gen.start_frames_for(p) for p in prompts])
    explicit, _ = envs.reset(seed=5, options={"context_frames": context})
    assert np.array_equal(started, explicit) and list(infos["chunk"]) == [1, 1]
    off = StreamVideoVectorEnv(2, model=gen, prompt=prompts, start_frames=False)
    plain, infos = off.reset(seed=5)
    assert list(infos["chunk"]) == [0, 0] and not np.array_equal(plain, started)


def play(folder, frames, script=None, **kw):
    session = PlaySession(streamvideo.load(folder, device="cpu"), "tiny", seed=4, paced=False, **kw)
    return session.run(max_frames=frames, script=script)


def test_play_starts_and_resets_from_the_start_frames(folder):
    prompt = trained_prompts(folder)[1]
    summary = play(folder, 18, script={6: [key_event(pygame.KEYDOWN, pygame.K_r)]}, prompt=prompt)
    indices = [chunk.index for chunk in summary.chunks]
    assert indices[0] == 1 and 0 not in indices and indices.count(1) == 2   # started, and restarted, after them
    gen = streamvideo.load(folder, device="cpu")
    gen.reset(prompt=prompt, seed=4, context_frames=gen.start_frames_for(prompt))
    assert np.array_equal(summary.chunks[0].frames, gen.step(gen.action_spec.noop()).frames)
    assert [chunk.index for chunk in play(folder, 6, start_frames=False).chunks] == [0, 1]


@pytest.mark.filterwarnings("ignore:prompt words not in the model's vocabulary")  # the scripted prompt's
def test_headless_play_cli_with_and_without_start_frames(folder, capsys):
    start_line = "  start       from the model's 3 real start frames for the prompt"
    for flag, used in (([], True), (["--no-start-frames"], False)):
        args = ["play", "--headless", "--frames", "12", "--model", str(folder), "--device", "cpu", *flag]
        assert main(args) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"played {folder} (32x32, diagonal, cpu): 12 frames")
        assert (start_line in lines) == used
