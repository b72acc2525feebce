"""Double of ``modules/shared.py`` (v1.10.1): only ``cmd_opts``, the parsed command line.

The host sets ``cmd_opts = shared_cmd_options.cmd_opts`` (shared.py L14), the result of ``parser.parse_args()``
(shared_cmd_options.py L13). The flags kept are those the adapter reads, with the parser's defaults
(cmd_args.py L101-104): ``--api`` (store_true), ``--api-auth`` (str, ``"user:pass,user2:pass2"``, default None),
``--nowebui`` (store_true). Tests change them with ``monkeypatch.setattr(shared.cmd_opts, ...)``.
"""

import argparse

cmd_opts = argparse.Namespace(api=False, api_auth=None, nowebui=False)
