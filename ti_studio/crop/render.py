"""Cutting a crop box out of a photo and resampling it to the output size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..images import Photo
from .framing import CropBox


def render(photo: Photo, box: CropBox, size: int) -> Image.Image:
    """The ``size``×``size`` image of ``box`` (full-resolution photo pixels) cut from ``photo``.

    ``photo`` may be a reduced decode; the box is scaled to it. Lanczos with a reducing gap: Pillow first box-averages
    by an integer factor, then filters, which is both fast and alias-free for big downscales. Parts of the box outside
    the photo are filled by repeating the edge pixels, which trains less of a hard border than a flat colour.
    """
    scale = photo.scale
    left, top, side = box.left / scale, box.top / scale, box.side / scale
    image = photo.image
    width, height = image.size
    if box.fits_in(photo.full_size[0], photo.full_size[1], tolerance=0.5):
        region = (max(0.0, left), max(0.0, top), min(float(width), left + side), min(float(height), top + side))
        return image.resize((size, size), Image.LANCZOS, box=region, reducing_gap=2.0)
    return _render_padded(image, left, top, side, size)


def _render_padded(image: Image.Image, left: float, top: float, side: float, size: int) -> Image.Image:
    width, height = image.size
    out_per_src = size / side
    inner = (max(0.0, left), max(0.0, top), min(float(width), left + side), min(float(height), top + side))
    pad_left = int(round((inner[0] - left) * out_per_src))
    pad_top = int(round((inner[1] - top) * out_per_src))
    inner_w = max(1, min(size - pad_left, int(round((inner[2] - inner[0]) * out_per_src))))
    inner_h = max(1, min(size - pad_top, int(round((inner[3] - inner[1]) * out_per_src))))
    pixels = np.asarray(image.resize((inner_w, inner_h), Image.LANCZOS, box=inner, reducing_gap=2.0))
    padding = ((pad_top, size - pad_top - inner_h), (pad_left, size - pad_left - inner_w), (0, 0))
    return Image.fromarray(np.pad(pixels, padding, mode="edge"))
