# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side, pure functions that turn the incident report into documents for people.

Written by the incident_report action next to report.json and report.md:

* ``postmortem.md`` (``postmortem_markdown``): a draft in the usual blameless shape - summary, impact (error rate,
  affected users), timeline, root cause, contributing factors, what went well / poorly (left as prompts), action
  items pre-filled from the fixes, and who was to be paged;
* ``status-update.md`` (``status_update_markdown``): severity, status, started, affected, current impact, actions
  taken, next steps and when the next update is due, for stakeholders; it quotes no log text;
* the escalation block of both (``escalation``): from ``agentops_escalation``, a list of levels
  ``{level, contact, method, after_minutes, severities}`` (default ``DEFAULT_ESCALATION``): the levels whose
  ``severities`` hold the incident's severity and whose ``after_minutes`` have passed since the incident started
  are to be paged now; the others of that severity follow, each after its minutes.

*Started* is the earliest ``first_seen`` among the findings that count now (not historical, not contradicted by the
current state, worse than info), else the first event of the timeline that shows trouble (a first occurrence, a minute
with errors, an OOM kill, a restart or an exit) within the recent window, else the diagnosis time.
Elapsed time is measured to the diagnosis (``generated_at``), the moment the documents describe.

Every renderer takes the report as ``incident.incident_report`` builds it and reads the optional keys
(``root_cause``, ``timeline``, ``error_rates``) only when they are there. Text that comes from the hosts (log
lines in evidence) is flattened to one line, cut short and escaped so that it cannot open a link, an HTML tag, a
code span or a table cell in a Markdown renderer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import timeline as tl

SEVERITY_LEVELS = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
# The four levels of the incident-response seed; users replace the contacts with their rotation's names.
DEFAULT_ESCALATION = (
    {"level": 1, "contact": "On-call engineer", "method": "page via PagerDuty or the on-call phone", "after_minutes": 0,
     "severities": ["SEV-1", "SEV-2", "SEV-3"]},
    {"level": 2, "contact": "Engineering manager", "method": "phone call", "after_minutes": 15, "severities": ["SEV-1", "SEV-2"]},
    {"level": 3, "contact": "VP engineering", "method": "phone call", "after_minutes": 30, "severities": ["SEV-1"]},
    {"level": 4, "contact": "Customer support / status page", "method": "support channel and a public status page update",
     "after_minutes": 15, "severities": ["SEV-1", "SEV-2"]},
)
ESCALATION_KEYS = ("level", "contact", "method", "after_minutes", "severities")
MAX_AFTER_MINUTES = 10080  # a week
# Minutes until the next status update is due, per severity (None: no scheduled update).
UPDATE_MINUTES = {"SEV-1": 30, "SEV-2": 60, "SEV-3": 240, "SEV-4": None}
# Timeline kinds that show trouble (a process start, a boot, this run's deploy switch or the diagnosis do not start one).
TROUBLE_KINDS = ("first_seen", "error_rate", "oom_kill", "restart", "process_exit")
NOT_REAL = ("unknown", "info")
POSTMORTEM_TIMELINE = 40
EVENT = {"time": None, "host": None, "kind": None, "what": "", "rule": None, "value": None, "component": None}


# ---------------------------------------------------------------------------------------------------------- time
def parse_time(text):
    """Epoch seconds of an ISO 8601 time (``Z`` or an offset, fractional seconds, a space for ``T``); None when the
    text is not one. A time without an offset is UTC, as every time in the report is."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip().replace(" ", "T", 1)
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def number_or(value, default):
    """``value`` as a float, or ``default`` when it is not a number."""
    if isinstance(value, bool):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(minutes):
    """``2 h 05 min`` / ``12 min`` / ``3 d 4 h``."""
    minutes = int(max(0, minutes))
    if minutes >= 1440:
        return "%d d %d h" % (minutes // 1440, minutes % 1440 // 60)
    if minutes >= 60:
        return "%d h %02d min" % (minutes // 60, minutes % 60)
    return "%d min" % minutes


# ------------------------------------------------------------------------------------------------- text escaping
_MD_SPECIAL = re.compile(r"([\\`\[\]|])")
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def one_line(value, limit=300):
    """Any value as one line of at most ``limit`` characters."""
    text = " ".join(str("" if value is None else value).split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def md(value, limit=300):
    """One line of Markdown-safe text: no HTML tag, entity, link, code span or table cell can start in it (``<`` and
    ``>`` become entities, so not even the raw file holds a tag)."""
    text = _MD_ENTITY.sub("&amp;", one_line(value, limit)).replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code(value, limit=300):
    """An inline code span that holds ``value`` whatever backticks it contains."""
    text = one_line(value, limit)
    ticks = max([len(run) for run in re.findall(r"`+", text)] + [0]) + 1
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % ("`" * ticks, pad, text, pad, "`" * ticks)


def fenced(text, info="sh"):
    """A fenced code block longer than any backtick run inside ``text``."""
    ticks = max([len(run) for run in re.findall(r"`{3,}", text)] + [2]) + 1
    return ["`" * ticks + info, text, "`" * ticks]


def names(items, limit=5):
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (" and %d more" % (len(items) - limit) if len(items) > limit else "")


# ---------------------------------------------------------------------------------------------------- escalation
def _severity_name(value, where):
    text = str(value).strip().upper().replace("_", "-").replace(" ", "-")
    if re.match(r"^[1-4]$", text):
        text = "SEV-" + text
    elif re.match(r"^SEV[1-4]$", text):
        text = "SEV-" + text[3:]
    if text not in SEVERITY_LEVELS:
        raise ValueError("%s has severity %r; use SEV-1, SEV-2, SEV-3 or SEV-4." % (where, value))
    return text


def check_escalation(levels, name="agentops_escalation"):
    """The escalation levels, checked and normalized: ``None`` gives ``DEFAULT_ESCALATION``; otherwise a list of
    mappings with ``contact`` (required), ``severities`` (required: SEV-1..SEV-4), ``method`` (default ``page``),
    ``after_minutes`` (0 to 10080, default 0) and ``level`` (default its position). Raises ValueError with one
    sentence naming the variable ``name`` and the entry."""
    if levels is None:
        return [dict(level, severities=list(level["severities"])) for level in DEFAULT_ESCALATION]
    if isinstance(levels, (str, bytes)) or not isinstance(levels, (list, tuple)):
        raise ValueError("%s must be a list of escalation levels (contact, method, after_minutes, severities), got %r."
                         % (name, levels))
    out = []
    for index, entry in enumerate(levels):
        where = "%s[%d]" % (name, index)
        if not isinstance(entry, dict):
            raise ValueError("%s must be a mapping with contact, method, after_minutes and severities, got %r." % (where, entry))
        unknown = sorted(set(str(key) for key in entry) - set(ESCALATION_KEYS))
        if unknown:
            raise ValueError("%s has no key %s; its keys are %s." % (where, ", ".join(repr(k) for k in unknown), ", ".join(ESCALATION_KEYS)))
        contact = entry.get("contact")
        if not isinstance(contact, str) or not contact.strip():
            raise ValueError("%s needs contact, who to page (a name, a rotation or a team)." % where)
        method = entry.get("method", "page")
        if not isinstance(method, str) or not method.strip():
            raise ValueError("%s: method must be text such as 'page' or 'phone call', got %r." % (where, method))
        after = entry.get("after_minutes", 0)
        try:
            if isinstance(after, bool):
                raise ValueError()
            after = float(after)
        except (TypeError, ValueError):
            raise ValueError("%s: after_minutes must be a number of minutes between 0 and %d, got %r." % (where, MAX_AFTER_MINUTES, after))
        if not 0 <= after <= MAX_AFTER_MINUTES:
            raise ValueError("%s: after_minutes must be between 0 and %d, got %s." % (where, MAX_AFTER_MINUTES, entry.get("after_minutes")))
        severities = entry.get("severities")
        if isinstance(severities, (str, int)) and not isinstance(severities, bool):
            severities = [severities]
        if not isinstance(severities, (list, tuple)) or not severities:
            raise ValueError("%s needs severities, the incident severities it is paged for (e.g. [SEV-1, SEV-2])." % where)
        level = entry.get("level", index + 1)
        if isinstance(level, bool) or not isinstance(level, (int, str)) or str(level).strip() == "":
            raise ValueError("%s: level must be a number or a short name, got %r." % (where, level))
        out.append({"level": level, "contact": one_line(contact, 200), "method": one_line(method, 200),
                    "after_minutes": int(after) if after == int(after) else after,
                    "severities": sorted(set(_severity_name(s, where) for s in severities))})
    return out


def started(report):
    """When the incident started: ``{"time", "epoch", "source"}`` (rules in the module docstring)."""
    earliest = None
    for host, record in sorted((report.get("hosts") or {}).items()):
        for item in record.get("findings") or []:
            if item.get("severity") in NOT_REAL or item.get("historical") or item.get("contradicted_by"):
                continue
            epoch = parse_time((item.get("evidence") or {}).get("first_seen"))
            if epoch is not None and (earliest is None or epoch < earliest[0]):
                earliest = (epoch, "first seen of %s on %s" % (item.get("id"), host))
    generated = parse_time(report.get("generated_at"))
    window = number_or(report.get("recent_window_seconds"), 900.0)
    if earliest is None and generated is not None:
        for event in report.get("timeline") or []:
            if not isinstance(event, dict) or event.get("kind") not in TROUBLE_KINDS:
                continue
            if event.get("kind") == "error_rate" and not event.get("value"):
                continue
            epoch = parse_time(event.get("time"))
            if epoch is not None and epoch >= generated - window and (earliest is None or epoch < earliest[0]):
                earliest = (epoch, "first event of the timeline: %s" % one_line(event.get("what"), 120))
    if earliest is None or (generated is not None and earliest[0] > generated):
        if generated is None:
            return {"time": report.get("generated_at"), "epoch": None, "source": "the diagnosis"}
        return {"time": iso(generated), "epoch": generated, "source": "the diagnosis (nothing dates the problem earlier)"}
    return {"time": iso(earliest[0]), "epoch": earliest[0], "source": earliest[1]}


def escalation(report, levels=None):
    """Who should be paged now, given the severity and the time since the incident started.

    ``levels`` is ``check_escalation``'s output (or None for the default). Returns ``{severity, started,
    started_from, at, elapsed_minutes, page_now: [level], later: [level + in_minutes], levels}``.
    """
    levels = check_escalation(levels)  # idempotent: checked levels pass through unchanged
    severity = report.get("severity")
    start = started(report)
    generated = parse_time(report.get("generated_at"))
    elapsed = max(0.0, (generated - start["epoch"]) / 60.0) if generated is not None and start["epoch"] is not None else 0.0
    mine = [level for level in levels if severity in level["severities"]]
    page_now = [dict(level) for level in mine if level["after_minutes"] <= elapsed]
    later = [dict(level, in_minutes=int(round(level["after_minutes"] - elapsed))) for level in mine if level["after_minutes"] > elapsed]
    return {"severity": severity, "started": start["time"], "started_from": start["source"], "at": report.get("generated_at"),
            "elapsed_minutes": int(elapsed), "page_now": page_now, "later": sorted(later, key=lambda level: level["after_minutes"]),
            "levels": levels}


def escalation_lines(esc):
    """The escalation block, in Markdown."""
    out = ["Severity %s, started %s (%s), %s before the diagnosis at %s." % (
        md(esc["severity"]), md(esc["started"]), md(esc["started_from"], 160), duration(esc["elapsed_minutes"]), md(esc["at"])), ""]
    if esc["page_now"]:
        out.append("**Page now:**")
        out += ["- %s - %s (level %s, from %d min)" % (md(level["contact"]), md(level["method"]), md(level["level"]), level["after_minutes"])
                for level in esc["page_now"]]
    elif not esc["levels"]:
        out.append("**Page now:** nobody - no escalation levels are configured (agentops_escalation is empty).")
    else:
        out.append("**Page now:** nobody - no escalation level covers %s." % md(esc["severity"]))
    if esc["later"]:
        out += ["", "**Next, if the incident is still open:**"]
        out += ["- %s - %s in %d min (level %s, at %d min)" % (md(level["contact"]), md(level["method"]), max(level["in_minutes"], 1),
                                                               md(level["level"]), level["after_minutes"]) for level in esc["later"]]
    return out


# --------------------------------------------------------------------------------------------------- the incident
def real_findings(report):
    """(host, index, finding) of every finding that counts now, worst first."""
    out = []
    for host, record in sorted((report.get("hosts") or {}).items()):
        for index, item in enumerate(record.get("findings") or []):
            if item.get("severity") in NOT_REAL or str(item.get("id", "")).startswith("diagnose.") or item.get("contradicted_by"):
                continue
            out.append((host, index, item))
    return sorted(out, key=lambda entry: (fm.sort_key(entry[2]), entry[0]))


def root_cause(report):
    """The report's root cause (the interface's shape) or None."""
    found = report.get("root_cause")
    return found if isinstance(found, dict) and found.get("chain") else None


def affected_hosts(report):
    hosts = report.get("hosts") or {}
    return sorted(h for h, r in hosts.items() if r.get("status") == "unreachable"
                  or any(f.get("severity") in ("critical", "high") and not f.get("contradicted_by") for f in r.get("findings") or []))


def error_rate(report):
    """The worst recent error rate of the log scans: ``{host, percent, entries, components, window}`` or None."""
    best = None
    for host, record in sorted((report.get("hosts") or {}).items()):
        for item in record.get("findings") or []:
            if item.get("id") != "log.error_rate":
                continue
            evidence = item.get("evidence") or {}
            try:
                percent = float(evidence.get("recent_error_percent"))
            except (TypeError, ValueError):
                continue
            if best is None or percent > best["percent"]:
                best = {"host": host, "percent": percent, "entries": evidence.get("recent_entries"),
                        "components": evidence.get("worst_components"), "historical": bool(item.get("historical"))}
        rates = ((record.get("facts") or {}).get("logs") or {}).get("error_rates") or {}
        if best is None and rates.get("recent_entries"):
            best = {"host": host, "percent": rates.get("recent_error_percent") or 0.0, "entries": rates.get("recent_entries"),
                    "components": ", ".join("%s %s%%" % (c.get("component"), c.get("error_percent")) for c in (rates.get("components") or [])[:3]),
                    "historical": False}
    if best is not None:
        best["window"] = report.get("recent_window_seconds")
    return best


def impact_lines(report):
    """Sentences on who and what is hit: hosts, error rate, users and conversations."""
    hosts = report.get("hosts") or {}
    hit = affected_hosts(report)
    out = ["%d of %d host(s) unreachable or with critical/high findings%s." % (len(hit), len(hosts), " (%s)" % md(names(hit)) if hit else "")]
    rate = error_rate(report)
    if rate:
        window = rate.get("window")
        out.append("Error rate: %s%% of %s log entries in the last %s were errors on %s%s%s." % (
            rate["percent"], rate.get("entries") if rate.get("entries") is not None else "the", duration((window or 900) / 60.0),
            md(rate["host"]), " (worst: %s)" % md(rate["components"], 160) if rate.get("components") else "",
            ", historical" if rate.get("historical") else ""))
    else:
        out.append("Error rate: not measured (no log scan with timestamps; set agentops_log_paths).")
    users = report.get("affected") or {}
    if users.get("users") is not None or users.get("conversations") is not None:
        out.append("Affected users: %s%s distinct user(s) and %s conversation(s) with errors in the logs%s." % (
            "at least " if users.get("capped") else "", users.get("users", 0), users.get("conversations", 0),
            " (summed over hosts)" if len(hosts) > 1 else ""))
    else:
        out.append("Affected users: unknown (no user or conversation ids in the scanned logs).")
    return out


def _fix_of(item):
    fix = item.get("fix") or {}
    return fix.get("summary") or item.get("title"), fix.get("command"), fix.get("playbook")


def action_items(report):
    """Action items pre-filled from the fixes: the root cause's first fix, then each distinct fix of the findings that
    count (one item per fix, all its hosts), then what the diagnosis could not see. ``[{priority, action, command,
    playbook, rules, hosts}]``."""
    items, seen = [], {}

    def add(priority, summary, command, playbook, rule, host):
        key = (command or summary or "").strip()
        if not key:
            return
        if key in seen:
            item = seen[key]
            if host not in item["hosts"]:
                item["hosts"].append(host)
            if rule not in item["rules"]:
                item["rules"].append(rule)
            return
        item = {"priority": priority, "action": summary, "command": command, "playbook": playbook, "rules": [rule], "hosts": [host]}
        seen[key] = item
        items.append(item)

    cause = root_cause(report)
    if cause and isinstance(cause.get("first_fix"), dict):
        fix = cause["first_fix"]
        add("P1", fix.get("summary") or "fix the root cause", fix.get("command"), fix.get("playbook"), fix.get("rule"), fix.get("host"))
    for host, dummy, item in real_findings(report):
        summary, command, playbook = _fix_of(item)
        priority = "P1" if item.get("severity") == "critical" else "P2" if item.get("severity") == "high" else "P3"
        add(priority, summary, command, playbook, item.get("id"), host)
    for spot in report.get("not_checked") or []:
        add("P3", "Let the diagnosis see it: %s - %s" % (spot.get("what"), spot.get("how")), None, None, spot.get("family"), spot.get("host"))
    return sorted(items, key=lambda item: item["priority"])  # stable: the root cause's fix stays first among the P1s


def timeline_events(report, limit=POSTMORTEM_TIMELINE):
    """``(events, left_out)``: the report's timeline, or when it holds more than ``limit`` events its most informative
    ``limit`` in time order (the choice report.md makes, ``timeline.compact``); without a timeline, the findings' first
    and last occurrences and the diagnosis."""
    events = [dict(EVENT, **e) for e in report.get("timeline") or [] if isinstance(e, dict) and parse_time(e.get("time")) is not None]
    if events:
        return (events, 0) if len(events) <= limit else tl.compact(events, limit)
    for host, record in sorted((report.get("hosts") or {}).items()):
        for item in record.get("findings") or []:
            evidence = item.get("evidence") or {}
            for key, verb in (("first_seen", "first seen"), ("last_seen", "last seen")):
                if parse_time(evidence.get(key)) is not None:
                    events.append(dict(EVENT, time=evidence[key], host=host, kind=key, rule=item.get("id"), value=evidence.get("count"),
                                       what="%s %s: %s" % (item.get("id"), verb, item.get("title"))))
    if parse_time(report.get("generated_at")) is not None:
        events.append(dict(EVENT, time=report["generated_at"], kind="diagnosis",
                           what="Diagnosis: %s - %s" % (report.get("verdict") or report.get("severity"), report.get("severity_reason"))))
    events.sort(key=lambda e: parse_time(e["time"]))
    return (events, 0) if len(events) <= limit else (events[:limit - 1] + events[-1:], len(events) - limit)


def _chain_lines(cause):
    out = []
    for number, step in enumerate(cause.get("chain") or [], 1):
        out.append("%d. **%s** on %s (%s, %s)%s: %s" % (
            number, md(step.get("title")), md(step.get("host")), code(step.get("rule")), md(step.get("severity")),
            ", first seen %s" % md(step.get("first_seen")) if step.get("first_seen") else "", md(step.get("evidence_line"), 400)))
    return out


def _verdict(report):
    return report.get("verdict") or report.get("severity")


def first_fix(report):
    """The one fix to run first: the root cause's, else the worst finding's. ``{summary, command, playbook, rule, host}``
    or None when nothing needs fixing."""
    cause = root_cause(report)
    if cause and isinstance(cause.get("first_fix"), dict):
        fix = cause["first_fix"]
        return {"summary": fix.get("summary"), "command": fix.get("command"), "playbook": fix.get("playbook"),
                "rule": fix.get("rule"), "host": fix.get("host")}
    found = real_findings(report)
    if not found:
        return None
    host, dummy, item = found[0]
    summary, command, playbook = _fix_of(item)
    return {"summary": summary, "command": command, "playbook": playbook, "rule": item.get("id"), "host": host}


# ---------------------------------------------------------------------------------------------------- documents
def postmortem_markdown(report, levels=None):
    """The postmortem draft (postmortem.md): facts filled in from the report, judgement left as prompts."""
    esc = escalation(report, levels)
    cause = root_cause(report)
    start = started(report)
    out = [
        "# Postmortem draft: incident %s (%s)" % (md(report.get("incident_id")), md(_verdict(report))),
        "",
        "_Draft generated by the diagnosis at %s from report.json; blameless: describe systems and decisions, not people. "
        "A new diagnosis with the same incident id rewrites this file: copy it before you edit it._" % md(report.get("generated_at")),
        "",
        "## Summary",
        "",
        "- **Severity:** %s - %s." % (md(_verdict(report)), md(report.get("severity_reason"), 500)),
        "- **Started:** %s (%s); diagnosed %s." % (md(start["time"]), md(start["source"], 160), md(report.get("generated_at"))),
    ]
    if cause:
        first = cause["chain"][0]
        out.append("- **Probable root cause:** %s on %s (%s), explaining %s finding(s)." % (
            md(first.get("title")), md(first.get("host")), code(first.get("rule")), cause.get("explains_count", len(cause["chain"]))))
    else:
        out.append("- **Probable root cause:** not determined by the diagnosis; see Contributing factors.")
    fix = first_fix(report)
    out.append("- **First fix:** %s" % ("%s%s (%s on %s)." % (md(fix["summary"]), " - %s" % code(fix["command"], 500) if fix["command"] else "",
                                                              code(fix["rule"]), md(fix["host"]))
                                        if fix else "none: the diagnosis found no problem to fix."))
    out += ["", "_Prompt: in two or three sentences, what happened, to whom, and how it was resolved._", "", "## Impact", ""]
    out += ["- %s" % line for line in impact_lines(report)]
    out += ["- Duration: %s so far (from the start above to the diagnosis)." % duration(esc["elapsed_minutes"]),
            "", "_Prompt: revenue, SLA/SLO budget, customer tickets, data loss - what the numbers above do not show._", ""]
    events, left = timeline_events(report)
    out += ["## Timeline (UTC)", ""]
    if events:
        out += ["| Time | Host | Event |", "| --- | --- | --- |"]
        out += ["| %s | %s | %s |" % (md(e.get("time")), md(e.get("host") or "-"), md(e.get("what"), 240)) for e in events]
        if left:
            out += ["", "%d more event(s) in report.json (timeline)." % left]
    else:
        out.append("No dated events in the report.")
    out += ["", "_Prompt: add when the incident was detected, who was paged, each mitigation, and when it was resolved._", "",
            "## Root cause", ""]
    if cause:
        out += _chain_lines(cause)
        whys = cause.get("whys") or []
        if whys:
            out += ["", "Five whys (draft):", ""] + ["%d. %s" % (n, md(why, 400)) for n, why in enumerate(whys, 1)]
        for number, alternative in enumerate(cause.get("alternatives") or [], 1):
            steps = alternative.get("chain") or []
            if steps:
                out += ["", "Alternative %d: %s." % (number, " -> ".join("%s on %s" % (code(s.get("rule")), md(s.get("host"))) for s in steps))]
    else:
        out.append("The diagnosis did not link the findings into a chain. _Prompt: what caused the first failure?_")
    out += ["", "## Contributing factors", ""]
    factors = []
    if cause:
        factors += ["- Not explained by the root cause: %s on %s (%s)." % (md(n.get("title")), md(n.get("host")), code(n.get("rule")))
                    for n in cause.get("not_explained") or []]
    else:
        factors += ["- [%s] %s on %s (%s): %s" % (item.get("severity"), md(item.get("title")), md(host), code(item.get("id")),
                                                  md(item.get("symptom"), 240)) for host, dummy, item in real_findings(report)[:15]]
    factors += ["- Not seen by the diagnosis: %s on %s (%s)." % (md(s.get("what"), 200), md(s.get("host")), md(s.get("how"), 120))
                for s in (report.get("not_checked") or [])[:10]]
    out += factors or ["- None recorded by the diagnosis."]
    out += ["", "_Prompt: what made it worse or slower to fix (alerting, capacity, a recent change, missing runbook)?_", "",
            "## What went well", "", "_Prompt: what worked - detection, tooling, communication, a fix that held._", "",
            "## What went poorly", "", "_Prompt: what did not - late detection, noisy alerts, unclear ownership, slow rollback._", "",
            "## Where we got lucky", "", "_Prompt: what could have made this much worse._", "",
            "## Action items", "", "_Pre-filled from the fixes, most urgent first; give each an owner and a due date._", ""]
    items = action_items(report)
    for number, item in enumerate(items, 1):
        rules = ", ".join(code(r) for r in item["rules"] if r)
        out.append("%d. **%s** %s (%s on %s) - owner: _?_, status: open" % (
            number, item["priority"], md(item["action"], 300), rules or "-", md(names([h for h in item["hosts"] if h], 3)) or "-"))
        if item.get("command"):
            out += ["   " + line for line in fenced(one_line(item["command"], 2000))]
        elif item.get("playbook"):
            out.append("   Playbook: %s" % code(item["playbook"]))
    out += ["%d. **P2** _Prompt: a change that prevents a recurrence (an alert, a limit, a test, a runbook)_ - owner: _?_, status: open"
            % (len(items) + 1),
            "", "## Escalation", ""]
    out += escalation_lines(esc)
    out += ["", "## References", "", "- report.md, report.json and report.html in this directory (incident %s)." % md(report.get("incident_id"))]
    return "\n".join(out).rstrip() + "\n"


def status(report):
    """The incident's status for a status update: Identified, Investigating or Monitoring."""
    if root_cause(report):
        return "Identified", "the probable root cause is known; the first fix is below"
    if real_findings(report):
        return "Investigating", "problems were found but not yet linked to one cause"
    if report.get("visibility") == "limited":
        return "Monitoring", "no problem found in what could be checked; part of the fleet was not checked"
    return "Monitoring", "the diagnosis found no active problem"


def status_update_markdown(report, levels=None, update_minutes=None):
    """The status update (status-update.md) for stakeholders: no log text, only titles, counts and times."""
    esc = escalation(report, levels)
    state, why = status(report)
    severity = report.get("severity")
    minutes = (update_minutes or UPDATE_MINUTES).get(severity)
    generated = parse_time(report.get("generated_at"))
    if minutes and generated is not None:
        next_update = "%s (in %d min, the %s cadence)" % (iso(generated + minutes * 60), minutes, severity)
    elif minutes:
        next_update = "in %d min (the %s cadence)" % (minutes, severity)
    else:
        next_update = "when the status changes (%s has no scheduled updates)" % (severity or "this severity")
    cause = root_cause(report)
    hosts = report.get("hosts") or {}
    hit = affected_hosts(report)
    rate = error_rate(report)
    users = report.get("affected") or {}
    impact = []
    if rate and not rate.get("historical"):
        impact.append("%s%% of the log entries of the last %s were errors%s" % (
            rate["percent"], duration((rate.get("window") or 900) / 60.0), " (worst: %s)" % md(rate["components"], 120) if rate.get("components") else ""))
    if users.get("users"):
        impact.append("%s%s user(s) saw errors" % ("at least " if users.get("capped") else "", users["users"]))
    if cause:
        impact.append("probable cause: %s on %s" % (md(cause["chain"][0].get("title")), md(cause["chain"][0].get("host"))))
    elif real_findings(report):
        host, dummy, item = real_findings(report)[0]
        impact.append("worst finding: %s on %s" % (md(item.get("title")), md(host)))
    taken = ["Automated diagnosis of %d host(s) at %s (%s)." % (len(hosts), md(report.get("generated_at")), md(report.get("severity_reason"), 300))]
    for host, record in sorted(hosts.items()):
        rollback = record.get("rollback")
        if isinstance(rollback, dict):
            taken.append("Rollback on %s: %s, %s -> %s." % (
                md(host), md(rollback.get("outcome")), md(rollback.get("from_release")), md(rollback.get("to_release"))))
    for event in report.get("timeline") or []:
        if isinstance(event, dict) and event.get("kind") == "deploy":
            taken.append("%s: %s" % (md(event.get("time")), md(event.get("what"), 200)))
    fix = first_fix(report)
    next_steps = "%s (%s on %s)." % (md(fix["summary"]), code(fix["rule"]), md(fix["host"])) if fix else "keep watching; re-run the diagnosis if it recurs."
    who = "; %s user(s), %s conversation(s) with errors" % (users.get("users", 0), users.get("conversations", 0)) if users.get("users") is not None else ""
    out = [
        "# Status update: incident %s" % md(report.get("incident_id")),
        "",
        "- **Severity:** %s" % md(_verdict(report)),
        "- **Status:** %s - %s." % (state, why),
        "- **Started:** %s (%s); %s before this update." % (md(esc["started"]), md(esc["started_from"], 160), duration(esc["elapsed_minutes"])),
        "- **Affected:** %d of %d host(s)%s%s." % (len(hit), len(hosts), " (%s)" % md(names(hit)) if hit else "", who),
        "- **Current impact:** %s." % ("; ".join(impact) if impact else "no user-facing impact measured"),
        "- **Actions taken:** %s" % " ".join(taken),
        "- **Next steps:** %s" % next_steps,
        "- **Next update:** %s." % next_update,
        "",
        "## Escalation",
        "",
    ]
    out += escalation_lines(esc)
    return "\n".join(out).rstrip() + "\n"
