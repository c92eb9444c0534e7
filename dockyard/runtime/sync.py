"""The parent/child sync protocol used by `create`, `run` and `exec`.

Processes (for `create`; `exec` is the same without hooks, mounts and the
"cgroups" message):

    runtime (P)                 bridge (C1)                     init (C2)
    -----------                 -----------                     ---------
    (exec, or a new cgroup
     namespace: make the cgroup)
    fork C1 ----------------->  wait "go"
    send "go" --------------->  (exec, cgroupns: join the cgroup itself)
    make the cgroup             setns() the namespaces given by path
                                unshare(USER)?
    <--------- "userns" -------  (only with a new user namespace)
    write uid_map, gid_map
    send "mapped" ----------->  become root in it
                                unshare(the other new namespaces)
                                fork C2 ----------------------> (pid 1 of a new pid namespace)
    <--------- "pid" N -------  exit(0)
    reap C1
    send "cgroups" (its dirs, the files to join by) ---------->  mounts, devices; reads "cgroups"
                                                                  at the cgroup mount, joins
    <--------------------------------------------------------- "hooks"
    createRuntime hooks (prestart waits for `start`)
    send "hooks-done" -------------------------------------->  createContainer hooks,
                                                                pivot_root, masked paths …
    <--------------------------------------------------------- "console" + pty master (SCM_RIGHTS)
    pass it to --console-socket
    <--------------------------------------------------------- "ready"
    write state.json, pid file
    exit 0                                                      read exec.fifo (blocks until
                                                                `start` writes a byte)
                                                                execve(process.args)

Any side may instead send "error" with a message; P then tears down what
exists (kills C2, removes the cgroup and the state directory) and reports it.
Messages are dicts in `marshal` form (both ends are this same Python) on a
SOCK_SEQPACKET socketpair, so each send is one message; EOF means the peer died (or, after "ready" in `exec`, that execve
succeeded: the socket is close-on-exec).
"""

from __future__ import annotations

import _socket
import marshal
import sys

# `_socket` rather than `socket`: the wrapper module builds enums at import,
# milliseconds every runtime call would pay.
_SOL_SOCKET, _SCM_RIGHTS = _socket.SOL_SOCKET, _socket.SCM_RIGHTS
_INT = 4  # an fd in SCM_RIGHTS data is a C int (bytes here: `array` would import `collections`)


class Channel:
    __slots__ = ("sock",)

    def __init__(self, sock):
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        return cls(a), cls(b)

    def send(self, kind: str, **fields) -> None:
        """Send one message.  A peer that is gone is not an error here: it left its
        reason (an "error" message) or EOF in the channel, and the protocol's next
        step is always a `recv` that reports it."""
        fields["t"] = kind
        try:
            self.sock.sendall(marshal.dumps(fields))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_fd(self, kind: str, fd: int, **fields) -> None:
        fields["t"] = kind
        self.sock.sendmsg([marshal.dumps(fields)], [(_SOL_SOCKET, _SCM_RIGHTS, fd.to_bytes(_INT, sys.byteorder))])

    def recv(self) -> tuple[dict | None, int]:
        """The next message and an fd sent with it (-1 if none); (None, -1) at EOF."""
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(65536, _socket.CMSG_SPACE(_INT))
                break
            except InterruptedError:
                continue
        fd = -1
        for level, kind, payload in ancdata:
            if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
                fd = int.from_bytes(payload[:_INT], sys.byteorder, signed=True)
        if not data:
            return None, fd
        return marshal.loads(data), fd

    def expect(self, kind: str) -> dict:
        msg, _ = self.recv()
        if msg is None:
            raise EOFError(f"peer closed the sync channel while waiting for {kind!r}")
        if msg["t"] == "error":
            raise ChildError(msg["msg"])
        if msg["t"] != kind:
            raise EOFError(f"sync protocol: expected {kind!r}, got {msg['t']!r}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class ChildError(Exception):
    """An error the container-side process reported over the channel."""
