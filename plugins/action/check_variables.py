# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a role's variables before it does anything: typos warn, bad flags and out-of-range numbers fail."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.plugin_utils import variables


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("flags", "ranges", "thresholds", "patterns", "public", "families"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        unknown_args = sorted(set(args) - self._VALID_ARGS)
        if unknown_args:
            return dict(result, failed=True, msg="check_variables does not take %s; it takes %s." % (
                ", ".join(unknown_args), ", ".join(sorted(self._VALID_ARGS))))
        ranges = dict(args.get("ranges") or {})
        if args.get("families"):
            # the ranges of every signal family's public variables come from the registry (diagnose_<suffix>)
            for entry in collectors.role_variables():
                if entry["range"] is not None:
                    ranges.setdefault("diagnose_" + entry["suffix"], list(entry["range"]))
        try:
            unknown, messages, problems = variables.check(task_vars, self._templar.template, args.get("flags"), ranges,
                                                          args.get("thresholds"), args.get("patterns"), args.get("public"))
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(changed=False, unknown_variables=unknown, messages=messages)
        if messages:
            result["warnings"] = messages
        if problems:
            more = " (and %d more: %s)" % (len(problems) - 1, " ".join(problems[1:])) if len(problems) > 1 else ""
            return dict(result, failed=True, msg=problems[0] + more, problems=problems)
        return result
