"""Access: how nppctl reaches machines: node containers, the Kubernetes API, the providers.

nodes (node containers through the Docker SDK: list, run, exec, copy), kube (the official
Kubernetes client), providers/ (kind | docker: create and delete a lab's nodes), nodeimage (the
node image: kind's default, a derived image with python3), agent (host side of the node agent in
nppctl/nodeside), runtime (host side of `nppctl cni`: a runtime's CNI calls in a node), throwaway
(short-lived containers, SIGINT held while they are removed), localimages (node images on this
machine), registrymirror (containerd's registry mirror config in nodes), recorder (the files that
put the CNI call recorder, nppctl/nodeside/recorder.sh, in front of a plugin in a node).

Knows nothing of the lab. May import: nppctl.build, the islands (nppctl.nodeside for the agent),
the base (nppctl.errors, nppctl.resources) and docker / kubernetes (inside functions where
`nppctl --help` would load them). Never nppctl.lab or nppctl.cli.
"""
