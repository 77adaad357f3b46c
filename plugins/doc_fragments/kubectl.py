# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How a module reaches kubectl (plugins/module_utils/kubectl.py CLIENT_SPEC).
    DOCUMENTATION = r"""
options:
  kubectl:
    description: The kubectl command (a name on PATH or a path).
    type: str
    default: kubectl
  kubeconfig:
    description: Kubeconfig file, passed to kubectl as C(KUBECONFIG) (never on the command line); default is kubectl's own.
    type: path
  context:
    description: Kubeconfig context, passed to kubectl as C(--context=); default is the current context.
    type: str
"""
