"""issue 16: `up` on an existing lab keeps it only when it is what was asked, and every check that can
run before anything is made does (name length, pod CIDR capacity, the plugin file a #! script or a binary);
`status` ✓ for a plugin means it answered VERSION in the node.

Real Docker engine, the docker provider and the test node image; every cluster here is named np16b*.
"""

from __future__ import annotations

import json

from tests.lab.test_failsafe_lab import files_under, one_line_error

TEXT = b"hi\n"  # the 3-byte text file of the issue


def text_plugin(lab):
    path = lab.cwd.parent / "np16b-textplugin"
    path.write_bytes(TEXT)
    path.chmod(0o755)
    return path


def snapshot(lab, name):
    nets = sorted(n.name for n in lab.docker.networks.list())
    return files_under(lab.cwd), sorted((c.name, c.id) for c in lab.containers(name)), nets


def up_docker(lab, name, *args, ok=True):
    lab.clusters.append(name)
    return lab.run("up", "--name", name, "--provider", "docker", "--image", lab.image, *args, ok=ok)


def test_up_after_a_half_made_lab_names_it_and_changes_nothing(lab):
    up_docker(lab, "np16bh", "--workers", "2")
    lab.docker.containers.get("np16bh-worker2").remove(force=True)  # as a Ctrl-C during creation leaves it
    before = snapshot(lab, "np16bh")
    done = lab.run("up", "--name", "np16bh", ok=False)
    line = one_line_error(done)
    assert "exists but is half made (has 2 nodes (control-plane, worker), made as 3 nodes " \
           "(control-plane, 2 workers))" in line, line
    assert "nppctl down --purge --name np16bh" in line and "exists, kept" not in done.stdout
    assert snapshot(lab, "np16bh") == before
    done = lab.run("up", "--name", "np16bh", "--provider", "docker", ok=False)  # as today's main is run
    assert "exists but is half made" in one_line_error(done) and "exists, kept" not in done.stdout
    assert snapshot(lab, "np16bh") == before


def test_up_workers_4_on_a_2_worker_lab_names_the_difference_and_changes_nothing(lab):
    up_docker(lab, "np16bw", "--workers", "2")
    before = snapshot(lab, "np16bw")
    line = one_line_error(up_docker(lab, "np16bw", "--workers", "4", ok=False))
    assert "cluster 'np16bw' has 3 nodes (control-plane, 2 workers), asked: 5 nodes (control-plane, " \
           "4 workers)" in line, line
    assert "nppctl down --purge --name np16bw" in line
    assert snapshot(lab, "np16bw") == before and not (lab.cwd / "tmp" / "np16bw" / "w3").exists()
    config = lab.cwd.parent / "np16b-1master.yaml"
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n")
    line = one_line_error(up_docker(lab, "np16bw", "--config", str(config), "--workers", "5", ok=False))
    assert "--workers 5 both say how many nodes: the config's nodes win" in line, line
    assert snapshot(lab, "np16bw") == before


def test_a_pod_cidr_too_small_for_the_nodes_creates_nothing(cli_docker):
    before = snapshot(cli_docker, "np16bc")
    done = up_docker(cli_docker, "np16bc", "--pod-cidr", "10.244.0.0/23", "--workers", "3", ok=False)
    line = one_line_error(done)
    assert "--pod-cidr 10.244.0.0/23 holds 2 /24s, not 4 (one per node)" in line, line
    assert snapshot(cli_docker, "np16bc") == before


def test_a_name_too_long_for_a_node_host_name_creates_nothing(cli_docker):
    before = snapshot(cli_docker, "np16bn")
    name = "np16b" + "x" * 65  # 70 characters: kind's rule allows it, its node names are too long
    line = one_line_error(up_docker(cli_docker, name, ok=False))
    assert f"its node '{name}-control-plane' has 84 characters" in line, line
    assert snapshot(cli_docker, name) == before


def test_a_text_file_as_plugin_is_refused_before_anything_is_copied(lab):
    plugin = text_plugin(lab)
    before = snapshot(lab, "np16bp")
    line = one_line_error(up_docker(lab, "np16bp", "--plugin", str(plugin), ok=False))
    assert f"--plugin '{plugin}' is not a CNI plugin: cannot be run (Exec format error)" in line, line
    assert snapshot(lab, "np16bp") == before
    up_docker(lab, "np16bp", "--workers", "0")
    line = one_line_error(lab.run("install", "--name", "np16bp", "--plugin", str(plugin), "--all", ok=False))
    assert "is not a CNI plugin" in line, line
    node = lab.docker.containers.get("np16bp-control-plane")
    assert node.exec_run(["test", "-e", f"/opt/cni/bin/{plugin.name}"]).exit_code == 1


def test_status_shows_a_plugin_that_does_not_answer_version_in_the_node(lab):
    up_docker(lab, "np16bs", "--workers", "1")
    shown = json.loads(lab.run("status", "--name", "np16bs", "--json").stdout)
    assert all(row["plugin_present"] for row in shown), shown
    worker = lab.docker.containers.get("np16bs-worker")
    # the installed plugin's file replaced by a text file, still executable: only VERSION tells
    assert worker.exec_run(["sh", "-c", "printf 'hi\\n' > /opt/cni/bin/nppnet"]).exit_code == 0
    done = lab.run("status", "--name", "np16bs", "--json", ok=None)
    rows = {row["node"]: row for row in json.loads(done.stdout)}
    assert rows["np16bs-worker"]["plugin_present"] is False, rows
    assert "Exec format error" in rows["np16bs-worker"]["plugin_problem"], rows
    assert rows["np16bs-control-plane"]["plugin_present"] is True, rows
    table = lab.run("status", "--name", "np16bs", ok=False).stdout
    assert "np16bs-worker: plugin nppnet:" in table and "Exec format error" in table, table


def test_up_workers_2_on_a_kind_made_1_node_cluster_names_the_difference(lab, kind_world):
    lab.clusters.append("np16bk")
    assert lab.kind_create("np16bk").returncode == 0
    before = snapshot(lab, "np16bk")
    done = lab.run("up", "--name", "np16bk", "--workers", "2", "--image", lab.kind_image, ok=False)
    line = one_line_error(done)
    assert "cluster 'np16bk' has 1 node (control-plane), asked: 3 nodes (control-plane, 2 workers)" \
        in line, line
    assert snapshot(lab, "np16bk") == before
