# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The PostgreSQL family: the connection audit in one statement (slots, pools, idle transactions, lock chains)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

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
            evidence = dict(facts["timeouts"])
            evidence["role_timeouts"] = json.dumps({"pg_connections_role_timeouts": [dict(
                _busiest(sessions), idle_in_transaction_session_timeout="5min")]}, sort_keys=True)
            self.findings.append(fm.make("pg.missing_timeouts", "low", evidence))
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
            # the remediation that caps this application's idle sessions (oldest first) at a quarter of what it holds
            caps = {"pg_connections_idle_caps": [{"application": app, "max_idle": max(1, len(group) // 4)}]}
            self.add("pg.pool_hog", share, {
                "application": app, "count": len(group), "usable": slots["usable"], "share": share,
                "idle_caps": json.dumps(caps, sort_keys=True),
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
            self.add("pg.idle_in_transaction", oldest["idle_seconds"], {
                "count": len(idle), "oldest_pid": oldest["pid"], "oldest_application": oldest["application"] or "(none)",
                "oldest_seconds": oldest["idle_seconds"], "pids": [s["pid"] for s in idle],
                "blocking_pids": holders,
                "blocking_note": ", blocking %d other session(s)" % len(holders) if holders else "",
                "sessions": [self.brief(s) for s in idle[:self.top_n]],
            })
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


def _busiest(sessions):
    """Where to set the timeouts: the role with the most client sessions (never ours), else its database."""
    users = {}
    for session in sessions:
        if session.get("application") != pg.APPLICATION_NAME and session.get("user"):
            users[session["user"]] = users.get(session["user"], 0) + 1
    if users:
        return {"role": sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]}
    databases = sorted(set(s.get("database") for s in sessions if s.get("database")))
    return {"in_database": databases[0]} if databases else {"in_database": "postgres"}


class PgFamily(object):
    """The PostgreSQL connection audit (a client is needed: psycopg, psycopg2 or psql)."""

    name = "pg"
    title = "PostgreSQL"
    enable = "set agentops_pg_host"
    redacts = True
    variables = dict(
        host=("pg_host", "PostgreSQL host or socket directory to audit."),
        port=("pg_port", "PostgreSQL port."),
        user=("pg_user", "Role the audit connects as; give it pg_monitor to see every session."),
        database=("pg_database", "Database to connect to."),
        sslmode=("pg_sslmode", "libpq sslmode."),
    )
    secrets = dict(password=("pg_password", "The audit role's password."))
    enabled_by = ("pg_host", "pg_port")
    ranges = dict(port=(1, 65535))
    options = dict(pg.argument_spec(), top_n=dict(type="int", default=10))

    def collect(self, module, params):
        pg.validate(params)
        if not 0 <= params["top_n"] <= 100:
            raise ValueError("top_n must be between 0 and 100, got %d." % params["top_n"])
        runner = pg.module_runner(module)

        def connect(p):
            return pg.connect(p, runner=runner, find_psql=lambda: module.get_bin_path("psql"))

        try:
            return audit(params, connect, params["thresholds"], params["top_n"], params.get("redaction_key"))
        except pg.PgClientMissing as exc:
            raise ValueError(str(exc))
