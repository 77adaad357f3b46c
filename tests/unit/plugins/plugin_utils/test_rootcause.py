"""The explains relations and the probable root cause on synthetic findings: each example chain of issue 15, the
conditions (host, port, application, order in time, window), the ranking, the 5-whys draft and report.md's sections."""
import re

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import explains
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, rootcause

NOW = "2026-11-27T12:00:00Z"


def at(minutes_before):
    """An ISO time ``minutes_before`` the diagnosis (NOW)."""
    hour, minute = divmod(12 * 60 - minutes_before, 60)
    return "2026-11-27T%02d:%02d:00.000Z" % (hour, minute)


def event(rule, severity, first, last=None, count=5, subject=None, **evidence):
    """A finding derived from events: count, first_seen and last_seen minutes before NOW."""
    evidence.update(count=count, first_seen=at(first), last_seen=at(last if last is not None else max(first - 1, 0)))
    return fm.make(rule, severity, evidence, subject=subject)


def state(rule, severity, subject=None, **evidence):
    return fm.make(rule, severity, evidence, subject=subject)


def report_of(hosts, **hostvars):
    """The incident report of ``{host: [findings]}`` (every family ok)."""
    records = dict((name, {"diagnose_result": {"status": "ok", "findings": list(found), "facts": {}, "checks": {}}})
                   for name, found in hosts.items())
    for name, extra in hostvars.items():
        records[name].update(extra)
    return incident.incident_report(records, sorted(hosts), "INC-RC", generated_at=NOW)


def chain_rules(report):
    return [step["rule"] for step in report["root_cause"]["chain"]]


def explained(report):
    return sorted((host, f["id"]) for host, r in report["hosts"].items() for f in r["findings"] if f.get("explained_by"))


# ------------------------------------------------------------------ the relations as data
def test_every_rule_id_the_relations_name_is_in_the_catalog():
    unknown = sorted(explains.rule_ids() - set(RULES))
    assert unknown == [], "explains.py names rule ids the catalog does not have: %s" % unknown


def test_every_relation_states_its_condition_and_why():
    for cause, items in explains.EXPLAINS.items():
        assert items, cause
        for relation in items:
            assert set(relation) <= {"effects", "same", "window_seconds", "before", "because"}, (cause, relation)
            assert relation["effects"] and cause not in relation["effects"], cause
            assert set(relation["same"]) <= {"host", "port", "application", "subject"}, (cause, relation["same"])
            assert isinstance(relation["because"], str) and relation["because"] and not relation["because"].endswith(".")
            assert relation.get("window_seconds") is None or relation["window_seconds"] > 0


@pytest.mark.parametrize("cause, effect", [
    ("pg.pool_hog", "pg.saturation"), ("pg.saturation", "log.pg_connections"), ("pg.pool_hog", "log.pg_connections"),
    ("log.pg_connections", "log.econnrefused"), ("log.pg_connections", "endpoints.http_status"),
    ("proc.orphan", "proc.pids_limit"), ("proc.pids_limit", "log.spawn_eagain"), ("proc.memory_leak", "proc.oom_kill"),
    ("proc.oom_kill", "services.crash_loop"), ("services.crash_loop", "log.ws_abnormal_close"), ("host.disk_space", "log.enospc"),
    ("host.disk_inodes", "log.enospc"), ("log.enospc", "services.crash_loop"), ("endpoints.tls_expired", "log.tls_error"),
    ("log.tls_error", "log.network_reset"), ("log.llm_rate_limit", "log.task_timeout"), ("node.fetch_unavailable", "log.fetch_undefined"),
    ("k8s.oom_killed", "k8s.crash_loop"), ("endpoints.unreachable", "log.econnrefused"),
])
def test_the_issues_example_relations_are_in_the_catalog(cause, effect):
    assert any(effect in relation["effects"] for relation in explains.relations(cause))


# ------------------------------------------------------------------ each example chain of the issue
def test_postgres_saturated_by_one_application_explains_its_log_errors_and_its_callers_refusals():
    report = report_of({
        "db-1": [state("pg.pool_hog", "critical", subject="manager", application="manager", count=9, usable=9, share=100.0),
                 state("pg.saturation", "critical", in_use=9, usable=9, used_percent=100.0)],
        "app-1": [event("log.pg_connections", "critical", 20, components="manager", example="sorry, too many clients already"),
                  event("log.econnrefused", "high", 18, components="gateway", port_list="3000", ports="3000 (5"),
                  state("endpoints.http_status", "high", name="manager", port=3000, status=502)],
    })
    cause = report["root_cause"]
    assert chain_rules(report)[:3] == ["pg.pool_hog", "pg.saturation", "log.pg_connections"]
    assert chain_rules(report)[3] in ("log.econnrefused", "endpoints.http_status")
    assert cause["explains_count"] == 4 and cause["not_explained"] == []
    assert cause["first_fix"]["rule"] == "pg.pool_hog" and cause["first_fix"]["host"] == "db-1"
    assert cause["first_fix"]["playbook"] == RULES["pg.pool_hog"]["fix"]["playbook"]
    assert explained(report) == [("app-1", "endpoints.http_status"), ("app-1", "log.econnrefused"), ("app-1", "log.pg_connections"),
                                 ("db-1", "pg.saturation")]
    step = cause["chain"][2]
    assert report["hosts"][step["host"]]["findings"][step["finding_index"]]["id"] == step["rule"] == "log.pg_connections"
    assert step["first_seen"] == "2026-11-27T11:40:00Z" and cause["chain"][0]["first_seen"] is None


def test_a_pool_hog_explains_only_its_own_applications_log_errors():
    report = report_of({"db-1": [state("pg.pool_hog", "high", subject="manager", application="manager")],
                        "app-1": [event("log.pg_connections", "critical", 20, components="billing")]})
    assert report["root_cause"] is None
    report = report_of({"db-1": [state("pg.pool_hog", "high", subject="manager", application="manager")],
                        "app-1": [event("log.pg_connections", "critical", 20, components="agent:manager, billing")]})
    assert chain_rules(report) == ["pg.pool_hog", "log.pg_connections"]


def test_orphaned_agents_explain_the_pids_limit_and_spawn_eagain_on_their_host_only():
    report = report_of({
        "web-1": [state("proc.orphan", "medium", count=40, pids="1,2"), state("proc.pids_limit", "critical", cgroup="/agents", used_percent=99.0),
                  event("log.spawn_eagain", "high", 30, components="worker")],
        "web-2": [event("log.spawn_eagain", "high", 30, components="worker")],
    })
    assert chain_rules(report) == ["proc.orphan", "proc.pids_limit", "log.spawn_eagain"]
    assert report["root_cause"]["chain"][2]["host"] == "web-1"
    assert report["root_cause"]["not_explained"] == [{"host": "web-2", "rule": "log.spawn_eagain", "title": RULES["log.spawn_eagain"]["title"]}]


def test_memory_leak_oom_kill_crash_loop_and_websocket_1006_at_the_monitor():
    report = report_of({
        "agent-1": [state("proc.memory_leak", "high", subject="pid 4242", pid=4242, name="node", slope_mb_per_min=40.0),
                    fm.make("proc.oom_kill", "high", {"count": 3, "pid": 4100, "comm": "node", "when": at(25), "first_seen": at(50),
                                                      "last_seen": at(25)}),
                    event("services.crash_loop", "critical", 49, 24, service="agent", supervisor="pm2", subject="pm2 agent")],
        "monitor-1": [event("log.ws_abnormal_close", "high", 48, components="monitor", example="WebSocket closed: code=1006")],
    })
    assert chain_rules(report) == ["proc.memory_leak", "proc.oom_kill", "services.crash_loop", "log.ws_abnormal_close"]
    assert report["root_cause"]["chain"][3]["host"] == "monitor-1"
    whys = report["root_cause"]["whys"]
    assert len(whys) == 4 and all(re.match(r"^Why .+\? (Because|To be confirmed:) ", w) for w in whys)
    assert whys[0].startswith("Why WebSocket connections closed abnormally (1006) on monitor-1? Because a service is crash-looping")
    assert "To be confirmed" in whys[-1] and "agent process memory keeps growing on agent-1" in whys[-1]


def test_one_container_restart_loop_seen_by_both_families_is_one_problem_not_two():
    """A docker container restarting: the containers family (its runtime) and the services family (docker as supervisor)
    both report it; the crash loop is explained by the restart loop of the same container, and a crash loop of another
    service on the host is not, even one whose name shares a word with the container's."""
    report = report_of({
        "agent-1": [event("containers.restart_loop", "critical", 30, 1, runtime="docker", container="agent-api", subject="docker agent-api"),
                    event("services.crash_loop", "critical", 30, 1, service="agent-api", supervisor="docker", subject="docker agent-api"),
                    event("services.crash_loop", "high", 30, 1, service="billing", supervisor="systemd", subject="systemd billing"),
                    event("services.crash_loop", "high", 30, 1, service="my-api", supervisor="systemd", subject="systemd my-api")],
    })
    by_subject = dict((f["subject"], f) for f in report["hosts"]["agent-1"]["findings"] if f["id"] == "services.crash_loop")
    assert "containers.restart_loop" in str(by_subject["docker agent-api"].get("explained_by")), by_subject
    assert not by_subject["systemd billing"].get("explained_by")
    assert "containers.restart_loop" not in str(by_subject["systemd my-api"].get("explained_by"))


def test_an_effect_that_began_before_its_cause_is_not_explained_by_it():
    report = report_of({
        "agent-1": [fm.make("proc.oom_kill", "high", {"count": 1, "pid": 1, "comm": "node", "when": at(10), "first_seen": at(10),
                                                      "last_seen": at(10)}),
                    event("services.crash_loop", "critical", 9, 1, service="agent", supervisor="pm2")],
        "monitor-1": [event("log.ws_abnormal_close", "high", 180, 170, components="monitor")],  # hours before, over long before
    })
    assert chain_rules(report) == ["proc.oom_kill", "services.crash_loop"]
    assert [m["rule"] for m in report["root_cause"]["not_explained"]] == ["log.ws_abnormal_close"]


def test_an_effect_long_after_its_cause_ended_is_outside_the_window():
    report = report_of({"agent-1": [fm.make("proc.oom_kill", "high", {"count": 1, "pid": 1, "comm": "node", "when": at(600),
                                                                      "first_seen": at(600), "last_seen": at(600)}),
                                    event("services.crash_loop", "critical", 9, 1, service="agent", supervisor="pm2")]})
    assert report["root_cause"] is None


def test_disk_full_explains_enospc_and_the_crash_loop():
    report = report_of({"web-1": [state("host.disk_space", "critical", mount_point="/var", used_percent=100.0),
                                  event("log.enospc", "critical", 15, components="worker"),
                                  event("services.crash_loop", "critical", 14, 1, service="worker", supervisor="pm2"),
                                  state("proc.zombie", "low", count=1)]})
    assert chain_rules(report) == ["host.disk_space", "log.enospc", "services.crash_loop"]
    assert [m["rule"] for m in report["root_cause"]["not_explained"]] == ["proc.zombie"]


def test_expired_certificate_explains_tls_errors_and_failed_fetches():
    report = report_of({"edge": [state("endpoints.tls_expired", "critical", name="api", port=443, days_ago=2)],
                        "web-1": [event("log.tls_error", "high", 60, components="worker"),
                                  event("log.network_reset", "medium", 59, components="worker", example="TypeError: fetch failed")]})
    assert chain_rules(report) == ["endpoints.tls_expired", "log.tls_error", "log.network_reset"]


def test_rate_limits_explain_agent_timeouts():
    report = report_of({"web-1": [event("log.llm_rate_limit", "high", 30, components="agent:planner"),
                                  event("log.task_timeout", "high", 29, components="agent:planner")]})
    assert chain_rules(report) == ["log.llm_rate_limit", "log.task_timeout"]


def test_the_port_condition():
    down = state("endpoints.unreachable", "high", name="redis", port=6379, address="127.0.0.1")
    report = report_of({"web-1": [down, event("log.econnrefused", "high", 5, components="worker", port_list="6379"),
                                  event("log.econnrefused", "high", 5, components="other", port_list="5432", subject="other")]})
    assert chain_rules(report) == ["endpoints.unreachable", "log.econnrefused"]
    assert report["root_cause"]["chain"][1]["evidence_line"].startswith("5 log entr(ies)")
    assert len(report["root_cause"]["not_explained"]) == 1


# ------------------------------------------------------------------ ranking
def test_the_chain_that_explains_most_wins_and_the_other_is_an_alternative():
    report = report_of({"web-1": [state("host.disk_space", "critical", mount_point="/var", used_percent=99.0),
                                  event("log.enospc", "critical", 15, components="worker"),
                                  state("proc.orphan", "medium", count=3), state("proc.pids_limit", "high", cgroup="/a"),
                                  event("log.spawn_eagain", "high", 10, components="worker"),
                                  event("log.task_timeout", "medium", 9, components="worker")]})
    assert chain_rules(report)[0] == "proc.orphan"
    assert report["root_cause"]["explains_count"] >= 3
    alternatives = report["root_cause"]["alternatives"]
    assert [a["chain"][0]["rule"] for a in alternatives] == ["host.disk_space"]
    assert "alternatives" not in alternatives[0]
    assert set(alternatives[0]) == {"chain", "explains_count", "first_fix", "not_explained", "whys"}


def test_equal_counts_are_ranked_by_severity_then_time():
    worse = report_of({"a": [state("host.disk_space", "critical", mount_point="/"), event("log.enospc", "high", 10)],
                       "b": [state("host.disk_inodes", "high", mount_point="/"), event("log.enospc", "high", 10)]})
    assert worse["root_cause"]["chain"][0]["host"] == "a"
    earlier = report_of({"a": [event("log.llm_rate_limit", "high", 10), event("log.task_timeout", "high", 9)],
                         "b": [event("log.llm_rate_limit", "high", 14), event("log.task_timeout", "high", 13)]})
    assert earlier["root_cause"]["chain"][0]["host"] == "b"
    assert [a["chain"][0]["host"] for a in earlier["root_cause"]["alternatives"]] == ["a"]


def test_nothing_explains_anything_and_info_or_unknown_findings_take_no_part():
    assert report_of({"web-1": [state("proc.zombie", "low", count=1)]})["root_cause"] is None
    contradicted = event("log.enospc", "critical", 5)
    record = {"status": "ok", "findings": [state("host.disk_space", "info", mount_point="/"), contradicted],
              "facts": {}, "checks": {}}
    report = incident.incident_report({"w": {"diagnose_result": record}}, ["w"], "X", generated_at=NOW)
    assert report["root_cause"] is None


def test_a_cycle_of_relations_terminates():
    nodes = [{"host": "h", "index": 0, "item": {"id": "a"}, "keys": {}, "first": None, "last": None}] * 2
    edges = {0: [(1, "x")], 1: [(0, "y")]}
    assert rootcause._reach(0, edges) == {1}
    assert rootcause._path(0, nodes, edges, {0: {1}, 1: {0}}) == ([0, 1], [None, "x"])


def test_the_whys_are_at_most_five():
    chain = list(range(8))
    nodes = [{"host": "h", "item": {"id": "x", "title": "Step %d" % n, "symptom": "S%d." % n, "diagnosis": "D. More."}} for n in chain]
    whys = rootcause.whys(chain, [None] + ["because %d" % n for n in chain[1:]], nodes)
    assert len(whys) == 5 and whys[0].startswith("Why step 7 on h? Because step 6 on h: S6 (because 7).")
    assert whys[-1] == "Why step 0 on h? To be confirmed: D."


def test_application_names_match_by_their_words_not_by_generic_ones():
    keys = rootcause.keys(state("pg.pool_hog", "high", application="manager"), "h")["application"]
    assert rootcause._same_application(keys, rootcause.keys(event("log.pg_connections", "high", 1, components="agent:manager"), "h")["application"])
    assert not rootcause._same_application(rootcause.keys(state("pg.pool_hog", "high", application="agent"), "h")["application"],
                                           rootcause.keys(event("log.pg_connections", "high", 1, components="agent:billing"), "h")["application"])


# ------------------------------------------------------------------ report.md
def pg_report():
    return report_of({
        "db-1": [state("pg.pool_hog", "critical", subject="manager", application="manager", count=9, usable=9, share=100.0),
                 state("pg.saturation", "critical", in_use=9, usable=9, used_percent=100.0)],
        "app-1": [event("log.pg_connections", "critical", 10, components="manager"),
                  event("log.econnrefused", "high", 8, components="gateway", port_list="3000"),
                  state("proc.zombie", "low", count=2, ppid=1, parent_name="init", subject="ppid 1")],
    })


def test_report_md_names_the_root_cause_first_with_its_chain_and_groups_what_it_explains():
    text = incident.report_markdown(pg_report())
    lines = text.splitlines()
    assert lines[4].startswith("- **First fix:** ") and "(`pg.pool_hog` on db-1, the probable root cause)" in lines[4]
    sections = [line for line in lines if line.startswith("## ")]
    assert sections == ["## Probable root cause", "## Timeline", "## app-1 (ok)", "## db-1 (ok)"]
    section = text[text.index("## Probable root cause"):text.index("## Timeline")]
    assert "**`pg.pool_hog` on db-1: One application holds most connections** - explains 3 other finding(s) across 2 hosts." in section
    assert re.search(r"^1\. \[CRITICAL\] `pg.pool_hog` on db-1: Application 'manager' holds 9", section, re.M)
    assert re.search(r"^3\. \[CRITICAL\] `log.pg_connections` on app-1, first seen 2026-11-27T11:50:00Z: ", section, re.M)
    assert "**Fix first:**" in section and "**What it does not explain:** `proc.zombie` on app-1" in section
    assert "**5 whys (draft, to confirm):**" in section and re.search(r"^1\. Why connections refused on app-1\? Because", section, re.M)
    app = text[text.index("## app-1"):text.index("## db-1")]
    assert "**Explained by the root cause:** [CRITICAL] `log.pg_connections`" in app and "`log.econnrefused`" in app
    assert "### 1. [LOW] `proc.zombie`" in app and "`log.econnrefused`:" not in app  # not repeated in full
    db = text[text.index("## db-1"):]  # the root in full, what it explains on one line
    assert db.count("### ") == 1 and "### 1. [CRITICAL] `pg.pool_hog`" in db and "**Explained by the root cause:** [CRITICAL] `pg.saturation`" in db


def test_the_host_tables_findings_cell_stays_readable_with_many_rules():
    many = [event(rule, "medium", 5, components="w") for rule in sorted(r for r in RULES if r.startswith("log.") and RULES[r].get("signature"))]
    assert len(many) >= 19
    text = incident.report_markdown(report_of({"web-1": many}))
    row = [line for line in text.splitlines() if line.startswith("| web-1 |")][0]
    assert re.match(r"^\| web-1 \| ok \| \w+ \| \d+ medium: `[\w.]+`, `[\w.]+`, `[\w.]+` and \d+ more rule\(s\) \|$", row), row
