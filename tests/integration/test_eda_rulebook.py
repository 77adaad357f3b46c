"""extensions/eda/rulebooks/agent_incidents.yml run by a real ansible-rulebook (Java 17 rules engine), fed real HTTP posts
of Alertmanager-shaped notifications on 127.0.0.1: a firing alert runs diagnose.yml (its report appears under the
incident id taken from the alert), the same alert again within once_within runs nothing, a resolved alert and an
unauthenticated post run nothing, and a remediation runs only for a listed rule id (as a dry run).

ansible-rulebook and its dependencies live in .cache/venv-eda (scripts/eda_setup.sh, idempotent); the collection is
linked into a temporary collections path; every file the run writes is under the test's tmp_path; ansible-rulebook
runs in a process group of its own that the fixture ends."""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULEBOOK = os.path.join(ROOT, "extensions", "eda", "rulebooks", "agent_incidents.yml")
DIAGNOSE_PLAY = "PLAY [Diagnose the incident on every host]"
REAP_PLAY = "PLAY [Reap zombies and orphaned agent processes]"
PG_PLAY = "PLAY [Remediate PostgreSQL connections]"
RECAP = re.compile(r"^localhost\s+: ok=\d+ .*$", re.M)
CLEAN = re.compile(r"unreachable=0\s+failed=0\b")


def eda_bin():
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "eda_setup.sh")], capture_output=True, text=True,
                         timeout=900, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alert(rule, fingerprint, status="firing", instance="localhost:9100", severity="high"):
    """One Alertmanager webhook notification (version 4) holding one alert, as prometheus/agentops-alerts.yml labels it."""
    labels = {"alertname": "Agentops" + rule.title().replace(".", "").replace("_", ""), "agentops_rule": rule,
              "agentops_category": rule.split(".")[0], "instance": instance, "severity": severity}
    return {
        "version": "4", "receiver": "agentops", "status": status, "groupKey": '{}:{alertname="%s"}' % labels["alertname"],
        "truncatedAlerts": 0, "externalURL": "http://alertmanager.invalid:9093",
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels, "commonAnnotations": {},
        "alerts": [{
            "status": status, "labels": labels,
            "annotations": {"summary": "test alert", "playbook": "agentops.runbooks.diagnose"},
            "startsAt": "2026-11-27T07:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-27T07:10:00.000Z",
            "generatorURL": "http://prometheus.invalid:9090/graph", "fingerprint": fingerprint,
        }],
    }


class Rulebook(object):
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.reports = tmp_path / "reports"
        self.log = tmp_path / "rulebook.log"
        self.proc = None

    def start(self, bindir):
        collections = self.tmp / "collections" / "ansible_collections" / "agentops"
        collections.mkdir(parents=True)
        (collections / "runbooks").symlink_to(ROOT)
        inventory = self.tmp / "inventory.yml"
        # Only the host family: the test is about the rulebook, not the diagnosis (a few seconds a run).
        inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "agentops_checks": ["host"]}}}}))
        variables = self.tmp / "eda-vars.yml"
        variables.write_text(json.dumps({"agentops_eda_host": "127.0.0.1", "agentops_eda_port": self.port,
                                         "agentops_eda_token": self.token, "agentops_report_dir": str(self.reports)}))
        env = dict(os.environ)
        env.update({
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
            "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(self.tmp / "collections"),
            "ANSIBLE_HOME": str(self.tmp / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            "TMPDIR": str(self.tmp),
        })
        env.pop("VIRTUAL_ENV", None)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                # The rulebook by its collection name, as the rulebook's header says to run it.
                [os.path.join(bindir, "ansible-rulebook"), "--rulebook", "agentops.runbooks.agent_incidents", "--inventory", str(inventory),
                 "--vars", str(variables), "--shutdown-delay", "5"],
                cwd=str(self.tmp), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "ansible-rulebook exited:\n" + self.output()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        pytest.fail("the webhook did not listen within 90 s:\n" + self.output())

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def post(self, body, token=True):
        request = urllib.request.Request("http://127.0.0.1:%d/alerts" % self.port, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        if token:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def wait_for(self, what, predicate, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.proc.poll() is None, "ansible-rulebook exited while waiting for %s:\n%s" % (what, self.output())
            time.sleep(0.5)
        pytest.fail("no %s within %d s:\n%s" % (what, timeout, self.output()))

    def recaps(self, play):
        """The recap line of each run of ``play`` so far, None for a run that has not finished."""
        runs = []
        for chunk in self.output().split(play)[1:]:
            parts = chunk.split("PLAY RECAP", 1)
            match = RECAP.search(parts[1]) if len(parts) == 2 else None
            runs.append(match.group(0) if match else None)
        return runs

    def finished(self, play, count):
        runs = self.recaps(play)
        return len(runs) == count and None not in runs


@pytest.fixture
def rulebook(tmp_path):
    book = Rulebook(tmp_path)
    try:
        book.start(eda_bin())
        yield book
    finally:
        book.stop()


def test_alert_runs_diagnose_once_within_and_remediation_only_for_listed_rules(rulebook):
    first = alert("host.load", "a1b2c3d4e5f60718")
    report = rulebook.reports / "am-a1b2c3d4e5f60718" / "report.json"

    # A real notification: the diagnosis of the alert's host, under the incident id derived from the alert.
    assert rulebook.post(first) == 200
    rulebook.wait_for("diagnosis report", report.exists)
    rulebook.wait_for("diagnose recap", lambda: rulebook.finished(DIAGNOSE_PLAY, 1))
    assert CLEAN.search(rulebook.recaps(DIAGNOSE_PLAY)[0]), rulebook.output()
    data = json.loads(report.read_text())
    assert data["incident_id"] == "am-a1b2c3d4e5f60718"
    assert list(data["hosts"]) == ["localhost"]

    # The same alert again (Alertmanager's repeat_interval, or a second replica): throttled by once_within. A resolved
    # alert, and a post without the token (401), run nothing either.
    assert rulebook.post(first) == 200
    assert rulebook.post(alert("host.memory", "0f0f0f0f0f0f0f0f", status="resolved")) == 200
    assert rulebook.post(alert("host.swap", "1e1e1e1e1e1e1e1e"), token=False) == 401

    # An alert of a rule id that no remediation lists: diagnosed, not remediated. Actions run one after another, so
    # once its report is there, the events posted before it have been handled.
    second = rulebook.reports / "am-9a8b7c6d5e4f3021" / "report.json"
    assert rulebook.post(alert("host.disk_space", "9a8b7c6d5e4f3021")) == 200
    rulebook.wait_for("second diagnosis report", second.exists)
    rulebook.wait_for("second diagnose recap", lambda: None not in rulebook.recaps(DIAGNOSE_PLAY))
    assert len(rulebook.recaps(DIAGNOSE_PLAY)) == 2, rulebook.output()
    assert all(CLEAN.search(recap) for recap in rulebook.recaps(DIAGNOSE_PLAY)), rulebook.output()
    assert REAP_PLAY not in rulebook.output() and PG_PLAY not in rulebook.output()
    assert sorted(p.name for p in rulebook.reports.iterdir()) == ["am-9a8b7c6d5e4f3021", "am-a1b2c3d4e5f60718"]

    # A listed rule id: diagnosed, then its remediation runs, as a dry run (agentops_eda_dry_run is unset).
    assert rulebook.post(alert("proc.zombie", "77aa77aa77aa77aa")) == 200
    rulebook.wait_for("reap_processes recap", lambda: rulebook.finished(REAP_PLAY, 1))
    assert len(rulebook.recaps(REAP_PLAY)) == 1
    assert (rulebook.reports / "am-77aa77aa77aa77aa" / "report.json").exists()
    assert len(rulebook.recaps(DIAGNOSE_PLAY)) == 3
    text = rulebook.output()
    assert text.rindex(DIAGNOSE_PLAY) < text.index(REAP_PLAY), "the diagnosis records the evidence before the remediation"
    reap = text.split(REAP_PLAY)[1]
    assert CLEAN.search(rulebook.recaps(REAP_PLAY)[0]) and re.search(r"changed=0\b", rulebook.recaps(REAP_PLAY)[0]), reap
    assert "dry run" in reap.lower(), reap
    assert PG_PLAY not in rulebook.output()


def test_diagnose_only_rule_excludes_exactly_the_remediated_rule_ids():
    """The catch-all diagnosis rule must not also fire for a remediated rule id, nor skip one that no rule remediates."""
    import yaml
    rules = yaml.safe_load(open(RULEBOOK))[0]["rules"]
    listed = set()
    for rule in rules[:-1]:
        ids = re.search(r"event\.labels\.agentops_rule in (\[[^]]*\])", rule["condition"]).group(1)
        listed.update(json.loads(ids))
        names = [action["run_playbook"]["name"] for action in rule["actions"]]
        assert names[0] == "agentops.runbooks.diagnose" and len(names) == 2, rule["name"]
        assert "once_within" in rule["throttle"]
    excluded = re.search(r"event\.labels\.agentops_rule not in (\[[^]]*\])", rules[-1]["condition"]).group(1)
    assert set(json.loads(excluded)) == listed
    assert rules[-1]["action"]["run_playbook"]["name"] == "agentops.runbooks.diagnose"


def test_rulebook_refuses_to_start_without_a_token(tmp_path):
    """The webhook can start remediations: without agentops_eda_token the rulebook stops at once, naming it."""
    bindir = eda_bin()
    variables = tmp_path / "eda-vars.yml"
    variables.write_text(json.dumps({"agentops_eda_host": "127.0.0.1", "agentops_eda_port": free_port()}))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_HOME=str(tmp_path / "ah"),
               TMPDIR=str(tmp_path))
    out = subprocess.run([os.path.join(bindir, "ansible-rulebook"), "--rulebook", RULEBOOK, "--inventory", str(inventory),
                          "--vars", str(variables), "--shutdown-delay", "1"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    assert out.returncode != 0
    assert "'agentops_eda_token' is undefined" in out.stdout + out.stderr
