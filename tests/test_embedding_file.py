"""Embedding files: round trips, the WebUI's loader (through a double of its v1.10.1 safety gate), diffusers'
``load_textual_inversion`` on a tiny real CLIP text encoder, refusal of bad files, and atomic writes."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import safetensors.torch
import torch
from diffusers import DiffusionPipeline
from diffusers.loaders import TextualInversionLoaderMixin
from transformers import CLIPTextConfig, CLIPTextModel

from clip_tokenizer import VOCAB_SIZE, build_clip_tokenizer
from host_safe_load import HostRefused, check_pt, host_load_embedding, host_torch_load
from ti_studio.errors import UserError
from ti_studio.training.backend import ModelInfo
from ti_studio.training.embedding_file import load_embedding, save_embedding

SD1 = ModelInfo("sd1", "v1-5-pruned-emaonly", "6ce0161689")
SD2 = ModelInfo("sd2", "v2-1_768-ema-pruned", "ad2a33c361")
SDXL = ModelInfo("sdxl", "sd_xl_base_1.0", "31e35c80fc")
#: family -> (model, {key: shape}): the real widths of each family.
FAMILIES = {
    "sd1": (SD1, {"emb_params": (2, 768)}),
    "sd2": (SD2, {"emb_params": (1, 1024)}),
    "sdxl": (SDXL, {"clip_l": (2, 768), "clip_g": (2, 1280)}),
}
#: What the host compares with the loaded model's width (textual_inversion.py L152-155, L296-298).
HOST_WIDTH = {"sd1": 768, "sd2": 1024, "sdxl": 2048}
SUFFIXES = (".safetensors", ".pt")
TRAINER_METADATA = {"learning_rate": "0.005", "norm_control": "0.4", "images": "12"}


def random_vectors(shapes: dict[str, tuple[int, int]], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) * 0.4 for key, shape in shapes.items()}


def save(path: Path, family: str, name: str = "alice", step: int = 500) -> dict[str, torch.Tensor]:
    model, shapes = FAMILIES[family]
    vectors = random_vectors(shapes)
    save_embedding(path, vectors, name=name, step=step, model=model, metadata=TRAINER_METADATA)
    return vectors


def assert_same_vectors(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert loaded[key].dtype == torch.float32
        assert torch.equal(loaded[key], tensor), key


# --- round trips -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip(tmp_path, family, suffix):
    vectors = save(tmp_path / f"alice-500{suffix}", family)
    loaded = load_embedding(tmp_path / f"alice-500{suffix}")
    assert_same_vectors(loaded.vectors, vectors)
    if suffix == ".pt" and family == "sdxl":  # the host's SDXL dict can hold only the two tensors
        assert (loaded.name, loaded.step, loaded.metadata) == ("alice-500", None, {})
    elif suffix == ".pt":
        model = FAMILIES[family][0]
        assert (loaded.name, loaded.step) == ("alice", 500)
        assert loaded.metadata == {"sd_checkpoint": model.shorthash, "sd_checkpoint_name": model.name}
    else:
        assert (loaded.name, loaded.step) == ("alice", 500)
        assert loaded.metadata["vectors"] == str(vectors[next(iter(vectors))].shape[0])
        assert loaded.metadata["model_family"] == family
        assert TRAINER_METADATA.items() <= loaded.metadata.items()


def test_safetensors_layout_and_metadata(tmp_path):
    path = tmp_path / "alice-500.safetensors"
    vectors = save(path, "sd1")
    assert safetensors.torch.load_file(path).keys() == {"emb_params"}
    with safetensors.safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {
            "name": "alice", "step": "500", "vectors": "2", "model_family": "sd1",
            "sd_checkpoint": SD1.shorthash, "sd_checkpoint_name": SD1.name, **TRAINER_METADATA,
        }
    assert torch.equal(safetensors.torch.load_file(path)["emb_params"], vectors["emb_params"])


def test_saves_plain_contiguous_cpu_float32_copies(tmp_path):
    """A Parameter, a half-precision tensor and a transposed view all come out as plain compact float32 tensors."""
    big = torch.randn(768, 4)
    vectors = {"emb_params": torch.nn.Parameter(big[:, :2].t())}  # a non-contiguous view into a bigger storage
    save_embedding(tmp_path / "a.pt", vectors, name="a", step=1, model=None)
    save_embedding(tmp_path / "b.safetensors", {"emb_params": vectors["emb_params"].half()}, "b", 1, None)
    data = torch.load(tmp_path / "a.pt", weights_only=True)
    saved = data["string_to_param"]["*"]
    assert type(saved) is torch.Tensor and not saved.requires_grad
    assert saved.is_contiguous() and saved.untyped_storage().nbytes() == 2 * 768 * 4  # not the 768x4 storage
    assert torch.equal(saved, big[:, :2].t())
    assert data["sd_checkpoint"] is None and data["sd_checkpoint_name"] is None
    assert load_embedding(tmp_path / "b.safetensors").vectors["emb_params"].dtype == torch.float32


def test_model_without_hash(tmp_path):
    path = tmp_path / "a.safetensors"
    save_embedding(path, random_vectors({"emb_params": (1, 768)}), "a", 3, ModelInfo("sd1", "my-model", None))
    metadata = load_embedding(path).metadata
    assert metadata["sd_checkpoint_name"] == "my-model" and "sd_checkpoint" not in metadata


# --- the WebUI -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("family", FAMILIES)
def test_host_loads_our_files(tmp_path, family, suffix):
    path = tmp_path / f"alice-500{suffix}"
    vectors = save(path, family)
    host = host_load_embedding(path)
    assert host.shape == HOST_WIDTH[family]
    assert host.vectors == next(iter(vectors.values())).shape[0]
    if family == "sdxl":
        assert_same_vectors(host.vec, vectors)
    else:
        assert torch.equal(host.vec, vectors["emb_params"])
    if suffix == ".pt" and family != "sdxl":
        model = FAMILIES[family][0]
        assert (host.step, host.sd_checkpoint, host.sd_checkpoint_name) == (500, model.shorthash, model.name)


@pytest.mark.parametrize("family", FAMILIES)
def test_pt_zip_holds_only_records_the_host_allows(tmp_path, family):
    path = tmp_path / "alice-500.pt"
    save(path, family)
    records = sorted(name.partition("/")[2] for name in zipfile.ZipFile(path).namelist())
    tensors = ["data/0", "data/1"] if family == "sdxl" else ["data/0"]
    assert records == [".data/serialization_id", "byteorder", "data.pkl", *tensors, "version"]
    check_pt(path)


def test_plain_torch_save_fails_the_host_gate(tmp_path):
    """Proves the double is strict: what this torch's own ``torch.save`` writes is refused, as in the host."""
    path = tmp_path / "plain.pt"
    torch.save({"string_to_param": {"*": torch.zeros(1, 768)}, "name": "plain"}, path)
    with pytest.raises(HostRefused, match=r"bad file inside .*\.format_version"):
        check_pt(path)


def test_host_gate_refuses_forbidden_globals(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"name": "x", "payload": os.getcwd}, path, _use_new_zipfile_serialization=False)  # legacy branch
    with pytest.raises(HostRefused, match="forbidden"):
        check_pt(path)


def test_inside_the_webui_our_pt_loads_and_a_refused_one_is_explained(tmp_path, monkeypatch):
    """There ``torch.load`` is the host's gate, which returns None for a file it refuses."""
    vectors = save(tmp_path / "ours.pt", "sd1")
    torch.save({"string_to_param": {"*": torch.zeros(1, 768)}, "name": "plain"}, tmp_path / "plain.pt")
    monkeypatch.setattr(torch, "load", host_torch_load)
    assert_same_vectors(load_embedding(tmp_path / "ours.pt").vectors, vectors)
    with pytest.raises(UserError, match=r"plain\.pt: refused by the WebUI's \.pt safety check"):
        load_embedding(tmp_path / "plain.pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_pt_loads_with_weights_only_and_mmap(tmp_path, family):
    path = tmp_path / "alice-500.pt"
    vectors = save(path, family)
    for mmap in (False, True):
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        found = data if family == "sdxl" else {"emb_params": data["string_to_param"]["*"]}
        assert_same_vectors(found, vectors)
    if family != "sdxl":
        assert data["string_to_token"] == {"*": 265} and (data["name"], data["step"]) == ("alice", 500)


# --- diffusers -------------------------------------------------------------------------------------------------------

class TinyTextPipeline(DiffusionPipeline, TextualInversionLoaderMixin):
    """Just the parts ``load_textual_inversion`` touches: a real pipeline object holding a tokenizer and encoder."""

    def __init__(self, tokenizer, text_encoder):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder)


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clip-tokenizer")


def tiny_text_encoder(width: int) -> CLIPTextModel:
    torch.manual_seed(0)
    return CLIPTextModel(CLIPTextConfig(vocab_size=VOCAB_SIZE, hidden_size=width, intermediate_size=2 * width,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77))


def token_rows(tokenizer, text_encoder, token: str, count: int) -> torch.Tensor:
    """The embedding rows diffusers gave ``token`` (and ``token_1``... for multi-vector files)."""
    names = [token] + [f"{token}_{i}" for i in range(1, count)]
    ids = tokenizer.convert_tokens_to_ids(names)
    assert tokenizer.unk_token_id not in ids
    return text_encoder.get_input_embeddings().weight.detach()[ids]


def test_clip_tokenizer_is_the_real_one(clip_folder):
    tokenizer = build_clip_tokenizer(clip_folder)
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_diffusers_loads_our_sd_files(tmp_path, clip_folder, suffix):
    # diffusers refuses a token that is already in CLIP's vocabulary ("alice" is), so the name is made up.
    path = tmp_path / f"ti-alice-500{suffix}"
    vectors = random_vectors({"emb_params": (3, 32)})
    save_embedding(path, vectors, name="ti-alice", step=500, model=SD1)
    pipe = TinyTextPipeline(build_clip_tokenizer(clip_folder), tiny_text_encoder(32))
    # A one-key .safetensors names its token after the key ("emb_params"), so callers pass token=; the .pt carries
    # the name, which diffusers takes as the token.
    token = "ti-bob" if suffix == ".safetensors" else "ti-alice"
    pipe.load_textual_inversion(str(path), token="ti-bob" if suffix == ".safetensors" else None)
    assert torch.equal(token_rows(pipe.tokenizer, pipe.text_encoder, token, 3), vectors["emb_params"])
    assert pipe.maybe_convert_prompt(f"a photo of {token}", pipe.tokenizer) == f"a photo of {token} {token}_1 {token}_2"


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_diffusers_loads_our_sdxl_files_the_documented_way(tmp_path, clip_folder, suffix):
    """``load_textual_inversion``'s docstring: load the file, then each of clip_l/clip_g into its own encoder."""
    path = tmp_path / f"alice-500{suffix}"
    vectors = random_vectors({"clip_l": (2, 32), "clip_g": (2, 48)})
    save_embedding(path, vectors, name="alice", step=500, model=SDXL)
    state = (safetensors.torch.load_file(path) if suffix == ".safetensors"
             else torch.load(path, map_location="cpu", weights_only=True))
    pipe = TinyTextPipeline(build_clip_tokenizer(clip_folder), tiny_text_encoder(32))
    tokenizer_2, text_encoder_2 = build_clip_tokenizer(clip_folder), tiny_text_encoder(48)
    pipe.load_textual_inversion(state["clip_l"], token="ti-alice")
    pipe.load_textual_inversion(state["clip_g"], token="ti-alice", tokenizer=tokenizer_2, text_encoder=text_encoder_2)
    assert torch.equal(token_rows(pipe.tokenizer, pipe.text_encoder, "ti-alice", 2), vectors["clip_l"])
    assert torch.equal(token_rows(tokenizer_2, text_encoder_2, "ti-alice", 2), vectors["clip_g"])


# --- other tools' files ----------------------------------------------------------------------------------------------

def test_reads_a_diffusers_concept_safetensors(tmp_path):
    vector = torch.randn(768)
    safetensors.torch.save_file({"<cat-toy>": vector}, tmp_path / "learned_embeds.safetensors")
    loaded = load_embedding(tmp_path / "learned_embeds.safetensors")
    assert loaded.name == "<cat-toy>" and loaded.step is None
    assert torch.equal(loaded.vectors["emb_params"], vector[None])


def test_reads_a_diffusers_bin_and_a_bare_tensor(tmp_path):
    vector = torch.randn(1, 1024)
    torch.save({"<sd2-thing>": vector}, tmp_path / "learned_embeds.bin")
    torch.save(vector, tmp_path / "bare.pt")
    assert load_embedding(tmp_path / "learned_embeds.bin").name == "<sd2-thing>"
    bare = load_embedding(tmp_path / "bare.pt")
    assert bare.name == "bare" and torch.equal(bare.vectors["emb_params"], vector)


def test_reads_a_host_written_pt(tmp_path):
    """The host's ``Embedding.save`` pickles the live training tensor (requires_grad) with torch.save."""
    vec = torch.randn(4, 768, requires_grad=True)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "bob", "step": 1999,
                "sd_checkpoint": None, "sd_checkpoint_name": None}, tmp_path / "bob-2000.pt")
    loaded = load_embedding(tmp_path / "bob-2000.pt")
    assert (loaded.name, loaded.step, loaded.metadata) == ("bob", 1999, {})
    assert torch.equal(loaded.vectors["emb_params"], vec.detach()) and not loaded.vectors["emb_params"].requires_grad


def test_stored_name_wins_over_the_file_name(tmp_path):
    save(tmp_path / "renamed.safetensors", "sd1", name="alice")
    assert load_embedding(tmp_path / "renamed.safetensors").name == "alice"


# --- bad files -------------------------------------------------------------------------------------------------------

class Payload:
    """Pickles as a call to ``os.getcwd``: harmless, but exactly the kind of global weights_only must refuse."""

    def __reduce__(self):
        return os.getcwd, ()


BAD_FILES = {
    "garbage.pt": b"not a pickle at all",
    "garbage.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}",
    "empty.bin": b"",
}


@pytest.mark.parametrize("filename", BAD_FILES)
def test_corrupt_files_are_user_errors_naming_the_file(tmp_path, filename):
    (tmp_path / filename).write_bytes(BAD_FILES[filename])
    with pytest.raises(UserError, match=filename.replace(".", r"\.")):
        load_embedding(tmp_path / filename)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_truncated_files_are_user_errors(tmp_path, suffix):
    path = tmp_path / f"alice-500{suffix}"
    save(path, "sd1")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="not a readable"):
        load_embedding(path)


def test_pickled_code_is_refused_not_run(tmp_path):
    torch.save({"emb_params": torch.zeros(1, 768), "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match=r"evil\.pt: not a readable embedding file"):
        load_embedding(tmp_path / "evil.pt")


@pytest.mark.parametrize("data, reason", [
    ({"a": torch.zeros(1, 768), "b": torch.zeros(1, 768)}, "an embedding has one tensor"),
    ({"string_to_param": {"*": torch.zeros(1, 768), "+": torch.zeros(1, 768)}}, "exactly one tensor"),
    ({"emb_params": torch.zeros(2, 3, 768)}, "not \\[n_vectors, width\\]"),
    ({"emb_params": torch.zeros(1, 768, dtype=torch.long)}, "not a floating-point tensor"),
    ({"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(1, 1280)}, "different vector counts"),
    ({"emb_params": torch.tensor([[0.0, float("nan")]])}, "NaN or infinite"),
    ({"emb_params": torch.tensor([[0.0, float("inf")]])}, "NaN or infinite"),
    (["a list"], "holds a list"),
])
def test_bad_layouts_are_user_errors(tmp_path, data, reason):
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=reason):
        load_embedding(tmp_path / "bad.pt")


def test_nan_in_a_safetensors_file_is_refused(tmp_path):
    safetensors.torch.save_file({"clip_l": torch.zeros(1, 768), "clip_g": torch.full((1, 1280), float("nan"))},
                                tmp_path / "nan.safetensors")
    with pytest.raises(UserError, match=r"nan\.safetensors: the embedding \(clip_g\) holds NaN"):
        load_embedding(tmp_path / "nan.safetensors")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_embedding(tmp_path / "missing.pt")
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(UserError, match="not an embedding file"):
        load_embedding(tmp_path / "model.ckpt")


# --- saving: refusals and atomicity ----------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", [float("nan"), float("inf")])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_non_finite_vectors_are_not_saved(tmp_path, suffix, vector):
    vectors = {"clip_l": torch.zeros(1, 768), "clip_g": torch.zeros(1, 1280)}
    vectors["clip_g"][0, 5] = vector
    with pytest.raises(UserError, match=r"\(clip_g\) hold NaN or infinite values"):
        save_embedding(tmp_path / f"x{suffix}", vectors, "x", 10, SDXL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", " alice", "alice ", "ali\nce", "tab\there"])
def test_bad_names_are_user_errors(tmp_path, name):
    with pytest.raises(UserError, match="bad embedding name"):
        save_embedding(tmp_path / "x.safetensors", random_vectors({"emb_params": (1, 768)}), name, 1, SD1)


def test_bad_paths_are_user_errors(tmp_path):
    vectors = random_vectors({"emb_params": (1, 768)})
    with pytest.raises(UserError, match=r"end in \.safetensors or \.pt"):
        save_embedding(tmp_path / "x.ckpt", vectors, "x", 1, SD1)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(UserError, match="it is a folder"):
        save_embedding(tmp_path / "folder.pt", vectors, "x", 1, SD1)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot save .*file/x.pt"):
        save_embedding(tmp_path / "file" / "x.pt", vectors, "x", 1, SD1)


@pytest.mark.parametrize("vectors, model, message", [
    ({"clip_l": torch.zeros(1, 768)}, SDXL, "need the key"),
    ({"emb_params": torch.zeros(1, 768)}, SDXL, "a sdxl embedding cannot"),
    ({"clip_l": torch.zeros(1, 768), "clip_g": torch.zeros(1, 1280)}, SD1, "a sd1 embedding cannot"),
    ({"emb_params": torch.zeros(768)}, SD1, "must be \\[n_vectors, width\\]"),
    ({"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(1, 1280)}, None, "same number of vectors"),
])
def test_wrong_vectors_are_caller_bugs(tmp_path, vectors, model, message):
    with pytest.raises(ValueError, match=message):
        save_embedding(tmp_path / "x.safetensors", vectors, "x", 1, model)


def test_metadata_cannot_overwrite_our_fields(tmp_path):
    with pytest.raises(ValueError, match="'step'"):
        save_embedding(tmp_path / "x.safetensors", random_vectors({"emb_params": (1, 768)}), "x", 1, SD1,
                       metadata={"step": "7"})
    assert list(tmp_path.iterdir()) == []


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way may swallow it."""


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_write_killed_midway_leaves_the_old_file(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"alice{suffix}"
    save(path, "sd1", step=100)
    before = path.read_bytes()

    if suffix == ".safetensors":
        def half_then_die(tensors, filename, metadata=None):
            Path(filename).write_bytes(safetensors.torch.save(tensors, metadata)[:100])
            raise Killed
        monkeypatch.setattr(safetensors.torch, "save_file", half_then_die)
    else:
        real_writestr = zipfile.ZipFile.writestr

        def die_after_first_record(self, *args, **kwargs):  # the data.pkl record is on disk, the tensors are not
            real_writestr(self, *args, **kwargs)
            raise Killed
        monkeypatch.setattr(zipfile.ZipFile, "writestr", die_after_first_record)

    with pytest.raises(Killed):
        save(path, "sd1", step=200)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    monkeypatch.undo()
    assert load_embedding(path).step == 100



def test_a_record_unknown_to_the_host_fails_loudly_instead_of_being_dropped(tmp_path, monkeypatch):
    """Should a future torch write a record we do not know, saving .pt stops rather than guess what it may drop."""
    real_save = torch.save

    def save_with_a_new_record(obj, handle):
        real_save(obj, handle)
        with zipfile.ZipFile(handle, "a") as archive:
            archive.writestr("archive/.future_record", "1")
    monkeypatch.setattr(torch, "save", save_with_a_new_record)
    with pytest.raises(RuntimeError, match=r"archive/\.future_record"):
        save(tmp_path / "alice.pt", "sd1")
    assert list(tmp_path.iterdir()) == []
