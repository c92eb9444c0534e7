"""Run every benchmark, side by side with the peers, and print their reports.

    sudo .venv/bin/python bench/run.py      (what `make bench` runs)

Each script stands alone too (see its docstring); the figures go into
docs/benchmarks.md by hand, with the date and machine they were measured on.
Compare ratios within one run, never absolute times across runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["runtime.py", "cli.py", "images.py", "containers.py"]


def main() -> int:
    failed = 0
    for script in SCRIPTS:
        print(f"== bench/{script}", flush=True)
        proc = subprocess.run([sys.executable, os.path.join(HERE, script)])
        failed |= proc.returncode != 0
        print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
