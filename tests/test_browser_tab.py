"""The whole tab in headless Chromium: the standalone app (``python -m ti_studio app``) on tiny real models, driven
through all four stages the way a user clicks them.

Real parts: MTCNN face detection on skimage photos, a WD14-shaped ONNX tagger, a tiny diffusers SD1 trained by the
real trainer, the real progress route and scripts. Screenshots of each stage land in ``test-artifacts/screenshots``.
"""

from __future__ import annotations

import json
import sys

import pytest

import photos
from browser import (REPO_ROOT, field, free_port, open_project, open_stage, running_server, screenshot,
                     train_and_watch, wait_text)
from tagger_model import build_model_folder

pytest_plugins = ["browser"]
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("tab")
    source = root / "photos"
    source.mkdir()
    photos.astronaut().save(source / "astronaut.jpg")
    photos.camera().save(source / "camera.jpg")
    photos.two_faces()[0].save(source / "two.jpg")
    photos.coffee().save(source / "coffee.jpg")  # no face: skipped with a reason
    return {"root": root, "photos": source, "tagger": build_model_folder(root / "tagger"),
            "model": tiny_models["sd1"], "projects": root / "projects"}


@pytest.fixture(scope="module")
def app(chromium, world):
    port = free_port()
    command = [sys.executable, "-m", "ti_studio", "app", "--model", str(world["model"]), "--projects",
               str(world["projects"]), "--port", str(port), "--device", "cpu"]
    with running_server(command, port=port, env={"PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False"},
                        timeout=90) as running:
        yield running


def test_photos_to_compare_preset(page, app, world):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(app.url)
    open_project(page, "anna")
    dataset = world["projects"] / "anna" / "dataset"

    # 1. Dataset: crop with progress, review, adjust one crop over its original.
    field(page, "ti_studio_crop_source").fill(str(world["photos"]))
    page.click("#ti_studio_crop_run")
    status = wait_text(page, "#ti_studio_crop_status", "crops from 4 photos")
    assert "3 crops from 4 photos" in status and "Skipped coffee.jpg" in status
    assert page.locator("#ti_studio_crop_gallery .thumbnail-item").count() == 3
    assert "2 faces in the photo" in page.inner_text("#ti_studio_crop_gallery")
    screenshot(page, "tab_1_dataset")

    page.locator("#ti_studio_crop_gallery .thumbnail-item").first.click()
    square = page.locator(".ti-studio-crop-square")
    square.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#ti_studio_crop_original img').complete")
    first = sorted(p.name for p in dataset.glob("*.png"))[0]
    before = (dataset / first).read_bytes()
    box_before = json.loads(page.input_value("#ti_studio_crop_box textarea"))
    page.locator("#ti_studio_crop_original").scroll_into_view_if_needed()
    rect = square.bounding_box()  # a mouse drag needs the square inside the viewport
    page.mouse.move(rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2)
    page.mouse.down()
    page.mouse.move(rect["x"] + rect["width"] / 2 + 25, rect["y"] + rect["height"] / 2 + 10, steps=5)
    page.mouse.up()
    page.wait_for_function("(b) => JSON.parse(document.querySelector('#ti_studio_crop_box textarea').value).left"
                           " !== b", arg=box_before["left"])
    page.click("#ti_studio_crop_apply")
    wait_text(page, "#ti_studio_crop_notes", f"Saved {first}")
    record = json.loads((dataset / ".ti_studio" / "crops" / f"{first}.json").read_text())
    assert record["adjusted"] is True and record["box"]["left"] > box_before["left"]
    assert (dataset / first).read_bytes() != before
    screenshot(page, "tab_1_dataset_adjusted")

    # 2. Tags: tag with the ONNX tagger, remove a ticked tag, undo it.
    open_stage(page, "2. Tags")
    model = field(page, "ti_studio_tag_model")
    model.fill(str(world["tagger"]))
    model.press("Enter")
    page.click("#ti_studio_tag_run")
    wait_text(page, "#ti_studio_tag_status", "Tagged 3 images")
    table = page.locator("#ti_studio_tag_table label", has_text="solo (")
    assert table.count() == 1
    assert all("solo" in p.read_text() for p in dataset.glob("*.txt"))
    screenshot(page, "tab_2_tags")
    table.click()
    page.click("#ti_studio_tag_remove")
    wait_text(page, "#ti_studio_tag_status", "Changed 3 captions")
    assert page.locator("#ti_studio_tag_table label", has_text="solo (").count() == 0
    assert not any("solo" in p.read_text() for p in dataset.glob("*.txt"))
    page.click("#ti_studio_tag_undo")
    wait_text(page, "#ti_studio_tag_status", "restored 3 captions")
    assert all("solo" in p.read_text() for p in dataset.glob("*.txt"))
    field(page, "ti_studio_tag_add_text").fill("anna")
    page.click("#ti_studio_tag_add")
    wait_text(page, "#ti_studio_tag_status", "Changed 3 captions")
    assert all(p.read_text().startswith("anna, ") for p in dataset.glob("*.txt"))
    screenshot(page, "tab_2_tags_edited")

    # 3. Train: a short run, yet long enough (a few seconds on a fast machine; the page polls twice a second) that the
    # loss chart in the progress box is seen growing while it runs.
    open_stage(page, "3. Train")
    points_seen = train_and_watch(page, "anna", steps=96, save_every=24, preview_every=48,
                                  screenshot_name="tab_3_training")
    status = page.inner_text("#ti_studio_train_status")
    assert "Finished at step 96" in status, status
    assert len(set(points_seen)) >= 2 and points_seen == sorted(points_seen), points_seen  # the plot moved
    assert page.locator("#ti_studio_train_chart polyline.ti-studio-chart-loss").count() == 1
    assert page.locator("#ti_studio_train_gallery .thumbnail-item").count() == 2  # previews at steps 48 and 96
    embeddings = world["projects"] / "anna" / "runs" / "anna" / "embeddings"
    assert sorted(p.name for p in embeddings.iterdir()) == [f"anna-{s}.safetensors" for s in (24, 48, 72, 96)]
    screenshot(page, "tab_3_train_done")

    # 4. Compare: the run's snapshots with their numbers, and the X/Y/Z preset.
    open_stage(page, "4. Compare")
    snapshot_list = wait_text(page, "#ti_studio_compare_snapshots", "anna-96")
    assert "loss" in snapshot_list and "norm" in snapshot_list
    page.click("#ti_studio_compare_build")
    page.wait_for_function("document.querySelector('#ti_studio_compare_infotext textarea').value"
                           ".includes('X/Y/Z plot')")
    infotext = page.input_value("#ti_studio_compare_infotext textarea")
    assert infotext.startswith("a photo of anna-24, short hair")
    assert 'X Values: "anna-24,anna-48,anna-72,anna-96"' in infotext
    assert 'Y Values: "short hair,long hair,ponytail,curly hair"' in infotext
    export_to = world["root"] / "exported"
    field(page, "ti_studio_compare_export_folder").fill(str(export_to))
    page.click("#ti_studio_compare_export")
    wait_text(page, "#ti_studio_compare_status", "Exported 4 snapshots")
    assert sorted(p.name for p in export_to.iterdir())[0] == "anna-24.safetensors"
    screenshot(page, "tab_4_compare")

    # The standalone app draws the X/Y/Z grid itself: 4 snapshots x 4 Y values at 64 px.
    page.click("#ti_studio_compare_render")
    page.locator("#ti_studio_compare_grid img").wait_for(state="visible", timeout=120_000)
    assert "4 snapshots x 4 prompts" in wait_text(page, "#ti_studio_compare_status", "Grid of")
    page.locator("#ti_studio_compare_grid").scroll_into_view_if_needed()
    screenshot(page, "tab_4_grid")

    # A new visit: picking the project shows its crops again, with the photos folder it came from.
    page.reload()
    open_project(page, "anna")
    page.wait_for_function("document.querySelectorAll('#ti_studio_crop_gallery .thumbnail-item').length === 3")
    assert field(page, "ti_studio_crop_source").input_value() == str(world["photos"].resolve())
