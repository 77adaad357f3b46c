# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``services`` option shared by the modules that may ask for a restart (documented in the services doc fragment)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.agentops.runbooks.plugins.module_utils import procfs

SPEC = dict(type="list", elements="dict", default=[], options=dict(
    pattern=dict(type="str", required=True), unit=dict(type="str"), command=dict(type="list", elements="str")))


def compile_services(services):
    """[(compiled patterns, service)]; ValueError names an entry without a unit or command, or a bad pattern."""
    compiled = []
    for service in services:
        if not service.get("unit") and not service.get("command"):
            raise ValueError("services entry %r needs a unit or a command." % service["pattern"])
        compiled.append((procfs.compile_patterns([service["pattern"]]), service))
    return compiled


def matching(compiled, name, argv):
    """The first service whose pattern matches a process, or None."""
    for patterns, service in compiled:
        if procfs.is_agent(patterns, name, argv):
            return service
    return None


def key(service):
    """A stable name for a service: its unit, else its command line."""
    return service.get("unit") or " ".join(service.get("command") or [])
