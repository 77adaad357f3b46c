# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The logs family: the streaming log scan, its signatures, error rates and correlation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import PORT_SERVICES, Scanner, SkipFile, expand, iso
from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import journal_reader, scan_file
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
            if not scan_file(scanner, path, params["max_bytes"], params["max_line_bytes"], report, deadline, clock):
                report["stopped"] = "timeout after %d s" % params["timeout"]
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


class LogsFamily(object):
    """The log scan: signatures, error rates, affected users, correlation."""

    name = "logs"
    title = "logs"
    enable = "set agentops_log_paths or agentops_journald_units"
    redacts = True
    variables = dict(
        paths=("log_paths", "Log files or globs to scan, plain or gzip-rotated."),
        journald_units=("journald_units", "systemd units whose journal to scan."),
        since=("log_window", "Seconds of logs to scan, back from now."),
        recent_window=("recent_window", "Seconds of the newest log entries whose error share becomes log.error_rate."),
    )
    secrets = {}
    enabled_by = ("log_paths", "journald_units")
    ranges = dict(since=(0, 100000000), max_bytes=(1024, 2 ** 40), max_line_bytes=(256, 16 * 2 ** 20), bucket_seconds=(1, 86400),
                  top_n=(0, 1000), timeout=(1, 3600), recent_window=(1, 31536000))
    options = dict(
        paths=dict(type="list", elements="str", default=[]),
        journald_units=dict(type="list", elements="str", default=[]),
        since=dict(type="int", default=86400),
        max_bytes=dict(type="int", default=268435456),
        max_line_bytes=dict(type="int", default=65536),
        bucket_seconds=dict(type="int", default=60),
        top_n=dict(type="int", default=10),
        timeout=dict(type="int", default=60),
        recent_window=dict(type="int", default=900),
    )

    def collect(self, module, params):
        check_ranges(self, params)
        if not params["paths"] and not params["journald_units"]:
            raise ValueError("Nothing to scan: give paths or journald_units.")
        return scan(params, journal_reader(module) if params["journald_units"] else None)
