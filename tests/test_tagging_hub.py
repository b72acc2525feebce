"""Model download through the real huggingface_hub client, against a fake Hub on 127.0.0.1 named by HF_ENDPOINT."""

from __future__ import annotations

import pytest
from PIL import Image

from fake_hub import FakeHub
from tagger_model import build_model, write_tags_csv
from ti_studio.errors import UserError
from ti_studio.tagging.models import REGISTRY
from ti_studio.tagging.tagger import TagConfig, tag_folder, unload_taggers

WHITE_CAPTION = ("hatsune miku, artoria pendragon \\(fate\\), white background, 1girl, solo, simple background, "
                 "long hair, ^_^, star \\(symbol\\), smile")


@pytest.fixture(autouse=True)
def _fresh_sessions():
    yield
    unload_taggers()


@pytest.fixture
def model_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("built")
    model = build_model(folder / "model.onnx", side=64, batch=1, input_name="input_1:0",
                        output_name="predictions_sigmoid")
    labels = write_tags_csv(folder / "selected_tags.csv")
    return model.read_bytes(), labels.read_bytes()


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    Image.new("RGB", (120, 90), (255, 255, 255)).save(folder / "white.png")
    return folder


def file_requests(hub: FakeHub) -> list:
    """Requests for repository files (the hub module also probes the endpoint's root before downloading)."""
    return [r for r in hub.requests if r.repo_id]


def hub_files(repo_id: str, model_bytes) -> dict:
    model, labels = model_bytes
    return {(repo_id, "model.onnx"): model, (repo_id, "selected_tags.csv"): labels}


@pytest.mark.parametrize("name", ["vit-v2", "swinv2-v3"])  # a tag revision and a commit revision
def test_registry_name_downloads_once_then_works_offline(name, model_bytes, photos, tmp_path, monkeypatch):
    spec = REGISTRY[name]
    cache = tmp_path / "hf-cache"
    config = TagConfig(model=name, device="cpu", cache_dir=str(cache))
    with FakeHub(hub_files(spec.repo_id, model_bytes)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        run = tag_folder(photos, config)
        assert {(r.repo_id, r.revision) for r in file_requests(hub)} == {(spec.repo_id, spec.revision)}
        assert [r.filename for r in file_requests(hub) if r.method == "GET"] == ["selected_tags.csv", "model.onnx"]
        asked = len(hub.requests)
        unload_taggers()
        tag_folder(photos, config)
        assert len(hub.requests) == asked  # files in the cache are not asked for again
    assert run.model == f"{name} ({spec.repo_id}@{spec.revision})"
    assert (photos / "white.txt").read_text("utf-8") == WHITE_CAPTION
    cached = {p.name for p in cache.rglob("*") if p.is_file() and "snapshots" in p.parts}
    assert cached == {"model.onnx", "selected_tags.csv"}

    # The hub is gone (its port closed): loading again still finds both files in the cache, without retries.
    unload_taggers()
    (photos / "white.txt").unlink()
    assert tag_folder(photos, config).summary()["tagged"] == 1
    assert (photos / "white.txt").read_text("utf-8") == WHITE_CAPTION


def test_any_repo_id_with_a_revision(model_bytes, photos, tmp_path, monkeypatch):
    with FakeHub(hub_files("someone/my-tagger", model_bytes)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        run = tag_folder(photos, TagConfig(model="someone/my-tagger@v1.1", device="cpu", cache_dir=str(tmp_path)))
        assert {r.revision for r in file_requests(hub)} == {"v1.1"}
    assert run.model == "someone/my-tagger@v1.1" and len(run.tagged) == 1


def test_a_repo_without_the_files_is_a_user_error(photos, tmp_path, monkeypatch):
    with FakeHub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with pytest.raises(UserError, match=r"could not download someone/empty/selected_tags.csv@main from http"):
            tag_folder(photos, TagConfig(model="someone/empty", device="cpu", cache_dir=str(tmp_path)))
        assert [r.filename for r in file_requests(hub)] == ["selected_tags.csv"]  # the big file is never asked for
