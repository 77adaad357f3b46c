# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One timeline per incident, merged across hosts, and the series the report's charts draw (controller side, pure).

``events(records, generated_at)`` lists what happened when, sorted by time, each event
``{time (ISO 8601 UTC), host, kind, what (one sentence), rule, value, component}`` of these kinds:

* ``error_rate``: errors per minute per component, from the log scan (a minute with at least one error);
* ``first_seen`` / ``last_seen``: the first and last occurrence of each signature (every finding derived from events);
* ``process_start``: when each agent process now running started; ``process_exit`` and ``restart``: what the
  supervisors (services, containers, k8s families) recorded; ``oom_kill``: each kernel OOM kill;
* ``reboot``: the host's boot, when within ``REBOOT_HORIZON``; ``deploy``: the deploy_rollback switch of this run;
* ``diagnosis``: the moment of the diagnosis (host None).

``error_rates``, ``memory_samples`` and ``pg_connections`` are the chart series (see their docstrings);
``compact`` picks the events report.md shows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re
import time

KINDS = ("error_rate", "first_seen", "last_seen", "process_start", "process_exit", "oom_kill", "restart", "reboot", "deploy",
         "diagnosis")
REBOOT_HORIZON = 7 * 86400  # older boots are not part of an incident's story
ISO = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?$")
# What report.md shows first when it must choose (lower is kept first).
RESTARTS = ("services.crash_loop", "services.down", "containers.restart_loop", "k8s.crash_loop", "k8s.restarts")
EXITS = ("containers.oom_killed", "containers.killed_by_signal", "k8s.oom_killed")
WORDS = {"restart": ("Restarts began", "Last restart"), "process_exit": ("Exited", "Last exit"), None: ("First seen", "Last seen")}
FOLDED = ("error_rate", "oom_kill", "restart", "process_exit", "process_start")
PRIORITY = {"diagnosis": 0, "deploy": 0, "reboot": 1, "oom_kill": 1, "first_seen": 2, "restart": 2, "process_exit": 2,
            "error_rate": 3, "last_seen": 4, "process_start": 5}


def epoch(value):
    """Epoch seconds of an ISO 8601 time (``Z``, an offset or none = UTC; a fraction is ignored) or a number; None
    for anything else ("(no timestamp)", "since boot")."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = ISO.match(str(value).strip())
    if not match:
        return None
    try:
        seconds = calendar.timegm(time.strptime("%sT%s" % (match.group(1), match.group(2)), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    zone = match.group(4)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
    return float(seconds)


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds is not None else None


def finding_times(item):
    """(first, last) epoch seconds of a finding derived from events; (None, None) for a state measured now."""
    evidence = item.get("evidence") or {}
    first = epoch(evidence.get("first_seen"))
    for key in ("when", "finished"):
        if first is None:
            first = epoch(evidence.get(key))
    last = epoch(evidence.get("last_seen"))
    if first is None and last is not None and item.get("id") not in ("log.error_rate", "log.error_spike"):
        first = last
    return first, (last if last is not None else first)


def _event(when, host, kind, what, rule=None, value=None, component=None):
    return {"time": iso(when), "host": host, "kind": kind, "what": " ".join(str(what).split()), "rule": rule, "value": value,
            "component": component}


def _components(item):
    text = (item.get("evidence") or {}).get("components")
    return text if isinstance(text, str) and text else None


def _signature_events(host, record):
    out = []
    for item in record.get("findings") or []:
        rule = item.get("id") or ""
        if item.get("severity") == "unknown" or rule.startswith("diagnose.") or rule in ("log.error_rate", "log.error_spike"):
            continue
        if rule == "proc.oom_kill" and (((record.get("facts") or {}).get("process") or {}).get("memory") or {}).get("oom_kills"):
            continue  # each kill is its own event (below)
        first, last = finding_times(item)
        if first is None:
            continue
        count = (item.get("evidence") or {}).get("count")
        subject = " (%s)" % item["subject"] if item.get("subject") else ""
        kind = "restart" if rule in RESTARTS else "process_exit" if rule in EXITS else None
        words = WORDS[kind]
        out.append(_event(first, host, kind or "first_seen", "%s: %s%s%s" % (
            words[0], item.get("title"), subject, " (%s in all)" % count if count else ""), rule, count, _components(item)))
        if last is not None and last - first >= 1:
            out.append(_event(last, host, kind or "last_seen", "%s: %s%s" % (words[1], item.get("title"), subject), rule, count,
                              _components(item)))
    return out


def _rate_events(host, facts):
    out = []
    logs = facts.get("logs") or {}
    per_component = logs.get("component_buckets")
    if isinstance(per_component, list) and per_component:
        for bucket in per_component:
            if bucket.get("errors"):
                when = epoch(bucket.get("start"))
                if when is not None:
                    out.append(_event(when, host, "error_rate", "%s errors of %s log entries in %s that minute" % (
                        bucket["errors"], bucket.get("entries", bucket.get("total")), bucket.get("component")), None, bucket["errors"],
                        bucket.get("component")))
        return out
    component = _only_component(logs)
    for bucket in logs.get("buckets") or ((logs.get("error_rates") or {}).get("errors_per_minute") or []):
        if not bucket.get("errors"):
            continue
        when = epoch(bucket.get("start"))
        if when is not None:
            total = bucket.get("total", bucket.get("entries"))
            out.append(_event(when, host, "error_rate", "%s errors of %s log entries that minute%s" % (
                bucket["errors"], total, " in %s" % component if component else ""), None, bucket["errors"], component))
    return out


def _only_component(logs):
    names = [name for name in (logs.get("by_component") or {}) if name not in ("(other)",)]
    return names[0] if len(names) == 1 else None


def _process_events(host, facts, now):
    out = []
    process = facts.get("process") or {}
    for agent in process.get("agents") or []:
        age = agent.get("age_seconds")
        if isinstance(age, (int, float)) and now is not None and age <= REBOOT_HORIZON:
            out.append(_event(now - age, host, "process_start", "pid %s (%s) started" % (agent.get("pid"), agent.get("name")),
                              None, agent.get("pid"), agent.get("name")))
    for kill in ((process.get("memory") or {}).get("oom_kills") or []):
        when = epoch(kill.get("when"))
        if when is not None:
            where = " in memory cgroup %s" % kill["cgroup"] if kill.get("memcg") and kill.get("cgroup") else ""
            out.append(_event(when, host, "oom_kill", "The kernel OOM-killed pid %s (%s)%s" % (kill.get("pid"), kill.get("comm"), where),
                              "proc.oom_kill", kill.get("pid"), kill.get("comm")))
    return out


def _service_events(host, facts):
    out = []
    services = facts.get("services") or {}
    for app in ((services.get("pm2") or {}).get("apps") or []):
        started = epoch(app.get("started_epoch"))
        if app.get("restarts") and started is not None:
            out.append(_event(started, host, "restart", "pm2 started %s again (restart %s)" % (app.get("name"), app.get("restarts")),
                              None, app.get("restarts"), app.get("name")))
    return out


def _host_events(host, record, now):
    out = []
    facts = record.get("facts") or {}
    uptime = (facts.get("host") or {}).get("uptime_seconds")
    if isinstance(uptime, (int, float)) and now is not None and uptime <= REBOOT_HORIZON:
        out.append(_event(now - uptime, host, "reboot", "The host booted (up %d s at the diagnosis)" % uptime, "host.recent_reboot",
                          uptime, None))
    rollback = record.get("rollback")
    if isinstance(rollback, dict):
        when = epoch(rollback.get("started"))
        if when is not None:
            out.append(_event(when, host, "deploy", "deploy_rollback %s: %s -> %s" % (
                rollback.get("outcome"), rollback.get("from_release"), rollback.get("to_release")), None, rollback.get("seconds"),
                rollback.get("deployment")))
    return out


def events(records, generated_at):
    """The incident's timeline: every event of every host, sorted by time (then host, kind)."""
    now = epoch(generated_at)
    out = []
    for host, record in sorted(records.items()):
        facts = record.get("facts") or {}
        for part in (_signature_events(host, record), _rate_events(host, facts), _process_events(host, facts, now),
                     _service_events(host, facts), _host_events(host, record, now)):
            out.extend(part)
    if now is not None:
        out.append(_event(now, None, "diagnosis", "The diagnosis ran on %d host(s)" % len(records)))
    out.sort(key=lambda e: (e["time"], e["host"] or "", KINDS.index(e["kind"]), e["what"]))
    return out


def compact(timeline, limit=30):
    """(events to show, how many left out): the most informative ``limit`` events in time order.

    Repeated events are folded first: of the error minutes of one host and component only the two worst are kept; of
    a run of OOM kills, restarts, exits or process starts of one host, rule and component only the first and the last
    (which then says how many there were). Then events are kept by kind (diagnosis and deploys, then reboots and OOM
    kills, first occurrences, restarts and exits, error minutes, last occurrences, process starts), the newest first
    within a kind. Returns copies; the timeline is not changed."""
    groups = {}
    for index, event in enumerate(timeline):
        if event["kind"] in FOLDED:
            groups.setdefault((event["host"], event["kind"], event.get("rule"), event.get("component")), []).append(index)
    kept = set(range(len(timeline)))
    notes = {}
    for (dummy, kind, dummy_rule, dummy_component), members in groups.items():
        if kind == "error_rate":
            keep = sorted(members, key=lambda i: (-(timeline[i]["value"] or 0), timeline[i]["time"]))[:2]
        else:
            keep = [members[0], members[-1]]
            if len(members) > 2:
                notes[members[-1]] = " (the last of %d)" % len(members)
        kept -= set(members) - set(keep)
    ranked = sorted(kept, key=lambda i: (PRIORITY.get(timeline[i]["kind"], 9), -i))[:limit]
    shown = []
    for index in sorted(ranked):
        event = dict(timeline[index])
        if index in notes:
            event["what"] += notes[index]
        shown.append(event)
    return shown, len(timeline) - len(shown)


def error_rates(records):
    """``{component: [[minute ISO, errors, total], ...]}`` merged across hosts (counts of one minute added), from the
    log scan's per-minute counts: per component when the scan gives them (``component_buckets``), else the host's
    buckets under its one component, or under ``(all)`` when its logs name several."""
    merged = {}
    for dummy, record in sorted(records.items()):
        logs = (record.get("facts") or {}).get("logs") or {}
        rows = []
        if isinstance(logs.get("component_buckets"), list) and logs["component_buckets"]:
            rows = [(b.get("component") or "(none)", b.get("start"), b.get("errors") or 0, b.get("entries", b.get("total")) or 0)
                    for b in logs["component_buckets"]]
        else:
            name = _only_component(logs) or "(all)"
            rows = [(name, b.get("start"), b.get("errors") or 0, b.get("total", b.get("entries")) or 0)
                    for b in logs.get("buckets") or ((logs.get("error_rates") or {}).get("errors_per_minute") or [])]
        for component, start, errors, total in rows:
            when = epoch(start)
            if when is None:
                continue
            minute = iso(when - when % 60)
            slot = merged.setdefault(component, {}).setdefault(minute, [0, 0])
            slot[0] += errors
            slot[1] += total
    return dict((component, [[minute, counts[0], counts[1]] for minute, counts in sorted(series.items())])
                for component, series in sorted(merged.items()))


def memory_samples(records):
    """``{"host pid name": {samples_mb, window_seconds, slope_mb_per_min, r_squared}}`` of every process the
    process family sampled for leaks."""
    out = {}
    for host, record in sorted(records.items()):
        memory = (((record.get("facts") or {}).get("process") or {}).get("memory")) or {}
        for entry in memory.get("sampled") or []:
            if not entry.get("rss_mb"):
                continue
            out["%s %s %s" % (host, entry.get("pid"), entry.get("name"))] = {
                "samples_mb": list(entry["rss_mb"]), "window_seconds": memory.get("window_seconds"),
                "slope_mb_per_min": entry.get("slope_mb_per_min"), "r_squared": entry.get("r_squared")}
    return out


def pg_connections(records):
    """``{host: [{application, state, count}]}``: the sessions per application and state the pg family counted."""
    out = {}
    for host, record in sorted(records.items()):
        pg = (record.get("facts") or {}).get("pg") or {}
        rows = []
        for application, states in sorted((pg.get("by_application") or {}).items()):
            for state, count in sorted((states or {}).items()):
                if state != "total" and count:
                    rows.append({"application": application, "state": state, "count": count})
        if rows:
            out[host] = sorted(rows, key=lambda r: (-r["count"], r["application"], r["state"]))
    return out
