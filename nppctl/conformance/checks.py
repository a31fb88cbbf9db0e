"""The card's checks, one function each, in the order the card runs them, grouped by the area of
SPEC.md they check; the decorator above each names its id, its section and the requirement in our
own words (checklist.py says how to write one of your own).

Each takes the running card (card.py's Engine) and returns ("pass" | "fail", detail), or raises
Skip or Fail. The checks of ADD make pod `a` (card.a), which CHECK and DEL use after them; a check that
needs it and finds it missing fails and says so. What they lean on: card.rt, the runtime playing
the config (cni.Runtime: call, add, check, delete, each); card.pod(tag) and card.forget(pod), a pod's
network namespace; card.add(pod), ADD noting the node links it made; card.leftovers(pod),
card.stores(), card.reservations(pod), card.ping(pod, ip); node.py for what the node holds and
results.py for what a plugin's answers are held to.

Standard library only, Python 3.9 syntax: this runs wherever the card runs.
"""

from concurrent.futures import ThreadPoolExecutor

from nppctl.conformance.checklist import Fail, Skip, check
from nppctl.conformance.cni import tail, vtuple
from nppctl.conformance.node import netns_add, netns_del, node_links, pod_links, run
from nppctl.conformance.results import error_problems, gateway, ip_of, result_problems, truth_problems

BAD_VERSION = "99.0.0"
UNKNOWN_COMMAND = "NPPCTL-UNKNOWN"


# -- §2 VERSION: which versions the plugin speaks ------------------------------------------------------------


@check("version", "§2 CNI operations: VERSION",
       "VERSION answers with the versions the plugin supports; a runtime runs a config only in one of them.")
def versions_supported(card):
    seen, bad = [], []
    for ptype in dict.fromkeys(p.get("type") for p in card.rt.plugins):
        c = card.rt.call(ptype, "VERSION", {"cniVersion": card.rt.version})
        info = c.obj
        versions = info.get("supportedVersions") if info else None
        if c.rc != 0 or c.timed_out or not isinstance(versions, list):
            shown = f"{ptype} VERSION printed {c.out[:200]!r}"
            bad.append(c.describe() if (c.rc or c.timed_out) else shown)
        elif card.rt.version not in versions:
            bad.append(f"{ptype} supports {', '.join(map(str, versions))}, not {card.rt.version}")
        else:
            seen.append(f"{ptype}: {', '.join(versions)}")
    if bad:
        return "fail", "; ".join(bad)
    return "pass", "; ".join(seen)


# -- §2 ADD and §5 its result: the pod `a` that the checks after it use --------------------------------------


@check("add", "§2 CNI operations: ADD",
       "ADD attaches the container to the network and exits 0 with a result on stdout.")
def add_attaches(card):
    card.a = card.pod("a")
    out = card.add(card.a)
    if not out.ok:
        return "fail", out.why
    return "pass", f"{card.a.address() or 'no address'} in {card.a.netns}"


@check("add-result", "§5 Result Types: Success",
       "The ADD result is in the config's cniVersion: named interfaces, CIDR addresses whose interface "
       "index points into interfaces, CIDR route destinations, the container interface with its sandbox.")
def add_result_is_well_formed(card):
    _need_a(card, "no result to check: ")
    if vtuple(card.rt.version) < (0, 3, 0):
        raise Skip(f"result checks cover cniVersion 0.3.0 and later; the config is {card.rt.version}")
    problems = result_problems(card.a.result, card.rt.version, card.a)
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "{} interfaces, {} ips, {} routes".format(
        *(len(card.a.result.get(k) or []) for k in ("interfaces", "ips", "routes"))
    )


@check("add-truth", "§5 Result Types: Success",
       "What the result claims (interfaces, MACs, addresses, routes) is what exists in the container "
       "and on the node.")
def add_result_is_true(card):
    _need_a(card, "nothing to compare: ")
    problems = truth_problems(card.a.result, card.a)
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "interfaces, addresses and routes as the result claims"


@check("connectivity", "§2 CNI operations: ADD",
       "An added container is on the network: two pods reach each other and their gateway.")
def pods_reach_each_other(card):
    _need_a(card, "needs ")
    b = card.pod("b")
    try:
        out = card.add(b)
        if not out.ok:
            return "fail", f"second pod: {out.why}"
        a_ip, b_ip = ip_of(card.a.address()), ip_of(b.address())
        probes = [(card.a, b_ip, "pod b"), (b, a_ip, "pod a")]
        gw = gateway(card.a.result)
        if gw:
            probes.append((card.a, gw, "the gateway"))
        bad, good = [], []
        for src, dst, what in probes:
            if dst is None:
                bad.append(f"{what} has no address in its result")
                continue
            ok, value = card.ping(src, dst)
            (good if ok else bad).append(
                f"{src.name} → {what} {dst}: " + (f"{value} ms" if ok else value)
            )
        if not gw:
            bad.append("the result names no gateway to reach")
        if bad:
            return "fail", "; ".join(bad)
        return "pass", "; ".join(good)
    finally:
        card.rt.delete(b)
        card.forget(b)


# -- §2 CHECK: pod `a` as ADD left it, then changed ----------------------------------------------------------


@check("check", "§2 CNI operations: CHECK; §3 Checking an attachment",
       "CHECK on an attachment as ADD left it exits 0.")
def check_passes(card):
    _need_check_version(card)
    _need_a(card, "needs ")
    return _exited_0(card.rt.check(card.a), "CHECK")


@check("check-detects", "§2 CNI operations: CHECK",
       "CHECK fails with an error when the container's networking is not as ADD left it (here: its "
       "address removed).")
def check_detects_a_change(card):
    _need_check_version(card)
    _need_a(card, "needs ")
    addr = card.a.address()
    if addr is None:
        return "fail", "the result of `add` lists no address to remove"
    p = run(["ip", "-n", card.a.name, "addr", "del", addr, "dev", card.a.ifname])
    if p.returncode != 0:
        return "fail", f"could not remove {addr} from {card.a.ifname}: {p.stderr.decode().strip()}"
    out = card.rt.check(card.a)
    if out.ok:
        return "fail", f"CHECK exited 0 with {addr} removed from {card.a.ifname}"
    return "pass", f"after {addr} was removed: {out.why}"


# -- §2 DEL: pod `a` removed, then removed again; a pod whose namespace is gone ------------------------------


@check("del", "§2 CNI operations: DEL",
       "DEL of an added container exits 0.")
def del_succeeds(card):
    if card.a is None:
        card.a = card.pod("a")
    return _exited_0(card.rt.delete(card.a), "DEL")


@check("del-cleans", "§2 CNI operations: DEL",
       "DEL undoes what ADD did: the container interface, the links ADD made on the node and the "
       "address reservation are gone.")
def del_cleans_up(card):
    if card.a is None:
        return "fail", "needs the pod of `add`"
    left = card.leftovers(card.a)
    if left:
        return "fail", "left after DEL: " + ", ".join(left)
    known = ", ".join(card.stores()) or "no known reservation store"
    return "pass", f"no interface, node link or reservation left ({known})"


@check("del-idempotent", "§2 CNI operations: DEL; §3 Deleting an attachment",
       "DEL of an attachment already deleted succeeds: DEL completes when its resources are missing.")
def del_twice_succeeds(card):
    if card.a is None:
        return "fail", "needs the pod of `add`"
    return _exited_0(card.rt.delete(card.a), "second DEL", failed="second DEL: ")


@check("del-netns-gone", "§2 CNI operations: DEL",
       "DEL succeeds when the container's network namespace no longer exists.")
def del_without_netns_succeeds(card):
    c = card.pod("c")
    added = card.add(c)
    netns_del([c.name])
    out = card.rt.delete(c)
    card.pods.pop(c.name, None)
    note = "" if added.ok else f" (its ADD had failed: {added.why})"
    if out.ok:
        return "pass", f"DEL with {c.netns} gone exited 0{note}"
    return "fail", f"DEL with {c.netns} gone: {out.why}{note}"


# -- §3 Lifecycle & Ordering: many pods at once --------------------------------------------------------------


@check("parallel-add", "§3 Lifecycle & Ordering",
       "ADDs of different containers may run at once: each succeeds with an address of its own, and "
       "their DELs leave nothing behind.")
def parallel_adds(card):
    n = card.parallel
    pods = [card.pod(f"p{i}", make=False) for i in range(n)]
    netns_add([p.name for p in pods])
    before = node_links()
    with ThreadPoolExecutor(max_workers=n) as pool:
        outs = list(pool.map(card.rt.add, pods))
    after = node_links()
    made = sorted(k for k, kind in after.items() if k not in before and kind != "bridge")
    problems = []
    failed = [(p, o) for p, o in zip(pods, outs) if not o.ok]
    if failed:
        problems.append(f"{len(failed)} of {n} ADDs failed, e.g. {failed[0][1].why}")
    owners = {}
    for p, o in zip(pods, outs):
        if o.ok:
            owners.setdefault(ip_of(p.address()), []).append(p.name)
    dups = {ip: names for ip, names in owners.items() if len(names) > 1}
    if dups:
        shown = "; ".join(f"{ip} to {', '.join(names)}" for ip, names in sorted(dups.items(), key=str))
        problems.append(f"the same address went to several pods: {shown}")
    with ThreadPoolExecutor(max_workers=n) as pool:
        dels = list(pool.map(card.rt.delete, pods))
    bad_dels = [o for o in dels if not o.ok]
    if bad_dels:
        problems.append(f"{len(bad_dels)} of {n} DELs failed, e.g. {bad_dels[0].why}")
    links = node_links()
    left = [k for k in made if k in links]
    if left:
        problems.append(f"{len(left)} node links left after the DELs: {', '.join(left[:5])}")
    kept = [r for p in pods for r in card.reservations(p)]
    if kept:
        problems.append(f"{len(kept)} reservations left after the DELs, e.g. {kept[0]}")
    inside = [p.name for p in pods if p.ifname in pod_links(p)]
    if inside:
        problems.append(f"{len(inside)} pods still have {pods[0].ifname} after DEL")
    for p in pods:
        p.result = None
    netns_del([p.name for p in pods])
    for p in pods:
        card.pods.pop(p.name, None)
    if problems:
        return "fail", "; ".join(problems)
    return "pass", f"{n} ADDs, {len(owners)} distinct addresses; {n} DELs left nothing"


# -- §2 Errors and §5 the error object: calls that must fail, and how ----------------------------------------


@check("error-object", "§5 Result Types: Error",
       "On failure the plugin prints an error object (cniVersion, code, msg) on stdout and exits "
       "non-zero; stderr is for logs, not crashes.")
def errors_are_error_objects(card):
    c = _probe(card, "e", "ADD", raw=b'{"cniVersion": "1.0.0", "name": ')
    problems = error_problems(c)
    for stream, text in (("stderr", c.err), ("stdout", c.out)):
        if "Traceback (most recent call last)" in text:
            problems.append(f"a traceback on {stream}: {tail(text, 160)}")
    if problems:
        return "fail", "on malformed JSON: " + "; ".join(problems)
    return "pass", "code {}: {}".format(c.obj.get("code"), c.obj.get("msg"))


@check("unknown-command", "§2 Errors; §5 Error (code 4)",
       "An unknown CNI_COMMAND is an invalid environment variable: error code 4.")
def unknown_command_is_code_4(card):
    c = _probe(card, "u", UNKNOWN_COMMAND, conf=card.rt.own_conf())
    return _expect_code(c, 4, f"CNI_COMMAND={UNKNOWN_COMMAND}")


@check("bad-version", "§2 VERSION; §5 Error (code 1)",
       "A config in a cniVersion the plugin does not support is refused with code 1 (incompatible "
       "CNI version).")
def unknown_version_is_code_1(card):
    conf = dict(card.rt.own_conf(), cniVersion=BAD_VERSION)
    c = _probe(card, "v", "ADD", conf=conf)
    return _expect_code(c, 1, f"ADD with cniVersion {BAD_VERSION}")


# -- SPEC 1.1.0: GC and STATUS (skipped for older configs) ---------------------------------------------------


@check("gc", "SPEC 1.1.0 §2 CNI operations: GC",
       "GC releases what belongs to attachments missing from cni.dev/valid-attachments and keeps the "
       "listed ones.")
def gc_releases_unlisted(card):
    if vtuple(card.rt.version) < (1, 1, 0):
        raise Skip(f"GC exists from cniVersion 1.1.0; the config is {card.rt.version}")
    keep, drop = card.pod("gk"), card.pod("gd")
    try:
        for p in (keep, drop):
            out = card.add(p)
            if not out.ok:
                return "fail", f"ADD before GC: {out.why}"
        valid = [{"containerID": keep.cid, "ifname": keep.ifname}]
        out = card.rt.each("GC", **{"cni.dev/valid-attachments": valid})
        if not out.ok:
            return "fail", out.why
        problems = []
        links = node_links()
        gone = [n for n in keep.made if n not in links]
        if card.stores() and not card.reservations(keep):
            gone.append("its reservation")
        if gone:
            problems.append(f"GC removed what the listed attachment still uses: {', '.join(gone)}")
        if keep.ifname not in pod_links(keep):
            problems.append(f"the listed pod lost {keep.ifname}")
        left = [n for n in drop.made if n in links] + card.reservations(drop)
        if left:
            problems.append(f"the unlisted attachment's {', '.join(left)} left after GC")
        if problems:
            return "fail", "; ".join(problems)
        return "pass", "released the unlisted attachment, kept the listed one"
    finally:
        for p in (keep, drop):
            card.rt.delete(p)
            p.result = None
            card.forget(p)


@check("status", "SPEC 1.1.0 §2 CNI operations: STATUS",
       "STATUS exits 0 when the plugin is ready to service ADD.")
def status_is_ready(card):
    if vtuple(card.rt.version) < (1, 1, 0):
        raise Skip(f"STATUS exists from cniVersion 1.1.0; the config is {card.rt.version}")
    return _exited_0(card.rt.each("STATUS"), "STATUS")


# -- what several checks share -------------------------------------------------------------------------------


def _need_a(card, failing):
    """Fail the check (FAILING, then why) when pod `a` has no ADD result."""
    if card.a is None or card.a.result is None:
        raise Fail(failing + "the pod of `add` (its ADD did not succeed)")


def _need_check_version(card):
    if vtuple(card.rt.version) < (0, 4, 0):
        raise Skip(f"CHECK exists from cniVersion 0.4.0; the config is {card.rt.version}")


def _probe(card, tag, command, raw=None, conf=None):
    """One direct call of the plugin under test for a fresh pod; undone afterwards if it added."""
    pod = card.pod(tag)
    c = card.rt.call(card.rt.plugin, command, conf, pod, raw=raw)
    if c.rc == 0 and command == "ADD":
        pod.result = c.obj
        card.rt.delete(pod)
    card.forget(pod)
    return c


def _expect_code(c, code, what):
    """pass when the call failed with an error object of that code."""
    problems = error_problems(c)
    if not problems and c.obj.get("code") != code:
        got = c.obj.get("code")
        problems.append("error code {} (msg {!r}), not {}".format(got, c.obj.get("msg"), code))
    if problems:
        return "fail", f"{what}: " + "; ".join(problems)
    return "pass", "code {}: {}".format(code, c.obj.get("msg"))


def _exited_0(out, what, failed=""):
    """pass ("WHAT exited 0") when every plugin call of the outcome exited 0, else fail with why."""
    return ("pass", f"{what} exited 0") if out.ok else ("fail", failed + out.why)
