"""The training port over a diffusers Stable Diffusion 1.x/2.x model: the standalone app's, the CLI's, the tests'
and the benchmarks' backend.

What the trainer proves through this backend must hold inside the WebUI, so prompts are conditioned the way the
host's prompt path does it (``prompt_chunks``: emphasis, 75-token chunks, the embedding's vectors spliced into the
token embeddings where its name stands, SD2 padding, clip skip) rather than the way diffusers' pipeline does it
(no emphasis, truncation at 77 tokens).

A step costs what Textual Inversion must cost and no more: every network is frozen (no weight gradient is ever
computed), attention is PyTorch's fused SDPA, the trainable vectors are a few float32 rows (never the vocabulary
matrix), and the VAE runs only to fill the latent cache and to decode previews.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import UserError
from ..training.backend import (EMBEDDING_KEY, ModelInfo, NoiseSchedule, PreviewRequest, TextEncoderInfo,
                                Vectors, embedding_rows)
from .diffusers_loading import StableDiffusionParts, load_parts, resolve_device, resolve_dtype
from .prompt_chunks import Chunk, SpecialTokens, chunk_prompts

_TOKENIZE_CACHE = 8192  # prompt fragments: tag shuffling makes many prompts, but from few distinct fragments


class DiffusersBackend:
    """One frozen diffusers SD1/SD2 model answering :class:`~ti_studio.training.backend.TrainingBackend`."""

    def __init__(self, parts: StableDiffusionParts, device: torch.device, dtype: torch.dtype, clip_skip: int = 1):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.device, self.dtype = device, dtype
        self._parts = parts
        for network in (parts.text_encoder, parts.unet, parts.vae):
            network.requires_grad_(False).eval().to(device=device, dtype=dtype)
        # Explicit, not left to diffusers' defaults: its "set_default_attn_processor" picks the unfused one.
        parts.unet.set_attn_processor(AttnProcessor2_0())
        parts.vae.set_attn_processor(AttnProcessor2_0())

        config = parts.text_encoder.config
        # SD2's OpenCLIP ViT-H text tower is the one with plain GELU (CLIP ViT-L: quick_gelu); this survives every
        # conversion and needs no width heuristics.
        self._family = "sd2" if config.hidden_act == "gelu" else "sd1"
        if not 1 <= clip_skip <= config.num_hidden_layers:
            raise UserError(f"clip skip must be 1 to {config.num_hidden_layers}, not {clip_skip}")
        # The host applies "stop at last layers" to SD1 only; SD2's encoder is already the penultimate layer.
        self._layers = config.num_hidden_layers + 1 - (clip_skip if self._family == "sd1" else 1)

        tokenizer = parts.tokenizer
        self._special = SpecialTokens(
            bos=tokenizer.bos_token_id,
            eos=tokenizer.eos_token_id,
            pad=0 if self._family == "sd2" else tokenizer.eos_token_id,
            comma=tokenizer.get_vocab().get(",</w>"),
        )
        self._tokenize_one = functools.lru_cache(maxsize=_TOKENIZE_CACHE)(self._tokenize_uncached)

        self._token_rows = parts.text_encoder.get_input_embeddings().weight
        self._encoder_info = TextEncoderInfo(
            key=EMBEDDING_KEY,
            width=config.hidden_size,
            vocabulary_norm=float(self._token_rows.float().norm(dim=1).mean()),
        )
        self.native_size = int(parts.unet.config.sample_size) * 2 ** (len(parts.vae.config.block_out_channels) - 1)
        self._schedule = _noise_schedule(parts.scheduler_config, device)
        self._shorthash: str | None = None
        self._preview_pipeline: Any = None

    @classmethod
    def load(cls, model: str | Path, device: str | torch.device = "auto", precision: str = "auto",
             config: str | Path | None = None, clip_skip: int = 1) -> DiffusersBackend:
        """Load ``model``: a diffusers folder, a ``.safetensors``/``.ckpt`` checkpoint (``config``: the diffusers
        folder or Hub repo id of its configs; default: the family's reference model, fetched once), or a Hub repo
        id. ``precision``: auto (fp32 on CPU, bf16/fp16 on CUDA), fp32, fp16 or bf16. ``clip_skip``: the host's
        "Clip skip" setting, which it applies to SD1 only."""
        chosen_device = resolve_device(device)
        dtype = resolve_dtype(precision, chosen_device)
        return cls(load_parts(model, dtype, config), chosen_device, dtype, clip_skip)

    def close(self) -> None:
        """Drop the networks now. The backend itself is freed only by a garbage-collection pass (its tokenizer cache
        refers back to it), so without this a caller that releases the model keeps it in memory, and on CUDA in
        torch's cache, until the collector happens to run. The backend cannot be used afterwards."""
        self._tokenize_one.cache_clear()
        self._parts = self._preview_pipeline = self._token_rows = None

    # -- what the model is --------------------------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        checkpoint = self._parts.checkpoint_file
        if checkpoint is not None and self._shorthash is None:
            self._shorthash = host_shorthash(checkpoint)  # a full read of a multi-GB file: only once, only if asked
        return ModelInfo(family=self._family, name=self._parts.name, shorthash=self._shorthash)

    def text_encoders(self) -> list[TextEncoderInfo]:
        return [self._encoder_info]

    def noise_schedule(self) -> NoiseSchedule:
        return self._schedule

    # -- training ------------------------------------------------------------------------------------------------

    def init_vectors(self, init_text: str, n_vectors: int) -> Vectors:
        """The host's ``create_embedding``: token rows of ``init_text`` spread over the vectors, zeros without text.

        SD1's host tokenizes the text with ``max_length=n_vectors``, which cuts it to its first ``n_vectors``
        tokens; SD2's (OpenCLIP) tokenizer has no such limit. Both are kept, so an init text means the same here.
        """
        rows = torch.zeros(n_vectors, self._encoder_info.width, device=self.device)
        tokens = self._tokenize([init_text])[0] if init_text else []
        if self._family == "sd1":
            tokens = tokens[:n_vectors]
        if tokens:
            picks = [tokens[i * len(tokens) // n_vectors] for i in range(n_vectors)]
            rows = self._token_rows[torch.tensor(picks, device=self.device)].float().clone()
        return {EMBEDDING_KEY: rows}

    def encode_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the VAE's latent distribution of ``[B, 3, H, W]`` images in ``[-1, 1]``,
        both multiplied by the VAE's scaling factor (a sample is ``mean + std * noise``), as float32 ``[B, 4, H/8,
        W/8]``: the trainer's latent-sampling methods (deterministic, once, random) need both."""
        vae = self._parts.vae
        with torch.no_grad():
            posterior = vae.encode(pixels.to(self.device, self.dtype)).latent_dist
        scale = vae.config.scaling_factor
        return posterior.mean.float() * scale, posterior.std.float() * scale

    def encode_prompts(self, prompts: list[str], name: str, vectors: Vectors) -> torch.Tensor:
        """``[B, 77 * chunks, width]`` conditioning in the model's dtype, differentiable w.r.t. ``vectors``."""
        rows = embedding_rows(vectors, self._encoder_info.width)
        batch = chunk_prompts(prompts, self._tokenize, self._name_tokens(name), rows.shape[0], self._special)
        # Chunk-major, so that one transformer call encodes every chunk of every prompt (chunks are independent).
        chunks = [chunks_of_prompt[index] for index in range(len(batch[0])) for chunks_of_prompt in batch]
        hidden = self._transformer(self._spliced_token_embeddings(chunks, rows))
        multipliers = torch.tensor([chunk.multipliers for chunk in chunks], device=self.device)
        hidden = hidden.unflatten(0, (len(batch[0]), len(prompts)))  # [chunks, B, 77, width]
        if bool((multipliers != 1).any()):
            hidden = _emphasis(hidden, multipliers.view(*hidden.shape[:3], 1))
        return hidden.transpose(0, 1).flatten(1, 2)

    def predict(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, conditioning: torch.Tensor
                ) -> torch.Tensor:
        """The UNet's noise (or v) prediction, as float32 so the trainer's loss is computed in full precision."""
        output = self._parts.unet(
            noisy_latents.to(self.device, self.dtype), timesteps.to(self.device), encoder_hidden_states=conditioning
        ).sample
        return output.float()

    def render_preview(self, request: PreviewRequest, name: str, vectors: Vectors) -> Image.Image:
        """A fixed-seed txt2img image whose prompts go through :meth:`encode_prompts`, so it shows the current
        vectors. Sampled with Euler a (``training.backend.PREVIEW_SAMPLER``, what the X/Y/Z preset asks WebUI for); a
        CPU generator, so a seed means the same image on every device."""
        if request.width % 8 or request.height % 8:
            raise UserError(f"preview size must be a multiple of 8, not {request.width}x{request.height}")
        with torch.no_grad():
            prompt, negative = (self.encode_prompts([text], name, vectors)
                                for text in (request.prompt, request.negative_prompt))
            if prompt.shape[1] != negative.shape[1]:
                length, empty = max(prompt.shape[1], negative.shape[1]), self.encode_prompts([""], name, vectors)
                prompt, negative = _padded(prompt, length, empty), _padded(negative, length, empty)
            result = self._pipeline()(
                prompt_embeds=prompt,
                negative_prompt_embeds=negative,
                num_inference_steps=request.steps,
                guidance_scale=request.cfg_scale,
                width=request.width,
                height=request.height,
                generator=torch.Generator("cpu").manual_seed(request.seed),
            )
        return result.images[0]

    # -- internals -----------------------------------------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return [list(self._tokenize_one(text)) for text in texts]

    def _tokenize_uncached(self, text: str) -> tuple[int, ...]:
        """What the host's ``tokenizer(texts, truncation=False, add_special_tokens=False)`` gives, minus the
        "longer than 77 tokens" warning that chunking makes moot."""
        tokenizer = self._parts.tokenizer
        return tuple(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)))

    def _name_tokens(self, name: str) -> list[int]:
        tokens = self._tokenize([name])[0]
        if not tokens:
            raise UserError(f"the embedding name {name!r} has no tokens; use a word")
        return tokens

    def _spliced_token_embeddings(self, chunks: list[Chunk], rows: torch.Tensor) -> torch.Tensor:
        """Token embeddings of the chunks with the vectors written over the name's slots: the host's
        ``EmbeddingsWithFixes`` (before position embeddings, cast to the model dtype), as one indexed write."""
        ids = torch.tensor([chunk.tokens for chunk in chunks], device=self.device)
        embeddings = self._parts.text_encoder.text_model.embeddings.token_embedding(ids)
        starts = [(index, start) for index, chunk in enumerate(chunks) for start in chunk.vector_starts]
        if not starts:
            return embeddings
        count = rows.shape[0]
        chunk_index = torch.tensor([index for index, _ in starts], device=self.device).repeat_interleave(count)
        positions = (torch.tensor([start for _, start in starts], device=self.device)[:, None]
                     + torch.arange(count, device=self.device)).flatten()
        values = rows.to(device=self.device, dtype=self.dtype).repeat(len(starts), 1)
        return embeddings.index_put((chunk_index, positions), values)

    def _transformer(self, token_embeddings: torch.Tensor) -> torch.Tensor:
        """CLIP's text transformer from token embeddings (transformers 4.30's CLIPTextModel only takes ids):
        position embeddings, the causal mask, the first ``self._layers`` layers (clip skip), the final norm."""
        text_model = self._parts.text_encoder.text_model
        hidden = text_model.embeddings(inputs_embeds=token_embeddings)
        batch, length, _ = hidden.shape
        causal_mask = torch.full((length, length), torch.finfo(hidden.dtype).min, device=self.device,
                                 dtype=hidden.dtype).triu(1).expand(batch, 1, length, length)
        for layer in text_model.encoder.layers[:self._layers]:
            hidden = layer(hidden, None, causal_mask)[0]
        return text_model.final_layer_norm(hidden)

    def _pipeline(self) -> Any:
        """A txt2img pipeline over the very same (frozen, on-device) networks: nothing is copied."""
        if self._preview_pipeline is None:
            from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

            parts = self._parts
            self._preview_pipeline = StableDiffusionPipeline(
                vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer, unet=parts.unet,
                scheduler=EulerAncestralDiscreteScheduler.from_config(parts.scheduler_config),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            )
            self._preview_pipeline.set_progress_bar_config(disable=True)
        return self._preview_pipeline


def _padded(conditioning: torch.Tensor, length: int, empty: torch.Tensor) -> torch.Tensor:
    """``conditioning`` grown to ``length`` tokens with copies of the empty prompt's chunk: the host's way of giving
    prompt and negative prompt the same length ("pad prompt/negative prompt")."""
    missing = (length - conditioning.shape[1]) // empty.shape[1]
    return torch.cat([conditioning, empty.repeat(1, missing, 1)], dim=1)


def _emphasis(hidden: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """The host's "Original" emphasis, per chunk over the whole batch: weigh each token's output, then restore the
    chunk's mean. Skipped when every weight is 1 (it is then the identity, up to rounding)."""
    weighted = hidden.float() * multipliers
    original_mean = hidden.float().mean(dim=(1, 2, 3), keepdim=True)
    weighted = weighted * (original_mean / weighted.mean(dim=(1, 2, 3), keepdim=True))
    return weighted.to(hidden.dtype)


def _noise_schedule(scheduler_config: dict, device: torch.device) -> NoiseSchedule:
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(scheduler_config)
    return NoiseSchedule(
        alphas_cumprod=scheduler.alphas_cumprod.to(device=device, dtype=torch.float32),
        prediction_type=scheduler.config.prediction_type,
    )


def host_shorthash(checkpoint: Path) -> str:
    """The host's checkpoint short hash: the first 10 hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with checkpoint.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:10]
