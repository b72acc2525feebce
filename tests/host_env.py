"""Tests against the double of the host's v1.10.1 ``modules`` (``tests/host_double``): the double is importable for
one test only, and the extension's script is imported the way the host imports it."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
HOST_DOUBLE = Path(__file__).resolve().parent / "host_double"
SCRIPT = ROOT / "scripts" / "ti_studio.py"

#: Python source that imports the script as the host does, in a fresh interpreter (``python -c``), against the double.
IMPORT_SCRIPT_AS_HOST = (
    "import importlib.util, sys\n"
    f"sys.path[:0] = [{str(HOST_DOUBLE)!r}, {str(ROOT)!r}]\n"
    f"spec = importlib.util.spec_from_file_location('ti_studio.py', {str(SCRIPT)!r})\n"
    "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
)


@contextlib.contextmanager
def host_modules(monkeypatch) -> Iterator[None]:
    """``modules`` (the double) importable inside the block; every ``modules*`` leaves ``sys.modules`` after it, so
    the next test starts from a fresh host."""
    assert "modules" not in sys.modules, "another test left host modules behind"
    monkeypatch.syspath_prepend(str(HOST_DOUBLE))
    try:
        yield
    finally:
        for name in [name for name in sys.modules if name == "modules" or name.startswith("modules.")]:
            del sys.modules[name]


def load_script(monkeypatch) -> None:
    """Import ``scripts/ti_studio.py`` as the host does (modules/script_loading.py L10-16, scripts.py L510-515)."""
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        spec = importlib.util.spec_from_file_location(SCRIPT.name, SCRIPT)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
