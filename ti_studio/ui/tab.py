"""The TI Studio tab: a project picker above four stages, Dataset → Tags → Train → Compare.

``build_tab`` runs inside the caller's ``gr.Blocks``: WebUI's ``on_ui_tabs`` callback or the standalone app. All
host-specific behaviour comes through the :class:`~ti_studio.ui.host.Host` passed in.
"""

from __future__ import annotations

import gradio as gr

from . import compare_tab, dataset_tab, tags_tab, train_tab
from .common import ProjectPicker
from .host import Host

STAGES = (("1. Dataset", "dataset", dataset_tab), ("2. Tags", "tags", tags_tab), ("3. Train", "train", train_tab),
          ("4. Compare", "compare", compare_tab))


def build_tab(host: Host) -> None:
    picker = ProjectPicker(host)
    with gr.Tabs(elem_id="ti_studio_stages"):
        for title, key, stage in STAGES:
            with gr.Tab(title, id=f"ti_studio_{key}", elem_id=f"ti_studio_{key}_tab") as tab:
                view = stage.build(host, picker)
            # Another stage (or the CLI) may have changed the files since this one was last shown.
            tab.select(fn=view.refresh, inputs=[picker.dropdown], outputs=view.outputs)
            picker.dropdown.change(fn=view.refresh, inputs=[picker.dropdown], outputs=view.outputs)
