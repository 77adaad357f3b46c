"""Verify diagnose.yml against the faults prepare created on this machine."""
import json
import os

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
REPORT = os.path.join(EPHEMERAL, "incidents", "molecule-diagnose", "report.json")


def load(host, path):
    return json.loads(host.file(path).content_string)


def stat_fields(host, pid):
    out = host.run("cat /proc/%d/stat" % pid)
    assert out.rc == 0, "process %d is gone" % pid
    return out.stdout.rsplit(")", 1)[1].split()


def test_report_files_are_private(host):
    directory = os.path.dirname(REPORT)
    assert host.file(directory).mode == 0o700
    for name in ("report.json", "report.md"):
        assert host.file(os.path.join(directory, name)).mode == 0o600


def test_report_names_the_zombies_and_their_parent(host):
    faults = load(host, os.path.join(EPHEMERAL, "faults.json"))
    record = load(host, REPORT)["hosts"]["instance"]
    zombie = [f for f in record["findings"] if f["id"] == "proc.zombie" and f["evidence"]["ppid"] == faults["zombie_parents"][0]]
    assert zombie, record["findings"]
    assert zombie[0]["evidence"]["zombie_pids"] == sorted(faults["zombies"])
    markdown = host.file(REPORT.replace(".json", ".md")).content_string
    assert "under parent %d" % faults["zombie_parents"][0] in markdown
    assert "ansible-playbook agentops.runbooks.reap_processes" in markdown


def test_report_names_the_orphaned_agents(host):
    faults = load(host, os.path.join(EPHEMERAL, "faults.json"))
    record = load(host, REPORT)["hosts"]["instance"]
    reparented = sorted(int(p) for p, ppid in faults["orphan_parents"].items() if ppid == 1)
    assert reparented, "the fixture's node processes were not re-parented to PID 1"
    orphan = [f for f in record["findings"] if f["id"] == "proc.orphan"]
    assert orphan and orphan[0]["severity"] == "medium"
    listed = [int(p) for p in orphan[0]["evidence"]["pids"].split(",")]
    assert set(reparented) <= set(listed)
    assert set(reparented) <= set(o["pid"] for o in record["facts"]["process"]["orphans"])


def test_the_run_changed_nothing(host):
    report = load(host, REPORT)
    record = report["hosts"]["instance"]
    assert record["status"] in ("ok", "partial")
    assert all(check["changed"] is False for check in record["checks"].values() if "changed" in check)
    # The faults are exactly as prepare left them: zombies still unreaped, orphans still running.
    faults = load(host, os.path.join(EPHEMERAL, "faults.json"))
    for pid in faults["zombies"]:
        assert stat_fields(host, pid)[0] == "Z"
    for pid in faults["orphans"]:
        fields = stat_fields(host, pid)
        assert fields[0] in "RS" and int(fields[19]) == faults["started"][str(pid)]
