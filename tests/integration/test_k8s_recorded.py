"""The k8s family through the diagnostics module, as Ansible runs it. No cluster can run on the test machines, so the
cluster is recorded: the real kubectl of this machine talks to a read-only stand-in API server on 127.0.0.1 that serves
recorded objects (tests/fixtures/k8s/apiserver.py), or the stand-in kubectl (tests/fixtures/k8s/bin/kubectl) plays
the recorded `kubectl get -o json` outputs back and records its calls. Every test that reads a cluster is "recorded";
the refused connection is a real kubectl against a real closed port."""
import json
import os
import shutil
import socket
import sys

import pytest

from helpers import REPO, run_fix_commands, run_module

FIXTURES = os.path.join(REPO, "tests", "fixtures", "k8s")
RECORDED = os.path.join(FIXTURES, "recorded")
sys.path.insert(0, FIXTURES)

import apiserver  # noqa: E402  pylint: disable=wrong-import-position

REAL_KUBECTL = shutil.which("kubectl", path=os.environ.get("PATH", "") + os.pathsep + "/usr/local/bin:/usr/bin")
SECRET = "sk-ant-api03-Zx9Qm2Lr7Tv4Wp8Ks1Nd6Hf3Jc5Yb0Ge-AAAAAAAA"
TOKEN = "kubeconfig-bearer-token-3f9c1a2b7d"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster: {server: "%s"}
  name: recorded
contexts:
- context: {cluster: recorded, user: diagnose, namespace: agents}
  name: recorded
current-context: recorded
users:
- name: diagnose
  user: {token: "%s"}
"""
EXPECTED = {"k8s.crash_loop", "k8s.restarts", "k8s.image_pull", "k8s.container_config_error", "k8s.pod_pending", "k8s.liveness_probe_failed",
            "k8s.readiness_probe_failed", "k8s.service_no_endpoints", "k8s.ingress_backend_missing", "k8s.deployment_unavailable",
            "k8s.replicaset_failure", "k8s.statefulset_unavailable", "k8s.pvc_pending", "k8s.cronjob_failed", "k8s.node_pressure",
            "k8s.coredns_not_ready", "k8s.heap_over_limit", "k8s.grace_shorter_than_drain", "k8s.warning_events"}


def diagnose(options, timeout=120):
    rc, result = run_module("diagnostics", {"checks": ["k8s"], "families": {"k8s": options}, "redaction_key": "k8s-test-redaction-key"},
                            timeout=timeout)
    assert rc == 0, result
    return result["families"]["k8s"]


def kubeconfig(tmp_path, server):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG % (server, TOKEN))
    return str(path)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME of the test's own, to show that kubectl leaves nothing in ~/.kube."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return path


@pytest.mark.skipif(REAL_KUBECTL is None, reason="no kubectl on this machine")
def test_recorded_api_server_read_by_the_real_kubectl(tmp_path, home):
    server = apiserver.serve(os.path.join(RECORDED, "incident"))
    try:
        family = diagnose({"kubeconfig": kubeconfig(tmp_path, "http://127.0.0.1:%d" % server.server_address[1]), "kubectl": REAL_KUBECTL,
                           "drain_seconds": 30})
    finally:
        server.shutdown()
    assert family["status"] == "ok", family.get("incomplete")
    assert set(f["id"] for f in family["findings"]) == EXPECTED
    lists = sorted(p.split("?")[0] for p in server.requests if "/namespaces/" in p or p.startswith("/api/v1/nodes"))
    assert "/api/v1/namespaces/agents/pods" in lists and "/api/v1/namespaces/agents/events" in lists and "/api/v1/nodes" in lists
    assert "/apis/networking.k8s.io/v1/namespaces/agents/ingresses" in lists and "/api/v1/namespaces/kube-system/pods" in lists
    assert any("labelSelector=k8s-app%3Dkube-dns" in p for p in server.requests)
    assert not any("secrets" in p for p in server.requests)  # no Secret is ever read
    text = json.dumps(family)
    assert SECRET not in text and TOKEN not in text
    assert not (home / ".kube").exists()  # the discovery cache went to a directory of the run, removed after it
    oom = [f for f in family["findings"] if f["id"] == "k8s.crash_loop" and f["evidence"]["last_reason"] == "OOMKilled"][0]
    assert oom["evidence"]["pod"] == "api-7d9f8b6c5-x2x9z" and oom["evidence"]["last_exit_code"] == 137


@pytest.fixture
def stub(tmp_path, monkeypatch, home):
    log = tmp_path / "kubectl-calls.jsonl"
    monkeypatch.setenv("PATH", os.path.join(FIXTURES, "bin") + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("K8S_STUB_SCENARIO", os.path.join(RECORDED, "incident"))
    monkeypatch.setenv("K8S_STUB_LOG", str(log))
    return log


def test_recorded_kubectl_outputs_through_the_module_and_every_fix_command_runs(tmp_path, stub):
    config = kubeconfig(tmp_path, "https://10.0.0.10:6443")
    family = diagnose({"kubeconfig": config, "namespaces": ["agents"], "drain_seconds": 30})
    assert family["status"] == "ok" and set(f["id"] for f in family["findings"]) == EXPECTED
    asked = [json.loads(line) for line in stub.read_text().splitlines()]
    assert [" ".join(c["argv"]) for c in asked] == [
        "--request-timeout=10s get pods,services,endpoints,deployments,replicasets,statefulsets,cronjobs,jobs,persistentvolumeclaims,"
        "ingresses --namespace=agents -o json",
        "--request-timeout=10s get events --namespace=agents -o json",
        "--request-timeout=10s get nodes -o json",
        "--request-timeout=10s get pods --namespace=kube-system -l k8s-app=kube-dns -o json",
    ]
    assert all(c["kubeconfig"] == config for c in asked) and config not in json.dumps(family)
    assert run_fix_commands({"hosts": {"localhost": {"findings": family["findings"]}}}) == []
    commands = [f["fix"]["command"] for f in family["findings"]]
    assert "kubectl -n agents logs api-7d9f8b6c5-x2x9z -c api --previous --tail=50; kubectl -n agents describe pod api-7d9f8b6c5-x2x9z" in commands


def test_recorded_rbac_refusals_make_the_family_partial(tmp_path, stub, monkeypatch):
    monkeypatch.setenv("K8S_STUB_ERRORS", os.path.join(RECORDED, "restricted-errors.json"))
    family = diagnose({"kubeconfig": kubeconfig(tmp_path, "https://10.0.0.10:6443")})
    assert family["status"] == "partial"
    assert sorted(i["check"] for i in family["incomplete"]) == ["CoreDNS pods (kube-system)", "nodes", "objects of the current namespace"]
    assert any(f["id"] == "k8s.crash_loop" for f in family["findings"])


@pytest.mark.skipif(REAL_KUBECTL is None, reason="no kubectl on this machine")
def test_real_kubectl_refused_connection_is_one_incomplete_and_no_secret(tmp_path, home):
    with socket.socket() as sock:  # a port nothing listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    family = diagnose({"kubeconfig": kubeconfig(tmp_path, "https://127.0.0.1:%d" % port), "kubectl": REAL_KUBECTL, "command_timeout": 5})
    assert family["status"] == "partial"
    assert family["incomplete"] == [{"check": "the cluster (objects of the current namespace)",
                                     "error": "The connection to the server 127.0.0.1:%d was refused - did you specify the right host or port?" % port}]
    assert family["facts"]["reachable"] is False and len(family["facts"]["calls"]) == 1
    assert TOKEN not in json.dumps(family) and not (home / ".kube").exists()


def test_no_kubectl_or_no_credentials_is_not_present(tmp_path, home):
    family = diagnose({"kubectl": str(tmp_path / "missing" / "kubectl"), "namespaces": ["agents"]})
    assert family["status"] == "ok" and family["facts"] == {"kubectl": "not present", "reason": "no kubectl command on this host"}
    family = diagnose({"kubectl": os.path.join(FIXTURES, "bin", "kubectl"), "serviceaccount_dir": str(tmp_path / "sa")})
    assert family["status"] == "ok" and family["facts"]["kubectl"] == "not present" and family["findings"] == []
