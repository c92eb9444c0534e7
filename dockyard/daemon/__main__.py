"""`python -m dockyard.daemon` is `dockyardd` (used when the CLI starts a daemon)."""

import sys

from dockyard.daemon.main import main

sys.exit(main())
