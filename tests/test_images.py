"""Every odd photo a user may drop in the folder opens upright in RGB, or fails with one clear line."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ti_studio.errors import UserError
from ti_studio.images import ImageError, list_photos, open_photo


def _gradient(width=64, height=48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (height, 1)), np.full((height, width), 90, np.uint8),
                    np.tile(np.linspace(0, 255, height, dtype=np.uint8)[:, None], (1, width))], axis=-1)
    return Image.fromarray(rgb)


def test_exif_orientation_makes_the_photo_upright(tmp_path):
    upright = _gradient(80, 40)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways stores: 40x80
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display" undoes a 90 CCW storage
    path = tmp_path / "side.jpg"
    stored.save(path, quality=95, exif=exif.tobytes())
    photo = open_photo(path)
    assert photo.image.size == (80, 40) and photo.full_size == (80, 40)
    diff = np.abs(np.asarray(photo.image, np.int16) - np.asarray(upright, np.int16)).mean()
    rotated_wrong = np.abs(np.asarray(photo.image.transpose(Image.Transpose.ROTATE_180), np.int16)
                           - np.asarray(upright, np.int16)).mean()
    assert diff < 6 < rotated_wrong


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "P", "RGBA", "LA", "I;16", "I", "F"])
def test_every_pixel_mode_becomes_rgb(tmp_path, mode):
    source = _gradient()
    ramp = np.tile(np.linspace(0, 255, source.width), (source.height, 1))  # black on the left, white on the right
    if mode == "I;16":
        image = Image.fromarray(np.rint(ramp * 257).astype(np.uint16), "I;16")
    elif mode == "I":
        image = Image.fromarray(np.rint(ramp * 257).astype(np.int32), "I")
    elif mode == "F":
        image = Image.fromarray((ramp / 255.0).astype(np.float32), "F")
    elif mode == "L":
        image = Image.fromarray(ramp.astype(np.uint8), "L")
    else:
        image = source.convert(mode)
    suffix = {"CMYK": ".jpg", "F": ".tif", "I": ".png"}.get(mode, ".png")
    path = tmp_path / f"img{suffix}"
    image.save(path)
    photo = open_photo(path)
    assert photo.image.mode == "RGB" and photo.image.size == source.size
    if mode in ("I;16", "I", "F", "L"):
        # high bit depths are scaled, not clipped to white: the left edge stays dark, the right bright
        gray = np.asarray(photo.image.convert("L"), np.int16)
        assert gray[:, 0].mean() < 60 and gray[:, -1].mean() > 150


def test_transparency_goes_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 5, 10))
    rgba.save(tmp_path / "a.png")
    pixels = np.asarray(open_photo(tmp_path / "a.png").image)
    assert tuple(pixels[0, 0]) == (0, 0, 255) and tuple(pixels[0, 9]) == (255, 255, 255)
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((9, 9))
    palette.save(tmp_path / "p.png", transparency=palette.getpixel((9, 9)))
    assert tuple(np.asarray(open_photo(tmp_path / "p.png").image)[0, 9]) == (255, 255, 255)


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    _gradient(4000, 3000).save(path, quality=90)
    photo = open_photo(path, min_long_side=640)
    assert photo.full_size == (4000, 3000)
    assert 640 <= photo.image.width < 4000 and photo.scale == 4000 / photo.image.width
    assert open_photo(path).image.size == (4000, 3000)


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(open_photo(tmp_path / "anim.gif").image)[0, 0]) == (255, 0, 0)


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb needs no real pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name, content, reason", [
    ("empty.jpg", b"", "empty file"),
    ("notes.jpg", b"this is not an image at all", "not an image"),
    ("bomb.png", _png_with_size(30000, 30000), "decompression bomb"),
    ("phone.heic", b"\0\0\0\x18ftypheic", "HEIC is not supported"),
])
def test_bad_files_fail_with_one_clear_line(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError) as caught:
        open_photo(tmp_path / name)
    message = str(caught.value)
    assert message.startswith(name) and reason in message and "\n" not in message


def test_truncated_jpeg_fails_clearly(tmp_path):
    path = tmp_path / "cut.jpg"
    _gradient(400, 300).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"^cut\.jpg: damaged or truncated"):
        open_photo(path)


def test_list_photos_finds_photos_only(tmp_path):
    for name in ("b.JPG", "a.png", "c.heic", "a.txt", ".hidden.png", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.webp").write_bytes(b"x")
    (tmp_path / ".ti_studio").mkdir()
    (tmp_path / ".ti_studio" / "e.png").write_bytes(b"x")
    assert [p.name for p in list_photos(tmp_path)] == ["a.png", "b.JPG", "c.heic"]
    assert [p.name for p in list_photos(tmp_path, recursive=True)] == ["a.png", "b.JPG", "c.heic", "d.webp"]


def test_list_photos_explains_a_missing_folder(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        list_photos(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        list_photos(tmp_path / "file.txt")
