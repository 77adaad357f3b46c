# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of every PostgreSQL module (plugins/module_utils/pg.py argument_spec()).
    DOCUMENTATION = r"""
options:
  host:
    description:
      - Host name or address of the server (C(agentops_pg_host)). A path starting with C(/) is a Unix socket
        directory. Omit it to use the client's default socket.
    type: str
  port:
    description: Server port (C(agentops_pg_port)); also selects the socket file when O(host) is a directory.
    type: int
    default: 5432
  user:
    description: Role to connect as (C(agentops_pg_user)). Defaults to the client's default (the OS user).
    type: str
  password:
    description:
      - Password (C(agentops_pg_password)). Passed to the client in memory or in the environment of C(psql),
        never on a command line.
    type: str
  database:
    description: Database to connect to (C(agentops_pg_database)).
    type: str
    default: postgres
  sslmode:
    description: libpq C(sslmode).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  connect_timeout:
    description: Seconds to wait for the connection (1 to 300).
    type: int
    default: 5
  statement_timeout_ms:
    description: C(statement_timeout) of the module's own session, in milliseconds (100 to 600000).
    type: int
    default: 10000
  client:
    description:
      - Which client to use. V(auto) takes psycopg (3), then psycopg2, then the C(psql) binary, whichever is
        available first on the target.
    type: str
    default: auto
    choices: [auto, psycopg, psycopg2, psql]
requirements:
  - PostgreSQL 12 or newer on the server.
  - On the target, one of the C(psql) client (Debian package C(postgresql-client)), the Python package C(psycopg)
    or C(psycopg2). Without any the module fails and says which to install.
"""
