"""The trainer on a tiny diffusers Stable Diffusion: it learns, touches nothing but the embedding, resumes exactly."""

import pytest
import torch
from PIL import Image

import photos
from tiny_sd import weights_fingerprint
from ti_studio.backends.diffusers_backend import DiffusersBackend
from ti_studio.errors import UserError
from ti_studio.training.config import TrainConfig
from ti_studio.training.embedding_file import load_embedding
from ti_studio.training.run_files import read_loss_log
from ti_studio.training.trainer import TrainCallbacks, train


@pytest.fixture(scope="module")
def backend(sd1_model_dir):
    return DiffusersBackend.load(sd1_model_dir, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return photos.face_dataset(tmp_path_factory.mktemp("dataset"))


def config(**changes) -> TrainConfig:
    values = dict(name="tiface", steps=40, save_every=10, preview_every=0, size=64, learning_rate="0.01",
                  vectors=2, init_text="woman", seed=3)
    values.update(changes)
    return TrainConfig(**values)


def _fingerprint(backend) -> str:
    return weights_fingerprint(backend._parts.unet, backend._parts.text_encoder, backend._parts.vae)


@pytest.mark.parametrize("norm_control", ["off", "cap", "directional"])
def test_fixed_noise_loss_falls_and_frozen_weights_stay_bit_identical(backend, dataset, tmp_path, norm_control):
    before = _fingerprint(backend)
    result = train(config(steps=150, save_every=50, norm_control=norm_control), backend, dataset, tmp_path / "run")
    assert result.finished and result.stopped_reason is None and result.steps_done == 150
    assert _fingerprint(backend) == before  # only the embedding was trained
    assert not [p for net in (backend._parts.unet, backend._parts.text_encoder)
                for p in net.parameters() if p.grad is not None]
    fixed = [row["fixed_loss"] for row in read_loss_log(tmp_path / "run" / "loss.csv")
             if row["fixed_loss"] is not None]
    assert len(fixed) == 4  # step 0 and the snapshots at 50, 100, 150
    # The objective is deterministic (fixed images, noise, timesteps), so a fall is learning, not luck. A tiny
    # random UNet leaves little to learn, hence the modest margin.
    assert fixed[-1] < fixed[0] * 0.995 and max(fixed[1:]) < fixed[0]


def test_norm_control_keeps_the_embedding_in_the_vocabulary_scale(backend, dataset, tmp_path):
    vocabulary_norm = backend.text_encoders()[0].vocabulary_norm
    norms = {}
    for mode in ("off", "cap", "directional"):
        train(config(norm_control=mode, learning_rate="0.05", steps=30, save_every=30), backend, dataset,
              tmp_path / mode)
        vectors = load_embedding(tmp_path / mode / "embeddings" / "tiface-30.safetensors").vectors["emb_params"]
        norms[mode] = vectors.norm(dim=1)
    assert norms["off"].max() > 5 * vocabulary_norm  # plain TI inflates the norm (the research's complaint)
    assert norms["cap"].max() <= 3 * vocabulary_norm * (1 + 1e-5)
    assert torch.allclose(norms["directional"], torch.full((2,), vocabulary_norm), rtol=1e-5)


def test_resume_continues_exactly_like_an_uninterrupted_run(backend, dataset, tmp_path):
    whole = train(config(), backend, dataset, tmp_path / "whole")

    steps_seen = []

    def stop_after_17():
        return len(steps_seen) > 17  # step 0's report plus 17 steps

    first = train(config(), backend, dataset, tmp_path / "split",
                  callbacks=TrainCallbacks(on_step=lambda r: steps_seen.append(r.step), should_stop=stop_after_17))
    assert first.stopped_reason == "interrupted" and first.steps_done == 17
    assert first.last_good_snapshot.name == "tiface-17.safetensors"  # the interrupted step is kept, resumable
    second = train(config(), backend, dataset, tmp_path / "split", resume=True)
    assert second.finished and second.steps_done == 40

    for step in (20, 30, 40):
        a = load_embedding(tmp_path / "whole" / "embeddings" / f"tiface-{step}.safetensors").vectors
        b = load_embedding(tmp_path / "split" / "embeddings" / f"tiface-{step}.safetensors").vectors
        assert torch.equal(a["emb_params"], b["emb_params"])
    whole_log = [(r["step"], r["loss"], r["norm"]) for r in read_loss_log(whole.run_dir / "loss.csv")]
    split_log = [(r["step"], r["loss"], r["norm"]) for r in read_loss_log(second.run_dir / "loss.csv")]
    assert whole_log == split_log  # the same numbers, and no duplicated rows for the redone steps


def test_resume_refuses_other_settings_and_a_new_run_refuses_an_existing_one(backend, dataset, tmp_path):
    train(config(steps=10), backend, dataset, tmp_path / "run")
    with pytest.raises(UserError, match="already holds a run"):
        train(config(steps=10), backend, dataset, tmp_path / "run")
    with pytest.raises(UserError, match="other training settings"):
        train(config(steps=20, learning_rate="0.02"), backend, dataset, tmp_path / "run", resume=True)
    longer = train(config(steps=20), backend, dataset, tmp_path / "run", resume=True)  # more steps is fine
    assert longer.steps_done == 20
    with pytest.raises(UserError, match="nothing to resume"):
        train(config(), backend, dataset, tmp_path / "empty", resume=True)


class _PoisonedBackend:
    """The real backend, except that from the Nth prediction on the UNet returns NaN (an fp16 overflow)."""

    def __init__(self, inner, poison_from: int):
        self._inner, self._calls, self._poison_from = inner, 0, poison_from

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def predict(self, noisy, timesteps, conditioning):
        out = self._inner.predict(noisy, timesteps, conditioning)
        if conditioning.requires_grad:  # training predictions only, not the evaluation
            self._calls += 1
            if self._calls >= self._poison_from:
                return out * float("nan")
        return out


def test_nan_loss_stops_and_keeps_the_last_good_snapshot(backend, dataset, tmp_path):
    result = train(config(steps=40, save_every=5), _PoisonedBackend(backend, poison_from=13), dataset,
                   tmp_path / "run")
    assert not result.finished and result.steps_done == 12
    assert "nan" in result.stopped_reason and "tiface-10.safetensors" in result.stopped_reason
    assert result.last_good_snapshot.name == "tiface-10.safetensors"
    assert sorted(p.name for p in (tmp_path / "run" / "embeddings").iterdir()) == [
        "tiface-10.safetensors", "tiface-5.safetensors"]
    assert torch.isfinite(load_embedding(result.last_good_snapshot).vectors["emb_params"]).all()


def test_snapshots_load_in_diffusers_and_change_its_output(backend, dataset, sd1_model_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    result = train(config(steps=20, output_format="both", preview_every=20), backend, dataset, tmp_path / "run")
    assert (tmp_path / "run" / "embeddings" / "tiface-20.pt").is_file()
    with Image.open(tmp_path / "run" / "previews" / "tiface-20.png") as preview:
        assert preview.size == (64, 64)
    pipe = StableDiffusionPipeline.from_pretrained(sd1_model_dir, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    def render(prompt):
        generator = torch.Generator().manual_seed(0)
        return pipe(prompt, num_inference_steps=2, height=64, width=64, generator=generator, output_type="np").images

    plain = render("a photo of tiface")
    pipe.load_textual_inversion(str(result.last_good_snapshot), token="tiface")
    learned = render("a photo of tiface")
    assert abs(learned - plain).mean() > 1e-3  # the trained token changes what the model draws


def test_v_prediction_model_trains(tmp_path, dataset, tiny_models):
    backend = DiffusersBackend.load(tiny_models["sd2-v"], device="cpu")
    result = train(config(steps=20, save_every=10), backend, dataset, tmp_path / "run")
    assert result.finished
    vectors = load_embedding(result.last_good_snapshot).vectors["emb_params"]
    assert vectors.shape == (2, backend.text_encoders()[0].width) and torch.isfinite(vectors).all()
