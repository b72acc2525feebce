"""The host's ``shared.sd_model`` for tests: an ldm ``LatentDiffusion``-shaped model over the tiny diffusers SD
(``tiny_sd.py``), hijacked the way A1111 v1.10.1 hijacks a loaded SD1/SD2 model. Part of the host double: build it
only while ``tests/host_double`` is importable (it uses ``modules.sd_hijack``).

What the training backend touches, and what each part stands for (ldm = Stability-AI/stablediffusion @cf1d67a,
``ldm/models/diffusion/ddpm.py``; host = A1111 v1.10.1):
- ``apply_model(x_noisy, t, cond)`` (ddpm.py L848-862) wraps a tensor ``cond`` as ``{"c_crossattn": [cond]}`` for
  ``model`` (``DiffusionWrapper``, L1310-1355: ``conditioning_key``, ``diffusion_model``), which concatenates the
  list along the token axis and runs the UNet.
- ``encode_first_stage(x)`` (L828-830, no_grad) returns the first stage's posterior, a ``DiagonalGaussianDistribution``
  with ``mean`` and ``std`` (diffusers' has the same fields); ``decode_first_stage(z)`` (L817-826) divides by
  ``scale_factor`` first. ``first_stage_model`` is the VAE; ``scale_factor`` 0.18215; ``alphas_cumprod`` (L156) and
  ``parameterization`` ("eps" or "v", L83) come from the model's training schedule.
- ldm freezes the first and cond stages (``requires_grad = False``, L613-634) but not the UNet; so does this double.
- ``cond_stage_model`` is the host's ``FrozenCLIPEmbedderWithCustomWords`` around ldm's ``FrozenCLIPEmbedder``
  (sd_hijack.py L237-240, sd_hijack_clip.py L316-367): ``tokenize``, ``encode_embedding_init_text`` and a
  ``forward(texts)`` that lays each prompt out as the host does (BOS, tokens, EOS padding to 77; an embedding found
  by ``embedding_db.find_embedding_at_position`` takes ``embedding.vectors`` slots and is recorded in
  ``hijack.fixes``; SD2 pads with 0 after the first EOS, L263-267) and runs the CLIP transformer, whose token
  embedding layer is the hijack's ``EmbeddingsWithFixes``. Simplified: one 75-token chunk, no emphasis, clip skip 1.
  The tiny "sd2-v" model keeps a transformers CLIP text model, where the host's SD2 has OpenCLIP; its init text is
  not cut to ``nvpt`` tokens, as in sd_hijack_open_clip.py L32-37.
- ``is_sd1 / is_sd2 / is_sdxl / is_ssd / is_sd3`` (sd_models.py L379-402), ``lowvram`` (lowvram.py L31),
  ``sd_checkpoint_info`` (a ``CheckpointInfo``, sd_models.py L56-103: ``name``, ``model_name``, ``shorthash``).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from ti_studio.backends.diffusers_loading import load_parts

CHUNK = 75


class DiffusionWrapper(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.diffusion_model = unet
        self.conditioning_key = "crossattn"

    def forward(self, x, t, c_concat=None, c_crossattn=None):
        return self.diffusion_model(x, t, encoder_hidden_states=torch.cat(c_crossattn, 1)).sample


class FrozenCLIPEmbedderWithCustomWords(torch.nn.Module):
    def __init__(self, tokenizer, transformer: torch.nn.Module, hijack, open_clip: bool):
        from modules.sd_hijack import EmbeddingsWithFixes

        super().__init__()
        self.wrapped = torch.nn.Module()  # ldm's FrozenCLIPEmbedder: .tokenizer and .transformer
        self.wrapped.tokenizer = tokenizer
        self.wrapped.transformer = transformer
        embeddings = transformer.text_model.embeddings
        embeddings.token_embedding = EmbeddingsWithFixes(embeddings.token_embedding, hijack)
        self.hijack = hijack
        self.open_clip = open_clip
        self.id_start, self.id_end = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.id_pad = 0 if open_clip else self.id_end

    def tokenize(self, texts):
        return self.wrapped.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def encode_embedding_init_text(self, init_text, nvpt):
        limit = {} if self.open_clip else {"max_length": nvpt, "truncation": True}
        ids = self.wrapped.tokenizer(init_text, return_tensors="pt", add_special_tokens=False, **limit)["input_ids"]
        token_embedding = self.wrapped.transformer.text_model.embeddings.token_embedding.wrapped
        return token_embedding(ids.to(token_embedding.weight.device)).squeeze(0)

    def forward(self, texts):
        chunks = [self._chunk(tokens) for tokens in self.tokenize(texts)]
        self.hijack.fixes = [fixes for _, fixes in chunks]
        ids = torch.tensor([tokens for tokens, _ in chunks], device=self.wrapped.transformer.device)
        if self.id_pad != self.id_end:
            for row in ids:
                row[int((row == self.id_end).nonzero()[0]) + 1:] = self.id_pad
        return self.wrapped.transformer(input_ids=ids).last_hidden_state

    def _chunk(self, tokens: list[int]) -> tuple[list[int], list[tuple[int, object]]]:
        body: list[int] = []
        fixes = []
        position = 0
        while position < len(tokens):
            embedding, length = self.hijack.embedding_db.find_embedding_at_position(tokens, position)
            if embedding is None:
                body.append(tokens[position])
                position += 1
                continue
            fixes.append((len(body), embedding))
            body += [0] * int(embedding.vectors)
            position += length
        if len(body) > CHUNK:
            raise ValueError(f"the host double encodes one {CHUNK}-token chunk, got {len(body)} tokens")
        return [self.id_start, *body] + [self.id_end] * (CHUNK + 1 - len(body)), fixes


class LatentDiffusion(torch.nn.Module):
    def __init__(self, folder: Path, kind: str, parts, hijack):
        from diffusers import DDPMScheduler

        super().__init__()
        self.model = DiffusionWrapper(parts.unet)
        self.first_stage_model = parts.vae.requires_grad_(False)
        parts.text_encoder.requires_grad_(False)
        self.cond_stage_model = FrozenCLIPEmbedderWithCustomWords(parts.tokenizer, parts.text_encoder, hijack,
                                                                  open_clip=kind == "sd2-v")
        self.eval()
        scheduler = DDPMScheduler.from_config(parts.scheduler_config)
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.float())
        self.parameterization = "v" if scheduler.config.prediction_type == "v_prediction" else "eps"
        self.scale_factor = parts.vae.config.scaling_factor
        self.is_sd1, self.is_sd2 = kind == "sd1", kind == "sd2-v"
        self.is_sdxl = self.is_ssd = self.is_sd3 = False
        self.lowvram = False
        self.sd_checkpoint_info = SimpleNamespace(name=f"{folder.name}.safetensors", model_name=folder.name,
                                                  shorthash="0123456789")

    def apply_model(self, x_noisy, t, cond):
        return self.model(x_noisy, t, c_crossattn=[cond])

    @torch.no_grad()
    def encode_first_stage(self, x):
        return self.first_stage_model.encode(x).latent_dist

    @torch.no_grad()
    def decode_first_stage(self, z):
        return self.first_stage_model.decode(z / self.scale_factor).sample


def load_host_model(folder: Path, kind: str) -> LatentDiffusion:
    """The tiny model in ``folder`` (made by ``tiny_sd.build_tiny_sd(folder, kind)``) as the host would hold it."""
    from modules import sd_hijack

    return LatentDiffusion(folder, kind, load_parts(folder, torch.float32), sd_hijack.model_hijack)
