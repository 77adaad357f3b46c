# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write an incident report on the controller, in-process (no module round trip)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import re

from ansible.plugins.action import ActionBase
from ansible_collections.agentops.runbooks.plugins.module_utils import safefile
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
REQUIRED = ("incident_id", "severity", "generated_at", "hosts", "summary")
FILES = ("report.json", "report.md")
# The documents the incident_report action adds (``extra``), and the key of each in the returned paths.
EXTRA = {"postmortem.md": "postmortem", "status-update.md": "status_update", "report.html": "html"}
# Temporary files safefile.atomic_file leaves only when a run is killed mid-write: ours to clear under the lock.
STALE = re.compile(r"^\.(report\.json|report\.md|report\.html|postmortem\.md|status-update\.md)\.[0-9a-f]+\.tmp$")


def write_report(directory, report, extra=None):
    """Write report.json and report.md, and the documents in ``extra``, under ``directory/<incident_id>``; return
    their paths (``directory``, ``json``, ``markdown``, and ``postmortem``, ``status_update``, ``html`` for the
    documents written).

    ``extra`` is ``{file name: text}``, file names from ``EXTRA`` only. The incident directory is private (0700,
    never a symbolic link, ours) and every file is 0600. All are written to temporary files and renamed into place
    while holding an exclusive lock on the incident directory, so concurrent runs with one incident id always leave
    files from the same run.

    Raises ValueError (bad input, or a path safefile refuses) or OSError (cannot write).
    """
    if not isinstance(report, dict) or any(key not in report for key in REQUIRED):
        raise ValueError("report must be the incident_report filter's output (with %s)." % ", ".join(REQUIRED))
    incident_id = str(report["incident_id"])
    if not ID_PATTERN.match(incident_id) or incident_id in (".", ".."):
        raise ValueError("incident id %r may only hold letters, digits, '.', '_' and '-'." % incident_id)
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise ValueError("extra must map file names to their text, got %s." % type(extra).__name__)
    unknown = sorted(str(name) for name in extra if name not in EXTRA)
    if unknown:
        raise ValueError("write_report does not write %s; besides %s it writes only %s." % (
            ", ".join(unknown), " and ".join(FILES), ", ".join(sorted(EXTRA))))
    for name, text in extra.items():
        if not isinstance(text, str):
            raise ValueError("the text of %s must be a string, got %s." % (name, type(text).__name__))
    texts = [(FILES[0], json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"), (FILES[1], incident.report_markdown(report))]
    texts += [(name, extra[name]) for name in sorted(extra)]
    base = os.path.abspath(os.path.expanduser(directory))
    target = os.path.join(base, incident_id)
    fd = safefile.open_dir(target, base=base)
    try:
        with safefile.locked(fd):
            for name in os.listdir(fd):
                if STALE.match(name):
                    os.unlink(name, dir_fd=fd)
            # Every temporary file is complete before any rename, and the renames happen under the lock.
            with contextlib.ExitStack() as files:
                for name, text in texts:
                    files.enter_context(safefile.atomic_file(fd, name, where=target)).write(text.encode("utf-8"))
    finally:
        os.close(fd)
    paths = {"directory": target, "json": os.path.join(target, FILES[0]), "markdown": os.path.join(target, FILES[1])}
    paths.update((EXTRA[name], os.path.join(target, name)) for name in sorted(extra))
    return paths


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dir", "report"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        unknown = sorted(set(args) - self._VALID_ARGS)
        if unknown:
            return dict(result, failed=True, msg="write_report does not take %s; it takes dir and report." % ", ".join(unknown))
        directory = args.get("dir")
        if not directory or not isinstance(directory, str):
            return dict(result, failed=True, msg="write_report needs dir, the directory that holds incident reports.")
        try:
            paths = write_report(directory, args.get("report"))
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        except OSError as exc:
            return dict(result, failed=True, msg="Cannot write the incident report under %s: %s." % (
                os.path.abspath(os.path.expanduser(directory)), exc.strerror or exc))
        # The report is the diagnosis' output on the controller, not a change to a managed host.
        return dict(result, changed=False, paths=paths)
