"""Two networks' first ADDs at once in a fresh network namespace: both keep their firewall rules.

Each round runs in `unshare --mount --net` with a tmpfs on /run (so its pods' netns entries, the
xtables lock and nppnet's firewall lock are its own): nothing of it outlives the round. The two
networks (np2br41/np2net41, np2br42/np2net42) have their own name, subnet, bridge and dataDir; each
ADD finds NPPNET-FORWARD missing and makes it. A restore that declared the chain
(`:NPPNET-FORWARD - [0:0]`) flushed it under --noflush when the other ADD had just made it: one
network's rules gone, both ADDs exit 0 (7 rounds of 15 in the issue).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from nppctl.plugin import firewall
from tests.robustness.cni import Net
from tests.robustness.conftest import REPO

ROUNDS = 15
INDEXES = (41, 42)

ROUND = """
import json, subprocess, sys
from pathlib import Path
from tests.robustness.cni import Net
exe, work, indexes = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
subprocess.run(["mount", "-t", "tmpfs", "np2race", "/run"], check=True)
nets = [Net(exe=exe, work=work / f"net{i}", index=i, extra={"ipMasq": True}) for i in indexes]
spaces = [net.netns(1)[0] for net in nets]
procs = [net.spawn("ADD", net.cid("race"), ns) for net, ns in zip(nets, spaces)]
replies = []
for p in procs:
    out, err = p.communicate(timeout=60)
    replies.append({"rc": p.returncode, "out": out.decode(), "err": err.decode()[-300:]})
saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
print(json.dumps({"replies": replies, "saved": saved}))
"""


def test_parallel_first_adds_of_two_networks_keep_both_networks_rules(nppnet_exe, tmp_path):
    nets = [Net(exe=nppnet_exe, work=tmp_path, index=i) for i in INDEXES]
    wanted = {
        net.name: firewall.wanted_rules(net.bridge, net.subnet, net.subnet, True, net.name) for net in nets
    }
    lost = []
    for n in range(ROUNDS):
        work = tmp_path / f"round{n}"
        for net in nets:
            (work / f"net{net.index}").mkdir(parents=True)
        done = subprocess.run(
            [
                "unshare",
                "--mount",
                "--net",
                sys.executable,
                "-c",
                ROUND,
                str(nppnet_exe),
                str(work),
                json.dumps(INDEXES),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        seen = json.loads(done.stdout.splitlines()[-1])
        assert [r["rc"] for r in seen["replies"]] == [0, 0], seen["replies"]
        lines = seen["saved"].splitlines()
        gone = [
            (name, line)
            for name, rules in wanted.items()
            for line in rules["filter"] + rules["nat"]
            if line not in lines
        ]
        jumps = [
            lines.count(f"-A FORWARD -j {firewall.FILTER_CHAIN}"),
            lines.count(f"-A POSTROUTING -j {firewall.NAT_CHAIN}"),
        ]
        if gone or jumps != [1, 1]:
            lost.append((n, gone, jumps))
    assert lost == [], f"{len(lost)} of {ROUNDS} rounds lost rules or doubled a jump: {lost}"
