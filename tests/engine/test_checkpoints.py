"""Both Wan checkpoint layouts round-trip; broken files fail naming the file and the bad keys."""

import pytest
import torch

from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.checkpoints import CheckpointError, load_wan, our_key_to_wan, save_diffusers, save_wan_original
from streamvideo.engine.model import CausalDiT, ModelConfig

TINY = dict(num_heads=2, head_dim=16, ffn_dim=48, num_layers=2, text_dim=24, in_channels=4, out_channels=4)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CausalDiT(ModelConfig(**TINY)).eval()


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_diffusers_folder_round_trip(model, tmp_path):
    loaded = load_wan(save_diffusers(model, tmp_path / "transformer"))
    assert same_weights(model, loaded)
    assert loaded.config.num_heads == 2 and loaded.config.ffn_dim == 48


def test_diffusers_folder_loads_into_diffusers_itself(model, tmp_path):
    diffusers = pytest.importorskip("diffusers")
    folder = save_diffusers(model, tmp_path / "t")
    from safetensors.torch import load_file
    ref = diffusers.WanTransformer3DModel(**{k: v for k, v in __import__("json").loads(
        (folder / "config.json").read_text()).items() if not k.startswith("_")})
    ref.load_state_dict(load_file(str(folder / "diffusion_pytorch_model.safetensors")), strict=True)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_original_wan_file_round_trip(model, tmp_path, suffix):
    file = save_wan_original(model, tmp_path / f"wan{suffix}")
    assert same_weights(model, load_wan(file, head_dim=16))


def test_original_names_follow_wan():
    assert our_key_to_wan("blocks.3.attn1.to_q.weight") == "model.diffusion_model.blocks.3.self_attn.q.weight"
    assert our_key_to_wan("blocks.3.norm2.weight") == "model.diffusion_model.blocks.3.norm3.weight"
    assert our_key_to_wan("blocks.0.ffn.net.0.proj.bias") == "model.diffusion_model.blocks.0.ffn.0.bias"
    assert our_key_to_wan("scale_shift_table") == "model.diffusion_model.head.modulation"
    assert our_key_to_wan("blocks.1.scale_shift_table") == "model.diffusion_model.blocks.1.modulation"
    assert our_key_to_wan("proj_out.weight") == "model.diffusion_model.head.head.weight"


def test_self_forcing_wrapper_and_action_override(model, tmp_path):
    state = {"generator": {our_key_to_wan(k).replace("model.diffusion_model.", "model."): v
                           for k, v in model.state_dict().items()}}
    torch.save(state, tmp_path / "sf.pt")
    loaded = load_wan(tmp_path / "sf.pt", head_dim=16, chunk_frames=3, action=ActionSpec("discrete", n=6))
    assert loaded.config.chunk_frames == 3 and loaded.action_embedder is not None
    x, t, text = torch.randn(1, 4, 3, 4, 4), torch.full((1, 3), 500.0), torch.randn(1, 2, 24)
    act = torch.zeros(1, 3, 6)
    with torch.no_grad():   # zero-initialised action path: same output as the text-only model
        assert torch.allclose(loaded(x, t, text, action=act), model(x, t, text), atol=1e-6)


def test_truncated_file_names_the_file(model, tmp_path):
    file = save_wan_original(model, tmp_path / "wan.safetensors")
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="wan.safetensors"):
        load_wan(file, head_dim=16)


def test_wrong_key_names_file_and_the_keys(model, tmp_path):
    from safetensors.torch import save_file
    state = {our_key_to_wan(k): v.contiguous() for k, v in model.state_dict().items()}
    state["model.diffusion_model.blocks.0.self_attn.qq.weight"] = state.pop(
        "model.diffusion_model.blocks.0.self_attn.q.weight")
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_wan(tmp_path / "bad.safetensors", head_dim=16)
    assert str(err.value) == (f"{tmp_path / 'bad.safetensors'} does not fit the CausalDiT: missing keys "
                              "'blocks.0.attn1.to_q.weight'; unexpected keys 'blocks.0.attn1.qq.weight'")


def test_many_missing_keys_are_counted(model, tmp_path):
    from safetensors.torch import save_file
    state = {our_key_to_wan(k): v.contiguous() for k, v in model.state_dict().items() if not k.startswith("blocks.1.")}
    save_file(state, str(tmp_path / "half.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_wan(tmp_path / "half.safetensors", head_dim=16, num_layers=2)
    missing = [k for k in model.state_dict() if k.startswith("blocks.1.")]
    assert str(err.value) == (f"{tmp_path / 'half.safetensors'} does not fit the CausalDiT: missing keys "
                              f"{', '.join(map(repr, missing[:5]))} and {len(missing) - 5} more")


def test_wrong_shape_is_named(model, tmp_path):
    folder = save_diffusers(model, tmp_path / "t")
    other = CausalDiT(ModelConfig(**{**TINY, "ffn_dim": 40}))
    save_diffusers(other, tmp_path / "o")
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(
        (tmp_path / "o" / "diffusion_pytorch_model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as err:
        load_wan(folder)
    assert str(err.value).startswith(f"{folder} does not fit the CausalDiT: wrong shapes "
                                     "'blocks.0.ffn.net.0.proj.weight' [40, 32] instead of [48, 32], ")


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_wan("/nonexistent/wan")
