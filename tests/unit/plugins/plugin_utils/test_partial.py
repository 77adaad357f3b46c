"""plugins/plugin_utils/partial.py: a slice's partial result, written privately, read back and merged."""
import json
import os

import pytest

from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, partial


def record(rule=None, severity="high"):
    findings = [{"id": rule, "severity": severity, "title": rule, "evidence": {}}] if rule else []
    return {"status": "ok", "findings": findings, "facts": {}, "checks": {}}


HOSTVARS = {
    "a": {"diagnose_result": record("host.disk_space", "critical"), "agentops_pg_host": "db", "agentops_pg_password": "never"},
    "b": {"diagnose_result": record()},
    "c": {},  # no diagnosis: unreachable
    "d": {"diagnose_result": record("proc.fd_exhaustion", "high")},
}


def test_build_keeps_what_the_report_needs_and_no_password():
    found = partial.build(HOSTVARS, ["a", "b"], "INC-1", version="1.0", diagnosed_at="2026-01-01T00:00:00Z", job={"awx_job_id": 7})
    assert found["schema"] == partial.SCHEMA and sorted(found["hosts"]) == ["a", "b"] and found["job"] == {"awx_job_id": 7}
    assert found["hosts"]["a"]["vars"] == {"agentops_pg_host": "db"}
    assert "never" not in json.dumps(found)


def test_name_depends_on_the_hosts_only():
    one = partial.build(HOSTVARS, ["a", "b"], "INC-1")
    assert partial.name_of(one) == partial.name_of(partial.build(HOSTVARS, ["b", "a"], "INC-1"))
    assert partial.name_of(one) != partial.name_of(partial.build(HOSTVARS, ["a"], "INC-1"))
    assert partial.NAME.match(partial.name_of(one))


def test_write_is_private_and_read_dir_gives_it_back(tmp_path):
    found = partial.build(HOSTVARS, ["a", "b"], "INC-1")
    where, name = partial.write(str(tmp_path), found)
    path = os.path.join(where, name)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    (tmp_path / "INC-1" / "partials" / "notes.txt").write_text("ignored")
    (tmp_path / "INC-1" / "partials" / "partial-0000000000000000.json").write_text("{broken")
    read, problems = partial.read_dir(str(tmp_path), "INC-1")
    assert [p for dummy, p in read] == [json.loads(json.dumps(found))]
    assert len(problems) == 1 and "is not JSON" in problems[0]


@pytest.mark.parametrize("text, sentence", [
    ("[]", "is not a partial result"),
    (json.dumps({"schema": partial.SCHEMA, "incident_id": "OTHER", "hosts": {}}), "belongs to incident OTHER, not INC-1"),
])
def test_load_refuses_what_is_not_a_partial_of_the_incident(text, sentence):
    with pytest.raises(ValueError, match=sentence):
        partial.load(text, "x.json", "INC-1")


def test_a_bad_incident_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="may only hold"):
        partial.write(str(tmp_path), partial.build(HOSTVARS, ["a"], "../x"))


def test_merged_slices_classify_like_one_run():
    slices = [partial.build(HOSTVARS, ["a", "b"], "INC-1", diagnosed_at="2026-01-01T00:00:05Z"),
              partial.build(HOSTVARS, ["c", "d"], "INC-1", diagnosed_at="2026-01-01T00:00:09Z")]
    hostvars, hosts, when, warnings = partial.merge([("s1", slices[0]), ("s2", slices[1])], "INC-1")
    assert hosts == ["a", "b", "c", "d"] and when == "2026-01-01T00:00:09Z" and warnings == []
    merged = incident.incident_report(hostvars, hosts, "INC-1", generated_at=when)
    single = incident.incident_report(HOSTVARS, ["a", "b", "c", "d"], "INC-1", generated_at=when)
    for key in ("severity", "severity_reason", "summary", "not_checked", "root_cause"):
        assert merged[key] == single[key], key
    assert merged["hosts"]["c"]["status"] == "unreachable"


def test_a_host_in_two_partials_takes_the_later_one():
    old = partial.build({"a": {"diagnose_result": record("host.disk_space", "critical")}}, ["a"], "INC-1", diagnosed_at="2026-01-01T00:00:00Z")
    new = partial.build({"a": {"diagnose_result": record()}}, ["a"], "INC-1", diagnosed_at="2026-01-01T01:00:00Z")
    hostvars, hosts, dummy, warnings = partial.merge([("new", new), ("old", old)], "INC-1")
    assert hostvars["a"]["diagnose_result"]["findings"] == [] and "the latest (new) is used" in warnings[0]


def test_nothing_to_merge():
    with pytest.raises(ValueError, match="no partial results of incident INC-1"):
        partial.merge([], "INC-1")
