#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_role_timeouts
short_description: Set PostgreSQL session timeouts for a role, a database, or a role in one database
version_added: 0.1.0
description:
  - Sets C(idle_in_transaction_session_timeout), C(idle_session_timeout), C(statement_timeout) and C(lock_timeout)
    with C(ALTER ROLE ... [IN DATABASE ...] SET), or C(ALTER DATABASE ... SET) when only O(in_database) is given,
    only where the stored value differs. New sessions get them; existing sessions keep theirs.
  - The value C(default) removes the setting (C(RESET)).
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.postgres
options:
  role:
    description: The role to configure. Without it, O(in_database) is configured for every role.
    type: str
  in_database:
    description: Limit the settings to this database (C(ALTER ROLE ... IN DATABASE)), or, without O(role), the database to configure.
    type: str
  timeouts:
    description:
      - >-
        Setting name to value, for example C({idle_in_transaction_session_timeout: 5min}). Values are a number with an
        optional unit (C(ms), C(s), C(min), C(h), C(d)), or C(default) to remove the setting.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: Reports the statements it would run without running them.
  diff_mode:
    support: full
    description: Shows the role's settings before and after.
"""

EXAMPLES = r"""
- name: End idle transactions of the application role after 5 minutes
  agentops.runbooks.pg_role_timeouts:
    host: /var/run/postgresql
    role: agent
    timeouts:
      idle_in_transaction_session_timeout: 5min
"""

RETURN = r"""
queries:
  description: The statements run (or, in check mode, that would run).
  returned: always
  type: list
  elements: str
before:
  description: The role's timeout settings before.
  returned: always
  type: dict
after:
  description: The role's timeout settings after.
  returned: always
  type: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import pg

NAMES = ("idle_in_transaction_session_timeout", "idle_session_timeout", "statement_timeout", "lock_timeout")
VALUE = re.compile(r"^(?:\d+\s*(?:ms|s|min|h|d)?|default)$")


def ident(name):
    return '"%s"' % name.replace('"', '""')


def literal(value):
    return "'%s'" % value.replace("'", "''")


def current(conn, role, database):
    setrole = "(SELECT oid FROM pg_roles WHERE rolname = %s)" % literal(role) if role else "0"
    setdatabase = "(SELECT oid FROM pg_database WHERE datname = %s)" % literal(database) if database else "0"
    sql = ("SELECT coalesce((SELECT to_json(setconfig) FROM pg_db_role_setting WHERE setrole = %s AND setdatabase = %s), "
           "'[]'::json)" % (setrole, setdatabase))
    settings = {}
    for item in conn.json(sql) or []:
        name, _sep, value = item.partition("=")
        if name in NAMES:
            settings[name] = value
    return settings


def statements(role, database, before, wanted):
    if role:
        target = "ALTER ROLE %s%s" % (ident(role), " IN DATABASE %s" % ident(database) if database else "")
    else:
        target = "ALTER DATABASE %s" % ident(database)
    queries, after = [], dict(before)
    for name in NAMES:
        if name not in wanted:
            continue
        value = str(wanted[name]).strip()
        if value == "default":
            if name in before:
                queries.append("%s RESET %s" % (target, name))
                after.pop(name)
        elif before.get(name) != value:
            queries.append("%s SET %s = %s" % (target, name, literal(value)))
            after[name] = value
    return queries, after


def main():
    spec = pg.argument_spec()
    spec.update(role=dict(type="str"), in_database=dict(type="str"), timeouts=dict(type="dict", required=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_one_of=[("role", "in_database")])
    params = module.params
    try:
        pg.validate(params)
        if not params["timeouts"]:
            raise ValueError("timeouts must name at least one of %s." % ", ".join(NAMES))
        for name, value in params["timeouts"].items():
            if name not in NAMES:
                raise ValueError("timeouts may set %s, not %r." % (", ".join(NAMES), name))
            if not VALUE.match(str(value).strip()):
                raise ValueError("timeout %s=%r is not a number with an optional unit (ms, s, min, h, d) or 'default'." % (name, value))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        conn = pg.connect(params, runner=pg.module_runner(module), find_psql=lambda: module.get_bin_path("psql"))
    except (pg.PgClientMissing, pg.PgError) as exc:
        module.fail_json(msg="Cannot connect to PostgreSQL at %s:%s: %s" % (params["host"] or "local socket", params["port"], exc))
    try:
        exists = conn.json("SELECT json_build_object('role', EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s), "
                           "'database', EXISTS (SELECT 1 FROM pg_database WHERE datname = %s))"
                           % (literal(params["role"] or ""), literal(params["in_database"] or "")))
        if params["role"] and not exists["role"]:
            module.fail_json(msg="Role %s does not exist." % params["role"])
        if params["in_database"] and not exists["database"]:
            module.fail_json(msg="Database %s does not exist." % params["in_database"])
        before = current(conn, params["role"], params["in_database"])
        queries, after = statements(params["role"], params["in_database"], before, params["timeouts"])
        if queries and not module.check_mode:
            for sql in queries:
                conn.execute(sql)
    except pg.PgError as exc:
        module.fail_json(msg="PostgreSQL refused to change the settings of %s: %s" % (params["role"] or params["in_database"], exc.message))
    finally:
        conn.close()
    module.exit_json(changed=bool(queries), queries=queries, before=before, after=after,
                     diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
