"""`nppctl map`: a picture of the lab's data path as it is right now, read live from the nodes.

model.py     the map as one dict: nodes, conflists, bridge, pods and their veths, routes, firewall,
             and every mismatch found (read through the node agent's `map`, nodeside/netmap.py)
firewall.py  iptables -S lines read for one packet: FORWARD's verdict, a Service's DNAT, masquerades
path.py      the hops a packet takes between two pods (or addresses), each checked, the first broken
tree.py      the terminal rendering: a rich tree that reads at 80 columns
svg.py       the diagram: nodes as boxes, bridge, pods, veth links, routes (no network, no browser)
"""
