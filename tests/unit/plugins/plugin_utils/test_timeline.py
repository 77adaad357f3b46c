"""The incident timeline and the chart series, from synthetic host records shaped like the families' facts."""
import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, timeline

NOW = "2026-11-27T12:00:00Z"
NOW_EPOCH = timeline.epoch(NOW)


def record(findings=(), **facts):
    return {"status": "ok", "findings": list(findings), "facts": facts, "checks": dict((k, {"status": "ok"}) for k in facts)}


def web():
    enospc = fm.make("log.enospc", "critical", {"count": 7, "first_seen": "2026-11-27T11:40:05.120Z", "last_seen": "2026-11-27T11:55:00Z",
                                                "components": "worker"})
    crash = fm.make("services.crash_loop", "critical", {"count": 4, "first_seen": "2026-11-27T11:41:00Z", "last_seen": "2026-11-27T11:56:00Z",
                                                        "service": "worker", "supervisor": "pm2"}, subject="pm2 worker")
    disk = fm.make("host.disk_space", "critical", {"mount_point": "/var", "used_percent": 100.0})
    logs = {"by_component": {"worker": {"error": 9}},
            "buckets": [{"start": "2026-11-27T11:40:00Z", "total": 10, "errors": 3, "warnings": 0},
                        {"start": "2026-11-27T11:41:00Z", "total": 5, "errors": 0, "warnings": 1},
                        {"start": "2026-11-27T11:42:00Z", "total": 8, "errors": 6, "warnings": 0}]}
    process = {"agents": [{"pid": 4242, "name": "node", "age_seconds": 300}],
               "memory": {"window_seconds": 3.0, "oom_kills": [{"pid": 4100, "comm": "node", "when": "2026-11-27T11:30:00Z", "memcg": True,
                                                                "cgroup": "/agents"}],
                          "sampled": [{"pid": 4242, "name": "node", "rss_mb": [100.0, 110.0, 120.5], "slope_mb_per_min": 400.0,
                                       "r_squared": 0.99}, {"pid": 7, "name": "idle", "rss_mb": []}]}}
    host = {"uptime_seconds": 3600}
    services = {"pm2": {"apps": [{"name": "worker", "restarts": 4, "started_epoch": NOW_EPOCH - 240},
                                 {"name": "calm", "restarts": 0, "started_epoch": NOW_EPOCH - 9000}]}}
    return record([disk, enospc, crash, fm.make("proc.oom_kill", "high", {"count": 1, "pid": 4100, "comm": "node", "when": "2026-11-27T11:30:00Z",
                                                                          "first_seen": "2026-11-27T11:30:00Z", "last_seen": "2026-11-27T11:30:00Z"})],
                  logs=logs, process=process, host=host, services=services)


def db():
    return record(pg={"by_application": {"manager": {"total": 9, "idle": 7, "active": 2}, "(none)": {"total": 1, "active": 1}}},
                  logs={"by_component": {"api": {}, "gateway": {}},
                        "buckets": [{"start": "2026-11-27T11:42:00Z", "total": 4, "errors": 2, "warnings": 0}]})


def test_one_timeline_merged_across_hosts_sorted_with_every_kind():
    events = timeline.events({"web-1": web(), "db-1": db()}, NOW)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert all(set(e) == {"time", "host", "kind", "what", "rule", "value", "component"} for e in events)
    assert all(e["kind"] in timeline.KINDS and e["time"].endswith("Z") and len(e["time"]) == 20 for e in events)
    kinds = set(e["kind"] for e in events)
    assert kinds == {"error_rate", "first_seen", "last_seen", "process_start", "oom_kill", "restart", "reboot", "diagnosis"}
    assert events[-1] == {"time": NOW, "host": None, "kind": "diagnosis", "what": "The diagnosis ran on 2 host(s)", "rule": None,
                          "value": None, "component": None}
    first = [e for e in events if e["kind"] == "first_seen"]
    assert first == [{"time": "2026-11-27T11:40:05Z", "host": "web-1", "kind": "first_seen",
                      "what": "First seen: No space left on device (ENOSPC) (7 in all)", "rule": "log.enospc", "value": 7, "component": "worker"}]
    oom = [e for e in events if e["kind"] == "oom_kill"]
    assert len(oom) == 1 and oom[0]["what"] == "The kernel OOM-killed pid 4100 (node) in memory cgroup /agents"  # the kill, once
    restarts = [e for e in events if e["kind"] == "restart"]
    assert [e["time"] for e in restarts] == ["2026-11-27T11:41:00Z", "2026-11-27T11:56:00Z", "2026-11-27T11:56:00Z"]
    rates = [(e["host"], e["time"][11:16], e["value"], e["component"]) for e in events if e["kind"] == "error_rate"]
    assert rates == [("web-1", "11:40", 3, "worker"), ("db-1", "11:42", 2, None), ("web-1", "11:42", 6, "worker")]
    assert [e["time"] for e in events if e["kind"] == "reboot"] == ["2026-11-27T11:00:00Z"]
    assert [e["what"] for e in events if e["kind"] == "process_start"] == ["pid 4242 (node) started"]


def test_a_deploy_switch_of_the_same_run_is_on_the_timeline():
    rollback = {"outcome": "switched", "from_release": "r3", "to_release": "r2", "started": NOW_EPOCH - 120, "seconds": 4.2}
    item = dict(record(), rollback=rollback)
    deploys = [e for e in timeline.events({"web-1": item}, NOW) if e["kind"] == "deploy"]
    assert deploys == [{"time": "2026-11-27T11:58:00Z", "host": "web-1", "kind": "deploy", "what": "deploy_rollback switched: r3 -> r2",
                        "rule": None, "value": 4.2, "component": None}]


def test_an_old_boot_and_state_findings_are_not_events():
    item = record([fm.make("host.disk_space", "critical", {"mount_point": "/"})], host={"uptime_seconds": 90 * 86400})
    assert [e["kind"] for e in timeline.events({"h": item}, NOW)] == ["diagnosis"]


def test_compact_keeps_the_informative_events_in_time_order_and_counts_the_rest():
    events = timeline.events({"web-1": web(), "db-1": db()}, NOW)
    many = events + [{"time": "2026-11-27T10:%02d:00Z" % n, "host": "x", "kind": "error_rate", "what": "w", "rule": None,
                      "value": n, "component": "c"} for n in range(50)]
    many.sort(key=lambda e: e["time"])
    shown, left = timeline.compact(many, limit=10)
    assert len(shown) == 10 and left == len(many) - 10
    assert [e["time"] for e in shown] == sorted(e["time"] for e in shown)
    assert shown[-1]["kind"] == "diagnosis" and any(e["kind"] == "oom_kill" for e in shown)
    assert not [e for e in shown if e["kind"] in ("process_start", "last_seen")]
    shown, left = timeline.compact(many, limit=100)
    assert len([e for e in shown if e["host"] == "x"]) == 2 and left == 48  # the two worst minutes of a component


def test_error_rates_per_component_and_minute_merged_across_hosts():
    both = {"web-1": web(), "db-1": db(), "web-2": record(logs={"by_component": {"worker": {}}, "buckets": [
        {"start": "2026-11-27T11:42:00Z", "total": 2, "errors": 1}]})}
    assert timeline.error_rates(both) == {
        "(all)": [["2026-11-27T11:42:00Z", 2, 4]],
        "worker": [["2026-11-27T11:40:00Z", 3, 10], ["2026-11-27T11:41:00Z", 0, 5], ["2026-11-27T11:42:00Z", 7, 10]]}
    per_component = record(logs={"component_buckets": [{"component": "api", "start": "2026-11-27T11:42:30Z", "entries": 5, "errors": 5}]})
    assert timeline.error_rates({"h": per_component}) == {"api": [["2026-11-27T11:42:00Z", 5, 5]]}


def test_memory_samples_and_pg_connections_series():
    assert timeline.memory_samples({"web-1": web()}) == {
        "web-1 4242 node": {"samples_mb": [100.0, 110.0, 120.5], "window_seconds": 3.0, "slope_mb_per_min": 400.0, "r_squared": 0.99}}
    assert timeline.pg_connections({"db-1": db(), "web-1": web()}) == {"db-1": [
        {"application": "manager", "state": "idle", "count": 7}, {"application": "manager", "state": "active", "count": 2},
        {"application": "(none)", "state": "active", "count": 1}]}


@pytest.mark.parametrize("text, expected", [
    ("2026-11-27T12:00:00Z", "2026-11-27T12:00:00Z"), ("2026-11-27T12:00:00.123Z", "2026-11-27T12:00:00Z"),
    ("2026-11-27 13:00:00+01:00", "2026-11-27T12:00:00Z"), ("2026-11-27T07:00:00-0500", "2026-11-27T12:00:00Z"),
    ("2026-11-27T12:00:00", "2026-11-27T12:00:00Z"), ("(no timestamp)", None), ("since boot", None), (None, None), (True, None),
])
def test_times_are_read_as_utc(text, expected):
    assert timeline.iso(timeline.epoch(text)) == expected


def test_the_report_carries_the_timeline_and_the_series_and_report_md_a_compact_timeline():
    report = incident.incident_report({"web-1": {"diagnose_result": web()}, "db-1": {"diagnose_result": db()}}, ["web-1", "db-1"],
                                      "INC-T", generated_at=NOW)
    assert report["timeline"] == timeline.events(report["hosts"], NOW)
    assert set(report["error_rates"]) == {"worker", "(all)"} and "web-1 4242 node" in report["memory_samples"]
    assert list(report["pg_connections"]) == ["db-1"]
    text = incident.report_markdown(report)
    section = text[text.index("## Timeline"):].split("\n## ", 1)[0].split("\n|", 1)[0]
    lines = section.strip().splitlines()
    assert lines[2] == "Times are UTC on 2026-11-27."
    assert "- 11:30:00 oom_kill on web-1: The kernel OOM-killed pid 4100 (node) in memory cgroup /agents" in lines
    assert lines[-1] == "- 12:00:00 diagnosis: The diagnosis ran on 2 host(s)"
    assert len(lines) <= 34


def test_compact_folds_a_run_of_oom_kills_so_the_scenarios_own_events_stay():
    kills = [{"pid": 100 + n, "comm": "node", "when": "2026-11-27T10:%02d:00Z" % n, "memcg": True, "cgroup": "/a"} for n in range(29)]
    item = web()
    item["facts"]["process"]["memory"]["oom_kills"] = kills
    events = timeline.events({"web-1": item}, NOW)
    shown, left = timeline.compact(events, limit=8)
    ooms = [e for e in shown if e["kind"] == "oom_kill"]
    assert [e["time"][11:16] for e in ooms] == ["10:00", "10:28"] and ooms[1]["what"].endswith("(the last of 29)")
    assert any(e["kind"] == "first_seen" and e["rule"] == "log.enospc" for e in shown) and left == len(events) - 8
    assert not [e for e in events if e["what"].endswith("(the last of 29)")]  # the timeline itself is not changed
