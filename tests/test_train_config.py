"""The run config: defaults, JSON round trip, and one clear line for every bad value."""

import dataclasses
import json

import pytest

from ti_studio import fileio
from ti_studio.errors import UserError
from ti_studio.training.config import TrainConfig, check_embedding_name
from ti_studio.training.schedule import TUTORIAL


def test_defaults():
    config = TrainConfig("fr3nchl4dy")
    assert (config.vectors, config.init_text, config.steps, config.batch_size, config.grad_accum) == (2, "", 3000, 1, 1)
    assert config.learning_rate == TUTORIAL.text
    assert config.size is None and config.template == "name_filewords"
    assert (config.save_every, config.preview_every, config.preview_prompt) == (50, 500, "a photo of [name]")
    assert config.shuffle_tags is True and config.tag_dropout == 0.0 and config.flip is False
    assert (config.latent_sampling, config.precision, config.output_format) == ("once", "auto", "safetensors")
    assert (config.clip_mode, config.clip_value) == ("norm", 1.0)
    assert (config.norm_control, config.norm_cap_factor) == ("directional", 3.0)
    assert config.adam_betas == (0.9, 0.999) and config.adam_eps == 1e-8 and config.weight_decay == 0.0
    assert config.effective_steps == 3000


def test_json_round_trip_through_a_file(tmp_path):
    config = TrainConfig("my face", vectors=4, init_text="woman", learning_rate="0.005:100, 0.001", steps=800,
                         batch_size=2, grad_accum=3, size=512, template="subject", preview_every=0,
                         tag_dropout=0.1, latent_sampling="random", flip=True, precision="bf16", clip_mode="off",
                         norm_control="directional", output_format="both", seed=42)
    fileio.write_json(tmp_path / "config.json", config.to_json())
    assert TrainConfig.load(tmp_path / "config.json") == config
    assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_the_schedule_string_is_kept_as_typed():
    config = TrainConfig("x", learning_rate="5e-3:10,1e-3")
    assert config.to_json()["learning_rate"] == "5e-3:10,1e-3"
    assert config.schedule.rate_at(11) == 0.001


def test_missing_keys_take_defaults_so_older_configs_load():
    assert TrainConfig.from_json({"name": "old", "steps": 100}) == TrainConfig("old", steps=100)


def test_unknown_keys_and_non_objects_are_refused(tmp_path):
    with pytest.raises(UserError, match="unknown setting.*learn_rate"):
        TrainConfig.from_json({"name": "x", "learn_rate": "0.1"})
    with pytest.raises(UserError, match="no embedding name"):
        TrainConfig.from_json({"steps": 10})
    with pytest.raises(UserError, match="expected a JSON object"):
        TrainConfig.from_json(["x"])
    with pytest.raises(UserError, match="no training config"):
        TrainConfig.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="not a readable training config"):
        TrainConfig.load(tmp_path / "bad.json")


def test_numbers_from_json_and_ui_boxes_are_normalised():
    config = TrainConfig.from_json({"name": "x", "steps": 1000.0, "clip_value": 2, "size": 768.0})
    assert (config.steps, config.clip_value, config.size) == (1000, 2.0, 768)
    assert type(config.steps) is int and type(config.clip_value) is float


def test_effective_steps_stop_at_the_schedules_last_step():
    assert TrainConfig("x", learning_rate="0.005:100", steps=1000).effective_steps == 100
    assert TrainConfig("x", learning_rate="0.005:100", steps=60).effective_steps == 60
    assert TrainConfig("x", learning_rate="0.005", steps=60).effective_steps == 60


def test_describe_is_one_line_with_the_essentials():
    text = TrainConfig("emb", learning_rate="0.005:100", steps=1000, size=512).describe()
    assert "\n" not in text
    for part in ("emb", "2 vectors", "100 steps", "0.005:100", "512px", "name_filewords", "norm directional"):
        assert part in text


def test_resume_key_ignores_length_and_outputs_but_not_the_math():
    base = TrainConfig("x")
    assert base.resume_key() == dataclasses.replace(base, steps=9000, save_every=10, preview_every=0,
                                                    output_format="pt").resume_key()
    for change in ({"vectors": 3}, {"seed": 1}, {"learning_rate": "0.001"}, {"norm_control": "off"}):
        assert dataclasses.replace(base, **change).resume_key() != base.resume_key()


# --- embedding names ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fr3nchl4dy", "my face", "emb-v1.5_final", "Zoë", "a" * 64, "console", "con-1"])
def test_good_names(name):
    assert check_embedding_name(name) == name
    assert TrainConfig(name).name == name


@pytest.mark.parametrize("name, message", [
    ("", "embedding name is empty"),
    ("../x", '"/" is not allowed'),
    ("a/b", '"/" is not allowed'),
    ("a\\b", '"\\" is not allowed'),
    ("con:", '":" is not allowed'),
    ('say"hi"', '""" is not allowed'),
    ("what?", '"?" is not allowed'),
    ("star*", '"*" is not allowed'),
    ("a<b>", '"<" is not allowed'),
    ("pipe|", '"|" is not allowed'),
    ("tab\there", "'\\t' is not allowed"),
    ("emoji😀", '"😀" is not allowed'),
    ("...", "must not start or end with a space or a dot"),
    (" ", "must not start or end with a space or a dot"),
    (".hidden", "must not start or end with a space or a dot"),
    ("trailing ", "must not start or end with a space or a dot"),
    ("a..b", 'must not contain ".."'),
    ("con", "device name on Windows"),
    ("LPT1.v2", "device name on Windows"),
    ("a" * 65, "65 characters; at most 64"),
])
def test_bad_names_are_refused_naming_the_problem(name, message):
    with pytest.raises(UserError) as caught:
        TrainConfig(name)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- other values -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"vectors": 0}, "vectors: 0 is out of range (from 1 to 75)"),
    ({"vectors": 76}, "vectors: 76 is out of range"),
    ({"vectors": 2.5}, "vectors: 2.5 is not a whole number"),
    ({"vectors": True}, "vectors: True is not a whole number"),
    ({"steps": 0}, "steps: 0 is out of range (at least 1)"),
    ({"batch_size": 0}, "batch_size: 0 is out of range"),
    ({"grad_accum": -1}, "grad_accum: -1 is out of range"),
    ({"save_every": 0}, "save_every: 0 is out of range"),
    ({"preview_every": -5}, "preview_every: -5 is out of range"),
    ({"size": 500}, "size: 500 px is not a multiple of 8"),
    ({"size": 32}, "size: 32 px is not a multiple of 8 between 64 and 2048"),
    ({"size": 4096}, "size: 4096 px"),
    ({"size": "512"}, "size: '512' is not a whole number"),
    ({"learning_rate": "0.02:abc"}, 'learning-rate schedule: "0.02:abc" — the step must be a whole number'),
    ({"learning_rate": ""}, "learning-rate schedule is empty"),
    ({"template": " "}, "template: give a template name"),
    ({"preview_prompt": ""}, "preview_prompt is empty"),
    ({"preview_steps": 0}, "preview_steps: 0 is out of range"),
    ({"preview_cfg_scale": 0.5}, "preview_cfg_scale: 0.5 is out of range"),
    ({"preview_seed": -1}, "preview_seed: -1 is out of range"),
    ({"tag_dropout": 1.0}, "tag_dropout: 1.0 is not a probability"),
    ({"tag_dropout": -0.1}, "tag_dropout: -0.1 is not a probability"),
    ({"tag_dropout": float("nan")}, "tag_dropout: nan is not a number"),
    ({"shuffle_tags": "yes"}, "shuffle_tags: 'yes' is not true or false"),
    ({"latent_sampling": "mean"}, "latent_sampling: 'mean' is not one of once, deterministic, random"),
    ({"precision": "fp8"}, "precision: 'fp8' is not one of auto, fp32, fp16, bf16"),
    ({"clip_mode": "disabled"}, "clip_mode: 'disabled' is not one of off, value, norm"),
    ({"clip_value": 0}, "clip_value: 0.0 must be above 0"),
    ({"norm_control": "clamp"}, "norm_control: 'clamp' is not one of off, cap, directional"),
    ({"norm_cap_factor": -1}, "norm_cap_factor: -1.0 must be above 0"),
    ({"norm_cap_factor": float("inf")}, "norm_cap_factor: inf is not a number"),
    ({"adam_beta1": 1.0}, "adam_beta1: 1.0 must be from 0 up to"),
    ({"adam_eps": 0}, "adam_eps: 0.0 must be above 0"),
    ({"weight_decay": -0.1}, "weight_decay: -0.1 is out of range"),
    ({"output_format": "ckpt"}, "output_format: 'ckpt' is not one of safetensors, pt, both"),
    ({"seed": 2**32}, "seed: 4294967296 is out of range"),
    ({"init_text": None}, "init_text: None is not text"),
])
def test_bad_values_are_refused_in_one_line_naming_the_setting(changes, message):
    with pytest.raises(UserError) as caught:
        TrainConfig("x", **changes)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_previews_off_allow_an_empty_prompt():
    assert TrainConfig("x", preview_every=0, preview_prompt="").preview_prompt == ""


def test_the_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig("x").steps = 5  # type: ignore[misc]
