"""What TI Studio adds to the WebUI's startup: the host importing ``scripts/ti_studio.py`` (issue target <= 0.3 s).

    .venv/bin/python benchmarks/bench_startup.py [--runs 10]

Each run is a fresh interpreter that imports the script as the host does (importlib by file path, the extension
root on ``sys.path``) against the host double in ``tests/host_double``: a fresh process, because a second import
in one process costs nothing. Baseline, in the same run: a bare ``python -c pass``, so the interpreter's own
start-up is subtracted. Runs alternate between the two, and medians are compared: (import - bare) is the number
held against the target. The child also times the import alone from inside, which start-up noise does not reach.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from host_env import IMPORT_SCRIPT_AS_HOST  # noqa: E402  (test helper: the host's way to import the script)

TARGET_S = 0.3
#: The clock starts after importlib itself is loaded, so only the script's import is timed.
IMPORT_AS_HOST = ("import importlib.util, time\nstart = time.perf_counter()\n" + IMPORT_SCRIPT_AS_HOST
                  + "print(time.perf_counter() - start)\n")


def timed(code: str) -> tuple[float, str]:
    """Wall time of ``python -c code`` in a fresh process, and what it printed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT.parent)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    bare, imported, inside = [], [], []
    for _ in range(args.runs):
        bare.append(timed("pass")[0])
        wall, printed = timed(IMPORT_AS_HOST)
        imported.append(wall)
        inside.append(float(printed))

    added = statistics.median(imported) - statistics.median(bare)
    print(f"median of {args.runs} fresh processes ({sys.executable})")
    print(f"  bare `python -c pass`            {statistics.median(bare) * 1000:7.1f} ms")
    print(f"  importing scripts/ti_studio.py   {statistics.median(imported) * 1000:7.1f} ms")
    print(f"  import - bare                    {added * 1000:7.1f} ms   target <= {TARGET_S * 1000:.0f} ms: "
          f"{'met' if added <= TARGET_S else 'MISSED'}")
    print(f"  the import alone, timed inside   {statistics.median(inside) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
