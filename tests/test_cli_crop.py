"""``python -m ti_studio crop`` and ``recrop``: the CLI contract (exit codes, one-line errors, --json)."""

import json
import subprocess
import sys

import pytest
from PIL import Image

import photos
from ti_studio.cli import main


@pytest.fixture
def photo_dir(tmp_path):
    src = photos.face_and_no_face(tmp_path / "photos")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return src


def test_crop_json_summary_and_exit_zero_despite_bad_files(photo_dir, tmp_path, capsys):
    out = tmp_path / "dataset"
    code = main(["crop", str(photo_dir), str(out), "--detector", "mtcnn", "--size", "256", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out)
    assert summary["written"] == 1 and summary["outputs"] == ["astronaut.png"]
    assert {s["file"] for s in summary["skipped"]} == {"coffee.jpg", "broken.jpg"}
    assert "broken.jpg: skipped:" in captured.err  # human lines go to stderr under --json
    with Image.open(out / "astronaut.png") as crop:
        assert crop.size == (256, 256)


def test_recrop_adjusts_one_crop_and_reexports_all(photo_dir, tmp_path, capsys):
    out = tmp_path / "dataset"
    assert main(["crop", str(photo_dir), str(out), "--detector", "mtcnn"]) == 0
    assert "astronaut.jpg -> astronaut.png" in capsys.readouterr().out
    assert main(["recrop", str(out), "astronaut.png", "--box", "0,0,512", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)["recropped"][0]
    assert done["box"] == {"left": 0.0, "top": 0.0, "side": 512.0}
    assert main(["recrop", str(out), "--size", "768"]) == 0
    with Image.open(out / "astronaut.png") as crop:
        assert crop.size == (768, 768)


@pytest.mark.parametrize("args, message", [
    (["crop", "{missing}", "{out}"], "folder not found"),
    (["crop", "{src}", "{out}", "--size", "500"], "multiple of 8"),
    (["crop", "{src}", "{src}"], "originals are never written"),
    (["recrop", "{out}", "a.png", "--box", "1,2"], "LEFT,TOP,SIDE"),
    (["recrop", "{out}"], "no saved crops"),
])
def test_bad_input_exits_2_with_one_line(photo_dir, tmp_path, capsys, args, message):
    values = {"missing": str(tmp_path / "nope"), "src": str(photo_dir), "out": str(tmp_path / "out")}
    assert main([arg.format(**values) for arg in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ti_studio", "crop", str(tmp_path / "none"), str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: folder not found")
