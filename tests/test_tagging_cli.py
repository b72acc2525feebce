"""``python -m ti_studio tag``, in-process: exit codes, the --json summary, one stderr line for bad input."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tagger_model import build_model_folder
from ti_studio.cli import main
from ti_studio.tagging.tagger import unload_taggers


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("wd-v3"))


@pytest.fixture(autouse=True)
def _fresh_sessions():
    yield
    unload_taggers()


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    Image.new("RGB", (300, 300), (255, 255, 255)).save(folder / "white.png")
    Image.new("RGB", (300, 200), (0, 0, 255)).save(folder / "blue.png")
    return folder


def tag(*args: str) -> int:
    return main(["tag", *map(str, args), "--device", "cpu"])


def test_json_summary_and_captions(photos, model_dir, capsys):
    (photos / "broken.jpg").write_text("not a photo")
    (photos / "zero.jpg").write_bytes(b"")
    assert tag(photos, "--model", model_dir, "--json") == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary == {
        "tagged": 2,
        "skipped": [],
        "failed": [
            {"file": "broken.jpg", "reason": "not an image, or a format Pillow cannot read"},
            {"file": "zero.jpg", "reason": "empty file (0 bytes)"},
        ],
        "provider": "CPUExecutionProvider",
        "model": str(model_dir),
        "notice": None,
    }
    assert "failed broken.jpg: not an image, or a format Pillow cannot read" in err.splitlines()
    assert (photos / "white.txt").read_text("utf-8").startswith("hatsune miku, artoria pendragon \\(fate\\), ")


def test_human_output_goes_to_stdout_without_json(photos, model_dir, capsys):
    assert tag(photos, "--model", model_dir) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == f"model {model_dir}, running on CPU"
    assert out.splitlines()[-1] == f"tagged 2, skipped 0, failed 0 ({model_dir}, CPU)"


def test_options_reach_the_captions(photos, model_dir, capsys):
    (photos / "white.txt").write_text("sks person, solo", "utf-8")
    code = tag(photos, "--model", model_dir, "--general", "0.7", "--character", "0.88", "--exclude",
               "white background, 1girl", "--include-rating", "--mode", "append", "--batch", "1")
    assert code == 0
    assert (photos / "white.txt").read_text("utf-8") == "sks person, solo, general, hatsune miku, simple background"
    capsys.readouterr()
    code = tag(photos, "--model", model_dir, "--mcut-general", "--mcut-character", "--mode", "skip", "--json")
    assert code == 0
    assert [s["file"] for s in json.loads(capsys.readouterr().out)["skipped"]] == ["blue.png", "white.png"]


def test_recursive_flag(photos, model_dir):
    (photos / "sub").mkdir()
    Image.new("RGB", (64, 64), (255, 255, 255)).save(photos / "sub" / "inner.png")
    assert tag(photos, "--model", model_dir) == 0
    assert not (photos / "sub" / "inner.txt").exists()
    assert tag(photos, "--model", model_dir, "--recursive", "--fast-decode") == 0
    assert (photos / "sub" / "inner.txt").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: root / "missing", "error: folder not found: "),
        (lambda root: (root / "empty").mkdir() or root / "empty", "error: no photos in "),
    ],
)
def test_bad_folders_exit_2_with_one_line(tmp_path, model_dir, capsys, setup, message):
    assert tag(setup(tmp_path), "--model", model_dir, "--json") == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith(message)


def test_unknown_model_exit_2(photos, capsys):
    assert tag(photos, "--model", "no-such-model") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown tagger model 'no-such-model'") and "vit-v2" in err
    assert len(err.splitlines()) == 1


def test_model_folder_without_files_exit_2(photos, tmp_path, capsys):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.onnx").write_bytes(b"")
    assert tag(photos, "--model", tmp_path / "half") == 2
    assert "has no selected_tags.csv" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--general", "1.5"], ["--batch", "0"], ["--mode", "merge"]])
def test_invalid_option_values_are_rejected_by_the_parser(photos, model_dir, bad):
    with pytest.raises(SystemExit) as exit_info:
        tag(photos, "--model", model_dir, *bad)
    assert exit_info.value.code == 2
