# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that build an incident from diagnostic results (logic in plugin_utils/incident.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible.errors import AnsibleFilterError
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident


def _filter(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(str(exc))
    return wrapper


class FilterModule(object):
    def filters(self):
        return dict((name, _filter(getattr(incident, name))) for name in (
            "diagnose_result", "incident_report", "incident_severity", "report_markdown", "report_stats"))
