"""YuNet: our decoding of the 12 raw heads, the letterbox, and getting the model from the Hub.

The model here is a stand-in with YuNet's exact I/O signature whose heads hold planted faces (tests/yunet_model.py);
the expected values come from OpenCV's FaceDetectorYN formulas, worked out by hand where they are literals.
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import yunet_model
from fake_hub import FakeHub, online  # noqa: F401 - a fixture
from yunet_model import RawCell, cell_for
from ti_studio.crop.detectors import create_detector
from ti_studio.crop.mtcnn import model_folder
from ti_studio.crop.yunet import MODEL_FILE, YuNetConfig, YuNetDetector, letterbox
from ti_studio.errors import UserError

BLANK = Image.new("RGB", (640, 640))


def detector_for(tmp_path, cells: list[RawCell], **kwargs) -> YuNetDetector:
    path = tmp_path / "yunet.onnx"
    path.write_bytes(yunet_model.build(cells))
    return YuNetDetector(path, device="cpu", **kwargs)


def test_stand_in_has_the_real_signature(tmp_path):
    path = tmp_path / "yunet.onnx"
    path.write_bytes(yunet_model.build([]))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("input", [1, 3, 640, 640])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        (f"{head}_{s}", [1, (640 // s) ** 2, channels])
        for head, channels in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)) for s in (8, 16, 32)
    ]


def test_decodes_a_cell_as_opencv_does(tmp_path):
    # stride 16, row 10, column 20: centre ((20 + 0.5) * 16, (10 + 0.25) * 16) = (328, 164),
    # size (5 * 16, 6 * 16) = (80, 96), so the box starts at (288, 116); score sqrt(0.81 * 1) = 0.9;
    # landmark k at ((20 + kx) * 16, (10 + ky) * 16).
    kps = (-0.5, -0.5, 0.5, -0.5, 0.0, 0.25, -0.25, 1.0, 0.25, 1.0)
    cell = RawCell(16, 10, 20, cls=0.81, obj=1.0, bbox=(0.5, 0.25, math.log(5), math.log(6)), kps=kps)
    [face] = detector_for(tmp_path, [cell]).detect(BLANK)
    assert face.box == pytest.approx((288, 116, 80, 96), abs=1e-3)
    assert np.array(face.landmarks) == pytest.approx(
        np.array([(312, 152), (328, 152), (320, 164), (316, 176), (324, 176)]), abs=1e-3)
    assert face.score == pytest.approx(0.9, abs=1e-6)


def test_scores_are_clamped_before_the_square_root(tmp_path):
    over_one = RawCell(8, 5, 5, cls=1.44, obj=0.64, bbox=(0.5, 0.5, 1.0, 1.0), kps=(0.0,) * 10)
    negative = RawCell(8, 50, 50, cls=-1.0, obj=1.0, bbox=(0.5, 0.5, 1.0, 1.0), kps=(0.0,) * 10)
    faces = detector_for(tmp_path, [over_one, negative]).detect(BLANK)
    assert [f.score for f in faces] == pytest.approx([0.8])  # sqrt(min(1.44, 1) * 0.64); the negative one is 0


def test_faces_on_every_stride_come_back_best_first(tmp_path):
    planted = [  # box, score, stride
        ((40, 48, 30, 36), 0.7, 8),
        ((300, 200, 120, 150), 0.95, 16),
        ((100, 330, 260, 300), 0.85, 32),
    ]
    cells = []
    for (x, y, w, h), score, stride in planted:
        marks = [(x + w * fx, y + h * fy) for fx, fy in ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))]
        cells.append(cell_for((x, y, w, h), marks, score, stride))
    faces = detector_for(tmp_path, cells).detect(BLANK)
    assert [f.score for f in faces] == pytest.approx([0.95, 0.85, 0.7], abs=1e-6)
    for face, index in zip(faces, (1, 2, 0)):
        (x, y, w, h), _, _ = planted[index]
        assert face.box == pytest.approx((x, y, w, h), abs=1e-3)
        assert face.landmarks[0] == pytest.approx((x + 0.3 * w, y + 0.4 * h), abs=1e-3)
        assert face.landmarks[4] == pytest.approx((x + 0.65 * w, y + 0.8 * h), abs=1e-3)


def test_nms_merges_overlapping_detections_and_keeps_separate_ones(tmp_path):
    marks = [(0.0, 0.0)] * 5
    best = cell_for((200, 200, 100, 120), marks, 0.95)
    duplicate = cell_for((210, 205, 100, 120), marks, 0.9)  # IoU ~0.8 with the best: merged
    touching = cell_for((290, 200, 100, 120), marks, 0.8)  # IoU ~0.05 with the best: a second face
    faces = detector_for(tmp_path, [best, duplicate, touching]).detect(BLANK)
    assert [f.score for f in faces] == pytest.approx([0.95, 0.8], abs=1e-6)
    assert faces[0].box == pytest.approx((200, 200, 100, 120), abs=1e-3)


def test_score_threshold(tmp_path):
    weak = cell_for((200, 200, 100, 120), [(0.0, 0.0)] * 5, 0.55)
    assert detector_for(tmp_path, [weak]).detect(BLANK) == []
    [face] = detector_for(tmp_path, [weak], config=YuNetConfig(score_threshold=0.5)).detect(BLANK)
    assert face.score == pytest.approx(0.55, abs=1e-6)


@pytest.mark.parametrize("size, factor", [((1280, 720), 0.5), ((480, 960), 2 / 3), ((320, 200), 2.0)])
def test_boxes_map_back_through_the_letterbox(tmp_path, size, factor):
    box = (100.0, 60.0, 80.0, 100.0)  # in network input pixels, inside the image part of the letterbox
    marks = [(120.0, 90.0), (160.0, 90.0), (140.0, 110.0), (125.0, 140.0), (155.0, 140.0)]
    [face] = detector_for(tmp_path, [cell_for(box, marks, 0.9)]).detect(Image.new("RGB", size))
    assert face.box == pytest.approx(tuple(v / factor for v in box), abs=1e-3)
    assert np.array(face.landmarks) == pytest.approx(np.array(marks) / factor, abs=1e-3)


def test_letterbox_is_bgr_0_255_padded_bottom_right():
    image = Image.new("RGB", (200, 100), (255, 128, 0))
    blob, scale = letterbox(image, (640, 640))
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    assert scale.tolist() == [3.2, 3.2]
    picture = blob[0, :, :320, :]  # 200x100 scaled by 3.2 fills the top 320 rows
    assert np.all(picture[0] == 0) and np.all(picture[1] == 128) and np.all(picture[2] == 255)  # B, G, R
    assert not blob[0, :, 320:, :].any()


def test_grayscale_input_is_accepted(tmp_path):
    cell = cell_for((200, 200, 100, 120), [(0.0, 0.0)] * 5, 0.9)
    assert len(detector_for(tmp_path, [cell]).detect(Image.new("L", (640, 480)))) == 1


def test_rejects_a_file_that_is_not_yunet(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load the YuNet model"):
        YuNetDetector(broken)
    with pytest.raises(UserError, match="not a YuNet 2023mar model"):
        YuNetDetector(model_folder() / "pnet.onnx")
    with pytest.raises(UserError, match="YuNet model not found"):
        YuNetDetector(tmp_path / "missing.onnx")


def test_downloads_the_pinned_model_from_hf_endpoint_once(tmp_path, monkeypatch, online):
    cell = cell_for((200, 200, 100, 120), [(0.0, 0.0)] * 5, 0.9)
    files = {(MODEL_FILE.repo_id, MODEL_FILE.filename): yunet_model.build([cell])}
    with FakeHub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        detector, notice = create_detector("yunet", device="cpu", cache_dir=tmp_path)
        assert detector.name == "yunet" and notice is None
        probes = [r for r in hub.requests if r.repo_id is None]
        assert [(r.method, r.path) for r in probes] == [("HEAD", "/")]  # the one short reachability check
        assert {(r.method, r.repo_id, r.revision, r.filename) for r in hub.requests if r.repo_id} == {
            (method, MODEL_FILE.repo_id, MODEL_FILE.revision, MODEL_FILE.filename) for method in ("HEAD", "GET")
        }
        assert len(detector.detect(BLANK)) == 1

        hub.requests.clear()
        create_detector("auto", device="cpu", cache_dir=tmp_path)  # pinned commit in the cache: no request
        assert hub.requests == []


def test_auto_prefers_yunet_when_it_can_be_had(tmp_path, online):
    with FakeHub({(MODEL_FILE.repo_id, MODEL_FILE.filename): yunet_model.build([])}) as hub:
        detector, notice = create_detector("auto", device="cpu", cache_dir=tmp_path, endpoint=hub.endpoint)
    assert detector.name == "yunet" and notice is None


def test_a_hub_without_the_file_is_a_user_error(tmp_path, online):
    with FakeHub({}) as hub:
        with pytest.raises(UserError, match="could not download opencv/face_detection_yunet"):
            create_detector("yunet", device="cpu", cache_dir=tmp_path, endpoint=hub.endpoint)
