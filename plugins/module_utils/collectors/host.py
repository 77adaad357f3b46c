# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host family: load, memory and swap, disks and inodes, file handles, tasks, uptime."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.procfs import ProcFS, real_mounts

MB = 1024 * 1024


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


class HostCollector(object):
    def __init__(self, proc, thresholds=None, mount_timeout=2.0, exclude_fstypes=()):
        self.proc = proc
        self.thresholds = thresholds or {}
        self.mount_timeout = mount_timeout
        self.exclude_fstypes = exclude_fstypes
        self.facts = {}
        self.findings = []
        self.incomplete = []

    def _incomplete(self, what, error):
        self.incomplete.append({"check": what, "error": error})
        self.findings.append(fm.make("host.check_incomplete", "unknown", {"what": what, "error": error}, subject=what))

    def _graded(self, rule_id, value, evidence, subject=None):
        found = fm.graded(rule_id, value, evidence, self.thresholds, subject=subject)
        if found:
            self.findings.append(found)

    def run(self):
        for name, step in (("cpu load", self.load), ("memory", self.memory), ("file handles", self.file_handles),
                           ("task count", self.tasks), ("uptime", self.uptime), ("mounts", self.mounts)):
            try:
                step()
            except (OSError, ValueError, IndexError, KeyError) as exc:
                self._incomplete(name, fm.describe(exc))
        self.facts["kernel"] = os.uname()[2]
        return {"facts": self.facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def cores(self):
        try:
            count = sum(1 for line in self.proc.read("cpuinfo").splitlines() if line.startswith("processor"))
        except OSError:
            count = 0
        if self.proc.root == "/proc" and hasattr(os, "sched_getaffinity"):
            count = min(count, len(os.sched_getaffinity(0))) if count else len(os.sched_getaffinity(0))
        return count or os.cpu_count() or 1

    def load(self):
        load1, load5, load15, _running, _total = self.proc.loadavg()
        cores = self.cores()
        per_core = round(load1 / cores, 2)
        self.facts["cores"] = cores
        self.facts["load"] = {"1": load1, "5": load5, "15": load15, "per_core": per_core}
        self._graded("host.load", per_core, {"load1": load1, "load5": load5, "load15": load15, "cores": cores, "per_core": per_core})

    def memory(self):
        info = self.proc.meminfo()
        total = info["MemTotal"]
        available = info.get("MemAvailable")
        if available is None:
            available = info.get("MemFree", 0) + info.get("Cached", 0) + info.get("Buffers", 0)
        swap_total = info.get("SwapTotal", 0)
        swap_used = swap_total - info.get("SwapFree", 0)
        memory = {
            "total_mb": total // 1024,
            "available_mb": available // 1024,
            "used_percent": _pct(total - available, total),
            "swap_total_mb": swap_total // 1024,
            "swap_used_mb": swap_used // 1024,
            "swap_used_percent": _pct(swap_used, swap_total),
        }
        self.facts["memory"] = memory
        self._graded("host.memory", memory["used_percent"], dict(memory))
        if swap_total:
            self._graded("host.swap", memory["swap_used_percent"],
                         {"used_percent": memory["swap_used_percent"], "used_mb": memory["swap_used_mb"], "total_mb": memory["swap_total_mb"]})

    def file_handles(self):
        allocated, unused, maximum = self.proc.file_nr()
        in_use = allocated - unused
        handles = {"allocated": in_use, "max": maximum, "used_percent": _pct(in_use, maximum)}
        self.facts["file_handles"] = handles
        self._graded("host.file_handles", handles["used_percent"], dict(handles))

    def tasks(self):
        total = self.proc.loadavg()[4]
        pid_max = self.proc.read_int("sys", "kernel", "pid_max")
        tasks = {"total": total, "pid_max": pid_max, "used_percent": _pct(total, pid_max)}
        self.facts["tasks"] = tasks
        self._graded("host.pids", tasks["used_percent"], {"tasks": total, "pid_max": pid_max, "used_percent": tasks["used_percent"]})

    def uptime(self):
        seconds = int(self.proc.uptime())
        self.facts["uptime_seconds"] = seconds
        booted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.proc.boot_time() or time.time() - seconds))
        self._graded("host.recent_reboot", seconds, {"uptime_seconds": seconds, "count": 1, "first_seen": booted, "last_seen": booted})

    def mounts(self):
        mounts = real_mounts(self.proc.mountinfo(), self.exclude_fstypes)
        results = statvfs_all([m["mount_point"] for m in mounts], self.mount_timeout)
        self.facts["mounts"] = []
        for mount in mounts:
            point = mount["mount_point"]
            outcome = results.get(point)
            if not isinstance(outcome, os.statvfs_result):
                self._incomplete("mount %s" % point, outcome or "statvfs did not answer within %s s" % self.mount_timeout)
                continue
            entry = _mount_usage(mount, outcome)
            self.facts["mounts"].append(entry)
            self._graded("host.disk_space", entry["used_percent"], {
                "mount_point": point, "fstype": entry["fstype"], "used_percent": entry["used_percent"],
                "available_mb": entry["available_mb"], "size_mb": entry["size_mb"]}, subject=point)
            if entry["inodes_total"]:
                self._graded("host.disk_inodes", entry["inodes_used_percent"], {
                    "mount_point": point, "fstype": entry["fstype"], "used_percent": entry["inodes_used_percent"],
                    "free": entry["inodes_free"], "total": entry["inodes_total"]}, subject=point)


def _mount_usage(mount, st):
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    available = st.f_bavail * st.f_frsize
    inodes_used = st.f_files - st.f_ffree
    return {
        "mount_point": mount["mount_point"],
        "fstype": mount["fstype"],
        "source": mount["source"],
        "size_mb": st.f_blocks * st.f_frsize // MB,
        "used_mb": used // MB,
        "available_mb": available // MB,
        # Like df: the share of what non-root users can use.
        "used_percent": _pct(used, used + available),
        "inodes_total": st.f_files,
        "inodes_free": st.f_ffree,
        "inodes_used_percent": _pct(inodes_used, st.f_files),
    }


def statvfs_all(paths, timeout):
    """statvfs every path in parallel threads, waiting at most ``timeout``
    seconds in all. Returns {path: statvfs_result or error string}; a path
    missing from the result did not answer in time."""
    results = {}

    def worker(path):
        try:
            results[path] = os.statvfs(path)
        except OSError as exc:
            results[path] = fm.describe(exc)

    threads = []
    for path in paths:
        thread = threading.Thread(target=worker, args=(path,))
        thread.daemon = True
        thread.start()
        threads.append(thread)
    deadline = _now() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - _now()))
    return dict(results)


def _now():
    return time.monotonic()


class HostFamily(object):
    """Host resources, measured now."""

    name = "host"
    title = "host resources"
    enable = "add host to agentops_checks"
    redacts = False
    variables = dict(mount_timeout=("mount_timeout", "Seconds to wait for each mount's statvfs (a hung NFS mount is reported, not waited on)."))
    secrets = {}
    enabled_by = None
    ranges = dict(mount_timeout=(0.1, 60))  # 0 would wait for no mount: the controller refuses it too
    options = dict(
        proc_root=dict(type="path", default="/proc"),
        mount_timeout=dict(type="float", default=2.0),
        exclude_fstypes=dict(type="list", elements="str", default=[]),
    )

    def collect(self, module, params):
        check_ranges(self, params, "seconds")
        if not os.path.isfile(os.path.join(params["proc_root"], "loadavg")):
            raise ValueError("proc_root %s does not look like a proc filesystem (no loadavg file)." % params["proc_root"])
        return HostCollector(ProcFS(params["proc_root"]), params["thresholds"], params["mount_timeout"],
                             params["exclude_fstypes"]).run()
