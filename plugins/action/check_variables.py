# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a role's variables before it does anything: typos warn, bad flags and out-of-range numbers fail."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.agentops.runbooks.plugins.plugin_utils import registry, variables


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
        patterns = list(args.get("patterns") or [])
        if args.get("families"):
            registry.prime_here()  # the families' metadata, kept between runs (plugin_utils/registry.py)
            ranges, patterns = variables.with_families(task_vars, ranges, patterns)
        try:
            unknown, messages, problems = variables.check(task_vars, self._templar.template, args.get("flags"), ranges,
                                                          args.get("thresholds"), patterns, args.get("public"))
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(changed=False, unknown_variables=unknown, messages=messages)
        if messages:
            result["warnings"] = messages
        if problems:
            return dict(result, failed=True, msg=variables.first_and_more(problems), problems=problems)
        return result
