"""The WebUI's HTTP routes for the dataset stages, registered the way the host registers them.

``scripts/ti_studio.py`` is imported by path as the host does (importlib, extension root on ``sys.path``) against
a double of the host's v1.10.1 modules (``tests/host_double``); its ``app_started`` callback then gets a real
FastAPI app, and every route runs the real core: MTCNN on a real photo, the tiny ONNX tagger, the caption store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

import photos
from host_env import IMPORT_SCRIPT_AS_HOST, ROOT, host_modules, load_script
from tagger_model import build_model_folder
from ti_studio.tagging.tagger import unload_taggers
from ti_studio.webui import CALLBACK_NAME, routes

API = "/ti-studio/v1"


@pytest.fixture
def host(monkeypatch):
    """The host double importable for this test only; its ``modules*`` leave ``sys.modules`` afterwards."""
    with host_modules(monkeypatch):
        from modules import call_queue, script_callbacks, shared

        monkeypatch.setattr(shared.cmd_opts, "api", True)
        yield SimpleNamespace(shared=shared, script_callbacks=script_callbacks, call_queue=call_queue)


def start_app(host, monkeypatch) -> FastAPI:
    """Load the script and run its ``app_started`` callbacks on a fresh app, as webui.py L119 does."""
    load_script(monkeypatch)
    app = FastAPI()
    for callback in host.script_callbacks.callback_map["callbacks_app_started"]:
        callback.callback(None, app)
    return app


@pytest.fixture
def client(host, monkeypatch) -> TestClient:
    return TestClient(start_app(host, monkeypatch))


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    folder = build_model_folder(tmp_path_factory.mktemp("wd-tiny"))
    yield folder
    unload_taggers()


@pytest.fixture
def photo_dir(tmp_path):
    return photos.face_and_no_face(tmp_path / "photos")


# --- registration -----------------------------------------------------------------------------------------------


def test_the_script_registers_one_app_started_callback(host, monkeypatch):
    load_script(monkeypatch)
    [callback] = host.script_callbacks.callback_map["callbacks_app_started"]
    assert callback.name.endswith(f"/app_started/{CALLBACK_NAME}")
    assert Path(callback.script) == ROOT / "ti_studio" / "webui" / "__init__.py"


@pytest.mark.parametrize("api, nowebui, served", [(False, False, False), (True, False, True), (False, True, True)])
def test_routes_exist_only_where_the_host_serves_its_api(host, monkeypatch, api, nowebui, served):
    monkeypatch.setattr(host.shared.cmd_opts, "api", api)
    monkeypatch.setattr(host.shared.cmd_opts, "nowebui", nowebui)
    paths = {route.path for route in start_app(host, monkeypatch).routes}
    assert (f"{API}/crop" in paths) is served


def test_importing_the_script_loads_nothing_heavy(tmp_path):
    """The host imports every extension's scripts at startup: ours must not pull in a framework or a runtime."""
    code = IMPORT_SCRIPT_AS_HOST + (
        "import json\n"
        "from modules import script_callbacks\n"
        "heavy = ('gradio', 'torch', 'onnxruntime', 'diffusers', 'ti_studio.webui.routes')\n"
        "print(json.dumps({'loaded': [name for name in heavy if name in sys.modules],\n"
        "                  'callbacks': len(script_callbacks.callback_map['callbacks_app_started'])}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {"loaded": [], "callbacks": 1}


# --- crop and recrop --------------------------------------------------------------------------------------------


def test_crop_a_photo_folder(client, photo_dir, tmp_path):
    out = tmp_path / "dataset"
    answer = client.post(f"{API}/crop", json={"src": str(photo_dir), "out": str(out), "size": 256,
                                              "detector": "mtcnn"})
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert summary["detector"] == "mtcnn" and summary["photos"] == 2 and summary["written"] == 1
    assert summary["outputs"] == ["astronaut.png"]
    assert [item["file"] for item in summary["skipped"]] == ["coffee.jpg"]
    with Image.open(out / "astronaut.png") as crop:
        assert crop.size == (256, 256)


def test_recrop_with_a_new_box_and_size(client, photo_dir, tmp_path):
    out = tmp_path / "dataset"
    assert client.post(f"{API}/crop", json={"src": str(photo_dir), "out": str(out), "detector": "mtcnn"}).is_success
    box = {"left": 100.0, "top": 20.0, "side": 300.0}
    answer = client.post(f"{API}/recrop", json={"dataset": str(out), "name": "astronaut.png", "box": box,
                                                "size": 128})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["box"] == box and record["size"] == 128 and record["adjusted"] is True
    with Image.open(out / "astronaut.png") as crop:
        assert crop.size == (128, 128)


# --- tagging ----------------------------------------------------------------------------------------------------


def test_tag_a_folder_under_the_gpu_lock(client, host, tagger_dir, tmp_path, monkeypatch):
    folder = tmp_path / "dataset"
    folder.mkdir()
    Image.new("RGB", (300, 300), (255, 255, 255)).save(folder / "white.png")
    Image.new("RGB", (300, 300), (0, 0, 255)).save(folder / "blue.png")
    lock_held = []
    real_tag_folder = routes.tag_folder

    def tag_folder(*args, **kwargs):
        free = host.call_queue.queue_lock.acquire(blocking=False)
        if free:
            host.call_queue.queue_lock.release()
        lock_held.append(not free)
        return real_tag_folder(*args, **kwargs)

    monkeypatch.setattr(routes, "tag_folder", tag_folder)
    answer = client.post(f"{API}/tag", json={"folder": str(folder), "model": str(tagger_dir), "batch": 2,
                                             "exclude": ["hatsune_miku", "long hair"], "mode": "overwrite"})
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert summary["tagged"] == 2 and summary["failed"] == [] and summary["provider"] == "CPUExecutionProvider"
    assert lock_held == [True]
    assert (folder / "blue.txt").read_text(encoding="utf-8") == "blue background, simple background"
    white = (folder / "white.txt").read_text(encoding="utf-8").split(", ")
    assert "white background" in white and "hatsune miku" not in white and "long hair" not in white


# --- captions ---------------------------------------------------------------------------------------------------


def test_caption_stats_edit_and_undo(client, tmp_path):
    originals = {"a": "1girl, smile, watermark", "b": "1girl, long_hair", "c": "smile"}
    dataset = photos.captioned_dataset(tmp_path / "dataset", originals)

    stats = client.get(f"{API}/captions/stats", params={"dataset": str(dataset)})
    assert stats.status_code == 200, stats.text
    assert stats.json() == {"images": 3, "tags": [{"tag": "1girl", "count": 2}, {"tag": "smile", "count": 2},
                                                  {"tag": "long_hair", "count": 1},
                                                  {"tag": "watermark", "count": 1}]}

    edit = client.post(f"{API}/captions/edit", json={
        "dataset": str(dataset), "remove": ["watermark"], "replace": {"long_hair": "long hair"},
        "sort": "alpha", "prepend": ["sks"],
    })
    assert edit.status_code == 200, edit.text
    assert edit.json()["changed"] == 3 and Path(edit.json()["backup"]).is_dir()
    assert (dataset / "a.txt").read_text(encoding="utf-8") == "sks, 1girl, smile"
    assert (dataset / "b.txt").read_text(encoding="utf-8") == "sks, 1girl, long hair"

    undo = client.post(f"{API}/captions/undo", json={"dataset": str(dataset)})
    assert undo.status_code == 200, undo.text
    assert undo.json()["changed"] == 3 and undo.json()["skipped"] == []
    assert {stem: (dataset / f"{stem}.txt").read_text(encoding="utf-8") for stem in originals} == originals


def test_caption_undo_reports_captions_edited_since(client, tmp_path):
    """A caption changed by hand after the edit is left alone by undo, named relative to the dataset, and its old
    text stays in the kept backup."""
    dataset = photos.captioned_dataset(tmp_path / "dataset", {"a": "1girl, smile", "b": "1girl, watermark"})
    edit = client.post(f"{API}/captions/edit", json={"dataset": str(dataset), "prepend": ["sks"]})
    assert edit.status_code == 200 and edit.json()["changed"] == 2, edit.text
    (dataset / "b.txt").write_text("sks, 1girl, edited by hand", encoding="utf-8")

    undo = client.post(f"{API}/captions/undo", json={"dataset": str(dataset)})
    assert undo.status_code == 200, undo.text
    assert undo.json()["changed"] == 1 and undo.json()["skipped"] == ["b.txt"]
    assert Path(undo.json()["kept_backup"]).is_dir()
    assert (dataset / "a.txt").read_text(encoding="utf-8") == "1girl, smile"
    assert (dataset / "b.txt").read_text(encoding="utf-8") == "sks, 1girl, edited by hand"


# --- errors and auth --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, route, body, message", [
    ("post", "crop", {"src": "{tmp}/nowhere", "out": "{tmp}/out"}, "folder not found: {tmp}/nowhere"),
    ("post", "crop", {"src": "{photos}", "out": "{tmp}/out", "size": 100},
     "crop size must be a multiple of 8 between 64 and 4096, got 100"),
    ("post", "recrop", {"dataset": "{tmp}", "name": "x.png"},
     "x.png: no crop parameters saved (was it made by TI Studio's crop?)"),
    ("post", "tag", {"folder": "{tmp}/nowhere"}, "folder not found: {tmp}/nowhere"),
    ("get", "captions/stats", None, "no images in {tmp}"),
    ("post", "captions/edit", {"dataset": "{captions}"}, "no edit given"),
    ("post", "captions/undo", {"dataset": "{captions}"}, "nothing to undo"),
])
def test_user_errors_are_400_with_the_one_line_message(client, tmp_path, photo_dir, method, route, body, message):
    captions = photos.captioned_dataset(tmp_path / "captions", {"a": "smile"})
    places = {"tmp": tmp_path, "photos": photo_dir, "captions": captions}
    if body is None:
        answer = client.get(f"{API}/{route}", params={"dataset": str(tmp_path)})
    else:
        answer = getattr(client, method)(f"{API}/{route}", json={key: value.format(**places) if isinstance(
            value, str) else value for key, value in body.items()})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"detail": message.format(**places)}


def test_a_body_outside_the_schema_is_422(client, tmp_path):
    answer = client.post(f"{API}/crop", json={"src": str(tmp_path), "out": str(tmp_path), "detector": "opencv"})
    assert answer.status_code == 422


def test_other_exceptions_propagate_to_the_host(client, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "crop_folder", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        client.post(f"{API}/crop", json={"src": str(tmp_path), "out": str(tmp_path / "out")})


def test_api_auth_protects_the_routes(host, monkeypatch, tmp_path):
    monkeypatch.setattr(host.shared.cmd_opts, "api_auth", "alice:s3cret,bob:pa:ss")
    client = TestClient(start_app(host, monkeypatch))
    dataset = photos.captioned_dataset(tmp_path / "dataset", {"a": "smile"})
    url, params = f"{API}/captions/stats", {"dataset": str(dataset)}

    missing = client.get(url, params=params)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Basic"
    for wrong in [("alice", "wrong"), ("carol", "s3cret"), ("alice", "s3cret\u00e9")]:
        assert client.get(url, params=params, auth=wrong).status_code == 401
    for right in [("alice", "s3cret"), ("bob", "pa:ss")]:
        answer = client.get(url, params=params, auth=right)
        assert answer.status_code == 200 and answer.json()["images"] == 1
