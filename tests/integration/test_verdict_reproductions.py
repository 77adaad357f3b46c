"""The verdict on real reproductions: diagnose.yml against seed-format logs written by the test, on this machine.

Each case writes a log whose recent window has a known error share (errors carry userId / conversationId metadata
lines, as the seed format does) and checks the finding, the severity and the first lines of report.md.
"""
import json
import re
import os
import subprocess
import sys
import time

import pytest

from helpers import COLLECTIONS_PATH, REPO, run_fix_commands

BIN = os.path.dirname(sys.executable)


def seed_log(path, entries, error_share, end, span=600, users=40, component="agent:worker", message="request failed"):
    """``entries`` seed-format entries spread over the ``span`` seconds before ``end``; every 1/error_share-th is an
    ERROR with userId and conversationId metadata lines."""
    lines = []
    errors = 0
    for index in range(entries):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end - span + span * index / entries)) + ".000Z"
        if errors < round(error_share * (index + 1)):
            errors += 1
            lines += ["[%s] [ERROR] [%s] %s: upstream returned 502" % (stamp, component, message),
                      "  userId: user-%d" % (errors % users), "  conversationId: conv-%05d" % errors]
        else:
            lines.append("[%s] [INFO] [%s] request ok in 35ms" % (stamp, component))
    path.write_text("\n".join(lines) + "\n")
    return errors


def diagnose(tmp_path, log, incident, checks=("logs",), **extra):
    variables = {"agentops_report_dir": str(tmp_path / "incidents"), "agentops_incident_id": incident,
                 "agentops_log_paths": [str(log)], "agentops_checks": list(checks), "agentops_log_window": 3 * 86400}
    variables.update(extra)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_NOCOLOR="1")
    run = subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/diagnose.yml", "-i", "inventories/localhost.yml",
                          "-e", json.dumps(variables)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    directory = tmp_path / "incidents" / incident
    report = json.loads((directory / "report.json").read_text())
    assert run_fix_commands(report) == [], "a fix command of the report does not run as printed on this host"
    return report, (directory / "report.md").read_text()


def by_id(report, rule):
    return [f for f in report["hosts"]["localhost"]["findings"] if f["id"] == rule]


def test_sixty_percent_errors_in_the_recent_window_is_sev2_or_worse_with_affected_users(tmp_path):
    log = tmp_path / "worker.log"
    errors = seed_log(log, 500, 0.6, time.time())
    report, markdown = diagnose(tmp_path, log, "RATE-60")
    rate, = by_id(report, "log.error_rate")
    assert rate["severity"] == "critical" and rate["evidence"]["recent_error_percent"] == pytest.approx(60, abs=1)
    assert report["severity"] in ("SEV-1", "SEV-2")
    assert report["affected"]["users"] == 40 and report["affected"]["conversations"] == errors
    lines = markdown.splitlines()
    assert lines[0].startswith("# Incident RATE-60: SEV-")
    assert "40 users, %d conversations with errors in the logs" % errors in lines[2]
    assert "host resources: not checked" in lines[3] and "First fix:" in lines[4]
    assert "Errors per minute" in markdown


def test_thirty_five_percent_errors_is_sev3(tmp_path):
    log = tmp_path / "worker.log"
    seed_log(log, 400, 0.35, time.time())
    report, markdown = diagnose(tmp_path, log, "RATE-35")
    rate, = by_id(report, "log.error_rate")
    assert rate["severity"] == "high" and rate["evidence"]["recent_error_percent"] == pytest.approx(35, abs=1)
    assert report["severity"] == "SEV-3"
    assert markdown.splitlines()[1].startswith("- **Verdict:** SEV-3")


def test_everything_down_is_sev1(tmp_path):
    log = tmp_path / "worker.log"
    seed_log(log, 300, 1.0, time.time())
    report, markdown = diagnose(tmp_path, log, "RATE-100")
    assert report["severity"] == "SEV-1" and "service down" in report["severity_reason"]


def test_the_same_log_twenty_hours_old_is_historical_and_at_most_sev3(tmp_path):
    log = tmp_path / "worker.log"
    seed_log(log, 500, 0.6, time.time() - 20 * 3600)
    report, markdown = diagnose(tmp_path, log, "RATE-OLD")
    rate, = by_id(report, "log.error_rate")
    assert rate["historical"] is True and rate["severity"] == "high" and rate["severity_observed"] == "critical"
    assert report["severity"] in ("SEV-3", "SEV-4")
    assert re.search(r"historical: last seen (19|20) h before the diagnosis", markdown)


def test_one_old_enospc_line_on_a_healthy_disk_raises_nothing(tmp_path):
    log = tmp_path / "worker.log"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 20 * 3600))
    log.write_text("[%s] [ERROR] [agent:worker] write failed: ENOSPC: no space left on device, write\n" % stamp)
    report, markdown = diagnose(tmp_path, log, "ENOSPC-OLD", checks=("host", "logs"))
    enospc, = by_id(report, "log.enospc")
    host = report["hosts"]["localhost"]["facts"]["host"]
    if max(m["used_percent"] for m in host["mounts"]) < 90:  # this machine's disks have room: the state contradicts
        assert enospc["severity"] == "info" and "every filesystem has room now" in enospc["contradicted_by"]
    assert enospc["historical"] is True and enospc["confidence"] <= 0.3
    others = [f for f in report["hosts"]["localhost"]["findings"] if f["id"] != "log.enospc"]
    if not any(f["severity"] in ("critical", "high") for f in others):
        assert report["severity"] == "SEV-4"
    assert "ENOSPC" not in report["severity_reason"]


def test_every_read_only_fix_command_of_a_busy_report_runs_as_printed(tmp_path):
    """Every log signature, real zombies and an orphan, this host's own findings: each read-only fix command printed in
    report.md runs on this machine as printed (in the scenario's own PID namespace, so the pids are the fixtures')."""
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "pidns.py"), "--unshare", "--", sys.executable,
                          os.path.join(REPO, "tests", "fixtures", "fix_commands_scenario.py"), "--dir", str(tmp_path),
                          "--out", str(out)], capture_output=True, text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert result["rc"] == 0, result["stdout"]
    rules = set(rule for rule, _command in result["commands"])
    assert {"proc.zombie", "proc.orphan", "log.econnrefused", "log.spawn_enoent", "log.tls_error"} <= rules, rules
    assert len(result["commands"]) >= 20
    assert result["bad"] == []
    assert result["unfilled"] == [], "a finding's text shows a {placeholder}: its evidence lacks that key"
