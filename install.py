"""TI Studio's installer. The WebUI runs it as ``python install.py`` in its venv on every start and after "Install
from URL"; run by hand (``python install.py``) it installs into the running interpreter's environment.

It gathers the facts (installed distributions, torch's CUDA), lets :mod:`ti_studio.install_plan` decide, and runs the
pip calls: through the host's ``launch.run_pip`` inside the WebUI (so ``--skip-install`` and ``INDEX_URL`` are
honoured), through ``python -m pip`` otherwise. A failed install prints a warning and what will not work; it never
stops the WebUI from starting or the extension from loading.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

# ``python install.py`` puts this folder first on sys.path, so our package is found before anything of the host's.
from ti_studio import install_plan
from ti_studio.install_plan import PipStep

#: Runs pip with these arguments (after ``-m pip``) and a one-line description; raises when pip fails.
Pip = Callable[[list[str], str], None]

_PREFIX = "TI Studio:"
_OUTPUT_TAIL_LINES = 15


def main() -> None:
    launch = _host_launch()
    installed = installed_distributions()
    flavours = install_plan.ort_flavours(installed)
    if len(flavours) > 1:
        print(f"{_PREFIX} WARNING: {' and '.join(flavours)} are installed together; they overwrite each other's files, "
              "so onnxruntime may be broken or CPU-only. Uninstall all of them, then install one.")
    cuda = cudnn = None
    if not flavours:  # importing torch costs seconds: only when the choice depends on it
        cuda, cudnn = torch_cuda()
    steps = install_plan.plan(installed, cuda, cudnn)
    if not steps:
        return
    if launch is not None and getattr(getattr(launch, "args", None), "skip_install", False):
        wanted = ", ".join(req for step in steps for req in step.requirements)
        print(f"{_PREFIX} --skip-install is set, so not installing {wanted}; install them yourself if needed")
        return
    pip = _host_pip(launch) if launch is not None else subprocess_pip
    with tempfile.TemporaryDirectory(prefix="ti-studio-pip-") as tmp:
        for step in steps:
            run_step(step, pip, Path(tmp) / "constraints.txt")


def installed_distributions() -> dict[str, str]:
    """Name -> version of every distribution on ``sys.path``; the first one wins, as it does for ``import``."""
    importlib.invalidate_caches()
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = dist.metadata.get("Name"), dist.version
        if name and version:
            found.setdefault(install_plan.canonical_name(name), version)
    return found


def torch_cuda() -> tuple[int | None, int | None]:
    """(CUDA major, cuDNN major) of torch when it can use a CUDA GPU, else (None, None).

    This runs in the installer's own process, where torch is not imported yet, so it imports it here.
    """
    try:
        import torch

        if not torch.version.cuda or not torch.cuda.is_available():
            return None, None
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return install_plan.cuda_major(torch.version.cuda), install_plan.cudnn_major(cudnn)
    except Exception as exc:  # a missing or broken torch must not stop the installer: the CPU build always works
        print(f"{_PREFIX} could not ask torch about CUDA ({exc}); choosing the CPU build of onnxruntime")
        return None, None


def run_step(step: PipStep, pip: Pip, constraints_path: Path) -> None:
    """Run one step, then its fallback if it fails; warn instead of raising, so the WebUI always starts."""
    attempt: PipStep | None = step
    while attempt is not None:
        constraints_path.write_text(
            install_plan.constraints_text(installed_distributions(), exclude=attempt.names), encoding="utf-8")
        try:
            pip(attempt.args(str(constraints_path)), attempt.description)
        except Exception as exc:
            _warn(attempt, exc)
            attempt = attempt.fallback
            continue
        return


def subprocess_pip(args: list[str], description: str) -> None:
    """``python -m pip`` for runs outside the WebUI; ``--prefer-binary`` as the host's run_pip adds it."""
    print(f"Installing {description}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--prefer-binary"],
                            capture_output=True, text=True, errors="replace")
    if result.returncode != 0:
        raise RuntimeError(f"pip exited with code {result.returncode}\n{result.stdout}{result.stderr}")


def shell_join(args: list[str]) -> str:
    """Quote for the shell that ``run_pip`` hands its command string to: ``>=``/``<`` are redirections there."""
    if os.name != "nt":
        return shlex.join(args)
    # cmd.exe: inside double quotes < > | & ^ and spaces are literal; our arguments never contain '"' or '%'.
    return " ".join(arg if re.fullmatch(r"[\w.:\\/=+-]+", arg) else f'"{arg}"' for arg in args)


def _host_launch():
    """The WebUI's ``launch`` module when we run inside the host, else None."""
    try:
        import launch
    except Exception:  # not in the WebUI (or its launcher failed to import): fall back to plain pip
        return None
    return launch if callable(getattr(launch, "run_pip", None)) else None


def _host_pip(launch) -> Pip:
    def run(args: list[str], description: str) -> None:
        launch.run_pip(shell_join(args), description)

    return run


def _warn(step: PipStep, exc: Exception) -> None:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    print(f"{_PREFIX} WARNING: could not install {' '.join(step.requirements)}.")
    for line in lines[-_OUTPUT_TAIL_LINES:]:
        print(f"    {line}")
    if step.fallback is not None:
        print(f"{_PREFIX} trying {' '.join(step.fallback.requirements)} instead.")
    else:
        manual = shell_join([sys.executable, "-m", "pip", *step.args()])
        print(f"{_PREFIX} without it, {step.needed_for} will not work. To install it yourself: {manual}")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # the WebUI must start and the extension must load even if the installer breaks
        print(f"{_PREFIX} WARNING: the installer failed ({type(exc).__name__}: {exc}); "
              "TI Studio will load, but features needing missing packages will report what is missing")
