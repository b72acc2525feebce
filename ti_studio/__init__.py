"""TI Studio: photos to trained, ranked Textual Inversion embeddings, as a library, a CLI and an A1111 tab.

The core package imports neither gradio nor the host's ``modules``: every stage is a plain function call so the
CLI, the HTTP routes, the tab and the tests all drive the same code.
"""

__version__ = "0.1.0"
