"""The Simplified Chinese localization (``localizations/*.json``) covers exactly the tab's strings.

WebUI merges an extension's ``localizations/<language>.json`` into the language of that name; we ship one file per
name the popular Chinese packs use. When a UI string is added or renamed, these tests fail until the translation is
updated: ``python -m ti_studio.ui.strings`` lists what is missing and what is stale.
"""

import json

import pytest

from ti_studio.ui.strings import LOCALIZATION_DIR, LOCALIZATION_FILES, html_texts, matchable, tab_strings


@pytest.fixture(scope="module")
def strings() -> set[str]:
    return tab_strings()


@pytest.fixture(scope="module")
def files() -> dict[str, dict]:
    loaded = {}
    for name in LOCALIZATION_FILES:
        raw = (LOCALIZATION_DIR / name).read_bytes()
        data = json.loads(raw.decode("utf-8"))  # valid UTF-8 and JSON
        assert isinstance(data, dict), name
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in data.items()), name
        loaded[name] = data
    return loaded


def test_collects_labels_choices_and_webui_only_strings(strings):
    # A label, an info, a placeholder, a button, a tab, an accordion, (label, value) choices, plain choices.
    for text in ("Photos folder", "a WD14 name, a Hub repo id or a local folder", "e.g. lips, nose, eyelashes",
                 "Crop photos", "1. Dataset", "More crop options", "Largest face", "close-up", "both"):
        assert text in strings
    # Shown only in WebUI, and only in the standalone app.
    assert "Send to txt2img" in strings
    assert "Trains on the checkpoint loaded in WebUI (top of the page)." in strings
    assert "Model" in strings
    # Choice values, identifiers and user data are not keys.
    for text in ("largest", "skip", "yunet", "fp16", "safetensors", "name_filewords"):
        assert text not in strings
    assert not any("ti_studio_strings_" in text or "/" == text[:1] for text in strings)


def test_every_string_is_translated(strings, files):
    for name, data in files.items():
        missing = sorted(text for text in strings if not data.get(text, "").strip())
        assert not missing, f"{name} lacks translations (python -m ti_studio.ui.strings): {missing}"


def test_no_stale_keys(strings, files):
    for name, data in files.items():
        stale = sorted(set(data) - strings)
        assert not stale, f"{name} has keys the tab no longer shows (python -m ti_studio.ui.strings): {stale}"


def test_the_files_are_identical_and_canonical(files):
    texts = {(LOCALIZATION_DIR / name).read_text(encoding="utf-8") for name in LOCALIZATION_FILES}
    assert len(texts) == 1
    data = files[LOCALIZATION_FILES[0]]
    assert texts.pop() == json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    assert all(value != key for key, value in data.items() if key.isascii() and " " in key)


def test_matching_follows_localization_js():
    assert matchable("Crop photos")
    assert not matchable("0.5")
    assert not matchable("press the ↙ button")
    assert not matchable("⚠ no face")
    assert html_texts("<div class='x'>Hello <b>world</b></div>") == ["Hello", "world"]
