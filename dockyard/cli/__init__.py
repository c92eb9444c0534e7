"""The `dockyard` command: Docker's nouns, verbs and flags over the Engine API (see cli/main.py)."""
