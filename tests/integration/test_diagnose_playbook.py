"""Real ansible-playbook runs of diagnose.yml on this machine, as the README tells users to run it."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import REPO, COLLECTIONS_PATH

BIN = os.path.dirname(sys.executable)


def env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
                PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")


def playbook(*args, cwd=REPO):
    return subprocess.run([os.path.join(BIN, "ansible-playbook")] + list(args), cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_make_diagnose_writes_a_report_and_prints_the_verdict(tmp_path):
    """The README's first command, with ARGS as the README shows."""
    proc = subprocess.run(["make", "-s", "diagnose", "ARGS=-e agentops_report_dir=%s -e agentops_incident_id=INC-1234" % tmp_path],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report_dir = tmp_path / "INC-1234"
    with open(report_dir / "report.json") as handle:
        report = json.load(handle)
    assert re.match(r"^SEV-[1-4]$", report["severity"])
    assert report["hosts"]["localhost"]["status"] in ("ok", "partial")
    assert "%s: %s" % (report["verdict"], report["severity_reason"]) in proc.stdout
    assert report["verdict"].startswith(report["severity"])
    assert "Report: %s/report.md" % report_dir in proc.stdout
    assert "changed=0" in proc.stdout and "failed=0" in proc.stdout


def test_fqcn_playbook_default_report_dir_is_relative_to_the_working_directory(tmp_path):
    proc = playbook("agentops.runbooks.diagnose", "-i", os.path.join(REPO, "inventories", "localhost.yml"), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    written = list((tmp_path / "incidents").iterdir())
    assert len(written) == 1 and re.match(r"^\d{8}T\d{6}Z$", written[0].name)
    assert (written[0] / "report.md").read_text().startswith("# Incident %s: SEV-" % written[0].name)


@pytest.mark.parametrize("extra, sentence", [
    (["-e", "agentops_report_dir=/proc/agentops-cannot-write"], "Cannot write the incident report under /proc/agentops-cannot-write"),
    (["-e", "agentops_incident_id=../../etc"], "incident id '../../etc' may only hold letters, digits"),
    (["-e", '{"agentops_checks": ["cpu"]}'], "value of diagnose_checks must be one or more of: host, process"),
    (["-e", "agentops_top_n=-1"], "agentops_top_n must be between 0 and 1000, got -1."),
    (["-e", "agentops_top_n=100000"], "agentops_top_n must be between 0 and 1000, got 100000."),
    (["-e", "agentops_leak_window=-5"], "agentops_leak_window must be between 0 and 600, got -5."),
    (["-e", "agentops_leak_window=86400"], "agentops_leak_window must be between 0 and 600, got 86400."),
    (["-e", "agentops_mount_timeout=0"], "agentops_mount_timeout must be between 0.1 and 60, got 0."),
    (["-e", "agentops_mount_timeout=-1"], "agentops_mount_timeout must be between 0.1 and 60, got -1."),
    (["-e", "agentops_pg_port=70000"], "agentops_pg_port must be between 1 and 65535, got 70000."),
    (["-e", "agentops_log_window=-1"], "agentops_log_window must be between 0 and 100000000, got -1."),
    (["-e", "agentops_sev1_host_ratio=1.5"], "agentops_sev1_host_ratio must be between 0.01 and 1, got 1.5."),
    (["-e", '{"agentops_thresholds": {"host.disk_spce": {"high": 85}}}'],
     "agentops_thresholds: thresholds names unknown rule 'host.disk_spce' (did you mean host.disk_space?)"),
    (["-e", '{"agentops_thresholds": {"host.disk_space": {"hihg": 85}}}'], "thresholds for host.disk_space has no level 'hihg'"),
    (["-e", '{"agentops_thresholds": {"host.disk_space": {"high": -5}}}'], "threshold host.disk_space.high must be a finite number"),
    (["-e", '{"agentops_process_patterns": ["node", "(claude"]}'],
     "agentops_process_patterns entry '(claude' is not a valid regular expression"),
    # the incident_report role's argument spec, checked by its action (the playbook imports it with rolespec_validate: false)
    (["-e", '{"incident_report_recent_window": "soon"}'], "incident_report_recent_window"),
    # a value with an undefined variable inside is refused too, naming the variable (not recorded as failed families)
    (["-e", "agentops_top_n={{ nope }}"], "agentops_top_n could not be rendered: 'nope' is undefined."),
    (["-e", "diagnose_check_timeout={{ nope }}"], "diagnose_check_timeout could not be rendered: 'nope' is undefined."),
])
def test_bad_input_fails_with_one_clear_sentence(extra, sentence, tmp_path):
    proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % (tmp_path / "reports"), *extra)
    assert proc.returncode != 0
    assert sentence in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    if "report_dir" not in " ".join(extra):
        assert not (tmp_path / "reports").exists(), "nothing may be done after bad input"


def test_a_healthy_host_runs_one_task_and_the_report_one(tmp_path):
    """The variable check, the family calls and the record are one task on a host; nothing runs skipped beside it."""
    proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_incident_id=ONE-1")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"localhost\s+: ok=2\s+changed=0\s+unreachable=0\s+failed=0\s+skipped=0\s+rescued=0", proc.stdout), proc.stdout[-1500:]
    assert "Validating arguments against arg spec" not in proc.stdout  # checked inside the two tasks instead
    assert json.loads((tmp_path / "ONE-1" / "report.json").read_text())["hosts"]["localhost"]["status"] in ("ok", "partial")


def test_an_unreachable_host_is_recorded_by_the_rescue_and_the_others_still_report(tmp_path):
    """A host whose SSH port refuses (a port this test just freed): the call fails as unreachable, the role's rescue
    records it, the healthy host reports, and the verdict names the unreachable host."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n"
                         "    gone:\n      ansible_host: 127.0.0.1\n      ansible_port: %d\n      ansible_connection: ssh\n" % port)
    proc = playbook("-i", str(inventory), "playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path,
                    "-e", "agentops_incident_id=GONE-1")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"gone\s+: ok=1\s+changed=0\s+unreachable=0\s+failed=0\s+skipped=2\s+rescued=1", proc.stdout), proc.stdout[-1500:]
    report = json.loads((tmp_path / "GONE-1" / "report.json").read_text())
    assert report["hosts"]["gone"]["status"] == "unreachable"
    assert [f["id"] for f in report["hosts"]["gone"]["findings"]] == ["diagnose.unreachable"]
    assert "port %d" % port in report["hosts"]["gone"]["findings"][0]["evidence"]["error"]
    assert report["hosts"]["localhost"]["status"] in ("ok", "partial")
    assert "unreachable (gone)" in report["severity_reason"]


def test_a_bad_variable_on_one_host_means_no_report_for_any(tmp_path):
    """Two hosts, one with a host variable out of range: that host fails with the sentence, and no report is written
    (not one that would count it as unreachable: a false SEV-1)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  vars:\n    ansible_connection: local\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n"
                         "  hosts:\n    good: {}\n    bad:\n      agentops_top_n: -1\n")
    proc = playbook("-i", str(inventory), "playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % (tmp_path / "reports"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No report: the variables of bad are not valid: agentops_top_n must be between 0 and 1000, got -1." in out
    assert "Traceback" not in out and "is undefined" not in out
    assert not (tmp_path / "reports").exists()


def test_a_misspelled_variable_still_warns_when_another_is_refused(tmp_path):
    proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_leak_windw=60",
                    "-e", "agentops_top_n=-1")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "agentops_top_n must be between 0 and 1000, got -1." in out
    assert "agentops_leak_windw is not a variable of agentops.runbooks (did you mean agentops_leak_window?)" in out


def test_a_misspelled_variable_warns_in_the_output_and_the_report(tmp_path):
    proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_incident_id=TYPO-1",
                    "-e", "agentops_leak_windw=60", "-e", "process_reaper_dryrun=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    warning = "agentops_leak_windw is not a variable of agentops.runbooks (did you mean agentops_leak_window?); it has no effect."
    assert warning in " ".join((proc.stdout + proc.stderr).split())
    report = json.loads((tmp_path / "TYPO-1" / "report.json").read_text())
    assert warning in report["warnings"]
    assert any(w.startswith("process_reaper_dryrun is not a variable") and "process_reaper_dry_run" in w for w in report["warnings"])
    assert warning in (tmp_path / "TYPO-1" / "report.md").read_text()


def test_set_stats_publishes_one_global_summary_for_awx(tmp_path):
    """AWX keeps only global set_stats as job artifacts; ansible-playbook shows them with show_custom_stats."""
    os.environ["ANSIBLE_SHOW_CUSTOM_STATS"] = "1"
    try:
        proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_incident_id=AWX-1")
    finally:
        del os.environ["ANSIBLE_SHOW_CUSTOM_STATS"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    stats_text = proc.stdout.split("CUSTOM STATS:", 1)[1]
    assert "RUN:" in stats_text  # global (per-run) stats, not per host
    blob = stats_text[stats_text.index("{"):stats_text.rindex("}") + 1]
    stats = json.loads(blob)["agentops_incident"]
    assert stats["incident_id"] == "AWX-1"
    assert stats["report"]["json"] == str(tmp_path / "AWX-1" / "report.json")
    assert stats["hosts"]["localhost"]["status"] in ("ok", "partial")
    assert len(blob) < 20000  # compact: no facts, no evidence


def test_postgres_findings_land_in_the_report(tmp_path, pg_server, sessions):
    """agentops_pg_* switch the audit on; a saturated server shows up like every other finding."""
    sessions.open(user="agent", application="manager", count=9)
    proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_incident_id=PG-1",
                    "-e", "agentops_pg_host=%s" % pg_server["host"], "-e", "agentops_pg_port=%d" % pg_server["port"],
                    "-e", "agentops_pg_user=postgres", "-e", "agentops_pg_password=%s" % pg_server["password"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert pg_server["password"] not in proc.stdout
    with open(tmp_path / "PG-1" / "report.json") as handle:
        report = json.load(handle)
    record = report["hosts"]["localhost"]
    assert record["checks"]["pg"]["status"] == "ok"
    ids = dict((f["id"], f) for f in record["findings"])
    assert ids["pg.saturation"]["severity"] == "critical"
    assert ids["pg.pool_hog"]["evidence"]["application"] == "manager"
    assert report["severity"] == "SEV-1"  # one host with a critical finding: the whole fleet is affected
    assert pg_server["password"] not in (tmp_path / "PG-1" / "report.json").read_text()


def test_log_findings_land_in_the_report(tmp_path):
    """agentops_log_paths switches the log scan on; a V8 heap crash in the logs is a critical finding."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker.log").write_text(
        '{"level":60,"time":%d,"name":"worker","msg":"FATAL ERROR: Reached heap limit Allocation failed - '
        'JavaScript heap out of memory"}\n' % (int(time.time()) * 1000))
    proc = playbook("playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_incident_id=LOG-1",
                    "-e", '{"agentops_log_paths": ["%s/*.log"]}' % logs)
    assert proc.returncode == 0, proc.stdout[-3000:]
    with open(tmp_path / "LOG-1" / "report.json") as handle:
        record = json.load(handle)["hosts"]["localhost"]
    assert record["checks"]["logs"]["status"] == "ok"
    heap = [f for f in record["findings"] if f["id"] == "log.v8_heap_oom"]
    assert heap and heap[0]["severity"] == "critical" and heap[0]["evidence"]["components"] == "worker"


def test_the_built_payload_is_kept_and_reused_by_the_next_run(tmp_path):
    """plugin_utils/payload_cache.py: the first run keeps the diagnostics payload under ANSIBLE_HOME, the next run
    restores it instead of building it (Ansible says so with ANSIBLE_DEBUG), and both report the same checks."""
    home = tmp_path / "home"
    runs = []
    for number in (1, 2):
        proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/diagnose.yml", "-i", "inventories/localhost.yml",
                               "-e", '{"agentops_checks": ["host", "process"]}', "-e", "agentops_report_dir=%s" % tmp_path,
                               "-e", "agentops_incident_id=CACHE-%d" % number],
                              cwd=REPO, env=dict(env(), ANSIBLE_HOME=str(home), ANSIBLE_DEBUG="1"), capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(proc.stdout + proc.stderr)
        with open(tmp_path / ("CACHE-%d" % number) / "report.json") as handle:
            checks = json.load(handle)["hosts"]["localhost"]["checks"]
        assert checks["host"]["status"] in ("ok", "partial") and checks["process"]["status"] in ("ok", "partial")
    stores = list((home / "agentops" / "ansiballz").iterdir())
    assert len(stores) == 1 and [p.name for p in stores[0].iterdir()] == ["ansible_collections.agentops.runbooks.plugins.modules.diagnostics-ZIP_DEFLATED-none"]
    assert oct(stores[0].stat().st_mode & 0o777) == "0o700"
    built = "ANSIBALLZ: using cached module: "
    assert not re.search(re.escape(built) + r"\S*modules\.diagnostics", runs[0])  # built in run 1
    assert re.search(re.escape(built) + r"\S*modules\.diagnostics", runs[1])  # restored in run 2, not built
