import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident


def host(status="ok", *severities):
    rules = {"critical": "host.disk_space", "high": "host.memory", "medium": "proc.orphan", "low": "proc.zombie",
             "info": "host.recent_reboot", "unknown": "host.check_incomplete"}
    return {"status": status, "findings": [fm.make(rules[s], s, {}) for s in severities], "facts": {}, "checks": {}}


UNREACHABLE = incident.unreachable_record("down", "ssh: connect to host 127.0.0.1 port 1: Connection refused")


@pytest.mark.parametrize("hosts, expected", [
    ({}, "SEV-4"),
    ({"a": host()}, "SEV-4"),
    ({"a": host("ok", "medium", "low", "info")}, "SEV-4"),
    ({"a": host("partial", "unknown")}, "SEV-4"),                          # unknown alone never raises
    ({"a": host("ok", "high"), "b": host()}, "SEV-3"),
    ({"a": host("ok", "critical"), "b": host(), "c": host()}, "SEV-2"),    # 1 of 3 affected
    ({"a": host("ok", "critical"), "b": host()}, "SEV-1"),                 # half the fleet
    ({"a": UNREACHABLE, "b": host(), "c": host()}, "SEV-2"),
    ({"a": UNREACHABLE, "b": host()}, "SEV-1"),
    ({"a": UNREACHABLE}, "SEV-1"),
    ({"a": UNREACHABLE, "b": host("ok", "critical"), "c": host(), "d": host()}, "SEV-1"),  # 2 of 4 affected
])
def test_severity_rules(hosts, expected):
    assert incident.incident_severity(hosts)[0] == expected


def test_severity_ratio_is_configurable_and_reason_names_hosts():
    hosts = {"a": UNREACHABLE, "b": host(), "c": host()}
    sev, reason = incident.incident_severity(hosts, sev1_host_ratio=0.3)
    assert sev == "SEV-1" and "1 of 3 host(s) unreachable (a)" in reason


def module_result(*findings, **extra):
    return dict({"changed": False, "facts": {"x": 1}, "findings": list(findings), "incomplete": []}, **extra)


def test_diagnose_result_merges_checks_and_orders_findings():
    record = incident.diagnose_result({
        "host": module_result(fm.make("host.recent_reboot", "info", {})),
        "process": module_result(fm.make("proc.zombie", "low", {}), fm.make("proc.fd_exhaustion", "high", {})),
    }, "web-1")
    assert record["status"] == "ok"
    assert [f["id"] for f in record["findings"]] == ["proc.fd_exhaustion", "proc.zombie", "host.recent_reboot"]
    assert record["facts"] == {"host": {"x": 1}, "process": {"x": 1}}
    assert record["checks"]["process"] == {"status": "ok", "changed": False, "incomplete": []}


def test_diagnose_result_failed_check_is_an_unknown_finding_and_partial_host():
    record = incident.diagnose_result({
        "host": module_result(),
        "process": {"failed": True, "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error", "module_stderr": "x"},
        "pg": {"skipped": True, "changed": False},
    }, "web-1")
    assert record["status"] == "partial"
    failed = [f for f in record["findings"] if f["id"] == "diagnose.check_failed"]
    assert failed and failed[0]["severity"] == "unknown" and failed[0]["evidence"]["check"] == "process"
    assert "\n" not in failed[0]["evidence"]["error"]
    assert record["checks"]["pg"] == {"status": "skipped"}


def test_diagnose_result_unreachable_host():
    record = incident.diagnose_result({
        "host": {"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection refused"},
        "process": {"skipped": True},
    }, "db-1")
    assert record["status"] == "unreachable"
    assert record["findings"][0]["id"] == "diagnose.unreachable"
    assert "Connection refused" in record["findings"][0]["symptom"]


def test_diagnose_result_rejects_non_mapping():
    with pytest.raises(ValueError):
        incident.diagnose_result(["nope"])


def sample_report():
    hostvars = {
        "web-1": {"diagnose_result": host("ok", "high", "info")},
        "web-2": {"diagnose_result": host("partial", "unknown")},
        "db-1": {"inventory_hostname": "db-1"},  # never recorded a diagnosis
    }
    return incident.incident_report(hostvars, ["web-1", "web-2", "db-1"], "INC-42", generated_at="2026-11-25T03:00:00Z",
                                    version="0.1.0")


def test_incident_report_shape_and_summary():
    report = sample_report()
    assert set(report) >= {"incident_id", "severity", "generated_at", "hosts", "summary"}
    assert report["severity"] == "SEV-2"
    assert report["hosts"]["db-1"]["status"] == "unreachable"
    assert report["summary"]["hosts"] == {"ok": 1, "partial": 1, "unreachable": 1, "total": 3}
    assert report["summary"]["by_severity"]["high"] == 1 and report["summary"]["by_severity"]["critical"] == 1
    assert report["summary"]["by_rule"]["diagnose.unreachable"] == 1


@pytest.mark.parametrize("ratio", [0, 1.5, "many"])
def test_incident_report_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError):
        incident.incident_report({}, [], "x", sev1_host_ratio=ratio)


def test_markdown_verdict_first_then_hosts_worst_first_with_fix_commands():
    text = incident.report_markdown(sample_report())
    lines = text.splitlines()
    assert lines[0] == "# Incident INC-42: SEV-2"
    assert lines[1].startswith("- **Verdict:** SEV-2 - ")
    sections = [line for line in lines if line.startswith("## ")]
    assert sections == ["## Probable root cause", "## Timeline", "## db-1 (unreachable)", "## web-1 (ok)", "## web-2 (partial)"]
    web1 = text.index("## web-1")
    assert text.index("[HIGH]", web1) < text.index("[INFO]", web1)
    assert "```sh" in text and "- **Docs:**" in text


def test_stats_are_compact_and_global():
    stats = incident.report_stats(sample_report(), {"json": "/x/report.json"})
    assert stats["severity"] == "SEV-2" and stats["report"] == {"json": "/x/report.json"}
    assert stats["hosts"]["web-1"] == {"status": "ok", "worst": "high", "findings": 2, "rules": ["host.memory"]}
    assert "findings" not in repr(stats["hosts"]["web-1"]["rules"])


def test_a_rollback_in_the_same_run_is_part_of_the_host_record():
    rollback = {"outcome": "switched", "from_release": "r3", "to_release": "r2", "seconds": 4.2,
                "health_probes": [{"status": 200, "healthy": True}]}
    report = incident.incident_report({"web-1": {"diagnose_result": host(), "deploy_rollback_result": rollback}},
                                      ["web-1"], "INC-7", generated_at="2026-11-25T03:00:00Z")
    assert report["hosts"]["web-1"]["rollback"] == rollback
    assert "Rollback: **switched**, r3 -> r2 in 4.2 s, 1 health probe(s)." in incident.report_markdown(report)


# What ansible-core 2.19 registers for a diagnostic task with failed_when: false (recorded from real runs):
# the flag is cleared, so failure must be read from the rest of the result.
CRASHED = {"changed": False, "failed": False, "failed_when_result": False, "failed_when_suppressed_exception": "(traceback unavailable)",
           "module_stderr": "Traceback (most recent call last):\n  File \"<stdin>\", line 1, in <module>\n"
                            "RuntimeError: forced failure of host_facts for a test\n",
           "module_stdout": "", "msg": "Module result deserialization failed: No start of json char found", "rc": 1}
REFUSED = {"changed": False, "failed": False, "failed_when_result": False, "msg": "leak_window must be between 0 and 600 seconds, got -1."}
TIMED_OUT = {"changed": False, "failed": False, "failed_when_result": False, "msg": "The action timed out after 1 seconds.",
             "timedout": {"frame": "...", "period": 1}}
TIMED_OUT_IGNORED = {"changed": False, "exception": "(traceback unavailable)", "failed": True,
                     "msg": "Task failed: Timed out after 1 second(s).", "timedout": {"frame": "...", "period": 1}}
NO_INTERPRETER = {"changed": False, "failed": False, "failed_when_result": False, "module_stderr": "/bin/sh: 1: /x/python: not found\n",
                  "module_stdout": "", "msg": "The module interpreter '/x/python' was not found.", "rc": 127}


@pytest.mark.parametrize("result, words", [
    (CRASHED, "Module result deserialization failed: No start of json char found (RuntimeError: forced failure of host_facts"),
    (REFUSED, "leak_window must be between 0 and 600 seconds, got -1."),
    (TIMED_OUT, "timed out: The action timed out after 1 seconds."),
    (TIMED_OUT_IGNORED, "timed out: Task failed: Timed out after 1 second(s)."),
    (NO_INTERPRETER, "The module interpreter '/x/python' was not found."),
    ({"changed": False, "failed": True, "msg": "boom"}, "boom"),
])
def test_a_check_that_did_not_finish_is_failed_never_ok(result, words):
    record = incident.diagnose_result({"host": result, "process": module_result()}, "web-1")
    assert record["checks"]["host"]["status"] == "failed"
    assert words in record["checks"]["host"]["error"]
    assert record["checks"]["process"]["status"] == "ok"
    assert record["status"] == "partial"
    report = incident.incident_report({"web-1": {"diagnose_result": record}}, ["web-1"], "INC-9")
    assert report["verdict"] == "SEV-4 (limited visibility)" and report["visibility"] == "limited"
    spot = [s for s in report["not_checked"] if s["family"] == "host"][0]
    assert spot["what"].startswith("host resources: check failed - ") and words in spot["what"]
    lines = incident.report_markdown(report).splitlines()
    assert lines[0] == "# Incident INC-9: SEV-4 (limited visibility)"
    assert lines[3].startswith("- **Not checked:** host resources: check failed - ")


def test_the_first_five_lines_say_verdict_why_affected_not_checked_first_fix():
    ok = module_result()
    record = incident.diagnose_result({"host": ok, "process": module_result(
        fm.make("proc.zombie", "high", {"count": 120, "ppid": 4242, "parent_name": "node"}, subject="ppid 4242")),
        "pg": {"skipped": True, "changed": False}, "logs": {"skipped": True, "changed": False}}, "web-1")
    record["facts"]["process"] = {"process_count": 113, "unreadable": 67}
    report = incident.incident_report({"web-1": {"diagnose_result": record}}, ["web-1"], "INC-3")
    lines = incident.report_markdown(report).splitlines()
    assert lines[0] == "# Incident INC-3: SEV-3"
    assert lines[1].startswith("- **Verdict:** SEV-3 - high-severity findings on 1 of 1 host(s) (web-1)")
    assert lines[2] == "- **Affected:** 1 of 1 host(s) unreachable or with critical/high findings (web-1)."
    assert "PostgreSQL: not checked on web-1 (set agentops_pg_host)" in lines[3]
    assert "logs: not checked on web-1 (set agentops_log_paths or agentops_journald_units)" in lines[3]
    assert "processes: 67 of 180 unreadable on web-1 (run with become)" in lines[3]
    assert lines[4].startswith("- **First fix:** `") and "(`proc.zombie` on web-1)" in lines[4]


def test_a_clean_run_that_saw_everything_is_a_bare_sev4():
    record = incident.diagnose_result({name: module_result() for name in ("host", "process", "pg", "logs")}, "web-1")
    report = incident.incident_report({"web-1": {"diagnose_result": record}}, ["web-1"], "INC-4")
    assert report["verdict"] == "SEV-4" and report["visibility"] == "full" and report["not_checked"] == []
    lines = incident.report_markdown(report).splitlines()
    assert lines[3] == "- **Not checked:** nothing: every check ran on every host."
    assert lines[4] == "- **First fix:** none needed: no problem was found."


def log_finding(rule, severity, last_seen, count=1, **evidence):
    evidence.update(count=count, first_seen=last_seen, last_seen=last_seen)
    return fm.make(rule, severity, evidence)


NOW = "2026-11-27T12:00:00Z"


def weigh(*findings, facts=None, checks=None):
    record = {"status": "ok", "findings": list(findings), "facts": facts or {}, "checks": checks or {}}
    report = incident.incident_report({"web-1": {"diagnose_result": record}}, ["web-1"], "INC-5", generated_at=NOW)
    return report, report["hosts"]["web-1"]["findings"]


def test_an_old_log_line_is_historical_and_cannot_raise_the_incident_above_sev3():
    report, (item,) = weigh(log_finding("log.enospc", "critical", "2026-11-26T16:00:00.000Z"))
    assert item["historical"] is True and item["severity"] == "high" and item["severity_observed"] == "critical"
    assert item["confidence"] <= 0.3 and item["last_seen_age_seconds"] == 20 * 3600
    assert report["severity"] == "SEV-3"
    assert "historical: last seen 20 h before the diagnosis" in incident.report_markdown(report)


def test_a_recent_critical_log_finding_still_makes_the_host_affected():
    report, (item,) = weigh(log_finding("log.enospc", "critical", "2026-11-27T11:58:00.000Z", count=12))
    assert "historical" not in item and item["severity"] == "critical" and item["confidence"] == 0.8
    assert report["severity"] == "SEV-1"


@pytest.mark.parametrize("rule, family, facts, words", [
    ("log.enospc", "host", {"mounts": [{"used_percent": 21.0, "inodes_used_percent": 3.0}]}, "at most 21.0% of space"),
    ("log.pg_connections", "pg", {"slots": {"used_percent": 30.0}}, "30.0% of its usable connection slots"),
    ("log.emfile", "process", {"near_fd_limit": []}, "no process is near its descriptor limit"),
])
def test_state_measured_now_beats_history(rule, family, facts, words):
    report, (item,) = weigh(log_finding(rule, "critical", "2026-11-27T11:59:00.000Z"), facts={family: facts},
                            checks={family: {"status": "ok"}})
    assert item["severity"] == "info" and words in item["contradicted_by"] and item["confidence"] == 0.1
    assert report["severity"] == "SEV-4"


def test_state_not_measured_in_this_run_contradicts_nothing():
    report, (item,) = weigh(log_finding("log.enospc", "critical", "2026-11-27T11:59:00.000Z"))
    assert item["severity"] == "critical" and "contradicted_by" not in item


def test_every_finding_has_a_confidence_and_low_confidence_critical_counts_as_high():
    leak = fm.make("proc.memory_leak", "critical", {})
    leak["confidence"] = 0.3
    report, findings = weigh(leak, fm.make("host.disk_space", "medium", {}))
    assert all(0 <= f["confidence"] <= 1 for f in findings)
    assert report["severity"] == "SEV-3"


@pytest.mark.parametrize("evidence, family, facts, words, confidence", [
    # ECONNREFUSED 127.0.0.1:5432 in the logs and nothing listens on 5432 now: PostgreSQL is down, said with more confidence
    ({"targets": ["127.0.0.1:5432"], "port_list": "5432"}, "endpoints",
     {"listeners": [{"address": "0.0.0.0", "port": 22, "pid": 1, "program": "sshd"}], "local_addresses": ["127.0.0.1"]},
     "nothing listens on 127.0.0.1:5432 on this host now", 0.9),
    # something listens there now: the refusals were earlier (a restart) or elsewhere, so less confidence
    ({"port_list": "6379"}, "endpoints", {"listeners": [{"address": "127.0.0.1", "port": 6379, "pid": 812, "program": "redis-server"}]},
     "pid 812 (redis-server) listens on port 6379 now", 0.3),
    # a remote host's port is answered there, not here
    ({"targets": ["db.internal:5432"]}, "endpoints", {"listeners": []}, "db.internal:5432 is another host's", None),
    ({}, "spawn", {"einval_cause": "This host is Linux: the .cmd/.bat cause does not apply."}, "the .cmd/.bat cause does not apply", None),
    ({}, "node", {"node_processes": [{"pid": 5, "version": "v16.20.2"}]}, "the agents run Node v16.20.2 now: no global fetch", 0.9),
])
def test_what_the_host_shows_now_explains_a_log_finding(evidence, family, facts, words, confidence):
    rule = {"endpoints": "log.econnrefused", "spawn": "log.spawn_einval", "node": "log.fetch_undefined"}[family]
    report, (item,) = weigh(log_finding(rule, "high", "2026-11-27T11:59:00.000Z", **evidence), facts={family: facts},
                            checks={family: {"status": "ok"}})
    assert words in item["state_now"]
    if confidence is not None:
        assert item["confidence"] == confidence
    assert "now: " + item["state_now"] in incident.report_markdown(report)
