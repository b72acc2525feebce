"""Double of ``modules/processing.py`` (v1.10.1): a txt2img job object and ``process_images``, as a training
preview uses them.

- ``StableDiffusionProcessing`` (L136-242) is a dataclass; the fields kept are the ones a preview sets (``sd_model,
  prompt, negative_prompt, seed, steps, cfg_scale, width, height, do_not_save_samples, do_not_save_grid,
  do_not_reload_embeddings``) with the host's defaults. ``StableDiffusionProcessingTxt2Img`` (L1165) adds only
  hires-fix fields, not kept.
- The conditioning cache: ``cached_c`` / ``cached_uc`` are class attributes ``[key, conditioning]`` (L188-189)
  that each job binds in ``__post_init__`` (L228, L251-252) and fills through ``get_conds_with_caching``
  (L460-491). The key (``cached_params``, L440-458) holds the prompts, steps, size and model, not embedding
  vectors; ``close()`` (L404-410) resets the class caches only when the ``persistent_cond_cache`` setting is off
  (default on, shared_options.py L241), so the double keeps them.
- ``process_images(p)`` (L819-860, L863-) reloads the embedding database unless ``p.do_not_reload_embeddings``
  (L911-912), then samples under ``torch.no_grad()`` and ``devices.autocast()`` (L919-920) and returns a
  ``Processed`` whose ``images`` are PIL images (L516-518). The double samples with plain DDIM and
  classifier-free guidance in the model's own prediction type instead of the host's k-diffusion samplers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from modules import devices
from modules.sd_hijack import model_hijack


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: object = None
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1
    steps: int = 50
    cfg_scale: float = 7.0
    sampler_name: str = None
    width: int = 512
    height: int = 512
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    do_not_reload_embeddings: bool = False

    cached_uc = [None, None]
    cached_c = [None, None]

    def __post_init__(self):
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c

    def get_conds_with_caching(self, prompt, cache):
        key = (prompt, self.steps, self.width, self.height, self.sd_model.sd_checkpoint_info)
        if cache[0] != key:
            cache[0], cache[1] = key, self.sd_model.cond_stage_model([prompt])
        return cache[1]

    def close(self):
        self.c = None
        self.uc = None


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    pass


class Processed:
    def __init__(self, p, images_list, seed=-1, info=""):
        self.images = images_list
        self.seed = seed
        self.info = info


def process_images(p):
    if not p.do_not_reload_embeddings:
        model_hijack.embedding_db.load_textual_inversion_embeddings()
    model = p.sd_model
    with torch.no_grad(), devices.autocast():
        p.c = p.get_conds_with_caching(p.prompt, p.cached_c)
        p.uc = p.get_conds_with_caching(p.negative_prompt, p.cached_uc)
        generator = torch.Generator().manual_seed(p.seed)
        x = torch.randn((1, 4, p.height // 8, p.width // 8), generator=generator).to(devices.device)
        alphas = model.alphas_cumprod.float()
        timesteps = torch.linspace(len(alphas) - 1, 0, p.steps).round().long().tolist()
        for index, t in enumerate(timesteps):
            alpha = alphas[t]
            alpha_next = alphas[timesteps[index + 1]] if index + 1 < len(timesteps) else torch.tensor(1.0)
            t_batch = torch.tensor([t, t], device=devices.device)
            cond_out, uncond_out = model.apply_model(torch.cat([x, x]), t_batch, torch.cat([p.c, p.uc])).chunk(2)
            out = uncond_out + p.cfg_scale * (cond_out - uncond_out)
            if model.parameterization == "v":
                x0, eps = alpha.sqrt() * x - (1 - alpha).sqrt() * out, alpha.sqrt() * out + (1 - alpha).sqrt() * x
            else:
                x0, eps = (x - (1 - alpha).sqrt() * out) / alpha.sqrt(), out
            x = alpha_next.sqrt() * x0 + (1 - alpha_next).sqrt() * eps
        decoded = model.decode_first_stage(x)[0]
    pixels = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Processed(p, [Image.fromarray(pixels)], seed=p.seed)
