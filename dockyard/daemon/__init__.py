"""The engine's services and the process that runs them (`dockyardd`).

service   an object owning one kind of engine state (images, events, system
          facts; containers, exec, volumes and networks come later). Services
          are plain Python: blocking methods run in the API's worker pool,
          and they never speak HTTP or Docker's JSON casing.
Daemon    (daemon.py) holds every service and wires them together; the API
          server reaches them as attributes (`req.services.images`).
The `dockyardd` process (flags, pid file, socket, signals, event loop) is
dockyard.api.dockyardd: it sits above both the services and the API server.
"""
