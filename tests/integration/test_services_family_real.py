"""The services family on real things: a real pm2 (scripts/npm_tools.sh) crash-looping a real Node script, and - where
the real thing cannot run here (systemd as PID 1, a docker engine) - stand-in clients on PATH that print recorded
output (tests/fixtures/services/bin), named "recorded_*". Run inside a PID namespace of its own (scripts/pidns.py)."""
import json
import os
import subprocess
import time
import uuid

import pytest

from helpers import REPO, run_fix_commands, run_module

FIXTURES = os.path.join(REPO, "tests", "fixtures", "services")
CRASH_JS = """
console.log("worker starting");
setTimeout(function () {
  console.error("Error: connect ECONNREFUSED 127.0.0.1:5432");
  console.error("    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)");
  process.exit(1);
}, 1000);
"""


def diagnose(families, timeout=120):
    rc, result = run_module("diagnostics", {"checks": ["services"], "families": {"services": families}, "redaction_key": "services-test-redaction-key"},
                            timeout=timeout)
    assert rc == 0, result
    return result["families"]["services"]


def by_id(family, rule):
    return [f for f in family["findings"] if f["id"] == rule]


def fixes_run(family):
    return run_fix_commands({"hosts": {"localhost": {"findings": family["findings"]}}})


@pytest.fixture(scope="module")
def pm2_bin():
    run = subprocess.run(["bash", os.path.join(REPO, "scripts", "npm_tools.sh")], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    path = os.path.join(run.stdout.strip().splitlines()[-1], "pm2")
    assert os.path.isfile(path)
    return path


@pytest.fixture
def pm2_home(tmp_path, pm2_bin):
    home = tmp_path / "pm2"
    home.mkdir()
    yield str(home)
    subprocess.run([pm2_bin, "kill"], env=dict(os.environ, PM2_HOME=str(home)), capture_output=True, timeout=60, check=False)


def jlist(pm2_bin, home):
    run = subprocess.run([pm2_bin, "jlist"], env=dict(os.environ, PM2_HOME=home), capture_output=True, text=True, timeout=60,
                         check=True)
    return json.loads(run.stdout[run.stdout.index("["):])


def test_a_real_pm2_crash_loop_is_found_with_its_rate_last_error_and_dependency(tmp_path, pm2_bin, pm2_home):
    script = tmp_path / "worker.js"
    script.write_text(CRASH_JS)
    name = "crashy-%s" % uuid.uuid4().hex[:8]
    env = dict(os.environ, PM2_HOME=pm2_home)
    subprocess.run([pm2_bin, "start", str(script), "--name", name, "--restart-delay", "200"], env=env, capture_output=True,
                   timeout=60, check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        apps = [a for a in jlist(pm2_bin, pm2_home) if a["name"] == name]
        if apps and apps[0]["pm2_env"]["restart_time"] >= 5:
            break
        time.sleep(1)
    else:
        pytest.fail("pm2 did not restart %s 5 times within 60 s" % name)

    family = diagnose({"pm2": pm2_bin})
    assert family["status"] == "ok", family
    assert [d["home"] for d in family["facts"]["pm2"]["daemons"]] == [pm2_home]
    loop, = [f for f in by_id(family, "services.crash_loop") if f["evidence"]["service"] == name]
    evidence = loop["evidence"]
    assert loop["subject"] == "pm2 %s" % name and evidence["supervisor"] == "pm2" and evidence["pm2_home"] == pm2_home
    assert evidence["restarts"] >= 5 and evidence["recent_restarts"] >= 5 and loop["severity"] in ("high", "critical")
    assert 0 < evidence["restarts_per_minute"] < 120 and evidence["window_seconds"] < 120
    assert "%d times in %d s" % (evidence["restarts"], evidence["window_seconds"]) in loop["symptom"]
    assert evidence["last_error"] == "Error: connect ECONNREFUSED 127.0.0.1:5432"
    assert evidence["dependency"] == "PostgreSQL" and evidence["dependency_port"] == 5432
    assert "PostgreSQL at 127.0.0.1:5432 refused the connection" in loop["diagnosis"]
    assert name in loop["fix"]["command"] and pm2_home in loop["fix"]["command"]
    assert fixes_run(family) == []
    # The diagnosis read pm2 and started nothing: still one daemon, for this home only.
    daemons = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert daemons.count("God Daemon") == 1


def test_without_a_pm2_daemon_pm2_is_not_started(tmp_path, pm2_bin):
    family = diagnose({"pm2": pm2_bin})
    assert family["status"] == "ok" and family["facts"]["pm2"]["state"] == "no pm2 daemon running"
    assert "God Daemon" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """The recorded stand-ins first on PATH (for the module and for the printed fix commands)."""
    log = tmp_path / "argv.log"
    monkeypatch.setenv("PATH", os.path.join(FIXTURES, "bin") + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("SVC_ARGV_LOG", str(log))
    return log


def test_recorded_systemctl_crash_loop_names_the_unit_its_rate_and_postgresql(recorded):
    family = diagnose({"services": ["agent-worker", {"pattern": "node", "unit": "agent-api.service"}, {"pattern": "claude", "command": ["x"]},
                                    "ghost"], "runtimes": []})
    assert family["status"] == "ok", family
    asked = recorded.read_text().splitlines()
    assert asked[0].startswith("systemctl show --no-pager -p Id,LoadState,") and asked[0].endswith(
        "-- agent-worker.service agent-api.service ghost.service")
    assert "journalctl -u agent-worker.service --since -600s" in "\n".join(asked)
    loop, = by_id(family, "services.crash_loop")
    evidence = loop["evidence"]
    assert loop["subject"] == "systemd agent-worker.service" and loop["severity"] == "critical"
    assert evidence["recent_restarts"] == 17 and evidence["restarts"] == 17 and evidence["rate_source"] == "journal"
    assert "17 times in the last 10 minutes (1.7 per minute" in loop["symptom"]
    assert evidence["last_error"] == "Error: connect ECONNREFUSED 127.0.0.1:5432" and evidence["dependency"] == "PostgreSQL"
    assert "activating (auto-restart), result exit-code" in loop["symptom"]
    missing, = by_id(family, "services.unknown_unit")
    assert missing["evidence"]["unit"] == "ghost.service"
    assert [u["unit"] for u in family["facts"]["systemd"]["units"]] == ["agent-worker.service", "agent-api.service", "ghost.service"]
    assert loop["fix"]["command"].startswith("journalctl -u agent-worker.service -n 50 --no-pager; systemctl show")
    assert fixes_run(family) == []


def test_recorded_docker_inspect_restart_count_and_a_podman_that_does_not_answer(recorded):
    family = diagnose({"runtimes": ["docker", "podman"]})
    assert family["status"] == "ok" and family["incomplete"] == [], family
    assert family["facts"]["containers"]["podman"]["state"].startswith("not running")
    loop, = by_id(family, "services.crash_loop")
    assert loop["subject"] == "docker agent-worker" and loop["severity"] == "high"
    assert loop["evidence"]["restarts"] == 9 and loop["evidence"]["recent_restarts"] == 9
    assert "restarting (exit code 1)" in loop["symptom"]
    assert loop["fix"]["command"] == "docker logs --tail 50 agent-worker; docker inspect agent-worker"
    assert "s3cr3t" not in json.dumps(family)
    assert fixes_run(family) == []
