"""Tags: WD14 tagging, then the caption editor — frequency table, bulk edits, per-image captions, undo.

Every edit goes through :class:`~ti_studio.captions.CaptionStore`, which backs up before writing and journals each
operation, so "Undo" restores exactly what the last edit changed, here or from the CLI.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..captions import (Append, CaptionStore, EditResult, Prepend, Remove, Replace, ReplaceInTags, TagEdit,
                        parse_caption)
from ..errors import UserError
from ..tagging.models import DEFAULT_MODEL, REGISTRY
from ..tagging.postprocess import TagOptions
from ..tagging.tagger import TagConfig, TagRun, tag_folder
from .common import ProjectPicker, StageView, gallery_items, job_boxes, job_text
from .host import Host
from .messages import guarded, info_html

WRITE_MODES = [("Replace captions", "overwrite"), ("Add to captions", "append"), ("Put before captions", "prepend"),
               ("Only untagged images", "skip")]
#: Tagging and every caption edit need the Dataset stage's crops first.
NO_IMAGES = "this project has no images yet: crop the photos in the Dataset tab first"


def build(host: Host, picker: ProjectPicker) -> StageView:
    settings = host.settings()
    with gr.Row():
        model = gr.Dropdown(list(REGISTRY), value=settings.tagger_model or DEFAULT_MODEL, allow_custom_value=True,
                            label="Tagger model", info="a WD14 name, a Hub repo id or a local folder",
                            elem_id="ti_studio_tag_model", scale=2)
        general = gr.Slider(0, 1, value=TagOptions.general_threshold, step=0.01, label="General tag threshold",
                            elem_id="ti_studio_tag_general")
        character = gr.Slider(0, 1, value=TagOptions.character_threshold, step=0.01,
                              label="Character tag threshold", elem_id="ti_studio_tag_character")
    with gr.Row():
        exclude = gr.Textbox(label="Never write these tags", placeholder="e.g. lips, nose, eyelashes",
                             elem_id="ti_studio_tag_exclude", scale=3)
        mode = gr.Radio(WRITE_MODES, value="overwrite", label="Existing captions", elem_id="ti_studio_tag_mode",
                        scale=2)
    run = gr.Button("Tag images", variant="primary", elem_id="ti_studio_tag_run")
    task_id, status = job_boxes("ti_studio_tag")

    with gr.Row():
        with gr.Column(scale=2):
            table = gr.CheckboxGroup(label="Tags in the dataset (how many captions have each); tick to remove",
                                     elem_id="ti_studio_tag_table")
            with gr.Row():
                remove = gr.Button("Remove ticked tags", variant="stop", elem_id="ti_studio_tag_remove")
                undo = gr.Button("Undo last edit", elem_id="ti_studio_tag_undo")
            with gr.Row():
                find = gr.Textbox(label="Find tag", elem_id="ti_studio_tag_find")
                replacement = gr.Textbox(label="Replace with", info="empty removes it",
                                         elem_id="ti_studio_tag_replacement")
            inside = gr.Checkbox(label="Also inside longer tags (\"hair\" in \"long hair\")",
                                 elem_id="ti_studio_tag_inside")
            replace = gr.Button("Replace everywhere", elem_id="ti_studio_tag_replace")
            with gr.Row():
                trigger = gr.Textbox(label="Tags to add", placeholder="e.g. the trigger word, or 1girl",
                                     elem_id="ti_studio_tag_add_text")
                where = gr.Radio([("At the start", "start"), ("At the end", "end")], value="start",
                                 label="Where", elem_id="ti_studio_tag_add_where")
            add = gr.Button("Add to every caption", elem_id="ti_studio_tag_add")
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Images (click one to edit its caption)", columns=5, height="auto",
                                 allow_preview=False, elem_id="ti_studio_tag_gallery")
            with gr.Row(equal_height=False):
                image = gr.Image(label="Image", interactive=False, type="filepath", height=320,
                                 elem_id="ti_studio_tag_image")
                with gr.Column():
                    caption = gr.Textbox(label="Caption", lines=6, elem_id="ti_studio_tag_caption")
                    save = gr.Button("Save caption", variant="primary", elem_id="ti_studio_tag_save")
    selected = gr.State("")

    def store_of(project_name: str) -> CaptionStore:
        dataset = picker.project(project_name).dataset
        if not dataset.is_dir():
            raise UserError(NO_IMAGES)
        return CaptionStore(dataset)

    def view(store: CaptionStore, message: str | None = None) -> list:
        """The table, the gallery and a status line (by default, the dataset's size) after any change."""
        rows = store.stats()
        if message is None:
            message = f"{len(store.images)} images, {len(rows)} different tags"
        choices = [(f"{row.tag} ({row.count})", row.tag) for row in rows]
        captions = {path: store.get(path) for path in store.images}
        items = [(str(path), captions[path] or "(no caption)") for path in store.images]
        return [gr.update(choices=choices, value=[]), items, info_html(message)]

    def tag(project_name: str, model_ref: str, general_threshold: float, character_threshold: float,
            excluded: str, write_mode: str) -> list:
        dataset = picker.project(project_name).dataset
        photos = gallery_items(dataset)
        if not photos:
            raise UserError(NO_IMAGES)
        options = TagOptions(general_threshold=general_threshold, character_threshold=character_threshold,
                             exclude=tuple(parse_caption(excluded)))
        config = TagConfig(model=model_ref.strip() or DEFAULT_MODEL, options=options, mode=write_mode,
                           endpoint=settings.hub_mirror or None)
        job = host.progress()
        job.start(len(photos), job_text(f"Loading {config.model}..."))
        run_result = tag_folder(dataset, config, progress=lambda done, total: job.advance(
            done, job_text(f"Tagged {done}/{total}")))
        return view(CaptionStore(dataset), _tag_summary(run_result))

    run.click(fn=host.gpu_job(guarded(3)(tag), outputs=3), _js="tiStudioStartTag",
              inputs=[task_id, picker.dropdown, model, general, character, exclude, mode],
              outputs=[table, gallery, status])

    def edited(project_name: str, edit: TagEdit) -> list:
        store = store_of(project_name)
        result = store.apply(edit)
        return view(store, _edit_summary(result))

    @guarded(3)
    def refresh(project_name: str) -> list:
        if not picker.project(project_name).dataset.is_dir():
            return [gr.update(choices=[], value=[]), [], ""]
        return view(store_of(project_name))

    @guarded(3)
    def remove_ticked(project_name: str, ticked: list[str]) -> list:
        if not ticked:
            raise UserError("tick the tags to remove in the table first")
        return edited(project_name, Remove(tuple(ticked)))

    @guarded(3)
    def replace_all(project_name: str, old: str, new: str, within: bool) -> list:
        if not old.strip():
            raise UserError("type the tag to find")
        edit = ReplaceInTags(old.strip(), new.strip()) if within else Replace(old.strip(), new.strip())
        return edited(project_name, edit)

    @guarded(3)
    def add_tags(project_name: str, text: str, position: str) -> list:
        tags = tuple(parse_caption(text))
        if not tags:
            raise UserError("type the tags to add")
        return edited(project_name, Prepend(tags) if position == "start" else Append(tags))

    @guarded(3)
    def undo_last(project_name: str) -> list:
        store = store_of(project_name)
        result = store.undo()
        message = f"Undid \"{result.entry.description}\": restored {len(result.restored)} captions."
        if result.skipped:
            message += (f" {len(result.skipped)} captions were edited since and were left alone (their old text is "
                        f"in {result.kept_backup}).")
        return view(store, message)

    @guarded(4)
    def select(project_name: str, event: gr.SelectData) -> list:
        store = store_of(project_name)
        path = store.images[event.index]
        return [str(path), store.get(path), str(path), ""]

    @guarded(3)
    def save_caption(project_name: str, image_path: str, text: str) -> list:
        if not image_path:
            raise UserError("click an image in the gallery first")
        store = store_of(project_name)
        result = store.set(Path(image_path), text)
        return view(store, _edit_summary(result))

    outputs = [table, gallery, status]
    remove.click(fn=remove_ticked, inputs=[picker.dropdown, table], outputs=outputs)
    replace.click(fn=replace_all, inputs=[picker.dropdown, find, replacement, inside], outputs=outputs)
    add.click(fn=add_tags, inputs=[picker.dropdown, trigger, where], outputs=outputs)
    undo.click(fn=undo_last, inputs=[picker.dropdown], outputs=outputs)
    gallery.select(fn=select, inputs=[picker.dropdown], outputs=[image, caption, selected, status])
    save.click(fn=save_caption, inputs=[picker.dropdown, selected, caption], outputs=outputs)
    return StageView(refresh, outputs)


def _tag_summary(run: TagRun) -> str:
    text = (f"Tagged {len(run.tagged)} images with {run.model} on {run.provider}; skipped {len(run.skipped)}, "
            f"failed {len(run.failed)}.")
    problems = [f"{issue.file}: {issue.reason}" for issue in run.failed]
    return " ".join([text] + ([f"Note: {run.notice}"] if run.notice else []) + problems)


def _edit_summary(result: EditResult) -> str:
    if not result.changes:
        return "Nothing to change: no caption had that."
    return f"Changed {len(result.changes)} captions (backed up first; Undo restores them)."


