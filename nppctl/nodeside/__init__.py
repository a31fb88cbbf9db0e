"""What nppctl runs inside a node, with the node's own /usr/bin/python3 (stdlib only, Python 3.9 syntax).

nppctl/access/agent.py ships these modules to a node on every call (no files are left behind) and reads
the one JSON object `main.py` prints. One module per job:
  base.py     paths, the agent's error, running `ip`/`iptables` argv lists, JSON files
  facts.py    probe (python3, file hashes, installed state) and status (facts for `nppctl status`)
  nodenet.py  the node's own part of the pod network: cni0, routes to other nodes, masquerade, forwarding
  keeper.py   the keeper install leaves running in a node: keeps nodenet's part right after restarts
  runtime.py  the container runtime's part: runs the first conflist's chain for ADD/DEL/CHECK
  icmp.py     ICMP echo from Python (kind nodes have no `ping`), in the node or in a pod's namespace
  tcp.py      TCP server and clients from Python in a pod's namespace (the check's Service probe)
  kubeproxy.py  a ClusterIP Service as iptables rules shaped as kube-proxy's (labs without kube-proxy)
  netmap.py   map: the node's data path as `ip -j` shows it (links, routes, namespaces, iptables)
  calls.py    the CNI calls on record: the Call both sides use, the record parser, calls and replay
  recorder.sh not Python: the bash recorder put in front of a plugin (nppctl/access/recorder.py renders
              it); agent.py ships only the .py modules
  main.py     command dispatch: probe, setup, status, cni, ping, tcp-*, service, keep, map, calls, replay
"""
