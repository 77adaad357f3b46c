import os

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES


@pytest.mark.parametrize("rule_id, value, overrides, expected", [
    ("host.disk_space", 50.0, None, None),
    ("host.disk_space", 90.0, None, "high"),       # thresholds are inclusive
    ("host.disk_space", 99.9, None, "critical"),
    ("host.disk_space", 86.0, {"host.disk_space": {"high": 85.0}}, "high"),
    ("proc.zombie", 1, None, "low"),
    ("proc.zombie", 150, None, "high"),
    ("host.recent_reboot", 60, None, "info"),      # direction: below
    ("host.recent_reboot", 86400, None, None),
    ("host.load", None, None, None),
])
def test_grade(rule_id, value, overrides, expected):
    assert fm.grade(rule_id, value, overrides) == expected


@pytest.mark.parametrize("overrides, message", [
    ({"host.nope": {"high": 1}}, "unknown rule 'host.nope'"),
    ({"host.disk_space": {"extreme": 1}}, "has no level 'extreme'"),
    ({"host.disk_space": {"high": "lots"}}, "must be a number"),
    ({"host.disk_space": {"high": -1}}, "must be a finite number of at least 0"),
    ({"host.disk_space": 90}, "must be a mapping"),
])
def test_validate_thresholds_rejects_bad_input_with_one_sentence(overrides, message):
    with pytest.raises(ValueError) as err:
        fm.validate_thresholds(overrides)
    assert message in str(err.value)
    assert str(err.value).endswith(".") and "\n" not in str(err.value)


def test_a_missing_evidence_key_fails_the_tests_and_never_reaches_a_report_as_a_placeholder(strict_evidence, monkeypatch):
    """Under the tests (AGENTOPS_STRICT_EVIDENCE=1) a template naming evidence the finding lacks raises, so every test
    that emits a finding checks its evidence; in production the key reads "(unknown)", never "{parent_name}"."""
    assert fm.STRICT and os.environ["AGENTOPS_STRICT_EVIDENCE"] == "1"
    with pytest.raises(ValueError, match="rule proc.zombie: its template needs evidence parent_name"):
        fm.make("proc.zombie", "low", {"count": 3, "ppid": 42})
    monkeypatch.setattr(fm, "STRICT", False)
    found = fm.make("proc.zombie", "low", {"count": 3, "ppid": 42}, subject="ppid 42")
    assert found["symptom"] == "3 zombie process(es) under parent 42 ((unknown))."
    assert found["fix"]["command"] == "ansible-playbook agentops.runbooks.reap_processes -e process_reaper_orphans=false"
    assert found["fix"]["playbook"] == "agentops.runbooks.reap_processes"
    assert found["docs"].endswith("#proc-zombie")
    for key in ("id", "severity", "category", "title", "subject", "symptom", "evidence", "diagnosis", "fix", "docs"):
        assert key in found


def test_graded_records_the_threshold_it_crossed():
    found = fm.graded("host.memory", 96.0, {"used_percent": 96.0})
    assert found["severity"] == "critical" and found["evidence"]["threshold"] == 95.0
    assert fm.graded("host.memory", 10.0, {}) is None


def test_ordering_puts_unknown_after_real_problems_and_before_low():
    items = [fm.make(r, s, {}) for r, s in [("host.recent_reboot", "info"), ("proc.zombie", "low"),
                                            ("host.check_incomplete", "unknown"), ("host.disk_space", "critical")]]
    assert [f["severity"] for f in fm.ordered(items)] == ["critical", "unknown", "low", "info"]
    assert fm.worst(items) == "critical"
    assert fm.worst([fm.make("host.check_incomplete", "unknown", {})]) == "unknown"


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_every_rule_is_complete(rule_id):
    rule = RULES[rule_id]
    for key in ("category", "title", "symptom", "diagnosis", "fix", "thresholds"):
        assert key in rule, key
    assert rule["fix"].get("summary")
    for level in rule["thresholds"]:
        assert level in fm.GRADED


def test_fixed_severities_and_floors_come_from_the_catalog_and_the_users_thresholds():
    """No severity is decided in code: a rule's fixed ``severity`` and its ``floors`` are catalog data that
    agentops_thresholds overrides by name."""
    assert fm.make("proc.oom_kill", None, {})["severity"] == "high"
    users = fm.validate_thresholds({"proc.oom_kill": {"severity": "medium"}})
    assert fm.make("proc.oom_kill", None, {}, overrides=users)["severity"] == "medium"
    # an idle-in-transaction session that blocks others is at least high; a user may say medium
    blocking = {"blocking_pids": [7], "oldest_seconds": 90}
    found = fm.graded("pg.idle_in_transaction", 90, blocking)
    assert found["severity"] == "high" and found["evidence"]["escalated_because"] == "it holds locks other sessions wait for"
    assert fm.graded("pg.idle_in_transaction", 90, dict(blocking, blocking_pids=[]))["severity"] == "medium"
    users = fm.validate_thresholds({"pg.idle_in_transaction": {"when_blocking": "medium"}})
    assert fm.graded("pg.idle_in_transaction", 90, blocking, users)["severity"] == "medium"
    # a leak whose limit is minutes away is critical; the user sets how many minutes
    leak = {"minutes_to_limit": 20.0}
    assert fm.graded("proc.memory_leak", 6.0, leak)["severity"] == "medium"
    users = fm.validate_thresholds({"proc.memory_leak": {"critical_within_minutes": 30}})
    found = fm.graded("proc.memory_leak", 6.0, leak, users)
    assert found["severity"] == "critical" and found["evidence"]["escalated_because"] == "limit within 30 min"


@pytest.mark.parametrize("overrides, words", [
    ({"proc.oom_kill": {"severity": "worst"}}, "thresholds proc.oom_kill.severity must be a severity"),
    ({"proc.oom_kill": {"severity": "unknown"}}, "must be a severity"),
    ({"pg.idle_in_transaction": {"when_blocking": 3}}, "must be a severity"),
    ({"proc.memory_leak": {"critical_within_minutes": "soon"}}, "must be a number"),
    ({"host.disk_space": {"severity": "high"}}, "has no level 'severity'"),
])
def test_bad_severity_settings_are_refused_with_one_sentence(overrides, words):
    with pytest.raises(ValueError, match=words):
        fm.validate_thresholds(overrides)


def test_no_module_decides_a_severity_in_code():
    """Severities are set by findings.make/graded from the catalog: no collector assigns one afterwards."""
    import os
    import re
    from helpers import REPO
    assigned = re.compile(r"""\[["']severity["']\]\s*=(?!=)""")
    offenders = []
    for folder in ("plugins/module_utils", "plugins/modules"):
        for root, dummy, files in os.walk(os.path.join(REPO, folder)):
            for name in files:
                if name.endswith(".py") and name != "findings.py":
                    with open(os.path.join(root, name)) as handle:
                        offenders += ["%s:%d" % (name, n) for n, line in enumerate(handle, 1) if assigned.search(line)]
    assert not offenders, offenders
