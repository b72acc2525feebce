"""The crop editor (javascript/ti_studio_crop.js) in headless Chromium, on a real gradio page.

The page (tests/crop_editor_server.py) has the dataset tab's two crop components and runs in a real server; the
tests press its buttons, drag and wheel with real pointer input, and read the box back through the server, so they
check the whole loop: server value -> overlay on screen -> gesture -> JSON in original pixels -> server.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from browser import REPO_ROOT, free_port, running_server, screenshot
from crop_editor_server import FULL_SIZE, START_BOX

pytest_plugins = ["browser"]
pytestmark = pytest.mark.browser

BOX = "#ti_studio_crop_box textarea"
ECHO = "#echo textarea"
IMAGE = "#ti_studio_crop_original img"
SQUARE = ".ti-studio-crop-square"
OVERLAY = ".ti-studio-crop-overlay"


@pytest.fixture(scope="module")
def server(chromium):  # chromium first: without a browser, skip before paying for a server
    port = free_port()
    command = [sys.executable, "tests/crop_editor_server.py", str(port)]
    with running_server(command, port=port,
                        env={"PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}) as running:
        yield running


@pytest.fixture
def editor(page, server):
    """The page with the start box selected and its square on screen."""
    page.goto(server.url)
    page.wait_for_selector(BOX, state="attached")
    page.click("#select")
    page.wait_for_selector(SQUARE, state="visible")
    page.wait_for_function(f"document.querySelector('{IMAGE}').complete")
    return page


def photo_on_screen(page) -> tuple[float, float, float]:
    """(x, y, scale): where the photo's top-left corner is drawn, and screen px per original px.

    The <img> fills its block and shows the photo with object-fit: contain, so the photo is a centred rect in it.
    """
    rect, natural_width, natural_height = page.eval_on_selector(
        IMAGE, "e => [e.getBoundingClientRect().toJSON(), e.naturalWidth, e.naturalHeight]")
    fit = min(rect["width"] / natural_width, rect["height"] / natural_height)
    x = rect["x"] + (rect["width"] - natural_width * fit) / 2
    y = rect["y"] + (rect["height"] - natural_height * fit) / 2
    return x, y, natural_width * fit / FULL_SIZE[0]


def square_on_screen(page) -> dict:
    return page.eval_on_selector(SQUARE, "e => e.getBoundingClientRect().toJSON()")


def expected_square(page, box: dict) -> tuple[float, float, float]:
    x, y, scale = photo_on_screen(page)
    return x + box["left"] * scale, y + box["top"] * scale, box["side"] * scale


def assert_square_at(page, box: dict) -> None:
    left, top, side = expected_square(page, box)
    rect = square_on_screen(page)
    assert rect["x"] == pytest.approx(left, abs=0.6)
    assert rect["y"] == pytest.approx(top, abs=0.6)
    assert rect["width"] == pytest.approx(side, abs=0.6)
    assert rect["height"] == pytest.approx(side, abs=0.6)


def box_text(page) -> str:
    return page.eval_on_selector(BOX, "e => e.value")


def box_on_server(page, previous: str) -> dict:
    """Wait until the editor has written a box other than ``previous``; return the box as the server received it."""
    page.wait_for_function("([box, old]) => document.querySelector(box).value !== old", arg=[BOX, previous])
    page.click("#read")
    page.wait_for_function("([box, echo]) => document.querySelector(box).value === document.querySelector(echo).value",
                           arg=[BOX, ECHO])
    return json.loads(page.eval_on_selector(ECHO, "e => e.value"))


def drag(page, start: tuple[float, float], by: tuple[float, float]) -> None:
    x, y = round(start[0]), round(start[1])
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + by[0], y + by[1], steps=5)
    page.mouse.up()


def square_centre(page) -> tuple[float, float]:
    rect = square_on_screen(page)
    return rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2


def brightness(page, x: float, y: float) -> float:
    png = page.screenshot(clip={"x": x - 5, "y": y - 5, "width": 10, "height": 10})
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L")).mean())


def test_server_box_is_drawn_over_the_letterboxed_photo_and_dims_the_rest(editor):
    x, _, _ = photo_on_screen(editor)
    assert x > editor.eval_on_selector(IMAGE, "e => e.getBoundingClientRect().x") + 50  # letterboxed: not trivial
    assert_square_at(editor, START_BOX)
    screenshot(editor, "crop-editor-selected")

    rect = square_on_screen(editor)
    inside = square_centre(editor)
    outside = (rect["x"] - 60, inside[1])  # on the photo, left of the square
    shown = brightness(editor, *inside), brightness(editor, *outside)
    editor.eval_on_selector(OVERLAY, "e => e.style.visibility = 'hidden'")
    bare = brightness(editor, *inside), brightness(editor, *outside)
    editor.eval_on_selector(OVERLAY, "e => e.style.visibility = ''")
    assert shown[0] == pytest.approx(bare[0], rel=0.05)
    assert shown[1] < 0.6 * bare[1]

    # The block follows the window; the square follows the photo (redrawn from a ResizeObserver, after layout).
    editor.set_viewport_size({"width": 700, "height": 900})
    editor.wait_for_function("([square, x]) => Math.abs(document.querySelector(square).getBoundingClientRect().x - x) > 1",
                             arg=[SQUARE, rect["x"]])
    assert_square_at(editor, START_BOX)
    screenshot(editor, "crop-editor-narrow")


def test_dragging_inside_the_square_moves_it(editor):
    _, _, scale = photo_on_screen(editor)
    before = box_text(editor)
    drag(editor, square_centre(editor), (60, 30))
    box = box_on_server(editor, before)
    assert box["left"] == pytest.approx(START_BOX["left"] + 60 / scale, abs=0.11)
    assert box["top"] == pytest.approx(START_BOX["top"] + 30 / scale, abs=0.11)
    assert box["side"] == START_BOX["side"]
    assert (box["width"], box["height"]) == FULL_SIZE
    assert_square_at(editor, box)
    screenshot(editor, "crop-editor-moved")


def test_moving_stops_with_the_centre_on_the_photo(editor):
    before = box_text(editor)
    drag(editor, square_centre(editor), (-900, 0))  # far past the photo's left edge
    box = box_on_server(editor, before)
    assert box["left"] + box["side"] / 2 == pytest.approx(0, abs=0.11)
    assert box["top"] == START_BOX["top"]


def test_dragging_a_corner_resizes_with_the_opposite_corner_fixed(editor):
    _, _, scale = photo_on_screen(editor)
    rect = square_on_screen(editor)
    before = box_text(editor)
    drag(editor, (rect["right"] - 6, rect["bottom"] - 6), (30, 45))  # the larger move wins: 45 px
    box = box_on_server(editor, before)
    assert box["side"] == pytest.approx(START_BOX["side"] + 45 / scale, abs=0.11)
    assert (box["left"], box["top"]) == (START_BOX["left"], START_BOX["top"])
    assert_square_at(editor, box)

    # Far down-right: the side stops where the centre would leave the photo (top 300 + 1800 / 2 = the bottom edge).
    rect = square_on_screen(editor)
    before = box_text(editor)
    drag(editor, (rect["right"] - 6, rect["bottom"] - 6), (400, 400))
    box = box_on_server(editor, before)
    assert box["side"] == pytest.approx(2 * (FULL_SIZE[1] - START_BOX["top"]), abs=0.11)
    assert (box["left"], box["top"]) == (START_BOX["left"], START_BOX["top"])
    screenshot(editor, "crop-editor-resized")


def test_the_wheel_zooms_the_square_around_its_centre(editor):
    centre = square_centre(editor)
    editor.mouse.move(*centre)
    before = box_text(editor)
    editor.mouse.wheel(0, 100)  # one notch down: 10 % larger
    box = box_on_server(editor, before)
    assert box["side"] == pytest.approx(START_BOX["side"] * 1.1, abs=0.11)
    assert box["left"] + box["side"] / 2 == pytest.approx(START_BOX["left"] + START_BOX["side"] / 2, abs=0.11)
    assert box["top"] + box["side"] / 2 == pytest.approx(START_BOX["top"] + START_BOX["side"] / 2, abs=0.11)

    before = box_text(editor)
    editor.mouse.move(*centre)  # reading the box clicked a button: back over the photo
    editor.mouse.wheel(0, -100)
    editor.mouse.wheel(0, -100)
    box = box_on_server(editor, before)
    assert box["side"] == pytest.approx(START_BOX["side"] / 1.1, abs=0.2)
    assert box["left"] + box["side"] / 2 == pytest.approx(START_BOX["left"] + START_BOX["side"] / 2, abs=0.11)
    assert_square_at(editor, box)
    screenshot(editor, "crop-editor-zoomed")


def test_a_touch_drag_moves_the_square(editor):
    _, _, scale = photo_on_screen(editor)
    x, y = (round(v) for v in square_centre(editor))
    before = box_text(editor)
    touch = editor.context.new_cdp_session(editor)
    for kind, (px, py) in [("touchStart", (x, y)), ("touchMove", (x - 20, y + 10)), ("touchMove", (x - 40, y + 20))]:
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": px, "y": py}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    box = box_on_server(editor, before)
    assert box["left"] == pytest.approx(START_BOX["left"] - 40 / scale, abs=0.11)
    assert box["top"] == pytest.approx(START_BOX["top"] + 20 / scale, abs=0.11)


def test_a_click_without_moving_writes_nothing(editor):
    before = box_text(editor)
    editor.mouse.click(*square_centre(editor))  # a write would happen on pointerup, before click() returns
    assert box_text(editor) == before


def test_an_empty_box_hides_the_square(editor):
    editor.click("#clear")
    editor.wait_for_selector(OVERLAY, state="hidden")
    editor.click("#select")
    editor.wait_for_selector(SQUARE, state="visible")
    assert_square_at(editor, START_BOX)
