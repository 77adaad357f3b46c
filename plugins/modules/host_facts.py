#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_facts
short_description: Measure a host's load, memory, disks, file handles and task count, and report findings
version_added: 0.1.0
description:
  - Reads C(/proc) and C(statvfs) directly in one round trip (no C(ps) or C(df) parsing) and returns the raw
    measurements under RV(facts) and the rule-based RV(findings) of the C(host.*) rules.
  - Measures load average against usable cores, memory and swap, space and inodes of every real mount
    (pseudo filesystems such as C(proc), C(tmpfs) and C(squashfs) are skipped, bind mounts counted once),
    system file handles against C(fs.file-max), uptime, and tasks (processes and threads) against C(kernel.pid_max).
  - A measurement that cannot be taken (a hung network mount, an unreadable file) becomes an C(unknown)-severity
    C(host.check_incomplete) finding; the other measurements are still returned.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics
  - agentops.runbooks.diagnostics.procfs
options:
  mount_timeout:
    description:
      - Seconds to wait for C(statvfs) of each mount. A mount that does not answer in time (a hung NFS server)
        is reported as a C(host.check_incomplete) finding instead of blocking the diagnosis.
    type: float
    default: 2.0
  exclude_fstypes:
    description:
      - Extra filesystem types to leave out of the disk checks, on top of the built-in pseudo filesystems.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Measure the host
  agentops.runbooks.host_facts:
  register: host_diag

- name: Warn earlier about full disks and ignore NFS mounts
  agentops.runbooks.host_facts:
    thresholds:
      host.disk_space: {high: 80, critical: 90}
    exclude_fstypes: [nfs, nfs4]
"""

RETURN = r"""
facts:
  description: Raw measurements.
  returned: always
  type: dict
  contains:
    cores:
      description: Usable CPU cores.
      type: int
    load:
      description: Load averages C(1), C(5), C(15) and C(per_core) (1-minute load divided by cores).
      type: dict
    memory:
      description: C(total_mb), C(available_mb), C(used_percent), C(swap_total_mb), C(swap_used_mb), C(swap_used_percent).
      type: dict
    mounts:
      description: One entry per real mount with size, use and inode use.
      type: list
      elements: dict
    file_handles:
      description: C(allocated), C(max) and C(used_percent) of system file handles.
      type: dict
    tasks:
      description: C(total) processes and threads, C(pid_max) and C(used_percent).
      type: dict
    uptime_seconds:
      description: Seconds since boot.
      type: int
    kernel:
      description: Kernel release.
      type: str
  sample:
    cores: 2
    load: {"1": 0.4, "5": 0.3, "15": 0.2, "per_core": 0.2}
    uptime_seconds: 86400
findings:
  description: Findings of the C(host.*) rules, worst first. See the collection's rules catalog.
  returned: always
  type: list
  elements: dict
  sample:
    - id: host.disk_space
      severity: critical
      category: host
      title: Filesystem nearly full
      subject: /var
      symptom: "/var (ext4) is 97.1% full: 1203 MB left of 40000 MB."
      evidence: {mount_point: /var, used_percent: 97.1, threshold: 95.0}
      diagnosis: Writes fail with ENOSPC once the filesystem fills.
      fix: {summary: Find the largest directories, command: "du -xh --max-depth=2 /var | sort -h | tail -n 15", playbook: null}
      docs: docs/Production-Debugging-Playbooks.md#host-disk_space
incomplete:
  description: Measurements that could not be taken, each with C(check) and C(error).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import run_wrapper


def main():
    run_wrapper("host")


if __name__ == "__main__":
    main()
