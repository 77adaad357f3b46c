"""rollback.yml against a real HTTP service deployed in the ansistrano layout (tests/fixtures/release_service.py)."""
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from helpers import COLLECTIONS_PATH, REPO, run_module

FIXTURE = os.path.join(REPO, "tests", "fixtures", "release_service.py")
GOOD, GOOD2, BAD = "20261101T000000Z", "20261102T000000Z", "20261103T000000Z"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def deployment(tmp_path):
    path = str(tmp_path / "app")
    port = free_port()
    subprocess.run([sys.executable, FIXTURE, "layout", "--path", path, "--port", str(port)], check=True)
    subprocess.run([sys.executable, FIXTURE, "restart", "--path", path], check=True)
    yield {"path": path, "port": port, "url": "http://127.0.0.1:%d/health" % port}
    subprocess.run([sys.executable, FIXTURE, "stop", "--path", path], check=True)


def live(path):
    return os.path.basename(os.readlink(os.path.join(path, "current")))


def answer(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def rollback(deployment, *extra, check=False):
    variables = {"deploy_rollback_path": deployment["path"], "deploy_rollback_health_url": deployment["url"],
                 "deploy_rollback_restart_command": [sys.executable, FIXTURE, "restart", "--path", deployment["path"]],
                 "deploy_rollback_health_deadline": 5, "deploy_rollback_health_interval": 1}
    for item in extra:
        variables.update(item)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_NOCOLOR="1")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/rollback.yml", "-e", json.dumps(variables)]
    if check:
        argv.append("--check")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_rollback_to_the_previous_release_switches_and_the_service_answers(deployment):
    assert answer(deployment["url"])[0] == 500  # the live release is broken
    run = rollback(deployment)
    assert run.returncode == 0, run.stdout[-3000:]
    assert live(deployment["path"]) == GOOD2
    assert answer(deployment["url"]) == (200, "ok " + GOOD2)
    assert '"outcome": "switched"' in run.stdout.split("CUSTOM STATS:", 1)[1].replace("'", '"')


def test_rolling_to_a_broken_release_reverts_automatically_and_fails_clearly(deployment):
    assert rollback(deployment, {"deploy_rollback_release": GOOD}).returncode == 0
    run = rollback(deployment, {"deploy_rollback_release": BAD})
    assert run.returncode != 0
    assert "Release %s failed its health check" % BAD in run.stdout
    assert "switched back to %s, which is healthy again" % GOOD in " ".join(run.stdout.split())
    assert live(deployment["path"]) == GOOD
    assert answer(deployment["url"]) == (200, "ok " + GOOD)
    assert os.path.isdir(os.path.join(deployment["path"], "releases", BAD))  # kept for forensics
    assert '"outcome": "reverted"' in run.stdout.split("CUSTOM STATS:", 1)[1].replace("'", '"')


def test_check_mode_changes_nothing_and_a_second_run_changes_nothing(deployment):
    pid_file = os.path.join(deployment["path"], "shared", "service.pid")
    pid_before = open(pid_file).read()
    run = rollback(deployment, {"deploy_rollback_release": GOOD2}, check=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert live(deployment["path"]) == BAD and open(pid_file).read() == pid_before
    assert rollback(deployment, {"deploy_rollback_release": GOOD2}).returncode == 0
    again = rollback(deployment, {"deploy_rollback_release": GOOD2})
    assert again.returncode == 0 and "changed=0" in again.stdout
    assert live(deployment["path"]) == GOOD2


def test_release_switch_keeps_n_releases_never_the_live_or_target(tmp_path):
    path = tmp_path / "app"
    for name in ("r1", "r2", "r3", "r4"):
        (path / "releases" / name).mkdir(parents=True)
    os.symlink("releases/r4", str(path / "current"))
    rc, result = run_module("release_switch", {"path": str(path), "release": "r1", "keep": 2})
    assert rc == 0 and result["changed"] is True, result
    assert (result["from_release"], result["to_release"], result["removed"]) == ("r4", "r1", ["r2", "r3"])
    assert sorted(os.listdir(path / "releases")) == ["r1", "r4"] and live(str(path)) == "r1"


@pytest.mark.parametrize("setup, args, message", [
    ("none", {}, "has no releases directory"),
    ("oldest", {}, "is the oldest; there is nothing to roll back to"),
    ("ok", {"release": "nope"}, "Release nope does not exist"),
    ("ok", {"release": "../etc"}, "may only hold letters"),
    ("nolink", {}, "There is no live release"),
])
def test_release_switch_bad_input_is_one_sentence(tmp_path, setup, args, message):
    path = tmp_path / "app"
    if setup != "none":
        (path / "releases" / "r1").mkdir(parents=True)
        (path / "releases" / "r2").mkdir(parents=True)
    if setup in ("ok", "oldest"):
        os.symlink("releases/%s" % ("r1" if setup == "oldest" else "r2"), str(path / "current"))
    rc, result = run_module("release_switch", dict({"path": str(path)}, **args))
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]


def test_rollback_then_diagnose_in_one_run_puts_the_rollback_in_the_report(deployment, tmp_path):
    variables = {"deploy_rollback_path": deployment["path"], "deploy_rollback_health_url": deployment["url"],
                 "deploy_rollback_restart_command": [sys.executable, FIXTURE, "restart", "--path", deployment["path"]],
                 "agentops_report_dir": str(tmp_path / "incidents"), "agentops_incident_id": "RB-1"}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH)
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/rollback.yml",
                          "playbooks/diagnose.yml", "-e", json.dumps(variables)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    with open(tmp_path / "incidents" / "RB-1" / "report.json") as handle:
        rollback = json.load(handle)["hosts"]["localhost"]["rollback"]
    assert (rollback["outcome"], rollback["from_release"], rollback["to_release"]) == ("switched", BAD, GOOD2)
    assert rollback["health_probes"][-1]["healthy"] is True


def test_optional_pg_dump_before_switching(deployment, pg_server):
    run = rollback(deployment, {"deploy_rollback_pg_dump_schemas": ["public"], "deploy_rollback_pg_host": pg_server["host"],
                                "deploy_rollback_pg_port": pg_server["port"], "deploy_rollback_pg_user": "postgres",
                                "deploy_rollback_pg_password": pg_server["password"]})
    assert run.returncode == 0, run.stdout[-3000:]
    assert pg_server["password"] not in run.stdout
    backups = os.path.join(deployment["path"], "shared", "backups")
    dumps = [f for f in os.listdir(backups) if f.startswith("pre-rollback-") and f.endswith(".dump")]
    assert len(dumps) == 1
    listing = subprocess.run(["pg_restore", "--list", os.path.join(backups, dumps[0])], capture_output=True, text=True, check=True)
    assert "TABLE public jobs" in listing.stdout
