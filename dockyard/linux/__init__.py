"""The kernel, as Dockyard sees it: the only package that calls libc through ctypes.

Everything above this package speaks in typed flags (`CloneFlag`, `MountFlag`, …)
and gets a `SyscallError` that names the call, its arguments and its flags when
the kernel says no.  Each wrapper retries EINTR.  Where the standard library
already has the call (`os.setresuid`, `os.pidfd_open`, `socket.send_fds`,
`fcntl.ioctl`, `resource.prlimit`) callers use the standard library directly.

Modules:
  syscall   – libc handle, raw `syscall(2)` numbers, `SyscallError`, EINTR retry
  flags     – `CloneFlag`, `MountFlag`, `UmountFlag`, prctl and capability constants
  ns        – unshare, setns
  mount     – mount, umount2, pivot_root, bind/remount helpers
  proc      – prctl, hostname, keyrings, close_range, capabilities
"""
