"""TI Studio inside the real AUTOMATIC1111 WebUI v1.10.1, over HTTP: optional, and skipped unless it is set up.

Everything else tests the WebUI adapter against a stand-in of the host's modules; this tier starts the real host
headless on the CPU with this working tree as an extension and checks the tab, the settings, the dataset routes,
training on the host's loaded model (previews through the host's txt2img), the comparison export and the host's own
X/Y/Z plot over the exported snapshots.

Nothing here builds or fetches the host. Point these variables at a prepared installation:

- ``SD_WEBUI_DIR``: a v1.10.1 checkout whose ``repositories/`` are filled (stable-diffusion-stability-ai,
  generative-models, k-diffusion, stable-diffusion-webui-assets) and whose Python has its requirements installed.
- ``SD_WEBUI_CKPT``: a checkpoint to load (a tiny random SD1 model is enough; its ``<name>.yaml`` beside it, with
  ``cond_stage_config.params.version`` naming a local CLIP tokenizer folder, keeps the host off the network).
- ``SD_WEBUI_PYTHON`` (optional): the host's interpreter; default ``SD_WEBUI_DIR/venv/bin/python`` if present, else
  this interpreter.

The host runs with a fresh ``--data-dir`` (so its settings, outputs and embeddings folder are the test's own), in which
``extensions/ti-studio`` links to this working tree: the code under test is this checkout's, not a copy in the host.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from browser import REPO_ROOT, free_port, running_server

WEBUI = os.environ.get("SD_WEBUI_DIR", "")
CKPT = os.environ.get("SD_WEBUI_CKPT", "")

pytestmark = pytest.mark.skipif(
    not (WEBUI and CKPT), reason="set SD_WEBUI_DIR (a prepared A1111 v1.10.1 checkout) and SD_WEBUI_CKPT to run")

STARTUP_TIMEOUT = 300.0  # seconds until the host answers on its port (imports alone take ~15 s on 2 cores)
REQUEST_TIMEOUT = 600.0
XYZ_ARGS_V1_10_1 = 18  # the x/y/z plot script's argument count on v1.10.1 (dev and Forge differ)


def _host_python() -> str:
    if os.environ.get("SD_WEBUI_PYTHON"):
        return os.environ["SD_WEBUI_PYTHON"]
    venv = Path(WEBUI) / "venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The running WebUI: (base URL without the trailing slash, Server, data dir)."""
    requests = pytest.importorskip("requests")
    webui = Path(WEBUI)
    if not (webui / "launch.py").is_file():
        pytest.fail(f"SD_WEBUI_DIR={WEBUI} has no launch.py")
    if not Path(CKPT).is_file():
        pytest.fail(f"SD_WEBUI_CKPT={CKPT} is not a file")
    data = tmp_path_factory.mktemp("webui-data")
    (data / "extensions").mkdir()
    (data / "extensions" / "ti-studio").symlink_to(REPO_ROOT, target_is_directory=True)
    port = free_port()
    command = [
        _host_python(), "launch.py", "--skip-prepare-environment", "--skip-torch-cuda-test",
        "--skip-python-version-check", "--skip-version-check", "--no-half", "--use-cpu", "all", "--api",
        "--port", str(port), "--ckpt", CKPT, "--no-download-sd-model", "--disable-nan-check",
        "--data-dir", str(data),
    ]
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COMMANDLINE_ARGS": "", "PYTHONPATH": ""}
    with running_server(command, port=port, env=env, cwd=webui, timeout=STARTUP_TIMEOUT) as server:
        base = server.url.rstrip("/")
        # The port opens before the API routes are mounted (app_started runs after the launch): wait for ours.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                if requests.get(f"{base}/sdapi/v1/options", timeout=10).ok and \
                        requests.get(f"{base}/ti-studio/v1/captions/stats", params={"dataset": str(data)},
                                     timeout=10).status_code != 404:
                    break
            except requests.RequestException:
                pass
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the WebUI did not come up; its output:\n{server.output()}")
            time.sleep(1)
        yield base, server, data


def _post(base: str, path: str, body: dict):
    import requests

    response = requests.post(base + path, json=body, timeout=REQUEST_TIMEOUT)
    assert response.ok, f"POST {path} -> {response.status_code}: {response.text[:2000]}"
    return response.json()


def _get(base: str, path: str):
    import requests

    response = requests.get(base + path, timeout=REQUEST_TIMEOUT)
    assert response.ok, f"GET {path} -> {response.status_code}: {response.text[:2000]}"
    return response.json()


def test_startup_registers_tab_settings_and_no_extension_error(host):
    base, server, _ = host
    config = _get(base, "/config")
    by_id = {c["props"].get("elem_id"): c for c in config["components"] if c.get("props", {}).get("elem_id")}
    assert "tab_ti_studio" in by_id, "the TI Studio tab is missing from the host's UI"
    assert by_id["tab_ti_studio"]["props"].get("label") == "TI Studio"
    for elem_id in ("ti_studio_project", "ti_studio_crop_run", "ti_studio_tag_run", "ti_studio_train_run",
                    "ti_studio_train_chart"):
        assert elem_id in by_id, f"{elem_id} is missing from the TI Studio tab"
    # The host saves and restores UI defaults keyed by "<tab>/<label>" (ui_loadsave.py): two components of one tab
    # with the same label share one saved value, so the compare seed (default 1) used to get the train seed's 0.
    assert by_id["ti_studio_compare_seed"]["props"]["value"] == 1
    assert by_id["ti_studio_train_seed"]["props"]["value"] == 0
    options = _get(base, "/sdapi/v1/options")
    assert "ti_studio_projects_root" in options
    # On each page load the host re-sends every setting as gr.update(value=..., **component_args); one bad
    # component_args key of ours used to fail that request (HTTP 500) for all settings.
    setting = next(c["id"] for c in config["components"]
                   if c.get("props", {}).get("elem_id") == "setting_ti_studio_detector")
    load = next(i for i, d in enumerate(config["dependencies"])
                if d.get("trigger") == "load" and setting in d["outputs"])
    values = _post(base, "/run/predict", {"fn_index": load, "data": [], "session_hash": "ti-studio-test"})
    assert len(values["data"]) == len(config["dependencies"][load]["outputs"])
    log = server.output()
    assert "Error loading script" not in log or "ti_studio" not in log, log
    # No traceback may pass through our code (the host's own git-remote warning for a clone without origin may).
    assert not re.search(r'File "[^"]*(ti_studio|ti-studio|scripts/ti_studio)[^"]*"', log), log


@pytest.fixture(scope="module")
def dataset(host, tmp_path_factory):
    """Two photos cropped to 64 px through the host's route, then tagged by the tiny ONNX tagger."""
    from photos import astronaut, camera
    from tagger_model import build_model_folder

    base, _, _ = host
    root = tmp_path_factory.mktemp("real-host-dataset")
    photos = root / "photos"
    photos.mkdir()
    astronaut().save(photos / "astronaut.png")
    camera().convert("RGB").save(photos / "camera.png")
    out = root / "dataset"
    crop = _post(base, "/ti-studio/v1/crop", {"src": str(photos), "out": str(out), "size": 64})
    tagger = build_model_folder(root / "tagger")
    tag = _post(base, "/ti-studio/v1/tag", {"folder": str(out), "model": str(tagger)})
    return out, crop, tag


def test_crop_and_tag_routes(dataset):
    from PIL import Image

    out, crop, tag = dataset
    assert crop["written"] == 2 and crop["photos"] == 2 and not crop["skipped"], crop
    assert sorted(crop["outputs"]) == ["astronaut.png", "camera.png"]
    for name in crop["outputs"]:
        with Image.open(out / name) as image:
            assert image.size == (64, 64)
    assert tag["tagged"] == 2 and not tag["failed"], tag
    captions = {path.stem: path.read_text(encoding="utf-8") for path in out.glob("*.txt")}
    assert set(captions) == {"astronaut", "camera"}
    assert all("white background" in caption for caption in captions.values()), captions


@pytest.fixture(scope="module")
def trained(host, dataset, tmp_path_factory):
    base, _, _ = host
    run = tmp_path_factory.mktemp("real-host-run") / "run"
    started = _post(base, "/ti-studio/v1/train", {
        "dataset": str(dataset[0]), "run_dir": str(run), "name": "tihost", "steps": 10, "save_every": 5,
        "preview_every": 5, "size": 64, "learning_rate": "0.03", "vectors": 1,
    })
    deadline = time.monotonic() + REQUEST_TIMEOUT
    while True:
        status = _get(base, f"/ti-studio/v1/train/{started['id']}")
        if status["state"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"training did not finish: {status}"
        time.sleep(0.5)
    return run, status


def test_training_runs_on_the_hosts_model(trained):
    from safetensors.torch import load_file

    run, status = trained
    assert status["state"] == "finished", status
    assert status["step"] == status["total_steps"] == 10
    assert status["loss"] is not None and math.isfinite(status["loss"])
    assert [Path(p).name for p in status["snapshots"]] == ["tihost-5.safetensors", "tihost-10.safetensors"]
    rows = (run / "loss.csv").read_text(encoding="utf-8").splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert len(losses) == 11 and all(math.isfinite(loss) for loss in losses), rows
    # The vector really moved (the tiny model's embedding gets a gradient through the host's prompt pipeline).
    first, last = (load_file(p)["emb_params"] for p in status["snapshots"])
    assert first.shape == last.shape and first.shape[0] == 1
    assert (first - last).abs().max().item() > 1e-4
    # Previews come from the host's txt2img.
    previews = sorted(p.name for p in (run / "previews").glob("*.png"))
    assert previews == ["tihost-10.png", "tihost-5.png"], previews


def test_compare_export_then_hosts_xyz_plot(host, trained):
    from PIL import Image

    base, _, data = host
    run, _ = trained
    export = data / "embeddings" / "ti-studio-test"
    compared = _post(base, "/ti-studio/v1/compare", {"run_dir": str(run), "export_to": str(export)})
    names = [snapshot["name"] for snapshot in compared["snapshots"]]
    assert names == ["tihost-05", "tihost-10"], compared
    assert sorted(Path(p).name for p in compared["exported"]) == ["tihost-05.safetensors", "tihost-10.safetensors"]

    _post(base, "/sdapi/v1/refresh-embeddings", {})
    embeddings = _get(base, "/sdapi/v1/embeddings")
    assert set(names) <= set(embeddings["loaded"]), embeddings

    infotext = compared["infotext"]
    prompt = infotext.split("\n")[0]
    x_values = re.search(r'X Values: "([^"]*)"', infotext).group(1)
    y_values = re.search(r'Y Values: "([^"]*)"', infotext).group(1)
    assert "X Type: Prompt S/R" in infotext and names[0] in prompt
    xyz = next(s for s in _get(base, "/sdapi/v1/script-info") if s["name"] == "x/y/z plot" and not s["is_img2img"])
    assert len(xyz["args"]) == XYZ_ARGS_V1_10_1, [a["label"] for a in xyz["args"]]
    prompt_sr = xyz["args"][0]["choices"].index("Prompt S/R")
    args = [prompt_sr, x_values, [], prompt_sr, y_values, [], 0, "", [],
            True, False, False, False, False, False, False, 0, False]
    result = _post(base, "/sdapi/v1/txt2img", {
        "prompt": prompt, "steps": 2, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler a",
        "script_name": "x/y/z plot", "script_args": args,
    })
    assert len(result["images"]) == 1, "expected the grid alone"
    with Image.open(io.BytesIO(base64.b64decode(result["images"][0]))) as grid:
        columns, rows = len(x_values.split(",")), len(y_values.split(","))
        assert grid.width >= columns * 64 and grid.height >= rows * 64, grid.size
    import json

    all_prompts = json.loads(result["info"])["all_prompts"]
    assert len(all_prompts) == columns * rows
    assert {name for name in names if any(name in p for p in all_prompts)} == set(names)
    shutil.rmtree(export, ignore_errors=True)
