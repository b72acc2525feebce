"""Compare: choose snapshots of a run and send txt2img an X/Y/Z plot of them against prompt variations.

The preset is an infotext (``ti_studio.compare.xyz``): WebUI's own "paste parameters" fills txt2img and the X/Y/Z
script from it, so the user only presses Generate. The snapshots are copied under their comparison names (padded
steps, so no name is part of another: Prompt S/R replaces substrings) into ``<project>/compare/<run>/``, which the
host then loads as an embeddings folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..compare.comparison import Comparison, compare_run
from ..compare.snapshots import Snapshot, best, choose, export, load_run
from ..compare.grid import GridRequest, render_grid
from ..compare.xyz import DEFAULT_Y_VALUES, XyzPreset
from ..errors import UserError
from ..project import Project
from .common import ProjectPicker, StageView, job_boxes, job_text
from .host import Host
from .messages import guarded, info_html

def build(host: Host, picker: ProjectPicker) -> StageView:
    with gr.Row():
        run = gr.Dropdown([], label="Training run", elem_id="ti_studio_compare_run", scale=2)
        refresh = gr.Button("Refresh", elem_id="ti_studio_compare_refresh", elem_classes=["tool"], size="sm", scale=0,
                            min_width=80)
    snapshots = gr.CheckboxGroup(label="Snapshots to compare (X axis)", elem_id="ti_studio_compare_snapshots")
    with gr.Row():
        y_values = gr.Textbox(", ".join(DEFAULT_Y_VALUES), label="Y values (prompt variations, comma-separated)",
                              elem_id="ti_studio_compare_y", scale=2)
        prompt = gr.Textbox(XyzPreset.prompt_template, label="Prompt", info="[name]: each snapshot; [y]: each Y value",
                            elem_id="ti_studio_compare_prompt", scale=2)
        negative = gr.Textbox("", label="Negative prompt", elem_id="ti_studio_compare_negative", scale=2)
        seed = gr.Number(1, precision=0, label="Grid seed", elem_id="ti_studio_compare_seed", scale=1)
    infotext = gr.Textbox(label="txt2img preset", lines=4, elem_id="ti_studio_compare_infotext",
                          info="what Send to txt2img pastes; elsewhere, paste it into txt2img's prompt box and press "
                               "Read generation parameters under Generate")
    with gr.Row():
        build_button = gr.Button("Build preset", elem_id="ti_studio_compare_build")
        if host.kind == "webui":
            send = gr.Button("Send to txt2img", variant="primary", elem_id="ti_studio_compare_send")
        export_folder = gr.Textbox(label="Export the chosen snapshots to a folder", placeholder="e.g. an embeddings "
                                   "folder", elem_id="ti_studio_compare_export_folder", scale=2)
        export_button = gr.Button("Export", elem_id="ti_studio_compare_export")
    if host.kind == "standalone":  # in WebUI, txt2img's X/Y/Z plot draws the grid
        with gr.Row():
            render = gr.Button("Render grid", variant="primary", elem_id="ti_studio_compare_render")
            interrupt = gr.Button("Interrupt", elem_id="ti_studio_compare_interrupt")
        task_id, status = job_boxes("ti_studio_compare")
        grid_image = gr.Image(label="Comparison grid", type="pil", interactive=False,
                              elem_id="ti_studio_compare_grid")
    else:
        status = gr.HTML(elem_id="ti_studio_compare_status")

    def ticked(run_name: str, steps: list[str]) -> list[int]:
        if not run_name:
            raise UserError("this project has no training run yet: train one in the Train tab")
        if not steps:
            raise UserError("tick at least one snapshot")
        return [int(step) for step in steps]

    def chosen(project: Project, run_name: str, steps: list[str]) -> list[Snapshot]:
        wanted = ticked(run_name, steps)
        _, available = load_run(project.run_dir(run_name))
        return choose(available, steps=wanted)

    @guarded(3)
    def show_runs(project_name: str) -> list:
        names = picker.project(project_name).run_names()
        newest = names[0] if names else None
        return [gr.update(choices=names, value=newest), *show_snapshots(project_name, newest or "")]

    def show_snapshots(project_name: str, run_name: str) -> list:
        if not run_name:
            return [gr.update(choices=[], value=[]), ""]
        _, available = load_run(picker.project(project_name).run_dir(run_name))
        lowest = best(available)
        choices = [(_label(snapshot) + (" ★" if snapshot is lowest else ""), str(snapshot.step))
                   for snapshot in available]
        picked = [str(snapshot.step) for snapshot in choose(available)]
        return [gr.update(choices=choices, value=picked),
                info_html(f"{len(available)} snapshots; ticked: evenly spread ones, the last and the one with the "
                          "lowest fixed-noise loss (★), the closest to the training photos.")]

    def comparison_of(project_name: str, run_name: str, steps: list[str], y_text: str, prompt_text: str,
                      negative_text: str, seed_value: float) -> Comparison:
        """The same comparison the CLI and the HTTP route make (image size = the run's training size)."""
        project = picker.project(project_name)
        return compare_run(project.run_dir(run_name), steps=ticked(run_name, steps), y_values=y_text.split(","),
                           prompt_template=prompt_text.strip(), negative_prompt=negative_text.strip(),
                           seed=int(seed_value or 0))

    @guarded(2)
    def preset(*form: Any) -> list:
        comparison = comparison_of(*form)
        rows = max(len(comparison.preset.y_values), 1)
        return [comparison.infotext,
                info_html(f"Preset for {len(comparison.snapshots)} snapshots x {rows} prompts.")]

    @guarded(1)
    def register(project_name: str, run_name: str, steps: list[str]) -> str:
        project = picker.project(project_name)
        folder = project.compare_dir(run_name)
        export(chosen(project, run_name, steps), folder)
        return info_html(host.register_snapshots(folder))

    @guarded(1)
    def export_to(project_name: str, run_name: str, steps: list[str], folder: str) -> str:
        if not folder.strip():
            raise UserError("type the folder to export to")
        written = export(chosen(picker.project(project_name), run_name, steps), Path(folder.strip()).expanduser())
        return info_html(f"Exported {len(written)} snapshots to {folder.strip()}.")

    def grid(*form: Any) -> list:
        return _render_grid(host, GridRequest.for_comparison(comparison_of(*form)))

    preset_inputs = [picker.dropdown, run, snapshots, y_values, prompt, negative, seed]
    refresh.click(fn=show_runs, inputs=[picker.dropdown], outputs=[run, snapshots, status])
    run.change(fn=guarded(2)(show_snapshots), inputs=[picker.dropdown, run], outputs=[snapshots, status])
    build_button.click(fn=preset, inputs=preset_inputs, outputs=[infotext, status])
    for component in (snapshots, y_values, prompt, negative, seed):
        component.change(fn=preset, inputs=preset_inputs, outputs=[infotext, status])
    if host.kind == "webui":
        host.connect_send_to_txt2img(send, infotext)
        send.click(fn=register, inputs=[picker.dropdown, run, snapshots], outputs=[status])
    if host.kind == "standalone":
        render.click(fn=host.gpu_job(guarded(2)(grid), outputs=2), _js="tiStudioStartGrid",
                     inputs=[task_id, *preset_inputs], outputs=[grid_image, status])
        interrupt.click(fn=host.interrupt, inputs=[], outputs=[])
    export_button.click(fn=export_to, inputs=[picker.dropdown, run, snapshots, export_folder], outputs=[status])
    return StageView(show_runs, [run, snapshots, status])


def _render_grid(host: Host, request: GridRequest) -> list:
    """The grid on the app's model, cell by cell with progress; Interrupt keeps the cells done so far."""
    job = host.progress()
    total = len(request.snapshots) * len(request.rows)
    job.start(total, job_text("Loading the model for the grid..."))
    done = [0]

    def on_cell(count: int, cells: int) -> None:
        done[0] = count
        job.advance(count, job_text(f"Grid: image {count} of {cells}"))

    backend = host.load_backend(host.model_label(), "auto")
    try:
        job.advance(0, job_text(f"Grid: image 0 of {total}"))
        image = render_grid(backend, request, progress=on_cell, should_stop=job.interrupted)
    finally:
        host.release_backend(backend)
    if done[0] < total:
        return [image, info_html(f"Interrupted after {done[0]} of {total} images.")]
    return [image, info_html(f"Grid of {len(request.snapshots)} snapshots x {len(request.rows)} prompts, "
                             f"seed {request.preset.seed}, {request.width}x{request.height}.")]


def _label(snapshot: Snapshot) -> str:
    parts = [snapshot.compare_name]
    if snapshot.loss is not None:
        parts.append(f"loss {snapshot.loss:.4f}")
    if snapshot.fixed_loss is not None:
        parts.append(f"fixed-noise loss {snapshot.fixed_loss:.4f}")
    if snapshot.norm is not None:
        parts.append(f"norm {snapshot.norm:.3f}")
    return " · ".join(parts)
