"""Codecs: exact pixel round trip, TAEHV layout + streaming, Wan VAE wrapper on a tiny random model."""

import pytest
import torch
from safetensors.torch import save_file

from streamvideo.engine.codecs import PCACodec, PixelCodec, TAEHVCodec, WanVAECodec, build, load_codec

TINY_TAEHV = dict(latent_channels=4, encoder_channels=8, decoder_channels=(16, 8, 8, 8))


def decode_in_chunks(codec, latents, chunk):
    state, out = codec.init_state(latents.shape[0]), []
    for k in range(0, latents.shape[2], chunk):
        frames, state = codec.decode(latents[:, :, k : k + chunk], state)
        assert frames.shape[1] == latents[:, :, k : k + chunk].shape[2] * codec.temporal_factor
        out.append(frames)
    return torch.cat(out, 1)


def check_independent_reset(codec, latents):
    """Resetting one batch element restarts its stream and leaves the others untouched."""
    first, second = latents[:, :, :2], latents[:, :, 2:4]
    state = codec.init_state(2)
    _, state = codec.decode(first, state)
    mixed, _ = codec.decode(second, codec.reset_state(state, [1]))
    continued, _ = codec.decode(second, state)
    fresh, _ = codec.decode(second, codec.init_state(2))
    torch.testing.assert_close(mixed[0], continued[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(mixed[1], fresh[1], rtol=0, atol=1e-5)
    assert (continued[1] - fresh[1]).abs().max() > 1e-4  # the stream state does matter


# ---------------------------------------------------------------------------------------------
#                                          Pixel
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patch", [1, 2, 4])
def test_pixel_codec_exact_round_trip(patch):
    codec = PixelCodec(patch)
    frames = torch.rand(2, 5, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    z = codec.encode(frames)
    assert z.shape == (2, 3 * patch * patch, 5, 16 // patch, 24 // patch)
    assert z.min() >= -1 and z.max() <= 1
    out, state = codec.decode(z, codec.init_state(2))
    assert state is None and codec.reset_state(state, 0) is None
    torch.testing.assert_close(out, frames, rtol=0, atol=1e-6)
    assert build(**codec.config()).patch == patch


def test_pixel_codec_shape_errors():
    with pytest.raises(ValueError, match="divisible by spatial_factor 4"):
        PixelCodec(4).encode(torch.rand(1, 1, 3, 10, 16))
    with pytest.raises(ValueError, match=r"expects latents \[B, 3, F, h, w\]"):
        PixelCodec().decode(torch.rand(1, 4, 1, 8, 8), None)


def test_pca_codec_recovers_patches_in_its_subspace_and_orders_components():
    """Frames whose 2x2 patches span 3 directions: 3 components reconstruct them exactly, 1 does not."""
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([[0.1], [0.05], [0.02]])                                            # decreasing variance
    directions = torch.nn.functional.normalize(torch.randn(3, 12, generator=g), dim=1) * scales
    weights = torch.randn(64 * 4 * 4, 3, generator=g)
    patches = (0.5 + weights @ directions).clamp(0, 1)                                        # [N, 12]
    frames = torch.nn.functional.pixel_shuffle(patches.reshape(64, 4, 4, 12).permute(0, 3, 1, 2), 2)[:, None]
    exact, coarse = PCACodec(2, 3).fit([frames[:32], frames[32:]]), PCACodec(2, 1).fit([frames])
    torch.testing.assert_close(exact.decode(exact.encode(frames))[0], frames, rtol=0, atol=1e-5)
    assert (coarse.decode(coarse.encode(frames))[0] - frames).pow(2).mean() > 1e-4
    z = exact.encode(frames)                                                                   # [64, 3, 1, 4, 4]
    assert z.shape == (64, 3, 1, 4, 4) and z[:, 0].var() > z[:, 1].var() > z[:, 2].var()     # ordered
    assert z.var(dim=(0, 2, 3, 4)).mean() == pytest.approx(1.0, rel=0.05)                    # unit variance on average
    rebuilt = build(**exact.config())
    rebuilt.load_state_dict(exact.state_dict())
    assert torch.equal(rebuilt.encode(frames), z)
    with pytest.raises(ValueError, match=r"channels must be in \[1, 12\]"):
        PCACodec(2, 13)


# ---------------------------------------------------------------------------------------------
#                                          TAEHV
# ---------------------------------------------------------------------------------------------


def taehv_reference_shapes(lat=16, e=64, d=(256, 128, 64, 64), patch=1, t_down=(2, 2, 1), t_up=(1, 2, 2)):
    """Parameter names and shapes of madebyollin/taehv's TAEHV, written from its published layout."""
    shapes = {}

    def conv(name, n_in, n_out, k=3, bias=True):
        shapes[f"{name}.weight"] = (n_out, n_in, k, k)
        if bias:
            shapes[f"{name}.bias"] = (n_out,)

    def memblock(name, n):
        conv(f"{name}.conv.0", 2 * n, n), conv(f"{name}.conv.2", n, n), conv(f"{name}.conv.4", n, n)

    conv("encoder.0", 3 * patch * patch, e)
    for s, (tpool, stride_conv) in enumerate([(2, 3), (7, 8), (12, 13)]):
        conv(f"encoder.{tpool}.conv", e * t_down[s], e, k=1, bias=False)
        conv(f"encoder.{stride_conv}", e, e, bias=False)
        for m in range(3):
            memblock(f"encoder.{stride_conv + 1 + m}", e)
    conv("encoder.17", e, lat)
    conv("decoder.1", lat, d[0])
    for s, first in enumerate((3, 9, 15)):
        for m in range(3):
            memblock(f"decoder.{first + m}", d[s])
        conv(f"decoder.{first + 4}.conv", d[s], d[s] * t_up[s], k=1, bias=False)
        conv(f"decoder.{first + 5}", d[s], d[s + 1], bias=False)
    conv("decoder.22", d[3], 3 * patch * patch)
    return shapes


def test_taehv_full_size_matches_published_layout():
    codec = TAEHVCodec()  # taew2_1: Wan 2.1 latents
    assert {k: tuple(v.shape) for k, v in codec.state_dict().items()} == taehv_reference_shapes()
    assert (codec.latent_channels, codec.spatial_factor, codec.temporal_factor) == (16, 8, 4)
    n_decoder = sum(p.numel() for p in codec.decoder.parameters())
    assert 9.5e6 < n_decoder < 10.5e6  # the paper's "~10 M" tiny decoder (9,844,611)


def test_taehv_loads_tiny_published_layout_strict(tmp_path):
    gen = torch.Generator().manual_seed(0)
    shapes = taehv_reference_shapes(lat=4, e=8, d=(16, 8, 8, 8), patch=2, t_down=(2, 1, 2), t_up=(2, 1, 2))
    state_dict = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    save_file(state_dict, tmp_path / "taehv_tiny.safetensors")
    torch.save(state_dict, tmp_path / "taehv_tiny.pth")
    for name in ("taehv_tiny.safetensors", "taehv_tiny.pth"):
        codec = load_codec(tmp_path / name)
        assert isinstance(codec, TAEHVCodec)
        assert codec.config() == {
            "name": "taehv",
            "latent_channels": 4,
            "patch_size": 2,
            "encoder_channels": 8,
            "decoder_channels": (16, 8, 8, 8),
            "encoder_time_downscale": (True, False, True),
            "decoder_time_upscale": (True, False, True),
        }
        assert (codec.spatial_factor, codec.temporal_factor) == (16, 4)
        for k, v in codec.state_dict().items():
            assert torch.equal(v, state_dict[k])
    with pytest.raises(ValueError, match="not a TAEHV state dict"):
        TAEHVCodec.from_state_dict({"decoder.1.weight": torch.zeros(1)})


@pytest.fixture(scope="module")
def tiny_taehv():
    torch.manual_seed(0)
    return TAEHVCodec(**TINY_TAEHV).eval()


@torch.no_grad()
def test_taehv_streaming_equals_whole_sequence(tiny_taehv):
    latents = torch.randn(2, 4, 6, 3, 4, generator=torch.Generator().manual_seed(1))
    whole, _ = tiny_taehv.decode(latents, tiny_taehv.init_state(2))
    assert whole.shape == (2, 24, 3, 24, 32)
    assert whole.min() >= 0 and whole.max() <= 1
    for chunk in (1, 2, 3):
        torch.testing.assert_close(decode_in_chunks(tiny_taehv, latents, chunk), whole, rtol=0, atol=1e-5)
    # first chunk: the 3 frames TAEHV would trim are the first real frame repeated
    assert torch.equal(whole[:, 0], whole[:, 3]) and torch.equal(whole[:, 2], whole[:, 3])
    assert not torch.equal(whole[:, 4], whole[:, 3])


@torch.no_grad()
def test_taehv_reset_one_stream(tiny_taehv):
    latents = torch.randn(2, 4, 4, 3, 4, generator=torch.Generator().manual_seed(2))
    check_independent_reset(tiny_taehv, latents)


@torch.no_grad()
def test_taehv_encode_shapes_and_padding(tiny_taehv):
    frames = torch.rand(2, 9, 3, 24, 32, generator=torch.Generator().manual_seed(3))
    z = tiny_taehv.encode(frames)
    assert z.shape == (2, 4, 3, 3, 4)  # 9 frames -> padded to 12 -> 3 latent frames
    padded = torch.cat([frames, frames[:, -1:].expand(-1, 3, -1, -1, -1)], 1)
    torch.testing.assert_close(tiny_taehv.encode(padded), z)
    out, _ = tiny_taehv.decode(z, tiny_taehv.init_state(2))
    assert out.shape == (2, 12, 3, 24, 32)
    assert build(**tiny_taehv.config()).state_dict().keys() == tiny_taehv.state_dict().keys()


def test_taehv_bad_config():
    with pytest.raises(ValueError, match="temporal downscale must match"):
        TAEHVCodec(encoder_time_downscale=(True, False, False))


# ---------------------------------------------------------------------------------------------
#                                          Wan VAE
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_wan_folder(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1)
    folder = tmp_path_factory.mktemp("wan") / "vae"
    vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_wan(tiny_wan_folder):
    return load_codec(tiny_wan_folder.parent)  # a pipeline-style folder with vae/


@torch.no_grad()
def test_wan_vae_encode_decode(tiny_wan, tiny_wan_folder):
    assert isinstance(tiny_wan, WanVAECodec)
    assert (tiny_wan.latent_channels, tiny_wan.spatial_factor, tiny_wan.temporal_factor) == (16, 8, 4)
    frames = torch.rand(2, 12, 3, 32, 24, generator=torch.Generator().manual_seed(0))
    z = tiny_wan.encode(frames)
    assert z.shape == (2, 16, 3, 4, 3)
    # normalised with Wan's latents_mean / latents_std: raw = z * std + mean
    vae = tiny_wan.vae
    raw = vae.encode(frames[:, 3:].transpose(1, 2) * 2 - 1).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(z, (raw - mean) / std)
    out, _ = tiny_wan.decode(z, tiny_wan.init_state(2))
    assert out.shape == (2, 12, 3, 32, 24) and out.min() >= 0 and out.max() <= 1
    # after the 3 filler frames, equal to diffusers' own whole-video decode
    ref = (vae.decode(raw).sample.transpose(1, 2) + 1) / 2
    torch.testing.assert_close(out[:, 3:], ref, rtol=0, atol=1e-5)
    assert torch.equal(out[:, 0], out[:, 3])
    assert build("wan-vae", path=tiny_wan_folder).config() == tiny_wan.config()


@torch.no_grad()
def test_wan_vae_streaming_equals_whole_sequence(tiny_wan):
    latents = torch.randn(2, 16, 4, 2, 3, generator=torch.Generator().manual_seed(1))
    whole, _ = tiny_wan.decode(latents, tiny_wan.init_state(2))
    for chunk in (1, 3):
        torch.testing.assert_close(decode_in_chunks(tiny_wan, latents, chunk), whole, rtol=0, atol=1e-5)
    check_independent_reset(tiny_wan, latents)


def test_wan_vae_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Wan VAE"):
        WanVAECodec.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no codec at"):
        load_codec(tmp_path / "nothing.bin")
