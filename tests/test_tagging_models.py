"""Model registry, model references (name / repo id / folder) and selected_tags.csv parsing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tagger_model import TAGS, build_model_folder, write_tags_csv
from ti_studio.errors import UserError
from ti_studio.hub import HubFile
from ti_studio.tagging import models
from ti_studio.tagging.labels import load_labels
from ti_studio.tagging.models import DEFAULT_MODEL, REGISTRY, resolve_model


def test_registry_lists_the_six_models_pinned():
    assert set(REGISTRY) == {"vit-v2", "convnext-v2", "swinv2-v2", "swinv2-v3", "vit-v3", "eva02-large-v3"}
    assert REGISTRY[DEFAULT_MODEL].repo_id == "SmilingWolf/wd-v1-4-vit-tagger-v2"
    for spec in REGISTRY.values():
        assert spec.repo_id.startswith("SmilingWolf/")
        assert spec.revision == "v2.0" or re.fullmatch(r"[0-9a-f]{40}", spec.revision), spec
        assert 0 < spec.pr_threshold < 1


@pytest.fixture
def downloads(monkeypatch, tmp_path):
    """Record what would be downloaded; hand back paths in a fake cache."""
    calls: list[HubFile] = []

    def fake_download(file: HubFile, cache_dir=None, endpoint=None):
        calls.append(file)
        return tmp_path / file.repo_id / file.revision / file.filename

    monkeypatch.setattr(models, "download", fake_download)
    return calls


@pytest.mark.parametrize(
    ("ref", "repo_id", "revision"),
    [
        ("swinv2-v3", "SmilingWolf/wd-swinv2-tagger-v3", REGISTRY["swinv2-v3"].revision),
        ("SmilingWolf/wd-v1-4-vit-tagger-v2", "SmilingWolf/wd-v1-4-vit-tagger-v2", "v2.0"),  # registry repo: pinned
        ("someone/my-tagger", "someone/my-tagger", "main"),
        ("someone/my-tagger@v1.1", "someone/my-tagger", "v1.1"),
    ],
)
def test_names_and_repo_ids_download_labels_first(downloads, ref, repo_id, revision):
    files = resolve_model(ref)
    assert downloads == [HubFile(repo_id, "selected_tags.csv", revision), HubFile(repo_id, "model.onnx", revision)]
    assert files.model.name == "model.onnx" and files.labels.name == "selected_tags.csv"
    assert repo_id in files.source and revision in files.source


def test_a_local_folder_wins_over_a_repo_id_of_the_same_spelling(downloads, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_model_folder(tmp_path / "someone" / "my-tagger")
    files = resolve_model("someone/my-tagger")
    assert downloads == [] and files.model == tmp_path / "someone" / "my-tagger" / "model.onnx"


def test_folder_missing_a_file(tmp_path):
    (tmp_path / "selected_tags.csv").write_text("tag_id,name,category,count\n")
    with pytest.raises(UserError, match="has no model.onnx"):
        resolve_model(tmp_path)


@pytest.mark.parametrize("ref", ["no-such-model", "a/b/c", "./not/there/"])
def test_unknown_references(ref, downloads):
    with pytest.raises(UserError, match="unknown tagger model"):
        resolve_model(ref)
    assert downloads == []


def test_labels_by_category(tmp_path):
    labels = load_labels(write_tags_csv(tmp_path / "selected_tags.csv"))
    assert labels.names == tuple(name for name, _ in TAGS)
    np.testing.assert_array_equal(labels.rating, [0, 1, 2, 3])
    np.testing.assert_array_equal(labels.general, range(4, 14))
    np.testing.assert_array_equal(labels.character, [14, 15, 16])


def test_labels_with_a_bom_and_other_categories(tmp_path):
    path = tmp_path / "selected_tags.csv"
    path.write_text("\ufefftag_id,name,category,count\n1,a,0,5\n2,artist_x,1,3\n3,b,4,2\n", "utf-8")
    labels = load_labels(path)
    assert len(labels) == 3 and list(labels.general) == [0] and list(labels.character) == [2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tag_id,label,count\n1,a,5\n", "missing column name, category"),
        ("tag_id,name,category,count\n", "no tags listed"),
        ("tag_id,name,category,count\n1,a,general,5\n", "whole numbers"),
    ],
)
def test_bad_label_files(tmp_path, content, message):
    path = tmp_path / "selected_tags.csv"
    path.write_text(content, "utf-8")
    with pytest.raises(UserError, match=message):
        load_labels(path)
