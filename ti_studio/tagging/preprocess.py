"""Turning a photo into the tensor a WD14 model expects, exactly as the model authors do it.

SmilingWolf's own demo (the ``wd-tagger`` Space) composites transparency onto white, pads the image to a centred
white square, resizes that square to the model's input side with PIL's BICUBIC filter (small images are upscaled,
not left small inside a white frame as the old A1111 extensions did), flips RGB to BGR and feeds float32 values
0-255 in NHWC layout with no normalisation. The models were validated on that input, so we reproduce it bit for bit
rather than "improving" it. Alpha compositing already happens in :func:`ti_studio.images.open_photo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Input side of every SmilingWolf tagger; used only when a model leaves its height/width dynamic.
DEFAULT_SIDE = 448
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class InputSpec:
    """What the model's first input wants, read from the session rather than assumed.

    ``fixed_batch`` is the batch size baked into the graph (the v2 Keras exports have 1), ``None`` when the batch
    dimension is dynamic (v3).
    """

    name: str
    side: int
    fixed_batch: int | None


def input_spec(session) -> InputSpec:
    """Read name, square side and batch dimension of an NHWC image input from an onnxruntime session."""
    first = session.get_inputs()[0]
    batch, height = first.shape[0], first.shape[1]
    return InputSpec(
        name=first.name,
        side=height if isinstance(height, int) and height > 0 else DEFAULT_SIDE,
        fixed_batch=batch if isinstance(batch, int) and batch > 0 else None,
    )


def prepare_image(image: Image.Image, side: int) -> np.ndarray:
    """An RGB image -> float32 array ``[side, side, 3]`` in BGR order, values 0-255.

    Steps (the reference's, in its order): pad to a square of the longer side with white, the image centred
    (an odd remainder goes right/bottom); resize to ``side`` with BICUBIC when the square is not already that size;
    RGB -> BGR. The batch axis is added by the caller, which stacks several images.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    longest = max(width, height)
    square = Image.new("RGB", (longest, longest), _WHITE)
    square.paste(image, ((longest - width) // 2, (longest - height) // 2))
    if longest != side:
        square = square.resize((side, side), Image.BICUBIC)
    rgb = np.asarray(square, dtype=np.float32)
    return np.ascontiguousarray(rgb[:, :, ::-1])
