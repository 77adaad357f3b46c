#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: write_report
short_description: Write an incident report (report.json and report.md) on the controller
version_added: 0.1.0
description:
  - Writes O(report), the output of the C(agentops.runbooks.incident_report) filter, to
    C(<dir>/<incident_id>/report.json) and C(report.md). The directory is created with mode 0700 and both files with
    mode 0600, each replaced atomically.
  - Never writes through a symbolic link. C(<dir>/<incident_id>) (and any directory the plugin creates for O(dir))
    must be a real directory owned by the user running Ansible; a link, a file or another user's directory there is
    refused. O(dir) itself may be a link. An existing C(report.json) or C(report.md) that is a link is refused too.
  - C(report.json) and C(report.md) always come from the same run. Both are written to temporary files (created
    with C(O_EXCL|O_NOFOLLOW)) and renamed into place while an exclusive lock (C(flock)) is held on the incident
    directory, so concurrent runs with one incident id never leave a mixed pair.
  - Runs entirely on the controller as an action plugin; nothing is sent to the managed host.
  - Fails with one sentence when the incident id holds characters other than letters, digits, C(.), C(_) and C(-),
    when a path is refused, or when the directory cannot be written.
author:
  - agentops.runbooks developers (@agentops)
options:
  dir:
    description: Directory holding incident reports (C(agentops_report_dir)). Relative paths are taken from the current directory.
    type: path
    required: true
  report:
    description: The report, as built by the C(agentops.runbooks.incident_report) filter.
    type: dict
    required: true
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
notes:
  - Always reports C(changed=false). The report is written on the controller and no managed host changes.
"""

EXAMPLES = r"""
- name: Write the report
  agentops.runbooks.write_report:
    dir: ./incidents
    report: "{{ hostvars | agentops.runbooks.incident_report(ansible_play_hosts_all, 'INC-1234') }}"
  run_once: true
"""

RETURN = r"""
paths:
  description: Where the report was written.
  returned: success
  type: dict
  contains:
    directory:
      description: The incident's directory.
      type: str
    json:
      description: Path of report.json.
      type: str
    markdown:
      description: Path of report.md.
      type: str
"""
