#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_sessions
short_description: Terminate or cancel PostgreSQL sessions that hold an incident up, with guardrails
version_added: 0.1.0
description:
  - Selects sessions from one snapshot of C(pg_stat_activity) (the same one the C(pg_connection_facts) audit reads)
    and ends them. Every action is off unless its option is set.
  - "Actions: terminate sessions idle in transaction longer than O(terminate_idle_in_transaction_after); terminate
    idle sessions of named applications above a cap, oldest first (O(idle_caps)); cancel active queries running
    longer than O(cancel_active_after), then optionally terminate those a cancel did not stop; terminate the root
    blockers of lock chains whose waiters have waited longer than O(terminate_blockers_after)."
  - "Guardrails: superusers, non-client backends (replication, walsender, autovacuum, background workers), the
    module's own session and sessions whose details are hidden from the connecting role are never touched;
    O(allow_applications) and O(allow_users) are never touched; when O(deny_applications) or O(deny_users) is set,
    only those may be touched; at most O(max_terminations) terminations and O(max_cancels) cancels per run."
  - Each signal is sent by a statement that re-checks the session in the same step (same pid, same backend start,
    same state change or query start), so a session that recovered or a reused pid is left alone.
  - In check mode the module computes and returns exactly which pids it would cancel or terminate and why, and calls
    no signal function (C(pg_cancel_backend) and C(pg_terminate_backend) are not transactional).
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.postgres
options:
  terminate_idle_in_transaction_after:
    description: Terminate sessions idle in transaction for at least this many seconds (measured from C(state_change)).
    type: int
  idle_caps:
    description:
      - Per application, the most idle sessions to keep; older idle sessions above the cap are terminated, oldest first.
    type: list
    elements: dict
    default: []
    suboptions:
      application:
        description: The C(application_name).
        type: str
        required: true
      max_idle:
        description: Idle sessions to keep.
        type: int
        required: true
  cancel_active_after:
    description: Cancel queries active for at least this many seconds (C(pg_cancel_backend); the session survives).
    type: int
  terminate_uncancelled:
    description: After O(cancel_grace_seconds), terminate sessions whose cancelled query is still running.
    type: bool
    default: false
  cancel_grace_seconds:
    description: Seconds to wait after cancelling before checking which queries stopped.
    type: int
    default: 5
  terminate_blockers_after:
    description: Terminate the root blocker of every lock chain whose longest waiter has waited at least this many seconds.
    type: int
  allow_applications:
    description: Applications whose sessions are never touched.
    type: list
    elements: str
    default: []
  allow_users:
    description: Roles whose sessions are never touched.
    type: list
    elements: str
    default: []
  deny_applications:
    description: When set, only sessions of these applications may be touched.
    type: list
    elements: str
    default: []
  deny_users:
    description: When set, only sessions of these roles may be touched.
    type: list
    elements: str
    default: []
  max_terminations:
    description: The most sessions terminated in one run; further candidates are reported as skipped.
    type: int
    default: 10
  max_cancels:
    description: The most queries cancelled in one run.
    type: int
    default: 20
attributes:
  check_mode:
    support: full
    description: Computes the exact action list without calling any signal function.
  diff_mode:
    support: full
    description: The diff lists the sessions before and after.
notes:
  - Terminating needs superuser, membership in the target's role, or C(pg_signal_backend); only superusers may signal
    superusers, and this module never does.
"""

EXAMPLES = r"""
- name: See what would be terminated (check mode computes, signals nothing)
  agentops.runbooks.pg_sessions:
    host: /var/run/postgresql
    terminate_idle_in_transaction_after: 300
    idle_caps:
      - {application: manager, max_idle: 2}
    allow_applications: [pg_dump, migrations]
  check_mode: true
  register: plan

- name: Cancel queries running for more than 10 minutes, terminate those that ignore the cancel
  agentops.runbooks.pg_sessions:
    host: db.internal
    user: postgres
    password: "{{ vault_pg_password }}"
    cancel_active_after: 600
    terminate_uncancelled: true
    max_terminations: 3
"""

RETURN = r"""
actions:
  description: Sessions cancelled or terminated (in check mode, those that would be), with why.
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: Backend pid.
      type: int
    action:
      description: C(terminate) or C(cancel).
      type: str
    reasons:
      description: Why this session was selected.
      type: list
      elements: str
    done:
      description: Whether the signal was sent and took effect (false in check mode).
      type: bool
    user:
      description: Role of the session.
      type: str
    application:
      description: Its C(application_name).
      type: str
    state:
      description: Its state when selected.
      type: str
    query_start:
      description: When its current or last query started (UTC, ISO 8601).
      type: str
    query:
      description: Its current or last query text, redacted whole on the host (passwords, tokens, keys, DSNs), then cut
        to 500 characters.
      type: str
left_alone:
  description: Sessions that matched an action but were protected by a guardrail, each with C(pid) and C(why).
  returned: always
  type: list
  elements: dict
queries:
  description: The SQL statements that signalled sessions (empty in check mode).
  returned: always
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import pg
from ansible_collections.agentops.runbooks.plugins.module_utils.pg_activity import IDLE_IN_TRANSACTION, lock_chains, snapshot
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

ACTION_OPTIONS = ("terminate_idle_in_transaction_after", "idle_caps", "cancel_active_after", "terminate_blockers_after")
SIGNAL = {"terminate": "pg_terminate_backend", "cancel": "pg_cancel_backend"}
LIMITS = {"terminate": ("max_terminations", "terminations"), "cancel": ("max_cancels", "cancels")}


def _iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def candidates(snap, opts):
    """[(session, action, reason)] in priority order, before guardrails."""
    sessions = [s for s in snap["sessions"] if not s["self"] and not s["hidden"]]
    found = []
    limit = opts.get("terminate_blockers_after")
    if limit is not None:
        for chain in lock_chains(sessions):
            if chain["root"] is not None and chain["max_wait_seconds"] >= limit:
                found.append((chain["root"], "terminate", "root blocker of %d session(s) waiting up to %d s (limit %d s)"
                              % (chain["blocked"], chain["max_wait_seconds"], limit)))
    limit = opts.get("terminate_idle_in_transaction_after")
    if limit is not None:
        idle = [s for s in sessions if s["state"] in IDLE_IN_TRANSACTION and (s["idle_seconds"] or 0) >= limit]
        for session in sorted(idle, key=lambda s: -s["idle_seconds"]):
            found.append((session, "terminate", "%s for %d s (limit %d s)" % (session["state"], session["idle_seconds"], limit)))
    for cap in opts.get("idle_caps") or []:
        idle = sorted((s for s in sessions if s["state"] == "idle" and s["application"] == cap["application"]),
                      key=lambda s: (-(s["idle_seconds"] or 0), s["pid"]))
        for session in idle[:max(0, len(idle) - cap["max_idle"])]:
            found.append((session, "terminate", "idle for %d s; %s has %d idle sessions, cap %d (oldest first)"
                          % (session["idle_seconds"] or 0, cap["application"], len(idle), cap["max_idle"])))
    limit = opts.get("cancel_active_after")
    if limit is not None:
        active = [s for s in sessions if s["state"] == "active" and (s["query_seconds"] or 0) >= limit]
        for session in sorted(active, key=lambda s: -s["query_seconds"]):
            found.append((session, "cancel", "query active for %d s (limit %d s)" % (session["query_seconds"], limit)))
    return found


def guard(session, opts):
    """Why ``session`` must not be touched, or None."""
    if session["superuser"]:
        return "superuser session"
    if session["application"] in (opts.get("allow_applications") or []):
        return "application %r is allow-listed" % session["application"]
    if session["user"] in (opts.get("allow_users") or []):
        return "role %r is allow-listed" % session["user"]
    if opts.get("deny_applications") and session["application"] not in opts["deny_applications"]:
        return "application %r is not in deny_applications" % session["application"]
    if opts.get("deny_users") and session["user"] not in opts["deny_users"]:
        return "role %r is not in deny_users" % session["user"]
    return None


def plan(snap, opts, redactor=None):
    """Decide every action from one snapshot. Returns (actions, skipped); pure, no I/O."""
    redactor = redactor or Redactor()
    actions = {}
    skipped = {}
    budget = {"terminate": opts.get("max_terminations", 10), "cancel": opts.get("max_cancels", 20)}
    for session, action, reason in candidates(snap, opts):
        pid = session["pid"]
        if pid in actions:
            if reason not in actions[pid]["reasons"]:
                actions[pid]["reasons"].append(reason)
            continue
        why = guard(session, opts)
        if why is None and budget[action] <= 0:
            limit, noun = LIMITS[action]
            why = "over the limit of %d %s per run" % (opts.get(limit), noun)
        if why is not None:
            skipped.setdefault(pid, {"pid": pid, "action": action, "why": why, "reason": reason,
                                     "user": session["user"], "application": session["application"]})
            continue
        budget[action] -= 1
        actions[pid] = {
            "pid": pid, "action": action, "reasons": [reason], "done": False,
            "user": session["user"], "application": session["application"], "state": session["state"],
            "client_addr": session["client_addr"] or "local", "database": session["database"],
            "idle_seconds": session["idle_seconds"], "query_seconds": session["query_seconds"],
            "age_seconds": session["age_seconds"], "backend_start": _iso(session["backend_start"]),
            "query_start": _iso(session["query_start"]), "query": redactor.text(session["query"] or ""),
            "_match": (session["backend_start"], session["state_change"], session["query_start"]),
        }
    return list(actions.values()), [s for p, s in skipped.items() if p not in actions]


def signal_sql(action, items):
    """One statement that signals each session only if it is still the same session in the same state.

    Only numbers from our own snapshot are interpolated (validated as int/float)."""
    rows = []
    for item in items:
        backend_start, state_change, query_start = item["_match"]
        rows.append("(%d, %r, %r, %r)" % (int(item["pid"]), float(backend_start or 0), float(state_change or 0), float(query_start or 0)))
    # A terminated session must still be in the same state period; a cancelled one, on the same query.
    column = "state_change" if action == "terminate" else "query_start"
    return ("SELECT coalesce(json_agg(json_build_object('pid', a.pid, 'signalled', %s(a.pid))), '[]'::json) "
            "FROM pg_stat_activity AS a JOIN (VALUES %s) AS v(pid, backend_start, state_change, query_start) "
            "ON a.pid = v.pid AND abs(extract(epoch FROM a.backend_start)::float8 - v.backend_start) < 0.001 "
            "AND abs(coalesce(extract(epoch FROM a.%s)::float8, 0) - v.%s) < 0.001"
            % (SIGNAL[action], ", ".join(rows), column, column))


def still_there(conn, pids):
    if not pids:
        return set()
    rows = conn.json("SELECT coalesce(json_agg(pid), '[]'::json) FROM pg_stat_activity WHERE pid IN (%s)"
                     % ", ".join(str(int(p)) for p in pids))
    return set(rows or [])


def wait_gone(conn, pids, seconds):
    deadline = time.monotonic() + seconds
    left = still_there(conn, pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = still_there(conn, left)
    return left


def execute(conn, actions, opts, queries):
    """Send the signals; mark each action done when it took effect."""
    by_pid = dict((a["pid"], a) for a in actions)
    for action in ("cancel", "terminate"):
        items = [a for a in actions if a["action"] == action]
        if not items:
            continue
        sql = signal_sql(action, items)
        queries.append(sql)
        for row in conn.json(sql) or []:
            by_pid[row["pid"]]["done"] = bool(row["signalled"])
    terminated = [a["pid"] for a in actions if a["action"] == "terminate" and a["done"]]
    for pid in wait_gone(conn, terminated, 5.0):
        by_pid[pid]["done"] = False
        by_pid[pid]["note"] = "signalled but still present after 5 s"
    cancelled = [a for a in actions if a["action"] == "cancel" and a["done"]]
    if cancelled and opts.get("terminate_uncancelled"):
        time.sleep(opts.get("cancel_grace_seconds", 5))
        current = dict((s["pid"], s) for s in snapshot(conn)["sessions"])
        survivors = []
        for item in cancelled:
            session = current.get(item["pid"])
            if session and session["state"] == "active" and session["query_start"] == item["_match"][2]:
                survivors.append(dict(item, action="terminate", done=False,
                                      reasons=item["reasons"] + ["still running %d s after the cancel" % opts.get("cancel_grace_seconds", 5)],
                                      _match=(session["backend_start"], session["state_change"], session["query_start"])))
        survivors = survivors[:opts.get("max_terminations", 10) - len(terminated)]
        if survivors:
            sql = signal_sql("terminate", survivors)
            queries.append(sql)
            done = dict((row["pid"], bool(row["signalled"])) for row in conn.json(sql) or [])
            for item in survivors:
                item["done"] = done.get(item["pid"], False)
            actions.extend(survivors)
    return actions


def describe(items):
    return "".join("pid %d %s (%s, %s, %s)\n" % (a["pid"], a["application"] or "", a["user"], a["state"], "; ".join(a["reasons"]))
                   for a in items)


def run(conn, opts, check_mode):
    queries = []
    redactor = Redactor()  # one for the run: the same query text keeps one placeholder
    actions, skipped = plan(snapshot(conn, redactor), opts, redactor)
    if actions and not check_mode:
        execute(conn, actions, opts, queries)
    for item in actions:
        item.pop("_match", None)
    changed = any(a["done"] for a in actions) if not check_mode else bool(actions)
    # Diff: the sessions selected before; after, those a real run could not end ("" in check mode: all would go).
    remaining = [] if check_mode else [a for a in actions if not a["done"]]
    # Query texts were redacted whole before they were cut (snapshot); every string passes once more.
    return redactor.data({"changed": changed, "actions": actions, "left_alone": skipped, "queries": queries,
                          "diff": {"before": describe(actions), "after": describe(remaining)}})


def validate(params):
    if all(params.get(name) is None for name in ACTION_OPTIONS if name != "idle_caps") and not params["idle_caps"]:
        raise ValueError("Nothing to do: set at least one of %s." % ", ".join(ACTION_OPTIONS))
    for name in ("terminate_idle_in_transaction_after", "cancel_active_after", "terminate_blockers_after"):
        if params.get(name) is not None and params[name] < 1:
            raise ValueError("%s must be at least 1 second, got %d." % (name, params[name]))
    for cap in params["idle_caps"]:
        if cap["max_idle"] < 0:
            raise ValueError("idle_caps max_idle for %s must not be negative, got %d." % (cap["application"], cap["max_idle"]))
    if not 0 <= params["max_terminations"] <= 1000 or not 0 <= params["max_cancels"] <= 1000:
        raise ValueError("max_terminations and max_cancels must be between 0 and 1000.")
    if not 0 <= params["cancel_grace_seconds"] <= 120:
        raise ValueError("cancel_grace_seconds must be between 0 and 120, got %d." % params["cancel_grace_seconds"])


def main():
    spec = pg.argument_spec()
    spec.update(
        terminate_idle_in_transaction_after=dict(type="int"),
        idle_caps=dict(type="list", elements="dict", default=[], options=dict(
            application=dict(type="str", required=True), max_idle=dict(type="int", required=True))),
        cancel_active_after=dict(type="int"),
        terminate_uncancelled=dict(type="bool", default=False),
        cancel_grace_seconds=dict(type="int", default=5),
        terminate_blockers_after=dict(type="int"),
        allow_applications=dict(type="list", elements="str", default=[]),
        allow_users=dict(type="list", elements="str", default=[]),
        deny_applications=dict(type="list", elements="str", default=[]),
        deny_users=dict(type="list", elements="str", default=[]),
        max_terminations=dict(type="int", default=10),
        max_cancels=dict(type="int", default=20),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        pg.validate(module.params)
        validate(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        conn = pg.connect(module.params, runner=pg.module_runner(module), find_psql=lambda: module.get_bin_path("psql"))
    except (pg.PgClientMissing, pg.PgError) as exc:
        where = "%s:%s" % (module.params["host"] or "local socket", module.params["port"])
        module.fail_json(msg="Cannot connect to PostgreSQL at %s: %s" % (where, exc))
    try:
        result = run(conn, module.params, module.check_mode)
    except pg.PgError as exc:
        module.fail_json(msg="PostgreSQL refused the session query or signal: %s" % exc.message)
    finally:
        conn.close()
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
