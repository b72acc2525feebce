"""Captions: pure tag operations (:mod:`.ops`) and a safe on-disk store with backups and undo (:mod:`.store`).

The tag editor, the CLI and the HTTP routes all go through :class:`CaptionStore`, so every write anywhere is
backed up, journaled and undoable the same way.
"""

from .journal import JournalEntry
from .ops import (
    Append,
    Chain,
    Dedupe,
    Prepend,
    Remove,
    Replace,
    ReplaceInTags,
    Sort,
    TagCount,
    TagEdit,
    apply_edit,
    format_caption,
    parse_caption,
    select,
    tag_frequency,
    tag_key,
    tag_stats,
    unique_tags,
)
from .store import (
    CaptionChange,
    CaptionStore,
    EditResult,
    UndoResult,
    caption_file,
    decode_caption,
    read_caption,
)

__all__ = [
    "Append",
    "CaptionChange",
    "CaptionStore",
    "Chain",
    "Dedupe",
    "EditResult",
    "JournalEntry",
    "Prepend",
    "Remove",
    "Replace",
    "ReplaceInTags",
    "Sort",
    "TagCount",
    "TagEdit",
    "UndoResult",
    "apply_edit",
    "caption_file",
    "decode_caption",
    "format_caption",
    "parse_caption",
    "read_caption",
    "select",
    "tag_frequency",
    "tag_key",
    "tag_stats",
    "unique_tags",
]
