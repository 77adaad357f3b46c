#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: leak_response
short_description: Capture evidence from leaking agent processes, then ask for a restart at most once per window
version_added: 0.1.0
description:
  - Samples the agent processes' memory over O(window) seconds (the same measurement as
    M(agentops.runbooks.process_facts)) and acts on those growing at least O(min_growth) MB/min in most samples.
  - "Evidence first, for each leaking process: C(/proc/PID/status), C(smaps_rollup), C(limits), the open descriptor
    count, the redacted command line and the samples, written under O(evidence_dir) (directory 0700, files 0600)."
  - >-
    A heap snapshot only when the process runs with C(--heapsnapshot-signal=SIGUSR2) (command line or
    C(NODE_OPTIONS)) and there is room (available memory at least twice its RSS, free disk in its working directory
    at least its RSS): the module sends C(SIGUSR2) and waits for the C(.heapsnapshot) file. Without that flag
    C(SIGUSR2) would kill Node, so it is never sent; C(SIGUSR1) (the inspector) is never sent at all. A process that
    sets C(process.title) overwrites its command line, so for those the flag must be in C(NODE_OPTIONS).
  - With O(restart), a leaking process whose name matches O(services) is returned in RV(restart) for the caller to
    restart, at most once per O(restart_window) seconds per service (remembered in O(state_file)).
  - In check mode it samples and reports what it would capture, snapshot and restart, and writes and signals nothing.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.services
options:
  proc_root:
    description:
      - Must be C(/proc). A module that signals and restarts acts only on the process table of the host it runs on, so
        any other value is refused.
    type: path
    default: /proc
  patterns:
    description: Regular expressions naming agent processes, matched as in M(agentops.runbooks.process_facts).
    type: list
    elements: str
    default: [node, claude, npx, npm]
  window:
    description: Seconds to sample over (1 to 600).
    type: float
    default: 10.0
  samples:
    description: RSS samples per process over the window (4 to 100).
    type: int
    default: 5
  min_growth:
    description:
      - Growth in MB/min at which a process counts as leaking. The growth must also be sustained (most samples rising),
        fit a straight line (R^2 of at least 0.8) and come from a process past its warm-up (O(min_age)), as for the
        C(proc.memory_leak) finding.
    type: float
    default: 30.0
  min_age:
    description: Seconds a process must have run before its growth can count as a leak (C(agentops_leak_min_age)).
    type: float
    default: 120
  evidence_dir:
    description:
      - Directory for the evidence; an absolute path. It and the per-process directories under it are created with
        mode 0700 and must be real directories owned by the user the module runs as; a symbolic link or another
        user's directory is refused with one sentence before sampling. Evidence files (0600) are written to a
        temporary file and renamed into place, never through a link.
    type: path
    required: true
  heap_snapshot:
    description: Take a heap snapshot where the process allows it and there is room.
    type: bool
    default: true
  heap_snapshot_timeout:
    description: Seconds to wait for the snapshot file (it blocks the event loop while written).
    type: int
    default: 60
  restart:
    description: Ask for a restart of leaking processes that match O(services).
    type: bool
    default: false
  restart_window:
    description: Restart a service at most once per this many seconds.
    type: int
    default: 3600
  state_file:
    description: Where the last restart time of each service is kept. Defaults to C(<evidence_dir>/leak_response_state.json).
    type: path
attributes:
  check_mode:
    support: full
    description: Samples and reports; writes and signals nothing.
  diff_mode:
    support: none
    description: Evidence files are new each run; there is nothing to diff.
"""

EXAMPLES = r"""
- name: Capture evidence from leaking Node processes and restart the worker at most once an hour
  agentops.runbooks.leak_response:
    evidence_dir: /var/tmp/agentops-evidence
    window: 60
    restart: true
    services:
      - {pattern: node, unit: agent-worker.service}
"""

RETURN = r"""
leaking:
  description: Per leaking process, C(pid), C(name), C(slope_mb_per_min), C(evidence) (directory), C(heap_snapshot) (path or why not).
  returned: always
  type: list
  elements: dict
restart:
  description: Services to restart now, each with C(pattern), C(unit) or C(command), and C(pid).
  returned: always
  type: list
  elements: dict
left_alone:
  description: Restarts not requested, with C(why) (for example, restarted within the window).
  returned: always
  type: list
  elements: dict
"""

import json
import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import services as services_util
from ansible_collections.agentops.runbooks.plugins.module_utils.memory import MemoryCollector
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor
from ansible_collections.agentops.runbooks.plugins.module_utils import safefile

SNAPSHOT_FLAG = "--heapsnapshot-signal"


def snapshot_signal(argv, environ):
    """The signal named by --heapsnapshot-signal, or None."""
    sources = list(argv) + (environ.get("NODE_OPTIONS", "").split() if environ else [])
    for index, arg in enumerate(sources):
        if arg.startswith(SNAPSHOT_FLAG + "="):
            return arg.split("=", 1)[1]
        if arg == SNAPSHOT_FLAG and index + 1 < len(sources):
            return sources[index + 1]
    return None


class LeakResponder(object):
    def __init__(self, proc, params, check_mode):
        self.proc = proc
        self.p = params
        self.check_mode = check_mode
        self.patterns = procfs.compile_patterns(params["patterns"])
        self.services = services_util.compile_services(params["services"])
        self.redactor = Redactor()

    def agents(self):
        uptime = self.proc.uptime()
        found = []
        for pid, stat, dummy, argv in self.proc.processes():
            if stat["state"] == "Z" or pid == os.getpid():
                continue
            if procfs.is_agent(self.patterns, stat["comm"], argv):
                found.append({"pid": pid, "name": stat["comm"], "argv": argv, "starttime": stat["starttime"],
                              "rss_mb": stat["rss_pages"] * procfs.PAGE_SIZE / 1048576.0,
                              "age_seconds": max(0, int(uptime - stat["starttime"] / float(procfs.CLK_TCK)))})
        return found

    def run(self):
        agents = dict((a["pid"], a) for a in self.agents())
        sampler = MemoryCollector(self.proc, procfs.CgroupFS(), self.p["window"], self.p["samples"], kernel_log=None,
                                  min_age=self.p["min_age"])
        sampled = sampler.run(list(agents.values()))["facts"]["sampled"] if agents else []
        leaking, restart, left_alone = [], [], []
        state = self.load_state()
        for entry in sampled:
            # The leak rule of proc.memory_leak (sustained, a good fit, past its warm-up), at this module's min_growth.
            if entry.get("verdict") not in ("leak", "below_threshold") or entry["slope_mb_per_min"] < self.p["min_growth"]:
                continue
            agent = agents[entry["pid"]]
            item = {"pid": agent["pid"], "name": agent["name"], "slope_mb_per_min": entry["slope_mb_per_min"],
                    "rss_mb": entry["rss_mb"][-1], "evidence": None, "heap_snapshot": None}
            item["evidence"] = self.capture(agent, entry)
            item["heap_snapshot"] = self.snapshot(agent) if self.p["heap_snapshot"] else "not requested"
            leaking.append(item)
            if self.p["restart"]:
                self.plan_restart(agent, state, restart, left_alone)
        if restart and not self.check_mode:
            self.save_state(state)
        changed = bool(leaking)
        return {"changed": changed, "leaking": leaking, "restart": restart, "left_alone": left_alone}

    def capture(self, agent, entry):
        directory = os.path.join(self.p["evidence_dir"], "%d-%s" % (agent["pid"], time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
        if self.check_mode:
            return directory + " (would capture)"
        # evidence_dir and the process's directory: 0700, never a link, ours; files 0600, never written through a link.
        fd = safefile.open_dir(directory, base=os.path.dirname(os.path.abspath(self.p["evidence_dir"])))
        try:
            self.write_evidence(fd, directory, agent, entry)
        finally:
            os.close(fd)
        return directory

    def write_evidence(self, fd, directory, agent, entry):
        for name in ("status", "smaps_rollup", "limits"):
            try:
                text = self.proc.read(agent["pid"], name)
            except OSError as exc:
                safefile.write_private(fd, name + ".error", "%s\n" % exc, where=directory)
                continue
            safefile.write_private(fd, name, text, where=directory)
        try:
            fds = self.proc.fd_count(agent["pid"])
        except OSError:
            fds = None
        safefile.write_private(fd, "summary.json", json.dumps({
            "pid": agent["pid"], "name": agent["name"], "cmd": self.redactor.argv(agent["argv"]), "open_fds": fds,
            "rss_mb_samples": entry["rss_mb"], "slope_mb_per_min": entry["slope_mb_per_min"],
            "limit_mb": entry["limit_mb"], "limit_source": entry["limit_source"],
            "minutes_to_limit": entry.get("minutes_to_limit"), "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=2, sort_keys=True) + "\n", where=directory)

    def snapshot(self, agent):
        try:
            environ = procfs.parse_environ(self.proc.read(agent["pid"], "environ"))
        except OSError:
            environ = {}
        named = snapshot_signal(agent["argv"], environ)
        if named is None:
            return "skipped: the process does not run with --heapsnapshot-signal (SIGUSR2 would kill it)"
        if named.upper() not in ("SIGUSR2", "USR2"):
            return "skipped: --heapsnapshot-signal is %s; only SIGUSR2 is sent" % named
        try:
            cwd = os.readlink(self.proc.path(agent["pid"], "cwd"))
            available_mb = self.proc.meminfo().get("MemAvailable", 0) / 1024.0
            free_mb = os.statvfs(cwd).f_bavail * os.statvfs(cwd).f_frsize / 1048576.0
        except OSError as exc:
            return "skipped: cannot check room for it (%s)" % exc
        if available_mb < 2 * agent["rss_mb"] or free_mb < agent["rss_mb"]:
            return "skipped: no room (%d MB memory available, %d MB disk free; needs %d MB and %d MB)" % (
                available_mb, free_mb, 2 * agent["rss_mb"], agent["rss_mb"])
        if self.check_mode:
            return "would send SIGUSR2 and wait for a .heapsnapshot in %s" % cwd
        before = set(f for f in os.listdir(cwd) if f.endswith(".heapsnapshot"))
        if self.proc.stat(agent["pid"])["starttime"] != agent["starttime"]:
            return "skipped: the process changed before the signal"
        os.kill(agent["pid"], signal.SIGUSR2)
        deadline = time.monotonic() + self.p["heap_snapshot_timeout"]
        while time.monotonic() < deadline:
            new = [f for f in os.listdir(cwd) if f.endswith(".heapsnapshot") and f not in before]
            if new:
                path = os.path.join(cwd, sorted(new)[-1])
                size = -1
                while time.monotonic() < deadline:  # written when the size stops changing
                    time.sleep(0.5)
                    current = os.path.getsize(path)
                    if current == size and current > 0:
                        return path
                    size = current
            time.sleep(0.2)
        return "timed out after %d s waiting for the snapshot" % self.p["heap_snapshot_timeout"]

    def plan_restart(self, agent, state, restart, left_alone):
        service = services_util.matching(self.services, agent["name"], agent["argv"])
        if service is None:
            left_alone.append({"pid": agent["pid"], "why": "matches no entry of services"})
            return
        name = services_util.key(service)
        last = state.get(name)
        if last and time.time() - last < self.p["restart_window"]:
            left_alone.append({"pid": agent["pid"], "service": name,
                               "why": "restarted %d s ago; at most once per %d s" % (time.time() - last, self.p["restart_window"])})
            return
        if any(services_util.key(r) == name for r in restart):
            return  # several leaking processes of one service: one restart
        restart.append({"pid": agent["pid"], "pattern": service["pattern"], "unit": service.get("unit"),
                        "command": service.get("command")})
        state[name] = time.time()

    def state_path(self):
        return self.p["state_file"] or os.path.join(self.p["evidence_dir"], "leak_response_state.json")

    def load_state(self):
        try:
            with open(self.state_path()) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def save_state(self, state):
        path = os.path.abspath(self.state_path())
        safefile.write_private(os.path.dirname(path), os.path.basename(path), json.dumps(state))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            patterns=dict(type="list", elements="str", default=["node", "claude", "npx", "npm"]),
            window=dict(type="float", default=10.0),
            samples=dict(type="int", default=5),
            min_growth=dict(type="float", default=30.0),
            min_age=dict(type="float", default=120.0),
            evidence_dir=dict(type="path", required=True),
            heap_snapshot=dict(type="bool", default=True),
            heap_snapshot_timeout=dict(type="int", default=60),
            restart=dict(type="bool", default=False),
            services=services_util.SPEC,
            restart_window=dict(type="int", default=3600),
            state_file=dict(type="path"),
            proc_root=dict(type="path", default="/proc"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        if os.path.normpath(p["proc_root"]) != "/proc":
            raise ValueError("proc_root must be /proc for a module that signals processes (got %s): it acts only on "
                             "the process table of the host it runs on." % p["proc_root"])
        for name, low, high in (("window", 1, 600), ("samples", 4, 100), ("min_growth", 0, 10 ** 6), ("min_age", 0, 86400),
                                ("heap_snapshot_timeout", 1, 3600), ("restart_window", 0, 10 ** 7)):
            if not low <= p[name] <= high:
                raise ValueError("%s must be between %s and %s, got %s." % (name, low, high, p[name]))
        if not os.path.isabs(p["evidence_dir"]) or os.path.dirname(p["evidence_dir"]) == p["evidence_dir"]:
            raise ValueError("evidence_dir must be an absolute path below /, got %r." % p["evidence_dir"])
        safefile.check(p["evidence_dir"], directory=True)  # a link or another user's directory: refused before sampling
        responder = LeakResponder(procfs.ProcFS(p["proc_root"]), p, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot inspect evidence_dir %s: %s." % (p["evidence_dir"], exc.strerror or exc))
    try:
        result = responder.run()
    except safefile.UnsafePathError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot write evidence under %s: %s." % (p["evidence_dir"], exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
