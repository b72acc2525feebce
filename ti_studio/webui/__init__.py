"""TI Studio inside AUTOMATIC1111's WebUI: the only package that touches the host's ``modules``.

The host imports every extension's ``scripts/*.py`` at startup, so what runs then must be cheap: this module
imports nothing heavy, and ``modules.*`` and the routes (fastapi, numpy, PIL, the core) are imported inside the
functions, when the host calls them. Registration is a function the script calls rather than an import side
effect because "Reload UI" clears the host's callbacks and runs the scripts again, while ``ti_studio.webui`` stays
imported in ``sys.modules``.
"""

from __future__ import annotations

from typing import Any

#: The ``name`` our ``app_started`` callback is registered under. The host names callbacks after the file that
#: registers them (here ``__init__.py``), so this suffix is what tells ours apart in logs and ordering rules.
CALLBACK_NAME = "ti_studio_routes"


def register() -> None:
    """Register TI Studio's host callbacks (``scripts/ti_studio.py`` calls this at every script load)."""
    from modules import script_callbacks

    script_callbacks.on_ui_settings(on_ui_settings, name=CALLBACK_NAME)
    script_callbacks.on_ui_tabs(on_ui_tabs, name=CALLBACK_NAME)
    script_callbacks.on_app_started(on_app_started, name=CALLBACK_NAME)


def on_ui_settings() -> None:
    """Add the TI Studio section to Settings (projects folder, face detector, tagger model, download mirror)."""
    from .settings import register_settings

    register_settings()


def on_ui_tabs() -> list[tuple[Any, str, str]]:
    """Build the TI Studio tab (the host renders it as ``#tab_ti_studio``, in ``opts.ui_tab_order``)."""
    import gradio as gr

    from ..ui.tab import build_tab
    from .ui_host import WebuiHost

    with gr.Blocks(analytics_enabled=False) as tab:
        build_tab(WebuiHost())
    return [(tab, "TI Studio", "ti_studio")]


def on_app_started(demo: Any, app: Any) -> None:
    """Add the ``/ti-studio/v1/`` routes to the host's FastAPI ``app`` (``demo``: the gradio Blocks, or None).

    The routes follow the host API's own trust model: they exist only when the host's API is on (``--api`` or
    ``--nowebui``), because they read and write any local path; with ``--api-auth`` they take the same credentials.
    Training jobs run on the host's loaded model, under its GPU queue lock like the tab's.
    """
    from ..training.jobs import TrainJobs
    from .host import api_credentials, api_enabled, gpu_lock
    from .routes import create_router
    from .ui_host import WebuiHost

    if api_enabled():
        host = WebuiHost()
        jobs = TrainJobs(load_backend=host.load_backend, release_backend=host.release_backend, gpu_lock=gpu_lock())
        app.include_router(create_router(credentials=api_credentials(), gpu_lock=gpu_lock(), jobs=jobs))
