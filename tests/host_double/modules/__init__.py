"""A double of the few A1111 v1.10.1 ``modules`` that TI Studio's adapter (``ti_studio/webui/``) calls.

Written (not copied; the host is AGPL-3.0) from reading AUTOMATIC1111/stable-diffusion-webui at tag v1.10.1
(commit 82a973c0). Each module keeps the host's names and signatures and cites the lines it stands for; it holds
only what the adapter uses. It imports neither gradio nor fastapi, unlike the real modules, so a test can tell
what OUR imports cost and load.

Tests put ``tests/host_double`` on ``sys.path`` only for their own duration (see ``tests/test_webui_routes.py``).
"""
