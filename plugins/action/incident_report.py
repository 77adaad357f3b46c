# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build, write and publish the incident report in one controller-side task (no module round trip)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.plugins.action import ActionBase
from ansible_collections.agentops.runbooks.plugins.action.write_report import write_report
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, variables


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dir", "hosts", "incident_id", "sev1_host_ratio", "recent_window", "version", "ranges"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        unknown = sorted(set(args) - self._VALID_ARGS)
        if unknown:
            return dict(result, failed=True, msg="incident_report does not take %s; it takes %s." % (
                ", ".join(unknown), ", ".join(sorted(self._VALID_ARGS))))
        directory = args.get("dir")
        if not directory or not isinstance(directory, str):
            return dict(result, failed=True, msg="incident_report needs dir, the directory that holds incident reports.")

        dummy, warnings, problems = variables.check(task_vars, self._templar.template, ranges=args.get("ranges"))
        if problems:
            return dict(result, failed=True, msg=problems[0], problems=problems)
        try:
            report = incident.incident_report(task_vars.get("hostvars") or {}, list(args.get("hosts") or []), args.get("incident_id"),
                                              sev1_host_ratio=args.get("sev1_host_ratio", 0.5), version=args.get("version"),
                                              warnings=warnings, recent_window=args.get("recent_window", 900))
            paths = write_report(directory, report)
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        except OSError as exc:
            return dict(result, failed=True, msg="Cannot write the incident report under %s: %s." % (
                os.path.abspath(os.path.expanduser(directory)), exc.strerror or exc))
        lines = ["%s: %s" % (report["verdict"], report["severity_reason"]),
                 "Not checked: %s" % ("; ".join(sorted(set(s["what"] for s in report["not_checked"]))) or "nothing"),
                 "Report: %s" % paths["markdown"], "JSON:   %s" % paths["json"]]
        result.update(changed=False, report=report, paths=paths, verdict=lines,
                      ansible_stats={"data": {"agentops_incident": incident.report_stats(report, paths)},
                                     "per_host": False, "aggregate": False})
        if warnings:
            result["warnings"] = warnings
        return result
