"""restart_service.yml (the service_restart role) on real things where they run here - a real pm2 (scripts/npm_tools.sh)
running a leaking Node HTTP service with a health endpoint - and, where they cannot (systemd as PID 1, a docker engine,
a Kubernetes cluster), stand-ins on PATH that record their calls and answer with recorded output: tests named
"recorded_*" (tests/fixtures/restart_stubs) and "kubectl_stub_*" (tests/fixtures/kubectl_stub). Run inside a PID
namespace of its own (scripts/pidns.py): the tests see and restart only what they started."""
import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from helpers import COLLECTIONS_PATH, REPO

RECORDED = os.path.join(REPO, "tests", "fixtures", "restart_stubs", "bin")
KUBECTL_STUB = os.path.join(REPO, "tests", "fixtures", "kubectl_stub")
LEAKY_JS = """
const http = require("http");
const hog = [];
setInterval(function () { hog.push(Buffer.alloc(256 * 1024, 1)); }, 200);  // a slow leak, as the leak findings see it
http.createServer(function (req, res) {
  res.writeHead(req.url === "/health" ? 200 : 404);
  res.end("ok " + process.pid);
}).listen(Number(process.env.PORT), "127.0.0.1");
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def restart(variables, *argv, env=None, inventory=None):
    base = {"service_restart_health_deadline": 10, "service_restart_health_interval": 1}
    base.update(variables)
    environment = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
                       ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_NOCOLOR="1", **(env or {}))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/restart_service.yml",
               "-e", json.dumps(base)] + (["-i", inventory] if inventory else []) + list(argv)
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300, check=False)


def stats(run, host="localhost"):
    text = run.stdout.split("CUSTOM STATS:", 1)[1].split("RUN:", 1)[1].strip()
    return json.loads(text)["service_restart"][host]


def failure_message(run):
    lines = [line for line in run.stdout.splitlines() if line.startswith(("fatal: ", "failed: "))]
    assert lines, run.stdout[-3000:]
    return json.loads(lines[-1].split(" => ", 1)[1])["msg"]


def recap(run):
    return run.stdout.split("PLAY RECAP", 1)[1]


def record(directory):
    with open(os.path.join(directory, "restarts.json")) as handle:
        return json.load(handle)["restarts"]


# ------------------------------------------------------------------ a real pm2
@pytest.fixture(scope="module")
def pm2_bin():
    run = subprocess.run(["bash", os.path.join(REPO, "scripts", "npm_tools.sh")], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    path = os.path.join(run.stdout.strip().splitlines()[-1], "pm2")
    assert os.path.isfile(path)
    return os.path.realpath(path)


@pytest.fixture
def pm2_app(tmp_path, pm2_bin):
    """A leaking Node HTTP service under a real pm2 daemon with its own PM2_HOME."""
    home = str(tmp_path / "pm2")
    os.mkdir(home)
    script = tmp_path / "leaky.js"
    script.write_text(LEAKY_JS)
    port = free_port()
    name = "leaky-%s" % uuid.uuid4().hex[:8]
    env = dict(os.environ, PM2_HOME=home, PORT=str(port))
    subprocess.run([pm2_bin, "start", str(script), "--name", name], env=env, capture_output=True, timeout=60, check=True)
    app = {"name": name, "home": home, "pm2": pm2_bin, "url": "http://127.0.0.1:%d/health" % port, "records": str(tmp_path / "records")}
    app["pid"] = wait_for_answer(app["url"])
    yield app
    subprocess.run([pm2_bin, "kill"], env=dict(os.environ, PM2_HOME=home), capture_output=True, timeout=60, check=False)


def answer(url):
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


def wait_for_answer(url, not_pid=None):
    """The pid that answers at ``url`` (a different one than ``not_pid``), waiting up to 20 s."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            pid = int(answer(url).split()[1])
            if pid != not_pid:
                return pid
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("nothing new answered at %s" % url)


def pm2_vars(app, **extra):
    variables = {"service_restart_targets": [{"kind": "pm2", "name": app["name"]}],
                 "service_restart_allowed": [{"kind": "pm2", "name": app["name"]}],
                 "service_restart_pm2": app["pm2"], "service_restart_record_dir": app["records"],
                 "service_restart_health_url": app["url"], "service_restart_health_body_regex": "^ok "}
    variables.update(extra)
    return variables


def test_a_real_pm2_app_dry_run_then_restart_with_health_gate_then_nothing(pm2_app):
    dry = restart(pm2_vars(pm2_app))
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert "Dry run (set service_restart_dry_run=false to restart); it would run:" in dry.stdout
    assert "PM2_HOME=%s " % pm2_app["home"] in dry.stdout and " restart %s" % pm2_app["name"] in dry.stdout
    assert answer(pm2_app["url"]) == "ok %d" % pm2_app["pid"]  # not restarted
    assert not os.path.exists(pm2_app["records"])
    assert stats(dry)["outcome"] == "would restart"

    real = restart(pm2_vars(pm2_app, service_restart_dry_run=False))
    assert real.returncode == 0, real.stdout[-3000:]
    new_pid = wait_for_answer(pm2_app["url"], not_pid=pm2_app["pid"])
    result = stats(real)
    assert (result["outcome"], result["healthy"]) == ("restarted", True)
    assert result["health_probes"][-1]["healthy"] is True
    entry, = record(pm2_app["records"])
    assert (entry["target"], entry["outcome"], entry["kind"]) == ("pm2 app %s" % pm2_app["name"], "restarted", "pm2")
    assert entry["commands"][0].startswith("PM2_HOME=%s " % pm2_app["home"]) and entry["commands"][0].endswith(
        "restart %s" % pm2_app["name"])
    assert stat.S_IMODE(os.stat(pm2_app["records"]).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(pm2_app["records"], "restarts.json")).st_mode) == 0o600

    again = restart(pm2_vars(pm2_app, service_restart_dry_run=False))
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in recap(again)
    assert "pm2 app %s was restarted" % pm2_app["name"] in again.stdout and "within the window of 300 s; left alone" in again.stdout
    assert answer(pm2_app["url"]) == "ok %d" % new_pid
    assert stats(again)["outcome"] == "unchanged" and len(record(pm2_app["records"])) == 1


def test_check_mode_with_dry_run_false_restarts_nothing(pm2_app):
    run = restart(pm2_vars(pm2_app, service_restart_dry_run=False), "--check")
    assert run.returncode == 0, run.stdout[-3000:]
    assert answer(pm2_app["url"]) == "ok %d" % pm2_app["pid"] and not os.path.exists(pm2_app["records"])


def test_a_target_not_on_the_allow_list_is_refused_in_one_sentence(pm2_app):
    run = restart(pm2_vars(pm2_app, service_restart_dry_run=False, service_restart_allowed=["agent-api"]))
    assert run.returncode != 0
    assert failure_message(run) == ("service_restart_targets names pm2 app %s, which is not in service_restart_allowed (by "
                                    "default agentops_services); nothing was restarted." % pm2_app["name"])
    assert answer(pm2_app["url"]) == "ok %d" % pm2_app["pid"] and not os.path.exists(pm2_app["records"])


def test_agentops_services_allows_units_only_so_a_pm2_app_needs_service_restart_allowed(pm2_app):
    variables = pm2_vars(pm2_app, agentops_services=["agent-api", {"pattern": "node", "unit": "agent-worker.service"}])
    del variables["service_restart_allowed"]
    run = restart(variables)
    assert run.returncode != 0
    assert failure_message(run).startswith("service_restart_targets names pm2 app %s, which is not in service_restart_allowed"
                                           % pm2_app["name"])


def test_a_pm2_daemon_is_never_started(tmp_path, pm2_bin):
    home = str(tmp_path / "no-daemon")
    run = restart({"service_restart_targets": [{"kind": "pm2", "name": "worker", "pm2_home": home}],
                   "service_restart_allowed": [{"kind": "pm2", "name": "worker"}], "service_restart_pm2": pm2_bin,
                   "service_restart_record_dir": str(tmp_path / "records"), "service_restart_dry_run": False})
    assert run.returncode != 0
    assert failure_message(run) == ("pm2 app worker cannot be restarted: no pm2 daemon runs for PM2_HOME=%s (pm2 is never "
                                    "started here). Nothing was restarted." % home)
    assert "God Daemon" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


# ------------------------------------------------------------------ recorded stand-ins
@pytest.fixture
def recorded(tmp_path):
    log = tmp_path / "argv.log"
    return {"env": {"PATH": RECORDED + os.pathsep + os.environ["PATH"], "RESTART_STUB_LOG": str(log)}, "log": log,
            "records": str(tmp_path / "records")}


def asked(recorded):
    return recorded["log"].read_text().splitlines() if recorded["log"].exists() else []


def test_recorded_systemctl_restarts_a_unit_named_in_agentops_services(recorded):
    variables = {"service_restart_targets": [{"kind": "systemd", "name": "agent-worker"}], "service_restart_dry_run": False,
                 "agentops_services": ["agent-worker", {"pattern": "node", "unit": "agent-api.service"}],
                 "service_restart_record_dir": recorded["records"]}
    run = restart(variables, env=recorded["env"])
    assert run.returncode == 0, run.stdout[-3000:]
    assert asked(recorded) == ["systemctl show -p LoadState -- agent-worker.service"] * 2 + [
        "systemctl restart -- agent-worker.service"]
    entry, = record(recorded["records"])
    assert entry["target"] == "systemd unit agent-worker.service" and entry["outcome"] == "restarted"
    assert entry["commands"][0].endswith("systemctl restart -- agent-worker.service")


def test_recorded_systemctl_a_unit_that_is_not_installed_is_one_sentence(recorded):
    variables = {"service_restart_targets": [{"kind": "systemd", "name": "ghost"}], "service_restart_dry_run": False,
                 "service_restart_allowed": ["ghost"], "service_restart_record_dir": recorded["records"]}
    run = restart(variables, env=recorded["env"])
    assert run.returncode != 0
    assert failure_message(run) == ("systemd unit ghost.service cannot be restarted: it is not installed here. "
                                    "Nothing was restarted.")
    assert [line for line in asked(recorded) if " restart " in line] == []


def test_recorded_systemctl_an_unhealthy_service_after_the_restart_fails_after_the_record(recorded):
    state = {"status": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (the http.server name)
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/health" % server.server_address[1]
    try:
        run = restart({"service_restart_targets": [{"kind": "systemd", "name": "agent-api.service"}],
                       "service_restart_allowed": ["agent-api"], "service_restart_dry_run": False,
                       "service_restart_record_dir": recorded["records"], "service_restart_health_url": url,
                       "service_restart_health_deadline": 2}, env=recorded["env"])
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode != 0
    message = failure_message(run)
    assert message.startswith("Restarted systemd unit agent-api.service, but %s is not healthy (status 503, " % url)
    assert message.endswith(" probes in 2 s); nothing more was done.")
    assert stats(run)["outcome"] == "unhealthy" and record(recorded["records"])[0]["outcome"] == "restarted"


def test_recorded_docker_restarts_an_allowed_container(recorded):
    variables = {"service_restart_targets": [{"kind": "container", "name": "agent-api"}], "service_restart_dry_run": False,
                 "service_restart_allowed": [{"kind": "container", "name": "agent-api"}],
                 "service_restart_container_runtimes": ["docker"], "service_restart_record_dir": recorded["records"]}
    run = restart(variables, env=recorded["env"])
    assert run.returncode == 0, run.stdout[-3000:]
    assert asked(recorded) == ["docker container inspect -- agent-api"] * 2 + ["docker restart -- agent-api"]
    entry, = record(recorded["records"])
    assert (entry["target"], entry["outcome"], entry["output"]) == ("container agent-api", "restarted", "agent-api")


def test_recorded_docker_an_unknown_container_is_one_sentence(recorded):
    variables = {"service_restart_targets": [{"kind": "container", "name": "ghost"}], "service_restart_dry_run": False,
                 "service_restart_allowed": [{"kind": "container", "name": "ghost"}],
                 "service_restart_container_runtimes": ["docker"], "service_restart_record_dir": recorded["records"]}
    run = restart(variables, env=recorded["env"])
    assert run.returncode != 0
    assert failure_message(run) == "container ghost cannot be restarted: docker knows no such container. Nothing was restarted."


# ------------------------------------------------------------------ the kubectl stub
@pytest.fixture
def kubectl(tmp_path):
    log = tmp_path / "kubectl.log"
    return {"env": {"PATH": KUBECTL_STUB + os.pathsep + os.environ["PATH"], "KUBECTL_STUB_LOG": str(log),
                    "KUBECTL_STUB_STATE": str(tmp_path / "kubectl-state.json")},
            "log": log, "records": str(tmp_path / "records")}


def deployment_vars(kubectl, **extra):
    variables = {"service_restart_targets": [{"kind": "deployment", "name": "agent-api", "namespace": "agents"}],
                 "service_restart_allowed": [{"kind": "deployment", "name": "agent-api", "namespace": "agents"}],
                 "service_restart_dry_run": False, "service_restart_rollout_timeout": 5,
                 "service_restart_record_dir": kubectl["records"]}
    variables.update(extra)
    return variables


def test_kubectl_stub_restarts_a_deployment_and_waits_for_its_rollout(kubectl):
    run = restart(deployment_vars(kubectl), env=dict(kubectl["env"], KUBECTL_STUB_SCENARIO="ok"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert kubectl["log"].read_text().splitlines() == ["kubectl get deployment agent-api -n agents -o json"] * 2 + [
        "kubectl rollout restart deployment/agent-api -n agents",
        "kubectl rollout status deployment/agent-api -n agents --timeout=5s"]
    entry, = record(kubectl["records"])
    assert entry["target"] == "deployment agents/agent-api" and entry["outcome"] == "restarted"
    assert "successfully rolled out" in entry["output"]


def test_kubectl_stub_a_restarted_deployment_that_never_becomes_ready_fails_clearly(kubectl):
    run = restart(deployment_vars(kubectl), env=dict(kubectl["env"], KUBECTL_STUB_SCENARIO="restart_never_ready"))
    assert run.returncode != 0
    assert failure_message(run) == (
        'deployment agents/agent-api did not become ready: deployment.apps/agent-api restarted Waiting for deployment '
        '"agent-api" rollout to finish: 1 out of 2 new replicas have been updated... error: timed out waiting for the '
        'condition.')
    assert record(kubectl["records"])[0]["outcome"] == "not ready" and stats(run)["outcome"] == "failed"


def test_kubectl_stub_a_deployment_from_several_hosts_is_refused(kubectl, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"one": {}, "two": {}}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    run = restart(deployment_vars(kubectl), env=kubectl["env"], inventory=str(inventory))
    assert run.returncode != 0 and not kubectl["log"].exists()
    assert "service_restart_targets names a Deployment, which is restarted once from the host that runs kubectl, but the " \
           "play has 2 hosts" in failure_message(run)


# ------------------------------------------------------------------ variables
@pytest.mark.parametrize("variables, message", [
    ({"service_restart_dry_run": "maybe"}, "service_restart_dry_run"),
    ({"service_restart_dry_run": "y"}, "service_restart_dry_run must be true or false, got 'y'; nothing was done."),
    ({"service_restart_dry_run": "1"}, "service_restart_dry_run must be true or false, got '1'; nothing was done."),
    ({"service_restart_targets": []}, "service_restart_targets must list what to restart"),
    ({"service_restart_window": -1}, "service_restart_window must be between 0 and 604800, got -1."),
    ({"service_restart_rollout_timeout": 0}, "service_restart_rollout_timeout must be between 1 and 3600, got 0."),
    ({"service_restart_health_url": "ftp://x"}, "service_restart_health_url must be empty (no health gate) or start with"),
    ({"service_restart_health_status": [200, 700]}, "service_restart_health_status must be a list of HTTP status codes"),
    ({"service_restart_health_deadline": 0}, "service_restart_health_deadline must be between 1 and 3600, got 0."),
    ({"service_restart_health_body_regex": "("}, "service_restart_health_body_regex entry '(' is not a valid regular expression"),
])
def test_bad_variables_stop_before_anything_is_asked_or_restarted(recorded, variables, message):
    base = {"service_restart_targets": [{"kind": "systemd", "name": "agent-worker"}], "service_restart_allowed": ["agent-worker"],
            "service_restart_dry_run": False, "service_restart_record_dir": recorded["records"]}
    base.update(variables)
    run = restart(base, env=recorded["env"])
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert message in output and "Traceback" not in output
    assert asked(recorded) == [] and not os.path.exists(recorded["records"])
