"""Restart policies (`--restart no|always|on-failure[:N]|unless-stopped`), as dockerd applies them.

Pure decisions; the container service acts on them.

After an exit:
  - a `docker stop` or `docker kill` (SIGKILL or the stop signal) ends the run
    for good: no restart, whatever the policy (`exit_on_next`);
  - always: restart; unless-stopped: restart unless the user stopped it;
    on-failure[:N]: restart when the exit code is not 0, at most N times (0: no limit).
Delays between restarts double from 100 ms up to a minute, and start again
from 100 ms once a run has lasted 10 s.

When the daemon starts (after a restart of the daemon or of the machine):
  - always: start it again, even if the user had stopped it (docker's
    documented difference from unless-stopped);
  - unless-stopped: start it unless the user stopped it;
  - on-failure: start it if it was running when the daemon went away and
    retries are left.
Containers that were never started stay as they are.
"""

from __future__ import annotations

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


def policy_of(host_config: dict) -> tuple[str, int]:
    policy = host_config.get("RestartPolicy") or {}
    return policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0)


def after_exit(host_config: dict, exit_code: int, restart_count: int, manually_stopped: bool,
               exit_on_next: bool) -> bool:
    """Whether a run that just ended should be followed by another."""
    return not exit_on_next and _wants(host_config, exit_code, restart_count, manually_stopped, True)


def at_daemon_start(host_config: dict, exit_code: int, restart_count: int, manually_stopped: bool,
                    was_running: bool, ever_started: bool) -> bool:
    """Whether a stopped container should be started when the daemon starts."""
    return ever_started and _wants(host_config, exit_code, restart_count, manually_stopped, was_running)


def _wants(host_config: dict, exit_code: int, restart_count: int, manually_stopped: bool, failed_now: bool) -> bool:
    name, retries = policy_of(host_config)
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure":
        return failed_now and exit_code != 0 and (retries == 0 or restart_count < retries)
    return False


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart, given the last one and how long the run lasted."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)
