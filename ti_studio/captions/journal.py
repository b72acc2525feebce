"""Backups and the undo journal for caption writes, kept in ``<dataset>/.ti_studio/``.

Layout::

    .ti_studio/captions-journal.json          the undo stack: {"version": 1, "entries": [entry, ...]}, oldest first
    .ti_studio/backups/<id>/manifest.json     per file: caption path, whether it existed, sha256 of what we wrote
    .ti_studio/backups/<id>/files/<rel path>  the caption's bytes before the operation (exact bytes, any encoding)

``<id>`` is ``<seq>-<UTC time>-<op>`` (``0007-20240501-101500-remove``); ``seq`` orders operations even when the
clock jumps. Backups hold raw bytes, so an undo gives back a UTF-16 or BOM file byte for byte.

Crash safety comes from the order of writes (each one atomic; see :meth:`Journal.record` and the store):
backup files, then the manifest, then the journal entry, then the captions. A kill before the journal entry
leaves an unreferenced backup folder and untouched captions; a kill after it leaves some captions new and some
old, and undo handles both kinds (a caption still holding its old bytes needs nothing). The journal never
points at a backup that is not complete on disk.

Depth: at most ``depth`` backup folders are kept, the newest; journal entries whose folder is pruned go too.
Folders left by a crash, or kept by an undo that had to skip files, simply age out the same way.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping

from ..errors import UserError
from ..fileio import read_json, write_bytes, write_json

STATE_DIR = ".ti_studio"
JOURNAL_NAME = "captions-journal.json"
BACKUPS_DIR = "backups"
DEFAULT_DEPTH = 20
_VERSION = 1
_BACKUP_ID = re.compile(r"^(\d+)-")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class JournalEntry:
    """One undoable operation, as the history list shows it."""

    id: str
    time: str  #: UTC, ISO 8601
    op: str
    description: str
    files: int  #: captions it wrote


@dataclass(frozen=True)
class BackedUpFile:
    """One caption an operation wrote: its bytes before (``None``: the file did not exist) and a hash of after."""

    caption: Path
    before: bytes | None
    after_sha256: str


class Journal:
    """The undo stack of one dataset folder. Paths in the files are relative to the dataset, so it can move."""

    def __init__(self, dataset_dir: Path, depth: int = DEFAULT_DEPTH) -> None:
        if depth < 1:
            raise UserError("undo depth must be at least 1")
        self.dataset_dir = dataset_dir
        self.depth = depth
        self.state_dir = dataset_dir / STATE_DIR
        self.path = self.state_dir / JOURNAL_NAME
        self.backups_dir = self.state_dir / BACKUPS_DIR

    def entries(self) -> list[JournalEntry]:
        """The undoable operations, oldest first."""
        if not self.path.exists():
            return []
        try:
            data = read_json(self.path)
            return [JournalEntry(**entry) for entry in data["entries"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"the undo journal {self.path} is damaged ({exc}); delete it to go on without undo history"
            ) from None

    def backup_dir(self, entry_id: str) -> Path:
        return self.backups_dir / entry_id

    def record(self, op: str, description: str, changes: Mapping[Path, tuple[bytes | None, bytes]]) -> JournalEntry:
        """Back up ``changes`` (caption -> (bytes before or ``None``, bytes to write)) and push a journal entry.

        Call it BEFORE writing any caption. Order: backup files, manifest, journal (each atomic), then pruning.
        """
        entries = self.entries()
        entry = JournalEntry(
            id=self._next_id(op, entries),
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            op=op,
            description=description,
            files=len(changes),
        )
        folder = self.backup_dir(entry.id)
        manifest = []
        for caption, (before, after) in changes.items():
            rel = self._relative(caption)
            if before is not None:
                write_bytes(folder / "files" / rel, before)
            manifest.append({"caption": rel.as_posix(), "existed": before is not None, "after_sha256": sha256(after)})
        write_json(folder / "manifest.json", {"version": _VERSION, **asdict(entry), "files": manifest})
        self._save_and_prune(entries + [entry])
        return entry

    def backed_up_files(self, entry: JournalEntry) -> list[BackedUpFile]:
        """What ``entry`` changed, read back from its backup folder."""
        folder = self.backup_dir(entry.id)
        try:
            manifest = read_json(folder / "manifest.json")
            files = []
            for item in manifest["files"]:
                rel = PurePosixPath(item["caption"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise ValueError(f"caption path outside the dataset: {rel}")
                before = (folder / "files" / rel).read_bytes() if item["existed"] else None
                files.append(BackedUpFile(self.dataset_dir / rel, before, item["after_sha256"]))
            return files
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"the backup of '{entry.description}' in {folder} is missing or damaged ({exc})") from None

    def pop(self, entry: JournalEntry, keep_backup: bool) -> None:
        """Remove the newest entry after it was undone; keep its backup folder when some files were skipped."""
        entries = self.entries()
        if not entries or entries[-1].id != entry.id:
            raise UserError("the undo journal changed while undoing; reload and try again")
        self._write(entries[:-1])
        if not keep_backup:
            shutil.rmtree(self.backup_dir(entry.id), ignore_errors=True)

    def discard(self, entry: JournalEntry) -> None:
        """Drop the newest entry without undoing it (its backup is gone or unreadable, so it cannot be undone)."""
        entries = self.entries()
        if entries and entries[-1].id == entry.id:
            self._write(entries[:-1])

    def _relative(self, caption: Path) -> PurePosixPath:
        rel = caption.relative_to(self.dataset_dir)  # raises for a path outside the dataset: never back up those
        return PurePosixPath(rel.as_posix())

    def _backup_folders(self) -> dict[str, int]:
        """Backup folder name -> sequence number, for folders we made (anything else there is left alone)."""
        if not self.backups_dir.is_dir():
            return {}
        found = {}
        for child in self.backups_dir.iterdir():
            match = _BACKUP_ID.match(child.name)
            if child.is_dir() and match:
                found[child.name] = int(match.group(1))
        return found

    def _next_id(self, op: str, entries: list[JournalEntry]) -> str:
        used = list(self._backup_folders().values())
        used += [int(m.group(1)) for entry in entries if (m := _BACKUP_ID.match(entry.id))]
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        slug = re.sub(r"[^a-z0-9+-]+", "-", op.lower()).strip("-") or "edit"
        return f"{max(used, default=0) + 1:04d}-{stamp}-{slug}"

    def _save_and_prune(self, entries: list[JournalEntry]) -> None:
        """Keep the newest ``depth`` backup folders and the entries that point at them; journal first, then delete.

        Deleting after the journal write means a crash in between leaves only extra folders, never an entry whose
        backup is gone.
        """
        folders = self._backup_folders()
        keep = set(sorted(folders, key=folders.__getitem__)[-self.depth :])
        self._write([entry for entry in entries if entry.id in keep])
        for name in folders.keys() - keep:
            shutil.rmtree(self.backups_dir / name, ignore_errors=True)

    def _write(self, entries: list[JournalEntry]) -> None:
        write_json(self.path, {"version": _VERSION, "entries": [asdict(entry) for entry in entries]})
