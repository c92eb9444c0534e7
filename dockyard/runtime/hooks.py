"""OCI hooks: each runs with the container's state JSON on its stdin.

When each kind runs (the spec's timing, which runtime-tools checks; runc 1.1
runs prestart during `create` and poststart before `start`):
  createRuntime   – during `create`, after the namespaces exist, before pivot_root,
                    in the runtime's namespaces (status "creating")
  createContainer – during `create`, before pivot_root, in the container's namespaces
  prestart        – during `start`, before the program is exec'd, in the runtime's
                    namespaces (status "created", config.md's "after the start operation
                    is called"); a failure stops and deletes the container, `start` fails
  startContainer  – during `start`, in the container, before the program is exec'd
  poststart       – during `start`, after the program was exec'd (status "running")
  poststop        – during `delete`, after the container is gone (status "stopped")
A failing prestart, createRuntime, createContainer or startContainer hook stops the
ones after it; a failing poststart or poststop hook is only a warning, and the
rest of its kind still run (runtime.md's lifecycle).
"""

from __future__ import annotations

from .. import jsonio
from ..errors import EngineError


class HookError(EngineError):
    pass


def run(kind: str, hooks: list[dict], state: dict, warn=None) -> None:
    """Run `hooks` in order; raise HookError naming the first that fails.

    With `warn`, each failure is passed to it instead, and the rest still run.
    """
    for i, hook in enumerate(hooks):
        try:
            _run_one(kind, i, hook, state)
        except HookError as err:
            if warn is None:
                raise
            warn(str(err))


def _run_one(kind: str, i: int, hook: dict, state: dict) -> None:
    import subprocess

    payload = jsonio.dumps(state).encode()
    args = hook.get("args") or [hook["path"]]
    try:
        proc = subprocess.run(
            args, executable=hook["path"], input=payload, capture_output=True,
            env=_env(hook.get("env")), timeout=hook.get("timeout"), close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise HookError(f"error running {kind} hook #{i}: timeout after {hook['timeout']}s") from None
    except OSError as err:
        raise HookError(f"error running {kind} hook #{i}: {hook['path']}: {err.strerror}") from None
    if proc.returncode != 0:
        status = (f"exit status {proc.returncode}" if proc.returncode > 0
                  else f"signal: {-proc.returncode}")
        raise HookError(f"error running {kind} hook #{i}: {status}, stdout: {proc.stdout.decode(errors='replace')}, "
                        f"stderr: {proc.stderr.decode(errors='replace')}")


def _env(entries) -> dict:
    env = {}
    for entry in entries or []:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def chosen(spec: dict, kind: str) -> list[dict]:
    return (spec.get("hooks") or {}).get(kind) or []


def state_for(container, status: str, pid: int | None) -> dict:
    """The state JSON a hook reads (the OCI `state` document)."""
    state = container.oci_state(status)
    if pid is None:
        state.pop("pid", None)
    else:
        state["pid"] = pid
    state.pop("owner", None)
    return state

