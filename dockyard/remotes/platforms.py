"""Which image of a multi-platform index to pull (pure).

The platform comes from the client (`platform=linux/arm64/v8`) or is the
host's (`uname -m`: x86_64 is linux/amd64); the index entry is chosen as
Docker chooses: an exact variant first, then one that leaves it out.
"""

from __future__ import annotations

from ..content import Descriptor
from ..errors import InvalidArgument
from ..images.formats import Index, Platform, host_platform, select_manifest

_OSES = ("linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix")
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "arm": ("arm", ""),
    "i386": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
}
_KNOWN_ARCHES = {"amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le", "mips64",
                 "mipsle", "mips", "loong64", "wasm"}


def parse_platform(text: str) -> Platform:
    """`linux`, `linux/amd64`, `linux/arm/v7`, or an architecture alone (`arm64`), as containerd reads them."""
    parts = [p for p in text.strip().lower().split("/")]
    if not text.strip() or any(not p for p in parts) or len(parts) > 3:
        raise _bad(text)
    if len(parts) == 1:
        if parts[0] in _OSES:
            host = host_platform()
            return Platform(parts[0], host.architecture, host.variant)
        arch, variant = _arch(parts[0], "", text)
        return Platform("linux", arch, variant)
    if parts[0] not in _OSES:
        raise _bad(text)
    arch, variant = _arch(parts[1], parts[2] if len(parts) == 3 else "", text)
    return Platform(parts[0], arch, variant)


def _arch(name: str, variant: str, text: str) -> tuple[str, str]:
    arch, implied = _ARCH_ALIASES.get(name, (name, ""))
    if arch not in _KNOWN_ARCHES:
        raise _bad(text)
    variant = variant or implied
    if arch == "arm64" and variant == "v8":
        variant = ""  # arm64's only variant; entries usually leave it out
    return arch, variant


def _bad(text: str) -> InvalidArgument:
    return InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument')


def choose_manifest(index: Index, platform: Platform | None = None) -> Descriptor:
    """The entry of `index` for `platform` (the host's by default); NotFound in Docker's words if none."""
    return select_manifest(index, platform or host_platform())
