"""Photo -> model tensor: pinned golden values, and equality with the reference demo's steps on a real photo."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

from ti_studio.images import open_photo
from ti_studio.tagging.preprocess import DEFAULT_SIDE, InputSpec, input_spec, prepare_image

SKIMAGE_DATA = Path(os.path.dirname(skimage.__file__)) / "data"

#: A 3 x 2 image (width x height) with distinct colours, RGB.
TINY = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
     [[10, 20, 30], [200, 100, 50], [0, 0, 0]]],
    dtype=np.uint8,
)


def test_no_resize_pads_centred_with_white_and_flips_to_bgr():
    out = prepare_image(Image.fromarray(TINY, "RGB"), 3)
    expected = np.array(
        [[[0, 0, 255], [0, 255, 0], [255, 0, 0]],      # row 0: red, green, blue in BGR
         [[30, 20, 10], [50, 100, 200], [0, 0, 0]],
         [[255, 255, 255]] * 3],                       # odd remainder of the pad goes to the bottom
        dtype=np.float32,
    )
    assert out.dtype == np.float32 and out.shape == (3, 3, 3)
    np.testing.assert_array_equal(out, expected)


def test_golden_values_after_bicubic_upscale():
    # Pinned output of pad-to-square + PIL BICUBIC 3 -> 4 + BGR; a change here changes every model's input.
    golden = np.array(
        [[[0, 0, 255], [0, 183, 92], [98, 184, 0], [255, 0, 0]],
         [[2, 0, 77], [14, 102, 117], [41, 96, 79], [77, 0, 0]],
         [[115, 106, 77], [127, 136, 188], [112, 130, 192], [77, 95, 95]],
         [[255, 255, 255]] * 4],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(prepare_image(Image.fromarray(TINY, "RGB"), 4), golden)


def test_tall_image_is_centred_horizontally():
    tall = Image.new("RGB", (2, 6), (0, 0, 0))
    out = prepare_image(tall, 6)
    assert (out[:, :2] == 255).all() and (out[:, 2:4] == 0).all() and (out[:, 4:] == 255).all()


def test_small_images_are_upscaled_not_framed():
    out = prepare_image(Image.new("RGB", (100, 100), (0, 0, 255)), 448)
    assert out.shape == (448, 448, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])  # blue fills the corner: no white frame around it


def _reference(image_rgba: Image.Image, side: int) -> np.ndarray:
    """The SmilingWolf demo's steps, transcribed: white RGBA canvas + alpha_composite, centred white square pad,
    BICUBIC resize if needed, float32, RGB -> BGR."""
    canvas = Image.new("RGBA", image_rgba.size, (255, 255, 255))
    canvas.alpha_composite(image_rgba)
    rgb = canvas.convert("RGB")
    longest = max(rgb.size)
    padded = Image.new("RGB", (longest, longest), (255, 255, 255))
    padded.paste(rgb, ((longest - rgb.width) // 2, (longest - rgb.height) // 2))
    if longest != side:
        padded = padded.resize((side, side), Image.BICUBIC)
    return np.asarray(padded, dtype=np.float32)[:, :, ::-1]


def test_transparent_photo_matches_the_reference_pipeline(tmp_path):
    astronaut = Image.open(SKIMAGE_DATA / "astronaut.png").convert("RGBA").crop((0, 40, 512, 400))
    alpha = np.zeros((360, 512), dtype=np.uint8)
    alpha[:, 100:400] = 255
    alpha[:, 400:] = 128  # half-transparent strip: tests the blend, not just the mask
    astronaut.putalpha(Image.fromarray(alpha, "L"))
    path = tmp_path / "cutout.png"
    astronaut.save(path)

    ours = prepare_image(open_photo(path).image, DEFAULT_SIDE)
    np.testing.assert_array_equal(ours, _reference(Image.open(path).convert("RGBA"), DEFAULT_SIDE))


class _Arg:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


class _Session:
    def __init__(self, name, shape):
        self._inputs = [_Arg(name, shape)]

    def get_inputs(self):
        return self._inputs


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (["batch_size", 448, 448, 3], InputSpec("input", 448, None)),   # v3: dynamic batch
        ([1, 64, 64, 3], InputSpec("input", 64, 1)),                     # v2: batch baked in
        ([None, "h", "w", 3], InputSpec("input", DEFAULT_SIDE, None)),   # dynamic size: the family's 448
    ],
)
def test_input_spec_reads_side_and_batch_from_the_model(shape, expected):
    assert input_spec(_Session("input", shape)) == expected
