"""The training port over the WebUI's loaded model (``shared.sd_model``, A1111 v1.10.1): the trainer inside the host.

What is trained must be exactly what txt2img later computes, so nothing here re-implements the host's prompt path:
prompts go through the host's own hijacked text encoder (``sd_model.cond_stage_model``: its chunking, emphasis, clip
skip, SD2 padding), and the trainable vectors reach it the way every embedding does, as the ``vec`` of a host
``Embedding`` registered in the host's embedding database under the embedding's name. The host's
``EmbeddingsWithFixes`` splices ``vec`` into the token embeddings, differentiably, so the gradient flows back into
the trainer's float32 tensor. The UNet is the host's ``apply_model``; the VAE its ``encode_first_stage``; previews
are a real txt2img job (``process_images``).

An open backend changes host state the way the host's own Train tab does (``textual_inversion/ui.py``
``train_embedding`` and ``textual_inversion.py`` ``train_embedding``), and :meth:`SdModelBackend.close` puts every
piece back, whatever happened in between:
- cross-attention optimizations are undone (they have produced untrained embeddings, host issues #6483, #7618)
  unless the host's "Use cross attention optimizations while training" setting is on;
- gradient checkpointing (``sd_hijack_checkpoint``) is on, so a step needs no more VRAM than the host's trainer;
- every model weight is frozen: the host leaves the UNet's ``requires_grad`` on, which makes each backward pass
  compute (and keep) a gradient for every UNet weight that nothing uses;
- with "Move VAE and CLIP to RAM when training", the VAE waits on the CPU except while it encodes the dataset or
  decodes a preview, and live previews are off (``shared.parallel_processing_allowed``), as in the host;
- the temporary ``Embedding`` is unregistered (an embedding of the same name that it hid comes back), and the
  host's cached prompt conditionings computed with it are dropped;
- ``devices.torch_gc()`` returns the freed memory: a training run frees what it allocated.

The host imports TI Studio at startup, so ``modules.*`` is imported inside the functions only. Callers hold the
host's GPU queue lock for the backend's whole life (a generation must not run while the model is being trained).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from PIL import Image

from ..errors import UserError
# Previews name their sampler: the host's own trainer names none, and the host logs an "autocorrection" for each.
from ..training.backend import (EMBEDDING_KEY, PREVIEW_SAMPLER, ModelInfo, NoiseSchedule, PreviewRequest,
                                TextEncoderInfo, Vectors, embedding_rows)

#: ldm's ``parameterization`` -> the trainer's prediction type (ddpm.py L71-83 @cf1d67a).
_PREDICTION_TYPES = {"eps": "epsilon", "v": "v_prediction"}
_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

NO_MODEL = "No Stable Diffusion model is loaded: choose a checkpoint at the top of the page"


def load_sd_model_backend(precision: str = "auto") -> SdModelBackend:
    """A training backend over the host's loaded model, host state prepared for training; use it as a context
    manager (or call ``close()``) so the host gets its state back.

    Refused with a :class:`UserError` before anything changes: no model, a model family other than SD 1.x/2.x, an
    inpainting/instruct/depth checkpoint, ``--lowvram``, a model unloaded to RAM, or a ``precision`` other than
    ``auto`` or the one the host runs the model in (its command line decides: ``--no-half``, ``--precision``).
    """
    from modules import devices, shared

    model = shared.sd_model  # the host loads the selected checkpoint here if it never loaded one
    family = _family(model)
    if shared.cmd_opts.lowvram:
        raise UserError("Training is not possible with the WebUI's --lowvram option (its own trainer refuses it "
                        "too): restart the WebUI without it (--medvram works)")
    if model.model.conditioning_key != "crossattn":
        raise UserError("The loaded checkpoint is an inpainting, instruct-pix2pix or depth model: train on its base "
                        "model instead (choose it at the top of the page)")
    if model.parameterization not in _PREDICTION_TYPES:
        raise UserError(f"The loaded model predicts {model.parameterization!r}; only noise (eps) and v-prediction "
                        "models can be trained")
    unet_device = next(model.model.diffusion_model.parameters()).device
    if not model.lowvram and unet_device.type != devices.device.type:
        raise UserError("The model is unloaded to RAM: press \"Load SD checkpoint to VRAM from RAM\" in "
                        "Settings > Actions first")
    return SdModelBackend(model, family, devices.device, _training_dtype(precision, devices.dtype_unet))


def _family(model: Any) -> str:
    if model is None:
        raise UserError(NO_MODEL)
    if getattr(model, "is_sdxl", False):
        raise UserError("SDXL training is not supported yet: TI Studio trains SD 1.x and SD 2.x models. Choose an "
                        "SD 1.x or 2.x checkpoint at the top of the page")
    if getattr(model, "is_sd3", False):
        raise UserError("SD3 training is not supported: TI Studio trains SD 1.x and SD 2.x models. Choose an "
                        "SD 1.x or 2.x checkpoint at the top of the page")
    if getattr(model, "is_sd1", False):
        return "sd1"
    if getattr(model, "is_sd2", False):
        return "sd2"
    raise UserError("The loaded model is not an SD 1.x or SD 2.x model, the only ones TI Studio trains: choose "
                    "another checkpoint at the top of the page")


def _training_dtype(precision: str, model_dtype: torch.dtype) -> torch.dtype:
    """The host's dtype: its weights are shared with txt2img, so they are never cast for training."""
    if precision == "auto":
        return model_dtype
    if precision not in _PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    if _PRECISIONS[precision] != model_dtype:
        running = next((name for name, dtype in _PRECISIONS.items() if dtype == model_dtype), str(model_dtype))
        raise UserError(f"The WebUI runs this model in {running} (its --no-half and --precision options decide), "
                        f"and training uses the WebUI's weights as they are: choose precision auto or {running}")
    return model_dtype


class SdModelBackend:
    """The host's loaded SD1/SD2 model answering :class:`~ti_studio.training.backend.TrainingBackend`."""

    def __init__(self, model: Any, family: str, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.native_size = 768 if model.parameterization == "v" else 512  # SD2-v's 768 px; SD1, SD2-base 512
        self._model = model
        self._family = family
        self._embeddings: dict[str, Any] = {}  # name -> the host Embedding carrying the trainer's vectors
        self._undo = contextlib.ExitStack()  # what close() puts back, last change first
        self._unload_vae = False
        self._vae_parked = False
        try:
            self._prepare_host()
            self._encoder = self._text_encoder_info()
        except BaseException:
            self.close()
            raise
        # The schedule the host samples with: the model's own, or its "Zero Terminal SNR" rescaling where the user
        # chose that for a model trained with it (sd_models.py L647-667).
        self._schedule = NoiseSchedule(
            alphas_cumprod=torch.as_tensor(model.alphas_cumprod).to(device=device, dtype=torch.float32),
            prediction_type=_PREDICTION_TYPES[model.parameterization],
        )

    def __enter__(self) -> SdModelBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the host its state back (see the module doc). Safe to call more than once."""
        try:
            self._undo.close()
        finally:
            self._embeddings.clear()

    # -- what the model is --------------------------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        """The checkpoint as the host's own trainer records it in an embedding (``sd_checkpoint_name`` is the
        checkpoint's ``model_name``; the short hash is None when the host runs with ``--no-hashing``)."""
        checkpoint = self._model.sd_checkpoint_info
        return ModelInfo(family=self._family, name=checkpoint.model_name, shorthash=checkpoint.shorthash)

    def text_encoders(self) -> list[TextEncoderInfo]:
        return [self._encoder]

    def noise_schedule(self) -> NoiseSchedule:
        return self._schedule

    # -- training ------------------------------------------------------------------------------------------------

    def init_vectors(self, init_text: str, n_vectors: int) -> Vectors:
        """The host's ``create_embedding`` rule: the token rows of ``init_text`` from the host's
        ``encode_embedding_init_text`` (SD1 keeps the first ``n_vectors`` tokens, SD2 all), spread over the vectors
        as ``vec[i] = rows[i * len(rows) // n]``; zeros without text (or without tokens, where the host fails)."""
        vectors = torch.zeros(n_vectors, self._encoder.width, device=self.device)
        cond_stage_model = self._model.cond_stage_model
        if not init_text or not cond_stage_model.tokenize([init_text])[0]:  # " ": SD1's host would crash
            return {EMBEDDING_KEY: vectors}
        self._text_encoder_on_device()
        with torch.no_grad():
            rows = cond_stage_model.encode_embedding_init_text(init_text, n_vectors)
        for index in range(n_vectors):
            vectors[index] = rows[index * len(rows) // n_vectors]
        return {EMBEDDING_KEY: vectors}

    def encode_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the host VAE's latent distribution, times the model's ``scale_factor``
        (ldm's ``get_first_stage_encoding`` scales a sample of it), as float32. The pixels are cast to the VAE's
        own dtype (fp32 under ``--no-half-vae``), so no autocast is needed."""
        from modules import devices

        self._vae_ready()
        with torch.no_grad():
            posterior = self._model.encode_first_stage(pixels.to(self.device, devices.dtype_vae))
        scale = float(self._model.scale_factor)
        return posterior.mean.float() * scale, posterior.std.float() * scale

    def encode_prompts(self, prompts: list[str], name: str, vectors: Vectors) -> torch.Tensor:
        """The host's conditioning of ``prompts``, ``[B, 77 * chunks, width]``, computed as the host's trainer does
        (``cond_stage_model(texts)`` under the host's autocast) with ``vectors`` as the embedding ``name``."""
        from modules import devices

        rows = embedding_rows(vectors, self._encoder.width)
        embedding = self._registered(name)
        embedding.vec, embedding.vectors = rows.to(self.device), rows.shape[0]
        self._park_vae()
        with devices.autocast():
            return self._model.cond_stage_model(prompts)

    def predict(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, conditioning: torch.Tensor
                ) -> torch.Tensor:
        """ldm's ``apply_model`` (what the host's ``forward`` calls after noising), as float32 for the loss."""
        from modules import devices

        self._park_vae()
        with devices.autocast():
            output = self._model.apply_model(noisy_latents.to(self.device, self.dtype), timesteps.to(self.device),
                                             conditioning)
        return output.float()

    def render_preview(self, request: PreviewRequest, name: str, vectors: Vectors) -> Image.Image | None:
        """A txt2img image made by the host's ``process_images`` with the current vectors, as the host's trainer
        makes its previews: nothing saved, and no embedding reload (it would replace our ``Embedding``)."""
        from modules import processing

        if request.width % 8 or request.height % 8:
            raise UserError(f"preview size must be a multiple of 8, not {request.width}x{request.height}")
        rows = embedding_rows(vectors, self._encoder.width)
        embedding = self._registered(name)
        training_vec = embedding.vec, embedding.vectors
        embedding.vec, embedding.vectors = rows.detach().to(self.device, torch.float32), rows.shape[0]
        self._vae_ready()
        _forget_cached_conditioning(processing)
        try:
            job = processing.StableDiffusionProcessingTxt2Img(
                sd_model=self._model, prompt=request.prompt, negative_prompt=request.negative_prompt,
                seed=request.seed, steps=request.steps, cfg_scale=request.cfg_scale, sampler_name=PREVIEW_SAMPLER,
                width=request.width,
                height=request.height, do_not_save_grid=True, do_not_save_samples=True,
                do_not_reload_embeddings=True)
            with contextlib.closing(job):
                processed = processing.process_images(job)
        finally:
            embedding.vec, embedding.vectors = training_vec
            _forget_cached_conditioning(processing)
        return processed.images[0] if processed.images else None

    # -- host state ------------------------------------------------------------------------------------------------

    def _prepare_host(self) -> None:
        """The host trainer's set-up, each change paired with its undo on ``self._undo``.

        Freezing the weights needs the checkpointing patch: without it, ldm's transformer and residual blocks use
        their own checkpoint function (ldm ``util.py`` ``CheckpointFunction``), whose backward differentiates with
        respect to the block's weights and fails when they do not require a gradient. The patch replaces exactly
        those blocks' ``forward`` with ``torch.utils.checkpoint``, which differentiates the inputs only.
        """
        from modules import devices, sd_hijack, sd_hijack_checkpoint, shared

        self._undo.callback(devices.torch_gc)  # runs last
        if not shared.opts.training_xattention_optimizations:
            sd_hijack.undo_optimizations()
            self._undo.callback(sd_hijack.apply_optimizations)
        sd_hijack_checkpoint.add()
        self._undo.callback(sd_hijack_checkpoint.remove)
        unfrozen = [parameter for parameter in self._model.parameters() if parameter.requires_grad]
        for parameter in unfrozen:
            parameter.requires_grad_(False)
        self._undo.callback(_unfreeze, unfrozen)
        if shared.opts.unload_models_when_training:
            self._unload_vae = True
            self._undo.callback(setattr, shared, "parallel_processing_allowed", shared.parallel_processing_allowed)
            shared.parallel_processing_allowed = False
            self._undo.callback(self._vae_ready)

    def _text_encoder_info(self) -> TextEncoderInfo:
        """The width the host expects of an embedding, and the vocabulary's mean token-row norm (the scale of a
        real word, for the trainer's norm control), read from the very layer the hijack splices into."""
        from modules import sd_hijack

        self._text_encoder_on_device()
        width = sd_hijack.model_hijack.embedding_db.get_expected_shape()
        layers = [module for module in self._model.cond_stage_model.modules()
                  if isinstance(module, sd_hijack.EmbeddingsWithFixes)]
        if not layers:
            raise UserError("The WebUI has not hooked its embeddings into this model's text encoder; reload the "
                            "checkpoint and try again")
        with torch.no_grad():
            norm = float(layers[0].wrapped.weight.float().norm(dim=1).mean())
        return TextEncoderInfo(key=EMBEDDING_KEY, width=width, vocabulary_norm=norm)

    def _text_encoder_on_device(self) -> None:
        """Run the text encoder once, as the host's ``create_embedding`` does: under ``--medvram`` that is what
        moves it to the GPU, where ``encode_embedding_init_text`` expects it."""
        from modules import devices

        with torch.no_grad(), devices.autocast():
            self._model.cond_stage_model([""])

    def _registered(self, name: str) -> Any:
        """The host ``Embedding`` that carries the vectors for ``name``, registered under ``name``.

        Checked on every call: an embedding reload (the Extra networks refresh button, an API call) rebuilds the
        database with new objects and would silently drop ours, so it is registered again. What it hides is put
        back on close.
        """
        from modules import sd_hijack
        from modules.textual_inversion.textual_inversion import Embedding

        database = sd_hijack.model_hijack.embedding_db
        embedding = self._embeddings.get(name)
        if embedding is None:
            embedding = self._embeddings[name] = Embedding(None, name)
            embedding.shape = self._encoder.width
        hidden = database.word_embeddings.get(name)
        if hidden is not embedding:
            database.register_embedding_by_name(embedding, self._model, name)
            self._undo.callback(_unregister, database, self._model, name, embedding, hidden)
        return embedding

    def _park_vae(self) -> None:
        from modules import devices

        if self._unload_vae and not self._vae_parked:
            self._model.first_stage_model.to(devices.cpu)
            self._vae_parked = True

    def _vae_ready(self) -> None:
        from modules import devices

        if self._vae_parked:
            self._model.first_stage_model.to(devices.device)
            self._vae_parked = False


def _unregister(database: Any, model: Any, name: str, embedding: Any, hidden: Any) -> None:
    """Take ``embedding`` out of the host's database, putting back the one of the same name it hid (or none)."""
    if database.word_embeddings.get(name) is embedding:
        database.register_embedding_by_name(hidden, model, name)


def _unfreeze(parameters: list[torch.nn.Parameter]) -> None:
    for parameter in parameters:
        parameter.requires_grad_(True)


def _forget_cached_conditioning(processing: Any) -> None:
    """Empty the host's prompt-conditioning cache (processing.py L188-189, L460-491). Its key is the prompt text,
    not the embedding's vectors: left alone, a preview would reuse a conditioning made with older vectors, and
    txt2img after training one made with the temporary embedding (the setting "Persistent cond cache" is on by
    default)."""
    processing.StableDiffusionProcessing.cached_c = [None, None]
    processing.StableDiffusionProcessing.cached_uc = [None, None]
