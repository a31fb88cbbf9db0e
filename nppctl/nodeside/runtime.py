"""The container runtime's part, played in the node: run the first conflist's chain for ADD/DEL/CHECK.

What the spec asks of a runtime, and what containerd does through libcni:
- the lowest-named config file in /etc/cni/net.d wins; a lone .conf is a one-plugin list;
- each plugin gets its entry with the list's name and cniVersion merged in; `capabilities` is
  removed and `runtimeConfig` holds the capability arguments it declares (portMappings, bandwidth);
- ADD: prevResult is the previous plugin's result; a failed ADD is followed by DEL of the whole chain
  in reverse (a DEL must follow every ADD, even a failed one), then the namespace goes;
- DEL: the chain in reverse, prevResult = the cached ADD result; then the cache and namespace go;
- CHECK: prevResult = the cached ADD result; refused below cniVersion 0.4.0; success without calling
  any plugin when the list sets disableCheck.
The pod is a network namespace /var/run/netns/<pod> made here (ADD) with its loopback up. The ADD
result, with the capability arguments it was made with, is cached per network, pod and interface.
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
SEP = "+"  # in no network, pod or interface name: the cache file names cannot collide


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


def version_tuple(text):
    try:
        return tuple(int(x) for x in str(text).split("."))
    except ValueError:
        return ()


def plugin_conf(conflist, plugin, capability_args, prev):
    """The execution configuration of one plugin, derived as the spec says."""
    conf = {k: v for k, v in plugin.items() if k != "capabilities"}
    conf["name"] = conflist.get("name", "")
    conf["cniVersion"] = conflist.get("cniVersion", "")
    declared = plugin.get("capabilities") if isinstance(plugin.get("capabilities"), dict) else {}
    wanted = {k: v for k, v in capability_args.items() if declared.get(k) is True}
    if wanted:
        conf["runtimeConfig"] = wanted
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def run_chain(command, conflist, plugins, env, capability_args, prev, timeout):
    """Every plugin in order with CNI_COMMAND; ADD passes each result on. The last ADD result."""
    env = dict(env, CNI_COMMAND=command)
    result = None
    for plugin in plugins:
        out = invoke(plugin, plugin_conf(conflist, plugin, capability_args, prev), env, timeout)
        if command == "ADD":
            if not isinstance(out, dict):
                raise AgentError("plugin {} ADD printed no result".format(plugin["type"]))
            prev = result = out
    return result


def cache_path(network, pod, ifname):
    return os.path.join(RESULTS, SEP.join((network, pod, ifname)) + ".json")


def _remove(netns, pod, cache):
    if os.path.exists(cache):
        os.unlink(cache)
    if os.path.exists(netns):
        run(["ip", "netns", "del", pod])


def cni(spec):
    command, pod, ifname = spec["command"], spec["pod"], spec["ifname"]
    timeout = spec.get("timeout", PLUGIN_TIMEOUT)
    netns = os.path.join(NETNS_DIR, pod)
    files = conf_files()
    if not files:
        raise AgentError(f"no network config in {CNI_CONF}: run `nppctl install` first")
    conflist = load_conflist(files[0])
    network = str(conflist.get("name", ""))
    cache = cache_path(network, pod, ifname)
    cached = read_json(cache) if command != "ADD" else None
    cached = cached if isinstance(cached, dict) else {}
    capability_args = spec.get("capability_args") or cached.get("capability_args") or {}
    env = dict(
        os.environ,
        CNI_CONTAINERID=pod,
        CNI_NETNS=netns,
        CNI_IFNAME=ifname,
        CNI_PATH=CNI_BIN,
        CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
    )
    plugins = list(conflist["plugins"])
    if command == "ADD":
        if os.path.exists(cache):
            raise AgentError(
                f"pod {pod} is attached already ({ifname} on network {network}): "
                f"a runtime never adds it twice; run `nppctl cni del` first"
            )
        made = not os.path.exists(netns)
        if made:
            run(["ip", "netns", "add", pod])
            run(["ip", "-n", pod, "link", "set", "lo", "up"])  # loopback is the runtime's part
        try:
            result = run_chain("ADD", conflist, plugins, env, capability_args, None, timeout)
        except AgentError as err:
            cleanup = (conflist, plugins, env, capability_args, timeout)
            raise _after_failed_add(err, cleanup, netns if made else None, pod, cache) from None
        write_json(cache, {"conflist": files[0], "result": result, "capability_args": capability_args})
    elif command == "CHECK":
        if not os.path.exists(netns):
            raise AgentError(f"pod {pod} has no network namespace: run `nppctl cni add` first")
        if version_tuple(conflist.get("cniVersion")) < (0, 4, 0):
            raise AgentError(
                "configuration version {!r} does not support the CHECK command (0.4.0 or later)".format(
                    conflist.get("cniVersion")
                )
            )
        if "result" not in cached:
            raise AgentError(f"no cached ADD result for pod {pod}: run `nppctl cni add` first")
        result = {}
        if conflist.get("disableCheck") is True:
            result = {"skipped": f"{files[0]} sets disableCheck: no plugin called"}
        else:
            run_chain("CHECK", conflist, plugins, env, capability_args, cached["result"], timeout)
    else:
        run_chain("DEL", conflist, plugins[::-1], env, capability_args, cached.get("result"), timeout)
        _remove(netns, pod, cache)
        result = {}
    return {"result": result or {}, "conflist": files[0]}


def _after_failed_add(err, cleanup, netns, pod, cache):
    """DEL of the whole chain after a failed ADD (as kubelet's teardown does), then the namespace
    goes if this ADD made it; the ADD's error is what the caller sees, with the DEL's failure
    appended if it failed."""
    conflist, plugins, env, capability_args, timeout = cleanup
    try:
        run_chain("DEL", conflist, plugins[::-1], env, capability_args, None, timeout)
        if netns is not None:
            _remove(netns, pod, cache)
        err.msg += " (the runtime ran DEL of the whole chain" + (
            " and removed the pod's namespace)" if netns is not None else ")"
        )
    except AgentError as cleanup:
        err.msg += f" (and the DEL that followed failed too: {cleanup.msg}; run `nppctl cni del`)"
    return err
