"""onnxruntime sessions that report which execution provider really runs them.

onnxruntime silently falls back to the CPU when CUDA libraries fail to load (the tagger extensions' most common
complaint: "my GPU is not used"). We ask for the best provider installed and then compare with what the session
actually got, so the UI and the CLI can say "running on CPU" instead of leaving users guessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Accelerated providers in order of preference; the CPU provider is always appended last.
_PREFERRED = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")


@dataclass
class OnnxModel:
    """A loaded session plus what the user should know about where it runs."""

    session: "object"
    providers: list[str]
    notice: str | None

    @property
    def device(self) -> str:
        return "CPU" if self.providers[:1] == ["CPUExecutionProvider"] else self.providers[0].removesuffix(
            "ExecutionProvider"
        )


def load_model(path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> OnnxModel:
    """Open an ONNX file on ``device`` ("auto": the best installed accelerator, else "cpu")."""
    import onnxruntime as ort

    wanted = requested_providers(device, ort.get_available_providers())
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # hide onnxruntime's own warnings; we report the provider ourselves
    session = ort.InferenceSession(os.fspath(path), sess_options=options, providers=wanted)
    got = list(session.get_providers())
    notice = None
    if wanted[0] != "CPUExecutionProvider" and got[0] != wanted[0]:
        notice = (
            f"{wanted[0]} is installed but could not start (CUDA/cuDNN libraries missing or mismatched); "
            f"running on {got[0].removesuffix('ExecutionProvider')}"
        )
    return OnnxModel(session=session, providers=got, notice=notice)


def requested_providers(device: str, available: list[str]) -> list[str]:
    """Providers to ask for: ``auto`` = every installed accelerator in preference order, then CPU."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    accelerated = [p for p in _PREFERRED if p in available]
    return accelerated + ["CPUExecutionProvider"]
