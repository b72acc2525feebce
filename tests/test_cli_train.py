"""``train`` and ``compare`` on the command line: a real run on a tiny model, and every bad input as one line."""

import json

import pytest

import photos
from ti_studio.cli import main


@pytest.fixture
def dataset(tmp_path):
    return photos.two_image_dataset(tmp_path / "dataset")


def _train(sd1_model_dir, dataset, out, *extra):
    return ["train", "--model", str(sd1_model_dir), "--data", str(dataset), "--name", "tiface", "--steps", "6",
            "--save-every", "2", "--preview-every", "0", "--size", "64", "--lr", "0.01", "--out", str(out), *extra]


def test_train_then_compare(sd1_model_dir, dataset, tmp_path, capsys):
    assert main(_train(sd1_model_dir, dataset, tmp_path / "runs", "--format", "both", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] and summary["steps_done"] == 6
    embeddings = tmp_path / "runs" / "tiface" / "embeddings"
    assert sorted(p.name for p in embeddings.iterdir()) == [
        "tiface-2.pt", "tiface-2.safetensors", "tiface-4.pt", "tiface-4.safetensors", "tiface-6.pt",
        "tiface-6.safetensors"]

    assert main(["compare", str(tmp_path / "runs" / "tiface"), "--y", "short hair,long hair",
                 "--export", str(tmp_path / "embeddings")]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0] == "a photo of tiface-2, short hair"
    assert 'X Type: Prompt S/R, X Values: "tiface-2,tiface-4,tiface-6"' in lines[-1]
    assert 'Y Type: Prompt S/R, Y Values: "short hair,long hair"' in lines[-1]
    assert "Script: X/Y/Z plot" in lines[-1] and "Size: 64x64" in lines[-1]
    assert sorted(p.name for p in (tmp_path / "embeddings").iterdir()) == [
        "tiface-2.safetensors", "tiface-4.safetensors", "tiface-6.safetensors"]


def test_compare_names_are_never_substrings_of_each_other(sd1_model_dir, dataset, tmp_path, capsys):
    assert main(_train(sd1_model_dir, dataset, tmp_path / "runs", "--steps", "10", "--save-every", "1")) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs" / "tiface"), "--steps", "1,10", "--json"]) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out)["snapshots"]]
    assert names == ["tiface-01", "tiface-10"]  # "tiface-1" would be replaced inside "tiface-10"


def test_interrupted_run_resumes_from_the_cli(sd1_model_dir, dataset, tmp_path, capsys):
    assert main(_train(sd1_model_dir, dataset, tmp_path / "runs", "--steps", "4")) == 0
    before = sorted(p.name for p in (tmp_path / "runs" / "tiface" / "embeddings").iterdir())
    assert main(_train(sd1_model_dir, dataset, tmp_path / "runs", "--steps", "6", "--model", str(tmp_path / "none")
                       )) == 2  # refused before the model is loaded: the missing model is never reached
    assert "use --resume" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs" / "tiface" / "embeddings").iterdir()) == before
    assert main(_train(sd1_model_dir, dataset, tmp_path / "runs", "--steps", "6", "--resume", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["steps_done"] == 6


@pytest.mark.parametrize("case, message", [
    ("empty dataset", "no training images"),
    ("missing caption", "have no caption .txt"),
    ("unknown template", "unknown template"),
    ("bad schedule", '"0.02:abc"'),
    ("name with a path", "name"),
    ("missing model", "not found"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(sd1_model_dir, dataset, tmp_path, capsys, case, message):
    args = {"name": "tiface", "lr": "0.01", "template": "name_filewords", "data": dataset, "model": sd1_model_dir}
    if case == "empty dataset":
        args["data"] = tmp_path / "empty"
        args["data"].mkdir()
    elif case == "missing caption":
        (dataset / "0.txt").unlink()
    elif case == "unknown template":
        args["template"] = "no_such_template"
    elif case == "bad schedule":
        args["lr"] = "0.05:10, 0.02:abc"
    elif case == "name with a path":
        args["name"] = "../evil"
    elif case == "missing model":
        args["model"] = tmp_path / "no-model"
    out = tmp_path / "runs"
    code = main(["train", "--model", str(args["model"]), "--data", str(args["data"]), "--name", args["name"],
                 "--lr", args["lr"], "--template", args["template"], "--steps", "2", "--size", "64",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()  # nothing half-written


def test_compare_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err
