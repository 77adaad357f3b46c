"""The k8s family: the readers of kubectl's JSON (table-driven), the family's options, and collect() against the
stand-in kubectl (tests/fixtures/k8s/bin/kubectl), which plays back recorded `kubectl get -o json` outputs - no
cluster can run on the test machines, so every test that reads a cluster is named "recorded"."""
import json
import os
import re
import subprocess

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import k8s_objects as ko
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import k8s
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

from helpers import REPO, run_fix_commands

FIXTURES = os.path.join(REPO, "tests", "fixtures", "k8s")
RECORDED = os.path.join(FIXTURES, "recorded")
SECRET = "sk-ant-api03-Zx9Qm2Lr7Tv4Wp8Ks1Nd6Hf3Jc5Yb0Ge-AAAAAAAA"  # in the recorded pods' env and one event's message
FAMILY = collectors.BY_NAME["k8s"]


# ------------------------------------------------------------------ readers
@pytest.mark.parametrize("text, value", [
    ("512Mi", 512 * 1024 ** 2), ("1Gi", 1024 ** 3), ("1G", 1e9), ("500M", 5e8), ("134217728", 134217728), ("100m", 0.1),
    ("1.5Gi", 1.5 * 1024 ** 3), ("8026876Ki", 8026876 * 1024), ("1e3", 1000),
])
def test_quantity_reads_kubernetes_suffixes(text, value):
    assert ko.quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "lots", "12Qi", "Mi"])
def test_quantity_refuses_what_is_not_one(text):
    with pytest.raises(ValueError):
        ko.quantity(text)
    assert ko.memory_mb(text) is None


@pytest.mark.parametrize("code, reason, limit, words", [
    (137, "OOMKilled", "512Mi", "OOMKilled (exit 137): the container passed its memory limit of 512Mi"),
    (1, "Error", None, "exit 1: the application failed"),
    (143, "Error", None, "exit 143 (SIGTERM): the kubelet stopped it"),
    (137, "Error", None, "exit 137 (SIGKILL): killed from outside"),
    (134, "Error", None, "JavaScript heap out of memory"),
    (127, "ContainerCannotRun", None, "ContainerCannotRun, exit 127: the command was not found"),
    (130, "Error", None, "exit 130: killed by signal 2"),
    (3, "Error", None, "exit 3: the application exited with this code"),
    (None, None, None, "no earlier termination recorded"),
])
def test_exit_meaning_names_the_reason_and_the_code(code, reason, limit, words):
    assert words in ko.exit_meaning(code, reason, limit)


@pytest.mark.parametrize("container, expected", [
    ({"command": ["node", "--max-old-space-size=4096", "server.js"]}, (4096, "--max-old-space-size in the container's command", None)),
    ({"command": ["sh", "-c", "exec node --max-old-space-size 2048 app.js"]}, (2048, "--max-old-space-size in the container's command", None)),
    ({"args": ["--max_old_space_size=300", "x.js"]}, (300, "--max-old-space-size in the container's command", None)),
    ({"env": [{"name": "API_KEY", "value": "--max-old-space-size=9"}, {"name": "NODE_OPTIONS", "value": "--max-old-space-size=1536"}]},
     (1536, "--max-old-space-size in NODE_OPTIONS", None)),
    ({"env": [{"name": "NODE_OPTIONS", "valueFrom": {"configMapKeyRef": {"name": "n", "key": "k"}}}]},
     (None, None, "NODE_OPTIONS comes from a ConfigMap or Secret (valueFrom), not read")),
    ({"envFrom": [{"configMapRef": {"name": "node"}}]}, (None, None, "envFrom may set NODE_OPTIONS, not read")),
    ({"command": ["node", "server.js"]}, (None, None, None)),
])
def test_heap_flag_comes_from_the_command_or_node_options_only(container, expected):
    assert ko.heap_flag_mb(container) == expected


def test_event_window_reads_both_event_shapes():
    core = {"count": 7, "firstTimestamp": "2026-11-27T03:00:00Z", "lastTimestamp": "2026-11-27T03:10:00Z"}
    assert ko.event_window(core) == (7, ko.epoch("2026-11-27T03:00:00Z"), ko.epoch("2026-11-27T03:10:00Z"))
    series = {"eventTime": "2026-11-27T03:00:00.123456Z", "series": {"count": 4, "lastObservedTime": "2026-11-27T03:05:00.000000Z"}}
    assert ko.event_window(series) == (4, ko.epoch("2026-11-27T03:00:00Z"), ko.epoch("2026-11-27T03:05:00Z"))
    assert ko.epoch("2026-11-27T04:00:00+01:00") == ko.epoch("2026-11-27T03:00:00Z")


@pytest.mark.parametrize("message, kind", [
    ('Liveness probe failed: Get "http://10.0.0.1:8080/healthz": context deadline exceeded', "liveness"),
    ("Readiness probe failed: HTTP probe failed with statuscode: 503", "readiness"),
    ("Startup probe failed: dial tcp 10.0.0.1:8080: connect: connection refused", "startup"),
    ("Readiness probe errored: rpc error: code = NotFound", "readiness"),
    ("Back-off restarting failed container", None),
])
def test_probe_kind_from_an_unhealthy_event(message, kind):
    assert ko.probe_kind(message) == kind


def test_ingress_backends_in_both_api_shapes():
    v1 = {"spec": {"defaultBackend": {"service": {"name": "fallback"}},
                   "rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/api", "backend": {"service": {"name": "api"}}}]}}]}}
    old = {"spec": {"rules": [{"http": {"paths": [{"backend": {"serviceName": "web", "servicePort": 80}}]}}]}}
    assert ko.ingress_backends(v1) == [("fallback", "*", "(default backend)"), ("api", "a.example.com", "/api")]
    assert ko.ingress_backends(old) == [("web", "*", "/")]


def test_kubectl_error_keeps_its_own_sentence_not_client_go_log_lines():
    text = ('E1127 07:04:06.150635   28685 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API group list"\n'
            'E1127 07:04:06.151942   28685 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API group list"\n'
            "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n")
    assert k8s.kubectl_error(text) == "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
    assert k8s.kubectl_error(text.splitlines()[0]).startswith("E1127")


def test_credentials_kubeconfig_then_in_cluster_then_the_default_one(tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    home = tmp_path / "home"
    assert k8s.credentials("/etc/kc", str(sa), {}, str(home)) == ("kubeconfig", "/etc/kc")
    assert k8s.credentials("", str(sa), {}, str(home))[0] is None
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text("apiVersion: v1\n")
    assert k8s.credentials("", str(sa), {}, str(home)) == ("default kubeconfig", None)
    (sa / "token").write_text("eyJ")
    assert k8s.credentials("", str(sa), {}, str(home)) == ("in-cluster service account", None)


# ------------------------------------------------------------------ options
def collect(options, thresholds=None):
    params = collectors.validated(FAMILY, options)
    params.update(thresholds=fm.validate_thresholds(thresholds or {}), redaction_key="k8s-test-key")
    return FAMILY.collect(None, params)


@pytest.mark.parametrize("options, sentence", [
    ({"namespaces": ["Agents"]}, "namespaces must be Kubernetes namespace names (or * for all), got 'Agents'."),
    ({"namespaces": ["a" * 64]}, "namespaces must be Kubernetes namespace names"),
    ({"context": "--kubeconfig=/tmp/x"}, "context must be a kubeconfig context name"),
    ({"kubectl": "bin/kubectl"}, "kubectl must be auto or an absolute path, got 'bin/kubectl'."),
    ({"kubeconfig": "kube/config"}, "kubeconfig must be an absolute path"),
    ({"command_timeout": 0.5}, "command_timeout must be between 1 and 120 seconds, got 0.5."),
    ({"drain_seconds": -1}, "drain_seconds must be between 0 and 86400 seconds, got -1.0."),
])
def test_bad_options_are_refused_with_one_sentence(options, sentence):
    with pytest.raises(ValueError) as caught:
        collect(options)
    assert str(caught.value).startswith(sentence)


def test_registry_attributes():
    assert FAMILY.enabled_by == ("kubeconfig", "k8s_namespaces")
    assert FAMILY.variables["command_timeout"][0] == "command_timeout"
    assert FAMILY.options["command_timeout"] == collectors.BY_NAME["services"].options["command_timeout"]
    suffixes = dict((v["suffix"], v) for v in collectors.role_variables())
    for suffix in ("kubeconfig", "k8s_namespaces", "k8s_context", "kubectl", "k8s_drain_seconds"):
        assert suffixes[suffix]["family"] == "k8s"


def test_no_kubectl_is_not_present_not_a_failure(tmp_path):
    result = collect({"kubectl": str(tmp_path / "kubectl"), "kubeconfig": str(tmp_path / "kc")})
    assert result == {"facts": {"kubectl": "not present", "reason": "no kubectl command on this host"}, "findings": [], "incomplete": []}


def test_no_credentials_is_not_present(tmp_path, monkeypatch, stub):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = collect({"serviceaccount_dir": str(tmp_path / "none")})
    assert result["facts"]["kubectl"] == "not present" and "no in-cluster service account token" in result["facts"]["reason"]
    assert result["findings"] == [] and result["incomplete"] == []
    assert not os.path.exists(str(stub["log"]))  # kubectl was not even asked


# ------------------------------------------------------------------ recorded
@pytest.fixture
def stub(tmp_path, monkeypatch):
    """The stand-in kubectl first on PATH, playing back a recorded scenario; its calls go to a log."""
    log = tmp_path / "kubectl-calls.jsonl"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("PATH", os.path.join(FIXTURES, "bin") + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("K8S_STUB_SCENARIO", os.path.join(RECORDED, "incident"))
    monkeypatch.setenv("K8S_STUB_LOG", str(log))
    monkeypatch.delenv("K8S_STUB_ERRORS", raising=False)
    return {"log": log, "kubeconfig": str(kubeconfig), "monkeypatch": monkeypatch}


def calls(stub):
    return [json.loads(line) for line in stub["log"].read_text().splitlines()] if stub["log"].exists() else []


def ids(result):
    return sorted((f["id"], f["subject"]) for f in result["findings"])


def by_id(result, rule):
    return [f for f in result["findings"] if f["id"] == rule]


INCIDENT = [
    ("k8s.container_config_error", "pod agents/gateway-5d4c3b2a1-c6v8z container gateway"),
    ("k8s.coredns_not_ready", "CoreDNS"),
    ("k8s.crash_loop", "pod agents/api-7d9f8b6c5-q8w4p container api"),
    ("k8s.crash_loop", "pod agents/api-7d9f8b6c5-x2x9z container api"),
    ("k8s.cronjob_failed", "cronjob agents/nightly-report"),
    ("k8s.deployment_unavailable", "deployment agents/api"),
    ("k8s.deployment_unavailable", "deployment agents/batch-importer"),
    ("k8s.deployment_unavailable", "deployment agents/gateway"),
    ("k8s.deployment_unavailable", "deployment agents/indexer"),
    ("k8s.deployment_unavailable", "deployment agents/scraper"),
    ("k8s.deployment_unavailable", "deployment agents/web"),
    ("k8s.grace_shorter_than_drain", "deployment/worker"),
    ("k8s.heap_over_limit", "deployment/api container api"),
    ("k8s.heap_over_limit", "deployment/batch-importer container importer"),
    ("k8s.heap_over_limit", "deployment/worker container worker"),
    ("k8s.image_pull", "pod agents/scraper-6c8d7e9f1-b5n9x container scraper"),
    ("k8s.ingress_backend_missing", "ingress agents/agents"),
    ("k8s.liveness_probe_failed", "pod agents/worker-5c6d7f8b9-h7k2m liveness probe of worker"),
    ("k8s.node_pressure", "node node-a MemoryPressure"),
    ("k8s.node_pressure", "node node-b DiskPressure"),
    ("k8s.node_pressure", "node node-c PIDPressure"),
    ("k8s.pod_pending", "pod agents/batch-importer-7f8d9c6b5-w2r4t"),
    ("k8s.pod_pending", "pod agents/db-0"),
    ("k8s.pvc_pending", "pvc agents/data-db-0"),
    ("k8s.readiness_probe_failed", "pod agents/web-6f7b8c9d4-pqrst readiness probe of web"),
    ("k8s.replicaset_failure", "replicaset agents/indexer-66b8f9d7c4"),
    ("k8s.restarts", "pod agents/worker-5c6d7f8b9-h7k2m container worker"),
    ("k8s.service_no_endpoints", "service agents/api"),
    ("k8s.service_no_endpoints", "service agents/billing"),
    ("k8s.statefulset_unavailable", "statefulset agents/db"),
    ("k8s.warning_events", "events agents FailedCreate"),
    ("k8s.warning_events", "events agents FailedMount"),
    ("k8s.warning_events", "events agents FailedPostStartHook"),
]
GETS = "pods,services,endpoints,deployments,replicasets,statefulsets,cronjobs,jobs,persistentvolumeclaims,ingresses"


def test_recorded_incident_every_check_with_four_calls_and_the_kubeconfig_in_the_environment(stub, strict_evidence):
    result = collect({"kubeconfig": stub["kubeconfig"], "drain_seconds": 30})
    assert ids(result) == INCIDENT
    assert result["incomplete"] == []
    assert [c["argv"] for c in calls(stub)] == [
        ["--request-timeout=10s", "get", GETS, "-o", "json"],
        ["--request-timeout=10s", "get", "events", "-o", "json"],
        ["--request-timeout=10s", "get", "nodes", "-o", "json"],
        ["--request-timeout=10s", "get", "pods", "--namespace=kube-system", "-l", "k8s-app=kube-dns", "-o", "json"],
    ]
    assert all(c["kubeconfig"] == stub["kubeconfig"] for c in calls(stub))
    assert stub["kubeconfig"] not in json.dumps(result["facts"]["calls"])
    facts = result["facts"]
    assert facts["config_source"] == "kubeconfig" and facts["namespaces"] == ["agents"] and facts["coredns"] == {"pods": 2, "ready": 0}
    assert {"namespace": "agents", "name": "api-7d9f8b6c5-x2x9z", "phase": "Running", "ready": "0/1", "restarts": 14} in facts["pods"]
    assert facts["nodes"][0] == {"name": "node-a", "ready": "True", "pressure": ["MemoryPressure"]}


def test_recorded_crash_loop_names_the_last_termination_and_prints_logs_previous(stub, strict_evidence):
    result = collect({"kubeconfig": stub["kubeconfig"]})
    oom, error = sorted(by_id(result, "k8s.crash_loop"), key=lambda f: f["evidence"]["pod"], reverse=True)
    assert oom["severity"] == "high" and oom["evidence"]["last_reason"] == "OOMKilled" and oom["evidence"]["last_exit_code"] == 137
    assert oom["evidence"]["restarts"] == 14 and oom["evidence"]["memory_limit"] == "512Mi" and oom["evidence"]["deployment"] == "api"
    assert "OOMKilled (exit 137): the container passed its memory limit of 512Mi" in oom["symptom"]
    assert oom["fix"]["command"] == ("kubectl -n agents logs api-7d9f8b6c5-x2x9z -c api --previous --tail=50; "
                                     "kubectl -n agents describe pod api-7d9f8b6c5-x2x9z")
    assert error["evidence"]["last_exit_code"] == 1 and "exit 1: the application failed" in error["symptom"]
    restarted = by_id(result, "k8s.restarts")[0]
    assert restarted["severity"] == "low" and restarted["evidence"]["last_exit_code"] == 143
    assert restarted["evidence"]["count"] == 4 and restarted["evidence"]["last_seen"]


def test_recorded_scheduler_pull_service_dns_and_node_findings_carry_their_reasons(stub, strict_evidence):
    result = collect({"kubeconfig": stub["kubeconfig"]})
    pending = [f for f in by_id(result, "k8s.pod_pending") if f["evidence"]["pod"].startswith("batch")][0]
    assert pending["evidence"]["reason"] == "Unschedulable" and pending["severity"] == "high"  # pending 25 min > 300 s
    assert pending["evidence"]["message"].startswith("0/3 nodes are available: 3 Insufficient memory.")
    pull = by_id(result, "k8s.image_pull")[0]
    assert pull["evidence"]["reason"] == "ImagePullBackOff" and pull["evidence"]["image"] == "registry.example.com/agents/scraper:v2.3.1"
    api, billing = by_id(result, "k8s.service_no_endpoints")
    assert api["evidence"]["not_ready"] == 2 and api["evidence"]["matching_pods"] == 2
    assert billing["evidence"]["why"] == "no pod in agents has the labels app=billing"
    assert billing["fix"]["command"] == "kubectl -n agents get endpoints billing -o wide; kubectl -n agents get pods -l app=billing -o wide"
    dns = by_id(result, "k8s.coredns_not_ready")[0]
    assert dns["severity"] == "critical" and dns["evidence"]["escalated_because"] == "no CoreDNS pod is ready"
    assert "coredns-76f75df574-8zq4x: CrashLoopBackOff" in dns["evidence"]["reasons"]
    assert sorted(f["evidence"]["condition"] for f in by_id(result, "k8s.node_pressure")) == ["DiskPressure", "MemoryPressure", "PIDPressure"]
    live = by_id(result, "k8s.liveness_probe_failed")[0]
    assert live["evidence"]["count"] == 12 and live["evidence"]["container"] == "worker" and "context deadline exceeded" in live["symptom"]
    ready = by_id(result, "k8s.readiness_probe_failed")[0]
    assert ready["severity"] == "medium" and ready["evidence"]["count"] == 87


def test_recorded_workloads_volumes_ingress_and_cronjob(stub, strict_evidence):
    result = collect({"kubeconfig": stub["kubeconfig"]})
    deployments = dict((f["evidence"]["deployment"], f) for f in by_id(result, "k8s.deployment_unavailable"))
    assert deployments["api"]["severity"] == "high" and deployments["api"]["evidence"]["deadline_exceeded"] is True
    assert deployments["api"]["evidence"]["previous_revision"] == 6
    assert deployments["api"]["fix"]["command"] == ("kubectl -n agents rollout history deployment/api; "
                                                    "kubectl -n agents rollout undo deployment/api --to-revision=6 --dry-run=server")
    assert deployments["gateway"]["fix"]["command"] == ("kubectl -n agents rollout history deployment/gateway; "
                                                        "kubectl -n agents describe deployment gateway")  # no earlier revision
    assert deployments["web"]["severity"] == "medium" and deployments["web"]["evidence"]["available"] == 1
    assert "exceeded quota: agents-quota" in by_id(result, "k8s.replicaset_failure")[0]["evidence"]["message"]
    sts = by_id(result, "k8s.statefulset_unavailable")[0]
    assert sts["severity"] == "high" and "db-headless does not exist" in sts["symptom"]
    pvc = by_id(result, "k8s.pvc_pending")[0]
    assert pvc["evidence"]["message"] == 'ProvisioningFailed: storageclass.storage.k8s.io "fast-ssd" not found'
    ingress = by_id(result, "k8s.ingress_backend_missing")[0]
    assert (ingress["evidence"]["service"], ingress["evidence"]["path"]) == ("admin-ui", "/admin")
    cron = by_id(result, "k8s.cronjob_failed")[0]
    assert cron["evidence"]["job"] == "nightly-report-28907640" and cron["evidence"]["reason"] == "BackoffLimitExceeded"


def test_recorded_heap_against_the_memory_limit_and_grace_against_the_drain_time(stub, strict_evidence):
    result = collect({"kubeconfig": stub["kubeconfig"], "drain_seconds": 30})
    heap = dict((f["evidence"]["container"], f) for f in by_id(result, "k8s.heap_over_limit"))
    assert heap["api"]["severity"] == "high" and heap["api"]["evidence"]["heap_percent"] == 200.0
    assert heap["api"]["evidence"]["heap_source"] == "--max-old-space-size in NODE_OPTIONS"
    assert heap["importer"]["evidence"]["heap_source"] == "--max-old-space-size in the container's command"
    assert heap["worker"]["severity"] == "medium"
    grace = by_id(result, "k8s.grace_shorter_than_drain")[0]
    assert grace["evidence"]["grace_seconds"] == 10 and grace["evidence"]["drain_seconds"] == 30
    assert "A preStop hook sleeps 5 s of it first, leaving 5 s." in grace["symptom"]
    assert not by_id(collect({"kubeconfig": stub["kubeconfig"]}), "k8s.grace_shorter_than_drain")  # drain time unknown
    assert not by_id(collect({"kubeconfig": stub["kubeconfig"], "drain_seconds": 10}), "k8s.grace_shorter_than_drain")


def test_recorded_env_values_other_than_node_options_and_secrets_never_leave(stub):
    result = collect({"kubeconfig": stub["kubeconfig"], "drain_seconds": 30})
    text = json.dumps(result)
    assert SECRET not in text and "[REDACTED:" in text  # the event that carried it is redacted
    assert "production" not in text and "WORKER_CONCURRENCY" not in text  # other env names and values are never read out


def test_recorded_fix_commands_run_as_printed_against_the_recorded_cluster(stub):
    result = collect({"kubeconfig": stub["kubeconfig"], "drain_seconds": 30})
    assert run_fix_commands({"hosts": {"localhost": {"findings": result["findings"]}}}) == []
    asked = [" ".join(c["argv"]) for c in calls(stub)[4:]]
    assert "-n agents logs api-7d9f8b6c5-x2x9z -c api --previous --tail=50" in asked
    assert "-n agents rollout undo deployment/api --to-revision=6 --dry-run=server" in asked


def test_recorded_every_k8s_rule_has_a_filled_read_only_command_that_runs(stub):
    """The k8s part of test_fix_commands: each rule's command filled from recorded names runs against the stand-in
    (which refuses any verb that would change a cluster)."""
    values = {"namespace": "agents", "pod": "worker-5c6d7f8b9-h7k2m", "container": "worker", "deployment": "api", "service": "api",
              "selector": "app=api", "ingress": "agents", "replicaset": "indexer-66b8f9d7c4", "statefulset": "db", "pvc": "data-db-0",
              "job": "nightly-report-28907640", "node": "node-a", "reason": "FailedMount", "what": "nodes", "context": None,
              "previous_revision": 6}
    for rule_id in sorted(r for r in RULES if r.startswith("k8s.")):
        command = fm.make(rule_id, "high", values)["fix"]["command"]
        assert command and command.startswith("kubectl ") and not re.search(r"\{[a-z_]+\}", command), rule_id
        run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, (rule_id, command, run.stderr)


def test_recorded_namespaces_and_context_shape_the_calls_and_the_fix_commands(stub, strict_evidence):
    result = collect({"kubeconfig": stub["kubeconfig"], "namespaces": ["agents", "kube-system"], "context": "prod-eu"})
    assert [c["argv"] for c in calls(stub)] == [
        ["--context=prod-eu", "--request-timeout=10s", "get", GETS, "--namespace=agents", "-o", "json"],
        ["--context=prod-eu", "--request-timeout=10s", "get", "events", "--namespace=agents", "-o", "json"],
        ["--context=prod-eu", "--request-timeout=10s", "get", GETS, "--namespace=kube-system", "-o", "json"],
        ["--context=prod-eu", "--request-timeout=10s", "get", "events", "--namespace=kube-system", "-o", "json"],
        ["--context=prod-eu", "--request-timeout=10s", "get", "nodes", "-o", "json"],
    ]  # kube-system is asked for anyway: no separate CoreDNS call
    assert by_id(result, "k8s.coredns_not_ready")
    assert by_id(result, "k8s.image_pull")[0]["fix"]["command"].startswith("kubectl --context prod-eu -n agents describe pod ")
    assert run_fix_commands({"hosts": {"localhost": {"findings": result["findings"]}}}) == []
    stub["log"].unlink()
    collect({"kubeconfig": stub["kubeconfig"], "namespaces": ["*"]})
    assert [c["argv"][2:] for c in calls(stub)] == [[GETS, "--all-namespaces", "-o", "json"], ["events", "--all-namespaces", "-o", "json"],
                                                    ["nodes", "-o", "json"]]


def test_recorded_healthy_cluster_has_no_findings(stub, strict_evidence):
    stub["monkeypatch"].setenv("K8S_STUB_SCENARIO", os.path.join(RECORDED, "healthy"))
    result = collect({"kubeconfig": stub["kubeconfig"], "drain_seconds": 45})
    assert result["findings"] == [] and result["incomplete"] == []
    assert result["facts"]["coredns"] == {"pods": 2, "ready": 2} and len(result["facts"]["pods"]) == 2


def test_recorded_rbac_refusals_are_incomplete_and_the_rest_still_reports(stub, strict_evidence):
    stub["monkeypatch"].setenv("K8S_STUB_ERRORS", os.path.join(RECORDED, "restricted-errors.json"))
    result = collect({"kubeconfig": stub["kubeconfig"]})
    checks = sorted(i["check"] for i in result["incomplete"])
    assert checks == ["CoreDNS pods (kube-system)", "nodes", "objects of the current namespace"]
    refused = dict((i["check"], i["error"]) for i in result["incomplete"])
    assert refused["nodes"].startswith("Error from server (Forbidden): nodes is forbidden")
    assert "ingresses.networking.k8s.io is forbidden" in refused["objects of the current namespace"]
    assert len(by_id(result, "k8s.check_incomplete")) == 3 and by_id(result, "k8s.check_incomplete")[0]["severity"] == "unknown"
    assert by_id(result, "k8s.crash_loop") and not by_id(result, "k8s.ingress_backend_missing") and not by_id(result, "k8s.node_pressure")
    assert not by_id(result, "k8s.coredns_not_ready") and "coredns" not in result["facts"]


def test_recorded_unreachable_server_is_one_incomplete_and_one_call(stub, strict_evidence):
    stub["monkeypatch"].setenv("K8S_STUB_ERRORS", os.path.join(RECORDED, "unreachable-errors.json"))
    result = collect({"kubeconfig": stub["kubeconfig"]})
    assert len(calls(stub)) == 1
    assert result["incomplete"] == [{"check": "the cluster (objects of the current namespace)",
                                     "error": "The connection to the server 10.0.0.10:6443 was refused - did you specify the right host or port?"}]
    assert result["facts"]["reachable"] is False and [f["id"] for f in result["findings"]] == ["k8s.check_incomplete"]


def test_recorded_in_cluster_service_account_without_a_kubeconfig(stub, tmp_path, monkeypatch):
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.e30.c2ln")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = collect({"serviceaccount_dir": str(sa), "namespaces": ["agents"]})
    assert result["facts"]["config_source"] == "in-cluster service account" and by_id(result, "k8s.crash_loop")
    assert all(c["kubeconfig"] is None for c in calls(stub))
    assert "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9" not in json.dumps(result)


def test_recorded_a_kubeconfig_missing_on_this_host_is_incomplete(stub, tmp_path):
    result = collect({"kubeconfig": str(tmp_path / "nope")})
    assert result["incomplete"][0]["check"] == "kubeconfig" and calls(stub) == []


def test_threshold_overrides_reach_the_k8s_rules(stub):
    users = {"k8s.restarts": {"low": 5}, "k8s.node_pressure": {"severity": "medium"}, "k8s.coredns_not_ready": {"when_none_ready": "high"}}
    result = collect({"kubeconfig": stub["kubeconfig"]}, thresholds=users)
    assert not by_id(result, "k8s.restarts")
    assert set(f["severity"] for f in by_id(result, "k8s.node_pressure")) == {"medium"}
    assert by_id(result, "k8s.coredns_not_ready")[0]["severity"] == "high"


def test_node_not_ready_and_an_oom_kill_without_a_crash_loop_from_answers_in_the_recorded_shape(strict_evidence):
    """The two rules the incident scenario does not show, from a runner answering with the recorded shapes."""
    with open(os.path.join(RECORDED, "incident", "nodes.json")) as handle:
        nodes = json.loads(re.sub(r"@NOW-\d+@", "2026-11-27T03:00:00Z", handle.read()))
    ready = [c for c in nodes["items"][2]["status"]["conditions"] if c["type"] == "Ready"][0]
    ready.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
    pod = {"kind": "Pod", "metadata": {"name": "api-1", "namespace": "agents"},
           "spec": {"containers": [{"name": "api", "resources": {"limits": {"memory": "256Mi"}}}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "api", "ready": True, "restartCount": 1, "state": {"running": {}},
                                                                 "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                                                                              "finishedAt": "2026-11-27T03:00:00Z"}}}]}}

    def runner(argv, timeout, env=None):
        kind = argv[argv.index("get") + 1]
        items = nodes["items"] if kind == "nodes" else [pod] if kind.startswith("pods,") else []
        return 0, json.dumps({"kind": "List", "items": items}), ""

    result = k8s.K8sCollector("kubectl", {}, "", [], runner=runner).run()
    assert ids(result) == [("k8s.node_not_ready", "node node-c"), ("k8s.node_pressure", "node node-a MemoryPressure"),
                           ("k8s.node_pressure", "node node-b DiskPressure"), ("k8s.node_pressure", "node node-c PIDPressure"),
                           ("k8s.oom_killed", "pod agents/api-1 container api")]
    oom = by_id(result, "k8s.oom_killed")[0]
    assert oom["evidence"]["memory_limit"] == "256Mi" and oom["fix"]["command"].startswith("kubectl -n agents logs api-1 -c api --previous")
