"""The training set: the dataset folder's images and captions, and their latents, encoded once.

The VAE encode costs about as much as the UNet's forward pass (research: 1.12 vs 0.80 TFLOP at 512 px), and the
images never change during a run, so every image is encoded once before the first step and only the cached latent
distribution is used afterwards (the diffusers example script encodes every step). Flipped copies are encoded at
the same time when flip augmentation is on, so flipping costs nothing per step either.

We do not reuse the host's dataset classes: its ``GroupedBatchSampler`` passes ``data_source`` to
``Sampler.__init__``, which torch >= 2.2 rejects, so the host's own trainer crashes on current torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..captions import caption_file, read_caption
from ..errors import UserError
from ..images import ImageError, list_photos, open_photo
from .backend import TrainingBackend

#: Images encoded per VAE call while building the cache: large enough to batch, small enough for 8 GB cards.
ENCODE_BATCH = 4


@dataclass(frozen=True)
class TrainingImage:
    path: Path
    caption: str  # the ``.txt`` beside the image; what ``[filewords]`` becomes


def load_training_images(dataset_dir: str | Path, needs_captions: bool) -> list[TrainingImage]:
    """Every usable image of the dataset folder with its caption.

    Refuses (one line, naming the files) an empty folder, unreadable images and, when the template uses
    ``[filewords]``, images without a caption file: training on them would silently teach the wrong thing.
    """
    folder = Path(dataset_dir)
    paths = list_photos(folder)
    if not paths:
        raise UserError(f"no training images in {folder}")
    missing = [p.name for p in paths if needs_captions and not caption_file(p).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"{len(missing)} image(s) have no caption .txt but the template uses [filewords]: {shown}")
    return [TrainingImage(path=p, caption=read_caption(caption_file(p)).strip()) for p in paths]


def _pixels(item: TrainingImage, size: int) -> torch.Tensor:
    try:
        return square_pixels(open_photo(item.path, min_long_side=size).image, size)
    except ImageError as exc:
        raise UserError(f"cannot train on {exc}") from None


def square_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """``[3, size, size]`` in ``[-1, 1]``: the image scaled so its short side is ``size``, centre-cropped.

    Cropping instead of the host's plain resize keeps faces from being squashed when a photo is not square.
    """
    width, height = image.size
    scale = size / min(width, height)
    scaled = (max(size, round(width * scale)), max(size, round(height * scale)))
    left, top = (scaled[0] - size) // 2, (scaled[1] - size) // 2
    image = image.resize(scaled, Image.LANCZOS, reducing_gap=2.0).crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
    return pixels / 127.5 - 1.0


class LatentCache:
    """The VAE's latent distribution (mean and standard deviation) of every image, and of its mirror image.

    ``sample`` implements the host's three latent-sampling methods: ``deterministic`` uses the mean, ``once``
    uses one sample drawn when the cache is built, ``random`` draws a new sample each time.
    """

    def __init__(self, backend: TrainingBackend, images: list[TrainingImage], size: int, flip: bool,
                 generator: torch.Generator, progress: Callable[[int, int], None] | None = None):
        variants: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[], []] if flip else [[]]
        for start in range(0, len(images), ENCODE_BATCH):
            pixels = torch.stack([_pixels(item, size) for item in images[start:start + ENCODE_BATCH]])
            pixels = pixels.to(backend.device, backend.dtype)
            for variant, batch in zip(variants, (pixels, pixels.flip(-1))):
                mean, std = backend.encode_images(batch)
                variant.append((mean.float(), std.float()))
            if progress:
                progress(min(start + ENCODE_BATCH, len(images)), len(images))
        self._mean = torch.stack([torch.cat([mean for mean, _ in variant]) for variant in variants])
        self._std = torch.stack([torch.cat([std for _, std in variant]) for variant in variants])
        # [variant (plain, flipped), image, C, h, w]; "once" draws its single sample here, from the run's seed.
        noise = torch.randn(self._mean.shape, generator=generator).to(self._mean.device)
        self._once = self._mean + self._std * noise

    def __len__(self) -> int:
        return self._mean.shape[1]

    def sample(self, indices: list[int], flipped: list[bool], method: str, generator: torch.Generator
               ) -> torch.Tensor:
        variant = torch.tensor([1 if f else 0 for f in flipped])
        index = torch.tensor(indices)
        mean = self._mean[variant, index]
        if method == "deterministic":
            return mean
        if method == "once":
            return self._once[variant, index]
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return mean + self._std[variant, index] * noise
