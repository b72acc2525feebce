"""TI Studio's section in WebUI's Settings (Settings → Training → TI Studio).

Registered in ``on_ui_settings`` (modules/options.py L68-77 ``options_section``, L256 ``add_option``); read with
``getattr(opts, key, default)`` because under ``--nowebui`` the section may be registered late (host research §1.3).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..crop.detectors import DETECTORS
from ..tagging.models import DEFAULT_MODEL
from ..ui.host import HostSettings

SECTION = ("ti_studio", "TI Studio", "training")

#: key -> (default, label)
OPTIONS = {
    "ti_studio_projects_root": ("", "Projects folder (empty: outputs/ti-studio in the WebUI folder)"),
    "ti_studio_detector": ("auto", "Face detector for cropping"),
    "ti_studio_tagger_model": (DEFAULT_MODEL, "WD14 tagger model (a name, Hub repo id or folder)"),
    "ti_studio_hub_mirror": ("", "Hugging Face mirror for model downloads (e.g. https://hf-mirror.com; empty: "
                                 "HF_ENDPOINT or huggingface.co)"),
}


def register_settings() -> None:
    import gradio as gr
    from modules import shared

    # component_args must hold only arguments that gradio 3.41's ``Dropdown.update`` also takes: on every page load
    # the host re-sends each setting as ``gr.update(value=..., **component_args)`` (ui_settings.py L12-19, L332-339),
    # and one unknown key (e.g. ``allow_custom_value``) fails that whole request for every setting. So the detector
    # (a fixed list) is a plain Dropdown, and the tagger model (also a repo id or a folder) a free-text box.
    choices = {"ti_studio_detector": list(DETECTORS)}
    section = {}
    for key, (default, label) in OPTIONS.items():
        if key in choices:
            section[key] = shared.OptionInfo(default, label, gr.Dropdown, {"choices": choices[key]})
        else:
            section[key] = shared.OptionInfo(default, label)
    for key, info in shared.options_section(SECTION, section).items():
        shared.opts.add_option(key, info)


def read_settings() -> HostSettings:
    from modules import paths_internal, shared

    def value(key: str) -> str:
        return str(getattr(shared.opts, key, OPTIONS[key][0]) or "").strip()

    root = value("ti_studio_projects_root") or os.path.join(paths_internal.default_output_dir, "ti-studio")
    return HostSettings(projects_root=Path(root), detector=value("ti_studio_detector") or "auto",
                        tagger_model=value("ti_studio_tagger_model"), hub_mirror=value("ti_studio_hub_mirror"))
