"""Networks: a container's network namespace, bridges and veth pairs, addresses, published ports, names."""
