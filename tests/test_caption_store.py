"""CaptionStore on real files: encodings, atomic and minimal writes, backups, undo, and crashes mid-operation."""

import codecs
import json
import os
from pathlib import Path

import pytest
from PIL import Image

import photos
from ti_studio.captions.ops import Chain, Dedupe, Prepend, Remove, Replace, Sort, TagCount
from ti_studio.captions.store import CaptionStore, read_caption
from ti_studio.errors import UserError

#: The real os.replace, captured before any test patches it.
REAL_REPLACE = os.replace
UTF16_TEXT = "smile \\(anime\\), long_hair, café"
#: name -> caption bytes (None: no caption file). One of each encoding the store must read.
CAPTIONS = {
    "a": b"1girl, long_hair, smile, watermark",
    "b": codecs.BOM_UTF8 + "1boy,long hair,  watermark,,".encode(),
    "c": UTF16_TEXT.encode("utf-16"),  # with BOM, native order
    "d": None,
}


def make_dataset(root: Path, captions: dict[str, bytes | None] = CAPTIONS) -> Path:
    return photos.captioned_dataset(root, captions)


def caption_bytes(root: Path) -> dict[str, bytes | None]:
    """Every image's caption file, as bytes (None when missing): the state an undo must give back exactly."""
    return {p.stem: (p.with_suffix(".txt").read_bytes() if p.with_suffix(".txt").exists() else None)
            for p in sorted(root.rglob("*.png"))}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")]


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "ds")


# ---- reading ----------------------------------------------------------------------------------------------------

def test_reads_utf8_with_and_without_bom_and_utf16(dataset):
    store = CaptionStore(dataset)
    assert store.tags("a.png") == ["1girl", "long_hair", "smile", "watermark"]
    assert store.tags("b.png") == ["1boy", "long hair", "watermark"]
    assert store.get("c.png") == UTF16_TEXT
    assert store.get("d.png") == ""
    (dataset / "c.txt").write_bytes(codecs.BOM_UTF16_BE + "x, y".encode("utf-16-be"))
    assert store.tags(dataset / "c.png") == ["x", "y"]


def test_undecodable_caption_is_a_user_error(dataset):
    (dataset / "a.txt").write_bytes(b"caf\xe9")  # Latin-1
    with pytest.raises(UserError, match="a.txt"):
        read_caption(dataset / "a.txt")
    with pytest.raises(UserError, match="a.txt"):
        CaptionStore(dataset).stats()


def test_missing_or_empty_folder_and_foreign_images_are_user_errors(tmp_path, dataset):
    with pytest.raises(UserError, match="not found"):
        CaptionStore(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        CaptionStore(tmp_path / "empty")
    with pytest.raises(UserError, match="not an image"):
        CaptionStore(dataset).set(tmp_path / "elsewhere.png", "x")


def test_stats_over_all_or_some_images(dataset):
    store = CaptionStore(dataset)
    rows = store.stats()
    assert rows[:2] == [TagCount("long_hair", 2), TagCount("watermark", 2)]
    assert TagCount("long hair", 1) in rows  # spellings are counted apart, so the table shows the inconsistency
    assert store.stats(["d.png"]) == []


# ---- writing ----------------------------------------------------------------------------------------------------

def test_bulk_edit_writes_only_changed_captions_as_utf8(dataset, monkeypatch):
    written = []
    monkeypatch.setattr(os, "replace", lambda src, dst: (written.append(Path(dst)), REAL_REPLACE(src, dst)))
    result = CaptionStore(dataset).apply(Remove(("watermark",)))
    captions = [path.name for path in written if path.parent == dataset]
    assert sorted(captions) == ["a.txt", "b.txt"]  # c has no watermark, d has no caption: untouched
    assert sorted(c.caption.name for c in result.changes) == ["a.txt", "b.txt"]
    assert (dataset / "b.txt").read_bytes() == b"1boy, long hair"  # BOM gone, normalised, UTF-8
    assert (dataset / "c.txt").read_bytes() == CAPTIONS["c"]
    assert not (dataset / "d.txt").exists()
    assert temp_files(dataset) == []


def test_unchanged_tags_are_not_rewritten_even_if_spaced_oddly(dataset):
    store = CaptionStore(dataset)
    result = store.apply(Dedupe())
    assert result.changes == () and result.entry is None and result.backup is None
    assert caption_bytes(dataset) == CAPTIONS
    assert store.history() == []


def test_subset_edit_and_new_caption_file(dataset):
    store = CaptionStore(dataset)
    result = store.apply(Prepend(("jdoe",)), images=["a.png", dataset / "d.png"])
    assert sorted(c.caption.name for c in result.changes) == ["a.txt", "d.txt"]
    assert (dataset / "d.txt").read_text() == "jdoe"
    assert store.tags("b.png")[0] == "1boy"


def test_plan_previews_without_writing(dataset):
    store = CaptionStore(dataset)
    changes = store.plan(Replace("long hair", "very long hair"))
    assert {c.caption.name: c.after for c in changes} == {
        "a.txt": ("1girl", "very long hair", "smile", "watermark"),
        "b.txt": ("1boy", "very long hair", "watermark"),
        "c.txt": ("smile \\(anime\\)", "very long hair", "café"),
    }
    assert caption_bytes(dataset) == CAPTIONS
    assert not (dataset / ".ti_studio").exists()


def test_backup_holds_exact_old_bytes_and_missing_files(dataset):
    store = CaptionStore(dataset)
    result = store.apply(Prepend(("jdoe",)))
    backup = result.backup
    assert backup.parent == dataset / ".ti_studio" / "backups" and backup.name.endswith("-prepend")
    for name in "abc":
        assert (backup / "files" / f"{name}.txt").read_bytes() == CAPTIONS[name]
    assert not (backup / "files" / "d.txt").exists()
    manifest = json.loads((backup / "manifest.json").read_text())
    existed = {item["caption"]: item["existed"] for item in manifest["files"]}
    assert existed == {"a.txt": True, "b.txt": True, "c.txt": True, "d.txt": False}
    journal = json.loads((dataset / ".ti_studio" / "captions-journal.json").read_text())
    assert [e["id"] for e in journal["entries"]] == [backup.name]
    assert journal["entries"][0]["description"] == "prepend: jdoe"


def test_images_sharing_a_stem_share_one_caption_written_once(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": b"x"})
    Image.new("RGB", (4, 4)).save(root / "a.jpg")
    result = CaptionStore(root).apply(Prepend(("t",)))
    assert len(result.changes) == 1 and (root / "a.txt").read_text() == "t, x"


def test_recursive_dataset_backs_up_subfolders(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": b"x"})
    make_dataset(root / "sub", {"b": b"y"})
    assert len(CaptionStore(root).images) == 1
    store = CaptionStore(root, recursive=True)
    result = store.apply(Prepend(("t",)))
    assert (result.backup / "files" / "sub" / "b.txt").read_bytes() == b"y"
    store.undo()
    assert (root / "sub" / "b.txt").read_bytes() == b"y"


# ---- undo -------------------------------------------------------------------------------------------------------

def test_undo_with_nothing_to_undo_is_a_user_error(dataset):
    with pytest.raises(UserError, match="nothing to undo"):
        CaptionStore(dataset).undo()


def test_undo_restores_exact_bytes_step_by_step(dataset):
    store = CaptionStore(dataset)
    states = [caption_bytes(dataset)]
    for edit in (Remove(("watermark",)), Prepend(("jdoe",)), Replace("smile", "grin"), Sort("alpha")):
        assert store.apply(edit).entry is not None
        states.append(caption_bytes(dataset))
    assert [e.op for e in store.history()] == ["remove", "prepend", "replace", "sort"]
    for expected in reversed(states[:-1]):
        result = store.undo()
        assert result.skipped == ()
        assert caption_bytes(dataset) == expected
    assert caption_bytes(dataset) == CAPTIONS  # UTF-16 and BOM files included; d.txt removed again
    assert list((dataset / ".ti_studio" / "backups").iterdir()) == []
    with pytest.raises(UserError):
        store.undo()


def test_per_image_edit_is_journaled_and_undoable(dataset):
    store = CaptionStore(dataset)
    result = store.set("d.png", " jdoe ,smile,")
    assert result.entry.op == "edit" and result.entry.description == "edit d.txt"
    assert store.get("d.png") == "jdoe, smile"
    assert store.set("d.png", "jdoe,smile").entry is None  # same tags: nothing written, nothing journaled
    store.apply(Remove(("smile",)))
    store.undo()
    assert store.get("d.png") == "jdoe, smile"
    store.undo()
    assert caption_bytes(dataset) == CAPTIONS


def test_undo_skips_captions_edited_after_the_operation(dataset):
    store = CaptionStore(dataset)
    result = store.apply(Prepend(("jdoe",)))
    (dataset / "a.txt").write_text("edited by hand")
    (dataset / "b.txt").unlink()  # deleted by hand
    (dataset / "d.txt").unlink()  # did not exist before the operation: already as it was, nothing to report
    undone = store.undo()
    assert sorted(p.name for p in undone.skipped) == ["a.txt", "b.txt"]
    assert sorted(p.name for p in undone.restored) == ["c.txt"]
    assert (dataset / "a.txt").read_text() == "edited by hand"
    assert not (dataset / "b.txt").exists() and not (dataset / "d.txt").exists()
    assert (dataset / "c.txt").read_bytes() == CAPTIONS["c"]
    assert undone.kept_backup == result.backup
    assert (undone.kept_backup / "files" / "a.txt").read_bytes() == CAPTIONS["a"]
    assert store.history() == []


def test_undo_depth_prunes_old_backups(dataset):
    store = CaptionStore(dataset, undo_depth=3)
    for tag in ("t1", "t2", "t3", "t4", "t5"):
        store.apply(Prepend((tag,)))
    history = store.history()
    assert [e.description for e in history] == ["prepend: t3", "prepend: t4", "prepend: t5"]
    assert sorted(p.name for p in (dataset / ".ti_studio" / "backups").iterdir()) == [e.id for e in history]
    for _ in range(3):
        store.undo()
    assert store.tags("a.png")[:2] == ["t2", "t1"]
    with pytest.raises(UserError):
        store.undo()


def test_undo_with_missing_backup_drops_the_entry_and_says_so(dataset):
    store = CaptionStore(dataset)
    store.apply(Prepend(("t1",)))
    second = store.apply(Prepend(("t2",)))
    (second.backup / "manifest.json").unlink()
    with pytest.raises(UserError, match="missing or damaged"):
        store.undo()
    store.undo()  # the older operation is still undoable
    assert store.tags("a.png")[0] == "t2"  # its caption was skipped as changed since (t2 is still there)


def test_damaged_journal_is_a_user_error(dataset):
    store = CaptionStore(dataset)
    store.apply(Prepend(("t",)))
    (dataset / ".ti_studio" / "captions-journal.json").write_text("{not json")
    with pytest.raises(UserError, match="damaged"):
        store.undo()


def test_a_manifest_cannot_point_outside_the_dataset(tmp_path, dataset):
    store = CaptionStore(dataset)
    result = store.apply(Prepend(("t",)))
    manifest_path = result.backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0]["caption"] = "../outside.txt"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UserError):
        store.undo()
    assert not (tmp_path / "outside.txt").exists()


def test_nothing_is_written_outside_the_dataset(tmp_path, dataset):
    store = CaptionStore(dataset)
    store.apply(Prepend(("t",)))
    store.set("a.png", "x")
    store.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ---- crashes ----------------------------------------------------------------------------------------------------

class Crash(Exception):
    pass


def crash_on_replace(monkeypatch, nth: int) -> None:
    """Make the nth ``os.replace`` (every atomic write ends with one) raise, as if the process died there."""
    calls = {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == nth:
            raise Crash(f"killed at replace #{nth} ({Path(dst).name})")
        return REAL_REPLACE(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def count_replaces(root: Path, monkeypatch, action) -> int:
    calls = []
    monkeypatch.setattr(os, "replace", lambda src, dst: (calls.append(dst), REAL_REPLACE(src, dst)))
    action(CaptionStore(root))
    monkeypatch.setattr(os, "replace", REAL_REPLACE)
    return len(calls)


def test_a_crash_at_any_write_leaves_whole_files_and_a_recoverable_state(tmp_path, monkeypatch):
    edit = Chain((Remove(("watermark", "smile")), Prepend(("jdoe",))))
    reference = make_dataset(tmp_path / "reference")
    total = count_replaces(reference, monkeypatch, lambda store: store.apply(edit))
    assert total == 3 + 1 + 1 + 4  # 3 backups (d.txt did not exist), manifest, journal, 4 captions
    after = caption_bytes(reference)
    for nth in range(1, total + 1):
        root = make_dataset(tmp_path / f"crash{nth}")
        crash_on_replace(monkeypatch, nth)
        with pytest.raises(Crash):
            CaptionStore(root).apply(edit)
        monkeypatch.setattr(os, "replace", REAL_REPLACE)
        state = caption_bytes(root)
        for name, data in state.items():
            assert data in (CAPTIONS[name], after[name]), f"{name} half-written after a crash at #{nth}"
        assert temp_files(root) == []
        store = CaptionStore(root)
        if store.history():
            result = store.undo()
            assert result.skipped == ()
        assert caption_bytes(root) == CAPTIONS, f"not recoverable after a crash at #{nth}"
        store.apply(Prepend(("t",)))  # and the dataset is usable again
        store.undo()
        assert caption_bytes(root) == CAPTIONS


def test_a_crash_during_undo_is_finished_by_the_next_undo(dataset, monkeypatch):
    store = CaptionStore(dataset)
    store.apply(Prepend(("jdoe",)))
    crash_on_replace(monkeypatch, 2)  # after restoring the first caption
    with pytest.raises(Crash):
        store.undo()
    monkeypatch.setattr(os, "replace", REAL_REPLACE)
    assert len(store.history()) == 1
    result = store.undo()
    assert result.skipped == ()
    assert caption_bytes(dataset) == CAPTIONS


def test_a_caption_that_cannot_be_written_is_a_user_error_and_undoable(dataset, monkeypatch):
    def locked(src, dst):
        if Path(dst) == dataset / "b.txt":
            raise PermissionError(13, "Permission denied")  # e.g. open in another program on Windows
        return REAL_REPLACE(src, dst)

    monkeypatch.setattr(os, "replace", locked)
    store = CaptionStore(dataset)
    with pytest.raises(UserError, match="b.txt: cannot write.*undo"):
        store.apply(Prepend(("jdoe",)))
    monkeypatch.setattr(os, "replace", REAL_REPLACE)
    assert temp_files(dataset) == []
    store.undo()
    assert caption_bytes(dataset) == CAPTIONS


def test_edits_from_parallel_threads_take_turns_and_all_undo(dataset):
    """The tab's events and the HTTP routes edit from parallel threads: none may lose another's change."""
    from concurrent.futures import ThreadPoolExecutor

    from ti_studio.captions import Append

    before = {path.name: path.read_bytes() for path in dataset.glob("*.txt")}
    tags = [f"tag{index}" for index in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda tag: CaptionStore(dataset).apply(Append((tag,))), tags))
    store = CaptionStore(dataset)
    for image in store.images:
        assert set(tags) <= set(store.tags(image))
    assert len(store.history()) == 8
    for _ in tags:
        assert not store.undo().skipped
    assert {path.name: path.read_bytes() for path in dataset.glob("*.txt")} == before
