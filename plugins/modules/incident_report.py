#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: incident_report
short_description: Build, write and publish the incident report on the controller in one task
version_added: 0.2.0
description:
  - Builds the report from the C(diagnose_result) of every host in O(hosts) (a host without one is unreachable),
    weighs and classifies it (C(docs/Incident-Severity.md)), writes C(<dir>/<incident_id>/report.json), C(report.md),
    the self-contained C(report.html), a C(postmortem.md) draft and a C(status-update.md) as
    M(agentops.runbooks.write_report) does (0700/0600, never through a symlink, all files under one lock), and
    publishes the compact summary C(agentops_incident) as global C(set_stats) data (AWX keeps it as job artifacts).
  - Names who to page now from O(escalation), the incident's severity and the time since it started.
  - Misspelled public variables are warnings in the output and in the report; O(ranges) are checked first (one
    sentence naming the variable, nothing written); so is O(escalation).
  - Runs entirely on the controller as an action plugin.
author:
  - agentops.runbooks developers (@agentops)
options:
  dir:
    description: Directory holding incident reports (C(agentops_report_dir)).
    type: path
    required: true
  hosts:
    description: The hosts of the incident (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  incident_id:
    description: The incident id (C(agentops_incident_id)); letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  sev1_host_ratio:
    description: Share of affected hosts that makes SEV-1 (C(agentops_sev1_host_ratio)).
    type: float
    default: 0.5
  recent_window:
    description: Seconds that count as now for event findings (C(agentops_recent_window)).
    type: int
    default: 900
  version:
    description: The collection's version, recorded in the report.
    type: str
  ranges:
    description: Variables to check before anything is done, each C(name) -> C([low, high]).
    type: dict
  escalation:
    description:
      - Escalation levels (C(agentops_escalation)), each C(contact) and C(severities) (required), C(method),
        C(after_minutes) (0 to 10080) and C(level).
      - Omitted or null, the four default levels (on-call engineer, engineering manager, VP engineering, customer
        support / status page); an empty list pages nobody.
    type: list
    elements: dict
  show:
    description: Print the verdict, who to page and the report's paths on the console (AWX's job output).
    type: bool
    default: true
attributes:
  action:
    support: full
    description: Implemented as an action plugin that runs on the controller.
  check_mode:
    support: none
    description: The report is written in check mode too; it is the diagnosis' output, not a change to a host.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
"""

EXAMPLES = r"""
- name: Build, write and publish the incident report
  agentops.runbooks.incident_report:
    dir: ./incidents
    hosts: "{{ ansible_play_hosts_all }}"
    incident_id: INC-1234
  run_once: true
"""

RETURN = r"""
report:
  description: The report as written to report.json.
  returned: success
  type: dict
paths:
  description: C(directory), C(json), C(markdown), C(html), C(postmortem) and C(status_update) paths of what was written.
  returned: success
  type: dict
verdict:
  description: The verdict in lines (verdict and why, what was not checked, who to page now, the paths written).
  returned: success
  type: list
  elements: str
escalation:
  description:
    - Who to page - C(severity), C(started), C(started_from), C(elapsed_minutes), C(page_now) and C(later) (the levels
      still to come, each with C(in_minutes)), C(levels).
  returned: success
  type: dict
"""
