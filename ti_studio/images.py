"""Opening users' photos safely: whatever a phone, a scanner or the web produced becomes an upright RGB image.

Every stage reads photos through :func:`open_photo`, so a photo that opens for cropping also opens for tagging and
training, and a photo that cannot be read fails the same way everywhere: an :class:`ImageError` that names the file
and the reason in one line (the batch goes on with the next file).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

#: Suffixes we try to open. Anything else in a photo folder is ignored (captions, sidecars, notes).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif"})
#: Photo formats Pillow cannot read without a plugin: we say so instead of silently ignoring them.
UNSUPPORTED_PHOTO_SUFFIXES = frozenset({".heic", ".heif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf"})

#: Pillow's own decompression-bomb limit (2 x MAX_IMAGE_PIXELS, ~179 MP): above it we refuse to decode.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


class ImageError(UserError):
    """A photo that cannot be used; the message starts with the file name."""


@dataclass(frozen=True)
class Photo:
    """An upright RGB image and the size the whole photo has when fully decoded and upright.

    ``image`` may be smaller than ``full_size`` when it was decoded at reduced scale (see ``min_long_side``);
    coordinates found on ``image`` map to the full photo by multiplying with :attr:`scale`.
    """

    image: Image.Image
    full_size: tuple[int, int]

    @property
    def scale(self) -> float:
        return self.full_size[0] / self.image.width


def list_photos(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Photo-like files in ``folder`` (sorted, hidden files and folders skipped), including unsupported formats.

    Unsupported formats (HEIC, RAW) are listed so the caller reports them instead of dropping them silently.
    """
    root = Path(folder)
    if not root.exists():
        raise UserError(f"folder not found: {root}")
    if not root.is_dir():
        raise UserError(f"not a folder: {root}")
    wanted = IMAGE_SUFFIXES | UNSUPPORTED_PHOTO_SUFFIXES
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        found.extend(
            Path(dirpath) / name
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in wanted
        )
    return sorted(found)


def open_photo(path: str | os.PathLike, min_long_side: int | None = None) -> Photo:
    """Open ``path`` as an upright RGB photo; raise :class:`ImageError` with a one-line reason if it can't be used.

    ``min_long_side``: the caller needs only this many pixels on the long side, so a large JPEG may be decoded at
    1/2, 1/4 or 1/8 scale by libjpeg (several times faster on 12 MP phone photos). ``None`` decodes in full.
    Handled: EXIF orientation; grayscale, CMYK, 16-bit, palette and alpha (composited on white, as the WD14 authors
    do); animated files (first frame); truncated, zero-byte and non-image files; decompression bombs.
    """
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED_PHOTO_SUFFIXES:
        raise ImageError(f"{name}: {suffix[1:].upper()} is not supported; export it as JPEG or PNG first")
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: empty file (0 bytes)")
    except FileNotFoundError:
        raise ImageError(f"{name}: file not found") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return _decode(im, name, min_long_side)
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: over {MAX_PIXELS / 1e6:.0f} megapixels, refused as a possible decompression bomb")
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format Pillow cannot read") from None
    except OSError as exc:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated", "broken data stream").
        raise ImageError(f"{name}: damaged or truncated image ({exc})") from None
    except (ValueError, SyntaxError, IndexError, EOFError) as exc:
        # Malformed headers surface as these in various Pillow plugins.
        raise ImageError(f"{name}: malformed image data ({exc})") from None


def _decode(im: Image.Image, name: str, min_long_side: int | None) -> Photo:
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise Image.DecompressionBombError(name)
    orientation = _exif_orientation(im)
    upright_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    if min_long_side and im.format == "JPEG" and max(width, height) > min_long_side:
        # draft() picks the largest libjpeg DCT scale (1/1..1/8) that keeps at least the requested size.
        ratio = min_long_side / max(width, height)
        im.draft(im.mode, (math.ceil(width * ratio), math.ceil(height * ratio)))
    im.load()  # animated files: Image.open leaves us on the first frame, which is the one we use
    image = _to_rgb(im)
    if orientation in _ORIENTATION_TRANSPOSE:
        image = image.transpose(_ORIENTATION_TRANSPOSE[orientation])
    return Photo(image=image, full_size=upright_size)


#: EXIF orientation tag value -> the transpose that makes the photo upright.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not make a good photo unusable
        return 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency goes on white."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _high_bit_depth_to_rgb(im)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _high_bit_depth_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit and float grayscale: Pillow's convert() clips them to white, so scale to 0-255 ourselves."""
    values = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        peak = float(values.max()) if values.size else 1.0
        values = values / (peak if peak > 1.0 else 1.0) * 255.0
    elif im.mode.startswith("I;16") or float(values.max(initial=0)) > 255:
        values = values / 257.0
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")
