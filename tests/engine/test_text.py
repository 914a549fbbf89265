"""Text encoders: the hashing encoder, and umT5 on a tiny random model + tokenizer saved by the test."""

import pytest
import torch

from streamvideo.engine.text import HashTextEncoder, TextEncoder, UMT5Encoder

WORDS = "a red car drives left right on the road blue sky jumps over wall".split()


def test_hash_encoder_deterministic_shapes_mask():
    enc = HashTextEncoder(dim=32, max_tokens=8)
    tokens, mask = enc.encode(["a red car", "a blue car", ""])
    assert tokens.shape == (3, 8, 32) and tokens.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == [4, 4, 1]  # words + end token
    assert (tokens[~mask] == 0).all()
    again, _ = HashTextEncoder(dim=32, max_tokens=8).encode(["a red car"])  # fresh instance, no cache
    assert torch.equal(again[0], tokens[0])
    assert not torch.allclose(tokens[0], tokens[1])
    assert torch.equal(tokens[0, 0], tokens[1, 0])  # same word, same position
    other_seed, _ = HashTextEncoder(dim=32, max_tokens=8, seed=1).encode(["a red car"])
    assert not torch.allclose(other_seed[0], tokens[0])


def test_hash_encoder_truncates_and_caches():
    enc = HashTextEncoder(dim=16, max_tokens=4, cache_size=2)
    tokens, mask = enc.encode(["one two three four five six"])
    assert mask.all() and tokens.shape == (1, 4, 16)
    enc.encode(["x", "y", "x"])
    assert list(enc._cache) == ["y", "x"]  # LRU of size 2
    tokens[0].zero_()  # callers get copies, not the cached tensors
    assert enc.encode(["one two three four five six"])[0].abs().sum() > 0
    with pytest.raises(TypeError, match="list of strings"):
        enc.encode("not a list")


@pytest.fixture(scope="module")
def tiny_umt5_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = tmp_path_factory.mktemp("umt5")
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    config = transformers.UMT5Config(
        vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.UMT5EncoderModel(config).save_pretrained(folder)
    return folder


def test_umt5_encoder_round_trip(tiny_umt5_folder):
    enc = UMT5Encoder(tiny_umt5_folder, max_tokens=10)
    assert isinstance(enc, TextEncoder) and enc.dim == 16
    prompts = ["a red car drives left", "blue sky", "a red car drives left"]
    tokens, mask = enc.encode(prompts)
    assert tokens.shape == (3, 10, 16) and tokens.dtype == torch.float32
    assert mask.sum(1).tolist() == [6, 3, 6]  # words + </s>
    assert (tokens[~mask] == 0).all()
    assert torch.equal(tokens[0], tokens[2]) and not torch.allclose(tokens[0, :3], tokens[1, :3])
    # the valid tokens equal the model run on the unpadded prompt: padding is masked out
    ids = enc.tokenizer(["blue sky"], return_tensors="pt").input_ids
    ref = enc.model(input_ids=ids).last_hidden_state[0]
    torch.testing.assert_close(tokens[1, :3], ref, rtol=1e-5, atol=1e-5)
    again, _ = UMT5Encoder(tiny_umt5_folder, max_tokens=10).encode(["blue sky"])
    torch.testing.assert_close(again[0], tokens[1], rtol=0, atol=1e-6)


def test_umt5_encoder_errors(tmp_path, tiny_umt5_folder):
    with pytest.raises(FileNotFoundError, match="no umT5 encoder"):
        UMT5Encoder(tmp_path / "missing")
    import transformers

    transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="expected 'umt5' or 't5'"):
        UMT5Encoder(tmp_path)


# ---------------------------------------------------------------------------------------------
#                      Prompts longer than the encoder reads: cut, reported, warned once
# ---------------------------------------------------------------------------------------------

LONG_PROMPT = " ".join(["Word"] * 2000)   # 9999 characters, 2000 tokens
KEPT = " ".join(["Word"] * 15)            # tiny-random's encoder: 16 tokens, the end token included
CUT_WARNING = ("prompt cut to the text encoder's limit of 16 tokens (the end token included): kept its first 74 of "
               "9999 characters (15 of 2000 tokens); gen.prompt and chunk.prompt give the kept text")


@pytest.mark.parametrize("prompt, text, kept, total", [
    ("A red car.", "A red car.", 4, 4),                          # fits: the prompt itself
    ("A red car, BLUE sky! jumps", "A red car, BLUE", 5, 8),      # cut after the last kept token, case kept
    ("İİ a b c d e", "İİ a", 5, 9),                              # "İ" lowers to two tokens, "i" and a dot
])
def test_hash_encoder_fit_is_the_text_it_reads(prompt, text, kept, total):
    enc = HashTextEncoder(dim=16, max_tokens=6)
    fit = enc.fit(prompt)
    assert (fit.text, fit.kept, fit.total, fit.cut) == (text, kept, total, kept < total)
    assert torch.equal(enc.encode([fit.text])[0], enc.encode([prompt])[0])


def test_umt5_encoder_fit_is_the_text_it_reads(tiny_umt5_folder):
    enc = UMT5Encoder(tiny_umt5_folder, max_tokens=4)
    fit = enc.fit("a red car drives left")
    assert (fit.text, fit.kept, fit.total) == ("a red car", 3, 5)
    assert torch.equal(enc.encode([fit.text])[0], enc.encode(["a red car drives left"])[0])
    assert enc.fit("blue sky").text == "blue sky"


def test_a_long_prompt_is_cut_with_one_warning_and_the_kept_text_is_reported():
    import streamvideo
    gen = streamvideo.load("tiny-random", device="cpu")
    with pytest.warns(UserWarning) as caught:
        gen.reset(prompt=LONG_PROMPT, seed=0)
        chunk = gen.step()
        gen.set_prompt(LONG_PROMPT)                               # the same prompt: already warned
    assert [str(w.message) for w in caught] == [CUT_WARNING]
    assert caught[0].filename == __file__                         # points at the caller
    assert gen.prompt == chunk.prompt == gen.step().prompt == KEPT


def test_the_env_reports_the_kept_prompt():
    from streamvideo.envs.stream_env import StreamVideoEnv
    env = StreamVideoEnv(model="tiny-random", device="cpu", prompt=LONG_PROMPT)
    with pytest.warns(UserWarning, match="prompt cut"):
        _, info = env.reset(seed=0)
    assert info["prompt"] == env.step(0)[4]["prompt"] == KEPT
