"""Train: create the embedding and train it on the project's dataset, with a live loss/norm chart and previews.

Defaults are the tutorial's (TrainConfig's): the step-decay schedule, ``name_filewords``, 3000 steps, a snapshot
every 50 steps and a preview every 500, batch 1, tag shuffle. A run lives in ``<project>/runs/<name>/``; "Resume"
continues it from its newest snapshot after an Interrupt, a crash or with more steps.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ..errors import UserError
from ..training.config import TrainConfig
from ..training.run_files import RunFolder, read_loss_log
from ..training.schedule import PRESETS, TUTORIAL
from ..training.templates import list_templates
from ..training.trainer import StepReport, TrainCallbacks, TrainResult, check_run_folder, prepare_data, train
from .common import ProjectPicker, StageView, job_boxes, job_text
from .host import Host
from .loss_chart import chart_svg
from .messages import guarded, info_html

#: The form's fields, in the order of the event's inputs: TrainConfig fields plus the model and precision.
FORM_FIELDS = ("name", "init_text", "vectors", "learning_rate", "steps", "batch_size", "grad_accum", "template",
               "save_every", "preview_every", "preview_prompt", "shuffle_tags", "tag_dropout", "latent_sampling",
               "flip", "norm_control", "size", "output_format", "seed")
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
#: The browser polls the progress text twice a second; redrawing the live chart more often than this only takes time
#: from training (benchmarks/bench_chart.py: about 4 ms a drawing at 3000 steps, every step).
CHART_REDRAW_S = 0.25


def build(host: Host, picker: ProjectPicker) -> StageView:
    form: dict[str, Any] = {}
    with gr.Row():
        if host.kind == "webui":
            model = gr.Textbox(value="", visible=False)
            gr.HTML("<div class='ti-studio-muted'>Trains on the checkpoint loaded in WebUI (top of the page).</div>",
                    elem_id="ti_studio_train_model_note")
        else:
            model = gr.Textbox(value=host.model_label(), label="Model",
                               info="diffusers folder, .safetensors/.ckpt file or Hub repo id",
                               elem_id="ti_studio_train_model", scale=3)
        # In WebUI the weights are the host's, shared with txt2img: training uses their precision as they are.
        precision = gr.Dropdown(["auto", "fp32", "fp16", "bf16"], value="auto", label="Precision",
                                visible=host.kind != "webui", elem_id="ti_studio_train_precision", scale=1)
    with gr.Row():
        form["name"] = gr.Textbox(label="Embedding name", info="the word you will type in prompts; default: the "
                                  "project's name", elem_id="ti_studio_train_name")
        form["init_text"] = gr.Textbox(label="Initialization text", info="blank starts from zero vectors",
                                       elem_id="ti_studio_train_init_text")
        form["vectors"] = gr.Slider(1, 8, value=_DEFAULTS["vectors"], step=1, label="Vectors per token",
                                    elem_id="ti_studio_train_vectors")
    with gr.Row():
        preset = gr.Dropdown([p.label for p in PRESETS], value=TUTORIAL.label, label="Learning-rate preset",
                             elem_id="ti_studio_train_preset", scale=1)
        form["learning_rate"] = gr.Textbox(value=_DEFAULTS["learning_rate"], label="Learning rate schedule",
                                           info="rate:until_step, ..., final rate",
                                           elem_id="ti_studio_train_lr", scale=3)
    with gr.Row():
        form["steps"] = gr.Number(value=_DEFAULTS["steps"], precision=0, label="Steps", elem_id="ti_studio_train_steps")
        form["batch_size"] = gr.Number(value=_DEFAULTS["batch_size"], precision=0, label="Batch size",
                                       elem_id="ti_studio_train_batch")
        form["grad_accum"] = gr.Number(value=_DEFAULTS["grad_accum"], precision=0, label="Gradient accumulation",
                                       elem_id="ti_studio_train_accum")
        form["save_every"] = gr.Number(value=_DEFAULTS["save_every"], precision=0, label="Save a snapshot every",
                                       elem_id="ti_studio_train_save_every")
        form["preview_every"] = gr.Number(value=_DEFAULTS["preview_every"], precision=0,
                                          label="Preview image every (0 = never)", elem_id="ti_studio_train_preview_every")
    with gr.Row():
        form["template"] = gr.Dropdown(sorted(list_templates()), value=_DEFAULTS["template"], allow_custom_value=True,
                                       label="Prompt template", elem_id="ti_studio_train_template")
        form["preview_prompt"] = gr.Textbox(value=_DEFAULTS["preview_prompt"], label="Preview prompt",
                                            elem_id="ti_studio_train_preview_prompt", scale=2)
        form["shuffle_tags"] = gr.Checkbox(value=_DEFAULTS["shuffle_tags"], label="Shuffle tags",
                                           elem_id="ti_studio_train_shuffle")
    with gr.Accordion("Advanced", open=False, elem_id="ti_studio_train_advanced"):
        with gr.Row():
            form["tag_dropout"] = gr.Slider(0, 0.9, value=_DEFAULTS["tag_dropout"], step=0.05, label="Tag dropout",
                                            elem_id="ti_studio_train_dropout")
            form["latent_sampling"] = gr.Radio(["once", "deterministic", "random"],
                                               value=_DEFAULTS["latent_sampling"], label="Latent sampling",
                                               elem_id="ti_studio_train_sampling")
            form["flip"] = gr.Checkbox(value=_DEFAULTS["flip"], label="Also train on mirrored images",
                                       elem_id="ti_studio_train_flip")
        with gr.Row():
            form["norm_control"] = gr.Radio(["off", "cap", "directional"], value=_DEFAULTS["norm_control"],
                                            label="Norm control", info="keeps the embedding as strong as a real word",
                                            elem_id="ti_studio_train_norm_control")
            form["size"] = gr.Number(value=0, precision=0, label="Training size (px, 0 = the model's own)",
                                     elem_id="ti_studio_train_size")
            form["output_format"] = gr.Radio(["safetensors", "pt", "both"], value=_DEFAULTS["output_format"],
                                             label="Snapshot format", elem_id="ti_studio_train_format")
            form["seed"] = gr.Number(value=_DEFAULTS["seed"], precision=0, label="Seed", elem_id="ti_studio_train_seed")
    with gr.Row():
        start = gr.Button("Train", variant="primary", elem_id="ti_studio_train_run")
        resume = gr.Button("Resume", elem_id="ti_studio_train_resume")
        interrupt = gr.Button("Interrupt", elem_id="ti_studio_train_interrupt")
    task_id, status = job_boxes("ti_studio_train")
    chart = gr.HTML(elem_id="ti_studio_train_chart")
    previews = gr.Gallery(label="Previews", columns=6, height="auto", elem_id="ti_studio_train_gallery")

    def run(resume_run: bool):
        def handler(project_name: str, model_ref: str, precision_choice: str, *values: Any) -> list:
            project = picker.project(project_name)
            config = _config(dict(zip(FORM_FIELDS, values)), default_name=project.name, precision=precision_choice)
            if not resume_run and config.name in host.embedding_names():
                raise UserError(f'"{config.name}" is already the name of an embedding in WebUI: choose another, '
                                "or the prompts would mix the two")
            run_dir = project.run_dir(config.name)
            prepare_data(config, project.dataset)
            check_run_folder(config, run_dir, resume_run)
            return _train(host, config, project.dataset, run_dir, resume_run, model_ref)
        return host.gpu_job(guarded(3)(handler), outputs=3)

    inputs = [task_id, picker.dropdown, model, precision] + [form[name] for name in FORM_FIELDS]
    outputs = [chart, previews, status]
    start.click(fn=run(False), _js="tiStudioStartTrain", inputs=inputs, outputs=outputs)
    resume.click(fn=run(True), _js="tiStudioStartTrain", inputs=inputs, outputs=outputs)
    interrupt.click(fn=host.interrupt, inputs=[], outputs=[])
    preset.change(fn=lambda label: next(p.text for p in PRESETS if p.label == label), inputs=[preset],
                  outputs=[form["learning_rate"]])

    @guarded(4)
    def show_run(project_name: str) -> list:
        """The project's newest run (its name, chart and previews), or the project's name for a first run."""
        project = picker.project(project_name)
        runs = project.run_names()
        chosen = runs[0] if runs else project.name
        folder = RunFolder(project.run_dir(chosen), chosen)
        rows = read_loss_log(folder.loss_log)
        text = f"Run \"{chosen}\": {rows[-1]['step']} steps so far; Resume continues it." if rows else ""
        return [chosen, chart_svg(rows) if rows else "", _previews(folder), info_html(text) if text else ""]
    return StageView(show_run, [form["name"], chart, previews, status])


def _config(values: dict[str, Any], default_name: str, precision: str) -> TrainConfig:
    values = dict(values)
    values["name"] = (values["name"] or "").strip() or default_name
    values["size"] = int(values["size"] or 0) or None
    for key in ("vectors", "steps", "batch_size", "grad_accum", "save_every", "preview_every", "seed"):
        if values[key] is None:
            raise UserError(f"{key.replace('_', ' ')}: give a number")
        values[key] = int(values[key])
    return TrainConfig(precision=precision, **values)


def _train(host: Host, config: TrainConfig, dataset: Path, run_dir: Path, resume: bool, model: str) -> list:
    job = host.progress()
    folder = RunFolder(run_dir, config.name)
    rows = read_loss_log(folder.loss_log) if resume else []
    job.start(config.steps, job_text(f"Loading the model for {config.name}..."))
    backend = host.load_backend(model, config.precision)
    chart = LiveChart()
    try:
        def on_step(report: StepReport) -> None:
            rows.append({"step": report.step, "loss": report.loss, "norm": report.norm,
                         "fixed_loss": report.fixed_loss})
            svg = chart.svg(rows, now=report.snapshot is not None)  # a snapshot adds a fixed-noise loss marker
            job.advance(report.step, progress_html(report, svg), report.preview_image)

        def on_status(text: str) -> None:
            job.advance(rows[-1]["step"] if rows else 0, job_text(text))

        result = train(config, backend, dataset, run_dir, resume=resume,
                       callbacks=TrainCallbacks(on_step=on_step, should_stop=job.interrupted, on_status=on_status))
    finally:
        host.release_backend(backend)
    return [chart_svg(read_loss_log(folder.loss_log)), _previews(folder), _result_html(result)]


class LiveChart:
    """The chart in the progress text, redrawn at most every :data:`CHART_REDRAW_S` of ``clock`` (or at once when
    asked)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._svg = ""
        self._drawn = -math.inf

    def svg(self, rows: list[dict], now: bool = False) -> str:
        clock = self._clock()
        if now or clock - self._drawn >= CHART_REDRAW_S:
            self._svg, self._drawn = chart_svg(rows), clock
        return self._svg


def progress_html(report: StepReport, chart: str) -> str:
    """The step's line above the live chart: what the progress box shows during training."""
    line = (f"Step {report.step}/{report.total_steps} · loss {report.loss:.4f} · learning rate "
            f"{report.learning_rate:g} · norm {report.norm:.3f}")
    if report.snapshot:
        line += f" · saved {report.snapshot.name}"
    return f"<div class='ti-studio-job'>{html.escape(line)}</div>\n{chart}"


def _previews(folder: RunFolder) -> list[tuple[str, str]]:
    if not folder.previews.is_dir():
        return []
    images = sorted(folder.previews.glob("*.png"), key=lambda path: path.stat().st_mtime)
    return [(str(path), path.stem) for path in images]


def _result_html(result: TrainResult) -> str:
    if result.stopped_reason and result.stopped_reason != "interrupted":
        last = f" The last good snapshot is {result.last_good_snapshot.name}." if result.last_good_snapshot else ""
        return f"<div class='ti-studio-error'>{html.escape(result.stopped_reason + last)}</div>"
    state = "Finished" if result.finished else "Interrupted"
    return info_html(f"{state} at step {result.steps_done}. {len(result.snapshots)} snapshots in "
                     f"{result.run_dir / 'embeddings'}; Resume continues the run, Compare tries them.")
