"""One module per CLI subcommand. Each exposes ``register(subparsers)``, which adds its parser and sets
``handler`` to a function ``(args, report) -> dict``: the dict is the ``--json`` summary, ``report`` prints a
human line (to stderr under ``--json``, so stdout stays machine-readable)."""
