# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way this collection reaches PostgreSQL.

``connect(params, runner)`` returns a connection with one method, ``json(sql)``,
that runs a statement returning a single JSON value and gives it back as Python
data. It uses psycopg (3) or psycopg2 when importable, and otherwise the ``psql``
client (``-A -t`` output, the script on standard input, the password in the
environment, never on a command line), so a bare database host needs nothing
extra. Connection failures raise :class:`PgError` with a ``kind`` that the
findings classify (refused, auth, too_many_clients, reserved_slots, ...).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

CLIENTS = ("auto", "psycopg", "psycopg2", "psql")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
APPLICATION_NAME = "agentops.runbooks"

# Ordered: the first pattern that matches a connection error names its kind.
# Strings verified against PostgreSQL 15 and 16 sources (see docs/Production-Debugging-Playbooks.md).
ERROR_KINDS = (
    ("too_many_clients", re.compile(r"sorry, too many clients already|SQLSTATE 53300|\b53300\b", re.I)),
    ("reserved_slots", re.compile(
        r"remaining connection slots are reserved for (?:non-replication superuser connections"
        r"|roles with the SUPERUSER attribute|roles with privileges of the \"pg_use_reserved_connections\" role)", re.I)),
    ("auth", re.compile(r"password authentication failed|no pg_hba\.conf entry|authentication failed"
                        r"|role \"[^\"]*\" does not exist|no password supplied|fe_sendauth", re.I)),
    ("database_missing", re.compile(r"database \"[^\"]*\" does not exist", re.I)),
    ("refused", re.compile(r"connection refused|No such file or directory\s*\n?\s*Is the server running", re.I)),
    ("timeout", re.compile(r"timeout expired|timed out", re.I)),
    ("dns", re.compile(r"could not translate host name|Name or service not known|Temporary failure in name resolution", re.I)),
    ("ssl", re.compile(r"SSL|certificate", re.I)),
    ("shutting_down", re.compile(r"the database system is (?:shutting down|starting up|in recovery mode)", re.I)),
)


# Run first on every connection: remember the server's statement_timeout (the
# audit reports it), then bound this session's own statements.
PRELUDE = ("DO $$BEGIN PERFORM set_config('agentops.server_statement_timeout', current_setting('statement_timeout'), false); "
           "END$$;\nSET statement_timeout = %d;\n")


class PgError(Exception):
    """A connection or query error; its message is redacted (a server error can quote the statement or a DSN)."""

    def __init__(self, message, kind=None):
        message = " ".join(str(message).split())
        kind = kind or classify(message)
        message = Redactor().text(message)
        super(PgError, self).__init__(message)
        self.message = message
        self.kind = kind


class PgClientMissing(Exception):
    pass


def classify(message):
    for kind, pattern in ERROR_KINDS:
        if pattern.search(message or ""):
            return kind
    return "other"


def argument_spec():
    """The connection options every PostgreSQL module shares (documented in the postgres doc fragment)."""
    return dict(
        host=dict(type="str"),
        port=dict(type="int", default=5432),
        user=dict(type="str"),
        password=dict(type="str", no_log=True),
        database=dict(type="str", default="postgres"),
        sslmode=dict(type="str", default="prefer", choices=list(SSLMODES)),
        connect_timeout=dict(type="int", default=5),
        statement_timeout_ms=dict(type="int", default=10000),
        client=dict(type="str", default="auto", choices=list(CLIENTS)),
    )


def validate(params):
    """Range checks AnsibleModule cannot express; raises ValueError with one sentence."""
    if not 1 <= params["port"] <= 65535:
        raise ValueError("port must be between 1 and 65535, got %d." % params["port"])
    if not 1 <= params["connect_timeout"] <= 300:
        raise ValueError("connect_timeout must be between 1 and 300 seconds, got %d." % params["connect_timeout"])
    if not 100 <= params["statement_timeout_ms"] <= 600000:
        raise ValueError("statement_timeout_ms must be between 100 and 600000, got %d." % params["statement_timeout_ms"])


def _import_driver(name):
    try:
        if name == "psycopg":
            import psycopg  # pylint: disable=import-outside-toplevel
            return psycopg
        import psycopg2  # pylint: disable=import-outside-toplevel
        return psycopg2
    except ImportError:
        return None


class DriverConnection(object):
    def __init__(self, driver_name, module, params):
        self.client = driver_name
        kwargs = dict(
            host=params.get("host"), port=params.get("port"), user=params.get("user"), password=params.get("password"),
            dbname=params.get("database"), sslmode=params.get("sslmode"), connect_timeout=params.get("connect_timeout"),
            application_name=APPLICATION_NAME,
        )
        kwargs = dict((k, v) for k, v in kwargs.items() if v is not None)
        try:
            self.conn = module.connect(**kwargs)
            self.conn.autocommit = True
            cursor = self.conn.cursor()
            cursor.execute(PRELUDE % params["statement_timeout_ms"])
            cursor.close()
        except Exception as exc:  # the drivers raise their own OperationalError classes
            raise PgError(str(exc))

    def json(self, sql):
        try:
            cursor = self.conn.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
            cursor.close()
        except Exception as exc:
            raise PgError(str(exc), kind="query")
        value = row[0] if row else None
        return json.loads(value) if isinstance(value, str) else value

    def execute(self, sql):
        """Run a statement that returns no rows (ALTER ROLE ...)."""
        try:
            cursor = self.conn.cursor()
            cursor.execute(sql)
            cursor.close()
        except Exception as exc:
            raise PgError(str(exc), kind="query")

    def close(self):
        try:
            self.conn.close()
        except Exception:  # closing a broken connection must not hide the real error
            pass


class PsqlConnection(object):
    """psql with the SQL on stdin: no shell, no secrets in argv."""

    def __init__(self, psql, runner, params):
        self.client = "psql"
        self.psql = psql
        self.runner = runner
        env = {
            "PGHOST": params.get("host"), "PGPORT": str(params.get("port")), "PGUSER": params.get("user"),
            "PGPASSWORD": params.get("password"), "PGDATABASE": params.get("database"), "PGSSLMODE": params.get("sslmode"),
            "PGCONNECT_TIMEOUT": str(params.get("connect_timeout")), "PGAPPNAME": APPLICATION_NAME,
        }
        self.prelude = PRELUDE % params["statement_timeout_ms"]
        self.env = dict((k, v) for k, v in env.items() if v not in (None, "None"))
        self.json("SELECT 1")  # connect now, so connection errors surface as such

    def json(self, sql):
        argv = [self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        rc, out, err = self.runner(argv, self.prelude + sql, self.env)
        if rc != 0:
            message = re.sub(r"^psql:(?:<stdin>:\d+:)?\s*(?:error:\s*)?", "", (err or out).strip())
            raise PgError(message or "psql exited with status %d" % rc, kind=None if rc == 2 else "query")
        text = out.strip()
        return json.loads(text) if text else None

    def execute(self, sql):
        """Run a statement that returns no rows (ALTER ROLE ...)."""
        self.json(sql + ";\nSELECT 'null'::json")

    def close(self):
        pass


def connect(params, runner=None, find_psql=None):
    """Connect with the first client available (or the one ``params['client']`` names).

    ``runner(argv, stdin_text, env) -> (rc, stdout, stderr)`` runs psql;
    ``find_psql()`` returns its path or None. Raises PgClientMissing or PgError.
    """
    wanted = params.get("client") or "auto"
    for name in ("psycopg", "psycopg2"):
        if wanted in ("auto", name):
            module = _import_driver(name)
            if module is not None:
                return DriverConnection(name, module, params)
    if wanted in ("auto", "psql"):
        psql = find_psql() if find_psql else None
        if psql and runner:
            return PsqlConnection(psql, runner, params)
    raise PgClientMissing(
        "No PostgreSQL client found on this host for client=%s: install the psql client (postgresql-client) "
        "or the Python package psycopg (or psycopg2) for the interpreter Ansible uses." % wanted)


def module_runner(module):
    """Adapt AnsibleModule.run_command to the runner signature connect() takes."""
    def run(argv, data, env):
        return module.run_command(argv, data=data, environ_update=env, binary_data=False, check_rc=False)
    return run
