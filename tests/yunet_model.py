"""A tiny stand-in for YuNet 2023mar: the real input and the 12 real output heads, with faces planted in them.

The real weights cannot be downloaded in tests, so we build an ONNX model whose heads are constants (plus zero times
the input's mean, so the input stays part of the graph, as in the real model). Each planted face is written as raw
head values at one grid cell; what the decoder must recover from them is stated in the test, from OpenCV's formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 640
STRIDES = (8, 16, 32)
CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}


@dataclass(frozen=True)
class RawCell:
    """Raw head values at one grid cell, exactly as the network would emit them."""

    stride: int
    row: int
    col: int
    cls: float
    obj: float
    bbox: tuple[float, float, float, float]  # dx, dy (cells), log w, log h (in strides)
    kps: tuple[float, ...]  # 5 x (kx, ky), in cells


def cell_for(box: tuple[float, float, float, float], landmarks: list[tuple[float, float]], score: float,
             stride: int = 16) -> RawCell:
    """The raw values that make the decoder report ``box`` (x, y, w, h), ``landmarks`` and ``score``.

    Inverts OpenCV's decode: the face goes to the cell holding its centre; cls = score**2, obj = 1.
    """
    x, y, w, h = box
    col, row = int((x + w / 2) // stride), int((y + h / 2) // stride)
    bbox = ((x + w / 2) / stride - col, (y + h / 2) / stride - row, math.log(w / stride), math.log(h / stride))
    kps = tuple(v for px, py in landmarks for v in (px / stride - col, py / stride - row))
    return RawCell(stride, row, col, score * score, 1.0, bbox, kps)


def build(cells: list[RawCell], input_shape: tuple = (1, 3, SIZE, SIZE)) -> bytes:
    """Serialized ONNX model with YuNet's I/O signature whose heads hold ``cells`` (zero everywhere else)."""
    heads = {f"{name}_{s}": np.zeros((1, (SIZE // s) ** 2, c), dtype=np.float32)
             for name, c in CHANNELS.items() for s in STRIDES}
    for cell in cells:
        index = cell.row * (SIZE // cell.stride) + cell.col
        for name, values in (("cls", [cell.cls]), ("obj", [cell.obj]), ("bbox", cell.bbox), ("kps", cell.kps)):
            heads[f"{name}_{cell.stride}"][0, index] = values
    names = [f"{name}_{s}" for name in CHANNELS for s in STRIDES]  # the real model's output order
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        *(helper.make_node("Add", [f"{n}_value", "nothing"], [n]) for n in names),
    ]
    graph = helper.make_graph(
        nodes, "yunet_standin",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, list(heads[n].shape)) for n in names],
        initializer=[numpy_helper.from_array(np.float32(0.0), "zero"),
                     *(numpy_helper.from_array(heads[n], f"{n}_value") for n in names)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
