"""A tiny WD14-style tagger built at test time, whose scores for plain-colour images are known exactly.

Real SmilingWolf models are 400 MB-1.3 GB and cannot be downloaded here, so tests use a model with the same
contract: input ``input`` float32 ``[batch_size, 448, 448, 3]`` (BGR, 0-255) -> output ``output`` float32
``[batch_size, K]`` (sigmoid), and a ``selected_tags.csv`` with the real columns and category layout.

The graph is ``Div 255 -> ReduceMean over H, W -> MatMul(3 x K) -> Sigmoid`` (dividing first keeps the float32 mean
exact: it sums ones, not 255s). A plain-colour image has channel means 0 or 1, so with ``W`` holding logits of target
scores per channel row, the scores are chosen per colour:

- blue  ``RGB(0,0,255)``  -> BGR means ``(1, 0, 0)``   -> logits ``W[0]`` = ``BLUE``
- green ``RGB(0,255,0)``  -> ``(0, 1, 0)``              -> ``GREEN``
- white ``RGB(255,255,255)`` -> sum of the three rows     -> ``WHITE`` (the red row is what makes this add up)

A model fed RGB instead of BGR would give a blue photo the red row's scores, which differ, so the BGR flip is tested.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: (name, category) in CSV order: the 4 ratings first as in every SmilingWolf CSV, then general, then character.
TAGS: list[tuple[str, int]] = [
    ("general", 9), ("sensitive", 9), ("questionable", 9), ("explicit", 9),
    ("1girl", 0), ("solo", 0), ("long_hair", 0), ("smile", 0), ("open_mouth", 0), ("^_^", 0),
    ("star_(symbol)", 0), ("white_background", 0), ("simple_background", 0), ("blue_background", 0),
    ("hatsune_miku", 4), ("artoria_pendragon_(fate)", 4), ("hakurei_reimu", 4),
]
NAMES = [name for name, _ in TAGS]

#: Target scores per colour, by tag name.
WHITE = {
    "general": 0.9, "sensitive": 0.08, "questionable": 0.01, "explicit": 0.005,
    "1girl": 0.95, "solo": 0.9, "long_hair": 0.6, "smile": 0.36, "open_mouth": 0.34, "^_^": 0.5,
    "star_(symbol)": 0.4, "white_background": 0.97, "simple_background": 0.8, "blue_background": 0.02,
    "hatsune_miku": 0.9, "artoria_pendragon_(fate)": 0.86, "hakurei_reimu": 0.3,
}
BLUE = {
    "general": 0.2, "sensitive": 0.7, "questionable": 0.05, "explicit": 0.01,
    "1girl": 0.3, "solo": 0.2, "long_hair": 0.1, "smile": 0.05, "open_mouth": 0.04, "^_^": 0.03,
    "star_(symbol)": 0.02, "white_background": 0.01, "simple_background": 0.85, "blue_background": 0.92,
    "hatsune_miku": 0.1, "artoria_pendragon_(fate)": 0.05, "hakurei_reimu": 0.7,
}
GREEN = {
    "general": 0.6, "sensitive": 0.3, "questionable": 0.2, "explicit": 0.1,
    "1girl": 0.2, "solo": 0.1, "long_hair": 0.1, "smile": 0.1, "open_mouth": 0.1, "^_^": 0.1,
    "star_(symbol)": 0.1, "white_background": 0.1, "simple_background": 0.1, "blue_background": 0.1,
    "hatsune_miku": 0.12, "artoria_pendragon_(fate)": 0.05, "hakurei_reimu": 0.01,
}


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def weights() -> np.ndarray:
    """``W[3, K]`` (rows B, G, R) so that plain blue, green and white images score BLUE, GREEN and WHITE."""
    blue = np.array([logit(BLUE[n]) for n in NAMES])
    green = np.array([logit(GREEN[n]) for n in NAMES])
    red = np.array([logit(WHITE[n]) for n in NAMES]) - blue - green
    return np.stack([blue, green, red]).astype(np.float32)


def expected_scores(rgb: tuple[float, float, float]) -> dict[str, float]:
    """What the model gives an image whose (post-padding) channel means are ``rgb`` (0-255)."""
    bgr = np.array(rgb[::-1], dtype=np.float64) / 255.0
    logits = bgr @ weights().astype(np.float64)
    return {name: sigmoid(value) for name, value in zip(NAMES, logits)}


def build_model(
    path: Path, side: int = 448, batch: int | str = "batch_size", input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Write the ONNX model. Defaults are the v3 signature; a v2-like variant fixes ``batch=1`` and renames I/O."""
    w = weights()
    graph = helper.make_graph(
        nodes=[
            helper.make_node("Div", [input_name, "full_scale"], ["unit"]),
            helper.make_node("ReduceMean", ["unit"], ["means"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["means", "w"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], [output_name]),
        ],
        name="tiny_wd14",
        inputs=[helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, side, side, 3])],
        outputs=[helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, len(NAMES)])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(255.0), "full_scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def write_tags_csv(path: Path, tags: list[tuple[str, int]] = TAGS) -> Path:
    """``selected_tags.csv`` with the real header; ratings get the real tag ids 9999999..9999996."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for row, (name, category) in enumerate(tags):
            tag_id = 9999999 - row if category == 9 else 100000 + row
            writer.writerow([tag_id, name, category, 1000 * (len(tags) - row)])
    return path


def build_model_folder(folder: Path, **model_kwargs) -> Path:
    """A local model folder (``model.onnx`` + ``selected_tags.csv``), as ``--model PATH`` expects."""
    build_model(folder / "model.onnx", **model_kwargs)
    write_tags_csv(folder / "selected_tags.csv")
    return folder
