# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node family: the Node.js runtime of each agent process, read from the host (not from its logs).

For every process matching the agent patterns: the binary it runs (``/proc/PID/exe``: its version, run once per
binary with ``--version``; replaced on disk under the process), what that version and its flags give (global
``fetch`` and ``WebSocket``, end of life by the catalog's dated table), its V8 heap limit against its memory cgroup's
limit, and whether it is PID 1 of its PID namespace with no init (signals, zombies). Only ``NODE_OPTIONS`` is taken
from ``/proc/PID/environ``; the environment is never returned, and everything returned is redacted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import posixpath
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import node_runtime as nr
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import redact
from ansible_collections.agentops.runbooks.plugins.module_utils import rules_node
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

MB = 1024 * 1024
CMD_MAX = 512
AGENTS_MAX = 200
BINARIES_MAX = 20
INCOMPLETE_MAX = 50


def _date(text):
    return datetime.date(*[int(part) for part in text.split("-")])


def eol_status(version, today, table=None):
    """{major, eol_date, days_past_eol, days_to_eol, status} of a version's release line by the dated table;
    ``status`` is ``end-of-life``, ``supported`` or ``not in the table``."""
    table = rules_node.NODE_EOL if table is None else table
    major = version[0]
    if major not in table:
        return {"major": major, "eol_date": None, "days_past_eol": None, "days_to_eol": None, "status": "not in the table"}
    end = _date(table[major])
    days = (today - end).days
    return {"major": major, "eol_date": table[major], "days_past_eol": days, "days_to_eol": -days,
            "status": "end-of-life" if days >= 0 else "supported"}


def supported_lines(today, table=None):
    """The LTS lines (even majors) still supported on ``today``: ``"22 (to 2027-04-30), 24 (to 2028-04-30)"``."""
    table = rules_node.NODE_EOL if table is None else table
    lines = ["%d (to %s)" % (major, end) for major, end in sorted(table.items())
             if major >= 4 and major % 2 == 0 and _date(end) >= today]
    return ", ".join(lines) or "none in the table dated %s" % rules_node.NODE_EOL_AS_OF


def memory_limit(cgroups, paths):
    """(leaf, effective) memory accounting of a process's cgroup: ``effective`` is the smallest limit on the way up
    (a pod or slice limit above the container's own), or None when no level has one. Read with procfs.CgroupFS."""
    leaf = cgroups.memory(paths)
    if not leaf:
        return None, None
    best = leaf if leaf.get("max") else None
    key = "" if leaf["version"] == 2 else "memory"
    path = leaf["cgroup"].rstrip("/")
    while path and path != "/":
        path = posixpath.dirname(path)
        if path in ("", "/"):
            break
        level = cgroups.memory({key: path})
        if level and level.get("max") and (best is None or level["max"] < best["max"]):
            best = level
    return leaf, best


class NodeCollector(object):
    def __init__(self, proc, cgroups, patterns, version_timeout=5.0, thresholds=None, redactor=None, today=None):
        self.proc = proc
        self.cgroups = cgroups
        self.patterns = patterns
        self.timeout = version_timeout
        self.thresholds = thresholds or {}
        self.redactor = redactor or Redactor()
        self.today = today or datetime.date(*time.gmtime()[:3])
        self.findings = []
        self.incomplete = []
        self.versions = {}  # (dev, ino) of a binary -> its --version result
        self.binaries = {}  # "dev:ino" -> {binary, exe, version | error, ran_as, pids}
        self.reported = set()
        self.unchecked = 0
        self.host_mb = None

    # ------------------------------------------------------------ helpers
    def _incomplete(self, what, error, pid=None):
        """Record a check that could not run, and its ``unknown`` finding; past INCOMPLETE_MAX (a diagnosis without
        become sees many other users' processes) only counted, in facts ``unchecked_beyond_list``."""
        if len(self.incomplete) >= INCOMPLETE_MAX:
            self.unchecked += 1
            return
        self.incomplete.append({"check": what, "error": error})
        evidence = {"what": what, "error": error}
        if pid is not None:
            evidence["pid"] = pid
        self.findings.append(fm.make("node.check_incomplete", "unknown", evidence, subject=what))

    def _add(self, found):
        if found:
            self.findings.append(found)

    def cmd(self, name, argv):
        return redact.truncate(self.redactor.argv(argv) if argv else "[%s]" % name, CMD_MAX)

    def host_memory_mb(self):
        if self.host_mb is None:
            try:
                self.host_mb = self.proc.meminfo().get("MemTotal", 0) // 1024
            except (OSError, ValueError):
                self.host_mb = 0
        return self.host_mb

    # ------------------------------------------------------------ the run
    def run(self):
        began = time.monotonic()
        try:
            pids = self.proc.pids()
        except OSError as exc:
            self._incomplete("the process table", fm.describe(exc))
            return {"facts": {}, "findings": self.findings, "incomplete": self.incomplete}
        counts = {}
        agents = []
        zombies = {}
        for pid, stat, _uid, argv in self.proc.processes(counts, pids):
            if stat["state"] == "Z":
                zombies.setdefault(stat["ppid"], []).append(pid)
            elif procfs.is_agent(self.patterns, stat["comm"], argv):
                agents.append((pid, stat, argv))
        facts = {"agent_count": len(agents), "node_processes": [], "other_processes": [], "binaries": [],
                 "eol_table": {"source": rules_node.NODE_EOL_SOURCE, "as_of": rules_node.NODE_EOL_AS_OF},
                 "vanished": counts.get("vanished", 0), "unreadable": counts.get("unreadable", 0)}
        for pid, stat, argv in agents[:AGENTS_MAX]:
            entry = self.inspect(pid, stat, argv, zombies)
            if entry is None:
                facts["vanished"] += 1
            elif entry["node"]:
                facts["node_processes"].append(entry)
            else:
                facts["other_processes"].append(entry)
        facts["binaries"] = sorted(self.binaries.values(), key=lambda b: b["exe"])
        facts["unchecked_beyond_list"] = self.unchecked
        facts["agents_not_inspected"] = max(0, len(agents) - AGENTS_MAX)
        facts["scan_ms"] = int((time.monotonic() - began) * 1000)
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def inspect(self, pid, stat, argv, zombies):
        """One agent process as a dict, adding its findings; None when it exited meanwhile."""
        name = stat["comm"]
        try:
            exe = os.readlink(self.proc.path(pid, "exe"))
        except OSError as exc:
            if exc.errno in procfs.GONE:
                return None
            self._incomplete("the binary of pid %d (/proc/%d/exe)" % (pid, pid), fm.describe(exc), pid)
            return {"pid": pid, "name": name, "cmd": self.cmd(name, argv), "exe": None, "node": False, "read": []}
        entry = {"pid": pid, "name": name, "cmd": self.cmd(name, argv), "exe": exe, "deleted": exe.endswith(nr.DELETED),
                 "node": nr.is_node_binary(exe), "version": None}
        read = ["/proc/%d/cmdline" % pid, "/proc/%d/exe" % pid]
        entry["read"] = read
        version = None
        if entry["node"]:
            version = self.version(pid, exe, read)
            entry["version"] = nr.version_string(version) if version else None
        label = "Node %s" % entry["version"] if entry["version"] else ("Node, version unknown" if entry["node"] else nr.binary_name(exe))
        base = {"pid": pid, "name": name, "exe": exe, "version": entry["version"] or "unknown", "read": read}
        if entry["deleted"]:
            self.replaced(pid, exe, entry, base)
        node_options = None
        if entry["node"]:
            node_options = self.node_options(pid, read)
            flags = nr.flag_set(argv, node_options or "")
            if version:
                entry["features"] = nr.features(version, flags)
                self.feature_findings(entry, base)
                entry["eol"] = self.eol(version, base)
            entry["heap"] = self.heap(pid, argv, node_options, version, base, read)
        entry["pid1"] = self.pid1(pid, entry, label, zombies, base, read)
        return entry

    # ------------------------------------------------------------ the binary
    def version(self, pid, exe, read):
        """The version of the binary pid runs, once per binary; None (and an incomplete check) when it cannot be known."""
        try:
            info = os.stat(self.proc.path(pid, "exe"))
        except OSError as exc:
            self._incomplete("the binary of pid %d (%s)" % (pid, exe), fm.describe(exc), pid)
            return None
        key = "%d:%d" % (info.st_dev, info.st_ino)
        if key not in self.binaries and len(self.binaries) >= BINARIES_MAX:
            self._incomplete("the version of %s (pid %d)" % (exe, pid), "more than %d distinct Node binaries; this one was not run" % BINARIES_MAX, pid)
            return None
        try:
            result = nr.run_version(self.proc.path(pid, "exe"), self.timeout, self.versions)
        except OSError as exc:
            self._incomplete("the version of %s (pid %d)" % (exe, pid), fm.describe(exc), pid)
            return None
        read[1] = "/proc/%d/exe (--version as %s)" % (pid, result["ran_as"])
        binary = self.binaries.setdefault(result["binary"], {"binary": result["binary"], "exe": exe, "ran_as": result["ran_as"],
                                                             "version": result.get("output"), "error": result.get("error"), "pids": []})
        binary["pids"].append(pid)
        if "error" in result:
            if result["binary"] not in self.reported:  # one unknown finding per binary, not per process
                self.reported.add(result["binary"])
                self._incomplete("the version of %s (pid %d)" % (exe, pid), result["error"], pid)
            return None
        return result["version"]

    def replaced(self, pid, exe, entry, base):
        path = exe[:-len(nr.DELETED)]
        on_disk = os.path.join(self.proc.path(pid, "root"), path.lstrip("/"))
        if not os.path.exists(on_disk):
            now = "no file at that path"
        elif entry["node"]:
            try:
                result = nr.run_version(on_disk, self.timeout, self.versions)
                now = "Node %s" % result["output"] if "version" in result else "a file whose --version failed (%s)" % result["error"]
            except OSError as exc:
                now = "unreadable (%s)" % fm.describe(exc)
        else:
            now = "a new file"
        entry["on_disk"] = now
        self._add(fm.make("node.binary_replaced", "medium", dict(base, on_disk=now), subject="pid %d" % pid))

    def node_options(self, pid, read):
        """NODE_OPTIONS of the process (the one variable read from its environment), '' when unset, None when unreadable."""
        try:
            environ = procfs.parse_environ(self.proc.read(pid, "environ"))
        except OSError as exc:
            if exc.errno not in procfs.GONE:
                self._incomplete("NODE_OPTIONS of pid %d (/proc/%d/environ)" % (pid, pid), fm.describe(exc), pid)
            return None
        read.append("/proc/%d/environ (NODE_OPTIONS only)" % pid)
        return environ.get("NODE_OPTIONS", "")

    # ------------------------------------------------------------ what the version gives
    def feature_findings(self, entry, base):
        for name, rule, severity in (("fetch", "node.fetch_unavailable", "medium"), ("websocket", "node.websocket_unavailable", "info")):
            state = entry["features"][name]
            if not state["available"]:
                self._add(fm.make(rule, severity, dict(base, why=state["why"]), subject="pid %d" % entry["pid"]))

    def eol(self, version, base):
        status = eol_status(version, self.today)
        evidence = dict(base, major=status["major"], eol_date=status["eol_date"], days_past_eol=status["days_past_eol"],
                        days_to_eol=status["days_to_eol"], supported=supported_lines(self.today),
                        eol_source=rules_node.NODE_EOL_SOURCE, eol_as_of=rules_node.NODE_EOL_AS_OF)
        subject = "pid %d" % base["pid"]
        if status["status"] == "end-of-life":
            self._add(fm.graded("node.eol", status["days_past_eol"], evidence, self.thresholds, subject=subject))
        elif status["status"] == "supported":
            self._add(fm.graded("node.eol_soon", status["days_to_eol"], evidence, self.thresholds, subject=subject))
        return status

    # ------------------------------------------------------------ heap vs cgroup
    def heap(self, pid, argv, node_options, version, base, read):
        flag_mb, source = nr.heap_flag_mb(argv, node_options, procfs.node_heap_limit_mb)
        heap = {"flag_mb": flag_mb, "source": source}
        try:
            paths = procfs.parse_cgroup(self.proc.read(pid, "cgroup"))
            leaf, limit = memory_limit(self.cgroups, paths)
        except (OSError, ValueError) as exc:
            if not (isinstance(exc, OSError) and exc.errno in procfs.GONE):
                self._incomplete("the memory cgroup of pid %d" % pid, fm.describe(exc), pid)
            return heap
        read.append("/proc/%d/cgroup" % pid)
        if leaf is None:
            heap["cgroup"] = None
            heap["note"] = "no memory controller visible for this process"
            return heap
        read.append("memory limits of cgroup %s and its parents (v%d)" % (leaf["cgroup"], leaf["version"]))
        heap["cgroup"] = leaf["cgroup"]
        if limit is None:
            heap["cgroup_limit_mb"] = None
            return heap
        limit_mb = int(limit["max"] // MB)
        heap.update(cgroup_limit_mb=limit_mb, limit_cgroup=limit["cgroup"])
        if flag_mb:
            heap_mb, basis = flag_mb, "none: --max-old-space-size sets it"
        elif version is None:
            heap["note"] = "no --max-old-space-size and the version is unknown: V8's default cannot be estimated"
            return heap
        elif version < (12, 0, 0):
            heap_mb, basis = nr.default_heap_mb(version, None), "none: V8's fixed default before Node 12"
            source = "V8's default for Node %s" % nr.version_string(version)
        else:
            if nr.reads_cgroup_limit(version, leaf["version"], procfs.container_of(paths)):
                memory_mb, basis = limit_mb, "the cgroup's limit, %d MB (Node %s reads it)" % (limit_mb, nr.version_string(version))
            else:
                memory_mb = self.host_memory_mb()
                basis = ("the host's %d MB: Node %s does not read this cgroup's limit (only Node 20.3+ reads the process's own "
                         "cgroup; older ones read cgroup v1 from inside a container only)" % (memory_mb, nr.version_string(version)))
            heap_mb = nr.default_heap_mb(version, memory_mb)
            source = "V8's default for Node %s, estimated" % nr.version_string(version)
        percent = round(100.0 * heap_mb / limit_mb, 1) if limit_mb else None
        heap.update(limit_mb=heap_mb, source=source, basis=basis, percent=percent)
        evidence = dict(base, heap_limit_mb=heap_mb, heap_source=source, heap_basis=basis, cgroup=limit["cgroup"],
                        cgroup_limit_mb=limit_mb, heap_percent=percent, cgroup_version=leaf["version"])
        self._add(fm.graded("node.heap_over_cgroup_limit", percent, evidence, self.thresholds, subject="pid %d" % pid))
        return heap

    # ------------------------------------------------------------ PID 1
    def pid1(self, pid, entry, label, zombies, base, read):
        try:
            status = nr.parse_status(self.proc.read(pid, "status"))
        except (OSError, ValueError) as exc:
            if not (isinstance(exc, OSError) and exc.errno in procfs.GONE):
                self._incomplete("the status of pid %d (/proc/%d/status)" % (pid, pid), fm.describe(exc), pid)
            return None
        read.append("/proc/%d/status (NSpid, SigCgt, SigIgn)" % pid)
        nspid = status["nspid"] or [pid]
        if nspid[-1] != 1:
            return {"nspid": nspid, "pid1": False}
        sigterm = nr.sigterm_handling(status, entry["node"])
        children = sorted(zombies.get(pid, []))
        result = {"nspid": nspid, "pid1": True, "sigterm": sigterm, "sigcgt": "%016x" % status["sigcgt"],
                  "sigign": "%016x" % status["sigign"], "zombies": len(children)}
        evidence = dict(base, runtime=label, nspid=" ".join(str(n) for n in nspid), sigterm=sigterm, sigcgt=result["sigcgt"],
                        sigign=result["sigign"], zombie_count=len(children))
        certain = not sigterm.startswith("caught")  # no handler at all, or ignored: SIGTERM never ends it
        self._add(fm.make("node.pid1_without_init", "high" if certain else "medium", evidence, subject="pid %d" % pid))
        if children:
            evidence = dict(base, runtime=label, count=len(children), zombie_pids=",".join(str(z) for z in children[:50]))
            self._add(fm.graded("node.pid1_zombies", len(children), evidence, self.thresholds, subject="pid %d" % pid))
        return result


class NodeFamily(object):
    """The Node.js runtime of the agent processes: version, features, end of life, replaced binary, heap vs cgroup, PID 1."""

    name = "node"
    title = "Node.js runtime"
    enable = "add node to agentops_checks"
    redacts = True
    variables = dict(
        patterns=("process_patterns", "Regular expressions naming agent processes, matched against the whole process name, the basename of "
                                      "argv[0], or (after an interpreter such as node or sh) of the script it runs."),
        version_timeout=("node_version_timeout", "Seconds to wait for each Node binary's --version (run once per binary, as nobody "
                                                 "when the diagnosis is root); a binary that does not answer is reported as not checked."),
    )
    secrets = {}
    enabled_by = None
    ranges = dict(version_timeout=(0.1, 60))
    options = dict(
        patterns=dict(type="list", elements="str", default=["node", "claude", "npx", "npm"]),
        proc_root=dict(type="path", default="/proc"),
        cgroup_root=dict(type="path", default="/sys/fs/cgroup"),
        version_timeout=dict(type="float", default=5.0),
    )

    def collect(self, module, params):
        check_ranges(self, params, "seconds")
        if not params["patterns"]:
            raise ValueError("patterns must name at least one process pattern.")
        patterns = procfs.compile_patterns(params["patterns"])
        if not os.path.isdir(params["proc_root"]):
            raise ValueError("proc_root %s is not a directory." % params["proc_root"])
        redactor = Redactor(key=params.get("redaction_key"))
        collector = NodeCollector(procfs.ProcFS(params["proc_root"]), procfs.CgroupFS(params["cgroup_root"]), patterns,
                                  params["version_timeout"], params["thresholds"], redactor)
        return redactor.data(collector.run())
