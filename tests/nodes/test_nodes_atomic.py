"""Issue 25, point 6: `install` replaces a node's files whole. put_archive removes a file and writes it
anew, so a reader in between (containerd watching /etc/cni/net.d, a runtime execing the plugin) could
find no config or no plugin; install now puts each file beside its place and the node renames it over.

Seen in the node itself: an inotify watch on /etc/cni/net.d and /opt/cni/bin (python3's ctypes, in the
node) while install changes the conflist and the plugin. A deleted name is a moment with no file.
"""

from __future__ import annotations

import json
import threading
import time

from nppctl.access.nodes import get_node, node_run
from nppctl.lab import install

CLUSTER = "np3atom"

WATCH = r"""
import ctypes, os, select, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
IN_CREATE, IN_DELETE, IN_MOVED_TO, IN_MOVED_FROM = 0x100, 0x200, 0x80, 0x40
dirs = {}
for d in sys.argv[2:]:
    dirs[libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM)] = d
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    if not select.select([fd], [], [], 0.2)[0]:
        continue
    data = os.read(fd, 65536)
    at = 0
    while at < len(data):
        wd, mask, _, size = struct.unpack_from("iIII", data, at)
        name = data[at + 16: at + 16 + size].rstrip(b"\0").decode()
        kind = {IN_CREATE: "create", IN_DELETE: "delete", IN_MOVED_TO: "moved_to",
                IN_MOVED_FROM: "moved_from"}.get(mask & 0x3C0, hex(mask))
        print(kind, dirs[wd] + "/" + name, flush=True)
        at += 16 + size
"""


def watch(node, seconds: float) -> tuple[threading.Thread, list[str]]:
    seen: list[str] = []

    def run():
        res = node_run(node, ["python3", "-c", WATCH, str(seconds), "/etc/cni/net.d", "/opt/cni/bin"])
        seen.extend(res.stdout.splitlines())

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.5)  # the watch is set (python3's start-up in the node)
    return thread, seen


def test_install_replaces_the_conflist_and_the_plugin_whole(cluster3):
    install.install(CLUSTER, nodes=["worker"], subnet="10.244.1.0/24", pod_cidr="10.244.0.0/16")
    node = get_node(CLUSTER, "worker")
    conf = "/etc/cni/net.d/09-nppnet.conflist"
    # another subnet changes the conflist; a plugin changed by hand is written again
    node_run(node, ["sh", "-c", "echo '# changed' >> /opt/cni/bin/nppnet"])
    thread, seen = watch(node, 8)
    done = install.install(CLUSTER, nodes=["worker"], subnet="10.244.7.0/24", pod_cidr="10.244.0.0/16")
    thread.join()
    assert f"wrote {conf}" in done[0].changes and "wrote /opt/cni/bin/nppnet" in done[0].changes, done
    assert seen[0] == "ready", seen
    for path in (conf, "/opt/cni/bin/nppnet"):
        assert f"delete {path}" not in seen, seen  # never a moment without the file
        assert f"moved_to {path}" in seen, seen  # renamed over it, whole
    assert json.loads(node_run(node, ["cat", conf]).stdout)["plugins"][0]["subnet"] == "10.244.7.0/24"
    assert "nppctl-new" not in node_run(node, ["ls", "-a", "/etc/cni/net.d", "/opt/cni/bin"]).stdout
