"""User mistakes get one clear error: every file of a model folder is checked at load (missing, truncated,
corrupt, ill-fitting), and every subcommand answers a mistake in one line, `streamvideo CMD: ...`, exit 2,
while real bugs keep their tracebacks."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import streamvideo
from streamvideo.apps.cli import main
from streamvideo.engine.checkpoints import CheckpointError, UserError
from streamvideo.engine.codecs import PCACodec
from streamvideo.engine.model import CausalDiT
from streamvideo.engine.presets import load_parts, save_model_folder, tiny_random
from streamvideo.train.common import Run, RunArgs

PROMPTS = ["a grassy meadow", "a sandy desert"]
TEXT_SPEC = {"name": "hash", "dim": 32, "max_tokens": 16, "seed": 0}
EXPECTED_META = "expected a JSON object with 'model', 'codec', 'text', 'latent_hw', 'fps'"


def save_folder(folder, ffn_dim=None):
    """tiny-random's model with a PCA codec (so the folder has codec weights) and start frames: all four files."""
    model, _, _, latent_hw, fps, _ = tiny_random("cpu", torch.float32)
    if ffn_dim is not None:
        model = CausalDiT(model.config.with_overrides(ffn_dim=ffn_dim))
    return save_model_folder(folder, model, PCACodec(patch=4, channels=48), TEXT_SPEC, latent_hw, fps,
                             prompt=PROMPTS[0], prompts=PROMPTS, start_frames=np.zeros((2, 3, 64, 64, 3), np.uint8))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_folder(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture()
def folder(saved, tmp_path):
    """A fresh copy of the saved folder, for one test to break."""
    return shutil.copytree(saved, tmp_path / "model")


def load_error(folder) -> str:
    with pytest.raises(CheckpointError) as err:
        streamvideo.load(folder, device="cpu")
    return str(err.value)


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def edit_meta(folder, edit):
    meta = json.loads((folder / "streamvideo.json").read_text())
    edit(meta)
    (folder / "streamvideo.json").write_text(json.dumps(meta))


# ------------------------------------------------------------------------------------- model folders

def test_the_intact_folder_loads_and_steps(folder):
    assert streamvideo.load(folder, device="cpu").step().frames.shape == (3, 64, 64, 3)


def test_a_fresh_generator_steps_without_reset():
    """The constructor resets, so there is no un-reset generator to refuse."""
    chunk = streamvideo.load("tiny-random", device="cpu").step()
    assert chunk.index == 0 and chunk.frames.shape == (3, 64, 64, 3)


@pytest.mark.parametrize("name, what", [
    ("model.safetensors", "the model's weights for the architecture streamvideo.json describes"),
    ("codec.safetensors", "the weights of the 'pca' codec streamvideo.json names"),
])
def test_missing_weights_name_the_file(folder, name, what):
    (folder / name).unlink()
    assert load_error(folder) == f"{folder / name} is missing: expected {what}"


@pytest.mark.parametrize("name", ["model.safetensors", "codec.safetensors"])
def test_truncated_weights_name_the_file(folder, name):
    truncate(folder / name)
    message = load_error(folder)
    assert message.startswith(f"cannot read {folder / name}: ")
    assert message.endswith("; expected a safetensors state dict (is the file truncated?)")


def test_weights_of_another_architecture_name_the_keys_and_shapes(folder, tmp_path):
    other = save_folder(tmp_path / "other", ffn_dim=64)
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    assert load_error(folder) == (
        f"{folder / 'model.safetensors'} does not fit the CausalDiT: wrong shapes "
        "'blocks.0.ffn.net.0.proj.weight' [64, 64] instead of [128, 64], "
        "'blocks.0.ffn.net.0.proj.bias' [64] instead of [128], "
        "'blocks.0.ffn.net.2.weight' [64, 64] instead of [64, 128], "
        "'blocks.1.ffn.net.0.proj.weight' [64, 64] instead of [128, 64], "
        "'blocks.1.ffn.net.0.proj.bias' [64] instead of [128] and 1 more")


def test_missing_and_unexpected_keys_are_named(folder):
    state = load_file(str(folder / "model.safetensors"))
    state["proj_out.extra"] = state.pop("proj_out.weight")
    save_file(state, str(folder / "model.safetensors"))
    assert load_error(folder) == (f"{folder / 'model.safetensors'} does not fit the CausalDiT: "
                                  "missing keys 'proj_out.weight'; unexpected keys 'proj_out.extra'")


def test_codec_weights_that_do_not_fit_are_named(folder):
    save_file({"basis": torch.zeros(3)}, str(folder / "codec.safetensors"))
    assert load_error(folder) == (f"{folder / 'codec.safetensors'} does not fit the PCACodec: missing keys 'mean'; "
                                  "wrong shapes 'basis' [3] instead of [48, 48]")


def test_weights_for_a_codec_without_weights_are_refused(folder):
    edit_meta(folder, lambda meta: meta.update(codec={"name": "pixel", "patch": 4}))
    assert load_error(folder) == (f"{folder / 'codec.safetensors'} does not fit the PixelCodec: "
                                  "unexpected keys 'basis', 'mean', 'scale'")


def test_corrupt_json_names_the_file(folder):
    (folder / "streamvideo.json").write_text('{"model": ')
    assert load_error(folder) == (f"cannot read {folder / 'streamvideo.json'}: Expecting value: line 1 column 11 "
                                  "(char 10); expected the JSON object `save_model_folder` writes")


def test_json_without_a_field_names_it(folder):
    edit_meta(folder, lambda meta: meta.pop("codec"))
    assert load_error(folder) == f"{folder / 'streamvideo.json'} lacks 'codec'; {EXPECTED_META}"


def test_json_that_is_not_an_object(folder):
    (folder / "streamvideo.json").write_text("[]")
    assert load_error(folder) == (f"{folder / 'streamvideo.json'} lacks 'model', 'codec', 'text', 'latent_hw', "
                                  f"'fps'; {EXPECTED_META}")


def test_json_describing_no_model_names_the_entry(folder):
    edit_meta(folder, lambda meta: meta["text"].update(name="bert"))
    assert load_error(folder) == (f"{folder / 'streamvideo.json'}: cannot build its 'text' entry (ValueError: "
                                  "unknown text encoder 'bert'; expected 'hash' or 'umt5')")


def test_a_missing_umt5_text_encoder_names_its_folder(folder):
    pytest.importorskip("transformers")
    edit_meta(folder, lambda meta: meta.update(text={"name": "umt5", "folder": "text_encoder"}))
    assert load_error(folder) == (
        f"{folder / 'streamvideo.json'}: cannot build its 'text' entry (FileNotFoundError: no umT5 encoder at "
        f"{folder / 'text_encoder'}: expected config.json + weights + tokenizer files (or a Wan pipeline folder "
        "with text_encoder/ and tokenizer/))")


def test_a_folder_without_json(folder):
    (folder / "streamvideo.json").unlink()
    assert load_error(folder) == (f"{folder / 'streamvideo.json'} is missing: expected a model folder, as "
                                  "`save_model_folder` and `streamvideo train` write")


def test_corrupt_start_frames_name_the_file(folder):
    truncate(folder / "start_frames.npz")
    message = load_error(folder)
    assert message.startswith(f"cannot read {folder / 'start_frames.npz'}: ")
    assert message.endswith('; expected an npz archive with "frames" uint8 [P, T, H, W, 3]')


def test_start_frames_of_another_size_name_the_file(folder):
    np.savez_compressed(folder / "start_frames.npz", frames=np.zeros((2, 3, 32, 32, 3), np.uint8))
    assert load_error(folder) == (f"{folder / 'start_frames.npz'}: start_frames must be uint8 [2, T, 64, 64, 3] "
                                  "(one clip per trained prompt), got uint8 [2, 3, 32, 32, 3]")


def test_unknown_model_lists_the_presets():
    assert load_error("no/such/model") == ("no model 'no/such/model': expected a preset (default, tiny-random, "
                                           "tiny-random-steered, wan2.1-1.3b) or a folder containing streamvideo.json")


def test_cuda_without_cuda_suggests_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError) as err:
        load_parts("tiny-random", device="cuda")
    assert str(err.value) == (f"device 'cuda': CUDA is not available on this machine (torch {torch.__version__}); "
                              "use --device cpu")


@pytest.mark.parametrize("device, dtype, message", [
    ("gpu", None, "unknown device 'gpu'; expected cpu, cuda or cuda:N"),
    ("cpu", "int8", "unknown dtype 'int8'; expected float32, bfloat16 or float16"),
])
def test_unknown_device_or_dtype(device, dtype, message):
    with pytest.raises(UserError) as err:
        load_parts("tiny-random", device=device, dtype=dtype)
    assert str(err.value) == message


# ------------------------------------------------------------------------------------- training checkpoints

def tiny_run(out, width):
    net = torch.nn.Linear(2, width)
    return Run(out, RunArgs(), seed=0, total_steps=1, save_every=1, modules={"net": net},
               optimizers={"opt": torch.optim.SGD(net.parameters(), lr=0.1)})


def test_resuming_a_corrupt_checkpoint_names_it(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        tiny_run(tmp_path, 3)
    assert str(err.value).startswith(f"cannot read {tmp_path / 'checkpoint.pt'}: ")
    assert str(err.value).endswith("; delete it to start over, or pass another --out")


def test_resuming_with_other_arguments_names_the_keys(tmp_path):
    run = tiny_run(tmp_path, 3)
    run.save()
    with pytest.raises(CheckpointError) as err:
        tiny_run(tmp_path, 4)
    assert str(err.value) == (f"{tmp_path / 'checkpoint.pt'} (net) does not fit the Linear: wrong shapes "
                              "'weight' [3, 2] instead of [4, 2], 'bias' [3] instead of [4]")


# ------------------------------------------------------------------------------------- the command line

def cli_error(capsys, *argv) -> str:
    """Run `streamvideo ARGV` in this process; assert exit 2 and one line on stderr, return that line."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:   # argparse, and modules' own SystemExit refusals
        code = exit.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1, (code, out, err)
    return err.rstrip("\n")


@pytest.mark.parametrize("argv, line", [
    (["play", "--frames", "-5"],
     "streamvideo play: argument --frames: expected an integer >= 1, got -5 (see streamvideo play --help)"),
    (["play", "--frames", "0"],
     "streamvideo play: argument --frames: expected an integer >= 1, got 0 (see streamvideo play --help)"),
    (["play", "--scale", "0"],
     "streamvideo play: argument --scale: expected an integer >= 1, got 0 (see streamvideo play --help)"),
    (["play", "--schedule", "abc"],
     "streamvideo play: argument --schedule: a step allocation is a string of digits like '4322222', got 'abc' "
     "(see streamvideo play --help)"),
    (["play", "--headless", "--model", "nope"],
     "streamvideo play: no model 'nope': expected a preset (default, tiny-random, tiny-random-steered, wan2.1-1.3b) "
     "or a folder containing streamvideo.json"),
    (["bench", "--schedule", "4x"],
     "streamvideo bench: argument --schedule: a step allocation is a string of digits like '4322222', got '4x' "
     "(see streamvideo bench --help)"),
    (["bench", "--modes", "diagonal,fast"],
     "streamvideo bench: argument --modes: expected comma-separated modes out of diagonal, self_forcing, "
     "hierarchical, got 'diagonal,fast' (see streamvideo bench --help)"),
    (["bench", "--chunks", "0"],
     "streamvideo bench: argument --chunks: expected an integer >= 1, got 0 (see streamvideo bench --help)"),
    (["bench", "--uniform-steps", "12"],
     "streamvideo bench: argument --uniform-steps: expected a step count from 1 to 9, got '12' "
     "(see streamvideo bench --help)"),
    (["bench", "--resolution", "832"],
     "streamvideo bench: argument --resolution: expected WIDTHxHEIGHT in pixels like 832x480, got '832' "
     "(see streamvideo bench --help)"),
    (["bench", "--warmup", "-1"], "streamvideo bench: --warmup must be 0 or more, got -1"),
    (["bench", "--sinks", "-1"], "streamvideo bench: --sinks must be 0 or more, got -1"),
    (["bench", "--device", "cpu", "--dtype", "int8"],
     "streamvideo bench: unknown dtype 'int8'; expected float32, bfloat16 or float16"),
    (["bench", "--preset", "wan2.1-1.3b", "--device", "cpu"],
     "streamvideo bench: weights for wan2.1-1.3b are not shipped: pass a diffusers Wan2.1 folder as the path, "
     "or random_weights=True (--random-weights) to measure speed on the full-size architecture"),
    (["train", "student", "--steps", "0"],
     "streamvideo train student: argument --steps: expected an integer >= 1, got 0 "
     "(see streamvideo train student --help)"),
    (["train", "ode-pairs", "--schedule", "43a"],
     "streamvideo train ode-pairs: argument --schedule: a step allocation is a string of digits like '4322222', "
     "got '43a' (see streamvideo train ode-pairs --help)"),
    (["train", "teacher", "--codec", "pixel:8"], "streamvideo train teacher: --data DATASET_FOLDER is required"),
    (["nope"], "streamvideo: argument COMMAND: invalid choice: 'nope' (choose from 'play', 'bench', 'serve', "
               "'keys', 'collect', 'train', 'eval', 'prompts') (see streamvideo --help)"),
])
def test_bad_arguments_are_one_line(capsys, argv, line):
    assert cli_error(capsys, *argv) == line


def test_broken_model_folders_are_one_line(capsys, folder):
    (folder / "codec.safetensors").unlink()
    assert cli_error(capsys, "play", "--headless", "--model", folder) == (
        f"streamvideo play: {folder / 'codec.safetensors'} is missing: expected the weights of the 'pca' codec "
        "streamvideo.json names")
    assert cli_error(capsys, "bench", "--preset", folder, "--device", "cpu").startswith(
        f"streamvideo bench: {folder / 'codec.safetensors'} is missing")
    assert cli_error(capsys, "train", "student", "--teacher", folder, "--out", folder.parent / "student") == (
        f"streamvideo train student: {folder / 'codec.safetensors'} is missing: expected the weights of the "
        "'pca' codec streamvideo.json names")


def test_missing_training_inputs_are_one_line(capsys, tmp_path):
    assert cli_error(capsys, "train", "codec", "--data", tmp_path / "none", "--out", tmp_path / "codec") == (
        f"streamvideo train codec: {tmp_path / 'none' / 'meta.json'} not found: is {tmp_path / 'none'} a "
        "`streamvideo collect` output?")


def test_cuda_without_cuda_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for command in ("play", "bench"):
        assert cli_error(capsys, command, "--device", "cuda") == (
            f"streamvideo {command}: device 'cuda': CUDA is not available on this machine (torch "
            f"{torch.__version__}); use --device cpu")


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug")
    monkeypatch.setattr("streamvideo.apps.bench.run", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["bench"])


@pytest.mark.parametrize("argv, env, line", [
    (["play", "--headless", "--model", "no/such/model"], {},
     "streamvideo play: no model 'no/such/model': expected a preset (default, tiny-random, tiny-random-steered, "
     "wan2.1-1.3b) or a folder containing streamvideo.json"),
    (["bench", "--device", "cuda"], {"CUDA_VISIBLE_DEVICES": ""},   # hides any GPU from torch
     f"streamvideo bench: device 'cuda': CUDA is not available on this machine (torch {torch.__version__}); "
     "use --device cpu"),
    (["train", "teacher", "--codec", "pixel:8"], {}, "streamvideo train teacher: --data DATASET_FOLDER is required"),
])
def test_the_installed_command_exits_2_with_one_line_and_no_traceback(argv, env, line):
    proc = subprocess.run([sys.executable, "-m", "streamvideo.apps.cli", *argv], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert (proc.stdout + proc.stderr).splitlines() == [line]


def test_play_record_into_a_missing_folder_is_a_one_line_error(capsys, tmp_path):
    message = cli_error(capsys, "play", "--headless", "--frames", "3", "--record", tmp_path / "nope" / "play.mp4")
    assert "does not exist" in message and str(tmp_path / "nope") in message
