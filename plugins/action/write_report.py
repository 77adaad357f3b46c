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
import tempfile

from ansible.plugins.action import ActionBase
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
REQUIRED = ("incident_id", "severity", "generated_at", "hosts", "summary")


def write_private(path, text):
    """Atomically replace ``path`` with ``text``, mode 0600 from the start."""
    directory = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(prefix=".report-", dir=directory)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(directory, report):
    """Write report.json and report.md under ``directory/<incident_id>``; return their paths.

    Raises ValueError (bad input) or OSError (cannot write).
    """
    if not isinstance(report, dict) or any(key not in report for key in REQUIRED):
        raise ValueError("report must be the incident_report filter's output (with %s)." % ", ".join(REQUIRED))
    incident_id = str(report["incident_id"])
    if not ID_PATTERN.match(incident_id) or incident_id in (".", ".."):
        raise ValueError("incident id %r may only hold letters, digits, '.', '_' and '-'." % incident_id)
    target = os.path.join(os.path.abspath(os.path.expanduser(directory)), incident_id)
    os.makedirs(target, mode=0o700, exist_ok=True)
    os.chmod(target, 0o700)
    paths = {"directory": target, "json": os.path.join(target, "report.json"), "markdown": os.path.join(target, "report.md")}
    write_private(paths["json"], json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    write_private(paths["markdown"], incident.report_markdown(report))
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
