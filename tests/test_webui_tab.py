"""The tab inside the host: ``scripts/ti_studio.py`` loaded against the v1.10.1 double, its ``ui_settings`` and
``ui_tabs`` callbacks run as the host runs them, and the tab's events called as gradio would call them.

What this proves: the settings section and the tab register; "Send to txt2img" is bound through the host's
paste-parameters registry; long jobs go through ``wrap_gradio_gpu_call`` with the browser's task id and report
progress in ``shared.state``; Interrupt stops them; errors come back as one line in the status, never as a trace.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

import photos
from host_env import host_modules, load_script
from ti_studio.training.run_files import read_loss_log


@pytest.fixture
def host(monkeypatch, tmp_path):
    """The host double for this test only, with a settings object and the job state the UI uses."""
    with host_modules(monkeypatch):
        from modules import call_queue, infotext_utils, options, paths_internal, progress, script_callbacks, shared

        monkeypatch.setattr(paths_internal, "default_output_dir", str(tmp_path / "outputs"))
        load_script(monkeypatch)
        yield SimpleNamespace(shared=shared, script_callbacks=script_callbacks, infotext_utils=infotext_utils,
                              progress=progress, call_queue=call_queue, options=options, outputs=tmp_path / "outputs")


@pytest.fixture
def tab(host):
    """The host's order (ui.py): settings first (ui_settings.create_ui), then the tabs."""
    host.script_callbacks.ui_settings_callback()
    tabs = host.script_callbacks.ui_tabs_callback()
    assert [(title, elem_id) for _, title, elem_id in tabs] == [("TI Studio", "ti_studio")]
    return tabs[0][0]


def component(blocks, elem_id):
    return next(block for block in blocks.blocks.values() if getattr(block, "elem_id", None) == elem_id)


def handler(blocks, elem_id, trigger="click"):
    """The function gradio calls for ``trigger`` on the component ``elem_id``, with its dependency."""
    target = component(blocks, elem_id)
    for index, dependency in enumerate(blocks.dependencies):
        if target._id in dependency["targets"] and dependency["trigger"] == trigger and blocks.fns[index].fn:
            return blocks.fns[index].fn, dependency
    raise LookupError(f"no {trigger} handler on {elem_id}")


def test_settings_section_and_defaults(host, tab):
    opts = host.shared.opts
    labels = {key: info for key, info in opts.data_labels.items() if key.startswith("ti_studio_")}
    assert set(labels) == {"ti_studio_projects_root", "ti_studio_detector", "ti_studio_tagger_model",
                           "ti_studio_hub_mirror"}
    assert {info.section for info in labels.values()} == {("ti_studio", "TI Studio")}
    assert {info.category_id for info in labels.values()} == {"training"}
    from ti_studio.webui.settings import read_settings

    settings = read_settings()
    assert settings.projects_root == host.outputs / "ti-studio"
    opts.ti_studio_hub_mirror = " https://hf-mirror.com "
    assert read_settings().hub_mirror == "https://hf-mirror.com"


def test_send_to_txt2img_uses_the_host_paste_registry(host, tab):
    bindings = host.infotext_utils.registered_param_bindings
    assert len(bindings) == 1
    assert bindings[0].tabname == "txt2img"
    assert bindings[0].paste_button is component(tab, "ti_studio_compare_send")
    assert bindings[0].source_text_component is component(tab, "ti_studio_compare_infotext")
    # In WebUI the model is the host's loaded checkpoint: no model path box to fill.
    assert component(tab, "ti_studio_train_model_note") is not None
    assert not any(getattr(b, "elem_id", None) == "ti_studio_train_model" for b in tab.blocks.values())


def test_crop_runs_as_a_host_gpu_job_with_progress(host, tab, tmp_path, monkeypatch):
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    photos.astronaut().save(photos_dir / "a.jpg")
    photos.astronaut().resize((256, 256)).save(photos_dir / "b.jpg")
    crop, dependency = handler(tab, "ti_studio_crop_run")
    assert dependency["js"] == "tiStudioStartCrop"
    seen = []  # (job_no, job_count) as the job set them: the host resets both when the job ends

    def spy(state, name, value):
        if name == "job_no":
            seen.append((value, state.job_count))
        object.__setattr__(state, name, value)

    monkeypatch.setattr(type(host.shared.state), "__setattr__", spy)
    gallery, names, status = crop("task(crop1)", "anna", str(photos_dir), 256, "mtcnn", "head-and-shoulders",
                                  "largest", "skip")
    assert [Path(name).stem for name in names] == ["a", "b"], status
    assert [Path(path).name for path, _ in gallery] == names
    assert (host.outputs / "ti-studio" / "anna" / "dataset").is_dir()
    assert seen[-1] == (2, 2)  # shared.state counted both photos
    assert "task(crop1)" in host.progress.finished_tasks
    assert "2 crops from 2 photos" in status


def test_errors_are_one_line_in_the_status(tab, tmp_path):
    crop, _ = handler(tab, "ti_studio_crop_run")
    *_, status = crop("task(crop2)", "anna", str(tmp_path / "missing"), 512, "mtcnn", "head-and-shoulders",
                      "largest", "skip")
    assert "ti-studio-error" in status and "does not exist" in status and "Traceback" not in status
    *_, status = crop("task(crop3)", "bad/name", str(tmp_path), 512, "mtcnn", "head-and-shoulders", "largest", "skip")
    assert "project name" in status


def test_interrupt_sets_the_host_flag(host, tab):
    interrupt, _ = handler(tab, "ti_studio_train_interrupt")
    interrupt()
    assert host.shared.state.interrupted is True


@pytest.fixture
def project_dataset(host):
    """A project whose dataset already has crops with captions (what the Dataset and Tags stages leave)."""
    return photos.face_dataset(host.outputs / "ti-studio" / "anna" / "dataset")


def train_values(steps: int, **changes) -> list:
    """The Train tab's form values in ``FORM_FIELDS`` order."""
    from ti_studio.ui.train_tab import FORM_FIELDS

    values = dict(name="", init_text="woman", vectors=1, learning_rate="0.03", steps=steps, batch_size=1,
                  grad_accum=1, template="name_filewords", save_every=4, preview_every=0,
                  preview_prompt="a photo of [name]", shuffle_tags=True, tag_dropout=0.0, latent_sampling="once",
                  flip=False, norm_control="directional", size=64, output_format="safetensors", seed=3)
    values.update(changes)
    return [values[name] for name in FORM_FIELDS]


def test_training_runs_on_the_host_model_then_compare_registers_the_snapshots(host, tab, project_dataset,
                                                                               tiny_models):
    from host_sd_model import load_host_model

    train, dependency = handler(tab, "ti_studio_train_run")
    assert dependency["js"] == "tiStudioStartTrain"
    *_, status = train("task(t0)", "anna", "", "auto", *train_values(8))
    assert "No Stable Diffusion model is loaded" in status

    host.shared.sd_model = load_host_model(tiny_models["sd1"], "sd1")
    chart, previews, status = train("task(t1)", "anna", "", "auto", *train_values(8))
    assert "Finished at step 8" in status, status
    assert "<svg" in chart and "ti-studio-chart-loss" in chart
    assert "task(t1)" in host.progress.finished_tasks
    run = project_dataset.parent / "runs" / "anna"
    assert sorted(p.name for p in (run / "embeddings").iterdir()) == ["anna-4.safetensors", "anna-8.safetensors"]
    from modules.sd_hijack import model_hijack

    database = model_hijack.embedding_db
    assert "anna" not in database.word_embeddings  # the temporary training embedding is gone again

    # A second run under a name WebUI already knows is refused before anything loads.
    from modules.textual_inversion.textual_inversion import Embedding

    database.word_embeddings["anna"] = Embedding(None, "anna")
    *_, status = train("task(t2)", "anna", "", "auto", *train_values(8))
    assert "already the name of an embedding" in status
    del database.word_embeddings["anna"]

    # Compare: the run's snapshots are listed with their numbers, and "Send to txt2img" loads them into the host.
    show_runs, _ = handler(tab, "ti_studio_compare_refresh")
    run_choice, snapshots, _ = show_runs("anna")
    assert run_choice["value"] == "anna"
    assert [value for _, value in snapshots["choices"]] == ["4", "8"]
    log = read_loss_log(run / "loss.csv")
    fixed_losses = {row["step"]: row["fixed_loss"] for row in log if row["step"] and row["fixed_loss"] is not None}
    starred = [value for label, value in snapshots["choices"] if label.endswith(" ★")]
    assert starred == [str(min(fixed_losses, key=fixed_losses.get))]  # the lowest fixed-noise loss
    preset, _ = handler(tab, "ti_studio_compare_build")
    infotext, _ = preset("anna", "anna", ["4", "8"], "short hair, long hair", "a photo of [name], [y]", "", 1)
    assert "Script: X/Y/Z plot" in infotext and 'X Values: "anna-4,anna-8"' in infotext
    register, _ = handler(tab, "ti_studio_compare_send")
    status = register("anna", "anna", ["4", "8"])
    assert "2 snapshots loaded for txt2img" in status
    assert {"anna-4", "anna-8"} <= set(database.word_embeddings)


def test_interrupt_then_resume_through_the_host(host, tab, project_dataset, tiny_models):
    """Interrupt (the host's flag, as its own Interrupt button sets it) stops a run at a snapshot; Resume finishes it."""
    import threading
    import time

    from host_sd_model import load_host_model

    host.shared.sd_model = load_host_model(tiny_models["sd1"], "sd1")
    train, _ = handler(tab, "ti_studio_train_run")
    resume, _ = handler(tab, "ti_studio_train_resume")
    interrupt, _ = handler(tab, "ti_studio_train_interrupt")
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(
        result=train("task(long)", "anna", "", "auto", *train_values(400, save_every=400))))
    worker.start()
    deadline = time.monotonic() + 120
    while host.shared.state.job_no < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupt()
    worker.join(timeout=120)
    *_, status = outcome["result"]
    stopped_at = int(status.split("Interrupted at step ")[1].split(".")[0])
    assert 2 <= stopped_at < 400, status
    *_, status = resume("task(resume)", "anna", "", "auto", *train_values(stopped_at + 3, save_every=400))
    assert f"Finished at step {stopped_at + 3}" in status, status
