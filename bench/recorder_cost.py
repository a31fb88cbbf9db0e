#!/usr/bin/env python3
"""What the CNI call recorder (nppctl/nodeside/recorder.sh) adds to a plugin call, measured in a lab node.

A docker-provider node (privileged, as kind's) from the bookworm test node image (python3 for nppnet):
each plugin sits plain at /var/tmp/np24b/direct/TYPE and recorded at /opt/cni/bin/TYPE (the files
nppctl.access.recorder gives install). One bash loop in the node calls them as a runtime does (the
config on stdin, CNI_* set, streams to files), direct and recorded interleaved (order flipped every
round), timing each call with EPOCHREALTIME: no docker exec inside the measurement. Cases:
- tiny VERSION: a bash plugin that prints one line (the recorder's cost is largest against it);
- loopback VERSION: the reference Go plugin the node image carries;
- nppnet VERSION, ADD, DEL: nppctl's plugin (ADD and DEL into a fresh netns each round).
Prints per case the median wall time (ms), the ratio recorded / direct and the ms the recorder adds,
and the mean CPU time (user + sys of the call's processes, from bash's `time`): on a busy machine the
wall time also holds waits for a CPU, once per extra process, which the CPU time does not.

Not a test: `python3 bench/recorder_cost.py [--rounds N] [--image IMAGE]`. The node is np24bbench,
deleted at the end (also after a failure or Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CLUSTER = "np24bbench"
WORK = "/var/tmp/np24b"
TINY = b'#!/bin/bash\necho \'{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}\'\n'
# The node's loop: ROUNDS rounds; per round and case, direct and recorded in alternating order.
LOOP = r'''
set -u
W=/var/tmp/np24b; rounds=$1
call() { # MODE TYPE COMMAND NETNS CONF: "CASE MODE EXIT WALL_US CPU_MS" (CPU: user + sys, children)
    local bin=/opt/cni/bin/$2 TIMEFORMAT='%3U %3S' rc user sys
    [ "$1" = direct ] && bin=$W/direct/$2
    local t0=$EPOCHREALTIME
    { time CNI_COMMAND=$3 CNI_CONTAINERID=bench-$4 CNI_NETNS=/var/run/netns/$4 CNI_IFNAME=eth0 \
        CNI_PATH=/opt/cni/bin "$bin" <"$5" >$W/out 2>$W/err; } 2>$W/time
    rc=$?
    local t1=$EPOCHREALTIME
    read -r user sys <$W/time
    echo "$2-$3 $1 $rc $(( ${t1//[!0-9]/} - ${t0//[!0-9]/} )) $user $sys"
}
for r in $(seq "$rounds"); do
    if (( r % 2 )); then order="direct recorded"; else order="recorded direct"; fi
    for mode in $order; do
        call $mode tiny VERSION none $W/version.json
        call $mode loopback VERSION none $W/version.json
        call $mode nppnet VERSION none $W/version.json
        ns=b$r$mode; ip netns add $ns
        call $mode nppnet ADD $ns $W/nppnet.json
        call $mode nppnet DEL $ns $W/nppnet.json
        ip netns del $ns
    done
done
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--image", default=os.environ.get("NPPCTL_TEST_IMAGE_BOOKWORM", ""))
    args = parser.parse_args()
    if not args.image:
        sys.exit("pass --image (a node image with python3, e.g. the bookworm test image) or set "
                 "NPPCTL_TEST_IMAGE_BOOKWORM")

    import docker

    from nppctl.access.nodes import get_node, node_exec, node_run, put_files
    from nppctl.access.providers.base import ClusterSpec
    from nppctl.access.providers.docker import DockerProvider
    from nppctl.access.recorder import recorder_dirs, recorder_files
    from nppctl.build import artifacts

    provider = DockerProvider(docker.from_env())
    provider.delete(CLUSTER)
    try:
        provider.create(ClusterSpec(name=CLUSTER, workers=0, image=args.image))
        node = get_node(CLUSTER, "control-plane")
        nppnet = artifacts.plugin_script("nppnet", artifacts.EXECUTABLES["nppnet"])
        node_exec(node, ["mkdir", "-p", f"{WORK}/direct", *recorder_dirs()])
        loop_bytes = node.container.exec_run(["cat", "/opt/cni/bin/loopback"], stderr=False).output
        assert loop_bytes.startswith(b"\x7fELF"), "no loopback plugin in the node image"
        conf = {"cniVersion": "1.0.0", "name": "bench", "type": "nppnet", "bridge": "npb0",
                "subnet": "10.250.0.0/16", "dataDir": "/var/lib/cni/np24b", "logFile": "/var/log/np24b.log"}
        files = {f"{WORK}/loop.sh": (LOOP.encode(), 0o755),
                 f"{WORK}/version.json": (b'{"cniVersion":"1.0.0","name":"bench"}', 0o644),
                 f"{WORK}/nppnet.json": (json.dumps(conf).encode(), 0o644)}
        for ptype, exe in (("tiny", TINY), ("loopback", loop_bytes), ("nppnet", nppnet)):
            files[f"{WORK}/direct/{ptype}"] = (exe, 0o755)
            files.update(recorder_files(ptype, exe))
        put_files(node, files)
        res = node_run(node, ["bash", f"{WORK}/loop.sh", str(args.rounds)])
        if res.code != 0:
            sys.exit(f"the loop failed: {res.stderr.strip()[-500:]}")
        times: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        failed: dict[str, int] = {}
        for line in res.stdout.splitlines():
            case, mode, rc, us, user, sys_ = line.split()
            times.setdefault((case, mode), []).append(int(us) / 1000)
            cpu.setdefault((case, mode), []).append((float(user) + float(sys_)) * 1000)
            if rc != "0":
                failed[f"{case} {mode}"] = failed.get(f"{case} {mode}", 0) + 1
        records = node_run(node, ["bash", "-c", "ls /var/log/nppctl/calls | grep -c 'call$'"]).stdout.strip()
        python = node_run(node, ["python3", "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    finally:
        provider.delete(CLUSTER)
    print(f"{args.rounds} rounds in a docker-provider node of {args.image} (python3 {python}); "
          f"{records} records written")
    print("wall: median ms per call; CPU: mean ms of user + sys per call (the processes' own time, which"
          " waits for a busy CPU do not inflate)")
    print(f"{'case':<16} {'wall direct':>11} {'recorded':>9} {'ratio':>6} {'added':>6}   "
          f"{'CPU direct':>10} {'recorded':>9} {'added':>6}")
    for case in ("tiny-VERSION", "loopback-VERSION", "nppnet-VERSION", "nppnet-ADD", "nppnet-DEL"):
        d = statistics.median(times[(case, "direct")])
        r = statistics.median(times[(case, "recorded")])
        cd = statistics.mean(cpu[(case, "direct")])
        cr = statistics.mean(cpu[(case, "recorded")])
        print(f"{case:<16} {d:>11.2f} {r:>9.2f} {r / d:>5.2f}x {r - d:>6.2f}   {cd:>10.2f} {cr:>9.2f} "
              f"{cr - cd:>6.2f}")
    if failed:
        print("calls that failed:", failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
