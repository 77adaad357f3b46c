# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Partial results of a sliced diagnosis (AWX job slicing), and their merge into one incident.

A slice runs diagnose.yml with ``agentops_report_partial: true``: instead of classifying, it writes what the report
is built from for its own hosts - each host's ``diagnose_result`` (or none: unreachable), ``deploy_rollback_result`` and
the ``agentops_pg_*`` variables a fix command names (never a password) - as
``<report dir>/<incident id>/partials/partial-<hash of its host names>.json`` (0600, directory 0700). A slice run again
over the same hosts replaces its own file. ``playbooks/aggregate_report.yml`` reads every partial of the incident (from
that directory or the upload place), :func:`merge` gives the hostvars and hosts that ``incident.incident_report`` takes,
and the one report is classified as if one run had diagnosed every host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import re

from ansible_collections.agentops.runbooks.plugins.module_utils import safefile

SCHEMA = "agentops.runbooks/partial/v1"
FOLDER = "partials"
NAME = re.compile(r"^partial-[0-9a-f]{16}\.json$")
HOST_VARS = ("agentops_pg_host", "agentops_pg_port", "agentops_pg_user", "agentops_pg_database")
MAX_BYTES = 256 * 1024 * 1024


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(host_vars, name):
    try:
        value = host_vars.get(name)
    except Exception:  # pylint: disable=broad-except  # an undefined or broken template: leave it out
        return None
    if value in (None, "") or str(value).startswith("__omit_place_holder__"):
        return None
    return value if isinstance(value, (str, int, float)) else None


def build(hostvars, hosts, incident_id, version=None, diagnosed_at=None, job=None):
    """The partial result of one slice: ``hosts`` (``ansible_play_hosts_all``) with what ``hostvars`` recorded."""
    records = {}
    for host in hosts:
        try:
            host_vars = hostvars[host]
        except (KeyError, TypeError):
            host_vars = {}
        record = _value_of(host_vars, "diagnose_result")
        rollback = _value_of(host_vars, "deploy_rollback_result")
        records[str(host)] = {
            "diagnose_result": record if isinstance(record, dict) else None,
            "deploy_rollback_result": rollback if isinstance(rollback, dict) else None,
            "vars": dict((name, v) for name, v in ((name, _value(host_vars, name)) for name in HOST_VARS) if v is not None),
        }
    return {"schema": SCHEMA, "incident_id": str(incident_id), "diagnosed_at": diagnosed_at or _now(),
            "generator": {"collection": "agentops.runbooks", "version": version}, "job": dict(job or {}), "hosts": records}


def _value_of(host_vars, name):
    try:
        return host_vars.get(name)
    except Exception:  # pylint: disable=broad-except
        return None


def name_of(partial):
    """``partial-<16 hex>.json``: the same for the same set of hosts, so a slice run again replaces its own file."""
    digest = hashlib.sha256("\n".join(sorted(partial["hosts"])).encode("utf-8")).hexdigest()[:16]
    return "partial-%s.json" % digest


def dumps(partial):
    return json.dumps(partial, indent=1, sort_keys=True, default=str) + "\n"


def write(directory, partial):
    """Write ``partial`` under ``directory/<incident id>/partials/``; return ``(incident directory, relative name)``."""
    from ansible_collections.agentops.runbooks.plugins.action.write_report import ID_PATTERN

    incident_id = partial["incident_id"]
    if not ID_PATTERN.match(incident_id) or incident_id in (".", ".."):
        raise ValueError("incident id %r may only hold letters, digits, '.', '_' and '-'." % incident_id)
    base = os.path.abspath(os.path.expanduser(directory))
    target = os.path.join(base, incident_id)
    os.close(safefile.open_dir(target, base=base))
    folder = os.path.join(target, FOLDER)
    fd = safefile.open_dir(folder, base=target)
    name = name_of(partial)
    try:
        with safefile.locked(fd):
            safefile.write_private(fd, name, dumps(partial), where=folder)
    finally:
        os.close(fd)
    return target, "%s/%s" % (FOLDER, name)


def load(text, source, incident_id=None):
    """One partial from its JSON ``text`` (bytes or str); raises ValueError naming ``source``."""
    try:
        data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("%s is not JSON: %s" % (source, exc))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("hosts"), dict):
        raise ValueError("%s is not a partial result (%s)." % (source, SCHEMA))
    if incident_id is not None and str(data.get("incident_id")) != str(incident_id):
        raise ValueError("%s belongs to incident %s, not %s." % (source, data.get("incident_id"), incident_id))
    return data


def read_dir(directory, incident_id):
    """``[(source, partial)]`` of ``directory/<incident id>/partials/`` (sorted), and the problems of files that
    could not be read (sentences)."""
    folder = os.path.join(os.path.abspath(os.path.expanduser(directory)), str(incident_id), FOLDER)
    if not os.path.isdir(folder):
        return [], ["no partial results under %s." % folder]
    found, problems = [], []
    for name in sorted(os.listdir(folder)):
        if not NAME.match(name):
            continue
        path = os.path.join(folder, name)
        try:
            fd = safefile.open_read(path)
            with os.fdopen(fd, "rb") as handle:
                found.append((path, load(handle.read(MAX_BYTES), path, incident_id)))
        except (OSError, ValueError) as exc:
            problems.append("%s: %s" % (path, exc))
    return found, problems


def merge(partials, incident_id):
    """``(hostvars, hosts, diagnosed_at, warnings)`` from ``[(source, partial)]`` for ``incident.incident_report``.

    Hosts come in name order. A host in several partials (a slice re-run, or slicing changed between runs) takes the one
    diagnosed last, with a warning. ``diagnosed_at`` is the latest slice's, so that recency is weighed as of the diagnosis
    rather than of the aggregation. Raises ValueError when there is nothing to merge."""
    if not partials:
        raise ValueError("no partial results of incident %s to aggregate." % incident_id)
    chosen, warnings = {}, []
    for source, partial in sorted(partials, key=lambda item: (str(item[1].get("diagnosed_at")), item[0])):
        for host, entry in partial["hosts"].items():
            if host in chosen:
                warnings.append("%s is in more than one partial result; the latest (%s) is used." % (host, source))
            chosen[host] = entry if isinstance(entry, dict) else {}
    versions = sorted(set(str((p.get("generator") or {}).get("version")) for dummy, p in partials))
    if len(versions) > 1:
        warnings.append("the partial results come from different collection versions (%s)." % ", ".join(versions))
    hostvars = {}
    for host, entry in chosen.items():
        values = dict(entry.get("vars") or {})
        if isinstance(entry.get("diagnose_result"), dict):
            values["diagnose_result"] = entry["diagnose_result"]
        if isinstance(entry.get("deploy_rollback_result"), dict):
            values["deploy_rollback_result"] = entry["deploy_rollback_result"]
        hostvars[host] = values
    diagnosed_at = max(str(p.get("diagnosed_at") or "") for dummy, p in partials) or None
    return hostvars, sorted(hostvars), diagnosed_at, warnings
