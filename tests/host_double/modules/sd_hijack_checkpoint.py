"""Double of ``modules/sd_hijack_checkpoint.py`` (v1.10.1): gradient checkpointing for training, on and off.

``add()`` (L23-34) keeps ldm's ``BasicTransformerBlock``, ``ResBlock`` and ``AttentionBlock`` ``forward`` methods in
``stored`` and replaces them with ``torch.utils.checkpoint`` versions, unless ``stored`` is already filled;
``remove()`` (L37-45) puts them back and empties ``stored``. The host's trainer calls ``add()`` before its loop and
``remove()`` in its ``finally`` (textual_inversion.py L513, L686). The double has no ldm classes to patch, so
``stored`` only records that checkpointing is on.
"""

stored = []


def add():
    if stored:
        return
    stored.extend(["BasicTransformerBlock.forward", "ResBlock.forward", "AttentionBlock.forward"])


def remove():
    stored.clear()
