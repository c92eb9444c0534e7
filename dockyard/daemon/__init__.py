"""The engine's services and the process that runs them (`dockyardd`).

service   an object owning one kind of engine state (images, containers,
          exec, volumes, events, system facts; networks come later).
          Services never speak HTTP; most are plain Python whose blocking
          methods run in the API's worker pool. The container and exec
          services live on the event loop (waits, attaches and exits are
          events) and send their blocking work to the pool themselves. Docker's
          JSON casing stays at the API edge, except in the documents the
          engine keeps as clients sent them (a container's Config and
          HostConfig: see containerconfig.py).
monitor   (monitor.py) the separate, single-threaded process that starts and
          supervises containers: dockyardd runs threads and never forks.
Daemon    (daemon.py) holds every service and wires them together; the API
          server reaches them as attributes (`req.services.images`).
The `dockyardd` process (flags, pid file, socket, signals, event loop) is
dockyard.api.dockyardd: it sits above both the services and the API server.
"""
