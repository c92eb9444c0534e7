"""Networks: a container's network namespace, bridges and veth pairs, addresses, published ports, names.

Vocabulary, used across the package:
  namespace  a network namespace kept alive by a bind mount on a file (`netns`)
  bridge     a network's switch on the host, holding the gateway address (`links`)
  endpoint   a veth pair: one end a port of the bridge, the other `eth0`… in a namespace (`links`)
  subnet, gateway, address
             what IPAM hands out, as dockerd's default driver does (`ipam`, pure)
  rules      the packet filter's part: forwarding, isolation between networks, masquerade (`firewall`)
  mapping    a published port: host address and port to a container's, by a userland proxy (`portproxy`)
  resolver   the embedded DNS server of user-defined networks (`dns`)

These are mechanisms only: records, the Engine API and the wiring into a
container's start and stop live in daemon/networks.py.  pyroute2 (netlink)
is imported on first use by `links`, never by importing this package.
The engine is threaded and never forks: whatever must run inside a
namespace runs in a short-lived thread that joined it (`netns.run_in`).
"""
