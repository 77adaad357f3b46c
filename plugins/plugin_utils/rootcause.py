# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The probable root cause of an incident: the explains graph over every host's findings, its best chain, the fix to
run first and a 5-whys draft (controller side, pure; the relations are data in ``module_utils/explains.py``).

A finding A explains a finding B when a relation of A's rule names B's rule and its condition holds (see
``explains.py``): what they must share (host, port, application) and when (the cause's first sign before the effect's,
the effect within a window of the cause's last sign). Only real findings take part: not ``info`` or ``unknown``, not
``diagnose.*``.

Every finding that explains at least one other is a candidate root; it explains everything reachable from it. The
candidates are ranked by how many findings they explain, then the worst severity among them, then the root's own
severity and confidence, then which came first in time. The best one is the probable root cause; its chain is the
path from it through the effects that explain the most, cause first; the next two candidates outside what it explains
are the alternatives.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.agentops.runbooks.plugins.module_utils import explains
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils.timeline import finding_times, iso

SLACK = 60  # seconds an effect may appear to precede its cause (minute-wide buckets, clocks of two hosts)
NOT_REAL = ("info", "unknown")
# Names that say nothing about which application a finding is about.
GENERIC = frozenset(("agent", "agents", "node", "nodejs", "app", "none", "unknown", "npm", "npx", "pm2", "systemd", "docker", "podman",
                     "service", "default", "all", "other", "main", "server"))
APPLICATION_KEYS = ("application", "service", "container", "workload", "pod", "unit", "oldest_application", "root_application", "name")
PORT_KEYS = ("port", "dependency_port", "listener_port")
MAX_ALTERNATIVES = 2
MAX_WHYS = 5


def _tokens(name):
    return frozenset(t for t in re.split(r"[^a-z0-9]+", str(name).lower()) if t and t not in GENERIC and not t.isdigit())


def keys(item, host, context=None):
    """What a finding offers to the conditions: ``{"host": {host}, "port": {int}, "application": {token sets},
    "subject": {the finding's subject}}`` (the subject: the very same thing, e.g. "docker agent-api", named alike by two
    families)."""
    evidence = item.get("evidence") or {}
    ports = set()
    for key in PORT_KEYS:
        value = evidence.get(key)
        if isinstance(value, (int, str)) and str(value).isdigit():
            ports.add(int(value))
    for value in str(evidence.get("port_list") or "").split("|"):
        if value.isdigit():
            ports.add(int(value))
    if item.get("id", "").startswith("pg.") and not ports and context and str(context.get("pg_port") or "").isdigit():
        ports.add(int(context["pg_port"]))
    names = set()
    for key in APPLICATION_KEYS:
        value = evidence.get(key)
        if isinstance(value, str) and value:
            names.add(value)
    for value in str(evidence.get("components") if isinstance(evidence.get("components"), str) else "").split(","):
        if value.strip():
            names.add(value.strip())
    if item.get("id") == "pg.pool_hog" and item.get("subject"):
        names.add(str(item["subject"]))
    applications = set(t for t in (_tokens(n) for n in names) if t)
    return {"host": {host}, "port": ports, "application": applications, "subject": {item["subject"]} if item.get("subject") else set()}


def _same_application(causes, effects):
    return any(a <= b or b <= a for a in causes for b in effects)


def holds(relation, cause, effect):
    """Whether ``relation`` (of cause's rule) holds between two nodes ``{"keys", "first", "last"}``."""
    for key in relation.get("same") or ():
        mine, theirs = cause["keys"].get(key) or set(), effect["keys"].get(key) or set()
        if key == "application":
            if not _same_application(mine, theirs):
                return False
        elif not mine & theirs:
            return False
    if cause["first"] is None or effect["first"] is None:
        return True  # a state measured now has no time to contradict
    if relation.get("before") and cause["first"] > effect["first"] + SLACK:
        return False
    window = relation.get("window_seconds")
    if window is not None and effect["first"] > (cause["last"] if cause["last"] is not None else cause["first"]) + window:
        return False
    return True


def nodes_of(records, contexts=None):
    """Every real finding of the incident as a node ``{host, index, item, keys, first, last}``."""
    nodes = []
    for host, record in sorted(records.items()):
        for index, item in enumerate(record.get("findings") or []):
            if item.get("severity") in NOT_REAL or item.get("id", "").startswith("diagnose.") or item.get("id") not in fm.RULES:
                continue
            first, last = finding_times(item)
            nodes.append({"host": host, "index": index, "item": item, "keys": keys(item, host, (contexts or {}).get(host)),
                          "first": first, "last": last})
    return nodes


def edges_of(nodes):
    """``{node number: [(effect node number, because)]}``."""
    by_rule = {}
    for number, node in enumerate(nodes):
        by_rule.setdefault(node["item"]["id"], []).append(number)
    edges = {}
    for number, node in enumerate(nodes):
        for relation in explains.relations(node["item"]["id"]):
            for effect_rule in relation["effects"]:
                for other in by_rule.get(effect_rule, ()):
                    if other != number and holds(relation, node, nodes[other]) and other not in [e for e, _b in edges.get(number, [])]:
                        edges.setdefault(number, []).append((other, relation["because"]))
    return edges


def _reach(start, edges):
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        for other, dummy in edges.get(current, ()):
            if other not in seen and other != start:
                seen.add(other)
                todo.append(other)
    return seen


def _severity(node):
    return fm.SEVERITY_ORDER.get(node["item"].get("severity"), len(fm.SEVERITIES))


def _rank(number, nodes, reach):
    node = nodes[number]
    worst = min([_severity(node)] + [_severity(nodes[n]) for n in reach])
    first = node["first"] if node["first"] is not None else float("inf")
    return (-len(reach), worst, _severity(node), -(node["item"].get("confidence") or 0), first, node["host"], node["item"]["id"],
            node["index"])


def _path(root, nodes, edges, reaches):
    """The chain from ``root``: each step the effect that explains the most (then the worst, then the earliest)."""
    chain, because, seen = [root], [None], {root}
    current = root
    while True:
        options = [(other, why) for other, why in edges.get(current, ()) if other not in seen]
        if not options:
            return chain, because
        other, why = min(options, key=lambda o: (-len(reaches[o[0]] - seen), _severity(nodes[o[0]]),
                                                 nodes[o[0]]["first"] if nodes[o[0]]["first"] is not None else float("inf"), o[0]))
        chain.append(other)
        because.append(why)
        seen.add(other)
        current = other


def evidence_line(item, limit=300):
    """One sentence of a finding's evidence: its symptom, on one line, cut at ``limit`` characters."""
    text = " ".join(str(item.get("symptom") or item.get("title") or "").split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _step(node):
    item = node["item"]
    return {"host": node["host"], "rule": item["id"], "finding_index": node["index"], "title": item.get("title"),
            "severity": item.get("severity"), "evidence_line": evidence_line(item), "first_seen": iso(node["first"])}


def _lower(title):
    """A title inside a sentence: its first letter lower case, unless its first word is a name (TLS, PostgreSQL, WebSocket)."""
    word = (title or "").split(" ", 1)[0]
    return title if not title or word[1:] != word[1:].lower() else title[:1].lower() + title[1:]


def whys(chain, because, nodes):
    """A 5-whys draft from a chain: from the symptom the users see back to the root, then why the root happened."""
    steps = [nodes[n] for n in chain]
    out = []
    for position in range(len(steps) - 1, 0, -1):
        effect, cause = steps[position], steps[position - 1]
        out.append("Why %s on %s? Because %s on %s: %s (%s)." % (
            _lower(effect["item"].get("title")), effect["host"], _lower(cause["item"].get("title")), cause["host"],
            evidence_line(cause["item"], 200).rstrip("."), because[position]))
    root = steps[0]["item"]
    diagnosis = " ".join(str(root.get("diagnosis") or "").split())
    first = re.split(r"(?<=[.!?])\s", diagnosis, maxsplit=1)[0] if diagnosis else "not known from what was measured"
    out.append("Why %s on %s? To be confirmed: %s" % (_lower(root.get("title")), steps[0]["host"], first.rstrip(".") + "."))
    if len(out) > MAX_WHYS:
        out = out[:MAX_WHYS - 1] + out[-1:]
    return out


def _first_fix(node):
    fix = node["item"].get("fix") or {}
    return {"host": node["host"], "rule": node["item"]["id"], "command": fix.get("command"), "summary": fix.get("summary"),
            "playbook": fix.get("playbook")}


def _chain_dict(root, nodes, edges, reaches):
    chain, because = _path(root, nodes, edges, reaches)
    explained = reaches[root] | {root}
    not_explained = [{"host": n["host"], "rule": n["item"]["id"], "title": n["item"].get("title")}
                     for number, n in enumerate(nodes) if number not in explained]
    return {"chain": [_step(nodes[n]) for n in chain], "explains_count": len(reaches[root]), "first_fix": _first_fix(nodes[root]),
            "not_explained": not_explained, "whys": whys(chain, because, nodes)}


def analyze(records, contexts=None):
    """``(root_cause or None, explained)`` for ``{host: record}`` (findings already weighed by ``assess``).

    ``explained`` maps ``(host, finding index)`` of every finding the root cause explains to ``(cause host, cause
    rule)``, the finding that explains it directly on the chosen graph; ``contexts`` (``{host: host_context}``) give
    pg findings their port."""
    nodes = nodes_of(records, contexts)
    edges = edges_of(nodes)
    reaches = dict((number, _reach(number, edges)) for number in range(len(nodes)))
    candidates = sorted((n for n in edges if reaches[n]), key=lambda n: _rank(n, nodes, reaches[n]))
    if not candidates:
        return None, {}
    best = candidates[0]
    root_cause = _chain_dict(best, nodes, edges, reaches)
    covered = reaches[best] | {best}
    alternatives = []
    for number in candidates[1:]:
        if len(alternatives) >= MAX_ALTERNATIVES:
            break
        if number in covered:
            continue
        alternatives.append(_chain_dict(number, nodes, edges, reaches))
        covered |= reaches[number] | {number}
    root_cause["alternatives"] = alternatives
    explained = {}
    todo, seen = [best], {best}
    while todo:  # breadth first: each explained finding names the cause nearest the root
        current = todo.pop(0)
        for other, dummy in edges.get(current, ()):
            if other not in seen:
                seen.add(other)
                explained[(nodes[other]["host"], nodes[other]["index"])] = (nodes[current]["host"], nodes[current]["item"]["id"])
                todo.append(other)
    return root_cause, explained
