#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: reap_processes
short_description: Get zombies reaped and end orphaned agent processes, with guardrails
version_added: 0.1.0
description:
  - "Zombies: sends C(SIGCHLD) to each parent that has zombies (a parent that reaps one child per signal gets the rest
    this way), waits O(zombie_wait) seconds, re-checks, up to O(zombie_attempts) times, and reports which zombies went
    away. Parents whose zombies remain and that match O(services) are returned in RV(restart) for the caller to restart
    (the C(process_reaper) role does, with systemd or the configured command). A zombie itself cannot be killed."
  - "Orphans: processes whose parent is PID 1 (or one of O(subreapers)), matching O(patterns), that no supervisor owns,
    older than O(min_age) seconds and owned by O(allowed_users) get C(SIGTERM); survivors of the O(grace) period get
    C(SIGKILL); then the module checks that they are gone."
  - "Supervised is not orphaned: a process in a systemd service or scope (other than a user's login session), in a
    container (its cgroup names one, or it runs in another PID namespace) or that is itself a supervisor (pm2,
    supervisord, runit, s6) is never signalled."
  - "Guardrails: never PID 1, kernel threads, this module's own process tree (Ansible), or processes of users outside
    O(allowed_users); at most O(max_processes) processes signalled per run; each signal goes only to a process whose
    start time is unchanged since the scan (no pid reuse). It reads and signals only this host's own C(/proc): it
    takes no O(proc_root) other than C(/proc), so a pid can never come from another machine's process table.
    It sends only C(SIGCHLD), C(SIGTERM) and C(SIGKILL); never C(SIGUSR1), which starts Node's inspector."
  - In check mode it lists what it would signal and why, and signals nothing.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.services
options:
  proc_root:
    description:
      - Must be C(/proc). Kept for symmetry with the read-only modules, which may read another host's C(/proc) mounted
        elsewhere; a module that signals acts only on the process table of the host it runs on, so any other value is
        refused.
    type: path
    default: /proc
  zombies:
    description: Ask zombies' parents to reap them.
    type: bool
    default: true
  zombie_wait:
    description: Seconds to wait after each C(SIGCHLD) before re-checking (0 to 60).
    type: float
    default: 1.0
  zombie_attempts:
    description: How many times to signal a parent while its zombie count keeps falling (1 to 20).
    type: int
    default: 5
  orphans:
    description: End orphaned agent processes.
    type: bool
    default: true
  patterns:
    description: Regular expressions naming agent processes (C(agentops_process_patterns)), matched as in M(agentops.runbooks.process_facts).
    type: list
    elements: str
    default: [node, claude, npx, npm]
  min_age:
    description: Only orphans at least this many seconds old.
    type: int
    default: 300
  allowed_users:
    description: Users whose orphans may be ended. Empty means every user except root.
    type: list
    elements: str
    default: []
  subreapers:
    description: Names of subreaper processes (for example C(systemd)) whose children count as orphans too.
    type: list
    elements: str
    default: []
  grace:
    description: Seconds between C(SIGTERM) and C(SIGKILL) (0 to 300).
    type: float
    default: 10.0
  max_processes:
    description: The most processes signalled with C(SIGTERM) in one run.
    type: int
    default: 20
attributes:
  check_mode:
    support: full
    description: Lists what it would signal and why; signals nothing.
  diff_mode:
    support: full
    description: The diff lists the processes before and after.
"""

EXAMPLES = r"""
- name: See what would be reaped and ended
  agentops.runbooks.reap_processes:
    min_age: 600
    allowed_users: [agent]
  check_mode: true

- name: Reap zombies only, restarting the worker service if they remain
  agentops.runbooks.reap_processes:
    orphans: false
    services:
      - {pattern: "node", unit: agent-worker.service}
"""

RETURN = r"""
zombies:
  description: Per parent, C(ppid), C(parent_name), C(zombie_pids), C(signals) sent, C(reaped_pids), C(remaining_pids).
  returned: always
  type: list
  elements: dict
orphans:
  description: Per orphan, C(pid), C(name), C(user), C(age_seconds), C(cmd), C(action) (C(terminate) or C(kill)) and C(gone).
  returned: always
  type: list
  elements: dict
restart:
  description: Parents whose zombies remain and that match O(services), with the C(unit) or C(command) to restart them.
  returned: always
  type: list
  elements: dict
left_alone:
  description: Processes left alone by a guardrail (supervised, protected, too young, user not allowed, over the limit),
    each with C(pid) and C(why).
  returned: always
  type: list
  elements: dict
signalled:
  description: Every signal this run sent, each with C(pid), C(name) and C(signal) (C(SIGCHLD), C(SIGTERM) or C(SIGKILL)).
    The task reports C(changed) whenever this list is not empty.
  returned: always
  type: list
  elements: dict
"""

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import services as services_util
from ansible_collections.agentops.runbooks.plugins.module_utils import redact
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor


class Scan(object):
    """One pass over /proc: {pid: {ppid, state, name, argv, uid, user, starttime, age_seconds}}."""

    def __init__(self, proc):
        self.proc = proc
        uptime = proc.uptime()
        self.table = {}
        for pid, stat, uid, argv in proc.processes():
            self.table[pid] = {
                "pid": pid, "ppid": stat["ppid"], "state": stat["state"], "name": stat["comm"], "argv": argv,
                "uid": uid, "user": procfs.username(uid), "starttime": stat["starttime"],
                "age_seconds": int(uptime - stat["starttime"] / float(procfs.CLK_TCK)),
            }

    def zombies_by_parent(self):
        out = {}
        for entry in self.table.values():
            if entry["state"] == "Z":
                out.setdefault(entry["ppid"], []).append(entry["pid"])
        return dict((ppid, sorted(pids)) for ppid, pids in out.items())


def ancestors(proc, pid):
    """This process and its ancestors (the Ansible process tree on this host)."""
    chain = set()
    while pid and pid not in chain:
        chain.add(pid)
        try:
            pid = proc.stat(pid)["ppid"]
        except (OSError, ValueError):
            break
    return chain


def same_process(proc, entry):
    try:
        return proc.stat(entry["pid"])["starttime"] == entry["starttime"]
    except (OSError, ValueError):
        return False


def send(proc, entry, signum):
    """Signal ``entry`` only if it is still the process scanned; True when sent."""
    if not same_process(proc, entry):
        return False
    try:
        os.kill(entry["pid"], signum)
        return True
    except ProcessLookupError:
        return False


class Reaper(object):
    def __init__(self, proc, params, check_mode, sleep=time.sleep):
        self.proc = proc
        self.p = params
        self.check_mode = check_mode
        self.sleep = sleep
        self.patterns = procfs.compile_patterns(params["patterns"])
        self.services = services_util.compile_services(params["services"])
        self.protected = ancestors(proc, os.getpid())
        self.redactor = Redactor()
        self.supervision = procfs.Supervision(proc)
        self.left_alone = []
        self.signalled = []

    def send(self, entry, signum):
        """Signal ``entry`` (only if it is still the process scanned) and record it; True when sent."""
        if not send(self.proc, entry, signum):
            return False
        self.signalled.append({"pid": entry["pid"], "name": entry["name"], "signal": signal.Signals(signum).name})
        return True

    def cmd(self, entry):
        return redact.truncate(self.redactor.argv(entry["argv"]), 300) if entry["argv"] else "[%s]" % entry["name"]

    def reap_zombies(self, scan):
        results, restart = [], []
        for ppid, pids in sorted(scan.zombies_by_parent().items()):
            parent = scan.table.get(ppid)
            item = {"ppid": ppid, "parent_name": parent["name"] if parent else None, "zombie_pids": pids, "signals": 0,
                    "reaped_pids": [], "remaining_pids": pids}
            results.append(item)
            if ppid in (0, 1) or parent is None:
                self.left_alone.append({"pid": ppid, "why": "zombies of PID 1 are its own to reap; never signalled", "zombie_pids": pids})
                continue
            if ppid in self.protected:
                self.left_alone.append({"pid": ppid, "why": "part of this Ansible run's process tree", "zombie_pids": pids})
                continue
            if not self.check_mode:
                remaining = pids
                for dummy in range(self.p["zombie_attempts"]):
                    if not self.send(parent, signal.SIGCHLD):
                        break
                    item["signals"] += 1
                    self.sleep(self.p["zombie_wait"])
                    now = [pid for pid in remaining if self._still_zombie(pid, ppid)]
                    if len(now) == len(remaining) or not now:
                        remaining = now
                        break
                    remaining = now
                item["remaining_pids"] = remaining
                item["reaped_pids"] = sorted(set(pids) - set(remaining))
            service = services_util.matching(self.services, parent["name"], parent["argv"]) if item["remaining_pids"] else None
            if service:
                restart.append({"ppid": ppid, "parent_name": parent["name"], "pattern": service["pattern"],
                                "unit": service.get("unit"), "command": service.get("command"),
                                "remaining_pids": item["remaining_pids"]})
        return results, restart

    def _still_zombie(self, pid, ppid):
        try:
            stat = self.proc.stat(pid)
        except (OSError, ValueError):
            return False
        return stat["state"] == "Z" and stat["ppid"] == ppid

    def orphan_candidates(self, scan):
        parents = set([1])
        subreapers = set(self.p["subreapers"])
        parents.update(pid for pid, e in scan.table.items() if subreapers and e["name"] in subreapers)
        pid1 = scan.table.get(1)
        if pid1 is not None and procfs.is_agent(self.patterns, pid1["name"], pid1["argv"]):
            return []  # Node as a container's PID 1: its children are not orphans
        allowed = set(self.p["allowed_users"])
        chosen = []
        for entry in sorted(scan.table.values(), key=lambda e: -e["age_seconds"]):
            if entry["ppid"] not in parents or entry["state"] == "Z" or entry["pid"] == 1:
                continue
            if not procfs.is_agent(self.patterns, entry["name"], entry["argv"]):
                continue
            why = None
            owner = self.supervision.owner(entry["pid"], entry["name"], entry["argv"])
            if owner:
                why = "supervised by %s %s, not an orphan" % owner
            elif entry["pid"] in self.protected:
                why = "part of this Ansible run's process tree"
            elif entry["age_seconds"] < self.p["min_age"]:
                why = "younger than min_age (%d s < %d s)" % (entry["age_seconds"], self.p["min_age"])
            elif (allowed and entry["user"] not in allowed) or (not allowed and entry["uid"] == 0):
                why = "user %s is not in allowed_users" % entry["user"]
            elif len(chosen) >= self.p["max_processes"]:
                why = "over the limit of %d processes per run" % self.p["max_processes"]
            if why:
                self.left_alone.append({"pid": entry["pid"], "name": entry["name"], "why": why})
                continue
            chosen.append(entry)
        return chosen

    def end_orphans(self, scan):
        chosen = self.orphan_candidates(scan)
        out = [{"pid": e["pid"], "name": e["name"], "user": e["user"], "age_seconds": e["age_seconds"], "cmd": self.cmd(e),
                "action": "terminate", "gone": False} for e in chosen]
        if self.check_mode or not chosen:
            return out
        by_pid = dict((o["pid"], o) for o in out)
        sent = [e for e in chosen if self.send(e, signal.SIGTERM)]
        survivors = self._wait_gone(sent, self.p["grace"])
        for entry in survivors:
            if self.send(entry, signal.SIGKILL):
                by_pid[entry["pid"]]["action"] = "kill"
        self._wait_gone(survivors, 5.0)
        for entry in chosen:
            # Exited counts as gone: a zombie left under PID 1 is PID 1's to reap.
            by_pid[entry["pid"]]["gone"] = not self._alive(entry)
        return out

    def _wait_gone(self, entries, seconds):
        deadline = time.monotonic() + seconds
        alive = [e for e in entries if self._alive(e)]
        while alive and time.monotonic() < deadline:
            self.sleep(0.1)
            alive = [e for e in alive if self._alive(e)]
        return alive

    def _alive(self, entry):
        try:
            stat = self.proc.stat(entry["pid"])
        except (OSError, ValueError):
            return False
        return stat["starttime"] == entry["starttime"] and stat["state"] != "Z"

    def run(self):
        scan = Scan(self.proc)
        zombies, restart = self.reap_zombies(scan) if self.p["zombies"] else ([], [])
        orphans = self.end_orphans(scan) if self.p["orphans"] else []
        if self.check_mode:
            changed = bool(orphans) or any(z["ppid"] not in (0, 1) and z["ppid"] not in self.protected for z in zombies)
        else:
            changed = bool(self.signalled)
        before = "".join("zombie %d (parent %d %s)\n" % (pid, z["ppid"], z["parent_name"]) for z in zombies for pid in z["zombie_pids"])
        before += "".join("orphan %d %s (%s, %d s)\n" % (o["pid"], o["name"], o["user"], o["age_seconds"]) for o in orphans)
        after = "".join("zombie %d (parent %d %s)\n" % (pid, z["ppid"], z["parent_name"]) for z in zombies for pid in z["remaining_pids"])
        after += "".join("orphan %d %s (%s, %d s)\n" % (o["pid"], o["name"], o["user"], o["age_seconds"])
                         for o in orphans if not o["gone"] and not self.check_mode)
        return {"changed": changed, "zombies": zombies, "orphans": orphans, "restart": restart, "left_alone": self.left_alone,
                "signalled": self.signalled,
                "diff": {"before": before, "after": after if not self.check_mode else ""}}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            zombies=dict(type="bool", default=True),
            zombie_wait=dict(type="float", default=1.0),
            zombie_attempts=dict(type="int", default=5),
            services=services_util.SPEC,
            orphans=dict(type="bool", default=True),
            patterns=dict(type="list", elements="str", default=["node", "claude", "npx", "npm"]),
            min_age=dict(type="int", default=300),
            allowed_users=dict(type="list", elements="str", default=[]),
            subreapers=dict(type="list", elements="str", default=[]),
            grace=dict(type="float", default=10.0),
            max_processes=dict(type="int", default=20),
            proc_root=dict(type="path", default="/proc"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        for name, low, high in (("zombie_wait", 0, 60), ("zombie_attempts", 1, 20), ("min_age", 0, 10 ** 7),
                                ("grace", 0, 300), ("max_processes", 0, 1000)):
            if not low <= p[name] <= high:
                raise ValueError("%s must be between %s and %s, got %s." % (name, low, high, p[name]))
        if not p["patterns"]:
            raise ValueError("patterns must name at least one process pattern.")
        if os.path.normpath(p["proc_root"]) != "/proc":
            raise ValueError("proc_root must be /proc for a module that signals processes (got %s): it acts only on "
                             "the process table of the host it runs on." % p["proc_root"])
        reaper = Reaper(procfs.ProcFS(p["proc_root"]), p, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    result = reaper.run()
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
