"""Incident reports for the document and HTML renderers' tests.

``base_report()`` is what incident.incident_report builds today from host records (catalog findings made with
findings.make, as the collectors make them); ``full_report()`` adds the keys of issue 15's interface by hand
(root_cause, timeline, error_rates, memory_samples, pg_connections). Both carry hostile text from "the logs" (XSS,
Markdown, a fake table cell) so every renderer is tested against it. ``Page`` parses a rendered page (or Chromium's
DOM dump) into its elements, for the HTML tests.
"""
import copy
from html.parser import HTMLParser

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident

GENERATED_AT = "2026-11-25T03:20:00Z"
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
HOSTILE_COMPONENT = "api<b>|`[x](javascript:alert(1))"
HOSTILE_APP = '</svg><script>alert(2)</script>'


def _checks(*families):
    return dict((name, {"status": "ok", "changed": False, "incomplete": []}) for name in families)


def db_record():
    saturation = fm.make("pg.saturation", "critical", {
        "in_use": 9, "usable": 9, "used_percent": 100, "max_connections": 12, "superuser_reserved_connections": 3})
    hog = fm.make("pg.pool_hog", "high", {"application": "manager", "count": 8, "usable": 9, "share": 89, "idle": 7,
                                          "idle_in_transaction": 1, "clients": "10.0.0.7", "idle_caps": "pg_connections_idle_cap=2"},
                  subject="manager")
    facts = {"pg": {"slots": {"used_percent": 100, "usable": 9}, "by_application": {"manager": {"total": 8, "idle": 7}}}}
    return {"status": "ok", "findings": [saturation, hog], "facts": facts, "checks": _checks("host", "process", "pg")}


def web_record():
    too_many = fm.make("log.pg_connections", "high", {
        "count": 57, "first_seen": "2026-11-25T03:02:10Z", "last_seen": "2026-11-25T03:19:40Z", "components": "manager",
        "example": "error: sorry, too many clients already"})
    refused = fm.make("log.econnrefused", "high", {
        "count": 212, "first_seen": "2026-11-25T03:04:00Z", "last_seen": "2026-11-25T03:19:55Z", "components": HOSTILE_COMPONENT,
        "example": "connect ECONNREFUSED 10.0.0.7:8080 " + XSS, "ports": "8080", "likely_services": "manager", "port_filter": "sport = :8080"})
    rate = fm.make("log.error_rate", "critical", {
        "recent_error_percent": 62.5, "recent_entries": 240, "overall_error_percent": 20.1, "worst_components": "api 80.0% of 100",
        "affected_users": 37, "affected_conversations": 12, "first_seen": "2026-11-25T03:05:00Z", "last_seen": "2026-11-25T03:19:00Z",
        "outage": False, "file": "/var/log/agents/api.log"})
    old = fm.make("log.enospc", "high", {"count": 1, "first_seen": "2026-11-24T07:00:00Z", "last_seen": "2026-11-24T07:00:00Z",
                                         "components": "worker", "example": "ENOSPC: no space left on device"})
    facts = {"logs": {"affected": {"users": 37, "conversations": 12, "capped": False},
                      "error_rates": {"recent_entries": 240, "recent_error_percent": 62.5, "components": [],
                                      "errors_per_minute": [{"start": "2026-11-25T03:1%d:00Z" % m, "errors": 10 * m, "entries": 20 * m + 5}
                                                            for m in range(10)]}}}
    return {"status": "ok", "findings": [rate, too_many, refused, old], "facts": facts, "checks": _checks("host", "process", "logs")}


def base_report(generated_at=GENERATED_AT):
    """Today's shape: the real incident_report over three hosts, one of them unreachable."""
    hostvars = {"db-1": {"diagnose_result": db_record()}, "web-1": {"diagnose_result": web_record()}, "web-2": {}}
    return incident.incident_report(hostvars, ["db-1", "web-1", "web-2"], "INC-42", generated_at=generated_at, version="0.2.0")


def _index(report, host, rule):
    return next(i for i, f in enumerate(report["hosts"][host]["findings"]) if f["id"] == rule)


def _step(report, host, rule, line, first_seen):
    item = report["hosts"][host]["findings"][_index(report, host, rule)]
    return {"host": host, "rule": rule, "finding_index": _index(report, host, rule), "title": item["title"],
            "severity": item["severity"], "evidence_line": line, "first_seen": first_seen}


def full_report(generated_at=GENERATED_AT):
    """base_report plus the interface's root_cause, timeline, error_rates, memory_samples and pg_connections."""
    report = base_report(generated_at)
    for record in report["hosts"].values():  # the hand-made root cause below decides what is explained
        for item in record["findings"]:
            item.pop("explained_by", None)
    chain = [
        _step(report, "db-1", "pg.saturation", "PostgreSQL uses 9 of its 9 usable connection slots.", None),
        _step(report, "web-1", "log.pg_connections", "57 'sorry, too many clients already' errors from manager since 03:02.",
              "2026-11-25T03:02:10Z"),
        _step(report, "web-1", "log.econnrefused", "212 refused connections to 10.0.0.7:8080 " + XSS, "2026-11-25T03:04:00Z"),
    ]
    for step in chain[1:]:
        report["hosts"][step["host"]]["findings"][step["finding_index"]]["explained_by"] = {"host": "db-1", "rule": "pg.saturation"}
    first_fix = {"host": "db-1", "rule": "pg.saturation", "command": report["hosts"]["db-1"]["findings"][0]["fix"]["command"],
                 "summary": "Terminate idle-in-transaction sessions and cap the pool", "playbook": "agentops.runbooks.remediate_postgres"}
    alternative = {"chain": [_step(report, "db-1", "pg.pool_hog", "manager holds 8 of 9 slots.", None)], "explains_count": 1,
                   "first_fix": dict(first_fix, rule="pg.pool_hog"), "not_explained": [],
                   "whys": ["Why did the API fail? Because manager holds the slots."]}
    report["root_cause"] = {
        "chain": chain, "explains_count": 3, "first_fix": first_fix,
        "not_explained": [{"host": "web-1", "rule": "log.error_rate", "title": "High error rate in the logs"}],
        "whys": ["Why did requests fail? Because the API could not reach manager (ECONNREFUSED).",
                 "Why was manager unreachable? Because it crashed on 'too many clients' from PostgreSQL.",
                 "Why were there too many clients? Because manager holds 8 of the 9 usable slots " + XSS],
        "alternatives": [alternative],
    }
    report["timeline"] = [
        {"time": "2026-11-25T02:50:00Z", "host": "web-1", "kind": "process_start", "what": "node manager (pid 4242) started",
         "rule": None, "value": None, "component": "manager"},
        {"time": "2026-11-25T03:02:10Z", "host": "web-1", "kind": "first_seen", "what": "first 'too many clients' error",
         "rule": "log.pg_connections", "value": 57, "component": "manager"},
        {"time": "2026-11-25T03:04:00Z", "host": "web-1", "kind": "first_seen", "what": "first ECONNREFUSED " + XSS,
         "rule": "log.econnrefused", "value": 212, "component": HOSTILE_COMPONENT},
        {"time": "2026-11-25T03:10:00Z", "host": "web-1", "kind": "error_rate", "what": "api: 40 of 60 entries were errors",
         "rule": "log.error_rate", "value": 40, "component": "api"},
        {"time": "2026-11-25T03:12:30Z", "host": "web-1", "kind": "restart", "what": "manager restarted by pm2 (restart 4)",
         "rule": None, "value": 4, "component": "manager"},
        {"time": "2026-11-25T03:15:00Z", "host": "web-1", "kind": "deploy", "what": "release 2026.11.24 switched to 2026.11.25",
         "rule": None, "value": None, "component": None},
        {"time": GENERATED_AT, "host": None, "kind": "diagnosis", "what": "diagnosis: SEV-1", "rule": None, "value": None, "component": None},
    ]
    report["error_rates"] = {
        "api": [["2026-11-25T03:%02d:00Z" % m, e, 60] for m, e in zip(range(5, 20), (0, 2, 5, 9, 20, 40, 44, 50, 51, 55, 58, 57, 59, 60, 58))],
        HOSTILE_COMPONENT: [["2026-11-25T03:%02d:00Z" % m, e, 30] for m, e in zip(range(8, 20), (1, 1, 3, 8, 12, 15, 14, 20, 22, 25, 27, 29))],
        "worker": [["2026-11-25T03:%02d:00Z" % m, 0, 10] for m in range(5, 20)],
    }
    report["memory_samples"] = {
        "web-1 4242 node manager": {"samples_mb": [210.0, 214.1, 218.3, 221.9, 226.2, 230.0, 234.4, 238.1, 242.3, 246.0, 250.2, 254.1],
                                    "window_seconds": 55, "slope_mb_per_min": 47.9, "r_squared": 0.999},
        "web-1 4300 node " + HOSTILE_APP: {"samples_mb": [90.0, 90.5, 90.2, 90.4], "window_seconds": 3, "slope_mb_per_min": 4.1, "r_squared": 0.31},
    }
    report["pg_connections"] = {"db-1": [
        {"application": "manager", "state": "idle", "count": 7}, {"application": "manager", "state": "idle in transaction", "count": 1},
        {"application": "api", "state": "active", "count": 1}, {"application": HOSTILE_APP, "state": "idle", "count": 0},
    ]}
    return report


def without(report, *keys):
    """A copy of ``report`` without ``keys`` (absent interface parts)."""
    out = copy.deepcopy(report)
    for key in keys:
        out.pop(key, None)
    return out


class Page(HTMLParser):
    """Every element (tag, attributes, the ids of the elements it is in) and the page's text, as a browser parses it."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "source", "area", "base", "col", "embed", "param", "track"}

    def __init__(self, text):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.elements, self.stack, self.text, self.style = [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs, [a.get("id") for dummy, a in self.stack if a.get("id")]))
        if tag not in self.VOID:
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), [a.get("id") for dummy, a in self.stack if a.get("id")]))

    def handle_endtag(self, tag):
        if any(name == tag for name, dummy in self.stack):
            while self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "style":
            self.style.append(data)
        self.text.append(data)

    def within(self, element_id, tag, css_class=None):
        return [attrs for name, attrs, parents in self.elements if name == tag and element_id in parents
                and (css_class is None or css_class in (attrs.get("class") or "").split())]

    def by_id(self, element_id):
        return next(attrs for dummy, attrs, dummy in self.elements if attrs.get("id") == element_id)
