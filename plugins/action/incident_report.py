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
from ansible_collections.agentops.runbooks.plugins.plugin_utils import documents, html_report, incident, notify, variables


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dir", "hosts", "incident_id", "sev1_host_ratio", "recent_window", "version", "ranges", "escalation"))

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
        try:  # bad escalation levels are one sentence, and nothing is written
            levels = documents.check_escalation(args.get("escalation"), name="agentops_escalation" if "agentops_escalation" in task_vars
                                                else "incident_report_escalation")
        except ValueError as exc:
            problems.append(str(exc))
        notify_config = notify.config_from_vars(task_vars, self._templar.template)
        problems.extend(notify.check(notify_config))
        if problems:
            return dict(result, failed=True, msg=problems[0], problems=problems)
        try:
            report = incident.incident_report(task_vars.get("hostvars") or {}, list(args.get("hosts") or []), args.get("incident_id"),
                                              sev1_host_ratio=args.get("sev1_host_ratio", 0.5), version=args.get("version"),
                                              warnings=warnings, recent_window=args.get("recent_window", 900))
            report = notify.without_secrets(report, notify_config)  # a sink's secret that reached the facts (a command line)
            escalation = documents.escalation(report, levels)
            extra = {
                "postmortem.md": documents.postmortem_markdown(report, levels),
                "status-update.md": documents.status_update_markdown(report, levels),
                "report.html": html_report.report_html(report, levels)}
            previous = notify.previous_results(directory, report["incident_id"])  # an earlier run's tickets, before overwriting
            paths = write_report(directory, report, extra=extra)
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        except OSError as exc:
            return dict(result, failed=True, msg="Cannot write the incident report under %s: %s." % (
                os.path.abspath(os.path.expanduser(directory)), exc.strerror or exc))
        if notify.configured(notify_config):  # never fatal: each sink's result goes into report.json
            report["notifications"] = notify.deliver(report, notify_config, paths=paths, previous=previous)
            try:
                write_report(directory, report, extra=extra)
            except (ValueError, OSError) as exc:
                warnings.append("The delivery results could not be added to report.json: %s" % exc)
        lines = ["%s: %s" % (report["verdict"], report["severity_reason"]),
                 "Not checked: %s" % ("; ".join(sorted(set(s["what"] for s in report["not_checked"]))) or "nothing"),
                 "Page now: %s" % (", ".join("%s (%s)" % (level["contact"], level["method"]) for level in escalation["page_now"]) or "nobody"),
                 "Report: %s" % paths["markdown"], "JSON:   %s" % paths["json"], "HTML:   %s" % paths["html"],
                 "Postmortem draft: %s" % paths["postmortem"], "Status update: %s" % paths["status_update"]]
        lines += ["Notified: " + notify.describe(item) for item in report.get("notifications") or []]
        stats = incident.report_stats(report, paths)
        stats["page_now"] = [level["contact"] for level in escalation["page_now"]]
        result.update(changed=False, report=report, paths=paths, verdict=lines, escalation=escalation,
                      ansible_stats={"data": {"agentops_incident": stats}, "per_host": False, "aggregate": False})
        if warnings:
            result["warnings"] = warnings
        return result
