"""The firewall's batches, computed from an iptables-save text (pure)."""

from __future__ import annotations

from dockyard.network import firewall

DOCKERD_FIRST = """*filter
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
:DOCKYARD-FORWARD - [0:0]
:DOCKYARD-ISOLATION-1 - [0:0]
:DOCKYARD-ISOLATION-2 - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A FORWARD -j DOCKYARD-FORWARD
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
:DOCKYARD-POSTROUTING - [0:0]
:DOCKYARD-DNAT - [0:0]
COMMIT
"""


def test_our_jump_is_put_back_in_front_of_another_tools_verdicts():
    """dockerd restarting puts its accepts first; the next setup moves our jump before them again."""
    steps = firewall.setup_steps(firewall.Tables(DOCKERD_FIRST), [])
    jump = ["-j", firewall.FORWARD]
    assert ("filter", ["-D", "FORWARD", *jump]) in steps
    assert steps.index(("filter", ["-D", "FORWARD", *jump])) < steps.index(("filter", ["-I", "FORWARD", "1", *jump]))


def test_a_jump_already_in_front_stays():
    text = DOCKERD_FIRST.replace("-A FORWARD -i docker0 -o docker0 -j ACCEPT\n-A FORWARD -j DOCKYARD-FORWARD\n",
                                 "-A FORWARD -j DOCKYARD-FORWARD\n-A FORWARD -i docker0 -o docker0 -j ACCEPT\n")
    steps = firewall.setup_steps(firewall.Tables(text), [])
    assert not [s for s in steps if s[0] == "filter" and s[1][:2] in (["-D", "FORWARD"], ["-I", "FORWARD"])
                and s[1][-1] == firewall.FORWARD]
