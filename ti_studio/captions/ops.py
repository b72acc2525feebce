"""Pure operations on caption tag lists: no files, no clock, so every rule here is checked by property tests.

A caption is a comma-separated list of tags (``1girl, long hair, smile``). Parsing trims whitespace, drops empty
tags and keeps order; it never rewrites a tag's text (``\\(`` escapes stay as they are), so a caption that no
operation touches comes back byte-identical when formatted again.

Tags are *matched* through :func:`tag_key`, which forgives the spelling differences users and taggers disagree on
(``long_hair`` / ``long hair`` / ``Long Hair``, ``\\(`` / ``(``). Tags are *counted* and *written* exactly as spelled,
so the frequency table shows inconsistent spellings side by side and the user can merge them with a replace.

Edits are frozen value objects (:class:`TagEdit`): the store applies one to many captions, names its backup folder
after :attr:`TagEdit.name` and shows :meth:`TagEdit.describe` in the undo history.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Collection, Hashable, Iterable, Literal, Mapping, Sequence, TypeVar

from ..errors import UserError

#: How tags are joined when a caption is written: the form A1111, the WD14 taggers and the Dataset Tag Editor use.
SEPARATOR = ", "
#: Newlines separate tags too: some tools write one tag (or one line of tags) per line.
_SPLIT = re.compile(r"[,\r\n]")

K = TypeVar("K", bound=Hashable)


def parse_caption(text: str) -> list[str]:
    """Tags of a caption, in order: split on commas and newlines, whitespace trimmed, empty tags dropped."""
    return [tag for tag in (part.strip() for part in _SPLIT.split(text)) if tag]


def format_caption(tags: Iterable[str]) -> str:
    """The caption text for ``tags``: ``", "``-joined, no trailing newline (what A1111's ``[filewords]`` reads)."""
    return SEPARATOR.join(tags)


def tag_key(tag: str) -> str:
    """The identity used to match tags: underscores as spaces, ``\\(``/``\\)`` unescaped, case folded, spaces collapsed.

    Users type ``long_hair`` for a caption that says ``long hair`` (WD14's CSV spells tags with underscores, the
    taggers write spaces), and prompt-escaped ``smile \\(anime\\)`` for ``smile (anime)``; both must match.
    """
    unescaped = tag.replace("\\(", "(").replace("\\)", ")").replace("_", " ")
    return " ".join(unescaped.split()).casefold()


@dataclass(frozen=True)
class TagCount:
    """One row of the frequency table: ``count`` captions contain ``tag`` (spelled exactly so)."""

    tag: str
    count: int


def tag_frequency(captions: Iterable[Sequence[str]]) -> Counter[str]:
    """Tag -> number of captions containing it (a tag repeated within one caption counts once)."""
    counts: Counter[str] = Counter()
    for tags in captions:
        counts.update(set(tags))
    return counts


def tag_stats(captions: Iterable[Sequence[str]]) -> list[TagCount]:
    """The frequency table: most frequent first, ties by name so the table is stable between refreshes."""
    counts = tag_frequency(captions)
    return [TagCount(tag, count) for tag, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def select(
    captions: Mapping[K, Sequence[str]],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    match: Literal["all", "any"] = "all",
) -> list[K]:
    """Keys of the captions that have all (or any) of ``include`` and none of ``exclude``, in mapping order.

    This is the editor's filter: a bulk edit then goes to the selected images only. No ``include`` selects all.
    """
    wanted = {tag_key(tag) for tag in include}
    unwanted = {tag_key(tag) for tag in exclude}
    test = all if match == "all" else any
    chosen = []
    for key, tags in captions.items():
        keys = {tag_key(tag) for tag in tags}
        if (not wanted or test(w in keys for w in wanted)) and not keys & unwanted:
            chosen.append(key)
    return chosen


class TagEdit(ABC):
    """One bulk edit of tag lists, as a value: what the store applies, journals and shows in the undo history."""

    #: Short machine name, used in backup folder names (``0007-20240501-101500-remove``).
    name: ClassVar[str]

    @abstractmethod
    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        """The edited tags of one caption. ``frequency`` is the dataset's tag frequency (only sorting reads it)."""

    @abstractmethod
    def describe(self) -> str:
        """One human line for the undo history, e.g. ``remove: watermark, text``."""

    def steps(self) -> tuple[TagEdit, ...]:
        """The edits to run one after the other over the whole dataset; a :class:`Chain` has several."""
        return (self,)


def _tag_tuple(value: str | Iterable[str]) -> tuple[str, ...]:
    """Tags from a caption-like string or an iterable of tags (each may itself hold commas), parsed and trimmed."""
    parts = [value] if isinstance(value, str) else list(value)
    return tuple(tag for part in parts for tag in parse_caption(part))


def _require(tags: tuple[str, ...], what: str) -> None:
    if not tags:
        raise UserError(f"{what}: no tags given")


@dataclass(frozen=True)
class Remove(TagEdit):
    """Drop every tag matching one of ``tags`` (by :func:`tag_key`)."""

    tags: tuple[str, ...]
    name: ClassVar[str] = "remove"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _tag_tuple(self.tags))
        _require(self.tags, self.name)

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        drop = {tag_key(tag) for tag in self.tags}
        return [tag for tag in tags if tag_key(tag) not in drop]

    def describe(self) -> str:
        return f"remove: {format_caption(self.tags)}"


def _rewrite_tags(tags: Sequence[str], rewrite: Callable[[str], list[str] | None]) -> list[str]:
    """Replace each tag by ``rewrite(tag)`` (``None``: keep it), never duplicating a tag through the rewrite.

    A rewritten tag is dropped when its new form is already in the caption (``blond hair, blonde hair`` with
    ``blonde`` -> ``blond`` gives ``blond hair`` once); a tag the rewrite leaves alone is always kept.
    """
    rewritten = []
    for tag in tags:
        pieces = rewrite(tag)
        rewritten.append(None if pieces == [tag] else pieces)
    untouched = {tag_key(tag) for tag, pieces in zip(tags, rewritten) if pieces is None}
    result: list[str] = []
    added: set[str] = set()
    for tag, pieces in zip(tags, rewritten):
        if pieces is None:
            result.append(tag)
            continue
        for piece in pieces:
            key = tag_key(piece)
            if key not in untouched and key not in added:
                added.add(key)
                result.append(piece)
    return result


@dataclass(frozen=True)
class Replace(TagEdit):
    """Replace the whole tag ``old`` (matched by :func:`tag_key`) by ``new``; an empty ``new`` removes it.

    ``new`` may hold commas to split one tag into several (``blonde twintails`` -> ``blonde hair, twintails``).
    """

    old: str
    new: str
    name: ClassVar[str] = "replace"

    def __post_init__(self) -> None:
        if not self.old.strip():
            raise UserError("replace: the tag to replace is empty")

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        old = tag_key(self.old)
        new = parse_caption(self.new)
        return _rewrite_tags(tags, lambda tag: new if tag_key(tag) == old else None)

    def describe(self) -> str:
        return f"replace: {self.old.strip()} -> {self.new.strip() or '(removed)'}"


@dataclass(frozen=True)
class ReplaceInTags(TagEdit):
    """Replace text *inside* tags: ``hair`` -> ``hairstyle`` turns ``long hair`` into ``long hairstyle``.

    Literal and case-sensitive by default; ``regex=True`` makes ``find`` a Python regular expression and lets
    ``replacement`` use group references (``\\1``). A tag rewritten to nothing is dropped; commas in the result
    split it into several tags.
    """

    find: str
    replacement: str
    regex: bool = False
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    name: ClassVar[str] = "replace-in-tags"

    def __post_init__(self) -> None:
        if not self.find:
            raise UserError("replace in tags: the text to find is empty")
        if self.regex:
            try:
                object.__setattr__(self, "_pattern", re.compile(self.find))
            except re.error as exc:
                raise UserError(f"replace in tags: bad regular expression {self.find!r}: {exc}") from None

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        return _rewrite_tags(tags, self._rewrite)

    def _rewrite(self, tag: str) -> list[str] | None:
        if self._pattern is not None:
            try:
                new = self._pattern.sub(self.replacement, tag)
            except (re.error, IndexError) as exc:  # a bad group reference shows only when substituting
                raise UserError(f"replace in tags: bad replacement {self.replacement!r}: {exc}") from None
        else:
            new = tag.replace(self.find, self.replacement)
        return None if new == tag else parse_caption(new)

    def describe(self) -> str:
        kind = "regex" if self.regex else "text"
        return f"replace {kind} in tags: {self.find} -> {self.replacement or '(nothing)'}"


def unique_tags(tags: Iterable[str]) -> list[str]:
    """Each tag once, matched by :func:`tag_key`, keeping the first spelling and the order."""
    return _missing((), tuple(tags))


def _missing(tags: Sequence[str], wanted: tuple[str, ...]) -> list[str]:
    """The tags of ``wanted`` not yet in ``tags`` (by key), each once, in ``wanted``'s order."""
    present = {tag_key(tag) for tag in tags}
    missing = []
    for tag in wanted:
        key = tag_key(tag)
        if key not in present:
            present.add(key)
            missing.append(tag)
    return missing


@dataclass(frozen=True)
class Prepend(TagEdit):
    """Put ``tags`` first, skipping those the caption already has (so running it twice changes nothing).

    The usual use is the trigger word. A tag already present stays where it is: moving it would surprise.
    """

    tags: tuple[str, ...]
    name: ClassVar[str] = "prepend"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _tag_tuple(self.tags))
        _require(self.tags, self.name)

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        return _missing(tags, self.tags) + list(tags)

    def describe(self) -> str:
        return f"prepend: {format_caption(self.tags)}"


@dataclass(frozen=True)
class Append(TagEdit):
    """Put ``tags`` last, skipping those the caption already has."""

    tags: tuple[str, ...]
    name: ClassVar[str] = "append"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _tag_tuple(self.tags))
        _require(self.tags, self.name)

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        return list(tags) + _missing(tags, self.tags)

    def describe(self) -> str:
        return f"append: {format_caption(self.tags)}"


@dataclass(frozen=True)
class Dedupe(TagEdit):
    """Keep the first of tags that match each other (``long hair, long_hair`` -> ``long hair``)."""

    name: ClassVar[str] = "dedupe"

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        return unique_tags(tags)

    def describe(self) -> str:
        return "remove duplicate tags"


@dataclass(frozen=True)
class Sort(TagEdit):
    """Sort tags alphabetically or by dataset frequency (most common first), keeping the first ``keep_first`` put.

    ``keep_first=1`` keeps a prepended trigger word in front. Ties sort alphabetically; duplicates are kept.
    """

    by: Literal["alpha", "frequency"] = "alpha"
    keep_first: int = 0
    name: ClassVar[str] = "sort"

    def __post_init__(self) -> None:
        if self.by not in ("alpha", "frequency"):
            raise UserError(f"sort: unknown order {self.by!r} (use alpha or frequency)")
        if self.keep_first < 0:
            raise UserError("sort: keep_first must be 0 or more")

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        head, tail = list(tags[: self.keep_first]), tags[self.keep_first :]
        if self.by == "alpha":
            return head + sorted(tail, key=lambda tag: (tag_key(tag), tag))
        return head + sorted(tail, key=lambda tag: (-frequency.get(tag, 0), tag_key(tag), tag))

    def describe(self) -> str:
        kept = f", first {self.keep_first} kept" if self.keep_first else ""
        return f"sort by {'name' if self.by == 'alpha' else 'frequency'}{kept}"


@dataclass(frozen=True)
class Chain(TagEdit):
    """Several edits as one undo step (the CLI's ``--remove a --prepend x`` is one operation to undo)."""

    edits: tuple[TagEdit, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits", tuple(self.edits))
        if not self.edits:
            raise UserError("no edit given")

    @property
    def name(self) -> str:  # type: ignore[override]  # computed from the steps, so not a class constant
        return "+".join(edit.name for edit in self.steps())

    def apply(self, tags: Sequence[str], frequency: Mapping[str, int]) -> list[str]:
        result = list(tags)
        for edit in self.steps():
            result = edit.apply(result, frequency)
        return result

    def describe(self) -> str:
        return "; ".join(edit.describe() for edit in self.steps())

    def steps(self) -> tuple[TagEdit, ...]:
        return tuple(step for edit in self.edits for step in edit.steps())


def apply_edit(
    edit: TagEdit, captions: Mapping[K, Sequence[str]], targets: Collection[K] | None = None
) -> dict[K, list[str]]:
    """The edited tag lists of ``targets`` (all captions when ``None``), in ``captions`` order.

    Each step of a chain sees the dataset as the previous step left it, so "sort by frequency" after a replace
    ranks the new tags by their new counts. Frequency always counts the whole dataset, not only the targets:
    the order of tags should not depend on which images happen to be selected.
    """
    current = {key: list(tags) for key, tags in captions.items()}
    wanted = set(current) if targets is None else set(targets)
    chosen = [key for key in current if key in wanted]
    for step in edit.steps():
        frequency = tag_frequency(current.values())
        for key in chosen:
            current[key] = step.apply(current[key], frequency)
    return {key: current[key] for key in chosen}
