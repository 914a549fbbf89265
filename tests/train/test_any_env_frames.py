"""Any Gymnasium env becomes a world model: CartPole (600x400 renders, 50 fps) collected at a non-square 64x40
by pad and by crop, a pca codec and a tiny teacher trained on it, and the model folder played at that frame
size and the env's fps by gym.make and play; with no prompt (pad) and with one for the whole data set (crop)."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

import streamvideo
from streamvideo.apps.cli import main
from streamvideo.apps.play import PlaySession
from streamvideo.data.collect import load_dataset

SIZE = "64x40"          # W x H: multiples of the pca codec's 8-pixel patch, of another aspect (1.6) than CartPole's
PROMPTS = {"pad": None, "crop": "a cart balancing a pole"}
TINY_TEACHER = ["--steps", 2, "--batch-size", 2, "--clip-chunks", 2, "--episode-chunks", 2, "--heads", 2,
                "--head-dim", 8, "--layers", 1, "--ffn-dim", 16, "--threads", 1, "--save-every", 2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args) -> None:
    assert main([*map(str, args)]) == 0


@pytest.fixture(scope="module", params=list(PROMPTS))
def trained(request, tmp_path_factory):
    """(resize, dataset folder, model folder): collect -> train codec --kind pca -> train teacher."""
    resize, root = request.param, tmp_path_factory.mktemp(request.param)
    prompt = ["--prompt", PROMPTS[resize]] if PROMPTS[resize] else []
    run("collect", "--env", "CartPole-v1", "--steps", 120, "--policy", "random", "--seed", 0, "--size", SIZE,
        "--resize", resize, "--out", root / "data", *prompt)
    run("train", "codec", "--kind", "pca", "--data", root / "data", "--out", root / "codec", "--latent-channels", 16,
        "--pca-frames", 100, "--threads", 1)
    run("train", "teacher", "--data", root / "data", "--codec", root / "codec", "--out", root / "teacher",
        *TINY_TEACHER)
    return resize, root / "data", root / "teacher" / "model"


def test_the_dataset_holds_non_square_frames_fitted_by_the_resize(trained):
    resize, data, _ = trained
    dataset = load_dataset(data)
    meta = dataset.meta
    assert (meta["width"], meta["height"], meta["resize"], meta["render_hw"]) == (64, 40, resize, [400, 600])
    assert meta["fps"] == 50 and dataset.frames.shape[1:] == (40, 64, 3)
    edge_columns = dataset.frames[:, :, [0, 1, -2, -1]]
    if resize == "pad":   # scaled to 60x40: two black columns either side
        assert np.all(edge_columns == 0) and dataset.frames[:, :, 2:-2].mean() > 200
    else:                 # scaled to 64x43, three rows cut: CartPole's white background reaches the sides
        assert edge_columns.mean() > 200


def test_the_model_folder_records_the_frame_size_fps_and_prompts(trained):
    resize, _, folder = trained
    meta = json.loads((folder / "streamvideo.json").read_text())
    assert (meta["width"], meta["height"], meta["latent_hw"], meta["fps"]) == (64, 40, [5, 8], 50)
    prompt = PROMPTS[resize] or ""      # no prompt in the data: trained on the empty prompt alone
    assert meta["prompts"] == [prompt] and meta["prompt"] == prompt


def test_gym_make_and_play_run_the_folder_at_its_frame_size_and_fps(trained):
    _, _, folder = trained
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no warning about unknown prompt words, a missing prompt or frames
        env = gym.make("StreamVideo-v0", model=str(folder), device="cpu")
        assert env.observation_space.shape == (40, 64, 3) and env.metadata["render_fps"] == 50
        observation, _ = env.reset(seed=0)
        assert observation.shape == (40, 64, 3)
        assert env.step(env.action_space.sample())[0].shape == (40, 64, 3)
        env.close()
        session = PlaySession(streamvideo.load(folder, device="cpu"), str(folder), paced=False)
        assert session.fps == 50    # play paces its display at the model's fps
        summary = session.run(max_frames=6)
    assert summary.frames_shown == 6 and summary.chunks[0].frames.shape[1:] == (40, 64, 3)


def test_training_refuses_a_frame_size_the_codec_cannot_patch(tmp_path, capsys):
    run("collect", "--env", "CartPole-v1", "--steps", 6, "--policy", "random", "--size", "60x40", "--out",
        tmp_path / "data")
    assert main(["train", "codec", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "codec")]) == 2
    assert (f"{tmp_path / 'data'} holds 60x40 frames, but the codec needs sides that are multiples of 8: collect "
            f"it again with --size 64x40, say") in capsys.readouterr().err
