"""Verify the report of a fleet where one host is unreachable."""
import json
import os

# Only the local hosts can be reached: that is the point of the scenario.
testinfra_hosts = ["ansible://instance"]

REPORT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "incidents", "molecule-unreachable", "report.json")


def report(host):
    return json.loads(host.file(REPORT).content_string)


def test_unreachable_host_is_marked_with_the_connection_error(host):
    record = report(host)["hosts"]["unreachable"]
    assert record["status"] == "unreachable"
    assert record["findings"][0]["id"] == "diagnose.unreachable"
    assert record["findings"][0]["severity"] == "critical"
    assert "port 1" in record["findings"][0]["evidence"]["error"]


def test_the_other_hosts_are_still_reported(host):
    hosts = report(host)["hosts"]
    for name in ("instance", "instance-b"):
        assert hosts[name]["status"] in ("ok", "partial")
        assert hosts[name]["facts"]["host"]["memory"]["total_mb"] > 0
        assert hosts[name]["facts"]["process"]["process_count"] > 0
    counts = report(host)["summary"]["hosts"]
    assert counts["unreachable"] == 1 and counts["total"] == 3 and counts["ok"] + counts["partial"] == 2


def test_severity_is_raised_as_documented(host):
    data = report(host)
    # docs/Incident-Severity.md: affected = unreachable or with a critical finding;
    # SEV-1 when affected >= half of all hosts, else SEV-2 when any host is affected.
    critical_local = [h for h in ("instance", "instance-b")
                      if any(f["severity"] == "critical" for f in data["hosts"][h]["findings"])]
    affected = 1 + len(critical_local)
    expected = "SEV-1" if affected >= 0.5 * 3 else "SEV-2"
    assert data["severity"] == expected
    assert "1 of 3 host(s) unreachable (unreachable)" in data["severity_reason"]
    markdown = host.file(REPORT.replace(".json", ".md")).content_string
    assert markdown.splitlines()[0] == "# Incident molecule-unreachable: %s" % expected
