#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_connection_facts
short_description: Audit PostgreSQL connections, idle transactions, lock chains and timeouts in one query
version_added: 0.1.0
description:
  - Reads C(pg_stat_activity), C(pg_settings) and C(pg_stat_database) in one SQL statement (plus one more for
    C(pg_stat_statements) when that extension is installed) and returns the measurements under RV(facts) and the
    C(pg.*) findings.
  - "Measures: server version; C(max_connections), C(superuser_reserved_connections) and (16+)
    C(reserved_connections); client backends in use against usable slots; sessions by state, application, user and
    client address; idle-in-transaction sessions aged from C(state_change); the longest active queries; blocked
    sessions folded into lock chains with their root blocker (C(pg_blocking_pids)); deadlocks and conflicts per
    database; the timeouts C(idle_in_transaction_session_timeout), C(idle_session_timeout), C(statement_timeout),
    C(lock_timeout); top statements from C(pg_stat_statements)."
  - A server that cannot be reached is a finding, not a failure. C(pg.too_many_clients) (critical) when the server
    refuses the connection for lack of slots, with both the PostgreSQL 15 and the 16+ wording of the reserved-slots
    error; C(pg.unreachable) (critical) classified as refused, auth, timeout, dns and so on.
  - Without C(pg_monitor) or C(pg_read_all_stats), other roles' sessions are hidden; that is reported as an
    C(unknown) C(pg.limited_privileges) finding, never as healthy.
  - Query texts (C(pg_stat_activity.query), C(pg_stat_statements.query)) are read whole, redacted on the host
    (passwords, tokens, keys, DSNs; the same engine as logs and bundles) and only then cut; a text the server already
    cut (C(track_activity_query_size)) loses its last, possibly partial word first. The whole result passes through the
    redaction engine once more before it is returned.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics
  - agentops.runbooks.diagnostics.redaction
  - agentops.runbooks.postgres
options:
  top_n:
    description: How many idle-in-transaction sessions, long queries and statements to list.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Audit the local server through its socket as postgres
  agentops.runbooks.pg_connection_facts:
    host: /var/run/postgresql
  become: true
  become_user: postgres

- name: Audit a remote server
  agentops.runbooks.pg_connection_facts:
    host: db.internal
    user: monitor
    password: "{{ vault_pg_monitor_password }}"
    database: app
    sslmode: require
  register: pg_audit
"""

RETURN = r"""
facts:
  description: Measurements. Only C(reachable), C(target) and C(error) when the server cannot be reached.
  returned: always
  type: dict
  contains:
    reachable:
      description: Whether the audit connected.
      type: bool
    client:
      description: The client used (psycopg, psycopg2 or psql).
      type: str
    server_version:
      description: Server version string.
      type: str
    slots:
      description: C(max_connections), C(superuser_reserved_connections), C(reserved_connections), C(usable), C(in_use), C(free), C(used_percent).
      type: dict
    by_state:
      description: Client sessions per state.
      type: dict
    by_application:
      description: Per application name, C(total) and counts per state.
      type: dict
    by_user:
      description: Client sessions per role.
      type: dict
    by_client:
      description: Client sessions per client address (C(local) for the Unix socket).
      type: dict
    idle_in_transaction:
      description: Idle-in-transaction sessions, oldest first.
      type: list
      elements: dict
    longest_active:
      description: Active, not blocked sessions, longest running first.
      type: list
      elements: dict
    lock_chains:
      description: Root blockers with the pids they block and the longest wait.
      type: list
      elements: dict
    databases:
      description: Per database, backends, deadlocks, conflicts and when statistics were reset.
      type: list
      elements: dict
    timeouts:
      description: The four session timeouts as the server reports them.
      type: dict
    statements:
      description: Top statements by total time from C(pg_stat_statements), when installed.
      type: list
      elements: dict
    privileged:
      description: Whether the audit role may see every session.
      type: bool
    hidden_sessions:
      description: Sessions whose state the audit role may not see.
      type: int
    connect_ms:
      description: Milliseconds to connect and authenticate.
      type: int
    query_ms:
      description: Milliseconds the audit statement took, round trip (without connecting).
      type: int
findings:
  description: Findings of the C(pg.*) rules, worst first.
  returned: always
  type: list
  elements: dict
incomplete:
  description: Checks that could not run, each with C(check) and C(error).
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import pg
from ansible_collections.agentops.runbooks.plugins.module_utils.pg_activity import IDLE_IN_TRANSACTION, lock_chains, query_text, snapshot
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

STATEMENT_CHARS = 300  # characters of a statement returned, after redaction
STATEMENT_READ = 8192  # characters read of each statement; what is cut beyond is never returned
TIMEOUTS = ("idle_in_transaction_session_timeout", "idle_session_timeout", "statement_timeout", "lock_timeout")
STATEMENTS_SQL = """
SELECT coalesce(json_agg(t), '[]'::json) FROM (
  SELECT queryid::text AS queryid, calls, round(%(total)s::numeric, 1) AS total_ms, round(%(mean)s::numeric, 1) AS mean_ms,
         rows, left(query, %(chars)d) AS query, length(query) > %(chars)d AS query_cut
  FROM pg_stat_statements ORDER BY %(total)s DESC LIMIT %(limit)d) AS t
"""


def target_of(params):
    host = params.get("host") or "local socket"
    return "%s:%s/%s" % (host, params.get("port"), params.get("database"))


def _count(items, key):
    out = {}
    for item in items:
        value = item.get(key) or ("local" if key == "client_addr" else "(none)")
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


class Audit(object):
    def __init__(self, thresholds=None, top_n=10, redaction_key=None):
        self.thresholds = thresholds or {}
        self.top_n = top_n
        self.redactor = Redactor(key=redaction_key)
        self.findings = []

    def add(self, rule_id, value, evidence, subject=None):
        found = fm.graded(rule_id, value, evidence, self.thresholds, subject=subject)
        if found:
            self.findings.append(found)
        return found

    def brief(self, session):
        return {
            "pid": session["pid"], "user": session["user"], "application": session["application"],
            "client_addr": session["client_addr"] or "local", "database": session["database"], "state": session["state"],
            "superuser": session["superuser"], "idle_seconds": session["idle_seconds"],
            "query_seconds": session["query_seconds"], "xact_seconds": session["xact_seconds"],
            "wait_event": ("%s:%s" % (session["wait_event_type"], session["wait_event"])) if session["wait_event_type"] else None,
            "blocked_by": session["blocked_by"], "query": session["query"],  # redacted by snapshot()
        }

    def analyze(self, snap):
        sessions = [s for s in snap["sessions"] if not s["self"]]
        slots = snap["slots"]
        settings = snap.get("settings") or {}
        facts = {
            "reachable": True,
            "server_version": snap["version"],
            "server_version_num": snap["version_num"],
            "current_user": snap["current_user"],
            "privileged": bool(snap["privileged"]),
            "slots": slots,
            "by_state": _count(snap["sessions"], "state"),
            "by_user": _count(snap["sessions"], "user"),
            "by_client": _count(snap["sessions"], "client_addr"),
            "by_application": {},
            "backend_types": snap.get("backend_types") or {},
            "databases": snap.get("databases") or [],
            "timeouts": dict((k, settings.get(k)) for k in TIMEOUTS),
            "hidden_sessions": sum(1 for s in sessions if s["hidden"]),
        }
        for session in snap["sessions"]:
            app = facts["by_application"].setdefault(session["application"] or "(none)", {"total": 0})
            app["total"] += 1
            state = session["state"] or "unknown"
            app[state] = app.get(state, 0) + 1

        self.add("pg.saturation", slots["used_percent"], dict(slots))
        self.pool_hog(snap, slots)
        facts["idle_in_transaction"] = self.idle_in_transaction(sessions)
        facts["lock_chains"] = self.chains(sessions)
        facts["longest_active"] = self.long_queries(sessions)
        self.deadlocks(facts["databases"])
        if str(settings.get("idle_in_transaction_session_timeout", "0")) == "0":
            self.findings.append(fm.make("pg.missing_timeouts", "low", dict(facts["timeouts"])))
        if facts["hidden_sessions"]:
            self.findings.append(fm.make("pg.limited_privileges", "unknown", {
                "hidden": facts["hidden_sessions"], "sessions": len(sessions), "user": snap["current_user"]}))
        return facts

    def pool_hog(self, snap, slots):
        by_app = {}
        for session in snap["sessions"]:
            by_app.setdefault(session["application"] or "(none)", []).append(session)
        for app, group in sorted(by_app.items()):
            if len(group) < 3 or app == pg.APPLICATION_NAME:
                continue
            share = round(100.0 * len(group) / slots["usable"], 1)
            self.add("pg.pool_hog", share, {
                "application": app, "count": len(group), "usable": slots["usable"], "share": share,
                "idle": sum(1 for s in group if s["state"] == "idle"),
                "idle_in_transaction": sum(1 for s in group if s["state"] in IDLE_IN_TRANSACTION),
                "active": sum(1 for s in group if s["state"] == "active"),
                "clients": len(set(s["client_addr"] or "local" for s in group)),
                "by_client": _count(group, "client_addr"), "users": sorted(set(s["user"] or "" for s in group)),
            }, subject=app)

    def idle_in_transaction(self, sessions):
        idle = sorted((s for s in sessions if s["state"] in IDLE_IN_TRANSACTION), key=lambda s: -(s["idle_seconds"] or 0))
        if idle:
            blocking = set(b for s in sessions for b in s["blocked_by"])
            oldest = idle[0]
            holders = [s["pid"] for s in idle if s["pid"] in blocking]
            found = self.add("pg.idle_in_transaction", oldest["idle_seconds"], {
                "count": len(idle), "oldest_pid": oldest["pid"], "oldest_application": oldest["application"] or "(none)",
                "oldest_seconds": oldest["idle_seconds"], "pids": [s["pid"] for s in idle],
                "blocking_pids": holders,
                "blocking_note": ", blocking %d other session(s)" % len(holders) if holders else "",
                "sessions": [self.brief(s) for s in idle[:self.top_n]],
            })
            if found and holders and fm.SEVERITY_ORDER[found["severity"]] > fm.SEVERITY_ORDER["high"]:
                found["severity"] = "high"  # holding locks others wait for is never just medium
        return [self.brief(s) for s in idle[:self.top_n]]

    def chains(self, sessions):
        out = []
        for chain in lock_chains(sessions):
            root = chain["root"] or {"application": None, "state": None, "pid": chain["root_pid"]}
            evidence = {
                "root_pid": chain["root_pid"], "root_application": root.get("application") or "(none)",
                "root_state": root.get("state") or "unknown", "root_user": root.get("user"),
                "blocked": chain["blocked"], "blocked_pids": chain["blocked_pids"], "max_wait_seconds": chain["max_wait_seconds"],
                "root_query": root.get("query") or "",
            }
            self.add("pg.lock_chain", chain["max_wait_seconds"], evidence, subject="pid %d" % chain["root_pid"])
            out.append(evidence)
        return out

    def long_queries(self, sessions):
        active = sorted((s for s in sessions if s["state"] == "active" and not s["blocked_by"] and s["query_seconds"] is not None),
                        key=lambda s: -s["query_seconds"])
        lowest = min(fm.thresholds_for("pg.long_query", self.thresholds).values())
        long_ones = [s for s in active if s["query_seconds"] >= lowest]
        if long_ones:
            top = long_ones[0]
            self.add("pg.long_query", top["query_seconds"], {
                "count": len(long_ones), "threshold": lowest, "pid": top["pid"], "application": top["application"] or "(none)",
                "longest_seconds": top["query_seconds"], "pids": [s["pid"] for s in long_ones],
                "query": top["query"],
            })
        return [self.brief(s) for s in active[:self.top_n]]

    def deadlocks(self, databases):
        for database in databases:
            if database.get("deadlocks"):
                reset = database.get("stats_reset")
                self.add("pg.deadlocks", database["deadlocks"], {
                    "database": database["database"], "deadlocks": database["deadlocks"],
                    "stats_reset": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset)) if reset else "never"},
                    subject=database["database"])

    def statements(self, conn, snap):
        if not snap.get("pg_stat_statements"):
            return []
        names = {"total": "total_exec_time", "mean": "mean_exec_time"} if snap["version_num"] >= 130000 else \
            {"total": "total_time", "mean": "mean_time"}
        rows = conn.json(STATEMENTS_SQL % dict(names, limit=self.top_n, chars=STATEMENT_READ)) or []
        for row in rows:
            row["query"] = query_text(self.redactor, row.get("query"), row.pop("query_cut", False), STATEMENT_CHARS)
        return rows


def audit(params, connect, thresholds=None, top_n=10, redaction_key=None):
    """Run the audit. ``connect(params)`` returns a pg connection or raises.
    Returns {facts, findings, incomplete}; never raises for server-side trouble."""
    target = target_of(params)
    worker = Audit(thresholds, top_n, redaction_key)
    began = time.monotonic()
    try:
        conn = connect(params)
        connected = time.monotonic()
    except pg.PgError as exc:
        evidence = {"target": target, "kind": exc.kind, "error": exc.message, "user": params.get("user") or "(default)",
                    "host": params.get("host") or "localhost", "port": params.get("port")}
        rule = "pg.too_many_clients" if exc.kind in ("too_many_clients", "reserved_slots") else "pg.unreachable"
        return worker.redactor.data({"facts": {"reachable": False, "target": target, "error": exc.message, "error_kind": exc.kind},
                                     "findings": [fm.make(rule, "critical", evidence, subject=target)], "incomplete": []})
    try:
        snap = snapshot(conn, worker.redactor)
        queried = time.monotonic()
        facts = worker.analyze(snap)
        facts["connect_ms"] = int((connected - began) * 1000)
        facts["query_ms"] = int((queried - connected) * 1000)
        try:
            facts["statements"] = worker.statements(conn, snap)
        except pg.PgError as exc:
            facts["statements"] = []
            facts["statements_error"] = exc.message
    except pg.PgError as exc:
        return worker.redactor.data({"facts": {"reachable": True, "target": target, "error": exc.message},
                                     "findings": [fm.make("pg.check_incomplete", "unknown", {"target": target, "error": exc.message})],
                                     "incomplete": [{"check": "pg audit", "error": exc.message}]})
    finally:
        conn.close()
    facts.update(target=target, client=conn.client)
    # Defence in depth: every string once more (application names, errors, evidence), same placeholders.
    return worker.redactor.data({"facts": facts, "findings": fm.ordered(worker.findings), "incomplete": []})


def main():
    spec = pg.argument_spec()
    spec.update(thresholds=dict(type="dict", default={}), top_n=dict(type="int", default=10),
                redaction_key=dict(type="str", no_log=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        pg.validate(params)
        if not 0 <= params["top_n"] <= 100:
            raise ValueError("top_n must be between 0 and 100, got %d." % params["top_n"])
        thresholds = fm.validate_thresholds(params["thresholds"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    runner = pg.module_runner(module)

    def connect(p):
        return pg.connect(p, runner=runner, find_psql=lambda: module.get_bin_path("psql"))

    try:
        result = audit(params, connect, thresholds, params["top_n"], params["redaction_key"])
    except pg.PgClientMissing as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
