"""``captions DIR``: the frequency table, bulk tag edits and undo for a dataset's ``<stem>.txt`` captions.

All the edit flags given in one call form ONE undoable operation, applied in a fixed order whatever the order on
the command line: remove, replace, replace-in-tags, dedupe, sort, prepend, append (so a prepended trigger word is
not sorted away). Tags on the command line are comma-separated; ``long_hair`` matches ``long hair``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..captions.ops import (
    Append,
    Chain,
    Dedupe,
    Prepend,
    Remove,
    Replace,
    ReplaceInTags,
    Sort,
    TagEdit,
    parse_caption,
)
from ..captions.store import CaptionChange, CaptionStore
from ..errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "captions",
        help="tag frequency, bulk tag edits and undo for a dataset's captions",
        description="Edit the <stem>.txt captions beside the images. Every edit is backed up and undoable "
        "(--undo); only captions that change are written.",
        epilog="Edits given together are one operation, applied in this order: remove, replace, "
        "replace-in-tags, dedupe, sort, prepend, append.",
    )
    parser.add_argument("dir", help="dataset folder (images with <stem>.txt captions)")
    parser.add_argument("--stats", action="store_true", help="print the tag frequency table (default with no edit)")
    parser.add_argument("--remove", action="append", default=[], metavar="TAGS", help="remove tags (a,b)")
    parser.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                        help="replace a whole tag; an empty NEW removes it")
    parser.add_argument("--replace-in-tags", action="append", default=[], metavar="OLD=NEW",
                        help="replace text inside tags (hair=hairstyle: 'long hair' -> 'long hairstyle')")
    parser.add_argument("--regex", action="store_true", help="--replace-in-tags OLD is a regular expression")
    parser.add_argument("--dedupe", action="store_true", help="remove duplicate tags, keeping the first")
    parser.add_argument("--sort", choices=("alpha", "frequency"), help="sort tags by name or by dataset frequency")
    parser.add_argument("--keep-first", type=int, default=0, metavar="N", help="with --sort: leave the first N tags")
    parser.add_argument("--prepend", action="append", default=[], metavar="TAGS",
                        help="put tags first unless present (e.g. the trigger word)")
    parser.add_argument("--append", action="append", default=[], metavar="TAGS", help="put tags last unless present")
    parser.add_argument("--undo", action="store_true", help="take back the last operation")
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, report: Callable[[str], None]) -> dict:
    edits = _edits(args)
    if args.undo and (edits or args.dry_run):
        raise UserError("--undo cannot be combined with edits or --dry-run")
    store = CaptionStore(args.dir, recursive=args.recursive)
    summary: dict = {"images": len(store.images)}
    if args.undo:
        summary.update(_undo(store, report))
    elif edits:
        edit = edits[0] if len(edits) == 1 else Chain(tuple(edits))
        summary.update(_edit(store, edit, args.dry_run, report))
    if args.stats or not (edits or args.undo):
        summary["stats"] = _stats(store, report)
    return summary


def _edits(args: argparse.Namespace) -> list[TagEdit]:
    """The edit flags as edit objects, in the documented order."""
    if args.regex and not args.replace_in_tags:
        raise UserError("--regex applies to --replace-in-tags, which is missing")
    if args.keep_first and not args.sort:
        raise UserError("--keep-first applies to --sort, which is missing")
    edits: list[TagEdit] = []
    if args.remove:
        edits.append(Remove(_tags(args.remove, "--remove")))
    edits += [Replace(*_pair(text, "--replace")) for text in args.replace]
    edits += [ReplaceInTags(*_pair(text, "--replace-in-tags"), regex=args.regex) for text in args.replace_in_tags]
    if args.dedupe:
        edits.append(Dedupe())
    if args.sort:
        edits.append(Sort(args.sort, keep_first=args.keep_first))
    if args.prepend:
        edits.append(Prepend(_tags(args.prepend, "--prepend")))
    if args.append:
        edits.append(Append(_tags(args.append, "--append")))
    return edits


def _tags(values: list[str], flag: str) -> tuple[str, ...]:
    tags = tuple(tag for value in values for tag in parse_caption(value))
    if not tags:
        raise UserError(f"{flag}: no tags given")
    return tags


def _pair(text: str, flag: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip():
        raise UserError(f"{flag} takes OLD=NEW, got {text!r}")
    return old, new


def _edit(store: CaptionStore, edit: TagEdit, dry_run: bool, report: Callable[[str], None]) -> dict:
    if dry_run:
        changes = store.plan(edit)
        for change in changes:
            report(f"{_rel(store, change.caption)}: {_diff(change)}")
        report(f"{edit.describe()}: {len(changes)} of {len(store.images)} captions would change (dry run)")
        return {"changed": len(changes), "backup": None, "dry_run": True}
    result = store.apply(edit)
    where = f"; backup in {result.backup}" if result.backup else ""
    report(f"{edit.describe()}: {len(result.changes)} of {len(store.images)} captions changed{where}")
    return {"changed": len(result.changes), "backup": str(result.backup) if result.backup else None}


def _undo(store: CaptionStore, report: Callable[[str], None]) -> dict:
    result = store.undo()
    report(f"undone: {result.entry.description} ({len(result.restored)} captions restored)")
    skipped = [_rel(store, path) for path in result.skipped]
    if skipped:
        report(f"left alone, changed since that operation: {', '.join(skipped)}; "
               f"their old text is in {result.kept_backup}")
    return {"undone": result.entry.description, "changed": len(result.restored), "skipped": skipped}


def _stats(store: CaptionStore, report: Callable[[str], None]) -> list[list]:
    rows = store.stats()
    total = len(store.images)
    report(f"{len(rows)} distinct tags in {total} images")
    for row in rows:
        report(f"{row.count:>6} {100 * row.count / total:5.1f}%  {row.tag}")
    return [[row.tag, row.count] for row in rows]


def _rel(store: CaptionStore, path: Path) -> str:
    return path.relative_to(store.root).as_posix()


def _diff(change: CaptionChange) -> str:
    removed = [tag for tag in change.before if tag not in change.after]
    added = [tag for tag in change.after if tag not in change.before]
    parts = [f"-{tag}" for tag in removed] + [f"+{tag}" for tag in added]
    if parts:
        return " ".join(parts)
    return "(order)" if len(change.after) == len(change.before) else "(duplicates)"
