"""The engine's services and the process that runs them (`dockyardd`).

service   an object owning one kind of engine state (images, events, system
          facts; containers, exec, volumes and networks come later). Services
          are plain Python: blocking methods run in the API's worker pool,
          and they never speak HTTP or Docker's JSON casing.
Daemon    (daemon.py) holds every service and wires them together; the API
          server reaches them as attributes (`req.services.images`).
main      (main.py) the `dockyardd` command: flags, pid file, socket,
          signals, and the event loop.
"""
