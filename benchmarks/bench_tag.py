"""How close does folder tagging get to the model's own speed, and how much faster is it than the old loop?

No real WD14 weights can be downloaded here, so the model is a stand-in with the real signature and realistic
cost: ``[batch, 448, 448, 3]`` float32 BGR -> four stride-2 3x3 convolutions (32-64-128-256 channels) -> global
average pool -> a 10,861-way sigmoid head (the v3 tag count), with seeded random weights. The photos are 1000-2000 px
JPEGs made from scikit-image's bundled astronaut / coffee / chelsea images, in several aspect ratios.

Three timings, in one process, on the same onnxruntime session:

(a) ours  -- :func:`ti_studio.tagging.tag_folder`: open files -> captions written (batched, decoding overlapped);
(b) loop  -- the old extensions' way: per photo open, preprocess, run with batch 1, postprocess, write, in turn;
(c) bare  -- ``session.run`` alone on tensors prepared beforehand, in the same batches: the floor for (a).

Also timed, to explain the ratios: preparing photos alone on one thread (exact, and with fast decode), and bare
``session.run`` with batch 1.

Run:  .venv/bin/python benchmarks/bench_tag.py [--photos 48] [--batch 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import skimage
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ti_studio.fileio import write_text  # noqa: E402
from ti_studio.images import list_photos, open_photo  # noqa: E402
from ti_studio.tagging.postprocess import TagOptions, merge_caption, select_tags  # noqa: E402
from ti_studio.tagging.preprocess import prepare_image  # noqa: E402
from ti_studio.tagging.tagger import TagConfig, caption_path, load_tagger, tag_folder  # noqa: E402

SIDE = 448
TAG_COUNTS = {9: 4, 0: 8106, 4: 2751}  # ratings, general, character: the v3 CSV's layout
BASE_CHANNELS = (32, 64, 128, 256)
SOURCES = ("astronaut.png", "coffee.png", "chelsea.png")
SHAPES = ((1.0, 1.0), (1.5, 1.0), (1.0, 1.5), (4 / 3, 1.0), (0.75, 1.0))  # width : height


def build_model(folder: Path, width: int = 1) -> str:
    """Write the stand-in model (channels x ``width``) and its selected_tags.csv; return a one-line description."""
    channel_plan = tuple(c * width for c in BASE_CHANNELS)
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Div", ["nchw", "full_scale"], ["x0"])]
    inits = [numpy_helper.from_array(np.float32(255.0), "full_scale")]
    previous, width = "x0", 3
    for i, channels in enumerate(channel_plan, 1):
        w = rng.normal(0, np.sqrt(2 / (9 * width)), (channels, width, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(channels, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [previous, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3],
                                   strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"x{i}"])]
        previous, width = f"x{i}", channels
    tags = sum(TAG_COUNTS.values())
    head = rng.normal(0, 1 / np.sqrt(width), (width, tags)).astype(np.float32)
    inits += [numpy_helper.from_array(head, "head"),
              numpy_helper.from_array(np.full(tags, -2.0, np.float32), "head_bias")]
    nodes += [helper.make_node("GlobalAveragePool", [previous], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["features"]),
              helper.make_node("MatMul", ["features", "head"], ["logits0"]),
              helper.make_node("Add", ["logits0", "head_bias"], ["logits"]),
              helper.make_node("Sigmoid", ["logits"], ["output"])]
    graph = helper.make_graph(
        nodes, "bench_wd14",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", SIDE, SIDE, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", tags])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, folder / "model.onnx")
    rows = ["tag_id,name,category,count"]
    for category, count in TAG_COUNTS.items():
        rows += [f"{len(rows)},{'rating' if category == 9 else 'tag'}_{len(rows):05d},{category},{count}"
                 for _ in range(count)]
    (folder / "selected_tags.csv").write_text("\n".join(rows) + "\n", "utf-8")
    return (f"stand-in conv net: 4 stride-2 3x3 convs {'-'.join(map(str, channel_plan))} ch, GAP, "
            f"{tags}-way sigmoid head; input [batch,{SIDE},{SIDE},3]")


def make_photos(folder: Path, count: int, min_px: int, max_px: int) -> list[int]:
    """``count`` JPEGs (quality 90) whose long side runs from min_px to max_px; returns their file sizes."""
    data = Path(os.path.dirname(skimage.__file__)) / "data"
    sources = [Image.open(data / name).convert("RGB") for name in SOURCES]
    sizes = []
    for i in range(count):
        long_side = min_px + (max_px - min_px) * i // max(1, count - 1)
        ratio_w, ratio_h = SHAPES[i % len(SHAPES)]
        scale = long_side / max(ratio_w, ratio_h)
        size = (round(ratio_w * scale), round(ratio_h * scale))
        image = sources[i % len(sources)].resize(size, Image.BICUBIC)
        path = folder / f"photo_{i:03d}.jpg"
        image.save(path, "JPEG", quality=90)
        sizes.append(path.stat().st_size)
    return sizes


def old_loop(paths: list[Path], tagger, options: TagOptions) -> None:
    """One photo at a time, as the A1111 tagger extensions do it."""
    for path in paths:
        array = prepare_image(open_photo(path).image, tagger.input.side)
        scores = tagger.scores(array[None])[0]
        write_text(caption_path(path), merge_caption(select_tags(scores, tagger.labels, options).tags, None,
                                                     "overwrite"))


def bare(batches: list[np.ndarray], tagger) -> None:
    for batch in batches:
        tagger.scores(batch)


def prepare_only(paths: list[Path], decode_side: int | None) -> None:
    for path in paths:
        prepare_image(open_photo(path, min_long_side=decode_side).image, SIDE)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of (bare, ours, ours fast, loop)")
    parser.add_argument("--width", type=int, default=2,
                        help="channel multiplier of the stand-in (1: 32-64-128-256; each x2 is ~4x the compute)")
    parser.add_argument("--min-px", type=int, default=1000)
    parser.add_argument("--max-px", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_tag_") as tmp:
        root = Path(tmp)
        (root / "model").mkdir()
        (root / "photos").mkdir()
        description = build_model(root / "model", args.width)
        sizes = make_photos(root / "photos", args.photos, args.min_px, args.max_px)
        paths = list_photos(root / "photos")
        config = TagConfig(model=str(root / "model"), batch_size=args.batch, device="cpu")
        tagger = load_tagger(config.model, device="cpu")
        tensors = [prepare_image(open_photo(p).image, SIDE) for p in paths]
        batches = [np.stack(tensors[i : i + args.batch]) for i in range(0, len(tensors), args.batch)]
        bare(batches[:1], tagger)  # warm-up: first run allocates

        cases = {
            "bare": lambda: bare(batches, tagger),
            "ours": lambda: tag_folder(root / "photos", config),
            "ours_fast_decode": lambda: tag_folder(root / "photos", TagConfig(**{**vars(config), "fast_decode": True})),
            "loop": lambda: old_loop(paths, tagger, TagOptions()),
            "bare_batch1": lambda: bare([t[None] for t in tensors], tagger),
            "prepare": lambda: prepare_only(paths, None),
            "prepare_fast": lambda: prepare_only(paths, SIDE),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, fn in cases.items():
                times[name].append(timed(fn))
        best = {name: min(values) for name, values in times.items()}
        median = {name: statistics.median(values) for name, values in times.items()}

    n = args.photos
    cores = os.cpu_count() or 1
    floor = {name: max(best["bare"], (best[prep] + cores * best["bare"]) / cores)
             for name, prep in (("ours", "prepare"), ("ours_fast_decode", "prepare_fast"))}
    print(f"model: {description}")
    print(f"photos: {n} JPEGs, long side {args.min_px}-{args.max_px} px, {sum(sizes) / n / 1e3:.0f} kB average")
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} at the end; onnxruntime {ort.__version__} "
          f"{tagger.provider}; batch {args.batch}; {args.repeats} rounds, best (median)")
    for name, label in (("bare", "(c) bare session.run, prepared tensors"), ("ours", "(a) ours: tag_folder"),
                        ("ours_fast_decode", "(a') ours, --fast-decode"), ("loop", "(b) one-at-a-time loop"),
                        ("bare_batch1", "bare session.run, batch 1"), ("prepare", "prepare only, 1 thread"),
                        ("prepare_fast", "prepare only, fast decode, 1 thread")):
        print(f"  {label:40s} {best[name]:6.2f} s ({median[name]:6.2f})  "
              f"{1000 * best[name] / n:6.1f} ms/photo ({1000 * median[name] / n:6.1f})")
    for label, top, bottom, target in (("loop / ours", "loop", "ours", ">= 3"),
                                       ("ours / bare", "ours", "bare", "<= 1.2"),
                                       ("loop / ours fast-decode", "loop", "ours_fast_decode", ""),
                                       ("ours fast-decode / bare", "ours_fast_decode", "bare", "")):
        print(f"  {label:28s} {best[top] / best[bottom]:5.2f}x ({median[top] / median[bottom]:5.2f}x)"
              + (f"   target {target}" if target else ""))
    # With onnxruntime already using every core, preparing photos can only hide in spare cores: on a CPU-only
    # machine the best any pipeline can do is (prepare CPU time + inference CPU time) / cores.
    for name, label in (("ours", "ours"), ("ours_fast_decode", "ours fast-decode")):
        print(f"  {label + ' / CPU floor':28s} {best[name] / floor[name]:5.2f}x   floor = max(bare, (prepare + "
              f"{cores} x bare) / {cores}) = {1000 * floor[name] / n:.1f} ms/photo")


if __name__ == "__main__":
    main()
