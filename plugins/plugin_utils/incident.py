# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side, pure functions that turn diagnostic results into an incident.

Used by the filter plugins (plugins/filter/incident.py) and the write_report
action plugin; unit-tested in tests/unit/plugins/plugin_utils/.

Data flow: each host's registered module results --``diagnose_result``--> one
host record ``{status, findings, facts, checks}`` --``incident_report``--> the
report (with the SEV classification) --``report_markdown`` / ``report_stats``-->
what is written to disk and published to AWX.

Severity rules (also in docs/Incident-Severity.md; keep both in step):

* the *affected* hosts are those unreachable or with at least one ``critical`` finding;
* **SEV-1** when affected hosts are at least ``sev1_host_ratio`` (default 0.5) of all hosts;
* **SEV-2** when any host is affected;
* **SEV-3** when any host has a ``high`` finding;
* **SEV-4** otherwise (only ``medium``, ``low``, ``info`` or ``unknown`` findings, or none);
* and whatever the fleet size, **SEV-1** when a service is down: ``log.error_rate`` critical with at least its
  ``outage_percent`` (95%) of the recent window's entries errors, not historical.

The error rate (``log.error_rate``) grades the share of errors among the log entries of the recent window:
``medium`` from 5%, ``high`` from 20% (intermittent failures: SEV-3), ``critical`` from 50% (at least SEV-2: the host is
affected). The verdict line counts the distinct users (``userId``, ``user_id``, ``user`` in error entries) and
conversations (correlation ids of error entries) the errors touched.

``unknown`` findings (checks that could not run) never lower a severity and never raise
it on their own; they make the host ``partial`` and are counted in the verdict.

Before classifying, every finding is weighed (``assess``):

* **Recency.** A finding derived from events (log lines, kernel OOM kills, reboots) carries first seen, last seen
  and a count. When its last occurrence is older than ``recent_window`` (``agentops_recent_window``, default 900 s)
  before the diagnosis it is *historical*: it stays in the report, marked so, but is capped at ``high``, so that on
  its own it cannot raise the incident above SEV-3.
* **State beats history.** A log finding that the host's current state contradicts drops to ``info`` and says why:
  ``log.enospc`` while every filesystem is below the lowest ``host.disk_space``/``host.disk_inodes`` threshold;
  ``log.pg_connections`` while PostgreSQL uses under 80% of its usable slots; ``log.emfile`` while no process is
  near its descriptor limit. Only a state that was measured in the same run can contradict.
* **Confidence** (0 to 1, in every finding): measured now on the host (``host.*``, ``proc.*``, ``pg.*`` state)
  0.9; derived from events 0.5, plus 0.1 when seen at least 10 times, plus 0.2 when last seen within the recent
  window; historical at most 0.3; contradicted by current state 0.1; a module that computed its own confidence
  (the fit of a memory-leak slope) keeps it. A ``critical`` finding whose confidence is below 0.5 counts as
  ``high`` for the classification.

Worked examples (one host, default thresholds):

* 60% of the log entries of the last 15 minutes are errors: ``log.error_rate`` critical, confidence 0.8 - the host
  is affected and, being the whole fleet, SEV-1; on one host of three, SEV-2.
* 35% errors in the last 15 minutes: ``log.error_rate`` high - SEV-3.
* One ``ENOSPC`` line from 20 hours ago: historical, capped at high - at most SEV-3; with the disk now 21% full it
  is contradicted and drops to info - SEV-4.
* A Node process that grew 60 MB while warming up and then stayed flat: no ``proc.memory_leak`` at all.

Root cause (``root_cause`` in report.json, the section after the verdict in report.md). The catalog's *explains*
relations (``plugins/module_utils/explains.py``) say which rule explains which, and under what condition: the same host,
port or application, the cause's first sign before the effect's, the effect within a window of the cause. Over every
host's weighed findings (not ``info``, ``unknown`` or ``diagnose.*``) each finding that explains another is a candidate;
the candidates are ranked by how many findings they explain, then the worst severity among those, then the candidate's
own severity and confidence, then which came first in time. The best is the probable root cause: its chain (cause first,
each step with its evidence), its fix is the report's *First fix*, the findings it explains are listed under it (and on
one line per host instead of in full), what it does not explain is named, and a 5-whys draft follows from the chain.
The root cause never changes the severity. For example, with an application holding 9 of 9 usable PostgreSQL slots
(``pg.pool_hog``), ``pg.saturation``, "too many clients" in its logs (``log.pg_connections``) and ``ECONNREFUSED`` at its
callers (``log.econnrefused``): the root cause is ``pg.pool_hog``, explaining the three others.

Timeline (``timeline`` in report.json, its most informative 30 events in report.md): one list per incident, merged
across hosts and sorted by time - errors per minute (from the log scan), the first and last occurrence of each
signature, agent process starts, exits, restarts, OOM kills, reboots, the deploy_rollback switch of the run, and the
moment of the diagnosis. report.json also carries the charts' series: ``error_rates`` per component and minute,
``memory_samples`` of the leak sampling and ``pg_connections`` per application and state.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json
import time

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import net_sockets
from ansible_collections.agentops.runbooks.plugins.plugin_utils import rootcause
from ansible_collections.agentops.runbooks.plugins.plugin_utils import timeline as tl

STATUSES = ("ok", "partial", "unreachable")
COLLECTION = "agentops.runbooks"


def _family(name):
    """(title, how to turn it on) of a signal family, from the registry (module_utils/collectors)."""
    try:
        family = collectors.view(name)
    except KeyError:
        family = None
    if family is None:
        return name, "add %s to agentops_checks" % name
    return family.title, family.enable


def _result_error(result):
    """One line for what went wrong: the message, plus the last line of the module's stderr when it crashed."""
    msg = result.get("msg") or result.get("exception") or "no error message"
    stderr = [line.strip() for line in str(result.get("module_stderr") or "").splitlines() if line.strip()]
    text = " ".join(str(msg).split())
    if stderr and stderr[-1] not in text:
        text = "%s (%s)" % (text, stderr[-1])
    if result.get("timedout"):
        text = "timed out: " + text
    return text[:500]


def check_failed(result):
    """True when a registered module result says the check did not run to the end.

    ``failed_when: false`` clears ``failed`` in the registered result (ansible-core 2.19), so failure is read
    from what the module returned: an exception, a crash (``module_stderr``, a non-zero ``rc``), a time-out,
    or no ``facts`` at all (every diagnostic module returns them when it completes).
    """
    return bool(result.get("failed") or result.get("exception") or result.get("timedout") or result.get("module_stderr")
                or result.get("rc") not in (None, 0) or result.get("failed_when_suppressed_exception")
                or not isinstance(result.get("facts"), dict))


def diagnose_result(results, host=None, checks=None):
    """One host's record from what the diagnose role registered.

    With ``checks`` (the families asked for), ``results`` is the one ``diagnostics`` module result; without, it is a
    mapping ``{family: registered result of its own module}`` (one module call per family, as before 0.2.0).
    """
    if not isinstance(results, dict):
        raise ValueError("diagnose_result expects a mapping of check name to registered result, got %s." % type(results).__name__)
    if checks is not None:
        return _families_record(results, host, list(checks))
    record = {"status": "ok", "findings": [], "facts": {}, "checks": {}}
    for check in sorted(results):
        result = results[check]
        if not isinstance(result, dict) or result.get("skipped"):
            record["checks"][check] = {"status": "skipped"}
            continue
        if result.get("unreachable"):
            error = _result_error(result)
            record["status"] = "unreachable"
            record["checks"][check] = {"status": "unreachable", "error": error}
            record["findings"].append(fm.make("diagnose.unreachable", "critical", {"error": error, "host": host or "HOST"}))
            break
        if check_failed(result):
            error = _result_error(result)
            record["checks"][check] = {"status": "failed", "error": error, "changed": bool(result.get("changed"))}
            record["findings"].append(fm.make("diagnose.check_failed", "unknown", {"check": check, "error": error, "host": host or "HOST"}, subject=check))
            continue
        record["facts"][check] = result.get("facts") or {}
        record["findings"].extend(result.get("findings") or [])
        incomplete = result.get("incomplete") or []
        record["checks"][check] = {"status": "partial" if incomplete else "ok", "changed": bool(result.get("changed")),
                                   "incomplete": incomplete}
    if record["status"] != "unreachable" and any(f.get("severity") == "unknown" for f in record["findings"]):
        record["status"] = "partial"
    record["findings"] = fm.ordered(record["findings"])
    return record


# Log findings that a measured current state contradicts: rule -> (family whose facts decide, test on those facts).
def _disk_now(facts):
    mounts = facts.get("mounts") or []
    if not mounts:
        return None
    lowest = min(list(fm.thresholds_for("host.disk_space").values()) + list(fm.thresholds_for("host.disk_inodes").values()))
    space = max(m.get("used_percent") or 0 for m in mounts)
    inodes = max(m.get("inodes_used_percent") or 0 for m in mounts)
    if space < lowest and inodes < lowest:
        return "every filesystem has room now (at most %s%% of space and %s%% of inodes used)" % (space, inodes)
    return None


def _pg_now(facts):
    slots = facts.get("slots") or {}
    if slots.get("used_percent") is not None and slots["used_percent"] < 80:
        return "PostgreSQL now uses %s%% of its usable connection slots" % slots["used_percent"]
    return None


def _fds_now(facts):
    if "near_fd_limit" in facts and not facts["near_fd_limit"]:
        return "no process is near its descriptor limit now"
    return None


CONTRADICTED_BY = {"log.enospc": ("host", _disk_now), "log.pg_connections": ("pg", _pg_now), "log.emfile": ("process", _fds_now)}


# Log findings that the host's state now explains: rule -> (family whose facts answer, function(facts, evidence) ->
# (sentence, effect) or None). The sentence goes into the report next to the finding ("Now:"); the effect weighs it:
# "confirms" (the state agrees: more confidence), "weakens" (the state disagrees: less) or "explains" (says which
# cause applies on this host).
def _who(listeners):
    return ", ".join("pid %s (%s)" % (entry.get("pid") or "?", entry.get("program") or "?") for entry in listeners[:3])


def _listening_now(facts, evidence):
    """ECONNREFUSED host:port in the logs: does anything listen on that port on this host now, and which process."""
    if "listeners" not in facts:
        return None
    listeners = facts.get("listeners") or []
    targets = [t.rsplit(":", 1) for t in evidence.get("targets") or [] if ":" in t]
    if not targets:
        targets = [(None, port) for port in str(evidence.get("port_list") or "").split("|") if port]
    said, refused, taken = [], 0, 0
    for host, port in targets[:5]:
        try:
            port = int(port)
        except ValueError:
            continue
        on_port = [entry for entry in listeners if entry.get("port") == port]
        if host is not None:
            matched = net_sockets.listener_for(listeners, host, port, facts.get("local_addresses"))
            if matched is None:
                said.append("%s:%d is another host's: check it there" % (host, port))
                continue
            on_port = matched
        where = "%s:%d" % (host, port) if host else "port %d" % port
        if on_port:
            taken += 1
            said.append("%s listens on %s now" % (_who(on_port), where))
        else:
            refused += 1
            said.append("nothing listens on %s on this host now" % where)
    if not said:
        return None
    return "; ".join(said), ("confirms" if refused and not taken else "weakens" if taken and not refused else "explains")


def _einval_now(facts, evidence):
    cause = facts.get("einval_cause")
    return (cause, "explains") if cause else None


def _fetch_now(facts, evidence):
    """fetch is not defined in the logs: which Node the agents run now (the node family grades it)."""
    runtimes = [r for r in facts.get("node_processes") or [] if isinstance(r, dict) and r.get("version")]
    if not runtimes:
        return None
    versions = sorted(set(str(r["version"]) for r in runtimes))
    old = [v for v in versions if v.lstrip("v").split(".")[0].isdigit() and int(v.lstrip("v").split(".")[0]) < 18]
    if old:
        return "the agents run Node %s now: no global fetch before Node 18" % ", ".join(old), "confirms"
    return "the agents run Node %s now, which has a global fetch unless --no-experimental-fetch is set" % ", ".join(versions), "weakens"


STATE_NOW = {"log.econnrefused": ("endpoints", _listening_now), "log.spawn_einval": ("spawn", _einval_now),
             "log.fetch_undefined": ("node", _fetch_now)}
EVENT_RULES = ("proc.oom_kill", "host.recent_reboot")


def is_event(rule_id):
    """Findings derived from events (log lines, kernel OOM kills, reboots) rather than from state measured now."""
    return (rule_id.startswith("log.") and rule_id != "log.check_incomplete") or rule_id in EVENT_RULES


def _epoch(text):
    try:
        return datetime.datetime.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def host_context(host, record, host_vars=None):
    """Values a fix command may need beyond a finding's evidence: the host's name, the pid of its largest agent
    process, and where its PostgreSQL is (never a password)."""
    context = {"host": host}
    agents = ((record.get("facts") or {}).get("process") or {}).get("agents") or []
    if agents:
        context["pid"] = max(agents, key=lambda a: a.get("rss_mb") or 0).get("pid")
    host_vars = host_vars or {}
    for key, default in (("pg_host", None), ("pg_port", 5432), ("pg_user", None), ("pg_database", "postgres")):
        try:
            value = host_vars.get("agentops_" + key, default)
        except Exception:  # pylint: disable=broad-except  # an undefined or broken template: leave it out
            value = default
        if value not in (None, "") and not str(value).startswith("__omit_place_holder__"):
            context[key] = value
    if "pg_host" not in context:
        for key in ("pg_port", "pg_database"):
            context.pop(key, None)
    return context


def assess(record, now, recent_window=900, context=None):
    """Weigh one host's findings in place: recency, state beats history, confidence (rules in the module docstring);
    and fill each fix command from the evidence and the host's ``context`` (see fm.fix_command)."""
    facts = record.get("facts") or {}
    for item in record.get("findings") or []:
        rule = item.get("id", "")
        if context and rule in fm.RULES and isinstance(item.get("fix"), dict):
            command = fm.fix_command(rule, dict(context, **(item.get("evidence") or {})))
            if command:
                item["fix"]["command"] = command
        if item.get("severity") == "unknown" or rule.startswith("diagnose."):
            continue
        if not is_event(rule):
            item.setdefault("confidence", 0.9)
            continue
        evidence = item.get("evidence") or {}
        last = _epoch(evidence.get("last_seen") or evidence.get("when") or "")
        count = evidence.get("count") or 1
        confidence = 0.5 + (0.1 if count >= 10 else 0.0)
        if last is not None:
            age = max(0, int(now - last))
            item["last_seen_age_seconds"] = age
            if age > recent_window:
                item["historical"] = True
                confidence = min(confidence, 0.3)
                if item["severity"] == "critical":
                    item["severity_observed"], item["severity"] = "critical", "high"
            else:
                confidence += 0.2
        family, test = CONTRADICTED_BY.get(rule, (None, None))
        if family and family in facts and (record.get("checks") or {}).get(family, {}).get("status") in ("ok", "partial"):
            why = test(facts[family] or {})
            if why:
                item["contradicted_by"] = why
                item.setdefault("severity_observed", item["severity"])
                item["severity"] = "info"
                confidence = 0.1
        family, explain = STATE_NOW.get(rule, (None, None))
        if family and family in facts and (record.get("checks") or {}).get(family, {}).get("status") in ("ok", "partial"):
            now_said = explain(facts[family] or {}, evidence)
            if now_said:
                item["state_now"], effect = now_said
                if effect == "confirms":
                    confidence = min(1.0, confidence + 0.2)
                elif effect == "weakens":
                    confidence = min(confidence, 0.3)
                item["confidence"] = round(confidence, 2)
        if "confidence" not in item or item.get("historical") or item.get("contradicted_by"):
            item["confidence"] = round(min(confidence, item.get("confidence", 1.0)), 2)
    record["findings"] = fm.ordered(record.get("findings") or [])
    return record


def _families_record(result, host, checks):
    """The host record from one ``diagnostics`` result: every family of the registry is ok, partial, failed or skipped."""
    families = result.get("families") if isinstance(result.get("families"), dict) else None
    if families is None:
        if result.get("unreachable"):
            return unreachable_record(host or "HOST", _result_error(result))
        # the call itself failed (refused its input, crashed, ran past the task's time limit): every family asked for
        families = dict((name, {"status": "failed", "error": _result_error(result)}) for name in checks)
    record = {"status": "ok", "findings": [], "facts": {}, "checks": {}, "timings_ms": {}}
    for name in collectors.NAMES:
        family = families.get(name)
        if family is None:
            record["checks"][name] = {"status": "skipped"}
            continue
        record["timings_ms"][name] = family.get("ms")
        if family.get("status") == "failed":
            error = " ".join(str(family.get("error") or "no error message").split())[:500]
            record["checks"][name] = {"status": "failed", "error": error, "changed": False}
            record["findings"].append(fm.make("diagnose.check_failed", "unknown", {"check": name, "error": error, "host": host or "HOST"},
                                              subject=name))
            continue
        record["facts"][name] = family.get("facts") or {}
        record["findings"].extend(family.get("findings") or [])
        incomplete = family.get("incomplete") or []
        record["checks"][name] = {"status": "partial" if incomplete else "ok", "changed": False, "incomplete": incomplete}
    if any(f.get("severity") == "unknown" for f in record["findings"]):
        record["status"] = "partial"
    record["findings"] = fm.ordered(record["findings"])
    return record


def unreachable_record(host, error):
    return {
        "status": "unreachable",
        "findings": [fm.make("diagnose.unreachable", "critical", {"error": error, "host": host})],
        "facts": {},
        "checks": {},
    }


def incident_severity(hosts, sev1_host_ratio=0.5):
    """Classify ``{host: record}`` into ``(\"SEV-n\", reason)`` with the rules in the module docstring."""
    total = len(hosts)
    if not total:
        return "SEV-4", "no hosts were diagnosed"
    unreachable = sorted(h for h, r in hosts.items() if r.get("status") == "unreachable")
    critical = sorted(h for h, r in hosts.items() if r.get("status") != "unreachable"
                      and any(f.get("severity") == "critical" and f.get("confidence", 1) >= 0.5 for f in r.get("findings") or []))
    high = sorted(h for h, r in hosts.items() if any(f.get("severity") in ("high", "critical") for f in r.get("findings") or []))
    affected = len(unreachable) + len(critical)
    down = sorted(h for h, r in hosts.items() if any(
        f.get("id") == "log.error_rate" and f.get("severity") == "critical" and (f.get("evidence") or {}).get("outage")
        and not f.get("historical") for f in r.get("findings") or []))
    if down:
        return "SEV-1", "service down on %d of %d host(s) (%s): nearly every recent log entry is an error" % (
            len(down), total, _names(down))
    parts = []
    if unreachable:
        parts.append("%d of %d host(s) unreachable (%s)" % (len(unreachable), total, _names(unreachable)))
    if critical:
        parts.append("critical findings on %d of %d host(s) (%s)" % (len(critical), total, _names(critical)))
    if affected and affected >= sev1_host_ratio * total:
        return "SEV-1", "; ".join(parts) + " - at least %d%% of the fleet is affected" % round(sev1_host_ratio * 100)
    if affected:
        return "SEV-2", "; ".join(parts)
    if high:
        return "SEV-3", "high-severity findings on %d of %d host(s) (%s)" % (len(high), total, _names(high))
    return "SEV-4", "no critical or high findings on %d host(s)" % total


def _names(hosts, limit=5):
    shown = ", ".join(hosts[:limit])
    return shown + (" and %d more" % (len(hosts) - limit) if len(hosts) > limit else "")


def incident_report(hostvars, hosts, incident_id, generated_at=None, sev1_host_ratio=0.5, version=None, warnings=None,
                    recent_window=900):
    """Build the report from ``hostvars`` for ``hosts`` (``ansible_play_hosts_all``).

    A host without a ``diagnose_result`` never got as far as recording one:
    it is reported unreachable.
    """
    try:
        ratio = float(sev1_host_ratio)
    except (TypeError, ValueError):
        raise ValueError("sev1_host_ratio must be a number between 0 and 1, got %r." % (sev1_host_ratio,))
    if not 0 < ratio <= 1:
        raise ValueError("sev1_host_ratio must be a number between 0 and 1, got %r." % (sev1_host_ratio,))
    try:
        recent_window = float(recent_window)
    except (TypeError, ValueError):
        raise ValueError("recent_window must be a number of seconds, got %r." % (recent_window,))
    generated_at = generated_at or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    now = _epoch(generated_at) or time.time()
    records, contexts = {}, {}
    for host in hosts:
        try:
            host_vars = hostvars[host]
            record, rollback = host_vars.get("diagnose_result"), host_vars.get("deploy_rollback_result")
        except (KeyError, AttributeError):
            host_vars, record, rollback = {}, None, None
        if not isinstance(record, dict):
            record = unreachable_record(host, "the host returned no diagnosis (unreachable or failed before diagnosing)")
        try:
            context = host_context(host, record, host_vars)
        except (KeyError, AttributeError, TypeError):
            context = {"host": host}
        contexts[host] = context
        records[host] = assess(copy.deepcopy(dict(record)), now, recent_window, context)
        if isinstance(rollback, dict):  # deploy_rollback ran earlier in the same run
            records[host]["rollback"] = rollback
    severity, reason = incident_severity(records, ratio)
    root_cause, explained = rootcause.analyze(records, contexts)
    for (host, index), (cause_host, cause_rule) in explained.items():
        records[host]["findings"][index]["explained_by"] = {"host": cause_host, "rule": cause_rule}
    by_severity = dict((name, 0) for name in fm.SEVERITIES)
    by_rule = {}
    for record in records.values():
        for item in record["findings"]:
            by_severity[item["severity"]] = by_severity.get(item["severity"], 0) + 1
            by_rule[item["id"]] = by_rule.get(item["id"], 0) + 1
    host_counts = dict((status, 0) for status in STATUSES)
    for record in records.values():
        host_counts[record["status"]] = host_counts.get(record["status"], 0) + 1
    host_counts["total"] = len(records)
    spots = blind_spots(records)
    affected = {}
    for record in records.values():
        seen = ((record.get("facts") or {}).get("logs") or {}).get("affected")
        if isinstance(seen, dict):
            for key in ("users", "conversations"):
                affected[key] = affected.get(key, 0) + int(seen.get(key) or 0)
            affected["capped"] = affected.get("capped", False) or bool(seen.get("capped"))
    return {
        "incident_id": str(incident_id),
        "severity": severity,
        "verdict": severity + (" (limited visibility)" if spots and severity == "SEV-4" else ""),
        "visibility": "limited" if spots else "full",
        "not_checked": spots,
        "affected": affected,
        "severity_reason": reason,
        "generated_at": generated_at,
        "recent_window_seconds": recent_window,
        "generator": {"collection": COLLECTION, "version": version},
        "hosts": records,
        "summary": {"hosts": host_counts, "by_severity": by_severity, "by_rule": dict(sorted(by_rule.items()))},
        "warnings": [str(w) for w in (warnings or [])],
        "root_cause": root_cause,
        "timeline": tl.events(records, generated_at),
        "error_rates": tl.error_rates(records),
        "memory_samples": tl.memory_samples(records),
        "pg_connections": tl.pg_connections(records),
    }


def blind_spots(records):
    """What the diagnosis could not see, per host: families not run (and how to turn them on), checks that failed,
    parts a check could not read, processes hidden from the connecting user, unreachable hosts."""
    spots = []
    for host, record in sorted(records.items()):
        if record.get("status") == "unreachable":
            error = next((f["evidence"].get("error") for f in record.get("findings") or [] if f.get("id") == "diagnose.unreachable"), "")
            spots.append({"host": host, "family": "all", "what": "nothing checked: host unreachable (%s)" % error,
                          "how": "check the host from its console, then re-run"})
            continue
        for family, check in sorted((record.get("checks") or {}).items()):
            title, enable = _family(family)
            status = check.get("status")
            if status == "skipped":
                spots.append({"host": host, "family": family, "what": "%s: not checked" % title,
                              "how": enable})
            elif status == "failed":
                spots.append({"host": host, "family": family, "what": "%s: check failed - %s" % (title, check.get("error")),
                              "how": "re-run with -vvv --limit %s" % host})
            elif status == "partial":
                parts = check.get("incomplete") or []
                spots.append({"host": host, "family": family, "what": "%s: %d part(s) not read - %s" % (
                    title, len(parts), "; ".join("%s: %s" % (i.get("check"), i.get("error")) for i in parts[:3])),
                    "how": "check permissions (become) and re-run"})
        process = (record.get("facts") or {}).get("process") or {}
        if process.get("unreadable"):
            seen = (process.get("process_count") or 0) + process["unreadable"]
            spots.append({"host": host, "family": "process", "what": "processes: %d of %d unreadable" % (process["unreadable"], seen),
                          "how": "run with become"})
    return spots


def first_fix(report):
    """(finding, host) of the worst real finding across the incident, the one to act on first; (None, None) if none."""
    best = None
    for host, record in sorted(report["hosts"].items()):
        for item in record.get("findings") or []:
            if item.get("severity") in ("unknown", "info") or item.get("id", "").startswith("diagnose."):
                continue
            key = fm.sort_key(item)
            if best is None or key < best[0]:
                best = (key, item, host)
    return (best[1], best[2]) if best else (None, None)


def report_stats(report, paths=None):
    """A compact, global summary for ``set_stats`` (AWX keeps only global stats)."""
    hosts = {}
    for name, record in sorted(report["hosts"].items()):
        worst = fm.worst(record["findings"])
        hosts[name] = {
            "status": record["status"],
            "worst": worst,
            "findings": len(record["findings"]),
            "rules": sorted(set(f["id"] for f in record["findings"] if f["severity"] not in ("info", "low")))[:10],
        }
    return {
        "incident_id": report["incident_id"],
        "severity": report["severity"],
        "verdict": report.get("verdict") or report["severity"],
        "visibility": report.get("visibility"),
        "not_checked": len(report.get("not_checked") or []),
        "severity_reason": report["severity_reason"],
        "generated_at": report["generated_at"],
        "summary": report["summary"],
        "warnings": report.get("warnings") or [],
        "hosts": hosts,
        "report": paths or {},
    }


def _evidence_lines(evidence, limit=400):
    lines = []
    for key in sorted(evidence):
        value = evidence[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        text = " ".join(str(text).split())
        if len(text) > limit:
            text = text[:limit] + "..."
        lines.append("  - `%s`: %s" % (key, text.replace("`", "'")))
    return lines


def _age(seconds):
    if seconds is None:
        return "long"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%d %s" % (seconds // size, unit)
    return "%d s" % seconds


def _affected(report):
    hosts = report["hosts"]
    hit = sorted(h for h, r in hosts.items() if r.get("status") == "unreachable"
                 or any(f.get("severity") in ("critical", "high") for f in r.get("findings") or []))
    text = "%d of %d host(s) unreachable or with critical/high findings%s." % (
        len(hit), len(hosts), " (%s)" % _names(hit) if hit else "")
    users = report.get("affected") or {}
    if users.get("users") is not None or users.get("conversations") is not None:
        text += " %s%s users, %s conversations with errors in the logs%s." % (
            "at least " if users.get("capped") else "", users.get("users", 0), users.get("conversations", 0),
            " (summed over hosts)" if len(hosts) > 1 else "")
    return text


def _not_checked(spots):
    if not spots:
        return "nothing: every check ran on every host."
    grouped = {}
    for spot in spots:
        grouped.setdefault((spot["what"], spot["how"]), []).append(spot["host"])
    return "; ".join("%s on %s (%s)" % (what, _names(sorted(hosts), 3), how) for (what, how), hosts in grouped.items()) + "."


def _first_fix(report):
    cause = report.get("root_cause")
    if cause and cause.get("first_fix"):
        fix = cause["first_fix"]
        action = "`%s` - " % fix["command"] if fix.get("command") else ""
        summary = fix.get("summary") or "see the root cause below"
        return "%s%s (`%s` on %s, the probable root cause)" % (action, summary, fix["rule"], fix["host"])
    item, host = first_fix(report)
    if item is None:
        return "none needed: no problem was found." if report.get("visibility") == "full" else \
            "none from what was checked; see what was not checked above."
    fix = item.get("fix") or {}
    action = "`%s`" % fix["command"] if fix.get("command") else (fix.get("summary") or "see the finding")
    return "%s - %s (`%s` on %s)" % (action, fix.get("summary") or item["title"], item["id"], host)


def _listed(items, limit=8):
    """``rule`` on host (title); ... for the root cause's lists, at most ``limit`` then how many more."""
    shown = "; ".join("`%s` on %s (%s)" % (i["rule"], i["host"], i.get("title")) for i in items[:limit])
    return shown + ("; and %d more" % (len(items) - limit) if len(items) > limit else "")


def _chain_text(cause):
    return " -> ".join("`%s`" % step["rule"] for step in cause["chain"])


def _root_cause_lines(report):
    """The "Probable root cause" section: the chain step by step, the fix first, what it does not explain, 5 whys."""
    out = ["## Probable root cause", ""]
    cause = report.get("root_cause")
    if not cause:
        real = any(f.get("severity") not in ("info", "unknown") and not f.get("id", "").startswith("diagnose.")
                   for r in report["hosts"].values() for f in r.get("findings") or [])
        out += ["None found: %s" % ("no finding explains another, so each is listed on its own under its host below."
                                    if real else "no problem was found."), ""]
        return out
    root = cause["chain"][0]
    hosts = sorted(set(step["host"] for step in cause["chain"]))
    out += ["**`%s` on %s: %s** - explains %d other finding(s)%s." % (
        root["rule"], root["host"], root["title"], cause["explains_count"],
        " across %d hosts" % len(hosts) if len(hosts) > 1 else ""), ""]
    for number, step in enumerate(cause["chain"], 1):
        when = ", first seen %s" % step["first_seen"] if step.get("first_seen") else ""
        out.append("%d. [%s] `%s` on %s%s: %s" % (number, str(step["severity"]).upper(), step["rule"], step["host"], when,
                                                  step["evidence_line"]))
    on_chain = set((step["host"], step["finding_index"]) for step in cause["chain"])
    others = [{"rule": f["id"], "host": host, "title": f["title"]} for host, record in sorted(report["hosts"].items())
              for index, f in enumerate(record.get("findings") or []) if f.get("explained_by") and (host, index) not in on_chain]
    if others:
        out += ["", "Also explained by it: %s." % _listed(others)]
    fix = cause["first_fix"]
    out += ["", "**Fix first:** %s%s (`%s` on %s)." % (
        fix.get("summary") or "see the finding", "" if fix.get("command") else " (no command: see the finding)", fix["rule"], fix["host"])]
    if fix.get("command"):
        out += ["", "```sh", fix["command"], "```"]
    if fix.get("playbook"):
        out += ["", "Playbook: `%s`" % fix["playbook"]]
    missing = cause.get("not_explained") or []
    out += ["", "**What it does not explain:** %s" % (_listed(missing) + "." if missing else "nothing else was found."), "",
            "**5 whys (draft, to confirm):**", ""]
    out += ["%d. %s" % (number, why) for number, why in enumerate(cause.get("whys") or [], 1)]
    if cause.get("alternatives"):
        out += ["", "**Other possible chains:** %s." % "; ".join("%s (explains %d)" % (_chain_text(alt), alt["explains_count"])
                                                                 for alt in cause["alternatives"])]
    return out + [""]


def _timeline_lines(report, limit=30):
    """The "Timeline" section, compact: the most informative events (timeline.compact), the rest in report.json."""
    events = report.get("timeline") or []
    out = ["## Timeline", ""]
    if not events:
        return out + ["No event with a time was recorded.", ""]
    shown, left = tl.compact(events, limit)
    days = sorted(set(e["time"][:10] for e in shown))
    out.append("Times are UTC%s." % (" on %s" % days[0] if len(days) == 1 else ""))
    out.append("")
    for event in shown:
        when = event["time"][11:19] if len(days) == 1 else event["time"][:19].replace("T", " ")
        out.append("- %s %s%s: %s" % (when, event["kind"], " on %s" % event["host"] if event.get("host") else "", event["what"]))
    if left:
        out += ["", "%d more in report.json." % left]
    return out + [""]


def _findings_cell(findings):
    """The host table's findings cell: counts per severity, then the worst three rule ids (not every id)."""
    real = [f for f in findings if f.get("severity") != "info"]
    if not real:
        return "-"
    counts = {}
    for item in real:
        counts[item["severity"]] = counts.get(item["severity"], 0) + 1
    ids = []
    for item in fm.ordered(real):
        if item["id"] not in ids:
            ids.append(item["id"])
    text = ", ".join("%d %s" % (counts[s], s) for s in fm.SEVERITIES if counts.get(s))
    return "%s: %s%s" % (text, ", ".join("`%s`" % i for i in ids[:3]), " and %d more rule(s)" % (len(ids) - 3) if len(ids) > 3 else "")


def report_markdown(report):
    """The human report: verdict first, then the probable root cause and the timeline, then per host the findings worst
    first (those the root cause explains on one line)."""
    summary = report["summary"]
    hosts = summary["hosts"]
    sev = summary["by_severity"]
    verdict = report.get("verdict") or report["severity"]
    out = [
        "# Incident %s: %s" % (report["incident_id"], verdict),
        "- **Verdict:** %s - %s." % (verdict, report["severity_reason"]),
        "- **Affected:** %s" % _affected(report),
        "- **Not checked:** %s" % _not_checked(report.get("not_checked")),
        "- **First fix:** %s" % _first_fix(report),
        "",
        "Generated %s by %s %s. Hosts: %d (%d ok, %d partial, %d unreachable). Findings: %s." % (
            report["generated_at"], COLLECTION, (report.get("generator") or {}).get("version") or "",
            hosts["total"], hosts["ok"], hosts["partial"], hosts["unreachable"],
            ", ".join("%d %s" % (sev.get(s, 0), s) for s in fm.SEVERITIES)),
        "",
    ]
    if report.get("warnings"):
        out += ["**Warnings:**", ""] + ["- %s" % w for w in report["warnings"]] + [""]
    out += _root_cause_lines(report)
    out += _timeline_lines(report)
    out += [
        "| Host | Status | Worst | Findings |",
        "| --- | --- | --- | --- |",
    ]
    order = sorted(report["hosts"].items(), key=lambda kv: (fm.SEVERITY_ORDER.get(fm.worst(kv[1]["findings"]), 99), kv[0]))
    for name, record in order:
        out.append("| %s | %s | %s | %s |" % (name, record["status"], fm.worst(record["findings"]) or "-", _findings_cell(record["findings"])))
    for name, record in order:
        out += ["", "## %s (%s)" % (name, record["status"]), ""]
        rollback = record.get("rollback")
        if rollback:
            out += ["Rollback: **%s**, %s -> %s in %s s, %d health probe(s)." % (
                rollback.get("outcome"), rollback.get("from_release"), rollback.get("to_release"), rollback.get("seconds"),
                len(rollback.get("health_probes") or [])), ""]
        rates = ((record.get("facts") or {}).get("logs") or {}).get("error_rates") or {}
        if rates.get("errors_per_minute"):
            newest = rates["errors_per_minute"][-15:]
            minutes = ", ".join("%s %d/%d" % (b["start"][11:16], b["errors"], b["entries"]) for b in newest)
            out += ["Errors per minute (newest %d, errors/entries): %s." % (len(newest), minutes), ""]
        if not record["findings"]:
            out.append("No findings.")
            continue
        explained = [f for f in record["findings"] if f.get("explained_by")]
        if explained:
            out += ["**Explained by the root cause:** %s." % "; ".join("[%s] `%s` %s%s" % (
                f["severity"].upper(), f["id"], f["title"], " (%s)" % f["subject"] if f.get("subject") else "") for f in explained), ""]
        for number, item in enumerate([f for f in record["findings"] if not f.get("explained_by")], 1):
            subject = " (%s)" % item["subject"] if item.get("subject") else ""
            out += [
                "### %d. [%s] `%s`: %s%s" % (number, item["severity"].upper(), item["id"], item["title"], subject),
                "",
                "- **Symptom:** %s" % item["symptom"],
            ]
            weight = ["confidence %s" % item["confidence"]] if item.get("confidence") is not None else []
            if item.get("historical"):
                weight.append("historical: last seen %s before the diagnosis, so it cannot raise the incident above SEV-3 on its own"
                              % _age(item.get("last_seen_age_seconds")))
            if item.get("contradicted_by"):
                weight.append("contradicted by the current state: %s" % item["contradicted_by"])
            if item.get("state_now"):
                weight.append("now: %s" % item["state_now"])
            if item.get("severity_observed"):
                weight.append("severity %s as observed" % item["severity_observed"])
            if weight:
                out.append("- **Weight:** %s." % "; ".join(weight))
            out += ["- **Evidence:**"]
            out += _evidence_lines(item.get("evidence") or {})
            fix = item.get("fix") or {}
            out += ["- **Diagnosis:** %s" % item["diagnosis"], "- **Fix:** %s" % (fix.get("summary") or "")]
            if fix.get("command"):
                out += ["", "  ```sh", "  %s" % fix["command"], "  ```"]
            if fix.get("playbook"):
                out.append("  Playbook: `%s`" % fix["playbook"])
            out += ["- **Docs:** [%s](%s)" % (item["id"], item["docs"]), ""]
    return "\n".join(out).rstrip() + "\n"
