"""Issue 25, point 6: `install`/`up` ran a user's plugin (CNI VERSION) on the host, outside any sandbox.
Now the host only looks at the file (a #! script or a binary); the plugin is asked VERSION in each node,
where the runtime will run it, before it replaces anything there.
"""

from __future__ import annotations

from nppctl.access.nodes import get_node, node_run
from nppctl.lab import install

CLUSTER = "np3pver"


def plugin(path, body: str):
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_the_host_never_runs_the_plugin(tmp_path):
    marker = tmp_path / "ran"
    path = plugin(tmp_path / "np3pverhost", f"#!/bin/sh\ntouch {marker}\necho hi\n")
    install.resolve_plugin(str(path))
    assert not marker.exists(), "the plugin was run on the host"


def test_a_plugin_that_does_not_answer_version_in_the_node_changes_nothing(cluster3, tmp_path):
    good = plugin(tmp_path / "np3pv", "#!/bin/sh\n"
                  'echo \'{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}\'\n')
    first = install.install(CLUSTER, nodes=["worker"], plugin=str(good), subnet="10.244.1.0/24")
    assert not first[0].error, first[0]
    node = get_node(CLUSTER, "worker")
    before = node_run(node, ["sha256sum", "/opt/cni/bin/.nppctl-real/np3pv", "/opt/cni/bin/np3pv"]).stdout
    confs = node_run(node, ["ls", "-A", "/etc/cni/net.d", "/opt/cni/bin", "/opt/cni/bin/.nppctl-real"]).stdout
    # the same name, now a script that exits 3 (as a plugin built for another libc would, in the node)
    plugin(good, "#!/bin/sh\necho 'cannot start here' >&2\nexit 3\n")
    results = install.install(CLUSTER, nodes=["worker"], plugin=str(good), subnet="10.244.1.0/24")
    error = results[0].error
    assert "np3pv is not a CNI plugin when run in this node: CNI VERSION exited 3: cannot start here" in error
    assert "nothing in the node was changed" in error, error
    after = node_run(node, ["sha256sum", "/opt/cni/bin/.nppctl-real/np3pv", "/opt/cni/bin/np3pv"]).stdout
    assert after == before
    # no file left beside its place either
    assert node_run(node, ["ls", "-A", "/etc/cni/net.d", "/opt/cni/bin",
                           "/opt/cni/bin/.nppctl-real"]).stdout == confs
