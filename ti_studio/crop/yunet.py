"""YuNet face detector (OpenCV Zoo, MIT): the 2023mar ONNX model run in onnxruntime, decoded by us in numpy.

Why not ``cv2.FaceDetectorYN``: OpenCV is not a dependency we can count on in the host (and current wheels want
numpy 2), while onnxruntime is already there for the tagger. The model only outputs raw heads, so the decoding that
FaceDetectorYN does is reproduced here, following OpenCV's ``modules/objdetect/src/face_detect.cpp``:

- input ``input`` ``[1, 3, 640, 640]``: BGR, float 0-255, no normalisation; the image is letterboxed (long side
  scaled to 640, padded with black at the bottom/right), so boxes map back with one scale factor per axis;
- for each stride s in 8, 16, 32 the heads ``cls_s``, ``obj_s`` ``[1, n, 1]``, ``bbox_s`` ``[1, n, 4]``,
  ``kps_s`` ``[1, n, 10]`` hold one prediction per grid cell, row-major (``n = (640 / s)**2``);
- score = sqrt(clamp01(cls) * clamp01(obj)); centre = (column + dx, row + dy) * s; size = exp(dw, dh) * s;
  landmark k = (column + kx, row + ky) * s (no half-cell offset, exactly as OpenCV decodes it);
- greedy NMS at IoU 0.3 over the ``top_k`` best (OpenCV rounds boxes to integers for its NMS; we keep floats).

Landmark order is the subject's right eye, left eye, nose, right and left mouth corners, i.e. image-left eye first:
already the order :class:`~ti_studio.crop.faces.Face` uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

from ..errors import UserError
from ..hub import HubFile, download
from ..onnx_session import load_model
from .detectors import faces_from_arrays, non_max_suppression
from .faces import Face

#: The weights, pinned to a commit of the Hub repository (the revision many projects pin, with the file's sha256
#: 8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4 and 232,589 bytes).
MODEL_FILE = HubFile(
    repo_id="opencv/face_detection_yunet",
    filename="face_detection_yunet_2023mar.onnx",
    revision="3cc26e7f1014a5ee5d74a42acee58bafc9d0a310",
)
STRIDES = (8, 16, 32)
OUTPUT_NAMES = tuple(f"{head}_{stride}" for head in ("cls", "obj", "bbox", "kps") for stride in STRIDES)
#: Side of the square input when the model does not fix it (OpenCV's dynamic-size exports).
DEFAULT_INPUT_SIZE = 640


@dataclass(frozen=True)
class YuNetConfig:
    """OpenCV's FaceDetectorYN defaults (the opencv_zoo demo uses the same)."""

    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    #: Most candidates considered by NMS, best first.
    top_k: int = 5000


class YuNetDetector:
    """Finds faces with YuNet; ``detect`` returns them best first, in the given image's pixels.

    ``model_path``: a local ``.onnx`` file; ``None`` takes :data:`MODEL_FILE` from the Hugging Face cache,
    downloading it once (``cache_dir``, ``endpoint``: see :func:`ti_studio.hub.download`). Raises
    :class:`UserError` when the file cannot be had or is not a YuNet model.
    """

    name = "yunet"

    def __init__(self, model_path: str | os.PathLike | None = None, *, config: YuNetConfig = YuNetConfig(),
                 cache_dir: str | os.PathLike | None = None, endpoint: str | None = None, device: str = "auto",
                 threads: int | None = 1):
        if model_path is None:
            path = download(MODEL_FILE, cache_dir=cache_dir, endpoint=endpoint)
        elif not Path(model_path).is_file():
            raise UserError(f"YuNet model not found: {model_path}")
        else:
            path = Path(model_path)
        try:
            model = load_model(path, device=device, threads=threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime has its own error types for unreadable files
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UserError(f"cannot load the YuNet model {path}: damaged or not an ONNX file "
                            f"({type(exc).__name__}: {detail})") from None
        self.config = config
        self.session = model.session
        #: Why the model does not run where asked (a GPU provider that failed to start), or ``None``.
        self.notice = model.notice
        inputs, outputs = model.session.get_inputs(), {o.name for o in model.session.get_outputs()}
        if [i.name for i in inputs] != ["input"] or not outputs.issuperset(OUTPUT_NAMES):
            raise UserError(f"{path} is not a YuNet 2023mar model (expected input 'input' and outputs "
                            f"{', '.join(OUTPUT_NAMES)})")
        height, width = inputs[0].shape[2:]
        self.input_size = (width if isinstance(width, int) else DEFAULT_INPUT_SIZE,
                           height if isinstance(height, int) else DEFAULT_INPUT_SIZE)

    def detect(self, image: Image.Image) -> list[Face]:
        blob, scale = letterbox(image, self.input_size)
        heads = dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), {"input": blob})))
        boxes, landmarks, scores = decode(heads, self.input_size, self.config)
        return faces_from_arrays(boxes / np.tile(scale, 2), landmarks / scale, scores)


def letterbox(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The network input (``[1, 3, H, W]`` BGR float 0-255) and the x/y factors from image to input pixels.

    The image keeps its aspect ratio: its long side fills the input, black padding fills the bottom or right.
    """
    width, height = size
    factor = min(width / image.width, height / image.height)
    scaled = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    rgb = image.convert("RGB").resize(scaled, Image.Resampling.BILINEAR)
    blob = np.zeros((1, 3, height, width), dtype=np.float32)
    blob[0, :, : scaled[1], : scaled[0]] = np.asarray(rgb).transpose(2, 0, 1)[::-1]
    return blob, np.array([scaled[0] / image.width, scaled[1] / image.height])


def decode(heads: Mapping[str, np.ndarray], input_size: tuple[int, int],
           config: YuNetConfig = YuNetConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces in input pixels from the 12 raw heads: ``[N, 4]`` x/y/w/h boxes, ``[N, 5, 2]`` landmarks, ``[N]``.

    Thresholded, NMS-merged and sorted best first; ``input_size`` is (width, height) of the network input.
    """
    boxes, landmarks, scores = [], [], []
    for stride in STRIDES:
        cols = input_size[0] // stride
        score = np.sqrt(np.clip(heads[f"cls_{stride}"], 0, 1) * np.clip(heads[f"obj_{stride}"], 0, 1)).reshape(-1)
        cells = np.nonzero(score >= config.score_threshold)[0]
        cell = np.column_stack([cells % cols, cells // cols]).astype(np.float32)  # column, row
        raw_box = heads[f"bbox_{stride}"].reshape(-1, 4)[cells]
        centre = (cell + raw_box[:, :2]) * stride
        size = np.exp(raw_box[:, 2:]) * stride
        boxes.append(np.hstack([centre - size / 2, size]))
        landmarks.append((cell[:, None, :] + heads[f"kps_{stride}"].reshape(-1, 5, 2)[cells]) * stride)
        scores.append(score[cells])
    boxes, landmarks, scores = np.concatenate(boxes), np.concatenate(landmarks), np.concatenate(scores)
    best = np.argsort(-scores, kind="stable")[: config.top_k]
    corners = np.hstack([boxes[best, :2], boxes[best, :2] + boxes[best, 2:]])
    keep = best[non_max_suppression(corners, scores[best], config.nms_threshold)]
    return boxes[keep], landmarks[keep], scores[keep]
