#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: process_facts
short_description: Read the process table in one pass and report zombies, orphaned agents and descriptor exhaustion
version_added: 0.1.0
description:
  - Walks C(/proc) once (no C(ps) parsing) and records, for every process, pid, ppid, state, user, RSS, start time,
    command line, thread count, and open descriptors against its own C(Max open files) limit.
  - "Reports: zombies grouped by parent with the parent chain up to PID 1 (C(proc.zombie)); agent processes that were
    re-parented to PID 1 that no supervisor owns (C(proc.orphan)); processes near their descriptor limit (C(proc.fd_exhaustion)); single
    processes holding a large share of memory (C(proc.high_rss)); deleted files still held open (C(proc.deleted_open_files))."
  - A process that exits during the scan is skipped and counted; one whose details the connecting user may not read
    is kept with what could be read and counted (C(proc.limited_visibility)). Neither fails the module.
  - "Memory: samples the resident memory of the agent processes O(leak_samples) times over O(leak_window) seconds, fits
    a slope in MB/min and reports sustained growth (C(proc.memory_leak)) with the projected time to the process's limit
    (its cgroup's memory limit, or C(--max-old-space-size) from its command line or C(NODE_OPTIONS)); reads the kernel
    log (C(/dev/kmsg), else C(journalctl -k)) for OOM kills, telling host-wide from memory-cgroup kills
    (C(proc.oom_kill)); reads each agent's cgroup memory and pids accounting, cgroup v2 or v1 (C(proc.cgroup_memory),
    C(proc.pids_limit)). Without agent processes nothing is sampled and nothing waits."
  - Command lines are redacted on the host (API keys, tokens, passwords) before they are returned.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics
  - agentops.runbooks.diagnostics.procfs
  - agentops.runbooks.diagnostics.redaction
options:
  patterns:
    description:
      - Regular expressions naming the agent processes (the collection-wide C(agentops_process_patterns)).
      - A process matches when a pattern matches the whole of its program's name - its name (C(comm)), the basename of
        C(argv[0]), or, only when C(argv[0]) is an interpreter (node, npx, env, sh, bash, dash, zsh, python), the basename
        of the script it runs (so C(npx) matches C(node /usr/bin/npx ...)). Other arguments never match
        (C(tail -f /var/log/app/node) is not a node process).
    type: list
    elements: str
    default: [node, claude, npx, npm]
  top_n:
    description: How many of the largest processes by RSS to list under RV(facts.top_rss).
    type: int
    default: 10
  include_table:
    description: Also return the whole process table under RV(facts.table) (large on busy hosts).
    type: bool
    default: false
  leak_window:
    description: Seconds to sample agent processes' RSS over (C(agentops_leak_window)); 0 turns sampling off. At most 600.
    type: float
    default: 3.0
  leak_samples:
    description: RSS samples per agent process over the window (4 to 100; fewer cannot tell a leak from noise).
    type: int
    default: 4
  leak_min_age:
    description:
      - Seconds a process must have run before its growth can count as a leak (C(agentops_leak_min_age)); younger
        processes are still warming up (loading code, filling caches) and are listed under C(memory.warming_up).
    type: float
    default: 120
  leak_max_processes:
    description: Sample at most this many agent processes (the largest by RSS).
    type: int
    default: 50
  cgroup_root:
    description: Where the cgroup filesystem is mounted.
    type: path
    default: /sys/fs/cgroup
  kernel_log:
    description: Read the kernel log for OOM kills.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Read the process table
  agentops.runbooks.process_facts:
    patterns: [node, claude, npx, npm, "python3?"]
  register: proc_diag

- name: Show the zombies and their parents
  ansible.builtin.debug:
    var: proc_diag.facts.zombies
"""

RETURN = r"""
facts:
  description: Raw measurements.
  returned: always
  type: dict
  contains:
    process_count:
      description: User-space processes seen (kernel threads excluded).
      type: int
    thread_count:
      description: Threads of those processes.
      type: int
    states:
      description: Process count per state letter (R, S, D, Z, T, ...).
      type: dict
    zombies:
      description: Zombie processes with C(pid), C(ppid), C(name), C(age_seconds) and C(parent_chain) up to PID 1.
      type: list
      elements: dict
    orphans:
      description:
        - Agent processes whose parent is PID 1 and that nothing supervises.
        - A process in a systemd service or scope (other than a user's login session), in a container (its cgroup
          names one, or it runs in another PID namespace) or that is itself a supervisor (pm2, supervisord, runit, s6)
          is supervised, never an orphan; those are listed under RV(facts.supervised).
      type: list
      elements: dict
    supervised:
      description: Agent processes whose parent is PID 1 but that a supervisor owns, each with C(supervisor) (C(systemd),
        C(container) or C(supervisor)) and C(owner) (the unit, the cgroup or PID namespace, or the supervisor's name).
      type: list
      elements: dict
    agents:
      description: Every process matching O(patterns) (at most 200).
      type: list
      elements: dict
    top_rss:
      description: The O(top_n) largest processes by resident memory.
      type: list
      elements: dict
    near_fd_limit:
      description: Processes at or above the lowest C(proc.fd_exhaustion) threshold.
      type: list
      elements: dict
    deleted_open_files:
      description: Deleted files still held open - C(count), C(total_mb) and the C(processes) holding the most.
      type: dict
    memory:
      description:
        - C(sampled) (per agent process, C(rss_mb) samples, C(slope_mb_per_min), C(r_squared), C(samples),
          C(growth_mb), C(age_seconds), C(verdict) - C(leak), C(warming_up), C(too_few_samples), C(within_noise),
          C(not_sustained), C(poor_fit) or C(below_threshold) - C(confidence) when it leaks, C(limit_mb),
          C(limit_source), C(minutes_to_limit)), C(warming_up), C(leak_criteria), C(window_seconds), C(oom_kills)
          (C(pid), C(comm), C(memcg), C(when)) and C(cgroups) (memory and pids accounting of each agent's cgroup).
        - A leak needs sustained growth (most steps rising), a straight-line fit with R^2 of at least 0.8, growth above
          noise and a process older than O(leak_min_age); the finding carries R^2 and a C(confidence).
      type: dict
    unreadable:
      description: Processes whose descriptors or limits could not be read.
      type: int
    vanished:
      description: Processes that exited during the scan.
      type: int
    pid1:
      description: Name and command line of PID 1.
      type: dict
    scan_ms:
      description: Milliseconds the scan took.
      type: int
    table:
      description: Every process (only with O(include_table=true)).
      type: list
      elements: dict
      returned: when include_table is true
findings:
  description: Findings of the C(proc.*) rules, worst first.
  returned: always
  type: list
  elements: dict
incomplete:
  description: Checks that could not run, each with C(check) and C(error).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import run_wrapper


def main():
    run_wrapper("process")


if __name__ == "__main__":
    main()
