"""The standalone app: the TI Studio tab served on 127.0.0.1 without WebUI, over the diffusers backend.

``python -m ti_studio app [--model PATH] [--port N]``. The page is gradio's, mounted on our own FastAPI app so it
can carry what WebUI would otherwise provide: the tab's scripts and styles in the page head, the
``/internal/progress`` route the progress bar polls, and the ``/ti-studio/v1/`` HTTP routes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .host import HostSettings
from .standalone_host import StandaloneHost

log = logging.getLogger("ti_studio")

TITLE = "TI Studio"


class ProgressRequest(BaseModel):
    """The body the progress poller posts (the host's ``ProgressRequest``, modules/progress.py L59-63)."""

    id_task: str
    id_live_preview: int = -1
    live_preview: bool = True


def build_blocks(host: StandaloneHost) -> Any:
    import gradio as gr

    from .tab import build_tab

    with gr.Blocks(title=TITLE, analytics_enabled=False) as blocks:
        build_tab(host)
    return blocks


def create_app(blocks: Any, host: StandaloneHost | None = None) -> Any:
    """A FastAPI app serving ``blocks`` at ``/`` with the tab's scripts and styles in the page head."""
    import gradio as gr
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    from .assets import head_html

    app = FastAPI(title=TITLE)
    head = head_html()

    @app.middleware("http")
    async def inject_head(request: Request, call_next):
        response = await call_next(request)
        if request.method != "GET" or not response.headers.get("content-type", "").startswith("text/html"):
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])
        page = body.decode("utf-8").replace("</head>", head + "\n</head>", 1)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(page, status_code=response.status_code, headers=headers, media_type="text/html")

    if host is not None:
        @app.post("/internal/progress")
        def progress(request: ProgressRequest) -> dict:
            return host.jobs.report(request.id_task, request.id_live_preview, request.live_preview)

        _add_http_routes(app, host)

    blocks.queue(concurrency_count=4, api_open=False)
    return gr.mount_gradio_app(app, blocks, path="/")


def _add_http_routes(app: Any, host: StandaloneHost) -> None:
    """The same ``/ti-studio/v1/`` routes WebUI serves under ``--api``: the app is local, so no credentials."""
    from ..training.jobs import TrainJobs
    from ..webui.routes import create_router

    jobs = TrainJobs(load_backend=host.load_backend, release_backend=host.release_backend, gpu_lock=host.gpu_lock)
    app.include_router(create_router(credentials=None, gpu_lock=host.gpu_lock, jobs=jobs))


def serve(model: str, port: int, projects_root: Path, device: str = "auto") -> None:
    import uvicorn

    host = StandaloneHost(HostSettings(projects_root=projects_root), model=model, device=device)
    app = create_app(build_blocks(host), host)
    log.info("TI Studio: projects in %s; open http://127.0.0.1:%d", projects_root, port)
    print(f"TI Studio running on http://127.0.0.1:{port} (projects in {projects_root}; Ctrl+C stops)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
