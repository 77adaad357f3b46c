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
import os
import shlex
import string

from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES, docs_url

# Display order, worst first. ``unknown`` means "could not be checked": it is
# shown right after the real problems so nobody mistakes it for healthy.
SEVERITIES = ("critical", "high", "medium", "unknown", "low", "info")
SEVERITY_ORDER = dict((name, index) for index, name in enumerate(SEVERITIES))
# Severities that thresholds may grade into (``unknown`` is never graded).
GRADED = ("info", "low", "medium", "high", "critical")


# The tests set AGENTOPS_STRICT_EVIDENCE=1 (tests/conftest.py): a rule template naming an evidence key that the
# emitting code did not provide is then an error, so it fails a test instead of reaching a report. In production the
# key reads "(unknown)", never a raw "{key}".
STRICT = os.environ.get("AGENTOPS_STRICT_EVIDENCE") == "1"
UNKNOWN = "(unknown)"


def _root(field):
    return field.split(".", 1)[0].split("[", 1)[0]


def _fill(template, values, rule_id=None):
    if not template:
        return template
    missing = sorted(set(_root(name) for name in template_fields(template)) - set(values))
    if missing:
        if STRICT:
            raise ValueError("rule %s: its template needs evidence %s that the finding does not carry." % (rule_id, ", ".join(missing)))
        values = dict(values, **dict((name, UNKNOWN) for name in missing))
    try:
        return string.Formatter().vformat(template, (), values)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
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
        settings = severity_settings(rule_id)
        if not isinstance(levels, dict):
            raise ValueError("thresholds for %s must be a mapping of severity to number, got %r." % (rule_id, levels))
        cleaned[rule_id] = {}
        for level, value in levels.items():
            if level in settings and settings[level] == "severity":
                if value not in SEVERITY_ORDER or value == "unknown":
                    raise ValueError("thresholds %s.%s must be a severity (%s), got %r." % (rule_id, level, ", ".join(GRADED), value))
                cleaned[rule_id][level] = value
                continue
            if level not in known and level not in settings:
                raise ValueError("thresholds for %s has no level %r; it takes %s." % (
                    rule_id, level, ", ".join(sorted(set(known) | set(settings))) or "none"))
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


def severity_settings(rule_id):
    """The severity settings of a rule besides its thresholds, which users may override in ``agentops_thresholds``:
    ``severity`` (the severity of a rule without thresholds) and each floor's ``name`` -> ``severity`` (the floor's
    severity) or ``number`` (a floor with a ``below`` limit)."""
    rule = RULES[rule_id]
    settings = {}
    if rule.get("severity"):
        settings["severity"] = "severity"
    for floor in rule.get("floors") or ():
        settings[floor["name"]] = "number" if "below" in floor else "severity"
    return settings


def thresholds_for(rule_id, overrides=None):
    levels = dict(RULES[rule_id].get("thresholds") or {})
    levels.update((overrides or {}).get(rule_id) or {})
    return dict((level, value) for level, value in levels.items() if level in SEVERITY_ORDER)


def floored(rule_id, severity, evidence, overrides=None):
    """``severity`` raised by the rule's ``floors`` that the evidence meets; returns ``(severity, because)``.

    A floor is ``{"name", "when": evidence key, "severity"[, "below": number], "because": sentence}``: when the
    evidence value is truthy (or, with ``below``, smaller than that limit) the finding is at least that severity.
    Users override a floor's severity (or its ``below`` limit) by its name in ``agentops_thresholds``."""
    user = (overrides or {}).get(rule_id) or {}
    because = None
    for floor in RULES[rule_id].get("floors") or ():
        value = evidence.get(floor["when"])
        if "below" in floor:
            limit = float(user.get(floor["name"], floor["below"]))
            hit, target = value is not None and value < limit, floor["severity"]
        else:
            limit, hit, target = None, bool(value), user.get(floor["name"], floor["severity"])
        if hit and SEVERITY_ORDER[target] < SEVERITY_ORDER[severity]:
            severity, because = target, floor["because"].format(limit=limit)
    return severity, because


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


def make(rule_id, severity, evidence, subject=None, overrides=None):
    """Build a finding for ``rule_id`` from the catalog plus this instance's evidence.

    ``severity=None`` takes the rule's fixed ``severity`` (or the user's, from ``overrides``); then the rule's
    ``floors`` may raise it (see ``floored``), so every severity comes from the catalog and the user's thresholds."""
    if rule_id not in RULES:
        raise ValueError("unknown rule id %r." % rule_id)
    rule = RULES[rule_id]
    if severity is None:
        severity = ((overrides or {}).get(rule_id) or {}).get("severity") or rule.get("severity")
    if severity not in SEVERITY_ORDER:
        raise ValueError("unknown severity %r for %s." % (severity, rule_id))
    evidence = dict(evidence or {})
    if rule.get("floors"):
        severity, because = floored(rule_id, severity, evidence, overrides)
        if because:
            evidence["escalated_because"] = because
    fix = rule.get("fix") or {}
    return {
        "id": rule_id,
        "severity": severity,
        "category": rule["category"],
        "title": rule["title"],
        "subject": subject,
        "symptom": _fill(rule.get("symptom"), evidence, rule_id),
        "evidence": evidence,
        "diagnosis": _fill(rule.get("diagnosis"), evidence, rule_id),
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
    return make(rule_id, severity, evidence, subject=subject, overrides=overrides)


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
