# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The incident channel: deliver a finished report to the sinks the user configured, on the controller.

Sinks, each optional and turned on by its variables (:data:`VARIABLES`, ``agentops_notify_*``):

* **webhook** (``agentops_notify_webhook_url``): ``POST`` of a JSON summary (:func:`summary`: incident id, event,
  severity, verdict, root cause, first fix, counts, hosts, the report's paths and link; the whole report with
  ``agentops_notify_webhook_include_report``), optionally signed (``X-Agentops-Signature-256: sha256=<HMAC>``);
* **slack** (``agentops_notify_slack_webhook_url``): an incoming-webhook message with blocks: verdict, probable root
  cause, first fix, link; "resolved" only for an incident an earlier run posted (not once per quiet run);
* **pagerduty** (``agentops_notify_pagerduty_routing_key``): Events API v2 ``trigger`` with ``dedup_key`` = the incident
  id, severity from the SEV (SEV-1 critical, SEV-2 error, SEV-3 warning, SEV-4 info) and the summary as
  ``custom_details``; ``resolve`` for the same ``dedup_key`` when the report shows the incident over (:func:`resolved`);
* **jira** (``agentops_notify_jira_url`` + project + token): an issue (``POST /rest/api/2/issue``) with report.md
  attached; **servicenow** (``agentops_notify_servicenow_url`` + user + password): an incident
  (``POST /api/now/table/incident``) with report.md attached. When an earlier run of the same incident id
  already opened the ticket (``previous``, from that run's report.json), the new report is attached to it with a
  comment (a work note) instead of opening a second one.

Every payload is built from the report and passes through the redaction engine (``Redactor.data``), then the sinks'
own secrets (URL tokens, routing key, tokens, passwords, header values) are cut out of it; the results name a sink
without its secrets (``slack (hooks.slack.com/…/[REDACTED])``). Sinks run in parallel, each retrying 429 (honouring
``Retry-After``), 5xx and connection errors with exponential backoff and jitter, all within one deadline
(``agentops_notify_deadline``). A ticket is never created twice by a retry: a request that may have reached the
server (a time-out, a reset) is not repeated for a create. Redirects are not followed (a credential would go to the
new place). :func:`deliver` never raises: each sink gives one result ``{sink, kind, action, ok, status, attempts,
error, id, url}`` for the report's ``notifications``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import datetime
import email.utils
import hashlib
import hmac
import ipaddress
import json
import os
import random
import socket
import threading
import time
import urllib.parse
import uuid

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import redact, safefile

SEVERITY_LEVELS = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
PAGERDUTY_SEVERITY = {"SEV-1": "critical", "SEV-2": "error", "SEV-3": "warning", "SEV-4": "info"}
# ServiceNow computes the priority from impact x urgency: 1/1 -> P1, 1/2 -> P2, 2/2 -> P3, 3/2 -> P4.
SERVICENOW_IMPACT_URGENCY = {"SEV-1": ("1", "1"), "SEV-2": ("1", "2"), "SEV-3": ("2", "2"), "SEV-4": ("3", "2")}
KINDS = ("webhook", "slack", "pagerduty", "jira", "servicenow")
SCHEMA = "agentops.runbooks/notify/v1"
REDACTED = "[REDACTED]"
BACKOFF_BASE = 0.5   # seconds before the first retry (then doubled, with jitter, up to BACKOFF_CAP)
BACKOFF_CAP = 8.0
MAX_BODY = 65536     # bytes of a response we read
ERROR_SNIPPET = 200  # characters of a response body quoted in an error

# suffix -> (type, default, no_log, description). Each is the role variable incident_report_notify_<suffix>, defaulting
# to agentops_notify_<suffix>; :func:`config_from_vars` reads them the same way.
VARIABLES = {
    "webhook_url": ("str", "", True, "URL that receives a POST of the JSON summary of every report. Empty: no webhook."),
    "webhook_headers": ("dict", {}, True, "Extra HTTP headers for the webhook (for example Authorization)."),
    "webhook_secret": ("str", "", True, "Key of an HMAC-SHA256 of the body, sent as X-Agentops-Signature-256: sha256=<hex>."),
    "webhook_include_report": ("bool", False, False, "Put the whole (redacted) report in the webhook's JSON under full_report."),
    "slack_webhook_url": ("str", "", True, "Slack incoming-webhook URL. Empty: no Slack message."),
    "pagerduty_routing_key": ("str", "", True, "PagerDuty Events API v2 integration (routing) key. Empty: no PagerDuty event."),
    "pagerduty_url": ("str", "https://events.pagerduty.com/v2/enqueue", False, "PagerDuty Events API v2 endpoint."),
    "pagerduty_dedup_key": ("str", "", False, "dedup_key of the PagerDuty alert. Empty: the incident id."),
    "jira_url": ("str", "", False, "Jira base URL (https://example.atlassian.net). Empty: no Jira issue."),
    "jira_user": ("str", "", False, "Jira Cloud account e-mail (basic auth with the token); empty: the token is a bearer "
                                    "personal access token (Jira Server/Data Center)."),
    "jira_token": ("str", "", True, "Jira API token or personal access token."),
    "jira_project": ("str", "", False, "Key of the Jira project that gets the issue (OPS)."),
    "jira_issue_type": ("str", "Task", False, "Issue type name of the Jira issue."),
    "jira_fields": ("dict", {}, False, "Extra fields of the Jira issue (priority, components, custom fields), as the REST API takes them."),
    "servicenow_url": ("str", "", False, "ServiceNow instance URL (https://acme.service-now.com). Empty: no ServiceNow incident."),
    "servicenow_user": ("str", "", False, "ServiceNow user of the integration."),
    "servicenow_password": ("str", "", True, "Password of agentops_notify_servicenow_user."),
    "servicenow_fields": ("dict", {}, False, "Extra fields of the ServiceNow incident (assignment_group, category, cmdb_ci)."),
    "ca_bundle": ("path", "", False, "PEM file of extra CA certificates trusted for the sinks (private endpoints), besides the system's."),
    "deadline": ("float", 30, False, "Seconds all deliveries together may take, retries included (1-600)."),
    "timeout": ("float", 10, False, "Seconds one HTTP request may take (1-120), within the deadline."),
    "retries": ("int", 5, False, "Retries of one request after a 429, 5xx or connection error (0-20), within the deadline."),
    "min_severity": ("str", "SEV-4", False, "Least severe SEV that notifies (SEV-1..SEV-4); resolves are always sent."),
    "report_base_url": ("str", "", False, "URL under which incident directories are served; the link sent is "
                                          "<report_base_url>/<incident id>/report.html (report.md without the HTML report)."),
    "allow_http": ("bool", False, False, "Allow plain http:// sink URLs to other hosts than loopback (credentials travel in clear)."),
}
RANGES = {"deadline": (1, 600), "timeout": (1, 120), "retries": (0, 20)}
TURNED_ON_BY = {"webhook": "webhook_url", "slack": "slack_webhook_url", "pagerduty": "pagerduty_routing_key",
                "jira": "jira_url", "servicenow": "servicenow_url"}
URL_KEYS = ("webhook_url", "slack_webhook_url", "pagerduty_url", "jira_url", "servicenow_url", "report_base_url")


def variable(key):
    """The user's variable name of a setting (``agentops_notify_deadline``)."""
    return "agentops_notify_" + key


# ------------------------------------------------------------------ settings
def _number(value, kind):
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
    return int(value) if kind == "int" else float(value)


def settings(config):
    """``(settings, problems)``: ``config`` ({suffix: value}, missing ones take their default) checked and typed.

    ``problems`` are sentences naming the user's variable, never a secret's value; with any, nothing is sent."""
    from ansible_collections.agentops.runbooks.plugins.plugin_utils import variables  # the one reading of a boolean

    config = config if isinstance(config, dict) else {}
    out, problems = {}, []
    for key, (kind, default, dummy, dummy2) in VARIABLES.items():
        value = config.get(key)
        if value is None or (isinstance(value, str) and not value.strip() and kind != "str"):
            value = copy.deepcopy(default)
        if kind in ("str", "path"):
            if not isinstance(value, str):
                problems.append("%s must be a string." % variable(key))
                value = ""
            value = value.strip()
        elif kind == "bool":
            parsed = variables.flag(value)
            if parsed is None:
                problems.append("%s must be true or false, got %r." % (variable(key), value))
                parsed = default
            value = parsed
        elif kind == "dict":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                problems.append("%s must be a mapping." % variable(key))
                value = {}
        else:
            try:
                value = _number(value, kind)
            except (TypeError, ValueError):
                problems.append("%s must be a number, got %r." % (variable(key), value))
                value = default
            low, high = RANGES[key]
            if not low <= value <= high:
                problems.append("%s must be between %s and %s, got %s." % (variable(key), low, high, value))
                value = default
        out[key] = value
    if out["min_severity"].upper() not in SEVERITY_LEVELS:
        problems.append("%s must be one of %s, got %r." % (variable("min_severity"), ", ".join(SEVERITY_LEVELS), out["min_severity"]))
        out["min_severity"] = "SEV-4"
    out["min_severity"] = out["min_severity"].upper()
    for key in URL_KEYS:
        if out[key]:
            problem = _url_problem(out[key], out["allow_http"], shown=variable(key), secret=VARIABLES[key][2])
            if problem:
                problems.append(problem)
    for name, value in out["webhook_headers"].items():
        if not isinstance(value, (str, int, float)) or any(c in str(value) + name for c in "\r\n"):
            problems.append("%s: header %s must be a one-line string." % (variable("webhook_headers"), name))
    if out["jira_url"] and not (out["jira_token"] and out["jira_project"]):
        problems.append("agentops_notify_jira_url is set: set agentops_notify_jira_token and agentops_notify_jira_project too.")
    if out["servicenow_url"] and not (out["servicenow_user"] and out["servicenow_password"]):
        problems.append("agentops_notify_servicenow_url is set: set agentops_notify_servicenow_user and agentops_notify_servicenow_password too.")
    if out["ca_bundle"]:
        path = os.path.expanduser(out["ca_bundle"])
        if not os.path.isfile(path):
            problems.append("%s: %s is not a file." % (variable("ca_bundle"), out["ca_bundle"]))
        else:
            import ssl  # pylint: disable=import-outside-toplevel  # only with a CA bundle: the report without sinks loads no TLS
            try:
                ssl.create_default_context().load_verify_locations(cafile=path)
            except (ssl.SSLError, OSError) as exc:
                problems.append("%s: %s holds no usable PEM certificate (%s)." % (variable("ca_bundle"), out["ca_bundle"], exc))
        out["ca_bundle"] = path
    return out, problems


def check(config):
    """The problems of a notify configuration (for the action to stop the play before anything runs)."""
    return settings(config)[1]


def _loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_problem(url, allow_http, shown, secret):
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError on a bad port
    except ValueError:
        return "%s is not a valid URL." % shown
    what = "" if secret else " (%s)" % url
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "%s must be an https:// URL%s." % (shown, what)
    if parts.scheme == "http" and not allow_http and not _loopback(parts.hostname):
        return "%s is plain http to %s: use https, or set agentops_notify_allow_http: true." % (shown, parts.hostname)
    return None


def config_from_vars(task_vars, template=None):
    """``{suffix: value}`` from the play's variables: ``incident_report_notify_<suffix>`` (the role's), else
    ``agentops_notify_<suffix>``, else nothing (the default). ``template`` (the action's templar.template) resolves
    values that are still templates; a value that fails to template is left out (its default applies)."""
    out = {}
    task_vars = task_vars or {}
    for key in VARIABLES:
        for name in ("incident_report_notify_" + key, variable(key)):
            if name not in task_vars:
                continue
            value = task_vars[name]
            if template is not None:
                try:
                    value = template(value)
                except Exception:  # pylint: disable=broad-except  # an undefined template: the default applies
                    continue
            out[key] = value
            break
    return out


def configured(config):
    """The sink kinds that ``config`` turns on, in delivery order."""
    config = config or {}
    return [kind for kind in KINDS if isinstance(config.get(TURNED_ON_BY[kind]), str) and config[TURNED_ON_BY[kind]].strip()]


# ------------------------------------------------------------------ what is said
def resolved(report):
    """True when the report shows the incident over: SEV-4, no unreachable host, and no finding but ``info``
    (a check that could not run, ``unknown``, is not proof that all is well)."""
    if report.get("severity") != "SEV-4":
        return False
    for record in (report.get("hosts") or {}).values():
        if not isinstance(record, dict) or record.get("status") == "unreachable":
            return False
        if any(f.get("severity") != "info" for f in record.get("findings") or [] if isinstance(f, dict)):
            return False
    return True


def _first_fix(report):
    root = report.get("root_cause")
    if isinstance(root, dict) and isinstance(root.get("first_fix"), dict):
        fix = root["first_fix"]
        return dict((k, fix.get(k)) for k in ("host", "rule", "command", "summary", "playbook"))
    from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident  # pure; imported late: it is large

    try:
        item, host = incident.first_fix(report)
    except (KeyError, TypeError, AttributeError):
        item, host = None, None
    if item is None:
        return None
    fix = item.get("fix") or {}
    return {"host": host, "rule": item.get("id"), "command": fix.get("command"), "summary": fix.get("summary") or item.get("title"),
            "playbook": fix.get("playbook")}


def _root_cause(report):
    root = report.get("root_cause")
    if not isinstance(root, dict):
        return None
    chain = [dict((k, step.get(k)) for k in ("host", "rule", "title", "severity", "evidence_line", "first_seen"))
             for step in root.get("chain") or [] if isinstance(step, dict)]
    return {"chain": chain, "explains_count": root.get("explains_count"),
            "not_explained": [dict((k, n.get(k)) for k in ("host", "rule", "title")) for n in root.get("not_explained") or []
                              if isinstance(n, dict)],
            "whys": [str(w) for w in root.get("whys") or []]}


def report_link(report, paths=None, report_url=None, base_url=None):
    """The link to the report sent to people: ``report_url`` (an upload's URL), else one under ``base_url``."""
    if report_url:
        return report_url
    if base_url:
        name = "report.html" if (paths or {}).get("html") else "report.md"
        return "%s/%s/%s" % (base_url.rstrip("/"), urllib.parse.quote(str(report.get("incident_id"))), name)
    return None


def summary(report, paths=None, report_url=None, action="trigger", include_report=False):
    """The JSON summary of a report every sink is built from (before redaction)."""
    hosts = {}
    for name, record in sorted((report.get("hosts") or {}).items()):
        found = [f for f in record.get("findings") or [] if isinstance(f, dict)]
        hosts[name] = {"status": record.get("status"), "worst": fm.worst(found) if found else None, "findings": len(found),
                       "rules": sorted(set(f.get("id") for f in found if f.get("severity") not in ("info", "low")))[:10]}
    counts = report.get("summary") or {}
    out = {
        "schema": SCHEMA,
        "event": action,
        "incident_id": str(report.get("incident_id")),
        "severity": report.get("severity"),
        "verdict": report.get("verdict") or report.get("severity"),
        "severity_reason": report.get("severity_reason"),
        "generated_at": report.get("generated_at"),
        "visibility": report.get("visibility"),
        "not_checked": len(report.get("not_checked") or []),
        "affected": report.get("affected") or {},
        "counts": {"findings_by_severity": counts.get("by_severity") or {}, "hosts": counts.get("hosts") or {},
                   "by_rule": counts.get("by_rule") or {}},
        "hosts": hosts,
        "root_cause": _root_cause(report),
        "first_fix": _first_fix(report),
        "report": {"paths": dict(paths or {}), "url": report_url},
        "generator": report.get("generator") or {},
    }
    if include_report:
        out["full_report"] = report
    return out


def headline(data, limit=250):
    """One line for a title: ``[SEV-2] INC-1: PostgreSQL saturated ... on db-1``."""
    if data["event"] == "resolve":
        text = "[resolved] %s: %s" % (data["incident_id"], data.get("severity_reason") or "no findings")
    else:
        chain = (data.get("root_cause") or {}).get("chain") or []
        what = "%s on %s" % (chain[0]["title"], chain[0]["host"]) if chain else data.get("severity_reason") or ""
        text = "[%s] %s: %s" % (data["severity"], data["incident_id"], what)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _chain_text(data):
    chain = (data.get("root_cause") or {}).get("chain") or []
    return " -> ".join("%s (%s on %s)" % (s.get("title"), s.get("rule"), s.get("host")) for s in chain)


def _fix_text(fix):
    if not fix:
        return None
    return "%s%s (%s on %s)" % (fix.get("command") + " - " if fix.get("command") else "", fix.get("summary") or "",
                                fix.get("rule"), fix.get("host"))


def text_summary(data):
    """Plain text for a ticket's description or comment."""
    counts = data["counts"]
    hosts = counts.get("hosts") or {}
    by_sev = ", ".join("%d %s" % (n, s) for s, n in (counts.get("findings_by_severity") or {}).items() if n) or "none"
    lines = ["Verdict: %s - %s." % (data["verdict"], data.get("severity_reason")),
             "Hosts: %s diagnosed (%s unreachable, %s partial). Findings: %s." % (
                 hosts.get("total", len(data["hosts"])), hosts.get("unreachable", 0), hosts.get("partial", 0), by_sev)]
    if data["event"] == "resolve":
        lines.append("Re-diagnosed: no findings on any host - the incident looks resolved.")
    chain = _chain_text(data)
    lines.append("Probable root cause: %s" % (chain or "none identified"))
    for why in (data.get("root_cause") or {}).get("whys") or []:
        lines.append("  " + why)
    fix = _fix_text(data.get("first_fix"))
    lines.append("First fix: %s" % (fix or "none needed"))
    for name, host in data["hosts"].items():
        rules = ": " + ", ".join(host["rules"]) if host["rules"] else ""
        lines.append("- %s: %s, worst %s, %d finding(s)%s" % (name, host["status"], host["worst"] or "none", host["findings"], rules))
    where = data["report"].get("url") or (data["report"].get("paths") or {}).get("markdown")
    if where:
        lines.append("Report: %s" % where)
    lines.append("Incident id: %s (generated %s by %s)" % (data["incident_id"], data.get("generated_at"), "agentops.runbooks"))
    return "\n".join(lines)


def _slack_escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text, limit):
    return text if len(text) <= limit else text[:limit - 1] + "…"


def slack_message(data):
    """The Slack incoming-webhook body: blocks for the verdict, the root cause and the first fix, plus a link."""
    counts = data["counts"]
    by_sev = ", ".join("%d %s" % (n, s) for s, n in (counts.get("findings_by_severity") or {}).items() if n) or "no findings"
    hosts = counts.get("hosts") or {}
    resolve = data["event"] == "resolve"
    title = ("Resolved: incident %s" if resolve else "%s: incident %%s" % data["severity"]) % data["incident_id"]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut("*Verdict:* %s - %s.\n*Hosts:* %s (%s unreachable, %s partial) - %s" % (
            _slack_escape(data["verdict"]), _slack_escape(data.get("severity_reason")), hosts.get("total", len(data["hosts"])),
            hosts.get("unreachable", 0), hosts.get("partial", 0), _slack_escape(by_sev)), 3000)}},
    ]
    chain = (data.get("root_cause") or {}).get("chain") or []
    if chain:
        steps = []
        for number, step in enumerate(chain, 1):
            line = "%d. *%s* (`%s` on %s)" % (number, _slack_escape(step.get("title")), _slack_escape(step.get("rule")), _slack_escape(step.get("host")))
            if step.get("evidence_line"):
                line += " - " + _slack_escape(step["evidence_line"])
            steps.append(line)
        cause = "*Probable root cause:*\n" + "\n".join(steps)
    else:
        cause = "*Probable root cause:* none identified" if not resolve else "*Probable root cause:* nothing left to explain"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(cause, 3000)}})
    fix = data.get("first_fix")
    if fix and not resolve:
        text = "*First fix:* %s (`%s` on %s)" % (_slack_escape(fix.get("summary") or ""), _slack_escape(fix.get("rule")), _slack_escape(fix.get("host")))
        if fix.get("command"):
            text += "\n```%s```" % _slack_escape(fix["command"])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}})
    where = data["report"].get("url")
    path = (data["report"].get("paths") or {}).get("markdown")
    context = "<%s|Incident report>" % where if where else ("Report: %s" % _slack_escape(path) if path else "agentops.runbooks")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context + " - generated %s" % data.get("generated_at"), 3000)}]})
    return {"text": _cut(headline(data), 3000), "blocks": blocks}


def pagerduty_event(data, routing_key, dedup_key):
    """A PagerDuty Events API v2 event: trigger (with the summary) or resolve."""
    if data["event"] == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    chain = (data.get("root_cause") or {}).get("chain") or []
    fix = data.get("first_fix") or {}
    details = dict((k, data[k]) for k in ("incident_id", "verdict", "severity_reason", "counts", "hosts", "root_cause", "first_fix", "report"))
    event = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": _cut(headline(data, 1024), 1024),
            "source": _cut(", ".join(sorted(data["hosts"])) or "agentops.runbooks", 255),
            "severity": PAGERDUTY_SEVERITY.get(data["severity"], "error"),
            "timestamp": data.get("generated_at"),
            "component": chain[0]["host"] if chain else fix.get("host"),
            "group": "agentops.runbooks",
            "class": chain[0]["rule"] if chain else fix.get("rule"),
            "custom_details": details,
        },
        "client": "agentops.runbooks",
    }
    if data["report"].get("url"):
        event["client_url"] = data["report"]["url"]
        event["links"] = [{"href": data["report"]["url"], "text": "Incident report %s" % data["incident_id"]}]
    return event


def jira_issue(data, project, issue_type, fields=None):
    """The body of POST /rest/api/2/issue."""
    body = {"project": {"key": project}, "issuetype": {"name": issue_type}, "summary": headline(data, 250),
            "description": text_summary(data) + "\n\nThe full report is attached (report.md).",
            "labels": ["agentops", "agentops-%s" % data["severity"], "agentops-incident-%s" % data["incident_id"]]}
    body.update(fields or {})
    return {"fields": body}


def servicenow_incident(data, fields=None):
    """The body of POST /api/now/table/incident."""
    impact, urgency = SERVICENOW_IMPACT_URGENCY.get(data["severity"], ("2", "2"))
    body = {"short_description": headline(data, 160), "description": text_summary(data), "impact": impact, "urgency": urgency,
            "correlation_id": data["incident_id"], "correlation_display": "agentops.runbooks"}
    body.update(fields or {})
    return body


# ------------------------------------------------------------------ secrets
def _secrets(conf):
    """The sinks' own secrets as they could appear in a text (whole, and the token parts of secret URLs)."""
    out = set()
    for key, (kind, dummy, no_log, dummy2) in VARIABLES.items():
        value = conf.get(key)
        if not no_log or not value:
            continue
        if kind == "dict":
            out.update(str(v) for v in value.values())
            for v in value.values():  # "Bearer abc...": the token alone too
                out.update(part for part in str(v).split() if len(part) >= 8)
            continue
        out.add(value)
        if key.endswith("_url"):
            parts = urllib.parse.urlsplit(value)
            if parts.password:
                out.add(parts.password)
            tail = parts.path + ("?" + parts.query if parts.query else "")
            if len(tail) >= 8:
                out.add(tail)
            segments = [s for s in parts.path.split("/") if s]
            out.update(s for s in segments[-1:] + [s for s in segments if len(s) >= 16] if len(s) >= 6)
            out.update(v for dummy3, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 6)
    if conf.get("jira_token") and conf.get("jira_user"):
        out.add(base64.b64encode(("%s:%s" % (conf["jira_user"], conf["jira_token"])).encode()).decode())
    if conf.get("servicenow_password"):
        out.add(base64.b64encode(("%s:%s" % (conf["servicenow_user"], conf["servicenow_password"])).encode()).decode())
    return sorted((s for s in out if len(s) >= 4), key=len, reverse=True)


def scrub(value, secrets):
    """``value`` (a string or JSON-like structure) with each of ``secrets`` replaced by [REDACTED]."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return dict((scrub(k, secrets), scrub(v, secrets)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


def without_secrets(value, config):
    """``value`` (the report, a result, a message) with every secret of the notify ``config`` replaced by [REDACTED]: the
    action passes the report through it before writing, so a routing key or webhook token that reached the report some
    other way (a command line in the process facts) does not stay there."""
    try:
        return scrub(value, _secrets(settings(config)[0]))
    except Exception:  # pylint: disable=broad-except  # a bad configuration is reported by check(); never fail here
        return value


def label(kind, conf):
    """How a result names its sink, without a secret."""
    if kind in ("webhook", "slack"):
        parts = urllib.parse.urlsplit(conf[TURNED_ON_BY[kind]])
        where = parts.hostname or "?"
        if parts.port:
            where += ":%d" % parts.port
        if parts.path.strip("/") or parts.query:
            where += "/…/" + REDACTED
        return "%s (%s)" % (kind, where)
    if kind == "pagerduty":
        return "pagerduty (%s)" % (urllib.parse.urlsplit(conf["pagerduty_url"]).netloc.rpartition("@")[2])
    if kind == "jira":
        return "jira (%s, project %s)" % (urllib.parse.urlsplit(conf["jira_url"]).netloc.rpartition("@")[2], conf["jira_project"])
    return "servicenow (%s)" % urllib.parse.urlsplit(conf["servicenow_url"]).netloc.rpartition("@")[2]


# ------------------------------------------------------------------ transport
# http.client, ssl and urllib.request are imported by the functions that send (a report without sinks or upload
# does not load TLS: ~20 ms of every run).
def urllib_transport(ca_bundle=None, max_body=None):
    """``send(method, url, body, headers, timeout) -> (status, headers, body)`` over urllib: the system's CA
    certificates plus ``ca_bundle``, no redirects, proxies from the environment, at most ``max_body`` bytes of an
    answer (MAX_BODY: a sink's short answer). An HTTP error status is returned, not raised; a connection that fails
    raises OSError or http.client.HTTPException."""
    import http.client  # pylint: disable=import-outside-toplevel
    import ssl  # pylint: disable=import-outside-toplevel
    import urllib.error  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """Never follow a redirect: the request's credentials would go to wherever it points."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None
    max_body = max_body or MAX_BODY
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)

    def send(method, url, body, headers, timeout):
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, dict((k.lower(), v) for k, v in response.headers.items()), response.read(max_body)
        except urllib.error.HTTPError as exc:
            try:
                data = exc.read(MAX_BODY)
            except (OSError, http.client.HTTPException):
                data = b""
            finally:
                exc.close()
            return exc.code, dict((k.lower(), v) for k, v in (exc.headers or {}).items()), data
    return send


class DeliveryError(Exception):
    def __init__(self, message, status=None):
        super(DeliveryError, self).__init__(message)
        self.status = status


class _Partial(DeliveryError):
    """The ticket exists but a later step failed: the result keeps its id and link."""

    def __init__(self, known, message, status=None):
        super(_Partial, self).__init__(message, status)
        self.known = known


def _retry_after(value, now):
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)


def _connection_error(exc):
    """(sentence, retry, maybe_sent) for a request that got no HTTP answer."""
    import http.client  # pylint: disable=import-outside-toplevel
    import ssl  # pylint: disable=import-outside-toplevel
    import urllib.error  # pylint: disable=import-outside-toplevel
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed (%s); set agentops_notify_ca_bundle for a private CA" % (
            reason.verify_message or reason), False, False
    if isinstance(reason, ssl.SSLError):
        return "TLS error: %s" % reason, False, False
    if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
        return "connection failed: %s" % (reason.strerror or reason), True, False
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out", True, True
    if isinstance(reason, (OSError, http.client.HTTPException)):
        return "connection failed: %s" % (getattr(reason, "strerror", None) or reason or type(reason).__name__), True, True
    return "connection failed: %s" % reason, True, True


def _snippet(body):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    text = " ".join(text.split())
    return text[:ERROR_SNIPPET] + ("..." if len(text) > ERROR_SNIPPET else "")


class Sender(object):
    """Requests of one sink, with retries and backoff, within the deadline shared by every sink."""

    def __init__(self, transport, deadline_at, timeout, retries, clock, sleep, rng):
        self.transport, self.deadline_at, self.timeout, self.retries = transport, deadline_at, timeout, retries
        self.clock, self.sleep, self.rng = clock, sleep, rng
        self.attempts = 0
        self.status = None

    def _backoff(self, retry):
        step = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** retry))
        return self.rng.uniform(step / 2, step)

    def send(self, method, url, body, headers, creates=False):
        """(status, headers, body) of the first 2xx answer; raises DeliveryError otherwise.

        ``creates``: the request makes something (a ticket) that a repeat would make twice, so a request that may have
        reached the server (time-out, reset) is not repeated."""
        import http.client  # pylint: disable=import-outside-toplevel
        retry = 0
        message = None
        while True:
            remaining = self.deadline_at - self.clock()
            if remaining <= 0.05:
                raise DeliveryError("%s; the deadline came before a retry" % message if message else
                                    "the deadline came before the first attempt", self.status)
            self.attempts += 1
            wait = None
            try:
                status, answer_headers, answer = self.transport(method, url, body, headers, min(self.timeout, remaining))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if isinstance(exc, ValueError) and not isinstance(exc, OSError):
                    raise DeliveryError("invalid request: %s" % exc)
                message, retryable, maybe_sent = _connection_error(exc)
                if not retryable or (creates and maybe_sent):
                    raise DeliveryError(message + ("; not repeated: the server may have created it" if creates and maybe_sent else ""))
            else:
                self.status = status
                if 200 <= status < 300:
                    return status, answer_headers, answer
                message = "HTTP %d%s" % (status, (": " + _snippet(answer)) if answer else "")
                if 300 <= status < 400:
                    raise DeliveryError(message + " (redirects are not followed: set the final URL)", status)
                if status != 429 and status < 500:
                    raise DeliveryError(message, status)
                if status == 429:
                    wait = _retry_after(answer_headers.get("retry-after"), time.time())
            if retry >= self.retries:
                raise DeliveryError("%s; gave up after %d attempt(s)" % (message, self.attempts), self.status)
            delay = wait if wait is not None else self._backoff(retry)
            remaining = self.deadline_at - self.clock()
            if delay >= remaining:
                raise DeliveryError("%s; the next retry (in %.1f s%s) would pass the deadline" % (
                    message, delay, ", Retry-After" if wait is not None else ""), self.status)
            self.sleep(delay)
            retry += 1


def _json_body(value):
    return json.dumps(value, sort_keys=True, default=str).encode("utf-8")


def _answer_json(answer):
    try:
        value = json.loads(answer.decode("utf-8")) if answer else None
    except (ValueError, UnicodeDecodeError):
        return None
    return value


def _basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")


def _multipart(name, content, content_type):
    boundary = "agentops-" + uuid.uuid4().hex
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\nContent-Type: %s\r\n\r\n' % (
        boundary, name, content_type)).encode("utf-8")
    return head + content + ("\r\n--%s--\r\n" % boundary).encode("utf-8"), "multipart/form-data; boundary=%s" % boundary


# ------------------------------------------------------------------ sinks
def _webhook(job):
    conf, data = job["conf"], job["data"]
    url = conf["webhook_url"]
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": job["agent"], "X-Agentops-Event": data["event"],
               "X-Agentops-Delivery": job["delivery"]}
    if parts.username:  # https://user:password@host/...: urllib does not send it by itself
        headers["Authorization"] = _basic(urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))
    headers.update(dict((k, str(v)) for k, v in conf["webhook_headers"].items()))
    body = _json_body(data)
    if conf["webhook_secret"]:
        headers["X-Agentops-Signature-256"] = "sha256=" + hmac.new(conf["webhook_secret"].encode("utf-8"), body, hashlib.sha256).hexdigest()
    status, dummy, dummy2 = job["sender"].send("POST", url, body, headers)
    return {"status": status}


def _slack(job):
    if job["data"]["event"] == "resolve" and not any(isinstance(item, dict) and item.get("kind") == "slack" and item.get("ok")
                                                     and not item.get("skipped") for item in job["previous"] or []):
        return {"skipped": "nothing to resolve: no earlier run of this incident posted to Slack"}  # no "resolved" noise per quiet run
    body = _json_body(slack_message(job["data"]))
    status, dummy, dummy2 = job["sender"].send("POST", job["conf"]["slack_webhook_url"], body,
                                               {"Content-Type": "application/json", "User-Agent": job["agent"]})
    return {"status": status}


def _pagerduty(job):
    conf, data = job["conf"], job["data"]
    dedup = conf["pagerduty_dedup_key"] or data["incident_id"]
    event = pagerduty_event(data, conf["pagerduty_routing_key"], dedup)
    status, dummy, answer = job["sender"].send("POST", conf["pagerduty_url"], _json_body(event),
                                               {"Content-Type": "application/json", "User-Agent": job["agent"]})
    reply = _answer_json(answer) or {}
    return {"status": status, "id": reply.get("dedup_key") or dedup}


def _earlier(previous, kind, where):
    """The ticket an earlier run of this incident opened in the same place: its result, or None."""
    for item in previous or []:
        if isinstance(item, dict) and item.get("kind") == kind and item.get("id") and item.get("where") == where:
            return item
    return None


def _jira(job):
    conf, data, sender = job["conf"], job["data"], job["sender"]
    base = conf["jira_url"].rstrip("/")
    auth = _basic(conf["jira_user"], conf["jira_token"]) if conf["jira_user"] else "Bearer " + conf["jira_token"]
    headers = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": auth, "User-Agent": job["agent"]}
    earlier = _earlier(job["previous"], "jira", job["where"])
    out = {}
    if earlier:
        key = earlier["id"]
        out.update(id=key, url=earlier.get("url") or "%s/browse/%s" % (base, key), updated=True)
        status, dummy, dummy2 = sender.send("POST", "%s/rest/api/2/issue/%s/comment" % (base, urllib.parse.quote(key)),
                                            _json_body({"body": text_summary(data)}), headers)
    elif data["event"] == "resolve":
        return {"skipped": "nothing to resolve: no earlier run of this incident opened an issue"}
    else:
        issue = jira_issue(data, conf["jira_project"], conf["jira_issue_type"], job["fields"])
        status, dummy, answer = sender.send("POST", base + "/rest/api/2/issue", _json_body(issue), headers, creates=True)
        key = (_answer_json(answer) or {}).get("key")
        if not key:
            raise DeliveryError("Jira answered HTTP %d without an issue key" % status, status)
        out.update(id=key, url="%s/browse/%s" % (base, key))
    body, content_type = _multipart("report.md", job["markdown"], "text/markdown; charset=utf-8")
    try:
        status, dummy, dummy2 = sender.send("POST", "%s/rest/api/2/issue/%s/attachments" % (base, urllib.parse.quote(key)), body, {
            "Content-Type": content_type, "X-Atlassian-Token": "no-check", "Authorization": auth, "User-Agent": job["agent"]})
    except DeliveryError as exc:
        raise _Partial(out, "issue %s %s, but attaching report.md failed: %s" % (key, "updated" if earlier else "created", exc), exc.status)
    out["status"] = status
    return out


def _servicenow(job):
    conf, data, sender = job["conf"], job["data"], job["sender"]
    base = conf["servicenow_url"].rstrip("/")
    auth = _basic(conf["servicenow_user"], conf["servicenow_password"])
    headers = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": auth, "User-Agent": job["agent"]}
    earlier = _earlier(job["previous"], "servicenow", job["where"])
    out = {}
    if earlier and earlier.get("sys_id"):
        sys_id = earlier["sys_id"]
        out.update(id=earlier["id"], sys_id=sys_id, url=earlier.get("url"), updated=True)
        status, dummy, dummy2 = sender.send("PATCH", "%s/api/now/table/incident/%s" % (base, urllib.parse.quote(sys_id)),
                                            _json_body({"work_notes": text_summary(data)}), headers)
    elif data["event"] == "resolve":
        return {"skipped": "nothing to resolve: no earlier run of this incident opened an incident"}
    else:
        status, dummy, answer = sender.send("POST", base + "/api/now/table/incident", _json_body(servicenow_incident(data, job["fields"])),
                                            headers, creates=True)
        result = (_answer_json(answer) or {}).get("result") or {}
        sys_id = result.get("sys_id")
        if not sys_id:
            raise DeliveryError("ServiceNow answered HTTP %d without a sys_id" % status, status)
        out.update(id=result.get("number") or sys_id, sys_id=sys_id,
                   url="%s/nav_to.do?uri=%s" % (base, urllib.parse.quote("incident.do?sys_id=" + sys_id, safe="")))
    query = urllib.parse.urlencode({"table_name": "incident", "table_sys_id": sys_id, "file_name": "report.md"})
    try:
        status, dummy, dummy2 = sender.send("POST", "%s/api/now/attachment/file?%s" % (base, query), job["markdown"], {
            "Content-Type": "text/markdown", "Accept": "application/json", "Authorization": auth, "User-Agent": job["agent"]})
    except DeliveryError as exc:
        raise _Partial(out, "incident %s %s, but attaching report.md failed: %s" % (out["id"], "updated" if earlier else "created", exc), exc.status)
    out["status"] = status
    return out


SINKS = {"webhook": _webhook, "slack": _slack, "pagerduty": _pagerduty, "jira": _jira, "servicenow": _servicenow}


def _run(job, result):
    started = job["clock"]()
    try:
        outcome = SINKS[job["kind"]](job)
        result.update(outcome)
        if "skipped" in outcome:
            result.update(ok=True, status=None)
        else:
            result["ok"] = True
    except DeliveryError as exc:
        result.update(getattr(exc, "known", None) or {})
        result.update(ok=False, status=exc.status, error=str(exc))
    except Exception as exc:  # pylint: disable=broad-except  # a delivery never fails the diagnosis
        result.update(ok=False, error="internal error: %s: %s" % (type(exc).__name__, exc))
    result["attempts"] = job["sender"].attempts
    result["seconds"] = round(job["clock"]() - started, 3)


def _result(kind, conf, action, where):
    return {"sink": label(kind, conf) if conf else kind, "kind": kind, "where": where, "action": action, "ok": False, "status": None,
            "attempts": 0, "error": None, "id": None, "url": None}


def _where(kind, conf):
    """What identifies the place a ticket lives in, without a secret (for ``previous``)."""
    if kind == "jira":
        return "%s/%s" % (urllib.parse.urlsplit(conf["jira_url"]).netloc.rpartition("@")[2], conf["jira_project"])
    if kind == "servicenow":
        return urllib.parse.urlsplit(conf["servicenow_url"]).netloc.rpartition("@")[2]
    return None


def deliver(report, config, paths=None, report_url=None, action=None, previous=None, markdown=None,
            transport=None, clock=time.monotonic, sleep=time.sleep, rng=None):
    """Send ``report`` to every sink ``config`` turns on; return one result per sink (``[]`` when none). Never raises.

    ``config``: ``{suffix: value}`` of :data:`VARIABLES` (see :func:`config_from_vars`). ``paths``: write_report's
    paths of this report. ``report_url``: a link to the report (an upload's URL; else one is made from
    ``agentops_notify_report_base_url``). ``action``: ``"trigger"`` or ``"resolve"``; None decides from the report
    (:func:`resolved`). ``previous``: the ``notifications`` of an earlier run of the same incident id (its report.json,
    :func:`previous_results`), so tickets are updated rather than opened twice. ``markdown``: report.md's text (made
    from the report when None). ``transport``, ``clock``, ``sleep``, ``rng``: for tests.

    Result: ``{sink, kind, where, action, ok, status, attempts, error, id, url, seconds}`` (+ ``skipped`` with the reason
    when nothing had to be sent, ``updated`` when an earlier ticket got the report, ``sys_id`` for ServiceNow). No
    result holds a secret of the configuration.
    """
    results = []
    try:
        kinds = configured(config)
        if not kinds:
            return []
        conf, problems = settings(config)
        secrets = _secrets(conf)
        if action is None:
            action = "resolve" if resolved(report) else "trigger"
        if action not in ("trigger", "resolve"):
            problems = problems + ["notify action must be trigger or resolve, got %r." % (action,)]
        if problems:
            return [dict(_result(kind, None, action, None), error=scrub("; ".join(problems), secrets)) for kind in kinds]
        results = [_result(kind, conf, action, _where(kind, conf)) for kind in kinds]
        if action == "trigger" and SEVERITY_LEVELS.index(report.get("severity")) > SEVERITY_LEVELS.index(conf["min_severity"]):
            for result in results:
                result.update(ok=True, skipped="%s is below agentops_notify_min_severity (%s)" % (report.get("severity"), conf["min_severity"]))
            return results
        link = report_link(report, paths, report_url, conf["report_base_url"])
        redactor = redact.Redactor()
        data = scrub(redactor.data(summary(report, paths, link, action, conf["webhook_include_report"])), secrets)
        if markdown is None and any(k in ("jira", "servicenow") for k in kinds):
            markdown = _markdown(report)
        markdown = scrub(redactor.text(markdown or ""), secrets).encode("utf-8")
        transport = transport or urllib_transport(conf["ca_bundle"])
        deadline_at = clock() + conf["deadline"]
        rng = rng or random.Random()
        agent = "agentops.runbooks/%s" % ((report.get("generator") or {}).get("version") or "dev")
        delivery = str(uuid.uuid4())
        threads = []
        for result in results:
            kind = result["kind"]
            job = {"kind": kind, "conf": conf, "data": data, "markdown": markdown, "agent": agent, "delivery": delivery,
                   "previous": previous, "where": result["where"], "clock": clock,
                   "fields": conf.get(kind + "_fields"),
                   "sender": Sender(transport, deadline_at, conf["timeout"], conf["retries"], clock, sleep, random.Random(rng.random()))}
            thread = threading.Thread(target=_run, args=(job, result), name="agentops-notify-" + kind, daemon=True)
            thread.start()
            threads.append((thread, result))
        for thread, result in threads:
            thread.join(max(0.1, deadline_at - clock()) + conf["timeout"] + 1)
            if thread.is_alive():
                result.update(ok=False, error="still running past the deadline (%s s); left behind" % conf["deadline"])
        return [scrub(result, secrets) for result in results]
    except Exception as exc:  # pylint: disable=broad-except  # a delivery never fails the diagnosis
        text = "internal error: %s: %s" % (type(exc).__name__, exc)
        try:
            text = scrub(text, _secrets(settings(config)[0]))
        except Exception:  # pylint: disable=broad-except
            text = "internal error: %s" % type(exc).__name__
        if results:
            return [dict(r, ok=False, error=r.get("error") or text) for r in results]
        return [{"sink": "notify", "kind": None, "where": None, "action": action, "ok": False, "status": None, "attempts": 0,
                 "error": text, "id": None, "url": None}]


def _markdown(report):
    from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident

    try:
        return incident.report_markdown(report)
    except Exception:  # pylint: disable=broad-except  # attach the JSON rather than nothing
        return "```json\n%s\n```\n" % json.dumps(report, indent=2, sort_keys=True, default=str)


# ------------------------------------------------------------------ around the action
def previous_results(directory, incident_id):
    """The ``notifications`` of the report.json an earlier run of ``incident_id`` left under ``directory``; [] when
    there is none or it cannot be read (never through a symbolic link: safefile.open_read)."""
    path = os.path.join(os.path.abspath(os.path.expanduser(directory)), str(incident_id), "report.json")
    try:
        fd = safefile.open_read(path)
    except (OSError, ValueError):
        return []
    try:
        with os.fdopen(fd, "rb") as handle:
            earlier = json.loads(handle.read(64 * 1024 * 1024).decode("utf-8"))
    except (OSError, ValueError):
        return []
    found = earlier.get("notifications") if isinstance(earlier, dict) else None
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def describe(result):
    """One line for a result: ``slack (hooks.slack.com/…/[REDACTED]): sent (HTTP 200, 1 attempt)``."""
    attempts = result.get("attempts") or 0
    tries = "%d attempt%s" % (attempts, "" if attempts == 1 else "s")
    if result.get("ok") and result.get("skipped"):
        what = "not sent - %s" % result["skipped"]
    elif result.get("ok"):
        what = "%s (%s%s)" % ("resolved" if result.get("action") == "resolve" else "sent",
                              "HTTP %s, " % result["status"] if result.get("status") else "", tries)
        if result.get("id"):
            what += " - %s%s" % (result["id"], " " + result["url"] if result.get("url") else "")
    else:
        what = "FAILED - %s (%s)" % (result.get("error") or "unknown error", tries)
        if result.get("id"):
            what += " - %s%s" % (result["id"], " " + result["url"] if result.get("url") else "")
    return "%s: %s" % (result.get("sink"), what)


def markdown_lines(results):
    """report.md's section for the deliveries (empty when no sink is configured)."""
    if not results:
        return []
    return ["## Notifications", ""] + ["- %s" % describe(r).replace("`", "'") for r in results] + [""]
