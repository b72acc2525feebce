"""What a face detector returns, and the interface every detector implements.

Framing needs only a box, the five landmarks and a score, so YuNet, MTCNN or any later detector can be swapped in
without touching the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

Point = tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One detected face, in pixel coordinates of the image that was given to the detector.

    ``landmarks``: eye on the image's left, eye on the image's right, nose tip, mouth corner on the image's left,
    mouth corner on the image's right (the order is normalised across detectors).
    """

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: tuple[Point, Point, Point, Point, Point]
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    def scaled(self, factor: float) -> "Face":
        """The same face in an image ``factor`` times larger (maps detections on a reduced decode to the photo)."""
        x, y, w, h = self.box
        return Face(
            box=(x * factor, y * factor, w * factor, h * factor),
            landmarks=tuple((px * factor, py * factor) for px, py in self.landmarks),  # type: ignore[arg-type]
            score=self.score,
        )

    def to_json(self) -> dict:
        return {"box": [round(v, 2) for v in self.box],
                "landmarks": [[round(px, 2), round(py, 2)] for px, py in self.landmarks],
                "score": round(self.score, 4)}


class FaceDetector(Protocol):
    """Finds faces in an RGB image; returns them sorted by score, best first."""

    name: str

    def detect(self, image: Image.Image) -> list[Face]:
        ...
