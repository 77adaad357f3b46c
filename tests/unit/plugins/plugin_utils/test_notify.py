"""The incident channel's pure parts (settings, payloads, secrets, retries) with a scripted transport and a fake clock;
the same sinks against a real local server are in tests/integration/test_notify_sinks.py."""
import base64
import email.utils
import json
import os
import socket
import ssl
import urllib.error

import pytest

from ansible_collections.agentops.runbooks.plugins.action.write_report import write_report
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, notify

SLACK = "https://hooks.slack.com/services/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789"
WEBHOOK = "https://hooks.example.com/agentops/whk_0123456789abcdef?sig=queryToken987654"
ROUTING = "R0utingKey0123456789abcdefABCDEF"
JIRA_TOKEN = "ATATT3xJiraToken0123456789"
SNOW_PASSWORD = "Sn0w-Password-42!"
HEADER_TOKEN = "hdrBearerToken0123456789"
SIGNING = "signingSecret0123456789"
SECRETS = (SLACK, "slackWebhookToken0123456789", WEBHOOK, "whk_0123456789abcdef", "queryToken987654", ROUTING, JIRA_TOKEN,
           SNOW_PASSWORD, HEADER_TOKEN, SIGNING)

CONFIG = {
    "webhook_url": WEBHOOK, "webhook_headers": {"Authorization": "Bearer " + HEADER_TOKEN}, "webhook_secret": SIGNING,
    "slack_webhook_url": SLACK,
    "pagerduty_routing_key": ROUTING,
    "jira_url": "https://acme.atlassian.net", "jira_user": "ops@example.com", "jira_token": JIRA_TOKEN, "jira_project": "OPS",
    "servicenow_url": "https://acme.service-now.com", "servicenow_user": "agentops", "servicenow_password": SNOW_PASSWORD,
}

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
    "not_explained": [{"host": "web-1", "rule": "proc.zombie", "title": "Zombie processes"}],
    "whys": ["Why did requests fail? Because PostgreSQL refused connections.", "Why? Because indexer held 85 of 97 slots."],
    "alternatives": [],
}


def record(*pairs):
    return {"status": "ok", "findings": [fm.make(rule, severity, evidence) for rule, severity, evidence in pairs], "facts": {}, "checks": {}}


def make_report(root_cause=True, evidence=None):
    hostvars = {
        "db-1": {"diagnose_result": record(("pg.pool_hog", "critical", dict({"application": "indexer"}, **(evidence or {}))))},
        "web-1": {"diagnose_result": record(("log.pg_connections", "high", {"count": 212}), ("proc.zombie", "low", {}))},
        "web-2": {},
    }
    report = incident.incident_report(hostvars, ["db-1", "web-1", "web-2"], "INC-42", generated_at="2026-11-25T03:15:00Z", version="1.2.3")
    if root_cause:
        report["root_cause"] = ROOT_CAUSE
    return report


def quiet_report():
    return incident.incident_report({"a": {"diagnose_result": record(("host.recent_reboot", "info", {}))}}, ["a"], "INC-42",
                                    generated_at="2026-11-25T04:00:00Z")


class Script(object):
    """A transport that answers from a list and records what it was sent; a fake clock that sleeping advances."""

    def __init__(self, *answers, default=(200, {}, b"{}")):
        self.answers = list(answers)
        self.default = default
        self.sent = []
        self.now = 1000.0
        self.sleeps = []

    def __call__(self, method, url, body, headers, timeout):
        self.sent.append({"method": method, "url": url, "body": body, "headers": headers, "timeout": timeout})
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(method, url, body)
        if isinstance(answer, int):
            return answer, {}, b"{}"
        return answer

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def send(script, config=None, report=None, **kwargs):
    return notify.deliver(report or make_report(), config, transport=script, clock=script.clock, sleep=script.sleep, **kwargs)


# ------------------------------------------------------------------ settings
def test_defaults_and_types():
    conf, problems = notify.settings({"slack_webhook_url": SLACK, "deadline": "12", "retries": "3", "allow_http": "no"})
    assert problems == []
    assert conf["deadline"] == 12.0 and conf["retries"] == 3 and conf["allow_http"] is False
    assert conf["pagerduty_url"] == "https://events.pagerduty.com/v2/enqueue" and conf["min_severity"] == "SEV-4"
    assert conf["timeout"] == 10.0 and conf["jira_issue_type"] == "Task"


@pytest.mark.parametrize("config, sentence", [
    ({"deadline": 0}, "agentops_notify_deadline must be between 1 and 600, got 0"),
    ({"deadline": "soon"}, "agentops_notify_deadline must be a number, got 'soon'"),
    ({"retries": 50}, "agentops_notify_retries must be between 0 and 20, got 50"),
    ({"timeout": True}, "agentops_notify_timeout must be a number"),
    ({"min_severity": "SEV-5"}, "agentops_notify_min_severity must be one of SEV-1, SEV-2, SEV-3, SEV-4, got 'SEV-5'"),
    ({"allow_http": "maybe"}, "agentops_notify_allow_http must be true or false, got 'maybe'"),
    ({"webhook_url": "http://hooks.example.com/x"}, "agentops_notify_webhook_url is plain http to hooks.example.com: use https"),
    ({"slack_webhook_url": "ftp://hooks.slack.com/secretpart"}, "agentops_notify_slack_webhook_url must be an https:// URL."),
    ({"jira_url": "https://acme.atlassian.net", "jira_project": "OPS"}, "set agentops_notify_jira_token and agentops_notify_jira_project"),
    ({"servicenow_url": "https://acme.service-now.com"}, "set agentops_notify_servicenow_user and agentops_notify_servicenow_password"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "agentops_notify_ca_bundle: /nonexistent/ca.pem is not a file"),
    ({"webhook_headers": {"X-Token": "a\r\nInjected: 1"}}, "agentops_notify_webhook_headers: header X-Token must be a one-line string"),
    ({"jira_fields": ["priority"]}, "agentops_notify_jira_fields must be a mapping"),
])
def test_bad_settings_are_one_sentence_each(config, sentence):
    problems = notify.check(config)
    assert any(sentence in p for p in problems), problems


def test_a_problem_never_quotes_a_secret_url():
    problems = notify.check({"slack_webhook_url": "ftp://hooks.slack.com/services/T0/B0/secretpart", "webhook_url": "http://x.example/tok3n"})
    assert problems and not any("secretpart" in p or "tok3n" in p for p in problems)


def test_plain_http_is_allowed_to_loopback_or_when_asked():
    assert notify.check({"webhook_url": "http://127.0.0.1:8080/hook"}) == []
    assert notify.check({"webhook_url": "http://[::1]:8080/hook"}) == []
    assert notify.check({"webhook_url": "http://hooks.internal/hook", "allow_http": True}) == []


def test_a_bad_ca_bundle_is_refused(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    assert "holds no usable PEM certificate" in notify.check({"ca_bundle": str(bundle)})[0]


def test_config_from_vars_prefers_the_role_variable_and_templates():
    task_vars = {"agentops_notify_slack_webhook_url": "{{ vault_slack }}", "incident_report_notify_deadline": 5,
                 "agentops_notify_deadline": 99, "agentops_notify_retries": "{{ undefined_thing }}", "unrelated": 1}

    def template(value):
        if value == "{{ vault_slack }}":
            return SLACK
        if isinstance(value, str) and "undefined" in value:
            raise ValueError("undefined")
        return value
    assert notify.config_from_vars(task_vars, template) == {"slack_webhook_url": SLACK, "deadline": 5}


def test_configured_sinks_and_no_sink_sends_nothing():
    assert notify.configured(CONFIG) == ["webhook", "slack", "pagerduty", "jira", "servicenow"]
    script = Script()
    assert send(script, {}) == [] and send(script, {"slack_webhook_url": "  "}) == [] and script.sent == []


def test_every_variable_is_documented_with_type_default_and_no_log():
    for key, (kind, default, no_log, description) in notify.VARIABLES.items():
        assert kind in ("str", "path", "bool", "dict", "int", "float") and isinstance(no_log, bool) and description.endswith(".")
        assert notify.settings({})[0][key] == default
    secret = sorted(k for k, v in notify.VARIABLES.items() if v[2])
    assert secret == ["jira_token", "pagerduty_routing_key", "servicenow_password", "slack_webhook_url", "webhook_headers",
                      "webhook_secret", "webhook_url"]


# ------------------------------------------------------------------ what is said
@pytest.mark.parametrize("hosts, severity, expected", [
    ({"a": {"status": "ok", "findings": []}}, "SEV-4", True),
    ({"a": {"status": "ok", "findings": [{"id": "host.recent_reboot", "severity": "info"}]}}, "SEV-4", True),
    ({"a": {"status": "ok", "findings": [{"id": "proc.zombie", "severity": "low"}]}}, "SEV-4", False),
    ({"a": {"status": "partial", "findings": [{"id": "host.check_incomplete", "severity": "unknown"}]}}, "SEV-4", False),
    ({"a": {"status": "unreachable", "findings": []}}, "SEV-4", False),
    ({"a": {"status": "ok", "findings": []}}, "SEV-3", False),
])
def test_resolved_only_when_nothing_but_info_was_found(hosts, severity, expected):
    assert notify.resolved({"severity": severity, "hosts": hosts}) is expected


def test_summary_carries_what_the_issue_asks_for():
    data = notify.summary(make_report(), paths={"markdown": "/r/INC-42/report.md"}, report_url="https://r.example/INC-42/")
    for key in ("incident_id", "severity", "root_cause", "counts", "hosts", "report", "first_fix", "verdict", "event"):
        assert key in data
    assert data["incident_id"] == "INC-42" and data["severity"] == "SEV-1" and data["event"] == "trigger"
    assert data["counts"]["findings_by_severity"]["critical"] == 2  # pg.pool_hog and web-2's diagnose.unreachable
    assert data["counts"]["hosts"]["unreachable"] == 1 and data["counts"]["by_rule"]["log.pg_connections"] == 1
    assert data["hosts"]["web-2"]["status"] == "unreachable" and data["hosts"]["web-1"]["rules"] == ["log.pg_connections"]
    assert [s["rule"] for s in data["root_cause"]["chain"]] == ["pg.pool_hog", "log.pg_connections"]
    assert data["first_fix"]["command"].startswith("ansible-playbook agentops.runbooks.remediate_postgres")
    assert data["report"] == {"paths": {"markdown": "/r/INC-42/report.md"}, "url": "https://r.example/INC-42/"}
    assert "full_report" not in data
    assert notify.summary(make_report(), include_report=True)["full_report"]["incident_id"] == "INC-42"


def test_without_a_root_cause_the_first_fix_is_the_worst_finding():
    data = notify.summary(make_report(root_cause=False))
    assert data["root_cause"] is None
    assert data["first_fix"]["rule"] == "pg.pool_hog" and data["first_fix"]["host"] == "db-1"
    assert "none identified" in notify.slack_message(data)["blocks"][2]["text"]["text"]


def test_report_link():
    report = {"incident_id": "INC-42"}
    assert notify.report_link(report, report_url="https://up.example/x") == "https://up.example/x"
    assert notify.report_link(report, {"html": "/r/report.html"}, base_url="https://r.example/inc/") == "https://r.example/inc/INC-42/report.html"
    assert notify.report_link(report, {}, base_url="https://r.example/inc") == "https://r.example/inc/INC-42/report.md"
    assert notify.report_link(report) is None


def test_slack_blocks_verdict_root_cause_first_fix_and_escaping():
    report = make_report()
    report["root_cause"] = dict(ROOT_CAUSE, chain=[dict(ROOT_CAUSE["chain"][0], evidence_line="<script>&<@U123>")] + ROOT_CAUSE["chain"][1:])
    message = notify.slack_message(notify.summary(report, report_url="https://r.example/INC-42/report.html"))
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "section", "section", "context"]
    assert message["blocks"][0]["text"]["text"] == "SEV-1: incident INC-42"
    assert message["blocks"][1]["text"]["text"].startswith("*Verdict:* SEV-1 - ")
    cause = message["blocks"][2]["text"]["text"]
    assert "1. *One application holds most PostgreSQL connections* (`pg.pool_hog` on db-1)" in cause
    assert "&lt;script&gt;&amp;&lt;@U123&gt;" in cause and "<script>" not in cause
    assert "```ansible-playbook agentops.runbooks.remediate_postgres -e app=indexer```" in message["blocks"][3]["text"]["text"]
    assert message["blocks"][4]["elements"][0]["text"].startswith("<https://r.example/INC-42/report.html|Incident report>")
    assert message["text"].startswith("[SEV-1] INC-42: One application holds most PostgreSQL connections on db-1")


def test_slack_resolved_message():
    message = notify.slack_message(notify.summary(quiet_report(), action="resolve"))
    assert message["blocks"][0]["text"]["text"] == "Resolved: incident INC-42"
    assert not any("First fix" in json.dumps(b) for b in message["blocks"])


@pytest.mark.parametrize("severity, expected", [("SEV-1", "critical"), ("SEV-2", "error"), ("SEV-3", "warning"), ("SEV-4", "info")])
def test_pagerduty_severity_from_sev(severity, expected):
    data = dict(notify.summary(make_report()), severity=severity)
    assert notify.pagerduty_event(data, "k", "INC-42")["payload"]["severity"] == expected


def test_pagerduty_trigger_and_resolve_events():
    data = notify.summary(make_report(), report_url="https://r.example/INC-42/")
    event = notify.pagerduty_event(data, "key", "INC-42")
    assert event["event_action"] == "trigger" and event["dedup_key"] == "INC-42" and event["routing_key"] == "key"
    payload = event["payload"]
    assert payload["summary"].startswith("[SEV-1] INC-42: One application holds") and len(payload["summary"]) <= 1024
    assert payload["source"] == "db-1, web-1, web-2" and payload["class"] == "pg.pool_hog" and payload["component"] == "db-1"
    assert payload["timestamp"] == "2026-11-25T03:15:00Z"
    assert payload["custom_details"]["root_cause"]["chain"][0]["rule"] == "pg.pool_hog"
    assert event["links"] == [{"href": "https://r.example/INC-42/", "text": "Incident report INC-42"}]
    resolve = notify.pagerduty_event(dict(data, event="resolve"), "key", "INC-42")
    assert resolve == {"routing_key": "key", "event_action": "resolve", "dedup_key": "INC-42"}


def test_ticket_bodies():
    data = notify.summary(make_report())
    issue = notify.jira_issue(data, "OPS", "Incident", {"priority": {"name": "Highest"}})["fields"]
    assert issue["project"] == {"key": "OPS"} and issue["issuetype"] == {"name": "Incident"} and issue["priority"] == {"name": "Highest"}
    assert issue["labels"] == ["agentops", "agentops-SEV-1", "agentops-incident-INC-42"] and "\n" not in issue["summary"]
    assert "Probable root cause: One application holds most PostgreSQL connections (pg.pool_hog on db-1) -> " in issue["description"]
    assert "First fix: ansible-playbook agentops.runbooks.remediate_postgres -e app=indexer - Cap" in issue["description"]
    snow = notify.servicenow_incident(data, {"assignment_group": "SRE"})
    assert (snow["impact"], snow["urgency"], snow["correlation_id"], snow["assignment_group"]) == ("1", "1", "INC-42", "SRE")
    assert len(snow["short_description"]) <= 160


# ------------------------------------------------------------------ deliveries
def by_url(script, needle):
    return [s for s in script.sent if needle in s["url"]]


def answers(method, url, body):
    if url.endswith("/rest/api/2/issue"):
        return 201, {}, b'{"id": "10001", "key": "OPS-7"}'
    if url.endswith("/api/now/table/incident"):
        return 201, {}, b'{"result": {"sys_id": "abc123", "number": "INC0010007"}}'
    if "pagerduty" in url:
        return 202, {}, b'{"status": "success", "dedup_key": "INC-42"}'
    return 200, {}, b"{}"


def test_every_sink_once_with_its_own_request():
    script = Script(default=answers)
    results = send(script, CONFIG, paths={"markdown": "/r/INC-42/report.md"})
    assert [r["kind"] for r in results] == ["webhook", "slack", "pagerduty", "jira", "servicenow"]
    assert all(r["ok"] and r["error"] is None for r in results), results
    assert [(r["kind"], r["id"]) for r in results if r["id"]] == [("pagerduty", "INC-42"), ("jira", "OPS-7"), ("servicenow", "INC0010007")]
    hook = by_url(script, "hooks.example.com")[0]
    assert hook["url"] == WEBHOOK and hook["headers"]["Authorization"] == "Bearer " + HEADER_TOKEN
    assert hook["headers"]["X-Agentops-Signature-256"].startswith("sha256=") and hook["headers"]["X-Agentops-Event"] == "trigger"
    jira = by_url(script, "atlassian")
    assert [s["url"] for s in jira] == ["https://acme.atlassian.net/rest/api/2/issue", "https://acme.atlassian.net/rest/api/2/issue/OPS-7/attachments"]
    assert jira[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(("ops@example.com:" + JIRA_TOKEN).encode()).decode()
    assert jira[1]["headers"]["X-Atlassian-Token"] == "no-check" and b'filename="report.md"' in jira[1]["body"]
    snow = by_url(script, "service-now")
    assert snow[1]["url"] == ("https://acme.service-now.com/api/now/attachment/file?table_name=incident&table_sys_id=abc123&file_name=report.md")
    assert snow[1]["body"].startswith(b"# Incident INC-42: SEV-1")


def test_webhook_signature_is_an_hmac_of_the_body():
    import hashlib
    import hmac
    script = Script()
    send(script, {"webhook_url": WEBHOOK, "webhook_secret": SIGNING})
    sent = script.sent[0]
    assert sent["headers"]["X-Agentops-Signature-256"] == "sha256=" + hmac.new(SIGNING.encode(), sent["body"], hashlib.sha256).hexdigest()


def test_webhook_credentials_in_the_url_go_to_an_authorization_header():
    script = Script()
    send(script, {"webhook_url": "https://bot:p%40ss-w0rd@hooks.example.com/in"})
    assert script.sent[0]["url"] == "https://hooks.example.com/in"
    assert script.sent[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"bot:p@ss-w0rd").decode()


def test_jira_server_token_is_a_bearer():
    script = Script(default=answers)
    send(script, {"jira_url": "https://jira.internal", "jira_token": JIRA_TOKEN, "jira_project": "OPS"})
    assert script.sent[0]["headers"]["Authorization"] == "Bearer " + JIRA_TOKEN


def test_no_secret_in_any_payload_or_result():
    """Secrets of the configuration, and a secret in the report itself, never leave in a payload or a result."""
    report = make_report(evidence={"line": "Authorization: Bearer sk-ant-api03-" + "A" * 40 + " posted to " + SLACK})
    report["root_cause"] = dict(ROOT_CAUSE, whys=ROOT_CAUSE["whys"] + ["Why? password=hunter2-secret in the DSN of " + WEBHOOK])
    script = Script(default=answers)
    results = send(script, CONFIG, report=report)
    assert all(r["ok"] for r in results)
    for sent in script.sent:
        body = sent["body"].decode("utf-8")
        if "pagerduty" in sent["url"]:
            event = json.loads(body)
            assert event.pop("routing_key") == ROUTING  # the one place the API needs it
            body = json.dumps(event)
        for secret in SECRETS + ("sk-ant-api03-" + "A" * 40, "hunter2-secret"):
            assert secret not in body, (sent["url"], secret)
    dumped = json.dumps(results, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in dumped
    assert "slack (hooks.slack.com/…/[REDACTED])" in dumped and "webhook (hooks.example.com/…/[REDACTED])" in dumped


def test_an_error_body_that_echoes_a_secret_is_scrubbed():
    script = Script((400, {}, ("invalid_token for " + SLACK).encode()))
    result = send(script, {"slack_webhook_url": SLACK})[0]
    assert not result["ok"] and result["status"] == 400 and SLACK not in result["error"] and "[REDACTED]" in result["error"]


# ------------------------------------------------------------------ retries
def test_retries_500_with_growing_jittered_backoff():
    script = Script(500, 502, 503, 200)
    result = send(script, {"slack_webhook_url": SLACK})[0]
    assert result["ok"] and result["attempts"] == 4 and result["status"] == 200
    bounds = [(0.25, 0.5), (0.5, 1.0), (1.0, 2.0)]
    assert len(script.sleeps) == 3 and all(low <= s <= high for s, (low, high) in zip(script.sleeps, bounds)), script.sleeps


def test_429_honours_retry_after_seconds_and_dates():
    script = Script((429, {"retry-after": "7"}, b""), 200)
    assert send(script, {"slack_webhook_url": SLACK})[0]["ok"] and script.sleeps == [7.0]
    script = Script((429, {"retry-after": email.utils.formatdate(notify.time.time() + 3, usegmt=True)}, b""), 200)
    assert send(script, {"slack_webhook_url": SLACK})[0]["ok"] and 1.5 <= script.sleeps[0] <= 3.5


def test_retry_after_past_the_deadline_gives_up_at_once():
    script = Script((429, {"retry-after": "120"}, b""))
    result = send(script, {"slack_webhook_url": SLACK, "deadline": 30})[0]
    assert not result["ok"] and result["attempts"] == 1 and script.sleeps == []
    assert result["error"] == "HTTP 429; the next retry (in 120.0 s, Retry-After) would pass the deadline"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_not_retried(status):
    script = Script((status, {}, b'{"error": "no_service"}'))
    result = send(script, {"slack_webhook_url": SLACK})[0]
    assert not result["ok"] and result["attempts"] == 1 and result["status"] == status
    assert result["error"] == 'HTTP %d: {"error": "no_service"}' % status


def test_a_redirect_is_not_followed():
    script = Script((302, {"location": "https://elsewhere.example/"}, b""))
    result = send(script, {"webhook_url": WEBHOOK})[0]
    assert not result["ok"] and result["attempts"] == 1 and "redirects are not followed" in result["error"]


def test_retries_stop_at_the_retry_count_and_the_deadline():
    script = Script(default=(500, {}, b"oops"))
    result = send(script, {"slack_webhook_url": SLACK, "retries": 2})[0]
    assert result["attempts"] == 3 and result["error"] == "HTTP 500: oops; gave up after 3 attempt(s)"
    script = Script(default=(503, {}, b""))
    result = send(script, {"slack_webhook_url": SLACK, "retries": 20, "deadline": 10})[0]
    assert not result["ok"] and "would pass the deadline" in result["error"] and script.now - 1000.0 <= 10


def test_every_request_timeout_fits_in_what_is_left_of_the_deadline():
    script = Script(500, 500, 200)
    send(script, {"slack_webhook_url": SLACK, "deadline": 5, "timeout": 10})
    timeouts = [s["timeout"] for s in script.sent]
    assert timeouts[0] == 5 and all(t < 5 for t in timeouts[1:])


@pytest.mark.parametrize("error", [
    urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
    urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
    urllib.error.URLError(socket.timeout("timed out")),
    ConnectionResetError(104, "Connection reset by peer"),
])
def test_connection_errors_are_retried(error):
    script = Script(error, 200)
    result = send(script, {"slack_webhook_url": SLACK})[0]
    assert result["ok"] and result["attempts"] == 2


def test_a_certificate_error_is_not_retried_and_names_the_ca_bundle_variable():
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    result = send(Script(urllib.error.URLError(error)), {"slack_webhook_url": SLACK})[0]
    assert not result["ok"] and result["attempts"] == 1
    assert result["error"] == ("TLS certificate verification failed (self-signed certificate); set agentops_notify_ca_bundle for a "
                               "private CA")


def test_a_ticket_is_not_created_twice_by_a_retry():
    """A time-out after the create may have reached Jira: it is not repeated; a refused connection is."""
    script = Script(urllib.error.URLError(socket.timeout("timed out")), default=answers)
    result = send(script, {"jira_url": "https://jira.internal", "jira_token": JIRA_TOKEN, "jira_project": "OPS"})[0]
    assert not result["ok"] and result["attempts"] == 1 and "not repeated: the server may have created it" in result["error"]
    script = Script(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), default=answers)
    result = send(script, {"jira_url": "https://jira.internal", "jira_token": JIRA_TOKEN, "jira_project": "OPS"})[0]
    assert result["ok"] and result["attempts"] == 3 and result["id"] == "OPS-7"


def test_a_failed_attachment_keeps_the_ticket_in_the_result():
    script = Script(answers, (403, {}, b"attachments disabled"), default=answers)
    result = send(script, {"jira_url": "https://jira.internal", "jira_token": JIRA_TOKEN, "jira_project": "OPS"})[0]
    assert not result["ok"] and result["id"] == "OPS-7" and result["url"] == "https://jira.internal/browse/OPS-7"
    assert result["error"] == "issue OPS-7 created, but attaching report.md failed: HTTP 403: attachments disabled"


def test_one_failing_sink_does_not_stop_the_others():
    def flaky(method, url, body):
        if "slack" in url:
            raise RuntimeError("boom")
        return answers(method, url, body)
    results = send(Script(default=flaky), CONFIG)
    assert [r["ok"] for r in results] == [True, False, True, True, True]
    assert results[1]["error"] == "internal error: RuntimeError: boom"


def test_deliver_never_raises_on_a_broken_report():
    results = notify.deliver({"severity": "SEV-9"}, {"slack_webhook_url": SLACK}, transport=Script())
    assert len(results) == 1 and results[0]["ok"] is False and results[0]["error"].startswith("internal error")
    assert SLACK not in json.dumps(results)
    results = notify.deliver(make_report(), {"slack_webhook_url": SLACK, "deadline": -1}, transport=Script())
    assert results[0]["error"] == "agentops_notify_deadline must be between 1 and 600, got -1.0." and results[0]["attempts"] == 0


# ------------------------------------------------------------------ severity gate, resolve, earlier tickets
def test_below_min_severity_nothing_is_sent_but_a_resolve_always_is():
    report = make_report()
    report["severity"] = "SEV-3"
    script = Script()
    results = send(script, {"slack_webhook_url": SLACK, "min_severity": "sev-2"}, report=report)
    assert script.sent == [] and results[0]["ok"] and results[0]["skipped"] == "SEV-3 is below agentops_notify_min_severity (SEV-2)"
    script = Script(default=answers)
    results = send(script, {"pagerduty_routing_key": ROUTING, "min_severity": "SEV-1"}, report=quiet_report())
    assert results[0]["action"] == "resolve" and results[0]["ok"] and json.loads(script.sent[0]["body"])["event_action"] == "resolve"


def test_resolve_is_decided_from_the_report_or_forced():
    script = Script(default=answers)
    results = send(script, dict(CONFIG), report=quiet_report())
    assert [r["action"] for r in results] == ["resolve"] * 5
    assert json.loads(by_url(script, "pagerduty")[0]["body"]) == {"routing_key": ROUTING, "event_action": "resolve", "dedup_key": "INC-42"}
    assert json.loads(by_url(script, "hooks.example.com")[0]["body"])["event"] == "resolve"
    quiet = [r for r in results if r["kind"] in ("slack", "jira", "servicenow")]  # nothing was posted or opened before
    assert all(r["ok"] and r["skipped"].startswith("nothing to resolve") for r in quiet)
    assert not by_url(script, "atlassian") and not by_url(script, "service-now") and not by_url(script, "slack")
    script = Script(default=answers)
    send(script, {"pagerduty_routing_key": ROUTING, "pagerduty_dedup_key": "alert-77"}, report=make_report(), action="resolve")
    assert json.loads(script.sent[0]["body"])["dedup_key"] == "alert-77"


def test_an_earlier_ticket_of_the_same_incident_gets_the_new_report():
    first = send(Script(default=answers), CONFIG)
    script = Script(default=answers)
    results = send(script, CONFIG, report=quiet_report(), previous=first)
    jira = by_url(script, "atlassian")
    assert [s["url"] for s in jira] == ["https://acme.atlassian.net/rest/api/2/issue/OPS-7/comment",
                                        "https://acme.atlassian.net/rest/api/2/issue/OPS-7/attachments"]
    assert "looks resolved" in json.loads(jira[0]["body"])["body"]
    snow = by_url(script, "service-now")
    assert snow[0]["method"] == "PATCH" and snow[0]["url"] == "https://acme.service-now.com/api/now/table/incident/abc123"
    assert "work_notes" in json.loads(snow[0]["body"])
    assert json.loads(by_url(script, "slack")[0]["body"])["blocks"][0]["text"]["text"] == "Resolved: incident INC-42"
    tickets = dict((r["kind"], r) for r in results)
    assert tickets["jira"]["updated"] and tickets["jira"]["id"] == "OPS-7" and tickets["servicenow"]["id"] == "INC0010007"


def test_an_earlier_ticket_in_another_project_is_not_reused():
    first = send(Script(default=answers), CONFIG)
    script = Script(default=answers)
    send(script, dict(CONFIG, jira_project="SEC"), previous=first)
    assert by_url(script, "atlassian")[0]["url"] == "https://acme.atlassian.net/rest/api/2/issue"


def test_previous_results_read_back_from_the_report_directory(tmp_path):
    report = make_report()
    report["notifications"] = send(Script(default=answers), CONFIG)
    write_report(str(tmp_path), report)
    earlier = notify.previous_results(str(tmp_path), "INC-42")
    assert [r["kind"] for r in earlier] == ["webhook", "slack", "pagerduty", "jira", "servicenow"]
    assert notify.previous_results(str(tmp_path), "INC-404") == []
    os.makedirs(str(tmp_path / "linked"))
    os.symlink(str(tmp_path / "INC-42" / "report.json"), str(tmp_path / "linked" / "report.json"))
    assert notify.previous_results(str(tmp_path), "linked") == []


def test_describe_and_markdown_lines():
    results = send(Script(default=answers), CONFIG)
    lines = notify.markdown_lines(results)
    assert lines[0] == "## Notifications"
    assert "- slack (hooks.slack.com/…/[REDACTED]): sent (HTTP 200, 1 attempt)" in lines
    assert "- jira (acme.atlassian.net, project OPS): sent (HTTP 200, 2 attempts) - OPS-7 https://acme.atlassian.net/browse/OPS-7" in lines
    failed = dict(results[1], ok=False, error="HTTP 500: oops; gave up after 6 attempt(s)", attempts=6)
    assert notify.describe(failed) == "slack (hooks.slack.com/…/[REDACTED]): FAILED - HTTP 500: oops; gave up after 6 attempt(s) (6 attempts)"
    assert notify.markdown_lines([]) == []


def test_without_secrets_cleans_a_report_that_caught_one_elsewhere():
    """A routing key passed on a command line lands in the process facts; the report is written without it."""
    report = make_report(evidence={"cmdline": "ansible-playbook -e agentops_notify_pagerduty_routing_key=%s -e x=%s" % (ROUTING, SLACK)})
    cleaned = notify.without_secrets(report, CONFIG)
    dumped = json.dumps(cleaned)
    assert ROUTING not in dumped and SLACK not in dumped and "slackWebhookToken0123456789" not in dumped
    assert "agentops_notify_pagerduty_routing_key=[REDACTED]" in dumped
    assert cleaned["incident_id"] == "INC-42" and cleaned["summary"] == report["summary"]
    assert notify.without_secrets(report, {}) == report


def test_time_outs_until_the_deadline_say_so():
    clock = Script()
    timeouts = []

    def slow(method, url, body, headers, timeout):
        timeouts.append(timeout)
        clock.now += timeout  # each attempt takes its whole timeout
        raise urllib.error.URLError(socket.timeout("timed out"))
    result = notify.deliver(make_report(), {"slack_webhook_url": SLACK, "deadline": 10, "timeout": 4}, transport=slow, clock=clock.clock,
                            sleep=clock.sleep)[0]
    script = clock
    assert not result["ok"] and result["error"].startswith("timed out; ") and "deadline" in result["error"]
    assert script.now - 1000.0 <= 10 + 0.01 and result["attempts"] == len(timeouts) >= 2 and timeouts[0] == 4
