"""Prompt templates: the text each training image is paired with, in the WebUI's template-file format.

A template file holds one prompt per line. ``[name]`` stands for the embedding's name (the word the trained vectors
are spliced in for) and ``[filewords]`` for the image's caption. Each time an image is drawn, one line is picked at
random and filled in, the way the host's ``PersonalizedBase.create_text`` does (A1111 v1.10.1, read for behaviour):
tag dropout first, then tag shuffle, then the line's ``[filewords]`` and ``[name]`` are replaced.

Where we differ from the host, on purpose:
- Blank lines are skipped; the host can pick one and train on an empty prompt.
- A template with no ``[name]`` on any line is refused: the embedding would never be in a prompt and get no
  gradient (the likely cause of the host's "No inf checks were recorded for this optimizer", A1111 #5141). Lines
  without ``[name]`` only warn (:attr:`Template.warnings`): they train nothing but are harmless.
- Tags are trimmed and re-joined with ``", "`` (the host keeps each tag's spaces and joins with ``","``, so a shuffled
  tag can carry a leading space); CLIP tokenises both the same way.
- An empty ``[filewords]`` (no caption, or every tag dropped) takes one neighbouring comma with it, so
  ``"[name], [filewords]"`` gives ``"name"``, not ``"name, "``.
- With shuffle and dropout off the host fixes each image's line once for the whole run; here a line is picked on
  every draw (the template's variety is the point of having several lines).

Template files are found by name in the bundled ``templates/`` folder first, then in extra folders (the host's
``textual_inversion_templates``). Our files share some names with the host's (``subject``, ``style``…); ours win,
and the host's stay reachable by path.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..captions.ops import format_caption, parse_caption
from ..errors import UserError

NAME = "[name]"
FILEWORDS = "[filewords]"
TEMPLATE_SUFFIX = ".txt"
#: The extension's template folder (repo root / templates), shipped beside the ``ti_studio`` package.
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "templates"

_EMPTY_FILEWORDS = re.compile(r"\s*,\s*" + re.escape(FILEWORDS) + r"|" + re.escape(FILEWORDS) + r"\s*,?\s*")


def shuffle_tags(caption: str, rng: random.Random) -> str:
    """The caption's tags in a random order drawn from ``rng``, so the embedding does not learn the tag order."""
    tags = parse_caption(caption)
    rng.shuffle(tags)
    return format_caption(tags)


def drop_tags(caption: str, rate: float, rng: random.Random) -> str:
    """The caption with each tag left out with probability ``rate``: what is left out in a prompt is absorbed by
    ``[name]``, which keeps the embedding from depending on every tag. ``rate`` 0 draws nothing from ``rng``."""
    if not 0 <= rate <= 1:
        raise ValueError(f"tag dropout rate {rate} is not between 0 and 1")
    tags = parse_caption(caption)
    if rate == 0:
        return format_caption(tags)
    return format_caption(tag for tag in tags if rng.random() >= rate)


def expand(line: str, name: str, filewords: str) -> str:
    """One template line filled in: ``[filewords]`` first, then ``[name]`` (the host's order)."""
    if filewords:
        line = line.replace(FILEWORDS, filewords)
    else:
        line = _EMPTY_FILEWORDS.sub("", line)
    return line.replace(NAME, name).strip()


@dataclass(frozen=True)
class Template:
    """A parsed template: its non-blank lines, trimmed, and warnings about lines that teach nothing."""

    name: str
    path: Path | None
    lines: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def uses_filewords(self) -> bool:
        """Whether any line reads the captions (then images without a caption deserve a warning or a refusal)."""
        return any(FILEWORDS in line for line in self.lines)

    def prompt(self, name: str, caption: str, rng: random.Random, *, shuffle: bool = False,
               dropout: float = 0.0) -> str:
        """A training prompt for one draw of an image: a random line, the caption's tags dropped out and shuffled.

        Draws from ``rng`` in the host's order (line, dropout, shuffle), so a seeded ``rng`` gives the same prompts.
        """
        line = rng.choice(self.lines)
        filewords = drop_tags(caption, dropout, rng)
        if shuffle:
            filewords = shuffle_tags(filewords, rng)
        return expand(line, name, filewords)

    def fixed_prompt(self, name: str, caption: str) -> str:
        """The first line with the caption as written: a prompt that never changes, for evaluation losses."""
        return expand(self.lines[0], name, format_caption(parse_caption(caption)))


def parse_template(text: str, name: str, path: Path | None = None) -> Template:
    """A template from file text; a :class:`UserError` if no line would ever put the embedding in a prompt."""
    numbered = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    numbered = [(number, line) for number, line in numbered if line]
    if not numbered:
        raise UserError(f'template "{name}" has no prompt lines')
    if not any(NAME in line for _, line in numbered):
        raise UserError(f'template "{name}" has no {NAME} on any line: the embedding would never appear in a '
                        f"training prompt and would learn nothing")
    warnings = tuple(f'template "{name}" line {number} has no {NAME} and trains nothing: "{line}"'
                     for number, line in numbered if NAME not in line)
    return Template(name, path, tuple(line for _, line in numbered), warnings)


def list_templates(extra_dirs: Iterable[str | os.PathLike] = ()) -> dict[str, Path]:
    """Template name (file stem) -> file, sorted by name: the bundled folder first, then ``extra_dirs`` in order
    (searched recursively, as the host lists its folder); the first file of a name wins."""
    found: dict[str, Path] = {}
    for folder in (BUNDLED_DIR, *map(Path, extra_dirs)):
        for root, _dirs, files in sorted(os.walk(folder)):
            for file in sorted(files):
                path = Path(root) / file
                if path.suffix.lower() == TEMPLATE_SUFFIX:
                    found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def load_template(name_or_path: str | os.PathLike, extra_dirs: Iterable[str | os.PathLike] = ()) -> Template:
    """A template by name (``name_filewords``, also ``name_filewords.txt``) or by path to a ``.txt`` file."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if not path.is_file():
        if isinstance(name_or_path, os.PathLike) or any(sep in text for sep in ("/", "\\", os.sep)):
            raise UserError(f"template file not found: {text}")
        available = list_templates(extra_dirs)
        key = text[: -len(TEMPLATE_SUFFIX)] if text.lower().endswith(TEMPLATE_SUFFIX) else text
        if key not in available:
            names = ", ".join(available) or "none found"
            raise UserError(f'unknown template "{text}" (templates: {names}; or give the path of a .txt file)')
        path = available[key]
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"template {path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"template {path}: cannot read it ({exc.strerror or exc})") from None
    return parse_template(content, path.stem, path)
