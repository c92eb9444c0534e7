"""The Engine API client used by the CLI (and later compose).

It speaks HTTP/1.1 over the engine's unix socket with a small hand-written
reader (`http.py`) and decodes JSON with `dockyard.jsonio` (the C scanner
without the `json` package): every `dockyard` command pays this package's
import time, and the `socket`, `json` and `re` modules alone cost more than
the rest of a command like `dockyard images`.

host      where the engine listens: `unix:///run/dockyard.sock`; picked by
          `-H`, then DOCKYARD_HOST, then the default.
ApiError  the engine answered with an error status; `.message` is the text
          the CLI prints after "Error response from daemon: ".
"""
