# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options and attributes shared by every read-only diagnostic module.
    DOCUMENTATION = r"""
options:
  thresholds:
    description:
      - Overrides of the rules catalog's default thresholds, keyed by rule id, then severity.
      - 'For example C({"host.disk_space": {"high": 85}}). Unknown rule ids or levels are rejected.'
      - The defaults are listed in C(docs/Production-Debugging-Playbooks.md).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
notes:
  - Read-only. The module never changes the host and always reports C(changed=false).
  - Pure Python standard library on the target.
  - Every finding has the keys C(id), C(severity), C(category), C(title), C(subject), C(symptom), C(evidence),
    C(diagnosis), C(fix) (C(summary), C(command), C(playbook)) and C(docs).
"""

    # Modules that read /proc.
    PROCFS = r"""
options:
  proc_root:
    description:
      - Where the proc filesystem to read is mounted, for example a host's C(/proc) bind-mounted into a container.
    type: path
    default: /proc
"""

    # Modules that return text which may hold secrets (command lines, log lines, query texts).
    REDACTION = r"""
options:
  redaction_key:
    description:
      - A random value for this run (the diagnose and log_collection roles make one per run and pass it to every host).
      - With it, each secret is replaced by a keyed fingerprint (C([REDACTED:kind#8 hex digits]), an HMAC-SHA256 of the
        secret), so one secret has one placeholder in every module result and on every host of the run, and the
        placeholder cannot be tested against a guess by anyone without the key. Without it placeholders are numbered
        per module run.
    type: str
"""
