# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The services option (plugins/module_utils/services.py).
    DOCUMENTATION = r"""
options:
  services:
    description:
      - Services that may be restarted, matched against a process. C(pattern) is matched as the agent patterns are;
        C(unit) names its systemd unit, C(command) (a list, no shell) restarts it where systemd does not run.
      - The module only asks for the restart (RV(restart)); the calling role restarts.
    type: list
    elements: dict
    default: []
    suboptions:
      pattern:
        description: Regular expression for the process's program, matched like the agent patterns (name, argv[0] basename, or the script after an interpreter).
        type: str
        required: true
      unit:
        description: systemd unit to restart.
        type: str
      command:
        description: Command (argv list) that restarts it where systemd does not run.
        type: list
        elements: str
"""
