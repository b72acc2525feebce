"""The tab's browser files (``javascript/*.js``, ``style.css``), which the host loads from the extension root.

The standalone app has no such loader: :func:`head_html` inlines the same files into its page, in the host's
order (sorted file names), so both run the same scripts.
"""

from __future__ import annotations

from pathlib import Path

EXTENSION_ROOT = Path(__file__).resolve().parents[2]


def javascript_files() -> list[Path]:
    return sorted((EXTENSION_ROOT / "javascript").glob("*.js"))


def head_html() -> str:
    parts = [f"<script>\n{path.read_text(encoding='utf-8')}\n</script>" for path in javascript_files()]
    style = EXTENSION_ROOT / "style.css"
    if style.is_file():
        parts.append(f"<style>\n{style.read_text(encoding='utf-8')}\n</style>")
    return "\n".join(parts)
