"""Framing geometry: zoom follows the face, eyes on the eye line, the head never cut, padding only when forced."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ti_studio.crop.faces import Face
from ti_studio.crop.framing import (FACE_FRACTIONS, CropBox, FramingConfig, adjusted_box, centre_box, eye_centre,
                                    frame_face)


def face_at(x, y, w, h, score=0.99) -> Face:
    """A frontal face: eyes 40 % down the box, a fifth in from each side."""
    eyes_y = y + 0.4 * h
    return Face(box=(x, y, w, h), score=score, landmarks=(
        (x + 0.3 * w, eyes_y), (x + 0.7 * w, eyes_y), (x + 0.5 * w, y + 0.6 * h),
        (x + 0.35 * w, y + 0.8 * h), (x + 0.65 * w, y + 0.8 * h)))


def test_small_face_in_a_large_photo_is_zoomed_to_head_and_shoulders():
    face = face_at(1900, 1000, 200, 240)  # a 12 MP photo with a small face, like a full-body shot
    framing = frame_face(face, (4000, 3000))
    box = framing.box
    assert box.side == pytest.approx(240 / 0.33)  # face height is a third of the crop: it zooms in
    assert not framing.padded and not framing.zoom_limited
    assert box.top + 0.40 * box.side == pytest.approx(eye_centre(face)[1])  # eye line at 40 %
    assert box.centre[0] == pytest.approx(2000)  # centred on the eyes
    assert box.contains((1900, 1000 - 0.45 * 240, 2100, 1240 + 0.2 * 240))  # hair and chin kept


@pytest.mark.parametrize("preset", list(FACE_FRACTIONS))
def test_presets_set_the_face_share(preset):
    face = face_at(1000, 1000, 100, 120)
    box = frame_face(face, (4000, 4000), FramingConfig(face_fraction=FACE_FRACTIONS[preset])).box
    assert 120 / box.side == pytest.approx(FACE_FRACTIONS[preset])


def test_face_at_the_edge_is_moved_inside_not_padded():
    face = face_at(10, 500, 300, 360)  # touching the photo's left edge
    framing = frame_face(face, (3000, 2000))
    assert framing.box.left == 0 and framing.box.fits_in(3000, 2000) and not framing.padded
    assert framing.box.contains((10, 500, 310, 860))


def test_face_at_the_top_keeps_what_headroom_the_photo_has():
    face = face_at(500, 5, 200, 240)
    framing = frame_face(face, (1200, 1600))
    assert framing.box.top == 0 and not framing.padded


def test_face_larger_than_the_framing_allows_uses_the_whole_short_side():
    face = face_at(100, 150, 500, 600)  # a close-up selfie
    framing = frame_face(face, (800, 1000))
    assert framing.zoom_limited and not framing.padded
    assert framing.box.side == 800 and framing.box.fits_in(800, 1000)


def test_padding_only_when_the_head_is_wider_than_the_photo():
    face = face_at(0, 200, 1000, 1200)  # a face filling a narrow portrait photo edge to edge
    framing = frame_face(face, (1000, 3000))
    assert framing.padded and framing.box.side > 1000
    assert framing.box.contains((0, 200, 1000, 1400))


def test_centre_box_and_manual_adjustment():
    assert centre_box((400, 300)) == CropBox(left=50, top=0, side=300)
    moved = adjusted_box((400, 300), centre=(390, 10), side=100)
    assert moved == CropBox(left=300, top=0, side=100)  # pushed back inside
    zoomed_out = adjusted_box((400, 300), centre=(200, 150), side=500)
    assert zoomed_out.side == 500 and not zoomed_out.fits_in(400, 300)  # the user chose padding
    with pytest.raises(ValueError):
        adjusted_box((400, 300), centre=(200, 150), side=0)


def test_landmarks_outside_the_box_fall_back_to_the_box():
    bad = Face(box=(100, 100, 50, 60), score=0.9, landmarks=((0, 0),) * 5)
    assert eye_centre(bad) == (125, 100 + 0.4 * 60)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        FramingConfig(face_fraction=0.0)
    with pytest.raises(ValueError):
        FramingConfig(eye_line=0.95)


photo_sizes = st.tuples(st.integers(64, 6000), st.integers(64, 6000))


@st.composite
def faces_in_photos(draw):
    width, height = draw(photo_sizes)
    fh = draw(st.floats(8, max(8.0, 1.2 * min(width, height))))
    fw = fh * draw(st.floats(0.6, 1.1))
    x = draw(st.floats(-0.3 * fw, max(-0.3 * fw, width - 0.7 * fw)))
    y = draw(st.floats(-0.3 * fh, max(-0.3 * fh, height - 0.7 * fh)))
    return face_at(x, y, fw, fh), (width, height)


@settings(max_examples=400, deadline=None)
@given(faces_in_photos())
def test_properties_of_every_framing(case):
    face, (width, height) = case
    framing = frame_face(face, (width, height))
    box = framing.box
    x, y, w, h = face.box
    visible_face = (max(0, x), max(0, y), min(width, x + w), min(height, y + h))
    assert box.contains(visible_face, tolerance=1e-6 * max(width, height))  # the face is never cut
    assert box.side > 0 and math.isfinite(box.side)
    assert framing.padded == (not box.fits_in(width, height))
    if not framing.padded:
        assert box.side <= min(width, height) + 1e-6
    else:
        # padding only when the face itself is longer than the photo's short side
        longest_face_span = max(visible_face[2] - visible_face[0], visible_face[3] - visible_face[1])
        assert longest_face_span > min(width, height) - 1e-6
        assert box.side == pytest.approx(longest_face_span)
