"""The training backend over the WebUI's loaded model, against the host double (``tests/host_double``: the v1.10.1
signatures the adapter calls) holding the tiny SD as an ldm-shaped model (``tests/host_sd_model.py``).

The trainer trains through the host's own prompt path (the embedding database and the hijacked text encoder), the
model stays bit-identical, and closing the backend gives the host back every piece of state it changed.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from PIL import ImageChops

import photos
from host_env import host_modules
from host_sd_model import load_host_model
from tiny_sd import weights_fingerprint
from ti_studio.errors import UserError
from ti_studio.training.backend import ModelInfo, PreviewRequest
from ti_studio.training.config import TrainConfig
from ti_studio.training.embedding_file import load_embedding
from ti_studio.training.run_files import read_loss_log
from ti_studio.training.trainer import TrainCallbacks, train
from ti_studio.webui.sd_model_backend import EMBEDDING_KEY, NO_MODEL, load_sd_model_backend

NAME = "tiface"
PROMPT = f"a photo of {NAME}, smiling"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return photos.face_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture
def host(monkeypatch):
    """The host double importable for this test only; its ``modules*`` leave ``sys.modules`` afterwards."""
    with host_modules(monkeypatch):
        from modules import devices, processing, sd_hijack, sd_hijack_checkpoint, shared

        yield SimpleNamespace(devices=devices, processing=processing, sd_hijack=sd_hijack,
                              checkpoint=sd_hijack_checkpoint, shared=shared, db=sd_hijack.model_hijack.embedding_db)


def loaded(host, tiny_models, kind="sd1"):
    """The tiny model of ``kind`` as the host's loaded checkpoint."""
    host.shared.sd_model = load_host_model(tiny_models[kind], kind)
    return host.shared.sd_model


def config(**changes) -> TrainConfig:
    values = dict(name=NAME, steps=20, save_every=10, preview_every=0, size=64, learning_rate="0.03", vectors=2,
                  init_text="woman", seed=3)
    values.update(changes)
    return TrainConfig(**values)


def host_embedding(vec: torch.Tensor, name: str = NAME):
    """An embedding as the host holds one it loaded from a file (textual_inversion.py L312-317)."""
    from modules.textual_inversion.textual_inversion import Embedding

    embedding = Embedding(vec, name)
    embedding.vectors, embedding.shape = vec.shape
    return embedding


def trainable(vectors):
    return {key: value.clone().requires_grad_(True) for key, value in vectors.items()}


# -- training in the host ----------------------------------------------------------------------------------------


def test_training_learns_through_the_host_and_gives_the_host_its_state_back(host, tiny_models, dataset, tmp_path,
                                                                             monkeypatch):
    model = loaded(host, tiny_models)
    unfrozen = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert unfrozen  # like ldm, the double leaves the UNet's weights trainable
    before = weights_fingerprint(model)
    collected = []
    monkeypatch.setattr(host.devices, "torch_gc", lambda: collected.append(True))
    during = []

    def look_at_the_host(report):
        embedding = host.db.word_embeddings.get(NAME)
        during.append((host.sd_hijack.crossattention_forward, bool(host.checkpoint.stored),
                       embedding is not None and embedding.vectors == 2))

    with load_sd_model_backend() as backend:
        initial = backend.init_vectors("woman", 2)[EMBEDDING_KEY]
        result = train(config(), backend, dataset, tmp_path / "run", callbacks=TrainCallbacks(on_step=look_at_the_host))

    assert result.finished and result.steps_done == 20
    assert set(during) == {("original", True, True)}  # optimizations off, checkpointing on, our vectors registered
    fixed = [row["fixed_loss"] for row in read_loss_log(tmp_path / "run" / "loss.csv") if row["fixed_loss"] is not None]
    # Fixed images, noise and timesteps: a fall is learning, not luck (a tiny random UNet leaves little to learn).
    assert len(fixed) == 3 and fixed[-1] < fixed[0] * 0.997 and max(fixed[1:]) < fixed[0]
    trained = load_embedding(tmp_path / "run" / "embeddings" / f"{NAME}-20.safetensors")
    assert not torch.allclose(trained.vectors[EMBEDDING_KEY], initial)
    assert {key: trained.metadata[key] for key in ("model_family", "sd_checkpoint_name", "sd_checkpoint")} == {
        "model_family": "sd1", "sd_checkpoint_name": "sd1", "sd_checkpoint": "0123456789"}

    assert weights_fingerprint(model) == before
    assert all(parameter.grad is None for parameter in model.parameters())
    assert {name for name, parameter in model.named_parameters() if parameter.requires_grad} == unfrozen
    assert host.db.word_embeddings == {} and host.db.ids_lookup == {}
    assert host.sd_hijack.crossattention_forward == "optimized" and host.checkpoint.stored == []
    assert collected


def test_the_conditioning_is_what_txt2img_computes_with_the_saved_embedding(host, tiny_models):
    model = loaded(host, tiny_models)
    with load_sd_model_backend() as backend:
        vectors = trainable(backend.init_vectors("a smiling woman", 3))
        conditioning = backend.encode_prompts([PROMPT, "a photo of a cat"], NAME, vectors)
        conditioning[0].pow(2).mean().backward()
        assert vectors[EMBEDDING_KEY].grad is not None and vectors[EMBEDDING_KEY].grad.abs().sum() > 0
        assert all(parameter.grad is None for parameter in model.parameters())
        untouched = conditioning[1]

    # After training, the host loads the saved vectors as an embedding file and txt2img encodes the prompt.
    host.db.register_embedding(host_embedding(vectors[EMBEDDING_KEY].detach()), model)
    with torch.no_grad():
        expected = model.cond_stage_model([PROMPT, "a photo of a cat"])
    assert torch.equal(conditioning.detach(), expected)
    host.db.register_embedding_by_name(None, model, NAME)
    with torch.no_grad():
        assert torch.equal(untouched.detach(), model.cond_stage_model(["a photo of a cat"])[0])
        assert not torch.allclose(conditioning[0].detach(), model.cond_stage_model([PROMPT])[0])  # the word itself


def test_a_same_named_embedding_is_hidden_while_training_and_comes_back(host, tiny_models):
    model = loaded(host, tiny_models)
    on_disk = host_embedding(torch.randn(1, 32))
    host.db.register_embedding(on_disk, model)
    with load_sd_model_backend() as backend:
        vectors = backend.init_vectors("woman", 2)
        backend.encode_prompts([PROMPT], NAME, vectors)
        ours = host.db.word_embeddings[NAME]
        assert ours is not on_disk and ours.vec is not None and ours.vectors == 2
    assert host.db.word_embeddings == {NAME: on_disk}
    assert [embedding for _, embedding in host.db.ids_lookup[model.cond_stage_model.tokenize([NAME])[0][0]]] == [
        on_disk]


def test_an_embedding_reload_during_training_does_not_lose_the_vectors(host, tiny_models):
    loaded(host, tiny_models)
    with load_sd_model_backend() as backend:
        vectors = trainable(backend.init_vectors("woman", 2))
        first = backend.encode_prompts([PROMPT], NAME, vectors)
        host.db.load_textual_inversion_embeddings(force_reload=True)  # the Extra networks refresh button
        assert NAME not in host.db.word_embeddings
        again = backend.encode_prompts([PROMPT], NAME, vectors)
        assert torch.equal(first, again)
        again.sum().backward()
        assert vectors[EMBEDDING_KEY].grad.abs().sum() > 0
    assert host.db.word_embeddings == {}


# -- previews ----------------------------------------------------------------------------------------------------


def test_previews_are_txt2img_jobs_with_the_current_vectors(host, tiny_models, monkeypatch):
    loaded(host, tiny_models)
    reloads = []
    monkeypatch.setattr(host.db, "load_textual_inversion_embeddings", lambda force_reload=False: reloads.append(1))
    jobs = []
    real_process_images = host.processing.process_images
    monkeypatch.setattr(host.processing, "process_images", lambda p: jobs.append(p) or real_process_images(p))
    request = PreviewRequest(prompt=PROMPT, negative_prompt="blurry", seed=5, steps=2, width=64, height=64)
    with load_sd_model_backend() as backend:
        training = trainable(backend.init_vectors("woman", 2))
        backend.encode_prompts([PROMPT], NAME, training)
        embedding = host.db.word_embeddings[NAME]
        start = backend.init_vectors("woman", 2)
        other = backend.init_vectors("a red car", 2)
        first, changed, repeated = (backend.render_preview(request, NAME, vectors)
                                    for vectors in (start, other, start))
        assert host.db.word_embeddings[NAME] is embedding and embedding.vec.requires_grad  # training's vec is back
        with pytest.raises(UserError, match="multiple of 8"):
            backend.render_preview(PreviewRequest(prompt=PROMPT, width=60, height=64), NAME, start)
    assert first.size == (64, 64)
    assert ImageChops.difference(first, repeated).getbbox() is None  # same vectors, same seed: same image
    assert ImageChops.difference(first, changed).getbbox() is not None  # no stale cached conditioning
    assert reloads == []  # a reload would have replaced the registered embedding
    assert host.processing.StableDiffusionProcessing.cached_c == [None, None]  # nothing made with it is kept
    assert {job.sampler_name for job in jobs} == {"Euler a"}  # the preset's sampler: no host "autocorrection"


def test_host_training_settings_are_honoured(host, tiny_models, monkeypatch):
    model = loaded(host, tiny_models)
    monkeypatch.setattr(host.shared.opts, "unload_models_when_training", True)
    monkeypatch.setattr(host.shared.opts, "training_xattention_optimizations", True)
    monkeypatch.setattr(host.devices, "device", torch.device("cpu", 0))  # told apart from devices.cpu
    vae = model.first_stage_model
    moves = []

    def to(*args, **kwargs):
        moves.append(args[0])
        return type(vae).to(vae, *args, **kwargs)

    monkeypatch.setattr(vae, "to", to)
    with load_sd_model_backend() as backend:
        assert host.sd_hijack.crossattention_forward == "optimized"  # the user chose to keep them on
        assert host.shared.parallel_processing_allowed is False
        backend.encode_images(torch.zeros(1, 3, 64, 64))
        vectors = backend.init_vectors("woman", 2)
        noisy = torch.zeros(1, 4, 8, 8)
        backend.predict(noisy, torch.tensor([10]), backend.encode_prompts([PROMPT], NAME, vectors))
        backend.render_preview(PreviewRequest(prompt=PROMPT, steps=2, width=64, height=64), NAME, vectors)
        backend.predict(noisy, torch.tensor([10]), backend.encode_prompts([PROMPT], NAME, vectors))
        assert moves == [host.devices.cpu, host.devices.device, host.devices.cpu]
    assert moves[-1] == host.devices.device  # back where the host keeps it
    assert host.shared.parallel_processing_allowed is True


# -- what the model is -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, family, prediction, size, width", [
    ("sd1", "sd1", "epsilon", 512, 32), ("sd2-v", "sd2", "v_prediction", 768, 64)])
def test_the_model_family_schedule_and_sizes(host, tiny_models, dataset, tmp_path, kind, family, prediction, size,
                                             width):
    model = loaded(host, tiny_models, kind)
    with load_sd_model_backend() as backend:
        schedule = backend.noise_schedule()
        assert schedule.prediction_type == prediction
        assert torch.equal(schedule.alphas_cumprod, model.alphas_cumprod)
        assert backend.native_size == size and backend.dtype == torch.float32
        [encoder] = backend.text_encoders()
        vocabulary = model.cond_stage_model.wrapped.transformer.text_model.embeddings.token_embedding.wrapped.weight
        assert encoder.key == EMBEDDING_KEY and encoder.width == width
        assert encoder.vocabulary_norm == pytest.approx(float(vocabulary.norm(dim=1).mean()))
        assert backend.model_info() == ModelInfo(family=family, name=kind, shorthash="0123456789")
        result = train(config(steps=2, save_every=2), backend, dataset, tmp_path / "run")
    assert result.finished


@pytest.mark.parametrize("kind", ["sd1", "sd2-v"])
def test_init_vectors_follow_the_host_rule(host, tiny_models, kind):
    model = loaded(host, tiny_models, kind)
    text = "a photo of a smiling woman"
    tokenizer = model.cond_stage_model.wrapped.tokenizer
    rows = model.cond_stage_model.wrapped.transformer.text_model.embeddings.token_embedding.wrapped.weight
    with load_sd_model_backend() as backend:
        for count in (1, 2, 4, 9):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if kind == "sd1":
                ids = ids[:count]  # SD1's host tokenizes with max_length=count; SD2's (OpenCLIP) keeps all
            expected = torch.stack([rows[ids[i * len(ids) // count]] for i in range(count)])
            assert torch.equal(backend.init_vectors(text, count)[EMBEDDING_KEY], expected)
        assert not backend.init_vectors("", 3)[EMBEDDING_KEY].any()
        assert not backend.init_vectors(" ", 3)[EMBEDDING_KEY].any()  # no tokens: zeros, where the host fails


# -- refusals ----------------------------------------------------------------------------------------------------


def model_like(**changes):
    """Just the fields the refusals read, of a loaded SD1 model (sd_models_types.WebuiSdModel)."""
    fields = dict(is_sd1=True, is_sd2=False, is_sdxl=False, is_sd3=False, lowvram=False, parameterization="eps",
                  model=SimpleNamespace(conditioning_key="crossattn", diffusion_model=torch.nn.Linear(1, 1)))
    fields.update(changes)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("model, setting, precision, message", [
    (None, None, "auto", NO_MODEL),
    (model_like(is_sd1=False, is_sdxl=True), None, "auto", "SDXL training is not supported yet"),
    (model_like(is_sd1=False, is_sd3=True), None, "auto", "SD3 training is not supported"),
    (model_like(is_sd1=False), None, "auto", "not an SD 1.x or SD 2.x model"),
    (model_like(), ("cmd_opts", "lowvram"), "auto", "not possible with the WebUI's --lowvram"),
    (model_like(model=SimpleNamespace(conditioning_key="hybrid")), None, "auto", "inpainting"),
    (model_like(parameterization="x0"), None, "auto", "predicts 'x0'"),
    (model_like(), None, "fp16", "runs this model in fp32"),
    (model_like(), None, "fp8", "unknown precision"),
], ids=["no-model", "sdxl", "sd3", "unknown", "lowvram", "inpainting", "x0", "precision", "bad-precision"])
def test_what_cannot_be_trained_is_refused_before_the_host_changes(host, monkeypatch, model, setting, precision,
                                                                   message):
    host.shared.sd_model = model
    if setting:
        monkeypatch.setattr(getattr(host.shared, setting[0]), setting[1], True)
    with pytest.raises(UserError, match=re.escape(message)):
        load_sd_model_backend(precision)
    assert host.sd_hijack.crossattention_forward == "optimized" and host.checkpoint.stored == []


def test_a_model_unloaded_to_ram_is_refused(host, monkeypatch):
    host.shared.sd_model = model_like()
    monkeypatch.setattr(host.devices, "device", torch.device("meta"))  # the host's GPU, while the model is in RAM
    with pytest.raises(UserError, match="Load SD checkpoint to VRAM"):
        load_sd_model_backend()
