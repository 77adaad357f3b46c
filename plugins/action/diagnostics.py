# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of the diagnostics module: one task per host that runs every family and records the result.

Without ``families``/``secrets`` arguments, each family's options come from the variables its registry entry names
(``diagnose_<suffix>`` inside the diagnose role, else ``agentops_<suffix>``), so a new family needs no role task.
The module's result is returned as it is, plus the host's record as the fact ``diagnose_result`` (what the
incident_report role reads): one task instead of a module call and a templated ``set_fact``.

With ``validate`` (the diagnose role passes it), the action first checks the role's variables on the controller, as
a task of their own would (plugin_utils/rolespec.py, plugin_utils/variables.py): the role's argument spec, the ranges
of the families' variables from the registry, thresholds and patterns; a misspelled variable warns. A bad value
fails the call before the module runs, with ``agentops_refused`` set (the role's rescue fails that host and records
``diagnose_refused``, and the incident_report action then writes no report). A host that cannot be reached fails
the call with ``unreachable`` set, and the role's rescue records it: the only extra tasks are on the failure path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os

from ansible import constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident, payload_cache, registry, rolespec, variables

display = Display()

DEFAULT_CHECKS = ["host", "process"]


def run_key(directory):
    """This run's redaction key: one random key per ansible-playbook run, shared by every host (every worker process
    of the run sees the same private temporary directory, made 0700 by Ansible and removed when the run ends), so a
    secret gets the same keyed placeholder in every host's result. The first worker writes it, atomically."""
    path = os.path.join(directory, "agentops-redaction-key")
    if not os.path.exists(path):
        temporary = "%s.%d" % (path, os.getpid())
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b32encode(os.urandom(20)).decode("ascii").lower())
        try:
            os.link(temporary, path)  # fails if another worker was first: then its key is the run's
        except OSError:
            pass
        os.unlink(temporary)
    if os.path.islink(path):
        raise OSError("%s is a symbolic link" % path)
    with open(path) as handle:
        return handle.read().strip()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _value_of(self, task_vars):
        def value_of(suffix):
            for name in ("diagnose_" + suffix, "agentops_" + suffix):
                if name in task_vars:
                    return self._templar.template(task_vars[name])
            return None
        return value_of

    def _refused(self, result, task_vars, validate):
        """The role's variables checked before anything runs: (result, None) when they pass (with the warnings of
        misspelled ones in ``result``), else (None, the failed result)."""
        if not isinstance(validate, dict):
            return None, dict(result, failed=True, agentops_refused=True,
                              msg="validate must be a mapping of what to check, got %s." % type(validate).__name__)
        found = rolespec.problems(self._task, task_vars, self._templar)
        if found:
            return None, rolespec.refusal(result, found, "diagnose")
        ranges, patterns = variables.with_families(task_vars, validate.get("ranges"), validate.get("patterns"))
        try:
            dummy, messages, problems = variables.check(task_vars, self._templar.template, validate.get("flags"), ranges,
                                                        validate.get("thresholds"), patterns, validate.get("public"))
        except ValueError as exc:
            return None, dict(result, failed=True, agentops_refused=True, msg=str(exc))
        if messages:  # a misspelled variable warns, whether the others pass or not
            result["warnings"] = list(result.get("warnings") or []) + messages
        if problems:
            return None, dict(result, failed=True, agentops_refused=True, msg=variables.first_and_more(problems), problems=problems)
        return result, None

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        registry.prime_here()  # the families' metadata, kept between runs (plugin_utils/registry.py)
        validate = args.pop("validate", None)
        if validate is not None:
            result, refused = self._refused(result, task_vars, validate)
            if refused is not None:
                return refused
        checks = DEFAULT_CHECKS if args.get("checks") is None else args["checks"]  # [] runs no family (the bench's floor)
        if isinstance(checks, str):
            checks = [c.strip() for c in checks.split(",") if c.strip()]
        if not args.get("redaction_key"):
            try:
                args["redaction_key"] = run_key(C.DEFAULT_LOCAL_TMP)
            except OSError as exc:
                display.vvv("agentops: no run-wide redaction key: %s" % exc)  # the module keys its own placeholders
        if "families" not in args and "secrets" not in args and isinstance(checks, list):
            families, secrets = collectors.from_variables(checks, self._value_of(task_vars))
            args["families"] = families
            args["secrets"] = secrets
        store = lookup = None
        if payload_cache.enabled():
            try:  # the payload an earlier run built (plugin_utils/payload_cache.py); any failure: Ansible builds it as usual
                lookup = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
                store = os.path.join(os.path.expanduser(getattr(C, "ANSIBLE_HOME", None) or "~/.ansible"), "agentops", "ansiballz",
                                     payload_cache.key(ansible_version, C.DEFAULT_MODULE_COMPRESSION))
                payload_cache.restore(store, lookup)
            except (OSError, ValueError, AttributeError) as exc:
                display.vvv("agentops: payload cache not used: %s" % exc)
                store = None
        warnings = list(result.get("warnings") or [])  # the variable check's, kept beside the module's own
        try:
            result.update(self._execute_module(module_name="agentops.runbooks.diagnostics", module_args=args, task_vars=task_vars))
            if warnings:
                result["warnings"] = warnings + [w for w in result.get("warnings") or [] if w not in warnings]
        except AnsibleConnectionFailure as exc:
            # Failed, not unreachable: the role's rescue records the host as unreachable (Ansible applies no fact of an
            # unreachable result, and a task of its own for that case would run, skipped, on every healthy host).
            return dict(result, failed=True, unreachable=True, msg=str(exc))
        if store is not None:
            try:
                payload_cache.keep(lookup, store)
            except (OSError, ValueError) as exc:
                display.vvv("agentops: payload not kept: %s" % exc)
        if result.get("failed"):
            return result  # the role's rescue records a failed call (Ansible does not apply the facts of a failed task)
        host = task_vars.get("inventory_hostname")
        try:
            record = incident.diagnose_result(result, host, checks=list(checks) if isinstance(checks, list) else DEFAULT_CHECKS)
        except ValueError:
            return result
        result["ansible_facts"] = dict(result.get("ansible_facts") or {}, diagnose_result=record)
        return result
