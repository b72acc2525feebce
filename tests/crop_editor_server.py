"""A page with only the crop editor's components, served for tests/test_browser_crop_editor.py.

``python tests/crop_editor_server.py PORT`` serves it on 127.0.0.1 through the standalone app's ``create_app``, so
the page head carries the extension's ``javascript/*.js`` and ``style.css`` as the app (and, file by file, the host)
loads them. The components and the box's ``_js`` wiring follow the dataset tab's contract:

- "Select" shows a real photo and sets a known crop box, as the tab does when the user picks a photo;
- "Clear" empties both, as when no photo is selected;
- "Read" echoes the hidden box into a visible textbox through the server, so a test sees what the server received.
"""

from __future__ import annotations

import json
import sys

#: The photo stands for an original of this full-resolution size; the page shows it downscaled to 600x400
#: (scikit-image's coffee photo), as the tab shows a downscaled copy of each original.
FULL_SIZE = (1800, 1200)
#: The box "Select" sets: a 600 px square centred on the photo.
START_BOX = {"left": 600.0, "top": 300.0, "side": 600.0, "width": FULL_SIZE[0], "height": FULL_SIZE[1]}
#: The image block's height: the page is wider, so the photo is letterboxed left and right.
IMAGE_HEIGHT = 400


def build_blocks():
    import gradio as gr
    from photos import coffee

    with gr.Blocks(analytics_enabled=False) as blocks:
        original = gr.Image(interactive=False, type="pil", height=IMAGE_HEIGHT, elem_id="ti_studio_crop_original")
        box = gr.Textbox(elem_id="ti_studio_crop_box", elem_classes=["ti-studio-hidden"])
        with gr.Row():
            select = gr.Button("Select", elem_id="select")
            clear = gr.Button("Clear", elem_id="clear")
            read = gr.Button("Read", elem_id="read")
        echo = gr.Textbox(label="Box on the server", elem_id="echo")

        select.click(fn=lambda: (coffee(), json.dumps(START_BOX)), outputs=[original, box])
        clear.click(fn=lambda: (None, ""), outputs=[original, box])
        read.click(fn=lambda value: value, inputs=[box], outputs=[echo])
        box.change(fn=None, inputs=[box], outputs=[], _js="tiStudioCropShow")
    return blocks


def main(port: int) -> None:
    import uvicorn

    from ti_studio.ui.app import create_app

    uvicorn.run(create_app(build_blocks()), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
