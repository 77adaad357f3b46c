# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one findings model every diagnostic module and the report share.

A finding is a plain dict (it travels as JSON from the host to the controller)::

    {"id": "proc.zombie", "severity": "low", "category": "proc",
     "title": "...", "subject": "ppid 1234", "symptom": "...",
     "evidence": {...the numbers, pids and lines seen...},
     "diagnosis": "...", "fix": {"summary", "command", "playbook"},
     "docs": "docs/Production-Debugging-Playbooks.md#proc-zombie"}

The static parts come from :mod:`rules`; callers pass only the rule id, the
severity and the evidence. Helpers raise ``ValueError``; modules turn that into
one ``fail_json`` sentence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import shlex
import string

from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES, docs_url

# Display order, worst first. ``unknown`` means "could not be checked": it is
# shown right after the real problems so nobody mistakes it for healthy.
SEVERITIES = ("critical", "high", "medium", "unknown", "low", "info")
SEVERITY_ORDER = dict((name, index) for index, name in enumerate(SEVERITIES))
# Severities that thresholds may grade into (``unknown`` is never graded).
GRADED = ("info", "low", "medium", "high", "critical")


class _Lenient(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _fill(template, values):
    if not template:
        return template
    try:
        return string.Formatter().vformat(template, (), _Lenient(values))
    except (ValueError, IndexError, AttributeError):
        return template


def template_fields(template):
    """The names a ``str.format`` template needs (``{pid}`` -> ``pid``; ``{{`` escapes are not fields)."""
    return [name for _text, name, _spec, _conv in string.Formatter().parse(template or "") if name]


def fix_command(rule_id, values):
    """The rule's fix command filled from ``values``, or None.

    A rule's ``fix.command`` is one template or a list of alternatives, most specific first; the first whose
    fields are all known is used, so a command never shows a ``{placeholder}``. Every value is shell-quoted
    (a path or a log-derived name can never break out of its argument), so the command runs as printed.
    """
    command = (RULES[rule_id].get("fix") or {}).get("command")
    for template in (command if isinstance(command, list) else [command] if command else []):
        names = template_fields(template)
        if all(values.get(name) not in (None, "") for name in names):
            filled = string.Formatter().vformat(template, (), dict((name, shlex.quote(str(values[name]))) for name in names))
            if filled.startswith("ansible-playbook ") and values.get("host") and " --limit " not in filled:
                play, _sep, rest = filled[len("ansible-playbook "):].partition(" ")
                filled = "ansible-playbook %s --limit %s%s" % (play, shlex.quote(str(values["host"])), " " + rest if rest else "")
            return filled
    return None


def validate_thresholds(overrides):
    """Check user threshold overrides against the catalog.

    ``overrides`` maps a rule id to ``{severity: number}``. Returns a cleaned
    copy with float values; raises ``ValueError`` with one sentence otherwise.
    """
    cleaned = {}
    for rule_id, levels in (overrides or {}).items():
        if rule_id not in RULES:
            close = difflib.get_close_matches(str(rule_id), sorted(RULES), n=1, cutoff=0.6)
            graded_ids = sorted(r for r in RULES if RULES[r].get("thresholds"))
            raise ValueError("thresholds names unknown rule %r%s; rules with thresholds: %s." % (
                rule_id, " (did you mean %s?)" % close[0] if close else "", ", ".join(graded_ids)))
        known = RULES[rule_id].get("thresholds") or {}
        if not isinstance(levels, dict):
            raise ValueError("thresholds for %s must be a mapping of severity to number, got %r." % (rule_id, levels))
        cleaned[rule_id] = {}
        for level, value in levels.items():
            if level not in known:
                raise ValueError("thresholds for %s has no level %r; it takes %s." % (rule_id, level, ", ".join(sorted(known)) or "none"))
            if isinstance(value, bool):
                raise ValueError("threshold %s.%s must be a number, got %r." % (rule_id, level, value))
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError("threshold %s.%s must be a number, got %r." % (rule_id, level, value))
            if not 0 <= number < float("inf"):  # also refuses NaN
                raise ValueError("threshold %s.%s must be a finite number of at least 0, got %s." % (rule_id, level, value))
            cleaned[rule_id][level] = number
    return cleaned


def thresholds_for(rule_id, overrides=None):
    levels = dict(RULES[rule_id].get("thresholds") or {})
    levels.update((overrides or {}).get(rule_id) or {})
    return levels


def grade(rule_id, value, overrides=None):
    """Severity that ``value`` reaches for ``rule_id``, or ``None`` below every threshold."""
    if value is None:
        return None
    below = RULES[rule_id].get("direction") == "below"
    reached = None
    for level, limit in thresholds_for(rule_id, overrides).items():
        hit = value < limit if below else value >= limit
        if hit and (reached is None or SEVERITY_ORDER[level] < SEVERITY_ORDER[reached]):
            reached = level
    return reached


def make(rule_id, severity, evidence, subject=None):
    """Build a finding for ``rule_id`` from the catalog plus this instance's evidence."""
    if rule_id not in RULES:
        raise ValueError("unknown rule id %r." % rule_id)
    if severity not in SEVERITY_ORDER:
        raise ValueError("unknown severity %r for %s." % (severity, rule_id))
    rule = RULES[rule_id]
    evidence = dict(evidence or {})
    fix = rule.get("fix") or {}
    return {
        "id": rule_id,
        "severity": severity,
        "category": rule["category"],
        "title": rule["title"],
        "subject": subject,
        "symptom": _fill(rule.get("symptom"), evidence),
        "evidence": evidence,
        "diagnosis": _fill(rule.get("diagnosis"), evidence),
        "fix": {
            "summary": fix.get("summary"),
            "command": fix_command(rule_id, evidence),
            "playbook": fix.get("playbook"),
        },
        "docs": docs_url(rule_id),
    }


def graded(rule_id, value, evidence, overrides=None, subject=None):
    """A finding when ``value`` reaches a threshold of ``rule_id``, else ``None``."""
    severity = grade(rule_id, value, overrides)
    if severity is None:
        return None
    evidence = dict(evidence)
    evidence.setdefault("threshold", thresholds_for(rule_id, overrides)[severity])
    return make(rule_id, severity, evidence, subject=subject)


def sort_key(finding):
    return (SEVERITY_ORDER.get(finding.get("severity"), len(SEVERITIES)), finding.get("id", ""), str(finding.get("subject") or ""))


def ordered(findings):
    return sorted(findings, key=sort_key)


def worst(findings):
    """The worst real severity among ``findings`` (``unknown`` counts only when nothing else does)."""
    best = None
    for item in findings:
        sev = item.get("severity")
        if sev not in SEVERITY_ORDER:
            continue
        if best is None or SEVERITY_ORDER[sev] < SEVERITY_ORDER[best]:
            best = sev
    return best


def describe(exc):
    """One short phrase for an exception: ``Permission denied (/proc/1/fd)``."""
    if isinstance(exc, OSError) and exc.strerror:
        return "%s%s" % (exc.strerror, " (%s)" % exc.filename if exc.filename else "")
    return str(exc) or exc.__class__.__name__
