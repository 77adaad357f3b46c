#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: check_variables
short_description: Warn about misspelled public variables of the collection
version_added: 0.1.0
description:
  - Looks at the variables the play sees and warns about every name that starts like a public variable of the
    collection (C(agentops_), C(process_reaper_), C(pg_connections_), C(log_collection_), C(deploy_rollback_),
    C(diagnose_), C(incident_report_), C(service_restart_)) but that none of its roles or playbooks defines, suggesting
    the closest known name (C(agentops_leak_windw) - did you mean C(agentops_leak_window)?). A misspelled variable silently has no
    effect, so a dry run or a threshold the user believes set would not be.
  - The known names are read from the collection's own roles and playbooks, so there is no second list to keep.
  - Runs entirely on the controller as an action plugin.
author:
  - agentops.runbooks developers (@agentops)
options: {}
attributes:
  action:
    support: full
    description: Implemented as an action plugin that runs on the controller.
  check_mode:
    support: full
    description: Only reads variables.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
notes:
  - Never fails the play for an unknown name; it warns (and the diagnose playbook copies the warnings into the report).
"""

EXAMPLES = r"""
- name: Warn about misspelled variables
  agentops.runbooks.check_variables:
  run_once: true
"""

RETURN = r"""
unknown_variables:
  description: Each unknown name with C(name) and C(suggestion) (the closest known name, or null).
  returned: always
  type: list
  elements: dict
messages:
  description: One sentence per unknown name, as shown in the warnings.
  returned: always
  type: list
  elements: str
"""
