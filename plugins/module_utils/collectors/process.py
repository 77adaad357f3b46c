# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The process family: the process table in one pass, zombies, orphans, descriptors, memory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils.memory import MemoryCollector, kernel_log_reader
from ansible_collections.agentops.runbooks.plugins.module_utils import redact
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

CMD_MAX = 512
AGENTS_MAX = 200


class ProcessCollector(object):
    def __init__(self, proc, patterns, top_n=10, thresholds=None, include_table=False, memory=None, supervision=None,
                 redactor=None):
        self.proc = proc
        self.supervision = supervision
        self.memory = memory
        self.patterns = patterns
        self.top_n = top_n
        self.thresholds = thresholds or {}
        self.include_table = include_table
        self.redactor = redactor or Redactor()
        self.unreadable = 0
        self.vanished = 0

    # ------------------------------------------------------------ reading
    def read_process(self, pid, stat, uid, argv, uptime, boot_time):
        """One process as a dict (descriptors and limits added), or None if it exited meanwhile."""
        started = stat["starttime"] / float(procfs.CLK_TCK)
        entry = {
            "pid": pid,
            "ppid": stat["ppid"],
            "state": stat["state"],
            "name": stat["comm"],
            "user": procfs.username(uid),
            "rss_kb": stat["rss_pages"] * procfs.PAGE_SIZE // 1024,
            "threads": stat["threads"],
            "start_time": int(boot_time + started) if boot_time else None,
            "age_seconds": max(0, int(uptime - started)),
            "argv": argv,
            "fd_count": None,
            "fd_limit": None,
            "deleted": [],
        }
        if stat["state"] == "Z":
            return entry
        try:
            entry["fd_count"], entry["deleted"] = self.proc.fds(pid)
            entry["fd_limit"] = self.proc.limits(pid).get("Max open files", (None, None))[0]
        except OSError as exc:
            if exc.errno in procfs.GONE:
                self.vanished += 1
                return None
            self.unreadable += 1
        return entry

    def matches(self, entry):
        return procfs.is_agent(self.patterns, entry["name"], entry["argv"])

    def cmd(self, entry):
        text = self.redactor.argv(entry["argv"]) if entry["argv"] else "[%s]" % entry["name"]
        return redact.truncate(text, CMD_MAX)

    def brief(self, entry):
        return {
            "pid": entry["pid"], "ppid": entry["ppid"], "user": entry["user"], "name": entry["name"],
            "state": entry["state"], "rss_mb": round(entry["rss_kb"] / 1024.0, 1), "threads": entry["threads"],
            "age_seconds": entry["age_seconds"], "fd_count": entry["fd_count"], "fd_limit": entry["fd_limit"],
            "cmd": self.cmd(entry),
        }

    # ------------------------------------------------------------ analysis
    def run(self):
        began = time.monotonic()
        findings = []
        try:
            uptime = self.proc.uptime()
            boot_time = self.proc.boot_time()
            pids = self.proc.pids()
        except (OSError, ValueError, IndexError) as exc:
            error = fm.describe(exc)
            return {"facts": {}, "incomplete": [{"check": "process table", "error": error}],
                    "findings": [fm.make("proc.check_incomplete", "unknown", {"what": "the process table", "error": error})]}
        table = {}
        counts = {}
        for pid, stat, uid, argv in self.proc.processes(counts, pids):
            entry = self.read_process(pid, stat, uid, argv, uptime, boot_time)
            if entry is not None:
                table[pid] = entry
        self.vanished += counts.get("vanished", 0)
        self.unreadable += counts.get("unreadable", 0)
        try:
            mem_total_kb = self.proc.meminfo().get("MemTotal")
        except (OSError, ValueError):
            mem_total_kb = None

        facts = {
            "process_count": len(table),
            "thread_count": sum(e["threads"] for e in table.values()),
            "states": {},
            "unreadable": self.unreadable,
            "vanished": self.vanished,
        }
        for entry in table.values():
            facts["states"][entry["state"]] = facts["states"].get(entry["state"], 0) + 1
        pid1 = table.get(1)
        facts["pid1"] = {"name": pid1["name"], "cmd": self.cmd(pid1)} if pid1 else None

        agents = [e for e in table.values() if self.matches(e)]
        facts["agents"] = [self.brief(e) for e in agents[:AGENTS_MAX]]
        facts["agent_count"] = len(agents)

        facts["zombies"] = self.zombies(table, findings)
        facts["orphans"] = self.orphans(agents, pid1, findings, facts)
        facts["near_fd_limit"] = self.fd_pressure(table, findings)
        facts["top_rss"] = self.top_rss(table, mem_total_kb, findings)
        facts["deleted_open_files"] = self.deleted_files(table, findings)
        incomplete = []
        if self.memory is not None:
            memory = self.memory.run([{"pid": e["pid"], "name": e["name"], "argv": e["argv"], "rss_mb": e["rss_kb"] / 1024.0,
                                       "age_seconds": e["age_seconds"]} for e in agents if e["state"] != "Z"])
            facts["memory"] = memory["facts"]
            findings.extend(memory["findings"])
            incomplete.extend(memory["incomplete"])

        if self.unreadable or self.vanished:
            findings.append(fm.make("proc.limited_visibility", "info", {
                "unreadable": self.unreadable, "vanished": self.vanished, "user": procfs.username(os.geteuid())}))
        if self.include_table:
            facts["table"] = [dict(self.brief(e), start_time=e["start_time"], rss_kb=e["rss_kb"]) for e in table.values()]
        facts["scan_ms"] = int((time.monotonic() - began) * 1000)
        return {"facts": facts, "findings": fm.ordered(findings), "incomplete": incomplete}

    def chain(self, table, pid):
        chain = []
        seen = set()
        while pid in table and pid not in seen:
            seen.add(pid)
            entry = table[pid]
            chain.append({"pid": pid, "name": entry["name"], "user": entry["user"], "cmd": self.cmd(entry)})
            pid = entry["ppid"]
        return chain

    def zombies(self, table, findings):
        zombies = [e for e in table.values() if e["state"] == "Z"]
        by_parent = {}
        for entry in zombies:
            by_parent.setdefault(entry["ppid"], []).append(entry)
        for ppid, group in sorted(by_parent.items()):
            parent = table.get(ppid)
            evidence = {
                "count": len(group),
                "ppid": ppid,
                "parent_name": parent["name"] if parent else "unknown",
                "zombie_pids": sorted(e["pid"] for e in group),
                "oldest_age_seconds": max(e["age_seconds"] for e in group),
                "parent_chain": self.chain(table, ppid),
            }
            found = fm.graded("proc.zombie", len(group), evidence, self.thresholds, subject="ppid %d" % ppid)
            if found:
                findings.append(found)
        return [{"pid": e["pid"], "ppid": e["ppid"], "name": e["name"], "user": e["user"],
                 "age_seconds": e["age_seconds"], "parent_chain": self.chain(table, e["ppid"])}
                for e in sorted(zombies, key=lambda e: e["pid"])]

    def orphans(self, agents, pid1, findings, facts):
        # When PID 1 is itself an agent (Node as a container's PID 1), its
        # children are ordinary children, not orphans.
        facts["supervised"] = []
        if pid1 is not None and self.matches(pid1):
            return []
        orphans = []
        for entry in agents:
            if entry["ppid"] != 1 or entry["state"] == "Z" or entry["pid"] == 1:
                continue
            owner = self.supervision.owner(entry["pid"], entry["name"], entry["argv"]) if self.supervision else None
            if owner:  # a systemd unit, a container or a supervisor owns it: not an orphan
                if len(facts["supervised"]) < AGENTS_MAX:
                    facts["supervised"].append(dict(self.brief(entry), supervisor=owner[0], owner=owner[1]))
                continue
            orphans.append(entry)
        if orphans:
            pids = sorted(e["pid"] for e in orphans)
            found = fm.graded("proc.orphan", len(orphans), {
                "count": len(orphans),
                "patterns": ", ".join(p.pattern for p in self.patterns),
                "pids": ",".join(str(p) for p in pids),
                "processes": [self.brief(e) for e in orphans[:50]],
                "rss_mb_total": round(sum(e["rss_kb"] for e in orphans) / 1024.0, 1),
            }, self.thresholds)
            if found:
                findings.append(found)
        return [self.brief(e) for e in sorted(orphans, key=lambda e: e["pid"])]

    def fd_pressure(self, table, findings):
        lowest = min(fm.thresholds_for("proc.fd_exhaustion", self.thresholds).values())
        near = []
        for entry in table.values():
            if not entry["fd_limit"] or entry["fd_count"] is None:
                continue
            percent = round(100.0 * entry["fd_count"] / entry["fd_limit"], 1)
            if percent < lowest:
                continue
            near.append(dict(self.brief(entry), used_percent=percent))
            found = fm.graded("proc.fd_exhaustion", percent, {
                "pid": entry["pid"], "name": entry["name"], "fd_count": entry["fd_count"],
                "fd_limit": entry["fd_limit"], "used_percent": percent, "cmd": self.cmd(entry)},
                self.thresholds, subject="pid %d" % entry["pid"])
            if found:
                findings.append(found)
        return sorted(near, key=lambda e: -e["used_percent"])

    def deleted_files(self, table, findings):
        holders = [e for e in table.values() if e["deleted"]]
        if not holders:
            return {"count": 0, "total_mb": 0.0, "processes": []}
        per_process = sorted(((sum(size for _fd, _path, size in e["deleted"]), e) for e in holders), key=lambda x: -x[0])
        total = sum(size for size, _e in per_process)
        largest, top = per_process[0]
        summary = {
            "count": sum(len(e["deleted"]) for e in holders),
            "total_mb": round(total / 1048576.0, 1),
            "processes": [{"pid": e["pid"], "name": e["name"], "mb": round(size / 1048576.0, 1),
                           "files": [{"fd": fd, "path": path, "mb": round(b / 1048576.0, 1)}
                                     for fd, path, b in sorted(e["deleted"], key=lambda d: -d[2])[:5]]}
                          for size, e in per_process[:10]],
        }
        found = fm.graded("proc.deleted_open_files", summary["total_mb"], {
            "count": summary["count"], "total_mb": summary["total_mb"], "pid": top["pid"], "name": top["name"],
            "pid_mb": round(largest / 1048576.0, 1), "processes": summary["processes"][:5]}, self.thresholds)
        if found:
            findings.append(found)
        return summary

    def top_rss(self, table, mem_total_kb, findings):
        top = sorted(table.values(), key=lambda e: -e["rss_kb"])[:self.top_n]
        result = []
        for entry in top:
            item = self.brief(entry)
            if mem_total_kb:
                item["percent"] = round(100.0 * entry["rss_kb"] / mem_total_kb, 1)
                found = fm.graded("proc.high_rss", item["percent"], {
                    "pid": entry["pid"], "name": entry["name"], "rss_mb": item["rss_mb"], "percent": item["percent"],
                    "cmd": item["cmd"]}, self.thresholds, subject="pid %d" % entry["pid"])
                if found:
                    findings.append(found)
            result.append(item)
        return result


class ProcessFamily(object):
    """The process table, zombies, orphans (never a supervised process), descriptors and memory."""

    name = "process"
    title = "processes"
    enable = "add process to agentops_checks"
    redacts = True
    variables = dict(
        patterns=("process_patterns", "Regular expressions naming agent processes, matched against the whole process name, the basename of "
                                      "argv[0], or (after an interpreter such as node or sh) of the script it runs."),
        top_n=("top_n", "How many of the largest processes by RSS to list."),
        leak_window=("leak_window", "Seconds to sample agent processes' memory for leaks; 0 turns sampling off. From AWX a longer window "
                                    "(60) gives a steadier slope. No agent process, no waiting."),
        leak_min_age=("leak_min_age", "Seconds an agent process must have run before its memory growth can count as a leak. A Node "
                                      "process warming up (loading code, filling caches) is listed as warming up, never as a leak."),
    )
    secrets = {}
    enabled_by = None
    ranges = dict(leak_window=(0, 600), leak_samples=(4, 100), leak_min_age=(0, 86400), leak_max_processes=(1, 1000), top_n=(0, 1000))
    options = dict(
        patterns=dict(type="list", elements="str", default=["node", "claude", "npx", "npm"]),
        top_n=dict(type="int", default=10),
        include_table=dict(type="bool", default=False),
        proc_root=dict(type="path", default="/proc"),
        leak_window=dict(type="float", default=3.0),
        leak_samples=dict(type="int", default=4),
        leak_max_processes=dict(type="int", default=50),
        leak_min_age=dict(type="float", default=120.0),
        cgroup_root=dict(type="path", default="/sys/fs/cgroup"),
        kernel_log=dict(type="bool", default=True),
    )

    def collect(self, module, params):
        check_ranges(self, params)
        if not params["patterns"]:
            raise ValueError("patterns must name at least one process pattern.")
        patterns = procfs.compile_patterns(params["patterns"])
        if not os.path.isdir(params["proc_root"]):
            raise ValueError("proc_root %s is not a directory." % params["proc_root"])
        proc = procfs.ProcFS(params["proc_root"])
        memory = MemoryCollector(proc, procfs.CgroupFS(params["cgroup_root"]), params["leak_window"], params["leak_samples"],
                                 params["leak_max_processes"], params["thresholds"],
                                 kernel_log_reader(module) if params["kernel_log"] else None, min_age=params["leak_min_age"])
        redactor = Redactor(key=params.get("redaction_key"))
        collector = ProcessCollector(proc, patterns, params["top_n"], params["thresholds"], params["include_table"], memory,
                                     procfs.Supervision(proc), redactor)
        return redactor.data(collector.run())
