"""Double of ``modules/shared.py`` (v1.10.1): the command line, the settings, the loaded model and one flag.

- ``cmd_opts`` (shared.py L14) is ``parser.parse_args()`` (shared_cmd_options.py L13). The flags kept are those the
  adapter reads, with the parser's defaults: ``--api`` (store_true), ``--api-auth`` (str, ``"user:pass,user2:pass2"``,
  default None), ``--nowebui`` (store_true) (cmd_args.py L101-104), ``--lowvram`` (store_true, cmd_args.py L41).
- ``opts`` (shared.py L44) is an ``options.Options`` read by attribute; the double starts with the two training
  settings the training backend reads, with their defaults (shared_options.py L156 ``unload_models_when_training=
  False``, L164 ``training_xattention_optimizations=False``); ``on_ui_settings`` callbacks add theirs through
  ``opts.add_option`` with ``OptionInfo``/``options_section`` (shared.py L76-77 re-export them from options.py).
- ``state`` (shared.py L45) is a ``shared_state.State``: the progress of the running job.
- ``parallel_processing_allowed = True`` (shared.py L18); the host's trainer clears it while the VAE is unloaded.
- ``sd_model`` (shared.py L47) is, in the host, a property that loads the selected checkpoint on first use and is
  None when no model could be loaded (shared_items.py L163-184, sd_models.py L683-701). Here it is a plain
  attribute that a test sets to the tiny ldm-shaped model (``tests/host_sd_model.py``).

Tests change these with ``monkeypatch.setattr(shared..., ...)``.
"""

import argparse

from modules import options, shared_state

OptionInfo = options.OptionInfo
options_section = options.options_section

cmd_opts = argparse.Namespace(api=False, api_auth=None, nowebui=False, lowvram=False)

opts = options.Options({"unload_models_when_training": OptionInfo(False, "Move VAE and CLIP to RAM when training"),
                        "training_xattention_optimizations": OptionInfo(False, "Use cross attention optimizations "
                                                                               "while training")})

state = shared_state.State()

parallel_processing_allowed = True

sd_model = None
