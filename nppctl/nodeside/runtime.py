"""The container runtime's part, played in the node: run the first conflist's chain for ADD/DEL/CHECK.

As containerd does through libcni: the lowest-named config file in /etc/cni/net.d wins; each plugin
gets its entry with the list's name and cniVersion merged in, the previous plugin's result as
prevResult (ADD), the cached ADD result (DEL, CHECK); DEL runs the chain in reverse. The pod is a
network namespace /var/run/netns/<pod> made here (ADD) with its loopback up, removed after DEL.
The ADD result is cached in /var/lib/cni/nppctl/results for DEL and CHECK.
"""

import json
import os
import subprocess

from .base import (
    CNI_BIN,
    CNI_CONF,
    NETNS_DIR,
    AgentError,
    conf_files,
    load_conflist,
    read_json,
    run,
    write_json,
)

RESULTS = "/var/lib/cni/nppctl/results"
PLUGIN_TIMEOUT = 60  # seconds one plugin call may take before the runtime kills it


def find_plugin(ptype):
    path = os.path.join(CNI_BIN, str(ptype))
    if not os.access(path, os.X_OK):
        raise AgentError(f"failed to find plugin {ptype!r} in path [{CNI_BIN}]")
    return path


def invoke(plugin, conf, env, timeout):
    argv = [find_plugin(plugin["type"])]
    what = "plugin {} {}".format(plugin["type"], env["CNI_COMMAND"])
    try:
        p = subprocess.run(
            argv, input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise AgentError(f"{what} did not finish in {timeout}s: killed") from None
    out = p.stdout.decode(errors="replace").strip()
    if p.returncode != 0:
        try:
            err = json.loads(out)
        except ValueError:
            err = None
        if not isinstance(err, dict):
            err = {"code": 999, "msg": out or p.stderr.decode(errors="replace").strip() or "no output"}
        details = f" ({err['details']})" if err.get("details") else ""
        raise AgentError(f"{what} failed: code {err.get('code')}: {err.get('msg')}{details}", cni=err)
    if not out:
        return None
    try:
        return json.loads(out)
    except ValueError:
        raise AgentError(f"{what} printed no JSON: {out[:200]}") from None


def cni(spec):
    command, pod, ifname = spec["command"], spec["pod"], spec["ifname"]
    netns = os.path.join(NETNS_DIR, pod)
    cache = os.path.join(RESULTS, f"{pod}-{ifname}.json")
    if command in ("ADD", "CHECK") and not os.path.exists(netns):
        if command == "CHECK":
            raise AgentError(f"pod {pod} has no network namespace: run `nppctl cni add` first")
        run(["ip", "netns", "add", pod])
        run(["ip", "-n", pod, "link", "set", "lo", "up"])  # loopback is the runtime's part, not the plugin's
    files = conf_files()
    if not files:
        raise AgentError(f"no network config in {CNI_CONF}: run `nppctl install` first")
    conflist = load_conflist(files[0])
    env = dict(
        os.environ,
        CNI_COMMAND=command,
        CNI_CONTAINERID=pod,
        CNI_NETNS=netns,
        CNI_IFNAME=ifname,
        CNI_PATH=CNI_BIN,
        CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
    )
    cached = read_json(cache)
    prev = cached.get("result") if isinstance(cached, dict) else None
    if command == "CHECK" and prev is None:
        raise AgentError(f"no cached ADD result for pod {pod}: run `nppctl cni add` first")
    plugins = list(conflist["plugins"])
    result = None
    if command == "DEL":
        plugins.reverse()
        result = prev
    elif command == "ADD":
        prev = None
    for plugin in plugins:
        conf = dict(plugin, name=conflist.get("name", ""), cniVersion=conflist.get("cniVersion", ""))
        if prev is not None:
            conf["prevResult"] = prev
        out = invoke(plugin, conf, env, spec.get("timeout", PLUGIN_TIMEOUT))
        if command == "ADD":
            if not isinstance(out, dict):
                raise AgentError("plugin {} ADD printed no result".format(plugin["type"]))
            prev = result = out
    if command == "ADD":
        write_json(cache, {"conflist": files[0], "result": result})
    if command == "DEL":
        if os.path.exists(cache):
            os.unlink(cache)
        if os.path.exists(netns):
            run(["ip", "netns", "del", pod])
        result = {}
    return {"result": result or {}, "conflist": files[0]}
