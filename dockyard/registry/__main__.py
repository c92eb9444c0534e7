"""`python -m dockyard.registry serve …`: the same command as `dockyard-registry`."""

import sys

from .server import main

sys.exit(main())
