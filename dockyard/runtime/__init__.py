"""The OCI runtime: turns a bundle into an isolated, limited process (`dockyard-runtime`).

Vocabulary:
  bundle     – a directory with `config.json` (an OCI runtime spec) and a root filesystem.
  container  – an id, a state directory under the runtime root, and (while it lives) an
               init process: the process that will execve `process.args`.
  runtime root – where state directories live: `--root`, default `/run/dockyard-runtime`.
  init       – the container's first process.  Between `create` and `start` it is a
               Python process inside the new namespaces, fully set up, blocked on the
               state directory's `exec.fifo`; `start` opens the fifo and it execs.
  status     – created | running | paused | stopped, derived on every call from the
               init's liveness, the fifo and the freezer (never stored, so never stale).

The command line is runc's (see `cli`), so podman, containerd and dockerd can drive
it.  One module per verb; `create` is the parent side of container start-up and
`init` the child side; `process` is what `init` and `exec` share.
"""
