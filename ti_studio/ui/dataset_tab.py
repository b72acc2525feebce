"""Dataset: crop the project's photos around the face, review the crops, adjust any of them over its original.

The crop editor is client-side (``javascript/ti_studio_crop.js``): the server shows a downscaled original and the
crop square in the original's pixels (a hidden textbox of JSON); the script draws the square, lets the user move
and zoom it, and writes it back; "Save adjusted crop" re-exports that one crop from the original.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import gradio as gr

from ..crop import records
from ..crop.cropper import CropConfig, CropSummary, crop_folder, recrop
from ..crop.detectors import DETECTORS, create_detector
from ..crop.framing import FACE_FRACTIONS, CropBox, FramingConfig
from ..errors import UserError
from ..images import ImageError, list_photos, open_photo
from .common import ProjectPicker, StageView, gallery_items, job_boxes, job_text
from .host import Host
from .messages import guarded, info_html

#: The original is shown at most this large: enough to place a crop precisely, small enough to send quickly.
EDITOR_LONG_SIDE = 1024

#: Display height of the original in the editor, in CSS pixels.
EDITOR_HEIGHT = 540

_DEFAULT_FRAMING = next(name for name, share in FACE_FRACTIONS.items() if share == FramingConfig.face_fraction)


def build(host: Host, picker: ProjectPicker) -> StageView:
    settings = host.settings()
    with gr.Row():
        source = gr.Textbox(label="Photos folder", placeholder="the folder with the original photos (only read)",
                            elem_id="ti_studio_crop_source", scale=4)
        size = gr.Number(label="Crop size (px)", value=CropConfig.size, precision=0, elem_id="ti_studio_crop_size",
                         scale=1)
        detector = gr.Dropdown(list(DETECTORS), value=settings.detector, label="Face detector",
                               elem_id="ti_studio_crop_detector", scale=1)
    with gr.Accordion("More crop options", open=False):
        with gr.Row():
            framing = gr.Radio(list(FACE_FRACTIONS), value=_DEFAULT_FRAMING, label="Framing",
                               elem_id="ti_studio_crop_framing")
            faces = gr.Radio([("Largest face", "largest"), ("Every face (one crop each)", "all")],
                             value=CropConfig.faces, label="Faces", elem_id="ti_studio_crop_faces")
            no_face = gr.Radio([("Skip the photo", "skip"), ("Centre crop, flagged", "centre")],
                               value=CropConfig.no_face, label="When no face is found",
                               elem_id="ti_studio_crop_no_face")
    with gr.Row():
        run = gr.Button("Crop photos", variant="primary", elem_id="ti_studio_crop_run")
        interrupt = gr.Button("Interrupt", elem_id="ti_studio_crop_interrupt")
    task_id, status = job_boxes("ti_studio_crop")
    gallery = gr.Gallery(label="Crops (click one to adjust it)", columns=6, height="auto", allow_preview=False,
                         elem_id="ti_studio_crop_gallery")
    names = gr.State([])
    selected = gr.State("")
    # Fixed image heights: in a row, gradio 3.41 images of "auto" height grow without end (equal heights loop).
    with gr.Row(elem_id="ti_studio_crop_editor_row", equal_height=False):
        with gr.Column(scale=3):
            original = gr.Image(label="Original: drag the square to move it, drag a corner or scroll to zoom",
                                interactive=False, type="pil", height=EDITOR_HEIGHT, elem_id="ti_studio_crop_original")
            box = gr.Textbox(show_label=False, elem_id="ti_studio_crop_box", elem_classes=["ti-studio-hidden"])
        with gr.Column(scale=2):
            crop_view = gr.Image(label="Crop", interactive=False, type="filepath", height=EDITOR_HEIGHT * 2 // 3,
                                 elem_id="ti_studio_crop_selected")
            notes = gr.HTML(elem_id="ti_studio_crop_notes")
            apply = gr.Button("Save adjusted crop", variant="primary", elem_id="ti_studio_crop_apply")
            with gr.Row():
                new_size = gr.Number(label="New size for every crop (px)", value=CropConfig.size, precision=0,
                                     elem_id="ti_studio_crop_resize_size")
                resize = gr.Button("Re-export all at this size", elem_id="ti_studio_crop_resize")

    def crop(project_name: str, folder: str, side: float, detector_name: str, framing_name: str, faces_mode: str,
             no_face_mode: str) -> list:
        project = picker.project(project_name)
        if not folder.strip():
            raise UserError("give the folder that holds the photos")
        config = CropConfig(size=int(side or 0), detector=detector_name,
                            framing=FramingConfig(face_fraction=FACE_FRACTIONS[framing_name]), faces=faces_mode,
                            no_face=no_face_mode)
        source_dir = Path(folder.strip()).expanduser()
        if not source_dir.is_dir():
            raise UserError(f"the photos folder {source_dir} does not exist")
        job = host.progress()
        job.start(len(list_photos(source_dir)), job_text("Loading the face detector..."))
        face_detector, notice = create_detector(config.detector, endpoint=settings.hub_mirror or None, threads=1)

        def advance(done: int, total: int, name: str) -> None:
            job.advance(done, job_text(f"Cropped {done}/{total}: {name}"))

        summary = crop_folder(source_dir, project.dataset, config, progress=advance, should_stop=job.interrupted,
                              detector=face_detector)
        project.remember_source(source_dir)
        items, crop_names = _gallery(project.dataset)
        return [items, crop_names, _summary_html(summary, notice)]

    run.click(fn=host.gpu_job(guarded(3)(crop), outputs=3), _js="tiStudioStartCrop",
              inputs=[task_id, picker.dropdown, source, size, detector, framing, faces, no_face],
              outputs=[gallery, names, status])
    interrupt.click(fn=host.interrupt, inputs=[], outputs=[])

    @guarded(4)
    def refresh(project_name: str) -> list:
        """The project's crops, and the photos folder they came from (so a new crop run needs no typing)."""
        project = picker.project(project_name)
        items, crop_names = _gallery(project.dataset)
        message = info_html(f"{len(crop_names)} crops in {project.dataset}") if crop_names else ""
        return [project.source() or gr.update(), items, crop_names, message]

    @guarded(6)
    def select(project_name: str, crop_names: list[str], event: gr.SelectData) -> list:
        project = picker.project(project_name)
        name = crop_names[event.index]
        record = records.load_record(project.dataset, name)
        try:
            photo = open_photo(record.source, min_long_side=EDITOR_LONG_SIDE)
        except ImageError as error:
            raise UserError(f"{name}: cannot show its original: {error}") from None
        shown = photo.image.copy()
        shown.thumbnail((EDITOR_LONG_SIDE, EDITOR_LONG_SIDE))
        width, height = record.source_size
        box_json = json.dumps({"left": record.box.left, "top": record.box.top, "side": record.box.side,
                               "width": width, "height": height})
        return [shown, box_json, str(project.dataset / name), _notes_html(record), name, ""]

    @guarded(3)
    def save_adjusted(project_name: str, name: str, box_json: str) -> list:
        project = picker.project(project_name)
        if not name:
            raise UserError("click a crop in the gallery first")
        try:
            data = json.loads(box_json)
            new_box = CropBox(left=float(data["left"]), top=float(data["top"]), side=float(data["side"]))
        except (ValueError, KeyError, TypeError):
            raise UserError("the crop square is not set: click the crop in the gallery again") from None
        record = recrop(project.dataset, name, box=new_box)
        items, _ = _gallery(project.dataset)
        return [str(project.dataset / name), items, _notes_html(record) + info_html(f"Saved {name}.")]

    @guarded(3)
    def resize_all(project_name: str, side: float) -> list:
        project = picker.project(project_name)
        saved = records.list_records(project.dataset)
        if not saved:
            raise UserError("no crops with saved parameters in this project yet: crop the photos first")
        for record in saved:
            recrop(project.dataset, record.output, size=int(side or 0))
        items, crop_names = _gallery(project.dataset)
        return [items, crop_names, info_html(f"Re-exported {len(saved)} crops at {int(side)} px.")]

    gallery.select(fn=select, inputs=[picker.dropdown, names],
                   outputs=[original, box, crop_view, notes, selected, status])
    box.change(fn=None, inputs=[box], outputs=[], _js="tiStudioCropShow")
    apply.click(fn=save_adjusted, inputs=[picker.dropdown, selected, box], outputs=[crop_view, gallery, notes])
    resize.click(fn=resize_all, inputs=[picker.dropdown, new_size], outputs=[gallery, names, status])
    return StageView(refresh, [source, gallery, names, status])


def _gallery(dataset: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The crops with their warnings as captions, and their names in the same order."""
    saved = {record.output: record for record in records.list_records(dataset)} if dataset.is_dir() else {}
    items, names = [], []
    for path in gallery_items(dataset):
        record = saved.get(path.name)
        warnings = record.warnings if record else []
        items.append((str(path), "⚠ " + "; ".join(warnings) if warnings else path.name))
        names.append(path.name)
    return items, names


def _summary_html(summary: CropSummary, notice: str | None) -> str:
    lines = [f"{summary.written} crops from {len(summary.results)} photos"
             + (" (interrupted)" if summary.stopped else "") + f", detector {summary.detector}."]
    if notice:
        lines.append(notice)
    for result in summary.results:
        if result.skipped:
            lines.append(f"Skipped {result.source}: {result.skipped}")
        lines.extend(f"{result.source}: {warning}" for warning in result.warnings)
    return "<div class='ti-studio-info'>" + "<br>".join(html.escape(line) for line in lines) + "</div>"


def _notes_html(record: records.CropRecord) -> str:
    parts = [f"From {record.source}"] + [f"⚠ {warning}" for warning in record.warnings]
    if record.adjusted:
        parts.append("Adjusted by hand: a new automatic crop run keeps this square.")
    return "<div class='ti-studio-notes'>" + "<br>".join(html.escape(part) for part in parts) + "</div>"
