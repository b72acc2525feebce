"""The tab's fixed English strings, as WebUI's localization can translate them.

WebUI merges an extension's ``localizations/<language>.json`` into the language of the same name, and its
``javascript/localization.js`` replaces a text node, a placeholder or a title whose whole trimmed text equals a key.
So only text the tab shows as built can be translated: labels, infos, placeholders, button texts, tab and accordion
titles, choice labels and static HTML. Status lines the handlers write (counts, paths, names) never match a key.

:func:`tab_strings` builds the tab for both hosts and collects those strings; ``tests/test_localization.py`` checks
that the shipped translations cover exactly them. ``python -m ti_studio.ui.strings`` lists the strings that a
localization file lacks and the keys it has that the tab no longer shows.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

#: The localization files, one per language name of the Chinese packs users install (same content in each).
LOCALIZATION_FILES = ("zh_CN.json", "zh-Hans (Stable).json", "zh-Hans (Testing).json")
LOCALIZATION_DIR = Path(__file__).resolve().parents[2] / "localizations"

#: Choices that are identifiers, not words, by the component's elem_id: ``None`` keeps every choice untranslated,
#: a set keeps those choices. Everything else a choice component offers is collected, so a new one needs either a
#: translation or an entry here.
UNTRANSLATED_CHOICES: dict[str, frozenset[str] | None] = {
    "ti_studio_project": None,  # the user's project names
    "ti_studio_crop_detector": None,  # detector ids (auto, yunet, mtcnn), as in the settings and the CLI
    "ti_studio_tag_model": None,  # tagger model names
    "ti_studio_train_precision": None,  # auto, fp32, fp16, bf16
    "ti_studio_train_template": None,  # template file names (users add their own)
    "ti_studio_compare_run": None,  # run names
    "ti_studio_compare_snapshots": None,  # snapshot names with their losses
    "ti_studio_train_format": frozenset({"safetensors", "pt"}),  # file formats ("both" is a word)
}

# localization.js (canBeTranslated) skips text that is a number or holds an emoji (\p{Extended_Pictographic}).
_NUMBER = re.compile(r"^[.\d]+$")
_PICTOGRAPHIC_RANGES = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139),
    (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328), (0x2388, 0x2388), (0x23CF, 0x23CF),
    (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0),
    (0x25FB, 0x25FE), (0x2600, 0x2605), (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712),
    (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721), (0x2728, 0x2728), (0x2733, 0x2734),
    (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757),
    (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF), (0x2934, 0x2935),
    (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F000, 0x1FAFF), (0x1FC00, 0x1FFFD),
)


_PICTOGRAPHIC = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _PICTOGRAPHIC_RANGES) + "]")


def matchable(text: str) -> bool:
    """Whether localization.js would look ``text`` (already trimmed) up at all."""
    return bool(text) and not _NUMBER.match(text) and not _PICTOGRAPHIC.search(text)


class _TextNodes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "textarea"):
            self._skip += 1
        for name, value in attrs:
            if name in ("title", "placeholder") and value:
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "textarea") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.texts.append(data)


def html_texts(markup: str) -> list[str]:
    """The trimmed text nodes, titles and placeholders of ``markup``."""
    parser = _TextNodes()
    parser.feed(markup)
    parser.close()
    return [text.strip() for text in parser.texts if text.strip()]


class _WebuiStandIn:
    """A webui-kind host for building the tab outside WebUI: the standalone host's answers, no txt2img link."""

    kind = "webui"

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def connect_send_to_txt2img(self, button: Any, infotext: Any) -> None:
        pass


def _component_strings(block: Any) -> Iterator[str]:
    for attr in ("label", "info", "placeholder"):
        value = getattr(block, attr, None)
        if isinstance(value, str):
            yield value
    kind = type(block).__name__
    if kind == "Button" and isinstance(block.value, str):
        yield block.value
    if kind in ("HTML", "Markdown") and isinstance(block.value, str):
        yield from html_texts(block.value)
    choices = getattr(block, "choices", None)
    if choices:
        kept = UNTRANSLATED_CHOICES.get(getattr(block, "elem_id", None) or "", frozenset())
        if kept is not None:
            for choice in choices:
                label = choice[0] if isinstance(choice, (tuple, list)) else choice
                if isinstance(label, str) and label not in kept:
                    yield label


def _blocks_strings(host: Any, exclude: tuple[str, ...]) -> set[str]:
    import gradio as gr

    from .tab import build_tab

    with gr.Blocks(analytics_enabled=False) as blocks:
        build_tab(host)
    found = set()
    for block in blocks.blocks.values():
        for text in _component_strings(block):
            text = text.strip()
            if matchable(text) and not any(part in text for part in exclude):
                found.add(text)
    return found


def tab_strings() -> set[str]:
    """Every fixed string of the tab that WebUI's localization can replace, for both kinds of host, plus the
    labels of TI Studio's section in WebUI's Settings."""
    from .standalone_host import StandaloneHost
    from ..webui.settings import OPTIONS
    from .host import HostSettings

    settings = {label for _, label in OPTIONS.values()}  # the section's title is the product's name: kept

    with tempfile.TemporaryDirectory(prefix="ti_studio_strings_") as root:
        model = "ti-studio-model-placeholder"
        standalone = StandaloneHost(HostSettings(projects_root=Path(root)), model=model)
        # The projects folder and the model path are the user's, shown as they are: never keys.
        exclude = (root, model)
        return (_blocks_strings(standalone, exclude) | _blocks_strings(_WebuiStandIn(standalone), exclude)
                | settings)


def load_localization(name: str) -> dict[str, str]:
    return json.loads((LOCALIZATION_DIR / name).read_text(encoding="utf-8"))


def main() -> int:
    """List, per localization file, the tab strings it lacks and the keys the tab no longer shows."""
    strings = tab_strings()
    problems = 0
    for name in LOCALIZATION_FILES:
        path = LOCALIZATION_DIR / name
        data = load_localization(name) if path.is_file() else {}
        missing = sorted(text for text in strings if not str(data.get(text, "")).strip())
        stale = sorted(set(data) - strings)
        problems += len(missing) + len(stale)
        print(f"{name}: {len(strings)} strings, {len(missing)} missing, {len(stale)} stale")
        for text in missing:
            print("  missing: " + json.dumps(text, ensure_ascii=False))
        for text in stale:
            print("  stale:   " + json.dumps(text, ensure_ascii=False))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
