#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: log_scan
short_description: Stream agent service logs, count and correlate entries, and turn known error signatures into findings
version_added: 0.1.0
description:
  - Streams the files and globs in O(paths) (plain and gzip-rotated) and, when asked, journald units, with constant
    memory, limited to a time window (O(since)) and a byte cap per file (O(max_bytes), the newest part of plain files).
  - "Parses the seed format C([2025-12-24T14:35:22.123Z] [ERROR] [agent:code-review] message) with its indented
    C(key: value) metadata lines, JSON lines with pino, winston or bunyan field names, and anything else as plain text
    with a best-effort timestamp and level."
  - "Returns counts by level and component, errors per time bucket (to see when it started), the top error signatures
    (messages with numbers, ids, hex and paths replaced), and correlation: entries grouped by conversation, request or
    correlation id across services, in time order."
  - Known signatures become findings (C(log.*) rules) - spawn EINVAL/ENOENT/EACCES/E2BIG, fetch or WebSocket not
    defined, ECONNREFUSED (with the port's likely service), PostgreSQL slot exhaustion and deadlocks, V8 heap out of
    memory, LLM API 429/529 (with retry-after), WebSocket close 1006, timeouts and resets, DNS and TLS errors, EMFILE,
    ENOSPC. They are looked for in warn, error and fatal entries and in entries without a recognisable level; an info
    or debug entry that mentions an error code is counted, not turned into a finding.
  - Files are read a block (1 MiB) at a time and the seed format is parsed with string operations, so memory stays
    constant; throughput is in RV(facts.mb_per_second) (tens of MB/s per core; see C(make bench)).
  - Missing files, permission errors, binary files, NUL-byte lines and lines over O(max_line_bytes) are reported and
    skipped, never fatal. All text returned is redacted on the host.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics
  - agentops.runbooks.diagnostics.redaction
options:
  paths:
    description: Log files or globs (C(agentops_log_paths)). Rotated C(.gz) files are read too.
    type: list
    elements: str
    default: []
  journald_units:
    description: systemd units whose journal to read with C(journalctl -o json) (C(agentops_journald_units)).
    type: list
    elements: str
    default: []
  since:
    description: Only entries from the last this many seconds (C(agentops_log_window)); 0 reads everything.
    type: int
    default: 86400
  max_bytes:
    description: At most this many bytes per file.
    type: int
    default: 268435456
  max_line_bytes:
    description: Longer lines are skipped and counted.
    type: int
    default: 65536
  bucket_seconds:
    description: Width of the time buckets of the error rate.
    type: int
    default: 60
  top_n:
    description: How many signatures and correlated ids to return.
    type: int
    default: 10
  timeout:
    description: Seconds after which the scan stops and reports what it read.
    type: int
    default: 60
  recent_window:
    description:
      - Seconds that count as now (C(agentops_recent_window)). The error share of the last O(recent_window) seconds of
        the scan - ending now, or at the newest entry of a log that stopped earlier - becomes C(log.error_rate) (with at
        least the rule's C(min_entries) entries), and its ratio to the error share before it C(log.error_spike).
    type: int
    default: 900
"""

EXAMPLES = r"""
- name: Scan the agent services' logs of the last two hours
  agentops.runbooks.log_scan:
    paths:
      - /var/log/agent/*.log
      - /var/log/agent/*.log.*.gz
    journald_units: [agent-manager.service]
    since: 7200
  register: logs
"""

RETURN = r"""
facts:
  description: The aggregates.
  returned: always
  type: dict
  contains:
    files:
      description: Per file read, C(path), C(bytes), C(lines) and what was skipped in it.
      type: list
      elements: dict
    skipped_files:
      description: Files not read, with C(path) and C(why) (missing, permission, binary, outside the window).
      type: list
      elements: dict
    entries:
      description: Entries counted in the window.
      type: int
    by_level:
      description: Entries per level.
      type: dict
    by_component:
      description: Per component, entries per level.
      type: dict
    buckets:
      description: Per time bucket, C(start), C(total), C(errors), C(warnings).
      type: list
      elements: dict
    first_error_bucket:
      description: Start of the first bucket with errors.
      type: str
    error_rates:
      description:
        - The error share of the recent window (C(window_start), C(window_end), C(recent_entries), C(recent_errors),
          C(recent_error_percent)), of the baseline before it (C(baseline_*)) and of the whole scan (C(overall_*)), per
          component in the recent window (C(components)), and C(errors_per_minute) (the last 60 buckets).
      type: dict
    errors_by_file:
      description: Error entries per file read (the 20 with the most).
      type: dict
    affected:
      description: Distinct C(users) (C(userId), C(user_id), C(user) ... in error entries) and C(conversations)
        (correlation ids of error entries), with C(capped) when more were seen than are counted.
      type: dict
    top_signatures:
      description: Most frequent normalised error and warning messages.
      type: list
      elements: dict
    correlation:
      description: Per id with errors or crossing services, its C(timeline) in time order.
      type: list
      elements: dict
    mb_per_second:
      description: Throughput of the scan.
      type: float
    redactions:
      description: Secrets replaced in the text returned, per kind. A message is redacted whole before it is
        normalised into a signature or cut into an example or a timeline entry; the whole result passes through the
        redaction engine once more before it is returned.
      type: dict
findings:
  description: Findings of the C(log.*) rules.
  returned: always
  type: list
  elements: dict
incomplete:
  description: Files or units that could not be read, each with C(check) and C(error).
  returned: always
  type: list
  elements: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import PORT_SERVICES, Scanner, SkipFile, expand, iso
from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import journal_reader, read_chunks
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES


def scan(params, journal=None, clock=time.monotonic):
    redactor = Redactor(key=params.get("redaction_key"))
    since = time.time() - params["since"] if params["since"] else None
    scanner = Scanner(redactor, since=since, bucket=params["bucket_seconds"], top_n=params["top_n"])
    deadline = clock() + params["timeout"]
    files, missing = expand(params["paths"])
    facts = {"files": [], "skipped_files": [{"path": p, "why": "no such file"} for p in missing]}
    incomplete = []
    began = clock()
    total = 0
    for path in files:
        if since is not None and os.path.getmtime(path) < since:
            facts["skipped_files"].append({"path": path, "why": "last written before the window"})
            continue
        report = {"path": path}
        try:
            for number, lines in read_chunks(path, params["max_bytes"], params["max_line_bytes"], report):
                scanner.feed_lines(lines, path, number)
                if clock() > deadline:
                    report["stopped"] = "timeout after %d s" % params["timeout"]
                    break
            scanner.close()
        except SkipFile as exc:
            facts["skipped_files"].append({"path": path, "why": str(exc)})
            continue
        except (OSError, EOFError) as exc:
            error = fm.describe(exc)
            facts["skipped_files"].append({"path": path, "why": error})
            incomplete.append({"check": path, "error": error})
            continue
        total += report.get("bytes", 0)
        facts["files"].append(report)
    for unit in params["journald_units"]:
        if journal is None:
            incomplete.append({"check": "journal of %s" % unit, "error": "journalctl is not available"})
            continue
        try:
            for number, line in enumerate(journal(unit, params["since"]), 1):
                scanner.feed(line, "journal:%s" % unit, number)
            scanner.close()
            facts["files"].append({"path": "journal:%s" % unit})
        except OSError as exc:
            incomplete.append({"check": "journal of %s" % unit, "error": fm.describe(exc)})
    elapsed = max(clock() - began, 1e-6)
    result = scanner.result()
    matches = result.pop("matches")
    facts.update(result)
    facts["mb_per_second"] = round(total / 1048576.0 / elapsed, 1)
    findings = [f for f in (finding(rule_id, hit, params["thresholds"]) for rule_id, hit in sorted(matches.items())) if f]
    rates = scanner.error_rates(time.time(), params.get("recent_window", 900))
    if rates:
        facts["error_rates"] = rates
        worst_files = [f for f in facts["errors_by_file"] if not f.startswith("journal:")] or [f["path"] for f in facts["files"]]
        findings.extend(rate_findings(rates, facts["affected"], worst_files, params["thresholds"]))
    for item in incomplete:
        findings.append(fm.make("log.check_incomplete", "unknown", {"what": item["check"], "error": item["error"]}, subject=item["check"]))
    # Defence in depth: every string of the result once more (paths, components, ids, evidence), same placeholders.
    result = redactor.data({"facts": facts, "findings": fm.ordered(findings), "incomplete": incomplete}, keep=("signature",))
    result["facts"]["redactions"] = dict(redactor.counts)
    return result


def rate_findings(rates, affected, files, thresholds):
    """log.error_rate (the recent window's error share) and log.error_spike (recent versus the earlier baseline),
    judged only on enough entries (the rules' min_entries)."""
    out = []
    rule = RULES["log.error_rate"]
    worst = ", ".join("%s %s%% of %d" % (c["component"], c["error_percent"], c["entries"]) for c in rates["components"][:3]) or "-"
    keys = ("recent_entries", "recent_errors", "recent_error_percent", "baseline_entries", "baseline_error_percent",
            "overall_entries", "overall_error_percent")
    evidence = dict((key, rates[key]) for key in keys)
    evidence.update(first_seen=rates["window_start"], last_seen=rates["window_end"], count=rates["recent_errors"],
                    worst_components=worst, components=rates["components"], affected_users=affected["users"],
                    affected_conversations=affected["conversations"], affected_capped=affected["capped"])
    if files and not files[0].startswith("journal:"):
        evidence["file"] = files[0]
    if rates["recent_entries"] >= rule.get("min_entries", 20):
        found = fm.graded("log.error_rate", rates["recent_error_percent"], dict(evidence, outage=(
            rates["recent_error_percent"] >= rule.get("outage_percent", 95.0))), thresholds)
        if found:
            out.append(found)
    spike = RULES["log.error_spike"]
    if (rates["recent_entries"] >= spike.get("min_entries", 20) and rates["baseline_entries"] >= spike.get("min_entries", 20)
            and rates["recent_error_percent"] >= spike.get("min_recent_percent", 5.0)):
        ratio = round(rates["recent_error_percent"] / max(rates["baseline_error_percent"], 0.1), 1)
        found = fm.graded("log.error_spike", min(ratio, 999.0), dict(evidence, ratio=min(ratio, 999.0)), thresholds)
        if found:
            out.append(found)
    return out


def finding(rule_id, hit, thresholds):
    ports = sorted(hit["ports"], key=lambda p: -hit["ports"][p])
    likely = ["%s is usually %s" % (p, PORT_SERVICES[p]) for p in ports if p in PORT_SERVICES]
    evidence = {
        "count": hit["count"], "first_seen": iso(hit["first_seen"]) or "(no timestamp)", "last_seen": iso(hit["last_seen"]) or "(no timestamp)",
        "components": ", ".join(sorted(hit["components"])), "files": " ".join(sorted(hit["files"])), "examples": hit["examples"],
        "example": hit["examples"][0] if hit["examples"] else "",
    }
    if ports:
        evidence.update(ports=", ".join("%s (%d)" % (p, hit["ports"][p]) for p in ports), port_list="|".join(ports),
                        likely_services=("Port " + "; ".join(likely) + ".") if likely else "",
                        port_filter="( %s )" % " or ".join("sport = :%s" % p for p in ports[:5]))
    elif rule_id == "log.econnrefused":
        evidence.update(ports="unknown", port_list="", likely_services="")
    if rule_id == "log.llm_rate_limit":
        evidence["retry_after"] = ", ".join(sorted(set(hit["retry_after"]))) or "none (clients should honour it when sent)"
    if hit["cmds"]:
        evidence["commands"] = sorted(hit["cmds"])
        evidence["command_path"] = sorted(hit["cmds"])[0]
    if hit["hosts"]:
        evidence["hosts"] = " ".join(sorted(hit["hosts"]))
        evidence["dns_host"] = sorted(hit["hosts"])[0]
    files = sorted(f for f in hit["files"] if not f.startswith("journal:"))
    if files:
        evidence["file"] = files[0]
    return fm.graded(rule_id, hit["count"], evidence, thresholds)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="str", default=[]),
            journald_units=dict(type="list", elements="str", default=[]),
            since=dict(type="int", default=86400),
            max_bytes=dict(type="int", default=268435456),
            max_line_bytes=dict(type="int", default=65536),
            bucket_seconds=dict(type="int", default=60),
            top_n=dict(type="int", default=10),
            timeout=dict(type="int", default=60),
            thresholds=dict(type="dict", default={}),
            recent_window=dict(type="int", default=900),
            redaction_key=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        for name, low, high in (("since", 0, 10 ** 8), ("max_bytes", 1024, 2 ** 40), ("max_line_bytes", 256, 16 * 2 ** 20),
                                ("bucket_seconds", 1, 86400), ("top_n", 0, 1000), ("timeout", 1, 3600),
                                ("recent_window", 1, 31536000)):
            if not low <= p[name] <= high:
                raise ValueError("%s must be between %s and %s, got %s." % (name, low, high, p[name]))
        if not p["paths"] and not p["journald_units"]:
            raise ValueError("Nothing to scan: give paths or journald_units.")
        p["thresholds"] = fm.validate_thresholds(p["thresholds"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **scan(p, journal_reader(module) if p["journald_units"] else None))


if __name__ == "__main__":
    main()
