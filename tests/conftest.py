"""Test helpers live beside the tests (``photos``, tiny model builders): make them importable as top-level modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
