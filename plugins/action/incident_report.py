# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build, write and publish the incident report in one controller-side task (no module round trip)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.agentops.runbooks.plugins.action.write_report import write_report
from ansible_collections.agentops.runbooks.plugins.plugin_utils import documents, html_report, incident, notify, partial, registry, rolespec
from ansible_collections.agentops.runbooks.plugins.plugin_utils import upload, variables

TIMESTAMP_ID = re.compile(r"^\d{8}T\d{6}Z$")  # the role's default incident id: one per run, so never shared by slices
JOB_VARS = ("awx_job_id", "awx_workflow_job_id", "awx_job_template_name", "tower_job_id")


def _var(task_vars, template, *names):
    """The first of ``names`` set in the play (templated), else None; a value that fails to template is None."""
    for name in names:
        if name in task_vars:
            try:
                return template(task_vars[name]) if template is not None else task_vars[name]
            except Exception:  # pylint: disable=broad-except  # an undefined template: not set
                return None
    return None


def read_partials(source, incident_id, token, warnings):
    """``[(source, partial)]`` of the incident from ``source``: a directory of reports, a URL or a mapping as
    agentops_report_upload takes. Problems reading one file become ``warnings``; a source that cannot be read at all
    raises ValueError."""
    remote = isinstance(source, dict) or (isinstance(source, str) and re.match(r"^(https?|s3)://", source.strip()))
    if not remote:
        if not isinstance(source, str) or not source.strip():
            raise ValueError("agentops_report_partials_from must be a directory, a URL or a mapping like agentops_report_upload.")
        found, problems = partial.read_dir(source.strip(), incident_id)
        warnings.extend(problems if found else [])
        if not found:
            raise ValueError("Cannot aggregate incident %s: %s" % (incident_id, "; ".join(problems) or "no partial results."))
        return found
    conf, problems = upload.settings(source, token)
    hidden = upload.secrets(conf)
    if problems:
        raise ValueError(notify.scrub(problems[0].replace(upload.NAME, "agentops_report_partials_from"), hidden))
    where = upload.location(conf, incident_id) + partial.FOLDER + "/"
    try:
        names = [n for n in upload.list_names(conf, incident_id, partial.FOLDER) if partial.NAME.match(n)]
    except (notify.DeliveryError, ValueError, SyntaxError) as exc:  # SyntaxError: ElementTree's ParseError
        raise ValueError(notify.scrub("Cannot list the partial results at %s: %s." % (where, exc), hidden))
    found = []
    for name in names:
        try:
            found.append((where + name, partial.load(upload.fetch(conf, incident_id, partial.FOLDER + "/" + name), where + name, incident_id)))
        except (notify.DeliveryError, ValueError) as exc:
            warnings.append(notify.scrub("%s%s could not be read: %s" % (where, name, exc), hidden))
    if not found:
        raise ValueError("Cannot aggregate incident %s: no partial results at %s%s" % (
            incident_id, where, " (%s)." % "; ".join(warnings) if warnings else "."))
    return found


display = Display()


def _colour(severity):
    return {"SEV-1": C.COLOR_ERROR, "SEV-2": C.COLOR_ERROR, "SEV-3": C.COLOR_WARN}.get(severity, C.COLOR_OK)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dir", "hosts", "incident_id", "sev1_host_ratio", "recent_window", "version", "ranges", "escalation", "show",
                             "partial", "partials_from"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        registry.prime_here()  # the families' titles, kept between runs (plugin_utils/registry.py)
        task_vars = task_vars or {}
        args = self._task.args
        unknown = sorted(set(args) - self._VALID_ARGS)
        if unknown:
            return dict(result, failed=True, msg="incident_report does not take %s; it takes %s." % (
                ", ".join(unknown), ", ".join(sorted(self._VALID_ARGS))))
        # The role's argument spec, checked here (plugins/plugin_utils/rolespec.py): the collection's playbooks import the
        # role with rolespec_validate: false, one task per run instead of one per host.
        found = rolespec.problems(self._task, task_vars, self._templar)
        if found:
            return rolespec.refusal(result, found, "incident_report")
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
        # The upload (agentops_report_upload, its token no_log) is read from the play's variables like the sinks' settings.
        token = _var(task_vars, self._templar.template, "incident_report_upload_token", "agentops_report_upload_token") or ""
        upload_conf, upload_problems = upload.settings(
            _var(task_vars, self._templar.template, "incident_report_upload", "agentops_report_upload"), token)
        problems.extend(upload_problems)
        hidden = upload.secrets(upload_conf)
        is_partial = variables.flag(args.get("partial", False))
        if is_partial is None:
            problems.append("agentops_report_partial must be true or false, got %r." % (args.get("partial"),))
        partials_from = args.get("partials_from") or None
        if is_partial and partials_from:
            problems.append("agentops_report_partial and agentops_report_partials_from exclude each other: a slice writes a partial "
                            "result, the aggregation reads them.")
        incident_id = str(args.get("incident_id"))
        if (is_partial or partials_from) and TIMESTAMP_ID.match(incident_id) and "agentops_incident_id" not in task_vars:
            problems.append("%s needs agentops_incident_id: every slice and the aggregation must name the same incident." % (
                "agentops_report_partial" if is_partial else "agentops_report_partials_from"))
        # A host whose diagnose variables were refused (the diagnose role's rescue set diagnose_refused): no report at all,
        # rather than one that counts that host as unreachable (a false SEV-1) or leaves it out.
        all_hostvars = task_vars.get("hostvars") or {}
        for name in list(args.get("hosts") or []):
            refused = _var(all_hostvars.get(name) or {}, None, "diagnose_refused")
            if refused:
                problems.append("No report: the variables of %s are not valid: %s" % (name, refused))
                break
        if problems:
            return dict(result, failed=True, msg=notify.scrub(problems[0], hidden), problems=notify.scrub(problems, hidden))
        if is_partial:
            return self._partial(result, task_vars, args, directory, notify_config, upload_conf, hidden, warnings)
        hostvars, hosts, generated_at = task_vars.get("hostvars") or {}, list(args.get("hosts") or []), None
        try:
            if partials_from:
                found = read_partials(partials_from, incident_id, token, warnings)
                hostvars, hosts, generated_at, merged = partial.merge(found, incident_id)
                warnings.extend(merged)
        except ValueError as exc:
            return dict(result, failed=True, msg=notify.scrub(str(exc), hidden))
        try:
            report = incident.incident_report(hostvars, hosts, incident_id, generated_at=generated_at,
                                              sev1_host_ratio=args.get("sev1_host_ratio", 0.5), version=args.get("version"),
                                              warnings=warnings, recent_window=args.get("recent_window", 900))
            if partials_from:
                report["aggregated"] = {"partials": len(found), "sources": [source for source, dummy in found]}
            report = notify.without_secrets(report, notify_config)  # a sink's secret that reached the facts (a command line)
            report = notify.scrub(report, hidden)  # and the upload's
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
        uploaded = None
        if upload_conf:  # never fatal: the result goes into report.json, set_stats and the verdict
            uploaded = upload.upload(paths["directory"], report["incident_id"], upload_conf, version=args.get("version"))
            report["upload"] = uploaded
        if notify.configured(notify_config):  # never fatal: each sink's result goes into report.json
            link = uploaded["url"] if uploaded and uploaded["ok"] and not upload_conf["presigned"] else None
            report["notifications"] = notify.deliver(report, notify_config, paths=paths, previous=previous, report_url=link)
        if uploaded or report.get("notifications") is not None:
            try:
                write_report(directory, report, extra=extra)
            except (ValueError, OSError) as exc:
                warnings.append("The delivery results could not be added to report.json: %s" % exc)
            else:
                if uploaded and uploaded["ok"] and not upload_conf["presigned"]:  # the uploaded report.json gets the results too
                    again = upload.upload(paths["directory"], report["incident_id"], upload_conf, names=["report.json"], version=args.get("version"))
                    uploaded["attempts"] += again["attempts"]
                    if not again["ok"]:
                        uploaded.update(ok=False, error="report.json with the delivery results: %s" % again["error"])
        if uploaded and uploaded["ok"] and upload_conf["delete_local"]:
            upload.delete_local(paths["directory"], uploaded["uploaded"])
            uploaded["deleted_local"] = True
        lines = ["%s: %s" % (report["verdict"], report["severity_reason"]),
                 "Not checked: %s" % ("; ".join(sorted(set(s["what"] for s in report["not_checked"]))) or "nothing"),
                 "Page now: %s" % (", ".join("%s (%s)" % (level["contact"], level["method"]) for level in escalation["page_now"]) or "nobody"),
                 "Report: %s" % paths["markdown"], "JSON:   %s" % paths["json"], "HTML:   %s" % paths["html"],
                 "Postmortem draft: %s" % paths["postmortem"], "Status update: %s" % paths["status_update"]]
        lines += ["Notified: " + notify.describe(item) for item in report.get("notifications") or []]
        if uploaded:
            lines.append("Uploaded: " + upload.describe(uploaded))
        stats = incident.report_stats(report, paths)
        stats["page_now"] = [level["contact"] for level in escalation["page_now"]]
        if uploaded:
            stats["upload"] = dict((k, uploaded[k]) for k in ("ok", "target", "url", "error", "deleted_local"))
        if partials_from:
            stats["aggregated"] = report["aggregated"]["partials"]
        result.update(changed=False, report=report, paths=paths, verdict=lines, escalation=escalation,
                      ansible_stats={"data": {"agentops_incident": stats}, "per_host": False, "aggregate": False})
        if args.get("show", True):  # the verdict on the console (and in AWX's job output), without a debug task
            display.display("\n".join(lines), color=_colour(report.get("severity")))
        if warnings:
            result["warnings"] = warnings
        return result

    def _partial(self, result, task_vars, args, directory, notify_config, upload_conf, hidden, warnings):
        """A slice's run: write (and upload) the per-host results, without classifying; the aggregation reports."""
        job = dict((name, task_vars[name]) for name in JOB_VARS if isinstance(task_vars.get(name), (str, int)))
        try:
            found = partial.build(task_vars.get("hostvars") or {}, list(args.get("hosts") or []), args.get("incident_id"),
                                  version=args.get("version"), job=job)
            found = notify.scrub(notify.without_secrets(found, notify_config), hidden)
            where, name = partial.write(directory, found)
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        except OSError as exc:
            return dict(result, failed=True, msg="Cannot write the partial result under %s: %s." % (
                os.path.abspath(os.path.expanduser(directory)), exc.strerror or exc))
        path = os.path.join(where, name)
        uploaded = upload.upload(where, found["incident_id"], upload_conf, names=[name], version=args.get("version")) if upload_conf else None
        if uploaded and uploaded["ok"] and upload_conf["delete_local"]:
            upload.delete_local(where, [name])
            uploaded["deleted_local"] = True
        hosts = sorted(found["hosts"])
        lines = ["Partial result of %d host(s), not classified: aggregate the incident's partial results with playbooks/aggregate_report.yml "
                 "(agentops_report_partials_from)." % len(hosts), "Partial: %s" % path]
        if uploaded:
            lines.append("Uploaded: " + upload.describe(uploaded))
        stats = {"incident_id": found["incident_id"], "partial": True, "hosts": hosts, "path": path,
                 "diagnosed": sum(1 for h in found["hosts"].values() if h.get("diagnose_result"))}
        if uploaded:
            stats["upload"] = dict((k, uploaded[k]) for k in ("ok", "target", "url", "error", "deleted_local"))
        result.update(changed=False, partial=found, paths={"directory": where, "partial": path}, verdict=lines, upload=uploaded,
                      ansible_stats={"data": {"agentops_incident": stats}, "per_host": False, "aggregate": False})
        if args.get("show", True):
            display.display("\n".join(lines))
        if warnings:
            result["warnings"] = warnings
        return result
