"""The training port: the few model-specific questions the trainer asks, answered by each host's backend.

The trainer owns everything that is not model-specific (data, latent cache, templates, noise and timesteps, loss,
optimizer, schedule, snapshots, logging, resume). A backend only knows how to run one loaded model: the diffusers
backend (standalone app, tests, benchmarks) and the A1111 backend (the host's ``shared.sd_model``) implement this
same protocol, so what the tests prove about the trainer holds inside the WebUI too.

Embedding vectors travel as ``{encoder key: tensor [n_vectors, width]}``: SD1/SD2 have one encoder (key
``"emb_params"``, the key their ``.safetensors`` files use), SDXL two (``"clip_l"``, ``"clip_g"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image

Vectors = dict[str, torch.Tensor]

#: The one encoder key of SD1/SD2 embeddings (the key their ``.safetensors`` files use).
EMBEDDING_KEY = "emb_params"


def embedding_rows(vectors: Vectors, width: int) -> torch.Tensor:
    """The ``[n, width]`` SD1/SD2 rows in ``vectors``; a ValueError for any other shape (a programming error)."""
    rows = vectors.get(EMBEDDING_KEY)
    if rows is None or rows.ndim != 2 or rows.shape[1] != width:
        shape = None if rows is None else tuple(rows.shape)
        raise ValueError(f"vectors must be {{{EMBEDDING_KEY!r}: [n, {width}]}}, got {shape}")
    return rows


@dataclass(frozen=True)
class TextEncoderInfo:
    """One text encoder the embedding needs vectors for."""

    key: str  # "emb_params" (SD1/SD2) or "clip_l" / "clip_g" (SDXL): the key in the saved file
    width: int  # 768 (SD1, SDXL clip_l), 1024 (SD2), 1280 (SDXL clip_g)
    vocabulary_norm: float  # mean L2 norm of the vocabulary's token-embedding rows: the scale a real word has


@dataclass(frozen=True)
class ModelInfo:
    """What a trained embedding records about the model it was trained on (host ``.pt`` fields)."""

    family: str  # "sd1", "sd2" or "sdxl"
    name: str  # checkpoint name as the user knows it
    shorthash: str | None  # the host's 10-hex-digit checkpoint short hash, when known


@dataclass(frozen=True)
class NoiseSchedule:
    """The model's training noise schedule: what the trainer needs to noise latents and build the target."""

    alphas_cumprod: torch.Tensor  # [T] float32, on the backend's device
    prediction_type: str  # "epsilon" or "v_prediction"


class TrainingBackend(Protocol):
    """One loaded Stable Diffusion model, frozen, seen through the questions Textual Inversion training asks.

    Every method runs under ``torch.no_grad`` semantics for the model's own weights: no model parameter may get a
    gradient. Only tensors passed in as ``vectors`` are differentiated through.
    """

    device: torch.device
    #: Dtype the frozen networks compute in (fp32 on CPU; fp16/bf16 on GPUs). Trainable vectors stay float32.
    dtype: torch.dtype
    #: Native training resolution in pixels (512 SD1, 768 SD2-v, 1024 SDXL).
    native_size: int

    def model_info(self) -> ModelInfo:
        ...

    def text_encoders(self) -> list[TextEncoderInfo]:
        ...

    def noise_schedule(self) -> NoiseSchedule:
        ...

    def init_vectors(self, init_text: str, n_vectors: int) -> Vectors:
        """Starting vectors from the token-embedding rows of ``init_text`` (no BOS/EOS), spread over ``n_vectors``
        the way the host does (``vec[i] = rows[i * len(rows) // n]``); empty text gives zeros. float32, on device."""
        ...

    def encode_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's latent distribution of images ``[B, 3, H, W]`` in ``[-1, 1]``: ``(mean, std)``, both already
        multiplied by the VAE's scaling factor. The trainer samples from it (the host's "latent sampling method")."""
        ...

    def encode_prompts(self, prompts: list[str], name: str, vectors: Vectors) -> Any:
        """Conditioning for ``prompts`` with ``vectors`` spliced in wherever the word ``name`` stands, the way the
        host's prompt path does it (so training sees what txt2img will see). Differentiable w.r.t. ``vectors``.
        Prompts longer than one 75-token chunk are encoded chunk by chunk and concatenated, as the host does."""
        ...

    def predict(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Any) -> torch.Tensor:
        """The UNet's output (noise or v, per :class:`NoiseSchedule`) for noisy latents at integer timesteps."""
        ...

    def render_preview(self, request: "PreviewRequest", name: str, vectors: Vectors) -> Image.Image | None:
        """A sample image with the current vectors, or None where previews are not supported."""
        ...


#: The sampler of every image TI Studio renders or asks for: training previews (both hosts), the standalone grid and
#: the txt2img X/Y/Z preset. One name both hosts know the same way, so a preview looks like its grid cell.
PREVIEW_SAMPLER = "Euler a"


@dataclass(frozen=True)
class PreviewRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int = 1
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
