# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write an incident report on the controller, in-process (no module round trip)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible.plugins.action import ActionBase
from ansible_collections.agentops.runbooks.plugins.module_utils import safefile
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
REQUIRED = ("incident_id", "severity", "generated_at", "hosts", "summary")
FILES = ("report.json", "report.md")
# Temporary files safefile.atomic_file leaves only when a run is killed mid-write: ours to clear under the lock.
STALE = re.compile(r"^\.report\.(json|md)\.[0-9a-f]+\.tmp$")


def write_report(directory, report):
    """Write report.json and report.md under ``directory/<incident_id>``; return their paths.

    The incident directory is private (0700, never a symbolic link, ours) and both files are 0600. Both are written
    to temporary files and renamed into place while holding an exclusive lock on the incident directory, so
    concurrent runs with one incident id always leave a pair from the same run.

    Raises ValueError (bad input, or a path safefile refuses) or OSError (cannot write).
    """
    if not isinstance(report, dict) or any(key not in report for key in REQUIRED):
        raise ValueError("report must be the incident_report filter's output (with %s)." % ", ".join(REQUIRED))
    incident_id = str(report["incident_id"])
    if not ID_PATTERN.match(incident_id) or incident_id in (".", ".."):
        raise ValueError("incident id %r may only hold letters, digits, '.', '_' and '-'." % incident_id)
    texts = (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", incident.report_markdown(report))
    base = os.path.abspath(os.path.expanduser(directory))
    target = os.path.join(base, incident_id)
    fd = safefile.open_dir(target, base=base)
    try:
        with safefile.locked(fd):
            for name in os.listdir(fd):
                if STALE.match(name):
                    os.unlink(name, dir_fd=fd)
            # Both temporary files are complete before either rename, and the renames happen under the lock.
            with safefile.atomic_file(fd, FILES[0], where=target) as json_file:
                json_file.write(texts[0].encode("utf-8"))
                with safefile.atomic_file(fd, FILES[1], where=target) as markdown_file:
                    markdown_file.write(texts[1].encode("utf-8"))
    finally:
        os.close(fd)
    return {"directory": target, "json": os.path.join(target, FILES[0]), "markdown": os.path.join(target, FILES[1])}


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
