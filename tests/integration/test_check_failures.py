"""No false all-clear: a check that crashes, times out or refuses its input is reported failed, never "ok".

The crash is a forced failure: tests/fixtures/crashing_python.py stands in front of the real interpreter and makes
exactly one diagnostic module die the way a broken module does (traceback, exit 1); every other module runs for real.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers import COLLECTIONS_PATH, REPO

BIN = os.path.dirname(sys.executable)
CRASHER = os.path.join(REPO, "tests", "fixtures", "crashing_python.py")
FAMILIES = {"host": "host_facts", "process": "process_facts", "pg": "pg_connection_facts", "logs": "log_scan"}


def diagnose(tmp_path, crash, *extra):
    interpreter = tmp_path / "python"
    interpreter.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable, CRASHER))
    interpreter.chmod(0o755)
    inventory = tmp_path / "inventory.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": str(interpreter)}
    inventory.write_text(json.dumps({"all": {"hosts": {"web-1": host}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               AGENTOPS_TEST_CRASH=crash, ANSIBLE_NOCOLOR="1")
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


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_forced_failure_of_each_family_is_reported_failed_and_the_others_still_report(tmp_path, family, log_file, pg_server):
    extra = ["-e", json.dumps({"agentops_log_paths": [log_file], "agentops_pg_host": pg_server["host"],
                               "agentops_pg_port": pg_server["port"], "agentops_pg_user": "postgres",
                               "agentops_pg_password": pg_server["password"], "agentops_leak_window": 0})]
    report, markdown = diagnose(tmp_path, FAMILIES[family], *extra)
    record = report["hosts"]["web-1"]
    assert record["checks"][family]["status"] == "failed", record["checks"]
    assert "forced failure of %s" % FAMILIES[family] in record["checks"][family]["error"]
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
