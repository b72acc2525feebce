"""Pieces every part of the tab uses: the project picker, the dataset's image list, progress text."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

from ..images import list_photos
from ..project import Project, open_project, project_names
from .host import Host


def job_text(*lines: str) -> str:
    """Progress text as HTML. It always holds a newline: the host puts newline-free text inside the progress bar
    (progressbar.js), and ours belongs below it, in the tab's progress box."""
    return "<div class='ti-studio-job'>" + "<br>".join(html.escape(line) for line in lines) + "</div>\n"


def job_boxes(prefix: str) -> tuple[gr.Textbox, gr.HTML]:
    """A long job's hidden task-id input and its status box, with the live-progress box between them. The element ids
    ``<prefix>_progress`` and ``<prefix>_status`` are what ``javascript/ti_studio_progress.js`` fills and follows."""
    task_id = gr.Textbox(visible=False)
    gr.HTML(elem_id=f"{prefix}_progress")
    return task_id, gr.HTML(elem_id=f"{prefix}_status")


def gallery_items(dataset: Path) -> list[Path]:
    """The dataset's images, in file-name order (the order captions and crops are listed everywhere)."""
    return list_photos(dataset) if dataset.is_dir() else []


class ProjectPicker:
    """The project dropdown above the stages: every stage works on the project chosen here."""

    def __init__(self, host: Host):
        self._root = host.settings().projects_root
        existing = project_names(self._root)
        with gr.Row(elem_id="ti_studio_project_row"):
            # No project is preselected: choosing one is what loads every stage's view of it.
            self.dropdown = gr.Dropdown(existing, value=None, allow_custom_value=True,
                                        label="Project", info="one per person; pick one or type a new name",
                                        elem_id="ti_studio_project", scale=3)
            refresh = gr.Button("Refresh", elem_id="ti_studio_project_refresh", elem_classes=["tool"], size="sm",
                                scale=0, min_width=80)
            self.folder = gr.HTML(self._where(None), elem_id="ti_studio_project_folder")
        refresh.click(fn=lambda: gr.update(choices=project_names(self._root)), inputs=[], outputs=[self.dropdown])
        self.dropdown.change(fn=self._where, inputs=[self.dropdown], outputs=[self.folder])

    def project(self, name: str | None) -> Project:
        return open_project(self._root, name or "")

    def _where(self, name: str | None) -> str:
        if not name:
            return "<span class='ti-studio-muted'>Projects are kept in " + html.escape(str(self._root)) + "</span>"
        return "<span class='ti-studio-muted'>" + html.escape(str(Path(self._root) / name)) + "</span>"


@dataclass(frozen=True)
class StageView:
    """How a stage shows a project: ``refresh(project_name)`` returns the values of ``outputs``. The tab calls it
    when the project changes and when the stage's tab is opened (another stage may have changed the files)."""

    refresh: Callable[[str], list]
    outputs: list
