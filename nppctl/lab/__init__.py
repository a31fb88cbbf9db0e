"""Lab: what a student does to a lab, as library functions that render nothing.

cluster (up/down: create, label, install, wait), install (plugin, conflist, cni0, routes on nodes),
status, checks (the connectivity probes), services, logs, calls (the CNI calls on record, replays,
the spec's verdicts), doctor (this machine), subnets (pod
subnets per node), kindconfig and kindpatches (the kind config up renders), labshape (is the lab
what `up` asks for?). Functions return data (dataclasses, dicts) and take an `on_step` callback
for progress; the face renders both.

May import: nppctl.access, nppctl.build, the islands (constants of nppctl.nodeside) and the base
(nppctl.errors, nppctl.resources). Never nppctl.cli.
"""
