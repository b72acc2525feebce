"""Where the square crop goes: pure geometry from a face box and its landmarks to a crop box in photo pixels.

The host's "auto focal point" crop scales the short side to the output size, so it never zooms in and a full-body
photo yields a body crop. Textual Inversion of a face wants the face to fill a fixed share of every training image,
so here the crop side follows the face size (head-and-shoulders: the face box is about a third of the side), the
eye line sits at a portrait height, and hair and chin keep their room. The box is then moved into the photo; it
grows past the photo's edges (padding) only when the head itself would not fit otherwise.

No images are touched here, which keeps the rules testable and lets the UI recompute a box while the user drags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .faces import Face

#: Named zoom levels: the share of the crop's side that the detector's face box should take.
FACE_FRACTIONS = {"close-up": 0.5, "head-and-shoulders": 0.33, "upper-body": 0.2}


@dataclass(frozen=True)
class FramingConfig:
    """How a face is framed. Distances are in face-box heights (vertical) or widths (horizontal)."""

    face_fraction: float = FACE_FRACTIONS["head-and-shoulders"]
    eye_line: float = 0.40  # eyes this far down the crop; 1/3 (rule of thirds) clips hair when zoomed in
    headroom: float = 0.45  # kept above the face box for hair (detectors' boxes stop near the brows)
    chin_room: float = 0.20  # kept below the face box: chin and a little neck
    side_room: float = 0.15  # kept left and right of the face box: ears

    def __post_init__(self) -> None:
        if not 0.05 <= self.face_fraction <= 0.9:
            raise ValueError(f"face_fraction must be between 0.05 and 0.9, got {self.face_fraction}")
        if not 0.1 <= self.eye_line <= 0.7:
            raise ValueError(f"eye_line must be between 0.1 and 0.7, got {self.eye_line}")
        if min(self.headroom, self.chin_room, self.side_room) < 0:
            raise ValueError("headroom, chin_room and side_room cannot be negative")


@dataclass(frozen=True)
class CropBox:
    """A square in the upright photo's full-resolution pixels. It may reach past the photo (then it is padded)."""

    left: float
    top: float
    side: float

    @property
    def right(self) -> float:
        return self.left + self.side

    @property
    def bottom(self) -> float:
        return self.top + self.side

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.side / 2, self.top + self.side / 2

    def fits_in(self, width: float, height: float, tolerance: float = 1e-6) -> bool:
        """True when no padding is needed."""
        return (self.left >= -tolerance and self.top >= -tolerance
                and self.right <= width + tolerance and self.bottom <= height + tolerance)

    def contains(self, region: tuple[float, float, float, float], tolerance: float = 1e-6) -> bool:
        """True when the (x0, y0, x1, y1) region lies inside the box."""
        x0, y0, x1, y1 = region
        return (x0 >= self.left - tolerance and y0 >= self.top - tolerance
                and x1 <= self.right + tolerance and y1 <= self.bottom + tolerance)

    def to_json(self) -> dict:
        return {key: round(value, 2) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "CropBox":
        return cls(left=float(data["left"]), top=float(data["top"]), side=float(data["side"]))


@dataclass(frozen=True)
class Framing:
    """The chosen box plus what the user should know about it."""

    box: CropBox
    padded: bool  # the head did not fit inside the photo at any zoom: the crop reaches past the photo's edge
    zoom_limited: bool  # the photo is too tight to zoom out to the wanted framing; the face is larger than asked


def frame_face(face: Face, photo_size: tuple[int, int], config: FramingConfig = FramingConfig()) -> Framing:
    """Frame one face: side from the face height, eyes on the eye line, the head kept whole, box moved inside."""
    width, height = photo_size
    fh = face.box[3]
    eye_x, eye_y = eye_centre(face)
    keep = _keep_region(face, config, width, height)
    needed = max(keep[2] - keep[0], keep[3] - keep[1])
    side = max(fh / config.face_fraction, needed)
    fit = min(width, height)
    zoom_limited = side > fit
    if zoom_limited:
        side = max(fit, needed)
    left = eye_x - side / 2
    top = eye_y - config.eye_line * side
    left = _cover(left, side, keep[0], keep[2])
    top = _cover(top, side, keep[1], keep[3])
    box = CropBox(left=_clamp_into(left, side, width), top=_clamp_into(top, side, height), side=side)
    return Framing(box=box, padded=not box.fits_in(width, height), zoom_limited=zoom_limited)


def centre_box(photo_size: tuple[int, int]) -> CropBox:
    """The largest centred square: the fallback for a photo without a detected face."""
    width, height = photo_size
    side = min(width, height)
    return CropBox(left=(width - side) / 2, top=(height - side) / 2, side=side)


def adjusted_box(photo_size: tuple[int, int], centre: tuple[float, float], side: float) -> CropBox:
    """A manual adjustment: the user's centre and side, moved back inside the photo where the side allows.

    A side larger than the photo's short side is kept (the user zoomed out on purpose) and padded.
    """
    width, height = photo_size
    if side <= 0:
        raise ValueError("crop side must be positive")
    cx, cy = centre
    left = _clamp_into(cx - side / 2, side, width)
    top = _clamp_into(cy - side / 2, side, height)
    return CropBox(left=left, top=top, side=side)


def eye_centre(face: Face) -> tuple[float, float]:
    """Midpoint of the eyes; for landmarks that fall outside the box (a bad detection), a point derived from it."""
    fx, fy, fw, fh = face.box
    (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
    mx, my = (lx + rx) / 2, (ly + ry) / 2
    if fx <= mx <= fx + fw and fy <= my <= fy + fh:
        return mx, my
    return fx + fw / 2, fy + 0.4 * fh


def _keep_region(face: Face, config: FramingConfig, width: int, height: int) -> tuple[float, float, float, float]:
    """What must be inside the crop: the face box with room for hair, chin and ears, but only where the photo has
    pixels (a face at the photo's top edge cannot get headroom the photo does not have).

    The room around the face is soft, the face is not: where face plus room is longer than the photo's short side,
    the room shrinks (both sides in proportion) before anything is padded.
    """
    fx, fy, fw, fh = face.box
    fit = float(min(width, height))
    x0, x1 = _trim_room(fx, fx + fw, config.side_room * fw, config.side_room * fw, width, fit)
    y0, y1 = _trim_room(fy, fy + fh, config.headroom * fh, config.chin_room * fh, height, fit)
    return x0, y0, x1, y1


def _trim_room(start: float, end: float, before: float, after: float, extent: float, fit: float
               ) -> tuple[float, float]:
    """The span [start-before, end+after] inside [0, extent], its room cut back so it is no longer than ``fit``
    (the face span itself is kept even when it is longer)."""
    face_start, face_end = max(0.0, start), min(extent, end)
    low, high = max(0.0, start - before), min(extent, end + after)
    excess = (high - low) - fit
    room = (face_start - low) + (high - face_end)
    if excess > 0 and room > 0:
        cut = min(1.0, excess / room)
        low += (face_start - low) * cut
        high -= (high - face_end) * cut
    return low, high


def _cover(start: float, side: float, low: float, high: float) -> float:
    """Shift a span [start, start+side] as little as possible so that it covers [low, high] (side >= high-low)."""
    if low < start:
        start = low
    if high > start + side:
        start = high - side
    return start


def _clamp_into(start: float, side: float, extent: float) -> float:
    """Move a span inside [0, extent]; a span longer than the extent is kept covering it (padding both ends)."""
    lowest, highest = min(0.0, extent - side), max(0.0, extent - side)
    return min(max(start, lowest), highest)
