"""Tagging folders end to end on the tiny model: exact captions, write modes, bad photos, v2-style models."""

from __future__ import annotations

import codecs

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from tagger_model import BLUE, GREEN, WHITE, build_model_folder, expected_scores, write_tags_csv
from ti_studio.errors import UserError
from ti_studio.tagging.models import resolve_model
from ti_studio.tagging.postprocess import TagOptions, display_name
from ti_studio.tagging.tagger import TagConfig, Tagger, load_tagger, tag_folder, unload_taggers

WHITE_CAPTION = ("hatsune miku, artoria pendragon \\(fate\\), white background, 1girl, solo, simple background, "
                 "long hair, ^_^, star \\(symbol\\), smile")
BLUE_CAPTION = "blue background, simple background"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("wd-v3"))


@pytest.fixture(scope="module")
def v2_model_dir(tmp_path_factory):
    """v2-like: other tensor names, batch fixed to 1, and a 64 px input (so the side must be read from the model)."""
    return build_model_folder(tmp_path_factory.mktemp("wd-v2"), side=64, batch=1, input_name="input_1:0",
                              output_name="predictions_sigmoid")


@pytest.fixture(autouse=True)
def _fresh_sessions():
    yield
    unload_taggers()


def photo(path, colour, size=(300, 300)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def config(model_dir, **kwargs) -> TagConfig:
    return TagConfig(model=str(model_dir), device="cpu", **kwargs)


def shown(scores: dict[str, float]) -> dict[str, float]:
    return {display_name(name): value for name, value in scores.items()}


def test_plain_colours_get_exactly_the_designed_tags(tmp_path, model_dir):
    photo(tmp_path / "white.png", (255, 255, 255))
    photo(tmp_path / "blue.png", (0, 0, 255), size=(600, 600))  # downscaled; a plain colour stays plain
    photo(tmp_path / "green.png", (0, 255, 0), size=(100, 100))  # upscaled
    run = tag_folder(tmp_path, config(model_dir))

    assert (tmp_path / "white.txt").read_text("utf-8") == WHITE_CAPTION
    assert (tmp_path / "blue.txt").read_text("utf-8") == BLUE_CAPTION
    assert (tmp_path / "green.txt").read_text("utf-8") == ""  # nothing scores above the thresholds
    assert [image.path.name for image in run.tagged] == ["blue.png", "green.png", "white.png"]
    by_name = {image.path.name: image.prediction for image in run.tagged}
    for name, design in (("white.png", WHITE), ("blue.png", BLUE), ("green.png", GREEN)):
        expected = shown(design)
        for tag, confidence in by_name[name].tags.items():
            assert confidence == pytest.approx(expected[tag], abs=1e-6)
        assert by_name[name].ratings == pytest.approx({k: design[k] for k in by_name[name].ratings}, abs=1e-6)
    assert run.summary() == {"tagged": 3, "skipped": [], "failed": [], "provider": "CPUExecutionProvider",
                             "model": str(model_dir), "notice": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blue.png", "blue.txt", "green.png", "green.txt", "white.png", "white.txt"]  # no temp files left


def test_padding_is_white_and_channels_are_bgr(tmp_path, model_dir):
    # 448 x 224 blue, padded to 448 x 448 with white: channel means R = G = 0.5, B = 1 (no resize needed).
    photo(tmp_path / "wide.png", (0, 0, 255), size=(448, 224))
    run = tag_folder(tmp_path, config(model_dir, options=TagOptions(general_threshold=0.0, character_threshold=0.0)))
    expected = shown(expected_scores((127.5, 127.5, 255)))
    got = run.tagged[0].prediction.tags
    assert set(got) == set(expected) - {"general", "sensitive", "questionable", "explicit"}
    for tag, confidence in got.items():
        assert confidence == pytest.approx(expected[tag], abs=1e-6)
    # An RGB-ordered model input would have scored the blue photo like its mirror image (R = 1, B = 0.5):
    mirrored = shown(expected_scores((255, 127.5, 127.5)))
    assert abs(got["blue background"] - mirrored["blue background"]) > 0.1


def test_mcut_options(tmp_path, model_dir):
    photo(tmp_path / "white.png", (255, 255, 255))
    photo(tmp_path / "blue.png", (0, 0, 255))
    tag_folder(tmp_path, config(model_dir, options=TagOptions(mcut_general=True, mcut_character=True)))
    # white general: largest gap 0.34 -> 0.02, so MCut 0.18 also lets "open mouth" (0.34) in.
    assert (tmp_path / "white.txt").read_text("utf-8") == WHITE_CAPTION + ", open mouth"
    # blue character: gap 0.7 -> 0.1, MCut 0.4 lets hakurei reimu (0.7) in below the fixed 0.85.
    assert (tmp_path / "blue.txt").read_text("utf-8").startswith("hakurei reimu, blue background")


def test_exclusions_and_rating(tmp_path, model_dir):
    photo(tmp_path / "white.png", (255, 255, 255))
    options = TagOptions(include_rating=True, exclude=("white_background", "long hair", "^_^", "hatsune miku"))
    tag_folder(tmp_path, config(model_dir, options=options))
    assert (tmp_path / "white.txt").read_text("utf-8") == (
        "general, artoria pendragon \\(fate\\), 1girl, solo, simple background, star \\(symbol\\), smile")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("overwrite", BLUE_CAPTION),
        ("append", "my subject, simple_background, blue background"),
        ("prepend", "blue background, simple background, my subject"),
        ("skip", "my subject, simple_background"),
    ],
)
def test_write_modes_on_an_existing_caption(tmp_path, model_dir, mode, expected):
    photo(tmp_path / "blue.png", (0, 0, 255))
    (tmp_path / "blue.txt").write_text("my subject, simple_background", "utf-8")
    run = tag_folder(tmp_path, config(model_dir, mode=mode))
    assert (tmp_path / "blue.txt").read_text("utf-8") == expected
    assert (len(run.tagged), [vars(s) for s in run.skipped]) == (
        (0, [{"file": "blue.png", "reason": "caption exists"}]) if mode == "skip" else (1, []))


def test_skip_mode_does_not_even_open_captioned_photos_and_fills_empty_captions(tmp_path, model_dir):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "broken.txt").write_text("hand-written", "utf-8")
    photo(tmp_path / "blue.png", (0, 0, 255))
    (tmp_path / "blue.txt").write_text("  \n", "utf-8")  # whitespace only: counts as no caption
    run = tag_folder(tmp_path, config(model_dir, mode="skip"))
    assert run.failed == [] and [s.file for s in run.skipped] == ["broken.jpg"]
    assert (tmp_path / "blue.txt").read_text("utf-8") == BLUE_CAPTION


@pytest.mark.parametrize(
    "encoded",
    [
        codecs.BOM_UTF8 + "héros, long hair".encode("utf-8"),
        "héros, long hair".encode("utf-16"),          # with BOM (Windows Notepad "Unicode")
        "héros, long hair".encode("utf-16-le"),       # without BOM: recognised by its NUL bytes
    ],
)
def test_existing_captions_in_bom_and_utf16_are_read(tmp_path, model_dir, encoded):
    photo(tmp_path / "blue.png", (0, 0, 255))
    (tmp_path / "blue.txt").write_bytes(encoded)
    tag_folder(tmp_path, config(model_dir, mode="append"))
    assert (tmp_path / "blue.txt").read_bytes() == f"héros, long hair, {BLUE_CAPTION}".encode("utf-8")


def test_undecodable_existing_caption_fails_that_photo_only(tmp_path, model_dir):
    photo(tmp_path / "blue.png", (0, 0, 255))
    photo(tmp_path / "white.png", (255, 255, 255))
    (tmp_path / "blue.txt").write_bytes("caf\xe9".encode("latin-1"))
    run = tag_folder(tmp_path, config(model_dir, mode="append"))
    assert [(f.file, "not UTF-8 or UTF-16" in f.reason) for f in run.failed] == [("blue.png", True)]
    assert (tmp_path / "blue.txt").read_bytes() == b"caf\xe9"
    assert (tmp_path / "white.txt").read_text("utf-8") == WHITE_CAPTION


def test_bad_photos_are_listed_and_the_batch_goes_on(tmp_path, model_dir):
    photo(tmp_path / "a_white.png", (255, 255, 255))
    (tmp_path / "b_text.jpg").write_text("this is not a photo")
    (tmp_path / "c_empty.jpg").write_bytes(b"")
    photo(tmp_path / "d_blue.png", (0, 0, 255))
    lines: list[str] = []
    run = tag_folder(tmp_path, config(model_dir, batch_size=4), report=lines.append)
    assert [image.path.name for image in run.tagged] == ["a_white.png", "d_blue.png"]
    assert [vars(f) for f in run.failed] == [
        {"file": "b_text.jpg", "reason": "not an image, or a format Pillow cannot read"},
        {"file": "c_empty.jpg", "reason": "empty file (0 bytes)"},
    ]
    assert "failed b_text.jpg: not an image, or a format Pillow cannot read" in lines
    assert lines[-1].startswith("tagged 2, skipped 0, failed 2")
    assert not (tmp_path / "b_text.txt").exists()


def test_missing_and_empty_folders_are_user_errors(tmp_path, model_dir):
    with pytest.raises(UserError, match="folder not found"):
        tag_folder(tmp_path / "nope", config(model_dir))
    (tmp_path / "notes.txt").write_text("no photos here")
    with pytest.raises(UserError, match="no photos in"):
        tag_folder(tmp_path, config(model_dir))


def test_photos_sharing_a_stem_do_not_overwrite_each_other(tmp_path, model_dir):
    photo(tmp_path / "me.jpg", (0, 0, 255))
    photo(tmp_path / "me.png", (255, 255, 255))
    run = tag_folder(tmp_path, config(model_dir))
    assert [image.path.name for image in run.tagged] == ["me.jpg"]
    assert [vars(s) for s in run.skipped] == [{"file": "me.png", "reason": "me.txt is already the caption of me.jpg"}]


def test_recursive(tmp_path, model_dir):
    photo(tmp_path / "top.png", (0, 0, 255))
    photo(tmp_path / "sub" / "deep.png", (255, 255, 255))
    assert [i.path.name for i in tag_folder(tmp_path, config(model_dir)).tagged] == ["top.png"]
    run = tag_folder(tmp_path, config(model_dir, recursive=True, mode="skip"))
    assert [i.path.name for i in run.tagged] == ["deep.png"] and run.skipped[0].file == "top.png"
    assert (tmp_path / "sub" / "deep.txt").read_text("utf-8") == WHITE_CAPTION


def test_batches_keep_order_and_match_single_runs(tmp_path, model_dir):
    colours = [(255, 255, 255), (0, 0, 255), (0, 255, 0), (120, 30, 200)]
    for i in range(11):
        photo(tmp_path / f"p{i:02d}.png", colours[i % 4], size=(200 + 10 * i, 300))
    batched = tag_folder(tmp_path, config(model_dir, batch_size=4, write=False))
    single = tag_folder(tmp_path, config(model_dir, batch_size=1, write=False))
    assert [i.path.name for i in batched.tagged] == [f"p{i:02d}.png" for i in range(11)]
    for a, b in zip(batched.tagged, single.tagged):
        assert a.caption == b.caption
        # float32 means over 448 x 448 mixed pixels are summed in a batch-dependent order: ~1e-4 noise
        assert a.prediction.tags == pytest.approx(b.prediction.tags, abs=1e-3)
    assert not list(tmp_path.glob("*.txt"))  # write=False touches nothing


def test_progress_counts_every_photo(tmp_path, model_dir):
    for i in range(5):
        photo(tmp_path / f"{i}.png", (0, 0, 255))
    (tmp_path / "bad.jpg").write_bytes(b"")
    calls = []
    tag_folder(tmp_path, config(model_dir, batch_size=2), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(n, 6) for n in range(1, 7)]


def test_v2_style_model_size_batch_and_names_come_from_the_model(tmp_path, v2_model_dir):
    tagger = load_tagger(str(v2_model_dir), device="cpu")
    assert (tagger.input.name, tagger.input.side, tagger.input.fixed_batch, tagger.output_name) == (
        "input_1:0", 64, 1, "predictions_sigmoid")
    assert tagger.batch_size(8) == 1
    photo(tmp_path / "white.png", (255, 255, 255))
    photo(tmp_path / "blue.png", (0, 0, 255), size=(100, 40))
    photo(tmp_path / "green.png", (0, 255, 0))
    lines: list[str] = []
    run = tag_folder(tmp_path, config(v2_model_dir, batch_size=8), report=lines.append)
    assert "this model has a fixed batch of 1; running 1 photo(s) at a time" in lines
    assert len(run.tagged) == 3
    assert (tmp_path / "white.txt").read_text("utf-8") == WHITE_CAPTION


def test_predict_on_in_memory_images(model_dir):
    tagger = load_tagger(str(model_dir), device="cpu")
    white, blue = tagger.predict([Image.new("RGB", (50, 80), (255, 255, 255)), Image.new("RGB", (9, 9), (0, 0, 255))])
    assert ", ".join(white.tags) == WHITE_CAPTION and ", ".join(blue.tags) == BLUE_CAPTION


def test_sessions_are_cached_per_model_and_unloadable(model_dir):
    first = load_tagger(str(model_dir), device="cpu")
    assert load_tagger(str(model_dir), device="cpu") is first
    unload_taggers()
    assert load_tagger(str(model_dir), device="cpu") is not first


def test_labels_that_do_not_fit_the_model_are_refused(tmp_path):
    folder = build_model_folder(tmp_path / "m")
    write_tags_csv(folder / "selected_tags.csv", [("general", 9), ("solo", 0)])
    with pytest.raises(UserError, match="scores 17 tags but .* lists 2"):
        Tagger(resolve_model(folder), device="cpu")


def test_a_model_that_is_not_an_image_tagger_is_refused(tmp_path):
    folder = build_model_folder(tmp_path / "m")
    vector = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 17])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "not_a_tagger", [vector],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 17])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              folder / "model.onnx")
    with pytest.raises(UserError, match="not a WD14-style tagger"):
        Tagger(resolve_model(folder), device="cpu")


def test_results_are_numpy_free_for_json(tmp_path, model_dir):
    photo(tmp_path / "white.png", (255, 255, 255))
    run = tag_folder(tmp_path, config(model_dir))
    values = list(run.tagged[0].prediction.tags.values()) + list(run.tagged[0].prediction.ratings.values())
    assert all(type(v) is float for v in values) and not any(isinstance(v, np.generic) for v in values)


def test_a_caption_that_cannot_be_written_fails_that_photo_only(tmp_path, model_dir):
    photo(tmp_path / "blue.png", (0, 0, 255))
    photo(tmp_path / "white.png", (255, 255, 255))
    (tmp_path / "blue.txt").mkdir()  # a folder where the caption should go
    run = tag_folder(tmp_path, config(model_dir))
    assert [vars(f) for f in run.failed] == [{"file": "blue.png", "reason": "cannot write blue.txt: Is a directory"}]
    assert [i.path.name for i in run.tagged] == ["white.png"]


def test_fast_decode_reads_large_jpegs_at_reduced_scale_with_nearly_equal_scores(tmp_path, model_dir, monkeypatch):
    from photos import SKIMAGE_DATA
    from ti_studio.tagging import tagger as tagger_module

    Image.open(SKIMAGE_DATA / "astronaut.png").convert("RGB").resize((2000, 1500)).save(tmp_path / "big.jpg",
                                                                                       quality=90)
    exact = tag_folder(tmp_path, config(model_dir, write=False)).tagged[0].prediction
    sizes = []
    real_open = tagger_module.open_photo

    def recording_open(path, min_long_side=None):
        photo = real_open(path, min_long_side=min_long_side)
        sizes.append(photo.image.size)
        return photo

    monkeypatch.setattr(tagger_module, "open_photo", recording_open)
    fast = tag_folder(tmp_path, config(model_dir, write=False, fast_decode=True)).tagged[0].prediction
    assert sizes == [(500, 375)]  # libjpeg's 1/4 scale: the largest reduction keeping the long side >= 448
    assert fast.tags.keys() == exact.tags.keys()
    assert fast.tags == pytest.approx(exact.tags, abs=0.01)


def test_a_fixed_batch_larger_than_one_gets_its_last_partial_batch_filled(tmp_path):
    model = build_model_folder(tmp_path / "fixed3", side=32, batch=3)
    photos = tmp_path / "photos"
    for i in range(5):
        photo(photos / f"{i}.png", (255, 255, 255) if i % 2 else (0, 0, 255))
    run = tag_folder(photos, config(model, batch_size=8))
    assert [image.caption for image in run.tagged] == [BLUE_CAPTION, WHITE_CAPTION] * 2 + [BLUE_CAPTION]


def test_a_damaged_model_file_is_a_user_error(tmp_path):
    folder = build_model_folder(tmp_path / "m")
    (folder / "model.onnx").write_bytes(b"\x00 truncated download")
    with pytest.raises(UserError, match="onnxruntime cannot load it"):
        Tagger(resolve_model(folder), device="cpu")
