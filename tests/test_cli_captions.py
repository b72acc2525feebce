"""``captions DIR ...`` in-process: each flag, the JSON summary and exit codes.

Most tests build a parser holding only this subcommand (same ``--json`` wiring as ``ti_studio.cli``), so they do
not depend on the other stages' modules; one test goes through ``ti_studio.cli.main`` itself.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

import photos
from ti_studio.commands import captions as captions_command
from ti_studio.errors import UserError


def run(argv: list[str], capsys) -> tuple[int, dict | None, str, str]:
    """Run ``captions`` like ``cli.main`` does; returns (exit code, JSON summary or None, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="ti_studio")
    sub = parser.add_subparsers(dest="stage", required=True)
    captions_command.register(sub)
    for subparser in sub.choices.values():
        subparser.add_argument("--json", action="store_true")
    args = parser.parse_args(["captions", *argv])
    stream = sys.stderr if args.json else sys.stdout
    try:
        summary = args.handler(args, lambda line: print(line, file=stream))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code, summary = 2, None
    else:
        code = 0
        if args.json:
            print(json.dumps(summary))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if args.json and code == 0 else None), out, err


@pytest.fixture
def dataset(tmp_path) -> Path:
    return photos.captioned_dataset(tmp_path / "ds", {"a": "1girl, long_hair, smile, watermark",
                                                       "b": "1boy, long hair, watermark", "c": "smile"})


def text(root: Path, name: str) -> str:
    return (root / f"{name}.txt").read_text()


def test_no_flag_prints_the_frequency_table(dataset, capsys):
    code, _, out, _ = run([str(dataset)], capsys)
    assert code == 0
    assert "6 distinct tags in 3 images" in out
    assert "     2  66.7%  smile" in out


def test_stats_json(dataset, capsys):
    code, summary, _, err = run([str(dataset), "--stats", "--json"], capsys)
    assert code == 0
    assert summary == {"images": 3, "stats": [["smile", 2], ["watermark", 2], ["1boy", 1], ["1girl", 1],
                                              ["long hair", 1], ["long_hair", 1]]}
    assert "66.7%" in err  # the human table goes to stderr under --json


def test_remove_matches_both_spellings_and_reports_backup(dataset, capsys):
    code, summary, _, _ = run([str(dataset), "--remove", "long hair,watermark", "--json"], capsys)
    assert code == 0
    assert summary["images"] == 3 and summary["changed"] == 2
    assert Path(summary["backup"]).parent == dataset / ".ti_studio" / "backups"
    assert (text(dataset, "a"), text(dataset, "b"), text(dataset, "c")) == ("1girl, smile", "1boy", "smile")


def test_replace_and_replace_in_tags(dataset, capsys):
    assert run([str(dataset), "--replace", "smile=grin", "--replace", "1boy=1man"], capsys)[0] == 0
    assert text(dataset, "c") == "grin" and text(dataset, "b").startswith("1man")
    assert run([str(dataset), "--replace-in-tags", "hair=hairstyle"], capsys)[0] == 0
    assert text(dataset, "a") == "1girl, long_hairstyle, grin, watermark"
    assert run([str(dataset), "--replace-in-tags", r"^(\d)(\w+)$=\2", "--regex"], capsys)[0] == 0
    assert text(dataset, "a") == "girl, long_hairstyle, grin, watermark"


def test_prepend_append_dedupe_sort(dataset, capsys):
    (dataset / "c.txt").write_text("smile, b, Smile, a")
    code, summary, _, _ = run([str(dataset), "--dedupe", "--sort", "alpha", "--prepend", "jdoe", "--append",
                               "photo", "--json"], capsys)
    assert code == 0 and summary["changed"] == 3
    assert text(dataset, "c") == "jdoe, a, b, smile, photo"
    code, summary, _, _ = run([str(dataset), "--prepend", "jdoe", "--json"], capsys)
    assert summary["changed"] == 0 and summary["backup"] is None  # idempotent: nothing written
    assert run([str(dataset), "--sort", "frequency", "--keep-first", "1"], capsys)[0] == 0
    assert text(dataset, "a").startswith("jdoe, photo, ")  # both in every caption: most frequent after the pin


def test_dry_run_writes_nothing(dataset, capsys):
    code, summary, _, err = run([str(dataset), "--remove", "watermark", "--dry-run", "--json"], capsys)
    assert code == 0 and summary["changed"] == 2 and summary["dry_run"] is True
    assert "a.txt: -watermark" in err
    assert "watermark" in text(dataset, "a") and not (dataset / ".ti_studio").exists()


def test_one_call_is_one_undo_step(dataset, capsys):
    before = {n: text(dataset, n) for n in "abc"}
    run([str(dataset), "--remove", "watermark", "--prepend", "jdoe"], capsys)
    code, summary, _, _ = run([str(dataset), "--undo", "--json"], capsys)
    assert code == 0
    assert summary == {"images": 3, "undone": "remove: watermark; prepend: jdoe", "changed": 3, "skipped": []}
    assert {n: text(dataset, n) for n in "abc"} == before


def test_undo_reports_captions_edited_since(dataset, capsys):
    run([str(dataset), "--prepend", "jdoe"], capsys)
    (dataset / "a.txt").write_text("mine")
    code, summary, out, _ = run([str(dataset), "--undo"], capsys)
    assert code == 0 and "left alone" in out and "a.txt" in out
    assert text(dataset, "a") == "mine" and text(dataset, "c") == "smile"


def test_recursive(dataset, capsys):
    sub = dataset / "sub"
    sub.mkdir()
    Image.new("RGB", (4, 4)).save(sub / "d.png")
    assert run([str(dataset), "--prepend", "jdoe", "--json"], capsys)[1]["images"] == 3
    assert run([str(dataset), "--prepend", "jdoe", "--recursive", "--json"], capsys)[1]["changed"] == 1
    assert (sub / "d.txt").read_text() == "jdoe"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}"], "folder not found"),
        (["{empty}"], "no images"),
        (["{ds}", "--replace", "smile"], "OLD=NEW"),
        (["{ds}", "--replace", "=x"], "OLD=NEW"),
        (["{ds}", "--replace-in-tags", "nothing"], "OLD=NEW"),
        (["{ds}", "--replace-in-tags", "(=x", "--regex"], "bad regular expression"),
        (["{ds}", "--regex"], "--replace-in-tags"),
        (["{ds}", "--keep-first", "1"], "--sort"),
        (["{ds}", "--remove", " , "], "no tags"),
        (["{ds}", "--undo"], "nothing to undo"),
        (["{ds}", "--undo", "--remove", "x"], "cannot be combined"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(dataset, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    paths = {"ds": dataset, "missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    code, _, out, err = run([arg.format(**paths) for arg in argv] + ["--json"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_bad_sort_choice_is_an_argparse_error(dataset, capsys):
    with pytest.raises(SystemExit) as exc:
        run([str(dataset), "--sort", "length"], capsys)
    assert exc.value.code == 2


STAGES_PRESENT = all(
    importlib.util.find_spec(f"ti_studio.commands.{name}") is not None for name in ("crop", "tag", "captions"))


@pytest.mark.skipif(not STAGES_PRESENT, reason="ti_studio.cli imports every stage; not all exist yet")
def test_through_the_real_cli(dataset, capsys):
    from ti_studio.cli import main

    assert main(["captions", str(dataset), "--remove", "watermark", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["changed"] == 2
    assert main(["captions", str(dataset), "--undo"]) == 0
    assert "watermark" in text(dataset, "a")
    assert main(["captions", str(dataset), "--undo"]) == 2
    assert capsys.readouterr().err.strip() == "error: nothing to undo"
