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


def test_make_fills_templates_from_evidence_and_leaves_unknown_keys():
    found = fm.make("proc.zombie", "low", {"count": 3, "ppid": 42}, subject="ppid 42")
    assert found["symptom"] == "3 zombie process(es) under parent 42 ({parent_name})."
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
