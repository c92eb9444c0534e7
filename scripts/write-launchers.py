"""Rewrite the venv's `dockyard-runtime` and `dockyard` scripts as lean launchers.

pip's console scripts start Python with `site`, which reads the venv's .pth
files: about 4 ms per call here.  These two commands import only the standard
library and Dockyard itself (no site-packages), and every container start or
CLI call pays their start-up, so their launchers run the interpreter with
`-I -S` (isolated, no site) and put Dockyard's own directory on sys.path.
`dockyardd` and anything needing third-party packages keep pip's scripts.

usage: python scripts/write-launchers.py   (run with the venv's python; `make install` does)
"""

import os
import sys

import dockyard

LAUNCHERS = {
    "dockyard-runtime": "dockyard.runtime.cli",
    "dockyard": "dockyard.cli.main",
}

TEMPLATE = """#!{python} -IS
# Written by scripts/write-launchers.py (see there why): pip would write a slower one.
import sys
sys.path.insert(0, {path!r})
from {module} import main
sys.exit(main())
"""


def main() -> None:
    bindir = os.path.dirname(sys.executable)
    python = os.path.join(bindir, "python")
    path = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
    for name, module in LAUNCHERS.items():
        target = os.path.join(bindir, name)
        tmp = target + ".tmp"
        with open(tmp, "w") as f:
            f.write(TEMPLATE.format(python=python, path=path, module=module))
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)


if __name__ == "__main__":
    main()
