"""The captions of one dataset folder on disk: ``<stem>.txt`` beside each image, edited safely and undoably.

The store is write-through: :meth:`CaptionStore.set` and :meth:`CaptionStore.apply` have saved everything when
they return, so a closed browser tab or a crashed WebUI never loses an edit, and there is no separate "save" step.
It keeps no copy of the captions in memory either: every call reads the files, so an edit made meanwhile in
another editor is seen, backed up and never silently overwritten with stale text.

Why this is safe (the Dataset Tag Editor rewrites every caption on save and renames backups to ``.000``):
- only captions whose tag list changes are written, as UTF-8, atomically (temp file + ``os.replace``);
- before any caption is written, its old bytes go to a backup folder and the operation to the undo journal
  (order and crash analysis in :mod:`ti_studio.captions.journal`);
- undo restores exact bytes, and skips (and reports) any caption changed since the operation wrote it;
- everything written is a caption of a listed image or a file under ``<dataset>/.ti_studio/``.

Writers in one process (the tab's events and the HTTP routes run in parallel threads of the WebUI) take turns: each
edit or undo of a folder holds that folder's lock from reading the captions to the last write. Two processes
editing one dataset at the same moment (the CLI beside the WebUI) are not coordinated.
"""

from __future__ import annotations

import codecs
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import UserError
from ..fileio import write_bytes
from ..images import list_photos
from .journal import DEFAULT_DEPTH, Journal, JournalEntry, sha256
from .ops import TagCount, TagEdit, apply_edit, format_caption, parse_caption, tag_stats

CAPTION_SUFFIX = ".txt"

ImageRef = str | os.PathLike
"""An image of the dataset: an absolute path, or a path relative to the dataset folder."""

_FOLDER_LOCKS: dict[Path, threading.RLock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


def _exclusive(method):
    """Run a store method holding its dataset folder's lock, so concurrent edits cannot interleave their journal
    records or write a caption from a stale read."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _FOLDER_LOCKS_GUARD:
            lock = _FOLDER_LOCKS.setdefault(self.root, threading.RLock())
        with lock:
            return method(self, *args, **kwargs)

    return locked


def caption_file(image: str | os.PathLike) -> Path:
    """Where an image's caption lives: ``<stem>.txt`` beside it (what the WebUI's ``[filewords]`` reads)."""
    return Path(image).with_suffix(CAPTION_SUFFIX)


def decode_caption(data: bytes, name: str) -> str:
    """Caption text from file bytes: UTF-8 with or without BOM, or UTF-16 (Windows Notepad's "Unicode"), recognised
    by its BOM or by NUL bytes, which UTF-8 text never contains."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # also reads plain UTF-8
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise UserError(f"{name}: not UTF-8 or UTF-16 text; save it as UTF-8 and try again") from None


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or ``None`` when there is no caption yet."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"{path.name}: cannot read the caption ({exc.strerror or exc})") from None


def read_caption(path: str | os.PathLike) -> str:
    """The text of a caption file; a missing file is an empty caption."""
    path = Path(path)
    data = _read_bytes(path)
    return "" if data is None else decode_caption(data, path.name)


@dataclass(frozen=True)
class CaptionChange:
    """One caption an edit changes: the image it belongs to, its file, and its tags before and after."""

    image: Path
    caption: Path
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class EditResult:
    """What an edit wrote. ``entry`` and ``backup`` are ``None`` when nothing changed (nothing is journaled)."""

    changes: tuple[CaptionChange, ...]
    entry: JournalEntry | None
    backup: Path | None


@dataclass(frozen=True)
class UndoResult:
    """What an undo did: ``restored`` captions got their old bytes back (or were removed if they did not exist).

    ``skipped`` captions were changed after the operation (by hand or by another tool) and were left alone; their
    old bytes stay in ``kept_backup`` until newer operations push that folder out.
    """

    entry: JournalEntry
    restored: tuple[Path, ...]
    skipped: tuple[Path, ...]
    kept_backup: Path | None


@dataclass(frozen=True)
class _Caption:
    path: Path
    raw: bytes | None
    tags: tuple[str, ...]


class CaptionStore:
    """Read, edit and undo the captions of one dataset folder (see the module docstring for the guarantees)."""

    def __init__(
        self, dataset_dir: str | os.PathLike, recursive: bool = False, undo_depth: int = DEFAULT_DEPTH
    ) -> None:
        self.root = Path(os.path.abspath(dataset_dir))
        self.recursive = recursive
        self.journal = Journal(self.root, undo_depth)
        self.reload()
        if not self._images:
            raise UserError(f"no images in {self.root}")

    def reload(self) -> None:
        """List the images again (after files were added or removed outside the store)."""
        self._images = list_photos(self.root, self.recursive)
        self._image_set = frozenset(self._images)

    @property
    def images(self) -> list[Path]:
        """The dataset's images (absolute paths, sorted)."""
        return list(self._images)

    def caption_path(self, image: ImageRef) -> Path:
        return caption_file(self._image(image))

    def get(self, image: ImageRef) -> str:
        """The caption text of ``image`` exactly as stored ("" when it has none)."""
        return read_caption(self.caption_path(image))

    def tags(self, image: ImageRef) -> list[str]:
        return parse_caption(self.get(image))

    def all_tags(self) -> dict[Path, list[str]]:
        """Every image's tags, in image order: the input of :func:`~ti_studio.captions.ops.select` and the stats."""
        return {image: list(caption.tags) for image, caption in self._snapshot().items()}

    def stats(self, images: Iterable[ImageRef] | None = None) -> list[TagCount]:
        """The frequency table over all images, or over ``images``."""
        captions = self.all_tags()
        chosen = captions.keys() if images is None else [self._image(image) for image in images]
        return tag_stats(captions[image] for image in chosen)

    def history(self) -> list[JournalEntry]:
        """The operations :meth:`undo` can take back, oldest first."""
        return self.journal.entries()

    @_exclusive
    def set(self, image: ImageRef, text: str) -> EditResult:
        """Save the caption of one image (the editor's per-image edit), journaled so Undo covers it.

        ``text`` is normalised (tags trimmed, ``", "``-joined); nothing is written if the tags are unchanged.
        """
        image = self._image(image)
        path = caption_file(image)
        raw = _read_bytes(path)
        before = tuple(parse_caption("" if raw is None else decode_caption(raw, path.name)))
        after = tuple(parse_caption(text))
        if after == before:
            return EditResult((), None, None)
        change = CaptionChange(image, path, before, after)
        return self._commit("edit", f"edit {path.relative_to(self.root).as_posix()}", [(change, raw)])

    def plan(self, edit: TagEdit, images: Iterable[ImageRef] | None = None) -> list[CaptionChange]:
        """What :meth:`apply` would change, without writing anything (a preview / dry run)."""
        return [change for change, _ in self._pending(edit, images)]

    @_exclusive
    def apply(self, edit: TagEdit, images: Iterable[ImageRef] | None = None) -> EditResult:
        """Apply ``edit`` to all images, or to ``images`` (the editor's filtered set), as one undoable step."""
        return self._commit(edit.name, edit.describe(), self._pending(edit, images))

    @_exclusive
    def undo(self) -> UndoResult:
        """Take back the newest operation; raise :class:`UserError` when there is none.

        A caption that no longer holds what the operation wrote was changed since; it is skipped and reported,
        never overwritten. Running undo again after a crash mid-undo finishes the job (restored files are
        recognised by their old bytes).
        """
        entries = self.journal.entries()
        if not entries:
            raise UserError("nothing to undo")
        entry = entries[-1]
        try:
            files = self.journal.backed_up_files(entry)
        except UserError as exc:
            self.journal.discard(entry)
            raise UserError(f"{exc}; it was dropped from the undo history, older operations can still be undone")
        restored, skipped = [], []
        for file in files:
            current = _read_bytes(file.caption)
            if current == file.before:
                continue
            if current is None or sha256(current) != file.after_sha256:
                skipped.append(file.caption)
            elif file.before is None:
                file.caption.unlink()
                restored.append(file.caption)
            else:
                write_bytes(file.caption, file.before)
                restored.append(file.caption)
        self.journal.pop(entry, keep_backup=bool(skipped))
        kept = self.journal.backup_dir(entry.id) if skipped else None
        return UndoResult(entry, tuple(restored), tuple(skipped), kept)

    def _image(self, image: ImageRef) -> Path:
        path = Path(image)
        full = Path(os.path.abspath(path if path.is_absolute() else self.root / path))
        if full not in self._image_set:
            raise UserError(f"not an image of the dataset {self.root}: {image}")
        return full

    def _snapshot(self) -> dict[Path, _Caption]:
        """Every image's caption as on disk now; images sharing a stem (``a.jpg``, ``a.png``) share ``a.txt``."""
        by_path: dict[Path, _Caption] = {}
        snapshot = {}
        for image in self._images:
            path = caption_file(image)
            if path not in by_path:
                raw = _read_bytes(path)
                text = "" if raw is None else decode_caption(raw, path.name)
                by_path[path] = _Caption(path, raw, tuple(parse_caption(text)))
            snapshot[image] = by_path[path]
        return snapshot

    def _pending(
        self, edit: TagEdit, images: Iterable[ImageRef] | None
    ) -> list[tuple[CaptionChange, bytes | None]]:
        """The changes ``edit`` makes, each with the caption's bytes before, one per caption file."""
        snapshot = self._snapshot()
        targets = None if images is None else [self._image(image) for image in images]
        edited = apply_edit(edit, {image: caption.tags for image, caption in snapshot.items()}, targets)
        pending: dict[Path, tuple[CaptionChange, bytes | None]] = {}
        for image, tags in edited.items():
            caption = snapshot[image]
            if tuple(tags) != caption.tags and caption.path not in pending:
                change = CaptionChange(image, caption.path, caption.tags, tuple(tags))
                pending[caption.path] = (change, caption.raw)
        return list(pending.values())

    def _commit(
        self, op: str, description: str, pending: list[tuple[CaptionChange, bytes | None]]
    ) -> EditResult:
        """Back up and journal first, then write the captions (the crash-safe order, see the journal module)."""
        if not pending:
            return EditResult((), None, None)
        writes = {change.caption: (raw, format_caption(change.after).encode("utf-8")) for change, raw in pending}
        try:
            entry = self.journal.record(op, description, writes)
        except OSError as exc:
            raise UserError(f"cannot back up the captions ({exc}); nothing was changed") from None
        for caption, (_, data) in writes.items():
            try:
                write_bytes(caption, data)
            except OSError as exc:
                raise UserError(
                    f"{caption.name}: cannot write the caption ({exc.strerror or exc}); "
                    f"undo takes back the captions already written"
                ) from None
        return EditResult(tuple(change for change, _ in pending), entry, self.journal.backup_dir(entry.id))
