"""OCI `linux.seccomp` -> a libseccomp filter (Debian's libseccomp2, see linux/seccomp.py).

The filter is built and loaded in the container process itself, at the last
moment runc would load it: before dropping capabilities when
`noNewPrivileges` is false (loading a filter then needs CAP_SYS_ADMIN), and
right before execve otherwise.
"""

from __future__ import annotations

from ..errors import InvalidArgument, NotSupported
from ..linux import seccomp as ls

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
          "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64")
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")

EPERM = 1


def validate(config: dict) -> None:
    """Check a seccomp section without libseccomp (runs in `create` before any fork)."""
    if not isinstance(config, dict):
        raise InvalidArgument("config.json: linux.seccomp must be an object")
    if config.get("defaultAction") not in ACTIONS:
        raise InvalidArgument(f"config.json: linux.seccomp.defaultAction: unknown action {config.get('defaultAction')!r}")
    for arch in config.get("architectures") or []:
        if arch not in ARCHES:
            raise InvalidArgument(f"config.json: linux.seccomp: unknown architecture {arch!r}")
    for flag in config.get("flags") or []:
        if flag not in FLAGS:
            raise InvalidArgument(f"config.json: linux.seccomp: unknown flag {flag!r}")
    for i, rule in enumerate(config.get("syscalls") or []):
        if rule.get("action") not in ACTIONS:
            raise InvalidArgument(f"config.json: linux.seccomp.syscalls[{i}]: unknown action {rule.get('action')!r}")
        if rule.get("action") == "SCMP_ACT_NOTIFY" or config.get("defaultAction") == "SCMP_ACT_NOTIFY":
            raise NotSupported("seccomp SCMP_ACT_NOTIFY (a listener) is not supported")
        for arg in rule.get("args") or []:
            if arg.get("op") not in OPERATORS:
                raise InvalidArgument(f"config.json: linux.seccomp.syscalls[{i}]: unknown operator {arg.get('op')!r}")
            if not 0 <= arg.get("index", -1) <= 5:
                raise InvalidArgument(f"config.json: linux.seccomp.syscalls[{i}]: argument index must be 0-5")


def _action(name: str, errno_ret: int | None) -> int:
    if name == "SCMP_ACT_ERRNO":
        return ls.errno_action(EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return ls.trace_action(EPERM if errno_ret is None else errno_ret)
    return {
        "SCMP_ACT_KILL": ls.KILL_THREAD, "SCMP_ACT_KILL_THREAD": ls.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": ls.KILL_PROCESS, "SCMP_ACT_TRAP": ls.TRAP, "SCMP_ACT_ALLOW": ls.ALLOW,
        "SCMP_ACT_LOG": ls.LOG,
    }[name]


def build(config: dict) -> ls.Filter:
    """A ready-to-load filter for an OCI seccomp section (validated by `validate`)."""
    default = _action(config["defaultAction"], config.get("defaultErrnoRet"))
    flt = ls.Filter(default)
    # libseccomp sets no_new_privs on load unless told not to; the spec's
    # noNewPrivileges decides that, not the filter.
    flt.set_attr(ls.ATTR_CTL_NNP, 0)
    for flag in config.get("flags") or []:
        attr = {"SECCOMP_FILTER_FLAG_TSYNC": ls.ATTR_CTL_TSYNC, "SECCOMP_FILTER_FLAG_LOG": ls.ATTR_CTL_LOG,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW": ls.ATTR_CTL_SSB}[flag]
        flt.set_attr(attr, 1)
    native = flt.native_arch()
    for arch in config.get("architectures") or []:
        value = ls.ARCHES[arch[len("SCMP_ARCH_"):]]
        if value != native:
            try:
                flt.add_arch(value)
            except OSError:
                pass  # an architecture this libseccomp or kernel cannot filter
    for rule in config.get("syscalls") or []:
        action = _action(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # libseccomp refuses rules that repeat the default action
        args = rule.get("args") or []
        conds = [(a["index"], OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0)) for a in args]
        # Conditions on distinct arguments are ANDed in one rule; several on the same
        # argument mean "any of these values" (Docker's personality() rules), one rule each.
        if len({a["index"] for a in args}) == len(args):
            groups = [conds]
        else:
            groups = [[c] for c in conds]
        for name in rule.get("names") or ([rule["name"]] if rule.get("name") else []):
            number = flt.resolve(name)
            if number == ls.NR_ERROR:
                continue  # a syscall this libseccomp does not know: runc skips it too
            for group in groups:
                flt.add_rule(action, number, group)
    return flt
