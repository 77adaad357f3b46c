# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""User-supplied SQL for the coordination family (``agentops_stuck_task_query``, a heartbeat source's ``pg_query``),
refused up front unless it is one plain SELECT/WITH statement, then run through the one PostgreSQL connector
(``pg.connect``) inside ``BEGIN READ ONLY`` with ``SET LOCAL statement_timeout``; the server refuses any write that the
check here would miss. Timestamps (epoch seconds or milliseconds, ISO 8601) are parsed here too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import math
import re

# Words that write from inside a SELECT (a data-modifying WITH, SELECT INTO), and functions with side effects a
# read-only transaction still allows (signalling backends, advisory locks, files, dblink). Other statements
# (DROP, SET, COPY ...) cannot follow the first word of one statement: a second statement is refused by its ';'.
WRITES = re.compile(r"\b(insert|update|delete|merge|into|nextval|setval|set_config|"
                    r"pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_switch_wal|pg_promote|"
                    r"pg_advisory\w*|pg_try_advisory\w*|pg_read_\w*file|pg_ls_\w+|pg_file_\w+|lo_\w+|dblink\w*|"
                    r"pg_create_\w+|pg_drop_\w+|pg_replication_\w+|pg_logical_\w+)\b", re.I)
_STRING = re.compile(r"(?:[EeUuBbXxNn]&?)?'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$[A-Za-z_0-9]*\$)[\s\S]*?\1", re.S)
_COMMENT = re.compile(r"--[^\n]*|/\*[\s\S]*?\*/")


def _without_literals(sql):
    out, pos = [], 0
    while pos < len(sql):
        comment, string = _COMMENT.match(sql, pos), _STRING.match(sql, pos)
        if comment:
            out.append(" ")
            pos = comment.end()
        elif string:
            out.append(" '' ")
            pos = string.end()
        elif sql[pos] in "'\"" or sql.startswith("/*", pos):
            raise ValueError("unterminated")
        else:
            out.append(sql[pos])
            pos += 1
    return "".join(out)


def read_only_query(sql, where):
    """``sql`` without a trailing semicolon when it is one SELECT (or WITH ... SELECT) statement that neither writes nor
    locks; ValueError with one sentence naming ``where`` otherwise."""
    text = (sql or "").strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ValueError("%s is empty; give one SELECT statement." % where)
    try:
        bare = _without_literals(text)
    except ValueError:
        raise ValueError("%s has an unterminated string, identifier or comment." % where)
    words = bare.split()
    first = words[0].lower() if words else ""
    if first not in ("select", "with", "values", "table", "(select"):
        raise ValueError("%s must be one read-only SELECT or WITH statement; it starts with %r, which is refused."
                         % (where, (words[0] if words else "")[:20]))
    if ";" in bare:
        raise ValueError("%s holds more than one statement; give exactly one SELECT." % where)
    found = WRITES.search(bare)
    if found:
        raise ValueError("%s is not read-only (it uses %s); give a plain SELECT, which runs in a read-only transaction."
                         % (where, found.group(0).upper()))
    if re.search(r"\bfor\s+(?:no\s+key\s+)?(?:update|share|key\s+share)\b", bare, re.I):
        raise ValueError("%s locks rows (FOR UPDATE/SHARE); give a plain SELECT." % where)
    return text


def run_read_only(conn, sql, timeout_ms, limit):
    """The rows (dicts) of ``sql`` (already checked by ``read_only_query``), at most ``limit``, run in a read-only
    transaction with a statement timeout on a connection from ``pg.connect``. Raises pg.PgError."""
    wrapped = "SELECT coalesce(json_agg(t), '[]'::json) FROM (SELECT * FROM (\n%s\n) AS q LIMIT %d) AS t" % (sql, int(limit))
    setup = "SET LOCAL statement_timeout = %d" % int(timeout_ms)
    if getattr(conn, "client", None) == "psql":
        return conn.json("BEGIN READ ONLY;\n%s;\n%s;\n" % (setup, wrapped)) or []
    conn.execute("BEGIN READ ONLY")
    try:
        conn.execute(setup)
        return conn.json(wrapped) or []
    finally:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # pylint: disable=broad-except  # the connection may be gone; the first error is the one to report
            pass


# ------------------------------------------------------------------ timestamps
_ISO = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*"
                  r"(Z|[+-]\d{2}(?::?\d{2})?)?\s*$", re.I)
EARLIEST = 946684800  # 2000-01-01: an epoch number before this is not a timestamp (a priority, a counter)


def epoch(value, now=None):
    """Seconds since the epoch of ``value``: a number (or numeric string) of seconds or milliseconds (or
    microseconds), or an ISO 8601 string (no zone means UTC); None when it is neither."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool) or value is None:
        return None
    number = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        stripped = value.strip()
        try:
            number = float(stripped)
        except ValueError:
            return _iso(stripped)
    if number is None or math.isnan(number):
        return None
    for scale in (1.0, 1000.0, 1000000.0):
        seconds = number / scale
        if EARLIEST <= seconds <= (now or 4102444800) + 86400 * 366:
            return seconds
    return None


def _iso(value):
    match = _ISO.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        seconds = calendar.timegm((int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if fraction:
        seconds += float("0." + fraction)
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        seconds -= sign * offset
    return seconds


def iso(seconds):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
