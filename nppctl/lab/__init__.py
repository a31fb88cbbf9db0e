"""Lab: what a student does to a lab, as library functions that render nothing.

up (`up` as kind creates a cluster: one typed context, a list of small actions), cluster (what up
and down share: actions and steps, preflight, the clean-up after a failure; down), labstate (the
lab's on-disk record), install (probe the nodes, apply each node's plan) and installplan (the plan,
pure: from the nodes' probes, files, renames, setup and keeper per node), status, checks (the
connectivity probes), services, logs, calls (the CNI calls on record, replays, the spec's verdicts),
doctor (this machine), subnets (pod subnets per node), kindconfig and kindpatches (the kind config up
renders), labshape (is the lab what `up` asks for?). Functions return data (dataclasses, dicts) and
take an `on_step` callback for progress; the face renders both.

May import: nppctl.access, nppctl.build, the islands (constants of nppctl.nodeside) and the base
(nppctl.errors, nppctl.resources). Never nppctl.cli.
"""
