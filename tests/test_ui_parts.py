"""The tab's pieces that need no browser: the loss chart, the standalone progress state and route, projects."""

import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ti_studio.errors import UserError
from ti_studio.project import open_project, project_names
from ti_studio.ui.job_state import JobState
from ti_studio.ui.loss_chart import MAX_POINTS, chart_svg


def _points(svg: str, css_class: str) -> list[tuple[float, float]]:
    match = re.search(rf"class='{css_class}' points='([^']*)'", svg)
    assert match, f"no {css_class} line"
    return [tuple(map(float, pair.split(","))) for pair in match.group(1).split()]


def test_chart_draws_smoothed_loss_and_norm_with_fixed_loss_markers():
    rows = [{"step": s, "loss": 1.0 / (1 + s), "norm": 0.1 + s / 100, "fixed_loss": 0.5 if s == 5 else None}
            for s in range(11)]
    svg = chart_svg(rows)
    loss = _points(svg, "ti-studio-chart-loss")
    norm = _points(svg, "ti-studio-chart-norm")
    assert len(loss) == len(norm) == 11
    assert loss[0][1] < loss[-1][1]  # falling loss: SVG y grows downwards
    assert norm[0][1] > norm[-1][1]  # rising norm
    assert svg.count("<circle") == 1 and "fixed-noise loss 0.5000" in svg


def test_chart_keeps_a_constant_norm_flat_and_thins_long_runs():
    rows = [{"step": s, "loss": 0.2 + 0.01 * (s % 7), "norm": 0.4 + 1e-7 * (s % 2), "fixed_loss": None}
            for s in range(3000)]
    svg = chart_svg(rows)
    norm_ys = {round(y) for _, y in _points(svg, "ti-studio-chart-norm")}
    assert len(norm_ys) == 1  # rounding noise is not magnified into a zig-zag
    assert len(_points(svg, "ti-studio-chart-loss")) <= MAX_POINTS + 1


def test_chart_waits_for_two_finite_rows():
    assert "<svg" not in chart_svg([{"step": 1, "loss": 0.3, "norm": 0.1}])
    assert "<svg" not in chart_svg([{"step": 1, "loss": float("nan"), "norm": 0.1},
                                    {"step": 2, "loss": 0.3, "norm": 0.1}])


def test_job_state_reports_like_the_host_progress_route():
    state = JobState()
    state.queue("task(a)")
    assert state.report("task(a)")["queued"] is True
    state.begin("task(a)")
    state.start(10, "loading\n")
    state.advance(5, "half\n", Image.new("RGB", (8, 8)))
    report = state.report("task(a)", preview_id=-1)
    assert report["active"] and report["progress"] == 0.5 and report["textinfo"] == "half\n"
    assert report["live_preview"].startswith("data:image/jpeg;base64,")
    assert state.report("task(a)", preview_id=report["id_live_preview"])["live_preview"] is None
    state.interrupt()
    assert state.interrupted()
    state.end("task(a)")
    assert state.report("task(a)")["completed"] is True
    state.begin("task(b)")
    assert not state.interrupted()  # a new job starts uninterrupted


def test_app_serves_the_tab_with_scripts_and_the_progress_route(tmp_path):
    from ti_studio.ui.app import build_blocks, create_app
    from ti_studio.ui.standalone_host import StandaloneHost
    from ti_studio.ui.host import HostSettings

    host = StandaloneHost(HostSettings(projects_root=tmp_path), model="unused")
    with TestClient(create_app(build_blocks(host), host)) as client:
        page = client.get("/").text
        assert "window.tiStudioStartTrain" in page and "tiStudioCropShow" in page
        host.jobs.begin("task(x)")
        host.jobs.start(4, "step\n")
        host.jobs.advance(1)
        answer = client.post("/internal/progress", json={"id_task": "task(x)"}).json()
        assert answer["active"] and answer["progress"] == 0.25
        assert client.get("/ti-studio/v1/captions/stats", params={"dataset": str(tmp_path / "none")}).status_code == 400


def test_projects_are_named_like_embeddings(tmp_path):
    project = open_project(tmp_path, " anna ")
    assert project.root == tmp_path / "anna" and project.dataset == tmp_path / "anna" / "dataset"
    assert project.source() == ""
    project.remember_source(tmp_path / "photos")
    assert project.source() == str((tmp_path / "photos").resolve())
    assert project_names(tmp_path) == ["anna"]
    for bad in ("", "a/b", "..", "con"):
        with pytest.raises(UserError, match="project name|give the project"):
            open_project(tmp_path, bad)


def test_messages_are_one_sentence_for_what_users_meet(caplog):
    import errno

    import gradio as gr

    import torch

    from ti_studio.ui.messages import describe, guarded

    assert describe(UserError("the photos folder x does not exist")) == "the photos folder x does not exist"
    assert describe(OSError(errno.ENOSPC, "No space left on device", "/data/x.png")).startswith("The disk is full")
    assert describe(torch.cuda.OutOfMemoryError("CUDA out of memory")).startswith("Out of memory")
    with caplog.at_level("ERROR", logger="ti_studio"):
        text = describe(KeyError("boom"))
    assert text.startswith("Unexpected error (KeyError") and "console" in text
    assert "KeyError: 'boom'" in caplog.text  # the details go to the console, not the page

    @guarded(3)
    def failing(value):
        raise UserError(f"bad {value}")

    first, second, status = failing("input")
    assert first == second == gr.update() and "bad input" in status and "ti-studio-error" in status


def test_the_app_frees_the_model_when_a_job_releases_it(tmp_path, tiny_models):
    """The app loads a model per job and drops it at the end: released, its networks are gone at once, although the
    job's caller still holds the backend object."""
    import weakref

    from ti_studio.ui.host import HostSettings
    from ti_studio.ui.standalone_host import StandaloneHost

    host = StandaloneHost(HostSettings(projects_root=tmp_path), model=str(tiny_models["sd1"]), device="cpu")
    backend = host.load_backend("", "auto")
    unet = weakref.ref(backend._parts.unet)
    host.release_backend(backend)
    assert unet() is None


def test_the_live_chart_is_redrawn_at_most_every_quarter_second_or_at_a_snapshot():
    from ti_studio.ui.train_tab import CHART_REDRAW_S, LiveChart

    clock = [100.0]
    chart = LiveChart(clock=lambda: clock[0])
    rows = [{"step": 1, "loss": 0.5, "norm": 0.3}, {"step": 2, "loss": 0.4, "norm": 0.31}]
    first = chart.svg(rows)
    assert "<svg" in first and "step 2" in first
    rows.append({"step": 3, "loss": 0.3, "norm": 0.32})
    clock[0] += CHART_REDRAW_S / 2
    assert chart.svg(rows) == first  # too soon: the drawing the browser has not fetched yet still stands
    assert chart.svg(rows, now=True) != first  # a snapshot is drawn at once
    rows.append({"step": 4, "loss": 0.2, "norm": 0.33})
    clock[0] += CHART_REDRAW_S
    assert "step 4" in chart.svg(rows)
