"""`up --provider docker --config FILE` takes the node shape and mounts from a course config; `down` finds
a cluster without its state record (from its containers) and `down --purge` later still cleans up."""

from __future__ import annotations

from nppctl.resources import resource_dir


def test_course_config_on_the_docker_provider_and_down_without_a_record(lab):
    name = "np4c"
    lab.clusters.append(name)
    config = resource_dir("cluster-configs") / "1master1workerMount.yaml"
    lab.run("up", "--provider", "docker", "--config", str(config), "--image", lab.image, "--name", name)
    nodes = {c.name: c for c in lab.containers(name)}
    assert sorted(nodes) == [f"{name}-control-plane", f"{name}-worker"]
    binds = {
        n: [(m["Source"], m["Destination"]) for m in c.attrs["Mounts"] if m["Type"] == "bind"]
        for n, c in nodes.items()
    }
    assert binds == {
        f"{name}-control-plane": [],
        f"{name}-worker": [(str(lab.cwd / "tmp" / "w1"), "/npp-temp")],
    }

    elsewhere = lab.cwd.parent / "elsewhere"
    elsewhere.mkdir()
    cwd, lab.cwd = lab.cwd, elsewhere
    down = lab.run("down", "--name", name)  # no .nppctl here: found by its containers
    assert f"✓ Deleting cluster '{name}' (docker)" in down.stdout and not lab.containers(name)
    lab.cwd = cwd
    purge = lab.run("down", "--name", name, "--purge")
    assert "already gone" in purge.stdout and "path(s) removed" in purge.stdout
    assert list(cwd.iterdir()) == [] and list(elsewhere.iterdir()) == []
