"""The engine's default seccomp profile, with Docker's semantics.

The profile is a template: groups of syscalls, each allowed (or given
another action) only when the container holds certain capabilities, or only
on certain architectures.  `profile(caps)` resolves it into the OCI
`linux.seccomp` section the runtime loads, the way dockerd resolves its own
default profile when it writes a container's config.json:

- default action: fail with EPERM (SCMP_ACT_ERRNO);
- an allow list of ordinary syscalls (no mount, no namespaces, no kernel
  modules, no clock setting, no reboot, no keyring manipulation);
- `personality()` only with the personalities programs really use
  (PER_LINUX, PER_LINUX32, UNAME26 and their combination, and the query
  0xffffffff);
- `clone()` only without namespace flags (arg 0 masked with 0x7E020000 must
  be 0), unless the container has CAP_SYS_ADMIN; `clone3()` fails with ENOSYS
  so that libcs fall back to `clone()`, whose flags can be inspected;
- syscalls tied to a capability (mount and setns need CAP_SYS_ADMIN, ptrace's
  relatives CAP_SYS_PTRACE, chroot CAP_SYS_CHROOT, …) are allowed only when
  the container holds that capability, so `--cap-add` widens the filter too.

tests/integration/test_seccomp_profile.py compares the decisions of the
resolved profile with the seccomp section the peer dockerd writes for the
same capability sets.
"""

from __future__ import annotations

import os

ERRNO = "SCMP_ACT_ERRNO"
ALLOW = "SCMP_ACT_ALLOW"
ENOSYS = 38

# Ordinary syscalls every container may use (names for every architecture
# the profile lists; libseccomp skips those a given one lacks).
ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 poll ppoll
ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64
pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl
shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair
splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill
time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
""".split()

# Personalities a container may switch to: PER_LINUX, PER_LINUX32, UNAME26,
# UNAME26|PER_LINUX32, and 0xffffffff (a query that changes nothing).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# clone() flags that create namespaces (CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP).
CLONE_NAMESPACE_FLAGS = 0x7E020000

# Syscalls allowed only with a capability (each group: capability, names).
BY_CAPABILITY = (
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
    ("CAP_SYS_ADMIN", ("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                       "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
                       "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
                       "sethostname", "setns", "syslog", "umount", "umount2", "unshare")),
    ("CAP_SYS_BOOT", ("reboot",)),
    ("CAP_SYS_CHROOT", ("chroot",)),
    ("CAP_SYS_MODULE", ("delete_module", "init_module", "finit_module")),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_SYS_PTRACE", ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
                        "ptrace")),
    ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
    ("CAP_SYS_TIME", ("settimeofday", "stime", "clock_settime")),
    ("CAP_SYS_TTY_CONFIG", ("vhangup",)),
    ("CAP_SYS_NICE", ("get_mempolicy", "mbind", "set_mempolicy")),
    ("CAP_SYSLOG", ("syslog",)),
    ("CAP_BPF", ("bpf",)),
    ("CAP_PERFMON", ("perf_event_open",)),
)

# Per machine: the seccomp architectures a native process may use, and the
# architecture-specific syscalls allowed on it.
ARCHITECTURES = {
    "x86_64": (("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"), ("arch_prctl", "modify_ldt")),
    "aarch64": (("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
                ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                 "set_tls")),
    "s390x": (("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
              ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr")),
    "ppc64le": (("SCMP_ARCH_PPC64LE",), ("sync_file_range2", "swapcontext")),
}

# ptrace is safe without CAP_SYS_PTRACE since Linux 4.8 (seccomp is checked after ptrace stops).
PTRACE_SAFE_KERNEL = (4, 8)


def _kernel() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def profile(capabilities: set[str] | frozenset[str], machine: str | None = None,
            kernel: tuple[int, int] | None = None) -> dict:
    """The resolved OCI seccomp section for a container holding `capabilities` (CAP_* names)."""
    machine = machine or os.uname().machine
    kernel = kernel or _kernel()
    arches, arch_calls = ARCHITECTURES.get(machine, ((), ()))
    caps = set(capabilities)
    rules: list[dict] = [{"names": list(ALLOWED), "action": ALLOW}]
    if kernel >= PTRACE_SAFE_KERNEL:
        rules.append({"names": ["ptrace"], "action": ALLOW})
    for value in PERSONALITIES:
        rules.append({"names": ["personality"], "action": ALLOW,
                      "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    if arch_calls:
        rules.append({"names": list(arch_calls), "action": ALLOW})
    for capability, names in BY_CAPABILITY:
        if capability in caps:
            rules.append({"names": list(names), "action": ALLOW})
    if "CAP_SYS_ADMIN" not in caps:
        # s390 passes clone's flags in the second argument.
        index = 1 if machine == "s390x" else 0
        rules.append({"names": ["clone"], "action": ALLOW,
                      "args": [{"index": index, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": ERRNO, "errnoRet": ENOSYS})
    out: dict = {"defaultAction": ERRNO}
    if arches:
        out["architectures"] = list(arches)
    out["syscalls"] = rules
    return out


def decide(section: dict, name: str, args: tuple[int, ...] = ()) -> tuple[str, int | None]:
    """What a resolved section does with syscall `name` called with `args`: (action, errno).

    The first rule naming the syscall whose conditions all hold decides (the
    profiles here never give one syscall two different actions for the same
    arguments); otherwise the default action.  For comparing profiles.
    """
    for rule in section.get("syscalls") or []:
        if name not in (rule.get("names") or ()):
            continue
        if all(_holds(cond, args) for cond in rule.get("args") or ()):
            return rule["action"], rule.get("errnoRet")
    return section["defaultAction"], section.get("defaultErrnoRet")


def _holds(cond: dict, args: tuple[int, ...]) -> bool:
    index = cond["index"]
    value = args[index] if index < len(args) else 0
    op, datum = cond["op"], cond.get("value", 0)
    if op == "SCMP_CMP_MASKED_EQ":
        return (value & datum) == cond.get("valueTwo", 0)
    return {
        "SCMP_CMP_EQ": value == datum, "SCMP_CMP_NE": value != datum, "SCMP_CMP_LT": value < datum,
        "SCMP_CMP_LE": value <= datum, "SCMP_CMP_GT": value > datum, "SCMP_CMP_GE": value >= datum,
    }[op]
