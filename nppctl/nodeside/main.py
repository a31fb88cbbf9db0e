"""The agent's entry in the node: `main.run(argv)` with argv = [script, COMMAND, SPEC_JSON].

Prints one JSON object on stdout: the command's answer, or {"error": msg, "cni": CNI error or null}
with exit 1. Each command imports only the module that does it.
"""

import importlib
import json
import os
import sys

from .base import NETNS_DIR, AgentError

COMMANDS = {
    "probe": ("facts", "probe"),
    "status": ("facts", "status"),
    "setup": ("nodenet", "setup"),
    "cni": ("runtime", "cni"),
    "keep": ("keeper", "keep"),
    "ping": (None, "ping"),
    "tcp-serve": ("tcp", "serve"),
    "tcp-stop": ("tcp", "stop"),
    "tcp-connect": ("tcp", "connect"),
    "service": ("kubeproxy", "service"),
    "map": ("netmap", "read"),
    "calls": ("calls", "calls"),
    "replay": ("calls", "replay"),
}


def ping(spec):
    """ICMP echo to spec["targets"] from the node, or from pod spec["pod"]'s namespace."""
    from . import icmp

    pod = spec.get("pod")
    netns = f"{NETNS_DIR}/{pod}" if pod else spec.get("netns")
    if pod and not os.path.exists(netns):
        raise AgentError(f"pod {pod} has no network namespace in this node: run `nppctl cni add` first")
    return {"replies": icmp.ping(spec["targets"], netns=netns, timeout=float(spec.get("timeout", 2)))}


def run(argv):
    try:
        module, func = COMMANDS[argv[1]]
        fn = getattr(importlib.import_module(f".{module}", __package__), func) if module else globals()[func]
        answer, code = fn(json.loads(argv[2])), 0
    except AgentError as err:
        answer, code = {"error": err.msg, "cni": err.cni}, 1
    sys.stdout.write(json.dumps(answer) + "\n")
    return code
