"""The crop stage end to end: real MTCNN on real photos, files on disk, parameters kept, originals untouched."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

import photos
from ti_studio.crop import records
from ti_studio.crop.cropper import CropConfig, crop_folder, recrop
from ti_studio.crop.mtcnn import MtcnnDetector
from ti_studio.crop.framing import CropBox, eye_centre
from ti_studio.crop.faces import Face
from ti_studio.errors import UserError
from ti_studio.images import Photo


@pytest.fixture(scope="module")
def mtcnn():
    return MtcnnDetector(threads=1)


def _snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _crop_face(record, face_box):
    """A face box (photo pixels) in the crop's own pixels."""
    scale = record.size / record.box.side
    x, y, w, h = face_box
    return ((x - record.box.left) * scale, (y - record.box.top) * scale, w * scale, h * scale)


@pytest.fixture
def photo_folder(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    photos.astronaut().save(src / "astronaut.jpg", quality=92)
    photos.camera().save(src / "camera.png")
    scene, _ = photos.small_face_scene()
    scene.save(src / "scene.jpg", quality=90)
    photos.save_with_exif_orientation(photos.astronaut(), src / "sideways.jpg", 6)
    photos.coffee().save(src / "coffee.jpg")
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.png").write_bytes(b"not a png")
    return src


def test_crop_folder_frames_faces_and_reports_every_photo(tmp_path, photo_folder, mtcnn):
    before = _snapshot(photo_folder)
    out = tmp_path / "dataset"
    seen = []
    summary = crop_folder(photo_folder, out, CropConfig(), progress=lambda i, n, name: seen.append((i, n)),
                          detector=mtcnn)

    assert _snapshot(photo_folder) == before  # originals untouched, nothing added beside them
    assert sorted(tmp_path.iterdir()) == [out, photo_folder]  # nothing written outside the chosen folders
    assert seen[-1] == (7, 7)
    outputs = {r.source: r.outputs for r in summary.results}
    assert outputs["astronaut.jpg"] == ["astronaut.png"] and outputs["scene.jpg"] == ["scene.png"]
    assert outputs["sideways.jpg"] == ["sideways.png"] and outputs["camera.png"] == ["camera.png"]
    skipped = {r.source: r.skipped for r in summary.results if r.skipped}
    assert skipped == {"coffee.jpg": "no face found (use --no-face centre to keep a centre crop)",
                       "empty.jpg": "empty file (0 bytes)",
                       "notes.png": "not an image, or a format Pillow cannot read"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    for name in ("astronaut.png", "camera.png", "scene.png", "sideways.png"):
        with Image.open(out / name) as crop:
            assert crop.size == (512, 512) and crop.mode == "RGB"
        record = records.load_record(out, name)
        face = Face(box=tuple(record.faces[record.face_index]["box"]),
                    landmarks=tuple(map(tuple, record.faces[record.face_index]["landmarks"])), score=1.0)
        x, y, w, h = _crop_face(record, face.box)
        assert x >= 0 and y >= 0 and x + w <= 512 and y + h <= 512  # the face is whole inside the crop


def test_small_face_in_a_12_megapixel_scene_is_zoomed_to_head_and_shoulders(tmp_path, mtcnn):
    src = tmp_path / "photos"
    src.mkdir()
    scene, (fx, fy, fw, fh) = photos.small_face_scene()
    scene.save(src / "scene.jpg", quality=90)
    crop_folder(src, tmp_path / "out", CropConfig(), detector=mtcnn)
    record = records.load_record(tmp_path / "out", "scene.png")
    detected = record.faces[record.face_index]["box"]
    assert photos.iou(tuple(detected), (fx, fy, fw, fh)) > 0.5  # found the planted face, not the texture
    assert detected[3] / record.box.side == pytest.approx(0.33, abs=0.01)  # zoomed: face is a third of the crop
    eye_y = np.mean([p[1] for p in record.faces[record.face_index]["landmarks"][:2]])
    assert (eye_y - record.box.top) / record.box.side == pytest.approx(0.40, abs=0.01)
    assert record.flags == [] and record.box.fits_in(4000, 3000)


def test_exif_rotated_photo_is_cropped_upright(tmp_path, mtcnn):
    src = tmp_path / "photos"
    src.mkdir()
    photos.astronaut().save(src / "upright.jpg", quality=95)
    photos.save_with_exif_orientation(photos.astronaut(), src / "turned.jpg", 8)
    crop_folder(src, tmp_path / "out", CropConfig(), detector=mtcnn)
    upright = np.asarray(Image.open(tmp_path / "out" / "upright.png"), np.float32)
    turned = np.asarray(Image.open(tmp_path / "out" / "turned.png"), np.float32)
    assert np.abs(upright - turned).mean() < 8  # same crop: the stored rotation was undone before detecting


def test_one_crop_per_face_and_centre_crop_fallback(tmp_path, mtcnn):
    src = tmp_path / "photos"
    src.mkdir()
    group, boxes = photos.two_faces()
    group.save(src / "group.png")
    photos.coffee().save(src / "coffee.png")
    summary = crop_folder(src, tmp_path / "out", CropConfig(faces="all", no_face="centre"), detector=mtcnn)
    outputs = {r.source: r.outputs for r in summary.results}
    assert outputs == {"group.png": ["group_f1.png", "group_f2.png"], "coffee.png": ["coffee.png"]}
    first, second = (records.load_record(tmp_path / "out", name) for name in outputs["group.png"])
    assert photos.iou(tuple(first.faces[first.face_index]["box"]), boxes[0]) > 0.5
    assert photos.iou(tuple(second.faces[second.face_index]["box"]), boxes[1]) > 0.5
    assert "several_faces" in first.flags
    coffee = records.load_record(tmp_path / "out", "coffee.png")
    assert coffee.flags[0] == "no_face" and coffee.face_index is None
    assert coffee.box == CropBox(left=100, top=0, side=400)


@pytest.fixture
def one_crop(tmp_path, mtcnn):
    """``photos/a.png`` (the astronaut) cropped into ``out/a.png``; returns (photo folder, dataset folder)."""
    src = tmp_path / "photos"
    src.mkdir()
    photos.astronaut().save(src / "a.png")
    out = tmp_path / "out"
    crop_folder(src, out, CropConfig(), detector=mtcnn)
    return src, out


def test_manual_adjustment_is_re_exported_and_survives_a_new_run(one_crop, mtcnn):
    src, out = one_crop
    auto = records.load_record(out, "a.png")

    manual = CropBox(left=0, top=0, side=512)
    record = recrop(out, "a.png", box=manual)
    assert record.adjusted and records.load_record(out, "a.png").box == manual
    expected = np.asarray(photos.astronaut(), np.float32)
    with Image.open(out / "a.png") as crop:
        assert np.abs(np.asarray(crop, np.float32) - expected).mean() < 1  # the whole photo, as asked

    summary = crop_folder(src, out, CropConfig(), detector=mtcnn)
    assert summary.results[0].warnings == ["a.png: kept your manual adjustment"]
    assert records.load_record(out, "a.png").box == manual != auto.box

    bigger = recrop(out, "a.png", size=768)  # re-export at another size, same box, no detection
    assert bigger.box == manual
    with Image.open(out / "a.png") as crop:
        assert crop.size == (768, 768)


def test_recrop_explains_a_moved_original(one_crop):
    src, out = one_crop
    (src / "a.png").unlink()
    with pytest.raises(UserError, match="no longer at"):
        recrop(out, "a.png", size=256)
    with pytest.raises(UserError, match="no crop parameters"):
        recrop(out, "other.png")


def test_recrop_notices_a_changed_original(one_crop):
    src, out = one_crop
    photos.astronaut().rotate(5).save(src / "a.png")  # edited in place, same size
    record = recrop(out, "a.png", size=256)
    assert record.warnings[-1] == "the original photo was modified since it was cropped: check the crop"
    assert recrop(out, "a.png").warnings[-1:] != [record.warnings[-1]]  # the record now knows the new file
    photos.astronaut().resize((300, 300)).save(src / "a.png")
    with pytest.raises(UserError, match="is now 300x300, not 512x512"):
        recrop(out, "a.png")


def test_a_failed_write_leaves_the_previous_crop_whole(one_crop, monkeypatch):
    _, out = one_crop
    before = (out / "a.png").read_bytes()

    def crash(self, fp, format=None, **params):
        with open(fp, "wb") as handle:
            handle.write(b"\x89PNG half")  # what a kill mid-save leaves in the file being written
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(OSError, match="No space"):
        recrop(out, "a.png", size=256)
    assert (out / "a.png").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [".ti_studio", "a.png"]


def test_bad_requests_are_refused_clearly(tmp_path, mtcnn):
    src = tmp_path / "photos"
    src.mkdir()
    with pytest.raises(UserError, match="no photos in"):
        crop_folder(src, tmp_path / "out", CropConfig(), detector=mtcnn)
    photos.astronaut().save(src / "a.png")
    with pytest.raises(UserError, match="originals are never written"):
        crop_folder(src, src, CropConfig(), detector=mtcnn)
    with pytest.raises(UserError, match="multiple of 8"):
        CropConfig(size=500)


def test_stop_request_ends_the_run_early(tmp_path, mtcnn):
    src = tmp_path / "photos"
    src.mkdir()
    for index in range(4):
        photos.astronaut().save(src / f"{index}.png")
    summary = crop_folder(src, tmp_path / "out", CropConfig(workers=1), detector=mtcnn, should_stop=lambda: True)
    assert summary.stopped and summary.results == []


def test_render_cuts_exactly_the_box_and_pads_with_edges():
    from ti_studio.crop.render import render

    pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    inside = render(Photo(image=image, full_size=(400, 300)), CropBox(left=100, top=50, side=200), 200)
    assert np.array_equal(np.asarray(inside), pixels[50:250, 100:300])  # 1:1 box: the same pixels
    half = Image.fromarray(pixels).resize((200, 150))  # a reduced decode: the box is scaled to it
    scaled = render(Photo(image=half, full_size=(400, 300)), CropBox(left=100, top=50, side=200), 100)
    assert np.array_equal(np.asarray(scaled), np.asarray(half)[25:125, 50:150])
    padded = np.asarray(render(Photo(image=image, full_size=(400, 300)), CropBox(left=-50, top=0, side=300), 300))
    assert np.array_equal(padded[:, 50:], pixels[:, :250])
    assert np.array_equal(padded[:, 0], pixels[:, 0])  # edge pixels repeated into the padding
