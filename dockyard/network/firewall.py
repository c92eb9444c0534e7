"""Packet filter rules for bridge networks, through iptables (legacy or nft backend alike).

Everything lives in chains of our own, reached by one jump each from the
built-in chains; other tools' chains (dockerd's DOCKER*, a firewall
manager's) are never read or written.  Every rule we add to our chains
carries the comment `dockyard:<bridge>`, so a bridge's teardown removes
exactly its own rules whatever options its setup had.

    filter FORWARD      -j DOCKYARD-FORWARD          (inserted first)
      DOCKYARD-FORWARD  -j DOCKYARD-ISOLATION-1      (always first)
                        per bridge: replies in, intra-bridge, out (or drops when internal)
      DOCKYARD-ISOLATION-1  -i BR ! -o BR -j DOCKYARD-ISOLATION-2   (per bridge)
      DOCKYARD-ISOLATION-2  -o BR -j DROP                             (per bridge)
    nat POSTROUTING     -j DOCKYARD-POSTROUTING
      DOCKYARD-POSTROUTING  -s SUBNET ! -o BR -j MASQUERADE           (per bridge)
    nat PREROUTING      -m addrtype --dst-type LOCAL -j DOCKYARD-DNAT
    nat OUTPUT          ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKYARD-DNAT
      DOCKYARD-DNAT     [-d HOST_IP] ! -i BR -p P --dport HP -j DNAT --to-destination IP:CP   (per port)
    filter DOCKYARD-FORWARD  -d IP ! -i BR -o BR -p P --dport CP -j ACCEPT                  (per port)

Published ports are DNAT rules (`publish`), as dockerd's: they carry what
comes to the host's own addresses, from outside or from the host itself;
connections to 127.0.0.1 are never routed that way, which is what the
userland proxy (`portproxy`) is for.

The two isolation chains keep networks apart as dockerd does: a packet that
leaves one of our bridges for another one of our bridges is dropped.  When
the last bridge goes, the chains and jumps go too.

Speed: a setup or teardown reads the tables once (`iptables-save`) and
writes its changes in one atomic batch (`iptables-restore --noflush`), about
5 ms in all; if the batch fails (another tool changed the tables meanwhile)
each change is redone one by one, checked with `-C`.

With br_netfilter loaded (`bridge-nf-call-iptables`), even frames switched
between two ports of one bridge pass FORWARD: hence the intra-bridge accept.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import threading

from ..errors import InvalidArgument, Unavailable

FORWARD = "DOCKYARD-FORWARD"
ISOLATION_1 = "DOCKYARD-ISOLATION-1"
ISOLATION_2 = "DOCKYARD-ISOLATION-2"
POSTROUTING = "DOCKYARD-POSTROUTING"
DNAT = "DOCKYARD-DNAT"

_LOCAL = ["-m", "addrtype", "--dst-type", "LOCAL"]
# (table, built-in chain, the jump to our chain, insert first?)
_HOOKS = (
    ("filter", "FORWARD", ["-j", FORWARD], True),
    ("nat", "POSTROUTING", ["-j", POSTROUTING], False),
    ("nat", "PREROUTING", [*_LOCAL, "-j", DNAT], False),
    ("nat", "OUTPUT", ["!", "-d", "127.0.0.0/8", *_LOCAL, "-j", DNAT], False),
)
_CHAINS = (("filter", ISOLATION_2), ("filter", ISOLATION_1), ("filter", FORWARD), ("nat", POSTROUTING),
           ("nat", DNAT))

_lock = threading.Lock()
IPTABLES = "iptables"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"

Rule = tuple[str, str, list[str]]  # (table, chain, the rule's words after `-A CHAIN`)


def _exe(suffix: str = "") -> str:
    exe = shutil.which(IPTABLES + suffix)
    if exe is None:
        raise Unavailable(f"{IPTABLES}{suffix} not found: bridge networks need it for their forwarding rules")
    return exe


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([_exe(), "-w", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise Unavailable(f"{IPTABLES} {shlex.join(args)}: {proc.stderr.strip() or f'exit status {proc.returncode}'}")
    return proc


class Tables:
    """What `iptables-save` shows of the tables we use: chains and their rules, as argument lists."""

    def __init__(self, text: str):
        self.rules: dict[tuple[str, str], list[list[str]]] = {}
        table = ""
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(":") and table:
                self.rules.setdefault((table, line[1:].split()[0]), [])
            elif line.startswith("-A ") and table:
                words = shlex.split(line)
                self.rules.setdefault((table, words[1]), []).append(words[2:])

    @classmethod
    def read(cls) -> Tables:
        out = []
        for table in ("filter", "nat"):
            proc = subprocess.run([_exe("-save"), "-t", table], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise Unavailable(f"{IPTABLES}-save -t {table}: {proc.stderr.strip()}")
            out.append(proc.stdout)
        return cls("\n".join(out))

    def has_chain(self, table: str, chain: str) -> bool:
        return (table, chain) in self.rules

    def has(self, table: str, chain: str, rule: list[str]) -> bool:
        return rule in self.rules.get((table, chain), [])

    def tagged(self, bridge: str) -> list[Rule]:
        comment = _comment(bridge)
        return [(table, chain, rule) for table, chain in _CHAINS for rule in self.rules.get((table, chain), [])
                if comment in _comments(rule)]


def _comment(bridge: str) -> str:
    return f"dockyard:{bridge}"


def _comments(rule: list[str]) -> list[str]:
    return [rule[i + 1] for i, word in enumerate(rule[:-1]) if word == "--comment"]


def _tag(bridge: str) -> list[str]:
    return ["-m", "comment", "--comment", _comment(bridge)]


def bridge_rules(bridge: str, subnet: str, masquerade: bool = True, internal: bool = False) -> list[Rule]:
    """The rules a bridge network needs, in the words `iptables -S` prints them (pure)."""
    subnet = str(ipaddress.IPv4Network(subnet, strict=False))
    tag = _tag(bridge)
    rules: list[Rule] = [
        ("filter", ISOLATION_1, ["-i", bridge, "!", "-o", bridge, *tag, "-j", ISOLATION_2]),
        ("filter", ISOLATION_2, ["-o", bridge, *tag, "-j", "DROP"]),
        ("filter", FORWARD, ["-i", bridge, "-o", bridge, *tag, "-j", "ACCEPT"]),
    ]
    if internal:
        rules += [
            ("filter", FORWARD, ["-i", bridge, "!", "-o", bridge, *tag, "-j", "DROP"]),
            ("filter", FORWARD, ["!", "-i", bridge, "-o", bridge, *tag, "-j", "DROP"]),
        ]
    else:
        rules += [
            ("filter", FORWARD, ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *tag,
                                 "-j", "ACCEPT"]),
            ("filter", FORWARD, ["-i", bridge, "!", "-o", bridge, *tag, "-j", "ACCEPT"]),
        ]
        if masquerade:
            rules.append(("nat", POSTROUTING, ["-s", subnet, "!", "-o", bridge, *tag, "-j", "MASQUERADE"]))
    return rules


# A step of a batch: (table, command words), e.g. ("filter", ["-A", "DOCKYARD-FORWARD", "-i", …]).
Step = tuple[str, list[str]]


def setup_steps(tables: Tables, rules: list[Rule]) -> list[Step]:
    """What to add to `tables` for `rules` (pure): our chains, their jumps, the missing rules."""
    steps: list[Step] = []
    for table, chain in _CHAINS:
        if not tables.has_chain(table, chain):
            steps.append((table, ["-N", chain]))
    if not tables.has("filter", FORWARD, ["-j", ISOLATION_1]):
        steps.append(("filter", ["-I", FORWARD, "1", "-j", ISOLATION_1]))  # isolation before any accept
    for table, builtin, jump, first in _HOOKS:
        present = tables.has(table, builtin, jump)
        if present and first and _verdict_before(tables.rules.get((table, builtin), []), jump):
            # Another tool (dockerd restarting) put its accepts in front of our jump: take the front again.
            steps.append((table, ["-D", builtin, *jump]))
            present = False
        if not present:
            where = ["-I", builtin, "1"] if first else ["-A", builtin]
            steps.append((table, [*where, *jump]))
    for table, chain, rule in rules:
        if not tables.has(table, chain, rule):
            steps.append((table, ["-A", chain, *rule]))
    return steps


def _verdict_before(rules: list[list[str]], jump: list[str]) -> bool:
    """Whether a rule that decides (ACCEPT, DROP, REJECT) comes before `jump` in a chain's `rules`."""
    return any(rule[-1:] and rule[-1] in ("ACCEPT", "DROP", "REJECT") for rule in rules[:rules.index(jump)])


def teardown_steps(tables: Tables, bridge: str) -> list[Step]:
    """What to delete from `tables` for `bridge` (pure); with its last bridge, our chains and jumps too."""
    mine = tables.tagged(bridge)
    steps: list[Step] = [(table, ["-D", chain, *rule]) for table, chain, rule in mine]
    left = [(t, c, r) for t, c in _CHAINS for r in tables.rules.get((t, c), [])
            if (t, c, r) not in mine and not (c == FORWARD and r == ["-j", ISOLATION_1])]
    if left:
        return steps
    for table, builtin, jump, _first in _HOOKS:
        for rule in tables.rules.get((table, builtin), []):
            if rule == jump:
                steps.append((table, ["-D", builtin, *jump]))
    for table, chain in reversed(_CHAINS):  # FORWARD (it jumps to ISOLATION_1) before ISOLATION_1…
        if tables.has_chain(table, chain):
            steps += [(table, ["-F", chain]), (table, ["-X", chain])]
    return steps


def restore_script(steps: list[Step]) -> str:
    """The `iptables-restore --noflush` input for `steps`, table by table in their order."""
    out: list[str] = []
    for table in dict.fromkeys(t for t, _ in steps):
        out.append(f"*{table}")
        out += [" ".join(_quote(w) for w in words) for t, words in steps if t == table]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _quote(word: str) -> str:
    # iptables-restore splits on blanks and knows double quotes only (no shell quoting of `!`).
    if word and not any(c.isspace() or c in "\"'\\" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _apply(steps: list[Step]) -> bool:
    """Run `steps` as one atomic batch; False if the batch was refused (nothing of it applied)."""
    if not steps:
        return True
    proc = subprocess.run([_exe("-restore"), "-w", "--noflush"], input=restore_script(steps),
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0


def setup_bridge(bridge: str, subnet: str, masquerade: bool = True, internal: bool = False) -> None:
    """Rules so that containers on `bridge` reach each other, the host and (unless internal) the outside.

    Idempotent: rules already there are not added twice.
    """
    rules = bridge_rules(bridge, subnet, masquerade, internal)
    with _lock:
        if not _apply(setup_steps(Tables.read(), rules)):
            _setup_one_by_one(rules)
        if not internal:
            _ensure_ip_forward()


def _setup_one_by_one(rules: list[Rule]) -> None:
    for table, chain in _CHAINS:
        if _run("-t", table, "-n", "-L", chain, check=False).returncode != 0:
            proc = _run("-t", table, "-N", chain, check=False)
            if proc.returncode != 0 and _run("-t", table, "-n", "-L", chain, check=False).returncode != 0:
                raise Unavailable(f"{IPTABLES} -t {table} -N {chain}: {proc.stderr.strip()}")
    _ensure_rule("filter", FORWARD, ["-j", ISOLATION_1], first=True)
    for table, builtin, jump, first in _HOOKS:
        _ensure_rule(table, builtin, jump, first=first)
    for table, chain, rule in rules:
        _ensure_rule(table, chain, rule)


def _ensure_rule(table: str, chain: str, rule: list[str], first: bool = False) -> None:
    if _run("-t", table, "-C", chain, *rule, check=False).returncode != 0:
        _run("-t", table, *(["-I", chain, "1"] if first else ["-A", chain]), *rule)


def _ensure_ip_forward() -> None:
    try:
        with open(IP_FORWARD) as f:
            if f.read().strip() == "1":
                return
        with open(IP_FORWARD, "w") as f:
            f.write("1")
    except OSError as err:
        raise Unavailable(f"enabling IPv4 forwarding: {err.strerror}") from None


def teardown_bridge(bridge: str, subnet: str = "") -> None:
    """Remove every rule `setup_bridge` added for `bridge`; our chains go with the last bridge.  Idempotent."""
    del subnet  # the comment finds the rules, whatever subnet or options they were made with
    with _lock:
        if _apply(teardown_steps(Tables.read(), bridge)):
            return
        # Changed under us: one by one, each step only if still possible.
        for table, words in teardown_steps(Tables.read(), bridge):
            _run("-t", table, *words, check=False)


def port_rules(bridge: str, host_ip: str, host_port: int, proto: str, target_ip: str,
               target_port: int) -> list[Rule]:
    """The rules of one published port (pure): DNAT to the container, and FORWARD's accept of it."""
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid protocol {proto!r} for a published port")
    tag = _tag(bridge)
    target = ipaddress.IPv4Address(target_ip)
    to = ["-d", f"{ipaddress.IPv4Address(host_ip)}/32"] if host_ip and host_ip != "0.0.0.0" else []
    return [
        ("nat", DNAT, [*to, "!", "-i", bridge, "-p", proto, "-m", proto, "--dport", str(int(host_port)), *tag,
                       "-j", "DNAT", "--to-destination", f"{target}:{int(target_port)}"]),
        ("filter", FORWARD, ["-d", f"{target}/32", "!", "-i", bridge, "-o", bridge, "-p", proto, "-m", proto,
                             "--dport", str(int(target_port)), *tag, "-j", "ACCEPT"]),
    ]


def _ipv6(host_ip: str) -> bool:
    return ":" in (host_ip or "")


def publish(bridge: str, host_ip: str, host_port: int, proto: str, target_ip: str, target_port: int) -> None:
    """DNAT host_ip:host_port (all the host's addresses for "" or 0.0.0.0) to the container.  Idempotent.

    The bridge must have been set up.  IPv6 host addresses are the proxy's alone (no ip6tables here).
    """
    if _ipv6(host_ip):
        return
    rules = port_rules(bridge, host_ip, host_port, proto, target_ip, target_port)
    with _lock:
        tables = Tables.read()
        if not _apply(setup_steps(tables, rules)):
            _setup_one_by_one(rules)


def unpublish(bridge: str, host_ip: str, host_port: int, proto: str, target_ip: str, target_port: int) -> None:
    """Remove what `publish` added for this port.  Idempotent."""
    if _ipv6(host_ip):
        return
    rules = port_rules(bridge, host_ip, host_port, proto, target_ip, target_port)
    with _lock:
        tables = Tables.read()
        steps = [(t, ["-D", c, *r]) for t, c, r in rules if tables.has(t, c, r)]
        if not _apply(steps):
            for table, chain, rule in rules:
                while _run("-t", table, "-C", chain, *rule, check=False).returncode == 0:
                    _run("-t", table, "-D", chain, *rule)


def rules_of(bridge: str) -> list[Rule]:
    """The rules in our chains that belong to `bridge` (for tests and diagnostics)."""
    return Tables.read().tagged(bridge)
