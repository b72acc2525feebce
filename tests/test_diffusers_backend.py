"""The diffusers backend on tiny SD1 / SD2-v models: the host's prompt chunking and splice, gradients that reach the
vectors and nothing else, latents, schedule, previews, and loading (folder, single file, Hub) with clear refusals."""

from __future__ import annotations

import hashlib
import re
import socket
import zlib

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from fake_hub import online  # noqa: F401 - a fixture
from tiny_sd import build_tiny_sd
from ti_studio.backends import diffusers_loading
from ti_studio.backends.diffusers_backend import EMBEDDING_KEY, DiffusersBackend, host_shorthash
from ti_studio.backends.prompt_chunks import SpecialTokens, chunk_prompts, parse_attention
from ti_studio.errors import UserError
from ti_studio.training.backend import ModelInfo, PreviewRequest

NAME = "tsname"
BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def sd1(tiny_models):
    return DiffusersBackend.load(tiny_models["sd1"])


@pytest.fixture(scope="module")
def sd2(tiny_models):
    return DiffusersBackend.load(str(tiny_models["sd2-v"]))


@pytest.fixture(params=["sd1", "sd2"])
def backend(request, sd1, sd2):
    return {"sd1": sd1, "sd2": sd2}[request.param]


def tokens(backend, text):
    return backend._parts.tokenizer(text, add_special_tokens=False)["input_ids"]


def token_rows(backend, text):
    return backend._parts.text_encoder.get_input_embeddings().weight[tokens(backend, text)].float()


def host_chunk(backend, ids):
    """One chunk as the host builds it: BOS, tokens, EOS padding, EOS; SD2 pads after the first EOS with 0."""
    if backend.model_info().family == "sd2":
        return [BOS, *ids, EOS] + [0] * (75 - len(ids))
    return [BOS, *ids] + [EOS] * (76 - len(ids))


def reference_encoding(backend, text, layer=-1):
    """transformers' own CLIPTextModel forward on the host's token ids of ``text``."""
    encoder = backend._parts.text_encoder
    ids = torch.tensor([host_chunk(backend, tokens(backend, text))])
    with torch.no_grad():
        output = encoder(input_ids=ids, output_hidden_states=True)
    if layer == -1:
        return output.last_hidden_state
    return encoder.text_model.final_layer_norm(output.hidden_states[layer])


def trainable(vectors):
    return {key: value.clone().requires_grad_(True) for key, value in vectors.items()}


# -- the host's prompt rules (pure) ----------------------------------------------------------------------------

WORDS: dict[str, int] = {}
SPECIAL = SpecialTokens(bos=BOS, eos=EOS, pad=EOS, comma=267)


def word_tokenize(texts):
    """One id per word (and per comma), as a stand-in tokenizer."""
    return [[267 if word == "," else WORDS.setdefault(word, 1000 + len(WORDS))
             for word in re.findall(r"[\w.]+|,", text)] for text in texts]


@pytest.mark.parametrize("prompt, expected", [  # the host's own doctest cases
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("", [("", 1.0)]),
])
def test_attention_parsing_matches_the_host(prompt, expected):
    assert parse_attention(prompt) == pytest.approx(expected)


def test_a_bad_emphasis_weight_is_a_user_error():
    with pytest.raises(UserError, match="emphasis weight"):
        parse_attention("(a:.)")


def test_name_becomes_vector_slots_after_bos():
    [[chunk]] = chunk_prompts([f"a photo of {NAME} , {NAME}"], word_tokenize, word_tokenize([NAME])[0], 2, SPECIAL)
    assert len(chunk.tokens) == len(chunk.multipliers) == 77
    assert chunk.vector_starts == [4, 7]
    assert chunk.tokens[:10] == [BOS, *word_tokenize(["a photo of"])[0], 0, 0, 267, 0, 0, EOS]


def test_long_prompt_fills_chunks_of_75_and_batch_is_padded_with_empty_chunks():
    long = " ".join(f"w{i}" for i in range(80))
    chunks = chunk_prompts([long, "short"], word_tokenize, [9], 1, SPECIAL)
    assert [len(prompt_chunks) for prompt_chunks in chunks] == [2, 2]
    assert chunks[0][0].tokens[1:76] == word_tokenize([long])[0][:75]
    assert chunks[0][1].tokens[1:6] == word_tokenize([long])[0][75:]
    assert chunks[1][1].tokens == [BOS] + [EOS] * 76


def test_vectors_never_straddle_two_chunks():
    prompt = " ".join(f"w{i}" for i in range(74)) + f" {NAME}"
    first, second = chunk_prompts([prompt], word_tokenize, word_tokenize([NAME])[0], 3, SPECIAL)[0]
    assert first.vector_starts == [] and first.tokens[75:] == [EOS, EOS]
    assert second.vector_starts == [1] and second.tokens[1:5] == [0, 0, 0, EOS]


def test_break_starts_a_new_chunk():
    chunks = chunk_prompts(["a BREAK b"], word_tokenize, [9], 1, SPECIAL)[0]
    assert [chunk.tokens[1] for chunk in chunks] == word_tokenize(["a b"])[0]


def test_words_after_a_recent_comma_move_to_the_next_chunk():
    prompt = " ".join(f"w{i}" for i in range(70)) + " , x1 x2 x3 x4 x5 x6"
    first, second = chunk_prompts([prompt], word_tokenize, [9], 1, SPECIAL)[0]
    assert first.tokens[70:73] == [WORDS["w69"], 267, EOS]  # the chunk ends at the comma
    assert second.tokens[1:8] == [*word_tokenize(["x1 x2 x3 x4 x5 x6"])[0], EOS]


def test_moved_vector_slots_keep_their_old_splice_position_like_the_host():
    """The host moves the tokens after the comma but not its list of splice positions ("fixes"): txt2img then
    writes the vectors over padding in the first chunk. Training must see the same thing."""
    prompt = " ".join(f"w{i}" for i in range(70)) + f" , x1 {NAME} x3 x4"
    first, second = chunk_prompts([prompt], word_tokenize, word_tokenize([NAME])[0], 2, SPECIAL)[0]
    assert first.vector_starts == [73] and first.tokens[73:75] == [EOS, EOS]
    assert second.vector_starts == [] and second.tokens[1:6] == [WORDS["x1"], 0, 0, WORDS["x3"], WORDS["x4"]]


def test_sd2_pads_after_the_first_eos_with_zero():
    sd2_special = SpecialTokens(bos=BOS, eos=EOS, pad=0, comma=267)
    [[chunk]] = chunk_prompts(["a b"], word_tokenize, [9], 1, sd2_special)
    assert chunk.tokens == [BOS, *word_tokenize(["a b"])[0], EOS] + [0] * 73


def test_empty_prompt_is_one_empty_chunk():
    assert chunk_prompts([""], word_tokenize, [9], 1, SPECIAL)[0][0].tokens == [BOS] + [EOS] * 76


@pytest.mark.parametrize("count", [0, 76])
def test_vector_count_must_fit_a_chunk(count):
    with pytest.raises(UserError, match="1 to 75 vectors"):
        chunk_prompts(["a"], word_tokenize, [9], count, SPECIAL)


def test_tiny_models_are_the_same_for_the_same_seed(tiny_models, tmp_path):
    again = build_tiny_sd(tmp_path / "again", "sd1")
    for weights in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (again / weights).read_bytes() == (tiny_models["sd1"] / weights).read_bytes()


# -- what the model is -------------------------------------------------------------------------------------------

def test_model_facts(sd1, sd2):
    assert sd1.model_info() == ModelInfo(family="sd1", name="sd1", shorthash=None)
    assert sd2.model_info() == ModelInfo(family="sd2", name="sd2-v", shorthash=None)
    assert sd1.noise_schedule().prediction_type == "epsilon"
    assert sd2.noise_schedule().prediction_type == "v_prediction"
    assert sd1.native_size == sd2.native_size == 64
    assert (sd1.device.type, sd1.dtype) == ("cpu", torch.float32)
    schedule = sd1.noise_schedule().alphas_cumprod
    assert schedule.shape == (1000,) and schedule.dtype == torch.float32 and bool((schedule.diff() < 0).all())


def test_text_encoder_width_and_vocabulary_norm(backend):
    [info] = backend.text_encoders()
    rows = backend._parts.text_encoder.get_input_embeddings().weight
    assert info.key == EMBEDDING_KEY and info.width == rows.shape[1]
    assert info.vocabulary_norm == pytest.approx(float(rows.norm(dim=1).mean()))


def test_every_network_is_frozen_in_eval_mode_with_fused_attention(backend):
    from diffusers.models.attention_processor import AttnProcessor2_0

    parts = backend._parts
    for network in (parts.text_encoder, parts.unet, parts.vae):
        assert not network.training and not any(p.requires_grad for p in network.parameters())
    for network in (parts.unet, parts.vae):
        assert all(isinstance(p, AttnProcessor2_0) for p in network.attn_processors.values())


# -- init vectors ------------------------------------------------------------------------------------------------

def test_empty_init_text_gives_zeros(backend):
    vectors = backend.init_vectors("", 3)
    width = backend.text_encoders()[0].width
    assert vectors.keys() == {EMBEDDING_KEY}
    assert torch.equal(vectors[EMBEDDING_KEY], torch.zeros(3, width))


def test_init_tokens_are_spread_over_the_vectors(backend):
    red, cat = token_rows(backend, "red"), token_rows(backend, "cat")
    rows = backend.init_vectors("red cat", 4)[EMBEDDING_KEY]
    assert rows.dtype == torch.float32 and not rows.requires_grad
    assert torch.equal(rows, torch.cat([red, red, cat, cat]))


def test_init_text_longer_than_the_vectors_follows_each_host_tokenizer(sd1, sd2):
    text = "red cat dog bird"
    # SD1's host tokenizes with max_length=n_vectors (keeps the first tokens); SD2's spreads all of them.
    assert torch.equal(sd1.init_vectors(text, 2)[EMBEDDING_KEY], token_rows(sd1, "red cat"))
    assert torch.equal(sd2.init_vectors(text, 2)[EMBEDDING_KEY], token_rows(sd2, "red dog"))


# -- prompts -------------------------------------------------------------------------------------------------------

def test_prompt_without_the_name_is_what_clip_itself_computes(backend):
    encoded = backend.encode_prompts(["a photo of a dog"], NAME, backend.init_vectors("cat", 1))
    torch.testing.assert_close(encoded, reference_encoding(backend, "a photo of a dog"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prompt, word_prompt", [
    (f"a photo of {NAME}", "a photo of red cat"),
    (f"a {NAME} on a hill, {NAME}", "a red cat on a hill, red cat"),
])
def test_vectors_stand_exactly_where_the_name_stands(backend, prompt, word_prompt):
    """Vectors equal to the token rows of "red cat" must give exactly the encoding of the prompt with "red cat"."""
    vectors = {EMBEDDING_KEY: token_rows(backend, "red cat")}
    encoded = backend.encode_prompts([prompt], NAME, vectors)
    torch.testing.assert_close(encoded, reference_encoding(backend, word_prompt), rtol=1e-5, atol=1e-5)


def test_gradient_reaches_the_vectors_only_through_prompts_with_the_name(backend):
    vectors = trainable(backend.init_vectors("person", 2))
    encoded = backend.encode_prompts(["a photo of a dog", f"a photo of {NAME}"], NAME, vectors)
    encoded[0].square().sum().backward(retain_graph=True)
    grad = vectors[EMBEDDING_KEY].grad
    assert grad is None or not grad.any()
    encoded[1].square().sum().backward()
    assert vectors[EMBEDDING_KEY].grad.abs().sum() > 0


def test_a_training_step_gives_the_vectors_a_gradient_and_no_weight_a_gradient(backend):
    torch.manual_seed(0)
    vectors = trainable(backend.init_vectors("person", 2))
    mean, std = backend.encode_images(torch.rand(2, 3, 64, 64) * 2 - 1)
    latents = mean + std * torch.randn_like(std)
    timesteps = torch.tensor([100, 700])
    alphas = backend.noise_schedule().alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noise = torch.randn_like(latents)
    conditioning = backend.encode_prompts([f"a photo of {NAME}", f"{NAME}, smiling"], NAME, vectors)
    prediction = backend.predict(alphas.sqrt() * latents + (1 - alphas).sqrt() * noise, timesteps, conditioning)
    assert prediction.shape == latents.shape and prediction.dtype == torch.float32
    torch.nn.functional.mse_loss(prediction, noise).backward()
    grad = vectors[EMBEDDING_KEY].grad
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0 and torch.isfinite(grad).all()
    parts = backend._parts
    for network in (parts.text_encoder, parts.unet, parts.vae):
        assert all(p.grad is None for p in network.parameters())


def test_long_prompts_are_encoded_chunk_by_chunk(backend):
    long = ", ".join(["red"] * 45) + f", {NAME}"  # 93 tokens
    vectors = backend.init_vectors("person", 1)
    encoded = backend.encode_prompts([long, "a photo"], NAME, vectors)
    width = backend.text_encoders()[0].width
    assert encoded.shape == (2, 154, width)
    # The short prompt's second chunk is the empty chunk, as in the host's batch padding.
    torch.testing.assert_close(encoded[1, 77:], reference_encoding(backend, "")[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encoded[1, :77], reference_encoding(backend, "a photo")[0], rtol=1e-5, atol=1e-5)


def test_emphasis_weighs_token_outputs_and_restores_the_mean(backend):
    vectors = backend.init_vectors("person", 1)
    plain = backend.encode_prompts(["a photo"], NAME, vectors)
    emphasised = backend.encode_prompts(["a (photo)"], NAME, vectors)
    weights = torch.ones(1, 77, 1)
    weights[0, 2] = 1.1  # "photo" is the second token after BOS
    expected = plain * weights
    expected = expected * (plain.mean() / expected.mean())
    torch.testing.assert_close(emphasised, expected, rtol=1e-5, atol=1e-6)


def test_clip_skip_uses_an_earlier_layer_on_sd1(tiny_models):
    backend = DiffusersBackend.load(tiny_models["sd1"], clip_skip=2)
    encoded = backend.encode_prompts(["a photo"], NAME, backend.init_vectors("", 1))
    torch.testing.assert_close(encoded, reference_encoding(backend, "a photo", layer=-2), rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="clip skip"):
        DiffusersBackend.load(tiny_models["sd1"], clip_skip=3)


def test_name_without_tokens_and_wrong_vector_width_are_refused(sd1):
    with pytest.raises(UserError, match="no tokens"):
        sd1.encode_prompts(["a photo"], " ", sd1.init_vectors("", 1))
    with pytest.raises(ValueError, match="emb_params"):
        sd1.encode_prompts(["a photo"], NAME, {EMBEDDING_KEY: torch.zeros(1, 7)})


def test_half_precision_keeps_the_vectors_and_their_gradient_in_float32(tiny_models):
    backend = DiffusersBackend.load(tiny_models["sd1"], precision="bf16")
    vectors = trainable(backend.init_vectors("person", 2))
    conditioning = backend.encode_prompts([f"a photo of {NAME}"], NAME, vectors)
    assert conditioning.dtype == torch.bfloat16
    backend.predict(torch.randn(1, 4, 8, 8), torch.tensor([500]), conditioning).square().mean().backward()
    assert vectors[EMBEDDING_KEY].grad.dtype == torch.float32 and vectors[EMBEDDING_KEY].grad.abs().sum() > 0


# -- images --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("height, width", [(64, 64), (128, 64)])
def test_encode_images_gives_scaled_latent_mean_and_std(backend, height, width):
    mean, std = backend.encode_images(torch.rand(2, 3, height, width) * 2 - 1)
    assert mean.shape == std.shape == (2, 4, height // 8, width // 8)
    assert mean.dtype == std.dtype == torch.float32 and bool((std > 0).all())


def test_preview_is_a_deterministic_image_of_the_requested_size(backend):
    vectors = backend.init_vectors("person", 2)
    request = PreviewRequest(prompt=f"a photo of {NAME}", negative_prompt="blurry", seed=3, steps=2,
                             width=64, height=48)
    image = backend.render_preview(request, NAME, vectors)
    assert isinstance(image, Image.Image) and image.size == (64, 48)
    again = backend.render_preview(request, NAME, vectors)
    assert again.tobytes() == image.tobytes()


def test_preview_with_a_negative_prompt_longer_than_the_prompt(backend):
    negative = ", ".join(f"bad{i}" for i in range(60))
    request = PreviewRequest(prompt=NAME, negative_prompt=negative, steps=2, width=64, height=64)
    assert backend.render_preview(request, NAME, backend.init_vectors("", 1)).size == (64, 64)


def test_preview_size_must_be_a_multiple_of_8(sd1):
    with pytest.raises(UserError, match="multiple of 8"):
        sd1.render_preview(PreviewRequest(prompt="a", width=60, height=64), NAME, sd1.init_vectors("", 1))


# -- loading -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["no/such/folder/model", "missing.safetensors", "./relative-missing"])
def test_a_missing_model_is_a_user_error(tmp_path, monkeypatch, missing):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="model not found"):
        DiffusersBackend.load(missing)


def test_a_folder_that_is_not_a_diffusers_model_is_refused(tmp_path):
    with pytest.raises(UserError, match="model_index.json"):
        DiffusersBackend.load(tmp_path)
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": []}')
    with pytest.raises(UserError, match="SDXL"):
        DiffusersBackend.load(tmp_path)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a .safetensors or .ckpt"):
        DiffusersBackend.load(tmp_path / "notes.txt")


def test_an_unreachable_hub_is_a_user_error(monkeypatch, online):  # noqa: F811 - the fixture
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    with pytest.raises(UserError, match=rf"ti-studio-tests/no-such-model from http://127.0.0.1:{closed_port}.*HF_ENDPOINT"):
        DiffusersBackend.load("ti-studio-tests/no-such-model")


def test_hub_downloads_exactly_the_files_a_training_run_loads(tiny_models):
    from huggingface_hub.utils import filter_repo_objects

    folder = tiny_models["sd1"]
    present = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    extra = ["safety_checker/model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
             "unet/diffusion_pytorch_model.bin", "v1-5-pruned-emaonly.safetensors", "feature_extractor/x.json"]
    chosen = list(filter_repo_objects(present + extra, allow_patterns=diffusers_loading._COMPONENT_FILES))
    assert sorted(chosen) == present


# -- single checkpoint files -----------------------------------------------------------------------------------

def fake_checkpoint(path, cross_attention_width=768, in_channels=4, extra=None):
    tensors = {
        diffusers_loading._CROSS_ATTENTION_KEY: torch.zeros(320, cross_attention_width),
        diffusers_loading._UNET_INPUT_KEY: torch.zeros(320, in_channels, 3, 3),
        **(extra or {}),
    }
    if path.suffix == ".ckpt":
        torch.save({"state_dict": tensors, "global_step": 1}, path)
    else:
        save_file(tensors, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_checkpoint_family_is_read_from_tensor_shapes(tmp_path, suffix):
    assert diffusers_loading.checkpoint_family(fake_checkpoint(tmp_path / f"a{suffix}")) == "sd1"
    assert diffusers_loading.checkpoint_family(fake_checkpoint(tmp_path / f"b{suffix}", 1024)) == "sd2"


def test_unsupported_checkpoints_are_refused_by_name(tmp_path):
    sdxl = fake_checkpoint(tmp_path / "xl.safetensors", extra={"conditioner.embedders.0.x": torch.zeros(1)})
    with pytest.raises(UserError, match="SDXL"):
        DiffusersBackend.load(sdxl)
    with pytest.raises(UserError, match="inpainting"):
        DiffusersBackend.load(fake_checkpoint(tmp_path / "inpaint.safetensors", in_channels=9))
    save_file({"weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(UserError, match="not a Stable Diffusion"):
        DiffusersBackend.load(tmp_path / "other.safetensors")
    (tmp_path / "broken.ckpt").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        DiffusersBackend.load(tmp_path / "broken.ckpt")


def test_a_checkpoint_that_does_not_fit_its_config_is_a_user_error(tmp_path, tiny_models):
    checkpoint = fake_checkpoint(tmp_path / "half.safetensors", cross_attention_width=32)
    with pytest.raises(UserError, match="cannot load half.safetensors with the sd1 configuration"):
        DiffusersBackend.load(checkpoint, config=tiny_models["sd1"])


def test_host_shorthash_is_the_first_ten_hex_digits_of_sha256(tmp_path):
    data = zlib.compress(bytes(range(256)) * 5000)  # more than one read block
    (tmp_path / "model.safetensors").write_bytes(data)
    assert host_shorthash(tmp_path / "model.safetensors") == hashlib.sha256(data).hexdigest()[:10]
