"""No false all-clear: a check that crashes, times out or refuses its input is reported failed, never "ok".

The failures are forced: tests/fixtures/crashing_python.py stands in front of the real interpreter and makes one family
inside the diagnostics module raise or hang (its sitecustomize), or the whole module die the way a broken module does
(traceback, exit 1); everything else runs for real.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers import COLLECTIONS_PATH, REPO

BIN = os.path.dirname(sys.executable)
CRASHER = os.path.join(REPO, "tests", "fixtures", "crashing_python.py")
FAMILIES = ("host", "process", "pg", "logs")


def diagnose(tmp_path, crash, *extra, family=None, how="raise"):
    interpreter = tmp_path / "python"
    interpreter.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable, CRASHER))
    interpreter.chmod(0o755)
    inventory = tmp_path / "inventory.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": str(interpreter)}
    inventory.write_text(json.dumps({"all": {"hosts": {"web-1": host}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               AGENTOPS_TEST_CRASH=crash, AGENTOPS_TEST_FAIL_FAMILY=family or "", AGENTOPS_TEST_FAIL_HOW=how, ANSIBLE_NOCOLOR="1")
    run = subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/diagnose.yml", "-i", str(inventory),
                          "-e", "agentops_report_dir=%s" % tmp_path, "-e", "agentops_incident_id=FAIL-1"] + list(extra),
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    with open(tmp_path / "FAIL-1" / "report.json") as handle:
        report = json.load(handle)
    return report, (tmp_path / "FAIL-1" / "report.md").read_text()


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "agent.log"
    path.write_text("[2026-11-27T03:00:00.000Z] [INFO] [agent:worker] started\n")
    return str(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_forced_failure_of_each_family_is_reported_failed_and_the_others_still_report(tmp_path, family, log_file, pg_server):
    extra = ["-e", json.dumps({"agentops_log_paths": [log_file], "agentops_pg_host": pg_server["host"],
                               "agentops_pg_port": pg_server["port"], "agentops_pg_user": "postgres",
                               "agentops_pg_password": pg_server["password"], "agentops_leak_window": 0})]
    report, markdown = diagnose(tmp_path, "", *extra, family=family)
    record = report["hosts"]["web-1"]
    assert record["checks"][family]["status"] == "failed", record["checks"]
    assert "forced failure of the %s family" % family in record["checks"][family]["error"]
    assert record["status"] == "partial"
    for other in set(FAMILIES) - {family}:
        assert record["checks"][other]["status"] in ("ok", "partial"), (other, record["checks"][other])
    assert report["visibility"] == "limited"
    if report["severity"] == "SEV-4":
        assert report["verdict"] == "SEV-4 (limited visibility)"
        assert markdown.splitlines()[0].endswith("SEV-4 (limited visibility)")
    assert "check failed - " in markdown.splitlines()[3]


def test_a_check_that_runs_past_its_timeout_is_failed(tmp_path):
    """A real node agent makes process_facts sample for 5 s; agentops_check_timeout=1 stops it."""
    agent = subprocess.Popen(["node", "-e", "process.title = 'agentops-timeout-probe'; setTimeout(() => {}, 60000)"])
    try:
        variables = {"agentops_check_timeout": 1, "agentops_leak_window": 5, "agentops_leak_min_age": 0,
                     "agentops_process_patterns": ["agentops-timeout-probe"]}
        report, markdown = diagnose(tmp_path, "", "-e", json.dumps(variables))
    finally:
        agent.kill()
        agent.wait()
    check = report["hosts"]["web-1"]["checks"]["process"]
    assert check["status"] == "failed" and check["error"].startswith("timed out"), check
    assert report["hosts"]["web-1"]["checks"]["host"]["status"] == "ok"
    assert "processes: check failed - timed out" in markdown


def test_a_family_that_hangs_is_stopped_at_its_time_limit_and_the_others_report(tmp_path, log_file):
    report, markdown = diagnose(tmp_path, "", "-e", json.dumps({"agentops_check_timeout": 2, "agentops_log_paths": [log_file]}),
                                family="logs", how="hang")
    record = report["hosts"]["web-1"]
    assert record["checks"]["logs"]["status"] == "failed"
    assert record["checks"]["logs"]["error"].startswith("timed out after 2 s")
    assert record["checks"]["host"]["status"] == "ok" and record["checks"]["process"]["status"] in ("ok", "partial")


def test_a_crash_of_the_whole_call_marks_every_family_asked_for_failed(tmp_path):
    report, markdown = diagnose(tmp_path, "diagnostics")
    checks = report["hosts"]["web-1"]["checks"]
    assert checks["host"]["status"] == "failed" and checks["process"]["status"] == "failed"
    assert "forced failure of diagnostics" in checks["host"]["error"]
    assert checks["pg"]["status"] == "skipped" and checks["logs"]["status"] == "skipped"
    assert report["verdict"] == "SEV-4 (limited visibility)"
