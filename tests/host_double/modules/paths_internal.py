"""Double of ``modules/paths_internal.py`` (v1.10.1): ``default_output_dir`` (L36: ``<data_path>/outputs``).

The host's ``data_path`` is ``--data-dir`` or the WebUI folder; tests point it at a temporary folder.
"""

import os
import tempfile

data_path = os.path.join(tempfile.gettempdir(), "ti-studio-host-double")
default_output_dir = os.path.join(data_path, "outputs")
