"""The incident channel against a real local HTTP(S) server (tests/fixtures/notify/notify_recorder.py) standing in for
the webhook, Slack, PagerDuty, Jira and ServiceNow: what goes over the wire per sink, retries on 500/429 with real
waits, the deadline against a slow or absent server, TLS with a private CA, no secret on the wire or in the results,
and an incident that is triggered, written, then resolved by a later run."""
import email.parser
import email.policy
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from helpers import REPO, COLLECTIONS_PATH
from ansible_collections.agentops.runbooks.plugins.action.write_report import write_report
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, notify

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures", "notify"))

from notify_recorder import Recorder  # noqa: E402  pylint: disable=wrong-import-position

SLACK_PATH = "/slack/services/T0AAAAAAA/B0BBBBBBB/slackWebhookToken0123456789"
HOOK_PATH = "/hook/whk_0123456789abcdef"
ROUTING = "R0utingKey0123456789abcdefABCDEF"
JIRA_TOKEN = "ATATT3xJiraToken0123456789"
SNOW_PASSWORD = "Sn0w-Password-42!"
SIGNING = "signingSecret0123456789"
LEAKED = "sk-ant-api03-" + "Q" * 40
SECRETS = ("slackWebhookToken0123456789", "whk_0123456789abcdef", ROUTING, JIRA_TOKEN, SNOW_PASSWORD, SIGNING, LEAKED)

ROOT_CAUSE = {
    "chain": [
        {"host": "db-1", "rule": "pg.pool_hog", "finding_index": 0, "title": "One application holds most PostgreSQL connections",
         "severity": "critical", "evidence_line": "app 'indexer' holds 85 of 97 connections", "first_seen": "2026-11-25T03:01:00Z"},
        {"host": "web-1", "rule": "log.pg_connections", "finding_index": 0, "title": "PostgreSQL refused connections",
         "severity": "high", "evidence_line": "'sorry, too many clients already' 212 times", "first_seen": "2026-11-25T03:02:10Z"},
    ],
    "explains_count": 2,
    "first_fix": {"host": "db-1", "rule": "pg.pool_hog", "command": "ansible-playbook agentops.runbooks.remediate_postgres -e app=indexer",
                  "summary": "Cap the indexer's pool, then end its idle sessions.", "playbook": "remediate_postgres"},
    "not_explained": [],
    "whys": ["Why did requests fail? Because PostgreSQL refused connections.", "Why? Because indexer held 85 of 97 slots."],
    "alternatives": [],
}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """The requests go to 127.0.0.1 whatever proxy the machine has."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    recorder = Recorder()
    yield recorder
    recorder.close()


def record(*pairs):
    return {"status": "ok", "findings": [fm.make(rule, severity, evidence) for rule, severity, evidence in pairs], "facts": {}, "checks": {}}


def sev1_report(incident_id="INC-77"):
    hostvars = {
        "db-1": {"diagnose_result": record(("pg.pool_hog", "critical", {"application": "indexer", "line": "Authorization: Bearer %s" % LEAKED}))},
        "web-1": {"diagnose_result": record(("log.pg_connections", "high", {"count": 212}))},
    }
    report = incident.incident_report(hostvars, ["db-1", "web-1"], incident_id, version="1.2.3")
    report["root_cause"] = ROOT_CAUSE
    return report


def quiet_report(incident_id="INC-77"):
    return incident.incident_report({"db-1": {"diagnose_result": record()}, "web-1": {"diagnose_result": record()}},
                                    ["db-1", "web-1"], incident_id)


def every_sink(base, **extra):
    return dict({
        "webhook_url": base + HOOK_PATH, "webhook_secret": SIGNING,
        "slack_webhook_url": base + SLACK_PATH,
        "pagerduty_routing_key": ROUTING, "pagerduty_url": base + "/pagerduty/v2/enqueue",
        "jira_url": base + "/jira", "jira_user": "ops@example.com", "jira_token": JIRA_TOKEN, "jira_project": "OPS",
        "servicenow_url": base + "/snow", "servicenow_user": "agentops", "servicenow_password": SNOW_PASSWORD,
    }, **extra)


def body_json(request):
    return json.loads(request["body"].decode("utf-8"))


def multipart_file(request):
    """(filename, content) of the one file of a multipart/form-data body, parsed by the standard library."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + request["headers"]["content-type"].encode() + b"\r\n\r\n" + request["body"])
    parts = list(message.iter_parts())
    assert len(parts) == 1
    return parts[0].get_filename(), parts[0].get_content()


def assert_no_secret_on_the_wire(server, allowed_paths=(SLACK_PATH, HOOK_PATH)):
    for request in server.requests:
        text = request["body"].decode("utf-8", "replace")
        if "pagerduty" in request["path"]:
            event = json.loads(text)
            assert event.pop("routing_key") == ROUTING  # where the Events API takes it, nowhere else
            text = json.dumps(event)
        where = request["raw_path"] if request["path"] not in allowed_paths else ""
        for secret in SECRETS:
            assert secret not in text and secret not in where, (request["path"], secret)


# ------------------------------------------------------------------ payloads per sink
def test_every_sink_gets_its_payload(server, tmp_path):
    report = sev1_report()
    paths = write_report(str(tmp_path), report)
    markdown = (tmp_path / "INC-77" / "report.md").read_text()
    results = notify.deliver(report, every_sink(server.url, report_base_url="https://reports.example/incidents"), paths=paths,
                             markdown=markdown)
    assert [(r["kind"], r["ok"], r["error"]) for r in results] == [(k, True, None) for k in notify.KINDS], results

    hook = server.of("/hook")[0]
    payload = body_json(hook)
    assert payload["incident_id"] == "INC-77" and payload["severity"] == "SEV-1" and payload["event"] == "trigger"
    assert payload["counts"]["findings_by_severity"]["critical"] == 1 and payload["counts"]["hosts"]["total"] == 2
    assert sorted(payload["hosts"]) == ["db-1", "web-1"] and payload["hosts"]["db-1"]["worst"] == "critical"
    assert [s["rule"] for s in payload["root_cause"]["chain"]] == ["pg.pool_hog", "log.pg_connections"]
    assert payload["first_fix"]["playbook"] == "remediate_postgres"
    assert payload["report"] == {"paths": paths, "url": "https://reports.example/incidents/INC-77/report.md"}
    assert hook["headers"]["x-agentops-signature-256"].startswith("sha256=") and hook["headers"]["content-type"] == "application/json"
    assert hook["headers"]["user-agent"] == "agentops.runbooks/1.2.3"

    slack = body_json(server.of("/slack")[0])
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "section", "context"]
    assert slack["blocks"][0]["text"]["text"] == "SEV-1: incident INC-77"
    assert "*Probable root cause:*\n1. *One application holds most PostgreSQL connections* (`pg.pool_hog` on db-1)" in \
        slack["blocks"][2]["text"]["text"]
    assert "*First fix:* Cap the indexer's pool" in slack["blocks"][3]["text"]["text"]

    event = body_json(server.of("/pagerduty")[0])
    assert (event["event_action"], event["dedup_key"], event["payload"]["severity"]) == ("trigger", "INC-77", "critical")
    assert event["payload"]["custom_details"]["counts"]["by_rule"] == {"log.pg_connections": 1, "pg.pool_hog": 1}
    assert results[2]["id"] == "INC-77"

    create, attach = server.of("/jira")
    assert (create["method"], create["path"]) == ("POST", "/jira/rest/api/2/issue")
    fields = body_json(create)["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["summary"].startswith("[SEV-1] INC-77: One application holds")
    assert attach["path"] == "/jira/rest/api/2/issue/%s/attachments" % results[3]["id"]
    assert attach["headers"]["x-atlassian-token"] == "no-check"
    name, content = multipart_file(attach)
    assert name == "report.md" and content.startswith("# Incident INC-77: SEV-1") and LEAKED not in content
    assert results[3]["url"] == "%s/jira/browse/%s" % (server.url, results[3]["id"])

    create, attach = server.of("/snow")
    assert body_json(create)["correlation_id"] == "INC-77" and body_json(create)["impact"] == "1"
    assert attach["path"] == "/snow/api/now/attachment/file"
    assert attach["query"] == {"table_name": "incident", "table_sys_id": results[4]["sys_id"], "file_name": "report.md"}
    assert attach["body"].decode().startswith("# Incident INC-77: SEV-1")
    assert results[4]["id"].startswith("INC00100")

    assert_no_secret_on_the_wire(server)
    dumped = json.dumps(results, ensure_ascii=False)
    assert not any(secret in dumped for secret in SECRETS + (SLACK_PATH, HOOK_PATH))


# ------------------------------------------------------------------ retries and the deadline, for real
def test_retries_on_500_and_429_honouring_retry_after(server):
    server.script("/slack", 500, (429, {"Retry-After": "1"}))
    server.script("/pagerduty", (503, {}, b"upstream"), 502)
    results = notify.deliver(sev1_report(), {"slack_webhook_url": server.url + SLACK_PATH, "pagerduty_routing_key": ROUTING,
                                             "pagerduty_url": server.url + "/pagerduty/v2/enqueue"})
    slack, pagerduty = results
    assert slack["ok"] and slack["attempts"] == 3 and pagerduty["ok"] and pagerduty["attempts"] == 3, results
    times = [r["time"] for r in server.of("/slack")]
    assert times[2] - times[1] >= 0.95, "Retry-After: 1 was not honoured"
    assert 0.2 <= times[1] - times[0] <= 2.0  # the first backoff: 0.25-0.5 s with jitter (plus a busy machine's delays)
    assert len(server.of("/pagerduty")) == 3 and body_json(server.of("/pagerduty")[2])["dedup_key"] == "INC-77"


def test_a_slow_server_is_given_up_at_the_deadline(server):
    server.script("/slack", *[{"delay": 4, "status": 200, "body": b"ok"}] * 5)
    started = time.monotonic()
    result = notify.deliver(sev1_report(), {"slack_webhook_url": server.url + SLACK_PATH, "deadline": 3, "timeout": 1})[0]
    elapsed = time.monotonic() - started
    assert not result["ok"] and result["status"] is None and result["attempts"] >= 2
    assert result["error"].startswith("timed out"), result
    assert elapsed < 3 + 1.5, elapsed


def test_nobody_listening_is_retried_until_the_deadline():
    with socket.socket() as sock:  # a port that was free a moment ago, with nobody listening now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = notify.deliver(sev1_report(), {"webhook_url": "http://127.0.0.1:%d/hook" % port, "deadline": 2})[0]
    assert time.monotonic() - started < 3.5  # the 2 s deadline, with room for a busy machine
    assert not result["ok"] and result["attempts"] >= 3 and result["error"].startswith("connection failed: Connection refused"), result


def test_a_redirect_is_not_followed(server):
    server.script("/hook", (307, {"Location": server.url + "/elsewhere"}, b""))
    result = notify.deliver(sev1_report(), {"webhook_url": server.url + HOOK_PATH})[0]
    assert not result["ok"] and result["status"] == 307 and "redirects are not followed" in result["error"]
    assert [r["path"] for r in server.requests] == [HOOK_PATH]


def test_a_refused_create_is_recorded_and_nothing_else_is_sent(server):
    server.script("/jira/rest/api/2/issue", (400, {"Content-Type": "application/json"},
                                             b'{"errors": {"issuetype": "Specify a valid issue type"}}'))
    result = notify.deliver(sev1_report(), {"jira_url": server.url + "/jira", "jira_token": JIRA_TOKEN, "jira_project": "OPS",
                                            "jira_issue_type": "Incident"})[0]
    assert not result["ok"] and result["status"] == 400 and result["attempts"] == 1
    assert result["error"] == 'HTTP 400: {"errors": {"issuetype": "Specify a valid issue type"}}'
    assert len(server.requests) == 1


# ------------------------------------------------------------------ TLS with a private CA
def _openssl(*args, cwd):
    run = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr


@pytest.fixture
def tls_server(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("the openssl CLI makes the test certificates")
    directory = str(tmp_path)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=agentops notify test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
             "-subj", "/CN=127.0.0.1", cwd=directory)
    with open(os.path.join(directory, "leaf.ext"), "w") as handle:
        handle.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                     "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "leaf.ext", "-out", "leaf.pem", cwd=directory)
    recorder = Recorder(certfile=os.path.join(directory, "leaf.pem"), keyfile=os.path.join(directory, "leaf.key"))
    recorder.ca = os.path.join(directory, "ca.pem")
    yield recorder
    recorder.close()


def test_https_with_the_private_ca_bundle(tls_server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    config = {"slack_webhook_url": tls_server.url + SLACK_PATH, "ca_bundle": tls_server.ca}
    result = notify.deliver(sev1_report(), config)[0]
    assert result["ok"] and result["status"] == 200, result
    assert body_json(tls_server.of("/slack")[0])["blocks"][0]["text"]["text"] == "SEV-1: incident INC-77"


def test_https_without_the_ca_bundle_fails_once_and_is_recorded(tls_server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    result = notify.deliver(sev1_report(), {"slack_webhook_url": tls_server.url + SLACK_PATH})[0]
    assert not result["ok"] and result["attempts"] == 1
    assert result["error"].startswith("TLS certificate verification failed (unable to get local issuer certificate)"), result
    assert "agentops_notify_ca_bundle" in result["error"]


# ------------------------------------------------------------------ one incident over two runs
def test_triggered_then_resolved_by_a_later_run(server, tmp_path):
    """Run 1 (SEV-1) pages and opens tickets, and its results are written into report.json; run 2 of the same incident id
    finds nothing: PagerDuty gets a resolve for the same dedup_key, the tickets get the new report, Slack says resolved."""
    config = every_sink(server.url)
    first = sev1_report()
    first["notifications"] = notify.deliver(first, config, paths={"markdown": str(tmp_path / "INC-77" / "report.md")})
    assert all(r["ok"] for r in first["notifications"])
    write_report(str(tmp_path), first)
    issue = first["notifications"][3]["id"]
    sys_id = first["notifications"][4]["sys_id"]
    server.requests.clear()

    second = quiet_report()
    assert notify.resolved(second)
    results = notify.deliver(second, config, previous=notify.previous_results(str(tmp_path), "INC-77"))
    assert [(r["kind"], r["action"], r["ok"]) for r in results] == [(k, "resolve", True) for k in notify.KINDS], results
    assert body_json(server.of("/pagerduty")[0]) == {"routing_key": ROUTING, "event_action": "resolve", "dedup_key": "INC-77"}
    assert body_json(server.of("/slack")[0])["blocks"][0]["text"]["text"] == "Resolved: incident INC-77"
    assert body_json(server.of("/hook")[0])["event"] == "resolve"
    assert [r["path"] for r in server.of("/jira")] == ["/jira/rest/api/2/issue/%s/comment" % issue, "/jira/rest/api/2/issue/%s/attachments" % issue]
    expected = [("PATCH", "/snow/api/now/table/incident/%s" % sys_id), ("POST", "/snow/api/now/attachment/file")]
    assert [(r["method"], r["path"]) for r in server.of("/snow")] == expected
    assert results[3]["updated"] and results[3]["id"] == issue
    assert_no_secret_on_the_wire(server)


# ------------------------------------------------------------------ through the real playbook, once the action calls deliver
WIRED = "notify.deliver" in open(os.path.join(REPO, "plugins", "action", "incident_report.py")).read()


@pytest.mark.skipif(not WIRED, reason="plugins/action/incident_report.py does not call notify.deliver yet (the integrator wires it)")
def test_the_diagnose_playbook_notifies_and_records_the_result(server, tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")
    secrets = tmp_path / "notify.json"  # from a file, as users should: a secret on a command line shows in ps (and in process facts)
    secrets.write_text(json.dumps({"agentops_notify_webhook_url": server.url + HOOK_PATH, "agentops_notify_slack_webhook_url": server.url + SLACK_PATH}))
    proc = subprocess.run([os.path.join(bin_dir, "ansible-playbook"), "playbooks/diagnose.yml", "-e", "agentops_report_dir=%s" % tmp_path,
                           "-e", "agentops_incident_id=INC-PB-1", "-e", "@%s" % secrets],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert body_json(server.of("/hook")[0])["incident_id"] == "INC-PB-1"
    report = json.loads((tmp_path / "INC-PB-1" / "report.json").read_text())
    assert [(r["kind"], r["ok"]) for r in report["notifications"]] == [("webhook", True), ("slack", True)]
    assert "Notified: webhook (127.0.0.1:%d/…/[REDACTED]): sent (HTTP 200, 1 attempt)" % server.server.server_address[1] in proc.stdout
    for name in os.listdir(str(tmp_path / "INC-PB-1")):
        text = (tmp_path / "INC-PB-1" / name).read_text()
        for secret in ("whk_0123456789abcdef", "slackWebhookToken0123456789"):
            assert secret not in proc.stdout + proc.stderr and secret not in text, (name, secret)
