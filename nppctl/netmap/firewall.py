"""iptables rules as `iptables -S` prints them, read for one packet: what FORWARD does with it, where a
Service's DNAT sends it, and which masquerade rules a node holds.

The packet is a new ICMP echo (what `nppctl check` and `cni ping` send) with a source, a destination and
the interfaces it comes in and goes out by. A rule matches when every match it has matches that packet:
-s, -d, -i, -o (with `!`), -p, `-m conntrack --ctstate` (a new packet is NEW), -m comment; a rule with any
other match (marks, addrtype, physdev, sets) is taken as not matching, so only rules the packet surely meets
decide. Targets: ACCEPT, DROP, REJECT, RETURN, a jump or goto into a user chain; others (LOG, MARK) go on.

Interface: Rules(lines) with .policy(chain), .verdict(chain, packet) -> Verdict, .dnat(address) -> list,
           .masquerades() -> list[Rule]
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

TERMINAL = ("ACCEPT", "DROP", "REJECT")
BUILTIN = ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING")
KNOWN_MODULES = ("comment", "conntrack", "icmp", "state")


@dataclass
class Packet:
    src: str
    dst: str
    iif: str | None = None
    oif: str | None = None
    proto: str = "icmp"


@dataclass
class Rule:
    chain: str
    text: str  # the line as iptables -S printed it
    matches: dict = field(default_factory=dict)  # option -> (negated, value)
    target: str | None = None
    goto: bool = False
    target_args: dict = field(default_factory=dict)
    unknown: bool = False  # a match this reader does not evaluate
    modules: set = field(default_factory=set)  # the -m modules it names

    @property
    def comment(self) -> str | None:
        return self.matches.get("--comment", (False, None))[1]

    @property
    def short(self) -> str:
        """CHAIN: the rule without `-A CHAIN` and its comment match (what it matches and does)."""
        return f"{self.chain}: {rule_text(self.text)}"


@dataclass
class Verdict:
    action: str  # ACCEPT, DROP or REJECT
    rule: Rule | None  # the rule that decided it; None: the chain's policy
    chain: str

    @property
    def accepted(self) -> bool:
        return self.action == "ACCEPT"

    def why(self) -> str:
        if self.rule is None:
            return f"{self.chain} policy {self.action}"
        return f"{self.action} by {self.rule.short}"


def rule_text(line: str) -> str:
    """An `iptables -S` rule without `-A CHAIN` and comment matches: what it matches and does."""
    try:
        words = shlex.split(line)
    except ValueError:
        return line
    out, i = [], 2
    while i < len(words):
        if words[i] == "-m" and i + 1 < len(words) and words[i + 1] == "comment":
            i += 4 if i + 2 < len(words) and words[i + 2] == "--comment" else 2
            continue
        out.append(words[i])
        i += 1
    return " ".join(out)


def _parse(line: str) -> Rule | None:
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if words[:1] != ["-A"] or len(words) < 2:
        return None
    rule = Rule(chain=words[1], text=line)
    i, negate, in_target = 2, False, False
    while i < len(words):
        word = words[i]
        if word == "!":
            negate = True
            i += 1
            continue
        if word in ("-j", "-g"):
            rule.target, rule.goto, in_target = words[i + 1], word == "-g", True
            i += 2
            continue
        value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("-") else ""
        if in_target:
            rule.target_args[word] = value
        elif word == "-m":
            rule.modules.add(value)
            rule.unknown = rule.unknown or value not in KNOWN_MODULES
        elif word in ("-s", "-d", "-i", "-o", "-p", "--ctstate", "--state", "--comment"):
            rule.matches[word] = (negate, value)
        elif word not in ("--icmp-type",):
            rule.unknown = True
        negate = False
        i += 2 if value else 1
    return rule


def _in(address: str, net: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(net, strict=False)
    except ValueError:
        return False


def _iface(name: str | None, pattern: str) -> bool:
    if name is None:
        return False
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def matches(rule: Rule, pkt: Packet) -> bool:
    if rule.unknown:
        return False
    for opt, (negated, value) in rule.matches.items():
        if opt == "-s":
            hit = _in(pkt.src, value)
        elif opt == "-d":
            hit = _in(pkt.dst, value)
        elif opt == "-i":
            hit = _iface(pkt.iif, value)
        elif opt == "-o":
            hit = _iface(pkt.oif, value)
        elif opt == "-p":
            hit = value in ("all", pkt.proto)
        elif opt in ("--ctstate", "--state"):
            hit = "NEW" in value.split(",")
        else:  # --comment
            continue
        if hit == negated:
            return False
    return True


class Rules:
    """One table's `iptables -S` lines."""

    def __init__(self, lines: list[str] | None):
        self.lines = lines or []
        self.policies: dict[str, str] = {}
        self.chains: dict[str, list[Rule]] = {}
        for line in self.lines:
            words = line.split()
            if words[:1] == ["-P"] and len(words) == 3:
                self.policies[words[1]] = words[2]
            elif words[:1] == ["-N"] and len(words) == 2:
                self.chains.setdefault(words[1], [])
            else:
                rule = _parse(line)
                if rule is not None:
                    self.chains.setdefault(rule.chain, []).append(rule)

    def policy(self, chain: str) -> str | None:
        return self.policies.get(chain)

    def rules(self, chain: str) -> list[Rule]:
        return self.chains.get(chain, [])

    def _walk(self, chain: str, pkt: Packet, depth: int = 0) -> Verdict | None:
        """The verdict a chain reaches for PKT; None when it returns (or falls off its end)."""
        if depth > 32:
            return None
        for rule in self.rules(chain):
            if not matches(rule, pkt):
                continue
            if rule.target in TERMINAL:
                return Verdict(rule.target, rule, chain)
            if rule.target == "RETURN":
                return None
            if rule.target in self.chains:
                found = self._walk(rule.target, pkt, depth + 1)
                if found is not None or rule.goto:
                    return found
        return None

    def verdict(self, chain: str, pkt: Packet) -> Verdict:
        """What built-in CHAIN does with PKT: a rule's ACCEPT/DROP/REJECT, else the chain's policy."""
        found = self._walk(chain, pkt)
        if found is not None:
            return found
        return Verdict(self.policy(chain) or "ACCEPT", None, chain)

    def dnat(self, address: str, chain: str = "PREROUTING") -> list[tuple[str, list[Rule]]]:
        """The DNAT targets (--to-destination) a new packet to ADDRESS meets from CHAIN of the nat table,
        each with the rules that lead to it (the Service's chain, its endpoint's); [] when none."""
        pkt = Packet(src="0.0.0.0", dst=address, proto="tcp")
        found: list[tuple[str, list[Rule]]] = []
        self._dnat(chain, pkt, [], found, 0)
        return found

    def _dnat(self, chain, pkt, trail, found, depth):
        if depth > 16:
            return
        for rule in self.rules(chain):
            if not _dnat_candidate(rule, pkt):
                continue
            if rule.target == "DNAT":
                to = rule.target_args.get("--to-destination", "")
                if to and to not in [f for f, _ in found]:
                    found.append((to, [*trail, rule]))
            elif rule.target in self.chains:
                self._dnat(rule.target, pkt, [*trail, rule], found, depth + 1)

    def masquerades(self) -> list[Rule]:
        return [r for rules in self.chains.values() for r in rules if r.target == "MASQUERADE"]


def _dnat_candidate(rule: Rule, pkt: Packet) -> bool:
    """Rules on the way to a Service's DNAT: the destination must match; source, ports, marks and the
    random pick between endpoints (statistic) are left open, every endpoint counts."""
    negated, value = rule.matches.get("-d", (False, None))
    if value is not None and _in(pkt.dst, value) == negated:
        return False
    if "addrtype" in rule.modules:  # NodePorts: the node's own addresses, never a Service's
        return False
    return rule.target not in ("RETURN", "ACCEPT", "DROP", "REJECT")
