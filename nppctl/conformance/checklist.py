"""The card's list of checks: what a check is and how one joins the card.

A check is a function of one argument, the running card (card.py's Engine: `card.rt` plays the
container runtime, `card.pod(tag)` makes a pod's network namespace, `card.add(pod)` ADDs it), that
returns (result, detail): result "pass" or "fail", detail one line saying what was seen. Raising
Skip(reason) marks it "skip" (the check does not apply, e.g. to an older cniVersion), raising
Fail(detail) fails it (handy in a helper); any other exception fails the check with the error, so
the card always finishes.

Beside the function stand its id (a short name, unique, shown in the card), the SPEC.md section it
checks (a heading of the spec, e.g. "§2 CNI operations: ADD") and the requirement in a sentence of
your own. The decorator @check puts all four in CHECKS; the card runs CHECKS in that order.

To add a check of your own, write it in checks.py under the spec area it belongs to (the card runs
it where it stands), for instance:

    @check("version-1.0.0", "§2 CNI operations: VERSION", "The plugin supports cniVersion 1.0.0.")
    def supports_1_0_0(card):
        c = card.rt.call(card.rt.plugin, "VERSION", {"cniVersion": card.rt.version})
        versions = (c.obj or {}).get("supportedVersions") or []
        if "1.0.0" not in versions:
            return "fail", f"{card.rt.plugin} supports {', '.join(versions) or 'nothing'}"
        return "pass", "1.0.0 is among " + ", ".join(versions)

then run `nppctl plugin test nppnet`: its row shows up in the card. A module of checks of your
own works too: there, take check from nppctl.conformance.card (importing card first puts the
card's own checks before yours), and add the module's name at the end of bundle.ENGINE, since the
engine goes to the sandbox or the node as those modules' source.

Standard library only, Python 3.9 syntax: this runs wherever the card runs.
"""

from typing import Callable, NamedTuple


class Check(NamedTuple):
    id: str
    section: str  # of SPEC.md, as the card shows it
    requirement: str  # in our own words
    run: Callable  # run(card) -> (result, detail)


CHECKS = []  # in the order the card runs them


class Skip(Exception):
    """A check that does not apply: the reason."""


class Fail(Exception):
    """A check that fails, raised where returning is awkward (in a helper): what was seen."""


def check(cid, section, requirement):
    """Decorator: the function becomes the check `cid` of the card, after those before it."""

    def register(func):
        if not cid or not section or not requirement:
            raise ValueError(f"check {cid!r}: an id, a SPEC.md section and a requirement are needed")
        if any(c.id == cid for c in CHECKS):
            raise ValueError(f"check id {cid!r} is taken: give the check another")
        CHECKS.append(Check(cid, section, requirement, func))
        return func

    return register
