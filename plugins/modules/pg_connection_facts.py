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

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import run_wrapper


def main():
    run_wrapper("pg")


if __name__ == "__main__":
    main()
