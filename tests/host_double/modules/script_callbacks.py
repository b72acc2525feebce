"""Double of ``modules/script_callbacks.py`` (v1.10.1): registering an ``app_started`` callback.

Host behaviour mirrored here:
- L120-124 ``ScriptCallback(script, callback, name="unnamed")``: ``script`` is the file that registered it.
- L127-147 ``add_callback(callbacks, fun, *, name=None, category='unknown', filename=None)``: the registering file
  is the first stack frame outside this module; the callback is named ``<extension>/<file>/<category>[/<name>]``.
  The host looks the extension up with ``extensions.find_extension``; the double uses the folder above
  ``scripts/`` or the package, which is enough to tell callbacks apart.
- L219-241 ``callback_map``: one list per category (only the three categories the adapter uses are kept here).
- L456-459 ``on_app_started(callback, *, name=None)``; the host later calls each as ``callback(demo, app)``
  (L253-259 ``app_started_callback``; ``demo`` is None under ``--nowebui``, webui.py L38 and L119).
- L473-483 ``on_ui_tabs`` and L493-496 ``on_ui_settings``; the host calls them as ``callback()`` and collects the
  tabs' returned lists (L278-306 ``ui_tabs_callback``, ``ui_settings_callback``).

The real module imports gradio (``from gradio import Blocks``) at the top; the double does not, on purpose.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Any
    name: str = "unnamed"


callback_map: dict[str, list[ScriptCallback]] = dict(callbacks_app_started=[], callbacks_ui_tabs=[],
                                                     callbacks_ui_settings=[])


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None):
    if filename is None:
        stack = [frame for frame in inspect.stack() if frame.filename != __file__]
        filename = stack[0].filename if stack else "unknown file"
    extension = os.path.basename(os.path.dirname(os.path.dirname(filename)))
    callback_name = f"{extension}/{os.path.basename(filename)}/{category}"
    if name is not None:
        callback_name += f"/{name}"
    callbacks.append(ScriptCallback(filename, fun, callback_name))


def on_app_started(callback, *, name=None):
    add_callback(callback_map["callbacks_app_started"], callback, name=name, category="app_started")


def on_ui_tabs(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_tabs"], callback, name=name, category="ui_tabs")


def on_ui_settings(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_settings"], callback, name=name, category="ui_settings")


def ui_tabs_callback():
    res = []
    for c in callback_map["callbacks_ui_tabs"]:
        res += c.callback() or []
    return res


def ui_settings_callback():
    for c in callback_map["callbacks_ui_settings"]:
        c.callback()
