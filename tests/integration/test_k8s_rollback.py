"""rollback.yml with deploy_rollback_kind=kubernetes against a stand-in kubectl on PATH (tests/fixtures/kubectl_stub:
no cluster runs on the test machines). The stand-in records every call and plays back kubectl v1.32's recorded output,
keeping the Deployment's revisions in a state file, so the tests check the exact command sequence: the undo to the
resolved revision, the rollout status wait, the health gate, and - when the rollout never becomes ready or the gate
fails - the revert with `kubectl rollout undo --to-revision=<the revision that was live>`."""
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from helpers import COLLECTIONS_PATH, REPO, run_module

STUB = os.path.join(REPO, "tests", "fixtures", "kubectl_stub")
UNDO_TO_2 = "kubectl rollout undo deployment/agent-api -n agents --to-revision=2"
UNDO_TO_3 = "kubectl rollout undo deployment/agent-api -n agents --to-revision=3"
STATUS = "kubectl rollout status deployment/agent-api -n agents --timeout=5s"


@pytest.fixture
def health():
    """A health endpoint whose answer the test sets: {"status": 200}."""
    answer = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (the http.server name)
            self.send_response(answer["status"])
            self.end_headers()
            self.wfile.write(b"ok" if answer["status"] == 200 else b"broken")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    answer["url"] = "http://127.0.0.1:%d/health" % server.server_address[1]
    yield answer
    server.shutdown()
    server.server_close()


@pytest.fixture
def kubectl(tmp_path):
    """The stand-in's environment: its calls log and state file under this test's tmp dir."""
    return {"PATH": STUB + os.pathsep + os.environ["PATH"], "KUBECTL_STUB_LOG": str(tmp_path / "kubectl.log"),
            "KUBECTL_STUB_STATE": str(tmp_path / "kubectl-state.json"), "KUBECTL_STUB_SCENARIO": "ok"}


def calls(kubectl):
    try:
        with open(kubectl["KUBECTL_STUB_LOG"]) as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def changing(kubectl):
    """The calls that change the cluster (everything but get)."""
    return [line for line in calls(kubectl) if not line.startswith("kubectl get ")]


def rollback(kubectl, variables=None, *argv, scenario="ok", inventory=None):
    base = {"deploy_rollback_kind": "kubernetes", "deploy_rollback_k8s_deployment": "agent-api",
            "deploy_rollback_k8s_namespace": "agents", "deploy_rollback_k8s_timeout": 5,
            "deploy_rollback_health_deadline": 2, "deploy_rollback_health_interval": 1}
    base.update(variables or {})
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_NOCOLOR="1", **dict(kubectl, KUBECTL_STUB_SCENARIO=scenario))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/rollback.yml",
               "-e", json.dumps(base)] + (["-i", inventory] if inventory else []) + list(argv)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def stats(run):
    text = run.stdout.split("CUSTOM STATS:", 1)[1].split("RUN:", 1)[1].strip()
    return json.loads(text)["deploy_rollback"]["localhost"]


def failure_message(run):
    lines = [line for line in run.stdout.splitlines() if line.startswith(("fatal: ", "failed: "))]
    assert lines, run.stdout[-3000:]
    return json.loads(lines[-1].split(" => ", 1)[1])["msg"]


def test_kubernetes_rollback_is_a_dry_run_by_default_that_prints_the_exact_commands(kubectl, health):
    run = rollback(kubectl, {"deploy_rollback_health_url": health["url"]})
    assert run.returncode == 0, run.stdout[-3000:]
    assert changing(kubectl) == []  # only reads
    assert calls(kubectl) == ["kubectl get deployment agent-api -n agents -o json", "kubectl get replicasets -n agents -o json"]
    for command in (UNDO_TO_2, STATUS, "health gate: " + health["url"], UNDO_TO_3):
        assert command in run.stdout
    record = stats(run)
    assert (record["kind"], record["outcome"], record["from_revision"], record["to_revision"]) == ("kubernetes", "would switch", 3, 2)
    assert record["commands"] == [UNDO_TO_2, STATUS] and record["revert_commands"] == [UNDO_TO_3, STATUS]


def test_check_mode_with_dry_run_false_changes_nothing(kubectl):
    run = rollback(kubectl, {"deploy_rollback_dry_run": False}, "--check")
    assert run.returncode == 0, run.stdout[-3000:]
    assert changing(kubectl) == [] and UNDO_TO_2 in run.stdout


def test_rollout_undo_to_the_previous_revision_waits_and_passes_the_health_gate(kubectl, health):
    run = rollback(kubectl, {"deploy_rollback_dry_run": False, "deploy_rollback_health_url": health["url"]})
    assert run.returncode == 0, run.stdout[-3000:]
    assert changing(kubectl) == [UNDO_TO_2, STATUS]
    assert calls(kubectl)[-1] == "kubectl get deployment agent-api -n agents -o json"  # the live revision afterwards
    record = stats(run)
    assert (record["outcome"], record["from_release"], record["to_release"], record["live_revision"]) == (
        "switched", "revision 3", "revision 2", 4)
    assert record["health_probes"][-1]["healthy"] is True and "successfully rolled out" in record["rollout_status"]


def test_a_rollout_that_never_becomes_ready_is_undone_to_the_revision_before(kubectl, health):
    run = rollback(kubectl, {"deploy_rollback_dry_run": False, "deploy_rollback_health_url": health["url"]},
                   scenario="never_ready")
    assert run.returncode != 0
    # undo, wait (times out), then back to the revision that was live, wait again: the exact sequence
    assert changing(kubectl) == [UNDO_TO_2, STATUS, UNDO_TO_3, STATUS]
    assert failure_message(run) == (
        "deployment/agent-api in namespace agents rolled back to revision 2 did not become ready within 5 s (Waiting for "
        'deployment "agent-api" rollout to finish: 1 out of 2 new replicas have been updated... error: timed out waiting for '
        "the condition); undone to revision 3 (now revision 5), which is ready and healthy again.")
    record = stats(run)
    assert (record["outcome"], record["rollout_ready"], record["revert_ready"], record["live_revision"]) == ("reverted", False, True, 5)
    assert record["health_probes"] == [] and record["healthy_after_revert"] is True


def test_a_rollout_that_fails_the_health_gate_is_undone_and_says_it_is_still_unhealthy(kubectl, health):
    health["status"] = 503
    run = rollback(kubectl, {"deploy_rollback_dry_run": False, "deploy_rollback_health_url": health["url"]})
    assert run.returncode != 0
    assert changing(kubectl) == [UNDO_TO_2, STATUS, UNDO_TO_3, STATUS]
    message = failure_message(run)
    assert message.startswith("deployment/agent-api in namespace agents rolled back to revision 2 failed its health check at "
                              + health["url"] + " (status 503, ")
    assert message.endswith("undone to revision 3 (now revision 5), which is ready but STILL UNHEALTHY.")
    assert stats(run)["outcome"] == "reverted"


def test_a_named_revision_is_idempotent(kubectl):
    first = rollback(kubectl, {"deploy_rollback_dry_run": False, "deploy_rollback_k8s_revision": 1})
    assert first.returncode == 0, first.stdout[-3000:]
    undo_to_1 = "kubectl rollout undo deployment/agent-api -n agents --to-revision=1"
    assert changing(kubectl) == [undo_to_1, STATUS]
    again = rollback(kubectl, {"deploy_rollback_dry_run": False, "deploy_rollback_k8s_revision": 1})
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[1]
    assert changing(kubectl) == [undo_to_1, STATUS]  # nothing more
    assert "already runs revision 1 (live revision 4); nothing to do." in again.stdout
    assert stats(again)["outcome"] == "unchanged"


def test_the_kubeconfig_goes_in_the_environment_and_the_context_on_the_command_line(kubectl, tmp_path):
    config = str(tmp_path / "kubeconfig")
    run = rollback(kubectl, {"deploy_rollback_k8s_kubeconfig": config, "deploy_rollback_k8s_context": "prod-eu"})
    assert run.returncode == 0, run.stdout[-3000:]
    undo = "KUBECONFIG=%s kubectl --context=prod-eu rollout undo deployment/agent-api -n agents --to-revision=2" % config
    assert undo in run.stdout
    assert calls(kubectl)[0] == "KUBECONFIG=%s kubectl --context=prod-eu get deployment agent-api -n agents -o json" % config


def test_a_missing_deployment_is_one_sentence_and_nothing_is_done(kubectl):
    run = rollback(kubectl, {"deploy_rollback_dry_run": False}, scenario="missing")
    assert run.returncode != 0 and changing(kubectl) == []
    assert failure_message(run) == ('kubectl get deployment agent-api -n agents -o json failed: Error from server (NotFound): '
                                    'deployments.apps "agent-api" not found.')


def test_a_revision_that_does_not_exist_is_one_sentence(kubectl):
    run = rollback(kubectl, {"deploy_rollback_dry_run": False, "deploy_rollback_k8s_revision": "9"})
    assert run.returncode != 0 and changing(kubectl) == []
    assert failure_message(run) == ("deployment/agent-api in namespace agents has no revision 9 (its revisions are 1, 2, 3); "
                                    "nothing was done.")


@pytest.mark.parametrize("variables, message", [
    ({"deploy_rollback_kind": "helm"}, "deploy_rollback_kind must be release (the release layout under deploy_rollback_path) or "
                                       'kubernetes (a Deployment rolled back with kubectl), got "helm"; nothing was done.'),
    ({"deploy_rollback_k8s_deployment": ""}, "deploy_rollback_k8s_deployment must name the Deployment to roll back"),
    ({"deploy_rollback_k8s_deployment": "Agent_API"}, "deploy_rollback_k8s_deployment must name the Deployment to roll back"),
    ({"deploy_rollback_k8s_namespace": "--all-namespaces"}, "deploy_rollback_k8s_namespace must be a namespace name"),
    ({"deploy_rollback_k8s_revision": "latest"}, "deploy_rollback_k8s_revision must be previous or a revision number"),
    ({"deploy_rollback_k8s_revision": 0}, "deploy_rollback_k8s_revision must be previous or a revision number"),
    ({"deploy_rollback_k8s_timeout": 0}, "deploy_rollback_k8s_timeout must be between 1 and 3600, got 0."),
    ({"deploy_rollback_dry_run": "maybe"}, "deploy_rollback_dry_run must be true or false, got 'maybe'; nothing was done."),
    ({"deploy_rollback_dry_run": "n"}, "deploy_rollback_dry_run must be true or false, got 'n'; nothing was done."),
    ({"deploy_rollback_health_url": "ftp://x"}, "deploy_rollback_health_url must be empty (no health gate) or start"),
    ({"deploy_rollback_health_deadline": 0}, "deploy_rollback_health_deadline must be between 1 and 3600, got 0."),
])
def test_bad_variables_are_one_sentence_naming_the_variable_before_kubectl_runs(kubectl, variables, message):
    run = rollback(kubectl, dict({"deploy_rollback_dry_run": False}, **variables))
    assert run.returncode != 0
    assert failure_message(run).startswith(message)
    assert calls(kubectl) == []
    assert "Traceback" not in run.stdout + run.stderr


def test_a_play_of_several_hosts_is_refused(kubectl, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"one": {}, "two": {}}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    run = rollback(kubectl, {"deploy_rollback_dry_run": False}, inventory=str(inventory))
    assert run.returncode != 0 and calls(kubectl) == []
    assert "deploy_rollback_kind=kubernetes rolls the Deployment back once, from the host that runs kubectl, but the play has " \
           "2 hosts" in failure_message(run)


def test_k8s_rollout_module_refuses_a_deployment_without_an_earlier_revision(kubectl, tmp_path):
    with open(kubectl["KUBECTL_STUB_STATE"], "w") as handle:
        json.dump({"agents/solo": {"current": 1, "generation": 1, "templates": 1, "bad": [],
                                   "replicasets": [{"template": "t1", "revision": 1, "history": []}]}}, handle)
    old = dict(os.environ)
    os.environ.update(kubectl)
    try:
        rc, result = run_module("k8s_rollout", {"deployment": "solo", "namespace": "agents"})
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert rc != 0 and result["msg"] == ("deployment/solo in namespace agents is at revision 1 and has no earlier revision; "
                                         "there is nothing to roll back to.")
