# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory diagnostics of agent processes, run by process_facts over its process table:
leak sampling (a least-squares slope of RSS over a window, projected to the process's
limit), kernel OOM kills, and the memory and pids accounting of their cgroups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs

MB = 1024.0 * 1024.0


def slope_per_minute(points):
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _v in points) / n
    mean_v = sum(v for _t, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _v in points)
    if not var:
        return 0.0
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def rising(points):
    """Share of consecutive samples that grew."""
    steps = list(zip(points, points[1:]))
    return sum(1 for a, b in steps if b[1] > a[1]) / float(len(steps)) if steps else 0.0


class MemoryCollector(object):
    def __init__(self, proc, cgroups, window=3.0, samples=4, max_processes=50, thresholds=None, kernel_log=None):
        self.proc = proc
        self.cgroups = cgroups
        self.window = window
        self.samples = samples
        self.max_processes = max_processes
        self.thresholds = thresholds or {}
        self.kernel_log = kernel_log  # callable returning [(seconds since boot, message)] or None
        self.findings = []
        self.incomplete = []

    def rss_mb(self, pid):
        return int(self.proc.read(pid, "statm").split()[1]) * procfs.PAGE_SIZE / MB

    def sample(self, agents):
        series = dict((a["pid"], []) for a in agents)
        began = time.monotonic()
        interval = self.window / (self.samples - 1)
        for index in range(self.samples):
            if index:
                time.sleep(max(0.0, began + index * interval - time.monotonic()))
            now = time.monotonic() - began
            for pid in list(series):
                try:
                    series[pid].append((now, self.rss_mb(pid)))
                except (OSError, ValueError, IndexError):
                    series.pop(pid)  # exited during the window
        return series, time.monotonic() - began

    def limits(self, agent):
        """(limit_mb, source, headroom_mb) of the nearest limit, or (None, None, None)."""
        options = []
        try:
            environ = procfs.parse_environ(self.proc.read(agent["pid"], "environ"))
        except OSError:
            environ = {}
        heap = procfs.node_heap_limit_mb(agent["argv"], environ)
        if heap:
            options.append((heap, "--max-old-space-size", heap - agent["rss_mb"]))
        memory = agent.get("cgroup_memory")
        if memory and memory.get("max"):
            options.append((memory["max"] / MB, "cgroup %s memory limit" % memory["cgroup"],
                            (memory["max"] - (memory.get("current") or 0)) / MB))
        if not options:
            return None, None, None
        return min(options, key=lambda o: o[2])

    def run(self, agents):
        """``agents``: [{pid, name, argv, rss_mb}] of the matched processes (from the process table)."""
        facts = {"sampled": [], "cgroups": [], "oom_kills": [], "window_seconds": 0.0}
        agents = sorted(agents, key=lambda a: -a["rss_mb"])[:self.max_processes]
        facts["cgroups"] = self.cgroup_checks(agents)
        if agents and self.window > 0:
            series, spent = self.sample(agents)
            facts["window_seconds"] = round(spent, 2)
            for agent in agents:
                if agent["pid"] in series:
                    facts["sampled"].append(self.leak(agent, series[agent["pid"]], spent))
        if self.kernel_log is not None:
            facts["oom_kills"] = self.oom_history(agents)
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def leak(self, agent, points, spent):
        slope = round(slope_per_minute(points), 2)
        limit_mb, source, headroom = self.limits(agent)
        entry = {"pid": agent["pid"], "name": agent["name"], "rss_mb": [round(v, 1) for _t, v in points],
                 "slope_mb_per_min": slope, "rising_share": round(rising(points), 2),
                 "limit_mb": round(limit_mb, 1) if limit_mb else None, "limit_source": source}
        minutes = None
        if limit_mb and slope > 0:
            minutes = round(max(0.0, headroom) / slope, 1)
            entry["minutes_to_limit"] = minutes
        if rising(points) >= 0.66:
            note = ""
            if minutes is not None:
                note = "; at this rate it reaches its %s (%d MB) in about %s min" % (source, int(limit_mb or 0), minutes)
            found = fm.graded("proc.memory_leak", slope, {
                "pid": agent["pid"], "name": agent["name"], "slope_mb_per_min": slope,
                "window_seconds": round(spent, 1), "first_mb": round(points[0][1], 1), "last_mb": round(points[-1][1], 1),
                "samples_mb": entry["rss_mb"], "limit_mb": entry["limit_mb"], "limit_source": source,
                "minutes_to_limit": minutes, "projection_note": note}, self.thresholds, subject="pid %d" % agent["pid"])
            if found:
                if minutes is not None and minutes < 15 and found["severity"] != "critical":
                    found["severity"] = "critical"  # the limit is minutes away whatever the slope's grade
                self.findings.append(found)
        return entry

    def cgroup_checks(self, agents):
        seen = {}
        for agent in agents:
            try:
                paths = procfs.parse_cgroup(self.proc.read(agent["pid"], "cgroup"))
                memory, pids = self.cgroups.memory(paths), self.cgroups.pids(paths)
            except (OSError, ValueError) as exc:
                self.incomplete.append({"check": "cgroup of pid %d" % agent["pid"], "error": fm.describe(exc)})
                continue
            agent["cgroup_memory"] = memory
            key = (memory or {}).get("cgroup") or (pids or {}).get("cgroup")
            if key is None or key in seen:
                continue
            seen[key] = {"cgroup": key, "memory": memory, "pids": pids, "pids_of": agent["pid"]}
            if memory and memory.get("max"):
                percent = round(100.0 * (memory["current"] or 0) / memory["max"], 1)
                evidence = {"cgroup": memory["cgroup"], "used_percent": percent, "current_mb": int((memory["current"] or 0) / MB),
                            "max_mb": int(memory["max"] / MB), "oom_kill": memory["oom_kill"], "version": memory["version"]}
                found = fm.graded("proc.cgroup_memory", percent, evidence, self.thresholds, subject=memory["cgroup"])
                if found is None and memory["oom_kill"]:
                    found = fm.make("proc.cgroup_memory", "high", evidence, subject=memory["cgroup"])
                if found:
                    self.findings.append(found)
            if pids and pids.get("max"):
                percent = round(100.0 * pids["current"] / pids["max"], 1)
                found = fm.graded("proc.pids_limit", percent, {"cgroup": pids["cgroup"], "current": pids["current"],
                                                               "max": pids["max"], "used_percent": percent},
                                  self.thresholds, subject=pids["cgroup"])
                if found:
                    self.findings.append(found)
        return list(seen.values())

    def oom_history(self, agents):
        try:
            records = self.kernel_log()
        except (OSError, ValueError) as exc:
            self.incomplete.append({"check": "kernel log", "error": fm.describe(exc)})
            self.findings.append(fm.make("proc.check_incomplete", "unknown",
                                         {"what": "the kernel log (OOM kills)", "error": fm.describe(exc)}, subject="kernel log"))
            return []
        kills = procfs.oom_kills(records)
        boot = self.proc.boot_time()
        for kill in kills:
            kill["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boot + kill["seconds_since_boot"])) if boot else None
        if kills:
            last = kills[-1]
            self.findings.append(fm.make("proc.oom_kill", "high", {
                "count": len(kills), "pid": last["pid"], "comm": last["comm"], "when": last["when"] or "since boot",
                "memcg_note": " in memory cgroup %s" % (last["cgroup"] or "") if last["memcg"] else " (host out of memory)",
                "kills": kills[-10:]}))
        return kills


def kernel_log_reader(module):
    """/dev/kmsg when readable, else journalctl -k; raises OSError when neither works."""
    def read():
        try:
            return procfs.read_kmsg()
        except OSError as kmsg_error:
            journalctl = module.get_bin_path("journalctl")
            if not journalctl:
                raise
            rc, out, err = module.run_command([journalctl, "-k", "-o", "cat", "--no-pager", "-n", "20000"])
            if rc != 0:
                raise OSError(kmsg_error.errno, "%s; journalctl -k: %s" % (kmsg_error.strerror, (err or out).strip()[:200]))
            return [(0.0, line) for line in out.splitlines()]
    return read
