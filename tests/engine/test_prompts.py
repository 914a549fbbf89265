"""Prompts that work: trained prompts recorded in a model folder, the vocabulary, the unknown-word warning,
`streamvideo prompts` and the env's default prompt."""

import json
import warnings

import gymnasium as gym
import pytest
import torch

import streamvideo
from streamvideo.apps.cli import main
from streamvideo.engine.presets import MODEL_FILE, save_model_folder, tiny_random, trained_prompts
from streamvideo.envs.registration import ENV_ID, register_envs
from streamvideo.envs.stream_env import StreamVideoEnv
from streamvideo.envs.vector_env import StreamVideoVectorEnv

PROMPTS = ["a red knight walking on snowy ground, warm palette", "a red knight walking on sandy desert"]
TEXT_SPEC = {"name": "hash", "dim": 32, "max_tokens": 16, "seed": 0}
register_envs()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny random model saved as a model folder that records the prompts it was 'trained' on."""
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    return save_model_folder(tmp_path_factory.mktemp("model"), model, codec, TEXT_SPEC, latent_hw, fps,
                             prompt=PROMPTS[0], prompts=PROMPTS)


@pytest.fixture()
def gen(folder):
    return streamvideo.load(folder, device="cpu")


def test_folder_records_the_prompts_and_the_generator_offers_them(folder, gen):
    assert json.loads((folder / MODEL_FILE).read_text())["prompts"] == PROMPTS
    assert trained_prompts(folder) == PROMPTS
    assert gen.example_prompts() == PROMPTS
    assert gen.vocabulary() == ["a", "desert", "ground", "knight", "on", "palette", "red", "sandy", "snowy",
                                "walking", "warm"]


def test_models_without_trained_prompts_have_no_vocabulary(tmp_path):
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    older = save_model_folder(tmp_path, model, codec, TEXT_SPEC, latent_hw, fps)
    for name in ("tiny-random", older):
        gen = streamvideo.load(name, device="cpu")
        assert gen.example_prompts() == [] and gen.vocabulary() == []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gen.reset(prompt="anything at all", seed=0)


def test_prompts_must_be_a_list_of_strings(tmp_path):
    model, codec, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    with pytest.raises(TypeError, match="prompts must be a list of str"):
        save_model_folder(tmp_path, model, codec, TEXT_SPEC, latent_hw, fps, prompts=PROMPTS[0])


def test_the_shipped_model_records_its_prompts_and_starts_from_the_first():
    meta = json.loads((streamvideo.engine.presets.PACKAGE_WEIGHTS / "default" / MODEL_FILE).read_text())
    assert meta["prompt"] == meta["prompts"][0] and len(meta["prompts"]) == 4
    assert trained_prompts("default") == meta["prompts"]


def test_unknown_words_are_named_once_per_prompt(gen):
    with pytest.warns(UserWarning) as caught:
        gen.reset(prompt="A blue knight, on snowy ground in fog!", seed=0)
        gen.set_prompt("A blue knight, on snowy ground in fog!")     # the same prompt: already warned
        gen.set_prompt("a red wizard")
    assert [str(w.message) for w in caught] == [
        "prompt words not in the model's vocabulary: 'blue', 'in', 'fog' "
        "(they do not steer this model; see gen.example_prompts())",
        "prompt words not in the model's vocabulary: 'wizard' "
        "(they do not steer this model; see gen.example_prompts())",
    ]
    assert caught[0].filename == __file__   # points at the caller, not into the generator


def test_known_words_in_any_case_and_punctuation_do_not_warn(gen):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.reset(prompt="Snowy ground; a RED knight walking!", seed=0)
        gen.set_prompt(PROMPTS[1])
        gen.reset()                                                   # the default prompt


def test_env_prompts_are_checked_too(folder):
    env = StreamVideoEnv(model=folder, device="cpu")
    with pytest.warns(UserWarning, match="'forest'"):
        env.reset(seed=0, options={"prompt": "a red knight in a forest"})
    with pytest.warns(UserWarning, match="'beach'"):
        env.unwrapped.set_prompt("a red knight on a beach")


def test_env_defaults_to_the_models_own_prompt(folder, gen):
    env = gym.make(ENV_ID, model=folder, device="cpu")
    assert env.unwrapped.prompt == gen.default_prompt == PROMPTS[0]
    assert env.reset(seed=0)[1]["prompt"] == PROMPTS[0]
    assert StreamVideoEnv(model=folder, device="cpu", prompt="").prompt == ""   # an explicit prompt is kept
    assert StreamVideoVectorEnv(2, model=folder, device="cpu").prompts == [PROMPTS[0]] * 2


def test_cli_lists_numbered_prompts_and_grouped_vocabulary(folder, capsys):
    assert main(["prompts", "--model", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{folder} was trained on 2 prompts:",
        f"  1. {PROMPTS[0]}",
        f"  2. {PROMPTS[1]}",
        "vocabulary (11 words):",
        "  every prompt: a red knight walking on",
        "  prompt 1:     snowy ground warm palette",
        "  prompt 2:     sandy desert",
    ]


def test_cli_check_names_unknown_words_and_sets_the_exit_status(folder, capsys):
    assert main(["prompts", "--model", str(folder), "--check", "a red knight on sandy desert"]) == 0
    assert "every word of 'a red knight on sandy desert' is in" in capsys.readouterr().out
    assert main(["prompts", "--model", str(folder), "--check", "a knight in a snowy forest"]) == 1
    assert capsys.readouterr().out == f"not in {folder}'s vocabulary: 'in', 'forest' (they do not steer it)\n"


def test_cli_without_a_vocabulary_or_a_model(capsys):
    assert main(["prompts", "--model", "tiny-random"]) == 0
    assert "tiny-random records no trained prompts" in capsys.readouterr().out
    assert main(["prompts", "--model", "tiny-random", "--check", "a red knight"]) == 1
    assert main(["prompts", "--model", "no/such/model"]) == 2
    assert "no model 'no/such/model'" in capsys.readouterr().err
