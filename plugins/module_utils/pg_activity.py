# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One snapshot of a PostgreSQL server's sessions, in one SQL statement.

Both the read-only audit (pg_connection_facts) and the remediation (pg_sessions)
read sessions through :func:`snapshot`, so they see the same fields computed the
same way: ages from ``state_change`` (idle time) and ``query_start``, blockers
from ``pg_blocking_pids``, and lock chains folded to their root blocker.
Query texts are read whole, redacted, and only then cut (:func:`query_text`).
PostgreSQL 12 or newer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate

QUERY_CHARS = 500  # characters of a query text returned, after redaction
SETTINGS = (
    "max_connections", "superuser_reserved_connections", "reserved_connections",
    "idle_in_transaction_session_timeout", "idle_session_timeout", "statement_timeout", "lock_timeout",
    "deadlock_timeout",
)

SNAPSHOT_SQL = """
WITH s AS (
  SELECT a.pid, a.usename AS user, a.application_name AS application, host(a.client_addr) AS client_addr,
         a.datname AS database, a.state, a.wait_event_type, a.wait_event, a.backend_type,
         extract(epoch FROM a.backend_start)::float8 AS backend_start,
         extract(epoch FROM a.xact_start)::float8 AS xact_start,
         extract(epoch FROM a.query_start)::float8 AS query_start,
         extract(epoch FROM a.state_change)::float8 AS state_change,
         a.query,  -- whole (the server keeps track_activity_query_size bytes): redacted before it is cut
         octet_length(a.query) >= (SELECT setting::int - 1 FROM pg_settings WHERE name = 'track_activity_query_size')
           AS query_cut,
         pg_blocking_pids(a.pid) AS blocked_by,
         coalesce(r.rolsuper, false) AS superuser
  FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
)
SELECT json_build_object(
  'version_num', current_setting('server_version_num')::int,
  'version', current_setting('server_version'),
  'now', extract(epoch FROM clock_timestamp())::float8,
  'self_pid', pg_backend_pid(),
  'current_user', current_user,
  'privileged', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER'),
  'settings', (SELECT json_object_agg(name, CASE WHEN name = 'statement_timeout'
                 THEN coalesce(current_setting('agentops.server_statement_timeout', true), setting) ELSE setting END)
               FROM pg_settings WHERE name IN (%s)),
  -- Without pg_read_all_stats, other roles' sessions show only pid and role (backend_type is NULL):
  -- they still hold slots, so they are kept and marked hidden.
  'sessions', (SELECT coalesce(json_agg(s ORDER BY pid), '[]'::json) FROM s
               WHERE backend_type = 'client backend' OR (backend_type IS NULL AND s.user IS NOT NULL)),
  'backend_types', (SELECT json_object_agg(t, n) FROM (SELECT coalesce(backend_type, 'unknown') AS t, count(*) AS n
                                                         FROM s GROUP BY 1) AS bt),
  'databases', (SELECT coalesce(json_agg(json_build_object(
                   'database', datname, 'backends', numbackends, 'deadlocks', deadlocks, 'conflicts', conflicts,
                   'stats_reset', extract(epoch FROM stats_reset)::float8) ORDER BY datname), '[]'::json)
                FROM pg_stat_database WHERE datname IS NOT NULL),
  'pg_stat_statements', to_regclass('pg_stat_statements') IS NOT NULL
)
""" % ", ".join("'%s'" % name for name in SETTINGS)

IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


def query_text(redactor, text, cut=False, limit=QUERY_CHARS):
    """A query text as it may leave the host: redacted whole, then cut to ``limit`` characters.

    ``cut`` says the text was already cut before it reached us (the server keeps only
    ``track_activity_query_size`` bytes): its last word may be half a secret that no pattern
    recognises, so it is dropped before redaction (a quoted literal left open is redacted to the end)."""
    if not text:
        return ""
    if cut:
        text = re.sub(r"\S*$", "", text) + "..."
    return truncate(redactor.text(text), limit)


def _age(now, then):
    return None if then is None else max(0, int(round(now - then)))


def snapshot(conn, redactor=None):
    """Run the snapshot statement and add derived fields to every session:
    ``idle_seconds`` (since state_change), ``query_seconds`` (since query_start),
    ``xact_seconds``, ``age_seconds`` (since backend_start), ``hidden`` (the
    connecting role may not see its state). ``query`` is redacted with ``redactor``
    (a new one when not given), then cut to QUERY_CHARS. Returns the snapshot dict."""
    redactor = redactor or Redactor()
    snap = conn.json(SNAPSHOT_SQL)
    now = snap["now"]
    for session in snap["sessions"]:
        session["query"] = query_text(redactor, session["query"], session.pop("query_cut", False))
        session["idle_seconds"] = _age(now, session["state_change"])
        session["query_seconds"] = _age(now, session["query_start"])
        session["xact_seconds"] = _age(now, session["xact_start"])
        session["age_seconds"] = _age(now, session["backend_start"])
        session["blocked_by"] = session["blocked_by"] or []
        session["hidden"] = session["backend_type"] is None
        session["self"] = session["pid"] == snap["self_pid"]
    snap["slots"] = slots(snap)
    return snap


def slots(snap):
    settings = snap.get("settings") or {}

    def setting(name):
        try:
            return int(settings.get(name) or 0)
        except ValueError:
            return 0

    maximum = setting("max_connections")
    superuser_reserved = setting("superuser_reserved_connections")
    reserved = setting("reserved_connections")  # PostgreSQL 16+
    usable = max(1, maximum - superuser_reserved - reserved)
    in_use = len(snap["sessions"])
    return {
        "max_connections": maximum,
        "superuser_reserved_connections": superuser_reserved,
        "reserved_connections": reserved,
        "usable": usable,
        "in_use": in_use,
        "free": maximum - in_use,
        "used_percent": round(100.0 * in_use / usable, 1),
    }


def lock_chains(sessions):
    """Fold blocked sessions into chains keyed by their root blocker.

    A root blocker blocks others and is not itself blocked (in a cycle, the
    lowest pid stands for it). Returns a list of dicts, longest wait first:
    ``{root_pid, blocked_pids, blocked, max_wait_seconds, root}``.
    """
    by_pid = dict((s["pid"], s) for s in sessions)
    blocked = [s for s in sessions if s["blocked_by"]]
    if not blocked:
        return []

    def root_of(pid, seen):
        session = by_pid.get(pid)
        if session is None or not session["blocked_by"]:
            return pid
        if pid in seen:
            return min(seen)
        seen.add(pid)
        return root_of(min(session["blocked_by"]), seen)

    chains = {}
    for session in blocked:
        for blocker in session["blocked_by"]:
            root = root_of(blocker, set([session["pid"]]))
            chain = chains.setdefault(root, {"root_pid": root, "blocked_pids": set(), "max_wait_seconds": 0})
            chain["blocked_pids"].add(session["pid"])
            wait = session["idle_seconds"] if session["idle_seconds"] is not None else 0
            chain["max_wait_seconds"] = max(chain["max_wait_seconds"], wait)
    result = []
    for root, chain in chains.items():
        chain["blocked_pids"] = sorted(chain["blocked_pids"] - set([root]))
        chain["blocked"] = len(chain["blocked_pids"])
        chain["root"] = by_pid.get(root)
        result.append(chain)
    return sorted(result, key=lambda c: (-c["max_wait_seconds"], c["root_pid"]))
