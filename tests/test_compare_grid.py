"""The standalone comparison grid: a real run on the tiny model, rendered cell by cell and labelled like X/Y/Z."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

import photos
from ti_studio.backends.diffusers_backend import DiffusersBackend
from ti_studio.cli import main
from ti_studio.compare.comparison import compare_run
from ti_studio.compare.grid import GridRequest, label_margins, render_grid

SIZE = 64


@pytest.fixture(scope="module")
def run_dir(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    dataset = photos.two_image_dataset(root / "dataset")
    assert main(["train", "--model", str(tiny_models["sd1"]), "--data", str(dataset), "--name", "tiface",
                 "--steps", "4", "--save-every", "2", "--preview-every", "0", "--size", str(SIZE), "--lr", "0.5",
                 "--out", str(root / "runs"), "--device", "cpu"]) == 0
    return root / "runs" / "tiface"


@pytest.fixture(scope="module")
def backend(tiny_models):
    return DiffusersBackend.load(tiny_models["sd1"], device="cpu")


def _request(run_dir, y=("short hair", "long hair")) -> GridRequest:
    return GridRequest.for_comparison(compare_run(run_dir, y_values=list(y)))


def _cell(grid: Image.Image, request: GridRequest, row: int, column: int) -> np.ndarray:
    top, left = label_margins(request)
    box = (left + column * request.width, top + row * request.height,
           left + (column + 1) * request.width, top + (row + 1) * request.height)
    return np.asarray(grid.crop(box), dtype=np.int16)


def test_grid_has_a_cell_per_snapshot_and_y_value_and_counts_them(run_dir, backend):
    request = _request(run_dir)
    assert [s.compare_name for s in request.snapshots] == ["tiface-2", "tiface-4"]
    assert (request.width, request.height, request.preset.seed) == (SIZE, SIZE, 1)  # the preset's size and seed
    calls = []
    grid = render_grid(backend, request, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    top, left = label_margins(request)
    assert top > 0 and left > 0
    assert grid.size == (left + 2 * SIZE, top + 2 * SIZE) and grid.mode == "RGB"
    corner = np.asarray(grid.crop((0, 0, left, top)))
    assert (corner == 255).all()  # white background
    assert (np.asarray(grid.crop((left, 0, left + SIZE, top))) < 128).any()  # a column label
    assert (np.asarray(grid.crop((0, top, left, top + SIZE))) < 128).any()  # a row label
    # Other vectors, other pixels; another Y value, another image.
    assert not np.array_equal(_cell(grid, request, 0, 0), _cell(grid, request, 0, 1))
    assert not np.array_equal(_cell(grid, request, 0, 0), _cell(grid, request, 1, 0))
    # A fixed seed: the same cell renders the same way again.
    again = render_grid(backend, GridRequest(request.snapshots, dataclasses.replace(request.preset, y_values=["short hair"])))
    assert np.array_equal(_cell(again, request, 0, 1), _cell(grid, request, 0, 1))


def test_no_y_values_draws_one_row_without_row_labels(run_dir, backend):
    request = _request(run_dir, y=())
    assert request.prompt(request.snapshots[0], "") == "a photo of tiface-2"
    grid = render_grid(backend, request)
    top, left = label_margins(request)
    assert left == 0 and grid.size == (2 * SIZE, top + SIZE)


def test_stopping_keeps_the_cells_done(run_dir, backend):
    request = _request(run_dir)
    calls = []
    grid = render_grid(backend, request, progress=lambda done, total: calls.append(done),
                       should_stop=lambda: len(calls) >= 1)
    assert calls == [1]
    assert (_cell(grid, request, 1, 1) == 255).all()  # never rendered: blank
    assert not (_cell(grid, request, 0, 0) == 255).all()


def test_cli_grid_writes_a_png_after_the_preset(run_dir, tiny_models, tmp_path, capsys):
    out = tmp_path / "grids" / "grid.png"
    assert main(["compare", str(run_dir), "--y", "short hair,long hair", "--grid", str(out),
                 "--model", str(tiny_models["sd1"]), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "a photo of tiface-2, short hair"
    assert "grid: image 4/4" in captured.err and str(out) in captured.err
    with Image.open(out) as image:
        assert image.format == "PNG"
        top, left = label_margins(_request(run_dir))
        assert image.size == (left + 2 * SIZE, top + 2 * SIZE)
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # no temp file left behind

    json_out = tmp_path / "grid2.png"
    assert main(["compare", str(run_dir), "--y", "", "--grid", str(json_out), "--model", str(tiny_models["sd1"]),
                 "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grid"] == str(json_out) and json_out.is_file()


def test_cli_without_grid_has_no_grid_key_and_bad_grid_path_exits_2(run_dir, tmp_path, capsys):
    assert main(["compare", str(run_dir), "--json"]) == 0
    assert "grid" not in json.loads(capsys.readouterr().out)
    assert main(["compare", str(run_dir), "--grid", str(tmp_path / "grid.txt"),
                 "--model", str(tmp_path / "no-model")]) == 2
    assert "--grid must name" in capsys.readouterr().err
