"""The alert part of the catalog (plugins/module_utils/alerts.py) and what scripts/gen_alerts.py makes of it."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import REPO

from ansible_collections.agentops.runbooks.plugins.module_utils import alerts
from ansible_collections.agentops.runbooks.plugins.module_utils.findings import GRADED
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES, anchor, docs_url

sys.path.insert(0, os.path.join(REPO, "scripts"))
import gen_alerts  # noqa: E402  pylint: disable=wrong-import-position

RULES_FILE = os.path.join(REPO, gen_alerts.RULES_FILE)
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (scripts/system_deps.sh installs the prometheus package)")

# PromQL words that are not metric names.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "sum", "min", "max", "avg", "count", "time", "increase", "deriv", "rate"}


def generated():
    with open(RULES_FILE) as handle:
        return yaml.safe_load(handle)


def all_alerts():
    return [item for group in generated()["groups"] for item in group["rules"]]


def test_every_key_is_a_rule_id():
    unknown = sorted(set(alerts.ALERTS) - set(RULES))
    assert not unknown, "alerts.ALERTS keys that are not rule ids in rules.RULES: %s" % unknown


def test_every_not_alerted_key_names_rules():
    for key in alerts.NOT_ALERTED:
        assert any(rule_id == key or rule_id.startswith(key) or rule_id.endswith(key) for rule_id in RULES), key
    both = sorted(rule_id for rule_id in alerts.ALERTS if rule_id in alerts.NOT_ALERTED)
    assert not both, both


def test_entries_are_well_formed():
    for rule_id, entry in alerts.ALERTS.items():
        rule = RULES[rule_id]
        assert entry["exporter"] in alerts.EXPORTERS, rule_id
        assert re.match(r"^\d+[smh]$", entry["for"]), rule_id
        assert ("value" in entry) != ("conditions" in entry), rule_id
        # graded rules alert on their thresholds; fixed ones on conditions with the rule's severity
        assert ("value" in entry) == bool(rule.get("thresholds")), rule_id
        for severity, _expr in entry.get("conditions", ()):
            assert severity in GRADED, (rule_id, severity)
            if rule.get("severity"):
                assert severity == rule["severity"], (rule_id, severity, rule["severity"])
        if "{threshold}" in entry["description"]:
            assert "value" in entry, rule_id


def test_metrics_lists_match_the_expressions():
    for rule_id, entry in alerts.ALERTS.items():
        exprs = [entry["value"]] if "value" in entry else [expr for _s, expr in entry["conditions"]]
        text = " ".join(exprs)
        text = re.sub(r'"[^"]*"', "", text)
        text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
        text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
        used = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)) - KEYWORDS
        assert used == set(entry["metrics"]), (rule_id, sorted(used), entry["metrics"])


def test_generated_files_are_current():
    for path, text in gen_alerts.outputs().items():
        with open(path) as handle:
            assert handle.read() == text, "%s is stale: run `make docs`" % os.path.relpath(path, REPO)


def test_every_alert_names_a_rule_and_its_runbook():
    seen = set()
    for item in all_alerts():
        rule_id = item["labels"]["agentops_rule"]
        assert rule_id in RULES, item["alert"]
        assert item["alert"] not in seen, item["alert"]
        seen.add(item["alert"])
        assert item["labels"]["severity"] in GRADED
        assert item["labels"]["agentops_category"] == RULES[rule_id]["category"]
        assert item["annotations"]["summary"] == RULES[rule_id]["title"]
        assert item["annotations"]["runbook_url"].endswith(docs_url(rule_id))
        assert item["annotations"]["playbook"] == ((RULES[rule_id].get("fix") or {}).get("playbook") or gen_alerts.DIAGNOSE)
    # (tests/unit/test_docs.py checks that the catalog page has every rule's anchor)
    assert set(item["labels"]["agentops_rule"] for item in all_alerts()) == set(alerts.ALERTS)


def test_every_threshold_equals_the_catalogs():
    graded = {}
    for item in all_alerts():
        rule_id, severity = item["labels"]["agentops_rule"], item["labels"]["severity"]
        rule = RULES[rule_id]
        if not rule.get("thresholds"):
            assert rule_id not in graded
            continue
        found = re.search(r"(>=|<)\s*([-+0-9.e]+)\s*$", item["expr"])
        assert found, item["alert"]
        assert found.group(1) == ("<" if rule.get("direction") == "below" else ">="), item["alert"]
        assert float(found.group(2)) == float(rule["thresholds"][severity]), (item["alert"], found.group(2), rule["thresholds"])
        graded.setdefault(rule_id, set()).add(severity)
    for rule_id, severities in graded.items():
        assert severities == set(RULES[rule_id]["thresholds"]), rule_id


def test_every_rule_without_an_alert_is_listed_with_its_reason():
    with open(os.path.join(REPO, gen_alerts.DOCS_FILE)) as handle:
        page = handle.read()
    for rule_id in RULES:
        if rule_id not in alerts.ALERTS:
            assert "| [`%s`](Production-Debugging-Playbooks.md#%s) |" % (rule_id, anchor(rule_id)) in page, rule_id


@needs_promtool
def test_promtool_accepts_the_rules_file():
    proc = subprocess.run([PROMTOOL, "check", "rules", RULES_FILE], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: %d rules found" % len(all_alerts()) in proc.stdout


@needs_promtool
def test_alerts_fire_at_the_catalog_thresholds(tmp_path):
    """promtool test rules on synthetic series: the expressions (label matching, filters, the comparison we add)
    fire at the catalog's levels and stay quiet below them. Annotations are left out (they are templates)."""
    stripped = {"groups": [{"name": g["name"], "rules": [dict((k, v) for k, v in r.items() if k != "annotations") for r in g["rules"]]}
                           for g in generated()["groups"]]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(stripped))
    node = 'instance="h1:9100", job="node"'
    fs = node + ', device="/dev/sda1", mountpoint="/", fstype="ext4"'
    tmp = node + ', device="tmpfs", mountpoint="/run", fstype="tmpfs"'
    pg = 'instance="db:9187", job="pg"'
    probe = 'instance="https://api", job="blackbox"'

    def labels(rule_id, severity, extra):
        out = {"severity": severity, "agentops_rule": rule_id, "agentops_category": RULES[rule_id]["category"]}
        out.update(extra)
        return out

    series = [
        # 2 cores, load 7: 3.5 per core -> medium and high, not critical (6)
        {"series": 'node_load1{%s}' % node, "values": "7x20"},
        {"series": 'node_cpu_seconds_total{%s, cpu="0", mode="idle"}' % node, "values": "0+1x20"},
        {"series": 'node_cpu_seconds_total{%s, cpu="1", mode="idle"}' % node, "values": "0+1x20"},
        # / is 96% full (critical and high); a full tmpfs is not measured, as on the host
        {"series": 'node_filesystem_size_bytes{%s}' % fs, "values": "100x20"},
        {"series": 'node_filesystem_free_bytes{%s}' % fs, "values": "4x20"},
        {"series": 'node_filesystem_avail_bytes{%s}' % fs, "values": "4x20"},
        {"series": 'node_filesystem_size_bytes{%s}' % tmp, "values": "100x20"},
        {"series": 'node_filesystem_free_bytes{%s}' % tmp, "values": "0x20"},
        {"series": 'node_filesystem_avail_bytes{%s}' % tmp, "values": "0x20"},
        # PostgreSQL 15 (no reserved_connections): 92 of 100 - 3 usable = 94.8% -> medium and high, not critical (95)
        {"series": 'pg_stat_activity_count{%s, datname="app", state="idle"}' % pg, "values": "80x20"},
        {"series": 'pg_stat_activity_count{%s, datname="app", state="active"}' % pg, "values": "12x20"},
        {"series": 'pg_settings_max_connections{%s}' % pg, "values": "100x20"},
        {"series": 'pg_settings_superuser_reserved_connections{%s}' % pg, "values": "3x20"},
        # a certificate due in 10 days: low (30) and medium (14), not high (3)
        {"series": 'probe_ssl_earliest_cert_expiry{%s}' % probe, "values": "%dx20" % (10 * 86400)},
    ]
    pg_out = {"instance": "db:9187", "job": "pg"}
    expected = [
        ("AgentopsHostLoadMedium", [labels("host.load", "medium", {"instance": "h1:9100", "job": "node"})]),
        ("AgentopsHostLoadHigh", [labels("host.load", "high", {"instance": "h1:9100", "job": "node"})]),
        ("AgentopsHostLoadCritical", []),
        ("AgentopsHostDiskSpaceCritical", [labels("host.disk_space", "critical", {
            "instance": "h1:9100", "job": "node", "device": "/dev/sda1", "mountpoint": "/", "fstype": "ext4"})]),
        ("AgentopsPgSaturationHigh", [labels("pg.saturation", "high", pg_out)]),
        ("AgentopsPgSaturationCritical", []),
        ("AgentopsEndpointsTlsExpiringLow", [labels("endpoints.tls_expiring", "low", {"instance": "https://api", "job": "blackbox"})]),
        ("AgentopsEndpointsTlsExpiringMedium", [labels("endpoints.tls_expiring", "medium", {"instance": "https://api", "job": "blackbox"})]),
        ("AgentopsEndpointsTlsExpiringHigh", []),
        ("AgentopsEndpointsTlsExpired", []),
    ]
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": "20m", "alertname": name, "exp_alerts": [{"exp_labels": exp} for exp in exps]}
                            for name, exps in expected]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    proc = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
