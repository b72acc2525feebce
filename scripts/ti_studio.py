"""TI Studio's entry point in the WebUI. The host imports every extension's ``scripts/*.py`` at startup (with the
extension root on ``sys.path``), so this file only registers callbacks; the work is imported when they run."""

from ti_studio.webui import register

register()
