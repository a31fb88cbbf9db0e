"""`nppctl plugin test`: a CNI conformance card for any plugin.

card.py is the engine (stdlib only, Python 3.9: it runs in a sandbox or inside a lab node),
icmp.py the ICMP echo it runs in pods' namespaces, launch.py decides where it runs: run_card().
"""
