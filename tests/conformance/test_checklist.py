"""issue 20: the card is a list of checks (checklist.CHECKS), each with its id, SPEC.md section and
requirement; the list is what it claims, and a check written the documented way (checklist.py's
docstring) runs on the card like the card's own."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from nppctl.conformance import launch
from nppctl.conformance.card import CHECKS, check
from nppctl.conformance.node import ip_json
from tests.conformance.conftest import ALL, CONFS, REPO, by_result
from tests.conftest import require

SPEC_MD = Path("/usr/share/doc/golang-github-appc-cni-dev")  # Debian's copy of the CNI SPEC.md
# Operations of §2 that SPEC 1.1.0 added, so not among the headings of an older SPEC.md.
ADDED_IN = {"1.1.0": {(2, "GC"), (2, "STATUS")}}


# -- a check of one's own, as a student writes it in a module of their own (checklist.py) -----------


@check("eth0-up", "§2 CNI operations: ADD",
       "After ADD the container's interface is up (a check written as checklist.py shows).")
def container_interface_is_up(card):
    pod = card.pod("s")
    try:
        out = card.add(pod)
        if not out.ok:
            return "fail", out.why
        links = ip_json("-n", pod.name, "link", "show", pod.ifname)
        flags = links[0].get("flags", []) if links else []
        if "UP" not in flags:
            return "fail", f"{pod.ifname} in {pod.netns} is not up: flags {flags}"
        return "pass", f"{pod.ifname} is up in {pod.netns}"
    finally:
        card.rt.delete(pod)
        card.forget(pod)


# -- the list is what it claims ---------------------------------------------------------------------


def spec_md() -> tuple[str, dict[int, set[str]]]:
    """The installed SPEC.md's version and, per "Section N", the names of its headings: the
    section's own title, and each heading below it (`ADD`: ... counts as ADD too)."""
    found = [SPEC_MD / "SPEC.md", SPEC_MD / "SPEC.md.gz"]
    path = next((p for p in found if p.is_file()), None)
    require(path is not None, f"the CNI SPEC.md at {SPEC_MD} (apt-get install golang-github-appc-cni-dev)")
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    version = re.search(r"CNI \*\*spec\*\* version \*\*([0-9.]+)\*\*", text).group(1)
    headings: dict[int, set[str]] = {}
    section, fenced = None, False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip()
        numbered = re.match(r"Section (\d+): (.+)", title)
        if numbered:
            section = int(numbered.group(1))
            title = numbered.group(2)
        elif title.startswith("Appendix"):
            section = None
        if section is not None:
            plain = title.replace("`", "")
            headings.setdefault(section, set()).update({plain, plain.split(":")[0].strip()})
    return version, headings


def missing_headings(section: str, version: str, headings: dict[int, set[str]]) -> list[str]:
    """The parts of a check's section ("§2 CNI operations: CHECK; §3 Checking an attachment", maybe
    led by "SPEC 1.1.0") that are no heading of SPEC.md's numbered section."""
    later = re.match(r"SPEC ([0-9.]+) (.+)", section)
    added = set()
    if later:
        section = later.group(2)
        if later.group(1) != version:
            added = ADDED_IN.get(later.group(1), set())
    missing = []
    for part in section.split("; "):
        ref = re.fullmatch(r"§(\d+) (.+)", part)
        if ref is None:
            missing.append(f"{part!r} (not §N TITLE)")
            continue
        number = int(ref.group(1))
        for name in re.sub(r" \(.*?\)", "", ref.group(2)).split(": "):
            if name not in headings.get(number, set()) and (number, name) not in added:
                missing.append(f"§{number} {name}")
    return missing


def test_each_check_has_an_id_a_spec_md_section_and_a_requirement():
    version, headings = spec_md()
    assert {"ADD", "DEL", "CHECK", "VERSION", "CNI operations"} <= headings[2], headings[2]
    ids = [c.id for c in CHECKS]
    assert len(ids) == len(set(ids)), f"ids twice: {sorted({i for i in ids if ids.count(i) > 1})}"
    for c in CHECKS:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", c.id), c
        assert c.requirement.strip() and c.requirement.endswith("."), c
        assert callable(c.run), c
        assert missing_headings(c.section, version, headings) == [], (c.id, c.section)
    own = [c.id for c in CHECKS if c.run.__module__ == "nppctl.conformance.checks"]
    assert own == ALL  # the card's 17, in the order the card shows them


def test_a_section_that_is_no_heading_is_caught():
    version, headings = spec_md()
    assert missing_headings("§2 CNI operations: ATTACH", version, headings) == ["§2 ATTACH"]
    wrong = missing_headings("§4 Result Types: Success", version, headings)
    assert wrong == ["§4 Result Types", "§4 Success"]
    assert missing_headings("SPEC 1.1.0 §2 CNI operations: STATUS", version, headings) == []
    if "STATUS" not in headings[2]:  # a SPEC.md older than 1.1.0: STATUS needs its "SPEC 1.1.0"
        assert missing_headings("§2 CNI operations: STATUS", version, headings) == ["§2 STATUS"]


def test_a_check_of_ones_own_runs_on_the_card(host_untouched, reference_plugins):
    """The runner (card.main, in the sandbox as launch.py makes it) runs eth0-up above after the
    card's 17 checks, against Debian's reference bridge chain."""
    conf = json.loads((CONFS / "bridge-host-local.conflist").read_text())
    spec = launch._spec("bridge", str(reference_plugins), conf, None, 4, 20.0)
    spec.update(cni_path=[str(reference_plugins)], sandbox=True)
    runner = (
        "import sys\n"
        "import tests.conformance.test_checklist  # its @check joins the card\n"
        "from nppctl.conformance import card\n"
        "sys.exit(card.main(sys.argv))\n"
    )
    argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child",
            sys.executable, "-c", runner, json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    card = json.loads(done.stdout.strip().splitlines()[-1])
    assert [row["id"] for row in card["checks"]] == ALL + ["eth0-up"]
    mine = card["checks"][-1]
    assert mine["result"] == "pass", mine
    assert mine["detail"].startswith("eth0 is up in /var/run/netns/nppt-s"), mine
    assert mine["section"] == "§2 CNI operations: ADD" and "checklist.py shows" in mine["requirement"]
    assert by_result(card)["fail"] == set(), card
    assert (card["passed"], card["failed"], card["skipped"]) == (16, 0, 2)
