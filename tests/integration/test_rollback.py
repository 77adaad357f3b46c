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


def playbook_run(variables, *argv):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_NOCOLOR="1")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/rollback.yml"]
    if variables is not None:
        command += ["-e", json.dumps(variables)]
    return subprocess.run(command + list(argv), cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def failure_message(run):
    """The msg of the failed task: the one sentence the user reads."""
    lines = [line for line in run.stdout.splitlines() if line.startswith(("fatal: ", "failed: "))]
    assert lines, run.stdout[-3000:]
    return json.loads(lines[-1].split(" => ", 1)[1])["msg"]


def refused(url):
    try:
        answer(url)
    except urllib.error.URLError:
        return True
    return False


def test_rollback_without_deploy_rollback_path_is_one_sentence_naming_it():
    run = playbook_run(None)
    assert run.returncode != 0
    message = failure_message(run)
    assert message == ("deploy_rollback_path must be set to the absolute deploy directory that holds releases/ and current "
                       "(for example -e deploy_rollback_path=/srv/agent); nothing was done.")
    output = run.stdout + run.stderr
    assert "Traceback" not in output and "undefined" not in output.lower()


@pytest.mark.parametrize("variables, message", [
    ({"deploy_rollback_path": "relative/app"}, 'deploy_rollback_path must be set to the absolute deploy directory'),
    ({"deploy_rollback_health_deadline": -1}, "deploy_rollback_health_deadline must be between 1 and 3600, got -1."),
    ({"deploy_rollback_health_deadline": 10 ** 9}, "deploy_rollback_health_deadline must be between 1 and 3600"),
    ({"deploy_rollback_health_interval": -2}, "deploy_rollback_health_interval must be between 0 and 600, got -2."),
    ({"deploy_rollback_health_timeout": 0}, "deploy_rollback_health_timeout must be between 0.1 and 300, got 0."),
    ({"deploy_rollback_health_timeout": 10 ** 6}, "deploy_rollback_health_timeout must be between 0.1 and 300"),
    ({"deploy_rollback_keep_releases": -1}, "deploy_rollback_keep_releases must be between 0 and 1000, got -1."),
    ({"agentops_pg_port": 70000}, "agentops_pg_port must be between 1 and 65535, got 70000."),
    ({"deploy_rollback_max_fail_percentage": 101}, "deploy_rollback_max_fail_percentage must be between 0 and 100"),
    ({"deploy_rollback_serial": 0}, "deploy_rollback_serial must be a batch size from 1 to 999999 or a percentage"),
    ({"deploy_rollback_health_status": [200, 700]}, "deploy_rollback_health_status must be a list of HTTP status codes"),
    ({"deploy_rollback_health_url": "ftp://x"}, "deploy_rollback_health_url must be empty (no health gate) or start"),
    ({"deploy_rollback_release": "../etc"}, "deploy_rollback_release must be previous or a release id"),
    ({"deploy_rollback_remove_failed_release": "maybe"}, "deploy_rollback_remove_failed_release must be true or false"),
])
def test_rollback_bad_variables_are_one_sentence_naming_the_variable_before_anything_is_done(tmp_path, variables, message):
    path = tmp_path / "app"
    for name in ("r1", "r2"):
        (path / "releases" / name).mkdir(parents=True)
    os.symlink("releases/r2", str(path / "current"))
    run = playbook_run(dict({"deploy_rollback_path": str(path), "deploy_rollback_restart_command": ["true"]}, **variables))
    assert run.returncode != 0
    assert message in failure_message(run) and "Traceback" not in run.stdout + run.stderr
    assert live(str(path)) == "r2"  # nothing was done
    assert "Resolve the release" in run.stdout and "TASK [Find the target release" not in run.stdout


def test_rollback_refuses_a_current_that_is_a_regular_file_and_leaves_it(deployment):
    current = os.path.join(deployment["path"], "current")
    os.unlink(current)
    with open(current, "w") as handle:
        handle.write("not a link\n")
    run = rollback(deployment, {"deploy_rollback_release": GOOD})
    assert run.returncode != 0
    assert failure_message(run) == ("%s is a regular file, not a symbolic link to a release, so it is left as it is; move "
                                    "it aside to let release_switch manage it." % current)
    assert not os.path.islink(current) and open(current).read() == "not a link\n"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_release_switch_never_replaces_a_current_that_is_not_a_link(tmp_path, kind):
    path = tmp_path / "app"
    for name in ("r1", "r2"):
        (path / "releases" / name).mkdir(parents=True)
    if kind == "file":
        (path / "current").write_text("x")
    else:
        (path / "current").mkdir()
    for args in ({"release": "r1"}, {"state": "absent"}):
        rc, result = run_module("release_switch", dict({"path": str(path)}, **args))
        assert rc != 0 and "current is a %s, not a symbolic link" % ("regular file" if kind == "file" else "directory") in result["msg"]
    assert (path / "current").is_file() if kind == "file" else (path / "current").is_dir()
    assert not (path / "current").is_symlink() and sorted(os.listdir(path)) == ["current", "releases"]


def test_release_switch_state_absent_removes_only_the_link(tmp_path):
    path = tmp_path / "app"
    (path / "releases" / "r1").mkdir(parents=True)
    os.symlink("releases/r1", str(path / "current"))
    rc, result = run_module("release_switch", {"path": str(path), "state": "absent", "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is True and os.path.islink(path / "current")
    rc, result = run_module("release_switch", {"path": str(path), "state": "absent"})
    assert rc == 0 and (result["changed"], result["from_release"], result["to_release"]) == (True, "r1", None)
    assert not os.path.lexists(path / "current") and (path / "releases" / "r1").is_dir()
    rc, result = run_module("release_switch", {"path": str(path), "state": "absent"})
    assert rc == 0 and result["changed"] is False


@pytest.mark.parametrize("args, message", [
    ({"keep": -1}, "keep must be between 0 (keep all) and 1000, got -1."),
    ({"keep": 10 ** 6}, "keep must be between 0 (keep all) and 1000, got 1000000."),
    ({"path": "relative/app"}, "path must be the absolute deploy directory, got 'relative/app'."),
    ({"release": ".."}, "may only hold letters"),
])
def test_release_switch_numbers_and_paths_out_of_range_are_one_sentence(tmp_path, args, message):
    path = tmp_path / "app"
    for name in ("r1", "r2"):
        (path / "releases" / name).mkdir(parents=True)
    os.symlink("releases/r2", str(path / "current"))
    rc, result = run_module("release_switch", dict({"path": str(path)}, **args))
    assert rc != 0 and message in result["msg"] and live(str(path)) == "r2"


@pytest.mark.parametrize("args, message", [
    ({"status": [200, 700]}, "status must list HTTP status codes between 100 and 599, got [200, 700]."),
    ({"status": [-1]}, "status must list HTTP status codes between 100 and 599"),
    ({"timeout": 0}, "timeout must be between 0.1 and 300, got 0.0."),
    ({"timeout": -5}, "timeout must be between 0.1 and 300"),
    ({"interval": -1}, "interval must be between 0 and 600, got -1.0."),
    ({"deadline": 0}, "deadline must be between 1 and 3600, got 0.0."),
    ({"deadline": 10 ** 9}, "deadline must be between 1 and 3600"),
    ({"healthy_probes": 0}, "healthy_probes must be between 1 and 100, got 0."),
    ({"healthy_probes": 10 ** 6}, "healthy_probes must be between 1 and 100"),
    ({"url": "ftp://x"}, "url must start with http:// or https://"),
    ({"body_regex": "("}, "body_regex is not a valid regular expression"),
])
def test_health_probe_bad_input_is_one_sentence(args, message):
    rc, result = run_module("health_probe", dict({"url": "http://127.0.0.1:9/health"}, **args))
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]


def test_no_current_and_a_failed_health_gate_leave_nothing_live_and_say_so(deployment):
    subprocess.run([sys.executable, FIXTURE, "stop", "--path", deployment["path"]], check=True)
    os.unlink(os.path.join(deployment["path"], "current"))
    assert refused(deployment["url"])
    run = rollback(deployment, {"deploy_rollback_release": BAD,
                                "deploy_rollback_stop_command": [sys.executable, FIXTURE, "stop", "--path", deployment["path"]]})
    assert run.returncode != 0
    message = failure_message(run)
    assert message.startswith("Release %s failed its health check at %s (status 500" % (BAD, deployment["url"]))
    assert message.endswith("no release was live before it, so the current link was removed and the service stopped: "
                            "nothing from %s is live." % BAD)
    assert not os.path.lexists(os.path.join(deployment["path"], "current"))
    assert refused(deployment["url"])  # the failed release's service is not running
    assert os.path.isdir(os.path.join(deployment["path"], "releases", BAD))  # kept for forensics
    stats = run.stdout.split("CUSTOM STATS:", 1)[1].replace("'", '"')
    assert '"outcome": "reverted"' in stats and '"live_release": null' in stats.replace("None", "null")


def test_no_current_and_no_way_to_stop_the_service_is_refused_before_anything_is_done(deployment):
    subprocess.run([sys.executable, FIXTURE, "stop", "--path", deployment["path"]], check=True)
    os.unlink(os.path.join(deployment["path"], "current"))
    run = rollback(deployment, {"deploy_rollback_release": BAD})
    assert run.returncode != 0
    assert failure_message(run) == (
        "There is no live release (%s/current does not exist), and without deploy_rollback_service (under systemd) or "
        "deploy_rollback_stop_command a release that fails the health gate could not be taken down again, so nothing "
        "was done." % deployment["path"])
    assert not os.path.lexists(os.path.join(deployment["path"], "current")) and refused(deployment["url"])
