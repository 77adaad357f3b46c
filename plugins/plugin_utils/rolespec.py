# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A role's argument spec checked by the action plugin of its one task, not by a task of its own.

Ansible puts a ``validate_argument_spec`` task in front of a role that has ``meta/argument_specs.yml``. The
collection's playbooks import the diagnose and incident_report roles with ``rolespec_validate: false`` and their
action plugins (diagnostics, incident_report) check the same spec, the same way (ArgumentSpecValidator on the role's
variables as the task sees them, templated), before anything runs: the same refusal, one task less per role and
host. A role used as usual (``roles:``) keeps Ansible's task as well: the spec is then checked twice, and passes or
fails the same way twice.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.agentops.runbooks.plugins.plugin_utils.variables import first_and_more, unrendered


def role_options(task, entry_point="main"):
    """The options of ``entry_point`` in ``meta/argument_specs.yml`` of the role ``task`` belongs to; None outside a
    role or for a role without that file. Read with libyaml's safe loader: the spec is plain data, and Ansible's own
    loader (which tags every value with its origin) takes ten times as long."""
    role = getattr(task, "_role", None)
    path = os.path.join(getattr(role, "_role_path", None) or "", "meta", "argument_specs.yml")
    if role is None or not os.path.isfile(path):
        return None
    import yaml  # pylint: disable=import-outside-toplevel  # Ansible's dependency, loaded already on the controller
    with open(path) as handle:
        specs = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # nosec B506: a safe loader
    entry = (specs.get("argument_specs") or {}).get(entry_point)
    if not isinstance(entry, dict):
        return None
    return entry.get("options") or {}


def problems(task, task_vars, templar, entry_point="main"):
    """The sentences of Ansible's role argument validation for the role of ``task`` with ``task_vars``: [] when the
    variables pass (or the task is not in a role with a spec)."""
    options = role_options(task, entry_point)
    if not options:
        return []
    provided = {}
    for name in options:
        if name in task_vars:
            try:
                provided[name] = templar.template(task_vars[name])
            except AnsibleError as exc:  # an undefined variable inside the value: the value is not valid either
                return [unrendered(name, exc)]
    validator = ArgumentSpecValidator(options)
    try:
        result = validator.validate(provided, validate_role_argument_spec=True)
    except TypeError:  # ansible-core before the keyword
        result = validator.validate(provided)
    return list(result.error_messages)


def refusal(result, found, role):
    """``result`` failed with the first sentence of ``found`` (and how many more), as the role's validation says it."""
    return dict(result, failed=True, agentops_refused=True, argument_errors=found,
                msg="The %s role's variables are not valid: %s" % (role, first_and_more(found)))
