"""Real face photos for tests, and scenes built from them with known face positions.

The faces come from the public-domain photos that scikit-image ships inside its package (``astronaut.png``,
``camera.png``), read straight from the installed folder: ``skimage.data``'s loaders may try to download, and tests
must run offline. Every builder is deterministic (seeded textures, fixed positions) and returns the face box(es) it
placed, as ``(x, y, width, height)`` in pixels of the returned image, so a test can check "the face is in the crop".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import skimage
from PIL import Image, ImageDraw, ImageFilter

Box = tuple[float, float, float, float]

SKIMAGE_DATA = Path(os.path.dirname(skimage.__file__)) / "data"

#: Face boxes in the 512x512 originals, as MTCNN reports them (brow-to-chin, ear-to-ear roughly).
ASTRONAUT_FACE: Box = (179, 60, 89, 113)
CAMERA_FACE: Box = (198, 117, 55, 76)

#: EXIF orientation -> the transpose that, applied to the upright image, gives the stored pixels (the inverse of
#: what ``ImageOps.exif_transpose`` applies when reading).
_STORE_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _skimage_photo(name: str) -> Image.Image:
    with Image.open(SKIMAGE_DATA / name) as image:
        return image.convert("RGB")


def astronaut() -> Image.Image:
    """Eileen Collins, 512x512 colour portrait; face at :data:`ASTRONAUT_FACE`."""
    return _skimage_photo("astronaut.png")


def camera() -> Image.Image:
    """The cameraman, 512x512 grayscale (returned as RGB), a smaller face at :data:`CAMERA_FACE`."""
    return _skimage_photo("camera.png")


def coffee() -> Image.Image:
    """A cup of coffee on a table, 600x400: a real photo with no face in it."""
    return _skimage_photo("coffee.png")


def texture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth, colourful noise texture: background for composites, and a face-less image.

    Noise drawn at 1/64 and 1/8 of the size and enlarged (blurry scenery rather than TV static); enlarging small
    noise keeps a 12-megapixel texture well under a second.
    """
    rng = np.random.default_rng(seed)
    coarse, fine = (
        Image.fromarray(rng.integers(0, 256, size=(max(1, height // step), max(1, width // step), 3), dtype=np.uint8))
        .resize((width, height), Image.Resampling.BICUBIC)
        for step in (64, 8)
    )
    return Image.blend(coarse, fine, 0.3)


def _head(face_height: float) -> tuple[Image.Image, Image.Image, Box]:
    """Astronaut's head and shoulders cut out and scaled so the face is ``face_height`` px tall.

    Returns the patch, a feathered elliptic mask for pasting it without a hard rectangle, and the face box inside
    the patch.
    """
    fx, fy, fw, fh = ASTRONAUT_FACE
    region = (fx - 0.6 * fw, fy - 0.5 * fh, fx + 1.6 * fw, min(512.0, fy + 1.9 * fh))
    factor = face_height / fh
    size = (round((region[2] - region[0]) * factor), round((region[3] - region[1]) * factor))
    patch = astronaut().resize(size, Image.Resampling.LANCZOS, box=region)
    mask = Image.new("L", size, 0)
    inset = max(2, round(0.04 * size[0]))
    ImageDraw.Draw(mask).ellipse((inset, inset, size[0] - inset, size[1] + size[1] // 2), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(inset))
    face = ((fx - region[0]) * factor, (fy - region[1]) * factor, fw * factor, fh * factor)
    return patch, mask, face


def small_face_scene(width: int = 4000, height: int = 3000, face_height: float = 250) -> tuple[Image.Image, Box]:
    """A large photo with one small face: astronaut's head pasted onto a texture, right of centre and a bit high.

    The default is a 12-megapixel scene where the face is ~8 % of the height (~40 px once reduced to 640 px wide,
    as the cropper does before detection).
    """
    scene = texture(width, height, seed=1)
    patch, mask, (fx, fy, fw, fh) = _head(face_height)
    left, top = round(0.6 * width - patch.width / 2), round(0.35 * height - patch.height / 2)
    scene.paste(patch, (left, top), mask)
    return scene, (left + fx, top + fy, fw, fh)


def face_at_edge(side: str = "left") -> tuple[Image.Image, Box]:
    """A 16:9 (or 9:16 for ``"top"``) scene where astronaut's face is ~10 px from one edge.

    The face cannot be centred in a crop there, which is what framing has to cope with.
    """
    fx, fy, fw, fh = ASTRONAUT_FACE
    photo = astronaut()
    margin = 10
    if side == "left":
        canvas, cut, at = texture(1600, 900, seed=2), (fx - margin, 0, 512, 512), (0, 200)
    elif side == "right":
        canvas, cut, at = texture(1600, 900, seed=2), (0, 0, fx + fw + margin, 512), (1600 - (fx + fw + margin), 200)
    elif side == "top":
        canvas, cut, at = texture(900, 1600, seed=2), (0, fy - margin, 512, 512), (200, 0)
    else:
        raise ValueError(f"side must be 'left', 'right' or 'top', not {side!r}")
    canvas.paste(photo.crop(cut), at)
    return canvas, (at[0] + fx - cut[0], at[1] + fy - cut[1], fw, fh)


def two_faces() -> tuple[Image.Image, list[Box]]:
    """Astronaut (full size) and the cameraman (at 60 %) side by side: two faces of different sizes.

    Returns the boxes largest face first.
    """
    factor = 0.6
    canvas = texture(512 + 40 + round(512 * factor), 512, seed=3)
    canvas.paste(astronaut(), (0, 0))
    small = camera().resize((round(512 * factor),) * 2, Image.Resampling.LANCZOS)
    left, top = 512 + 40, 512 - small.height
    canvas.paste(small, (left, top))
    cx, cy, cw, ch = CAMERA_FACE
    return canvas, [ASTRONAUT_FACE, (left + cx * factor, top + cy * factor, cw * factor, ch * factor)]


def save_with_exif_orientation(image: Image.Image, path: str | os.PathLike, orientation: int) -> Path:
    """Write ``image`` as a JPEG whose pixels are stored turned, with the EXIF orientation that turns them upright.

    This is what phones do; reading it with ``ImageOps.exif_transpose`` gives ``image`` back (up to JPEG loss).
    """
    stored = image.transpose(_STORE_TRANSPOSE[orientation]) if orientation in _STORE_TRANSPOSE else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = Path(path)
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def inside(inner: Box, outer: Box) -> bool:
    """Whether box ``inner`` lies within box ``outer`` (both x, y, width, height)."""
    return (inner[0] >= outer[0] and inner[1] >= outer[1]
            and inner[0] + inner[2] <= outer[0] + outer[2] and inner[1] + inner[3] <= outer[1] + outer[3])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    common = max(0.0, w) * max(0.0, h)
    return common / (a[2] * a[3] + b[2] * b[3] - common)


#: Captions of :func:`face_dataset`'s four crops.
FACE_CAPTIONS = ("1girl, short hair, smile", "1girl, spacesuit, flag", "1girl, smile, looking at viewer",
                 "1girl, brown hair, upper body")


def face_dataset(folder: Path) -> Path:
    """Four overlapping 362 px crops of the astronaut, each with a different caption: a small training set."""
    folder.mkdir(parents=True, exist_ok=True)
    face = astronaut()
    for index, (left, top) in enumerate([(0, 0), (100, 0), (50, 50), (150, 100)]):
        face.crop((left, top, left + 362, top + 362)).save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text(FACE_CAPTIONS[index], encoding="utf-8")
    return folder


def two_image_dataset(folder: Path) -> Path:
    """Two 400 px crops of the astronaut captioned "1girl, smile": the smallest set a run accepts quickly."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(2):
        astronaut().crop((index * 50, 0, index * 50 + 400, 400)).save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text("1girl, smile", encoding="utf-8")
    return folder


def captioned_dataset(folder: Path, captions: dict[str, str | bytes | None]) -> Path:
    """Tiny white images ``<stem>.png`` with their captions: text is written as UTF-8, bytes as they are (BOMs,
    UTF-16), and None leaves the image without a caption file. For the caption editor, which never reads pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, caption in captions.items():
        Image.new("RGB", (4, 4), "white").save(folder / f"{stem}.png")
        if isinstance(caption, str):
            caption = caption.encode("utf-8")
        if caption is not None:
            (folder / f"{stem}.txt").write_bytes(caption)
    return folder


def face_and_no_face(folder: Path) -> Path:
    """A photo folder with a face (``astronaut.jpg``) and a photo without one (``coffee.jpg``)."""
    folder.mkdir(parents=True, exist_ok=True)
    astronaut().save(folder / "astronaut.jpg", quality=92)
    coffee().save(folder / "coffee.jpg")
    return folder
