"""`nppctl plugin test`: a CNI conformance card for any plugin.

card.py is the engine (stdlib only, Python 3.9: it runs in a sandbox or inside a lab node; its
pings are nppctl/nodeside/icmp.py's), launch.py decides where it runs: run_card().
"""
