"""`nppctl plugin test`: a CNI conformance card for any plugin.

Read in this order:
  checklist.py  what a check is (id, SPEC.md section, requirement, function), and how to add one
  checks.py     the card's checks, one function each, in the order they run, by SPEC.md area
  card.py       the runner: sets up, runs each check into a row of the card, cleans up, prints JSON
  cni.py        the container runtime's part: one plugin call, a config's chain run as a runtime does
  node.py       what the node and the pods hold (iproute2): links, addresses, routes, namespaces
  results.py    what a plugin's answers are held to: result type, result against the pod, error object
  sandbox.py    where the pods live: the sandbox's private mounts, or a network of its own in a node
  bundle.py     (host) the engine above as one script for `python3 -` where the card runs
  launch.py     (host) where it runs, a sandbox here or a lab node: run_card()

The engine (checklist.py to sandbox.py and card.py) is stdlib only, Python 3.9: it runs in a
sandbox or inside a lab node; its pings are nppctl/nodeside/icmp.py's.
"""
