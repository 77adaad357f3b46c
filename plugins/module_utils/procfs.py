# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place that parses /proc (and, later, cgroup files).

Everything takes a ``root`` (default ``/proc``) so tests can point it at a
synthetic tree and containers can read a host's /proc mounted elsewhere.
Readers raise ``OSError`` (the caller decides whether a missing file is
"skipped" or "vanished") and ``ValueError`` for content they cannot parse.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import pwd
import re

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PF_KTHREAD = 0x00200000
GONE = (errno.ENOENT, errno.ESRCH)  # errors of a process that exited while being read

# Filesystems that hold no user data (or are always full, like squashfs).
PSEUDO_FSTYPES = frozenset((
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "ramfs", "cgroup", "cgroup2", "pstore",
    "bpf", "tracefs", "debugfs", "securityfs", "mqueue", "hugetlbfs", "configfs", "fusectl",
    "autofs", "binfmt_misc", "nsfs", "rpc_pipefs", "efivarfs", "selinuxfs", "squashfs",
    "overlay_lower", "fuse.lxcfs", "fuse.portal", "fuse.gvfsd-fuse", "nfsd", "iso9660",
))


class ProcFS(object):
    def __init__(self, root="/proc"):
        self.root = root

    def path(self, *parts):
        return os.path.join(self.root, *[str(p) for p in parts])

    def read(self, *parts):
        with open(self.path(*parts), "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def read_int(self, *parts):
        return int(self.read(*parts).split()[0])

    # ------------------------------------------------------------ system
    def meminfo(self):
        """``/proc/meminfo`` as {key: kB}."""
        values = {}
        for line in self.read("meminfo").splitlines():
            key, _sep, rest = line.partition(":")
            fields = rest.split()
            if fields:
                try:
                    values[key.strip()] = int(fields[0])
                except ValueError:
                    continue
        return values

    def loadavg(self):
        """(load1, load5, load15, runnable, total scheduling entities)."""
        fields = self.read("loadavg").split()
        running, _sep, total = fields[3].partition("/")
        return float(fields[0]), float(fields[1]), float(fields[2]), int(running), int(total)

    def uptime(self):
        return float(self.read("uptime").split()[0])

    def boot_time(self):
        """Boot time (epoch seconds) from ``stat``'s btime line, or None."""
        try:
            for line in self.read("stat").splitlines():
                if line.startswith("btime "):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def file_nr(self):
        """(allocated, unused, max) from ``sys/fs/file-nr``."""
        allocated, unused, maximum = [int(x) for x in self.read("sys", "fs", "file-nr").split()[:3]]
        return allocated, unused, maximum

    def mountinfo(self, pid="self"):
        """Parse ``PID/mountinfo`` into dicts (see proc(5))."""
        mounts = []
        for line in self.read(pid, "mountinfo").splitlines():
            left, sep, right = line.partition(" - ")
            if not sep:
                continue
            lf = left.split()
            rf = right.split()
            if len(lf) < 6 or len(rf) < 2:
                continue
            mounts.append({
                "mount_id": lf[0],
                "device": lf[2],
                "root": _unescape(lf[3]),
                "mount_point": _unescape(lf[4]),
                "options": lf[5],
                "fstype": rf[0],
                "source": _unescape(rf[1]),
            })
        return mounts

    def pids(self):
        return sorted(int(name) for name in os.listdir(self.root) if name.isdigit())

    def processes(self, counts=None, pids=None):
        """Yield (pid, stat, uid, argv) of every user-space process in one pass (kernel threads left out).

        A process that exits mid-read is skipped and counted in ``counts["vanished"]``; one that cannot
        be read for another reason in ``counts["unreadable"]``.
        """
        counts = {} if counts is None else counts
        for pid in self.pids() if pids is None else pids:
            try:
                stat = self.stat(pid)
                if is_kernel_thread(stat):
                    continue
                uid = self.owner(pid)
                argv = self.cmdline(pid)
            except OSError as exc:
                key = "vanished" if exc.errno in GONE else "unreadable"
                counts[key] = counts.get(key, 0) + 1
                continue
            except ValueError:  # a truncated stat line: the process went away mid-read
                counts["vanished"] = counts.get("vanished", 0) + 1
                continue
            yield pid, stat, uid, argv

    # ------------------------------------------------------------ processes
    def stat(self, pid):
        return parse_stat(self.read(pid, "stat"))

    def cmdline(self, pid):
        raw = self.read(pid, "cmdline")
        return [part for part in raw.split("\0") if part] if raw else []

    def fd_count(self, pid):
        return len(os.listdir(self.path(pid, "fd")))

    def fds(self, pid):
        """(open descriptor count, [(fd, path, bytes)] of deleted files still open)."""
        directory = self.path(pid, "fd")
        names = os.listdir(directory)
        deleted = []
        for name in names:
            path = os.path.join(directory, name)
            try:
                target = os.readlink(path)
                if target.endswith(" (deleted)") and target.startswith("/"):
                    deleted.append((int(name), target[:-10], os.stat(path).st_size))
            except (OSError, ValueError):
                continue  # closed meanwhile
        return len(names), deleted

    def limits(self, pid):
        return parse_limits(self.read(pid, "limits"))

    def owner(self, pid):
        return os.stat(self.path(pid)).st_uid

    def cgroups(self, pid):
        """``PID/cgroup`` as {controller: path} (see parse_cgroup)."""
        return parse_cgroup(self.read(pid, "cgroup"))

    def pid_namespace(self, pid):
        """The ``pid:[inode]`` link of ``PID/ns/pid``, or None when it cannot be read."""
        try:
            return os.readlink(self.path(pid, "ns", "pid"))
        except OSError:
            return None


def _unescape(value):
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in value:
        return value
    out = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and value[i + 1:i + 4].isdigit() and len(value[i + 1:i + 4]) == 3:
            out.append(chr(int(value[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_stat(text):
    """Parse ``/proc/PID/stat``. The command name may hold spaces and ')', so
    split at the *last* ')'."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    comm = text[open_paren + 1:close_paren]
    rest = text[close_paren + 2:].split()
    if len(rest) < 22:
        raise ValueError("short stat line")
    # rest[0] is field 3 of proc(5): field N is rest[N - 3].
    return {
        "pid": int(text[:open_paren].strip()),
        "comm": comm,
        "state": rest[0],
        "ppid": int(rest[1]),
        "flags": int(rest[6]),
        "utime": int(rest[11]),
        "stime": int(rest[12]),
        "threads": int(rest[17]),
        "starttime": int(rest[19]),
        "vsize": int(rest[20]),
        "rss_pages": int(rest[21]),
    }


def parse_limits(text):
    """``/proc/PID/limits`` as {name: (soft, hard)}; ``None`` means unlimited."""
    limits = {}
    for line in text.splitlines()[1:]:
        # Names are separated from values by runs of 2+ spaces; values may be 'unlimited'.
        name = line[:26].strip()
        fields = line[26:].split()
        if not name or len(fields) < 2:
            continue
        limits[name] = (_limit(fields[0]), _limit(fields[1]))
    return limits


def _limit(value):
    return None if value == "unlimited" else int(value)


def is_kernel_thread(stat):
    """Kernel threads carry PF_KTHREAD. (Not "PID 2 and its children": in a PID namespace - a container - PID 2 is
    an ordinary process, often the agent itself, and kthreadd is not visible at all.)"""
    return bool(stat["flags"] & PF_KTHREAD)


_USERS = {}


def username(uid):
    if uid not in _USERS:
        try:
            _USERS[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _USERS[uid] = str(uid)
    return _USERS[uid]


def real_mounts(mounts, exclude_fstypes=()):
    """Mounts that hold data: no pseudo filesystems, one entry per device
    (bind mounts and btrfs subvolumes collapse to the shortest mount point)."""
    excluded = PSEUDO_FSTYPES.union(exclude_fstypes)
    by_device = {}
    for mount in mounts:
        if mount["fstype"] in excluded:
            continue
        key = mount["device"]
        kept = by_device.get(key)
        if kept is None or len(mount["mount_point"]) < len(kept["mount_point"]):
            by_device[key] = mount
    return sorted(by_device.values(), key=lambda m: m["mount_point"])


# ------------------------------------------------------------------ agents
def compile_patterns(patterns):
    """Compile agent patterns (agentops_process_patterns); ValueError names a bad one."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError("patterns entry %r is not a valid regular expression: %s." % (pattern, exc))
    return compiled


# Programs that run another program named by their first argument: for these (and only these) the
# script they run is the process's program too (``node /usr/bin/npx claude`` is npx).
INTERPRETERS = re.compile(r"^(?:node|nodejs|npx|env|sh|bash|dash|zsh|python(?:\d+(?:\.\d+)?)?)$")
INLINE_CODE = frozenset(("-e", "--eval", "-p", "--print", "-c"))


def program_names(comm, argv):
    """The names a process's program goes by: its name, the basename of argv[0], and - only when argv[0]
    is an interpreter - the basename of the script it runs (its first argument that is not an option).

    A process that retitled itself (pm2's fork mode sets ``process.title`` to ``node /srv/app.js``) has one argv
    string with spaces and a name cut from it: both are read as the command line they spell."""
    if argv and len(argv) == 1 and " " in argv[0].strip():
        argv = argv[0].split()
        comm = comm.split()[0] if comm and " " in comm else comm
    names = [comm]
    if argv:
        first = os.path.basename(argv[0])
        names.append(first)
        if INTERPRETERS.match(first) or INTERPRETERS.match(comm):
            for arg in argv[1:6]:
                if arg in INLINE_CODE:
                    break  # inline code, no script
                if arg.startswith("-") or (first == "env" and "=" in arg):
                    continue
                names.append(os.path.basename(arg))
                break
    return names


def is_agent(patterns, comm, argv):
    """A pattern must match the whole of one of the process's program names (see program_names): never an
    ordinary argument, so ``tail -f /var/log/app/node`` is not a node process."""
    names = program_names(comm, argv)
    return any(p.fullmatch(name) for p in patterns for name in names)


# ------------------------------------------------------------------ supervision
# cgroup path parts that mean a container runtime owns the process.
CONTAINER_CGROUP = re.compile(r"(?:^|/)(?:docker[-/]|libpod-|libpod_parent|kubepods|cri-containerd-|crio-|lxc[./]|"
                              r"machine\.slice/|garden/|ecs/)")
USER_SESSION = re.compile(r"^session-[^/]*\.scope$")
# Process names of supervisors whose children are theirs, not orphans (comm is cut at 15 characters).
SUPERVISORS = re.compile(r"^(?:PM2 v[\d.]+: God.*|supervisord|runsvdir|runsv|s6-svscan|s6-supervise|tini|dumb-init|"
                         r"containerd-shim.*|conmon|systemd)$")


def systemd_unit(cgroups):
    """The systemd service or scope that owns a process, from its cgroup paths (v1 ``name=systemd`` or v2), or
    None when it sits in a user's login session, in ``init.scope`` or outside any unit."""
    for key in ("systemd", ""):
        path = cgroups.get(key)
        if not path:
            continue
        for part in reversed(path.strip("/").split("/")):
            if part.endswith(".service") or part.endswith(".scope"):
                if USER_SESSION.match(part) or part == "init.scope":
                    return None
                return part
    return None


CONTAINER_ID = re.compile(r"[0-9a-f]{12,}")


def container_of(cgroups):
    """The container a process runs in, from the first cgroup path that names a container runtime: that path up
    to the container's id (``/docker/<id>``, ``.../libpod-<id>.scope``), so that a unit inside the container
    (``/docker/<id>/system.slice/agent.service``) is still that container. None outside containers."""
    for path in sorted(set(cgroups.values())):
        match = CONTAINER_CGROUP.search(path or "")
        if not match:
            continue
        parts = path.split("/")
        for index in range(len(parts)):
            head = "/".join(parts[:index + 1])
            if len(head) > match.start() and CONTAINER_ID.search(parts[index]):
                return head
        return path
    return None


class Supervision(object):
    """Who owns a process whose parent is PID 1, read from /proc: a systemd unit, a container or a
    supervisor. A supervised process is never an orphan (the reaper must never signal it).

    ``own`` is the reading process's own view (its PID namespace and cgroups): a process in the same
    container as the diagnosis is judged like any other, one in another PID namespace or another
    container is that container's.
    """

    def __init__(self, proc, own_pid="self"):
        self.proc = proc
        self.own_ns = proc.pid_namespace(own_pid)
        try:
            self.own_container = container_of(proc.cgroups(own_pid))
        except (OSError, ValueError):
            self.own_container = None

    def owner(self, pid, comm="", argv=()):
        """(kind, name) of what supervises ``pid`` - ``("systemd", "agent.service")``, ``("container", path)``,
        ``("supervisor", name)`` - or None for a process nothing owns (a real orphan when its parent is PID 1)."""
        if SUPERVISORS.match(comm) or (argv and SUPERVISORS.match(argv[0])):
            return ("supervisor", comm or argv[0])
        if any("pm2" in arg and arg.endswith("Daemon.js") for arg in argv[:3]):
            return ("supervisor", "pm2")
        namespace = self.proc.pid_namespace(pid)
        if namespace is not None and self.own_ns is not None and namespace != self.own_ns:
            return ("container", "PID namespace %s" % namespace)
        try:
            cgroups = self.proc.cgroups(pid)
        except (OSError, ValueError):
            return None
        container = container_of(cgroups)
        if container and container != self.own_container:
            return ("container", container)
        unit = systemd_unit(cgroups)
        if unit:
            return ("systemd", unit)
        return None


def node_heap_limit_mb(argv, environ):
    """--max-old-space-size from the command line, else from NODE_OPTIONS; None when not set."""
    sources = list(argv) + (environ.get("NODE_OPTIONS", "").split() if environ else [])
    for index, arg in enumerate(sources):
        match = re.match(r"^--max[-_]old[-_]space[-_]size(?:=(\d+))?$", arg)
        if match:
            value = match.group(1) or (sources[index + 1] if index + 1 < len(sources) else "")
            if str(value).isdigit():
                return int(value)
    return None


def parse_environ(raw):
    out = {}
    for item in raw.split("\0"):
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


# ------------------------------------------------------------------ cgroups
def parse_cgroup(text):
    """``/proc/PID/cgroup`` as {controller: path}; the cgroup v2 entry is keyed ''."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in (parts[1].split(",") if parts[1] else [""]):
            out[controller.replace("name=", "")] = parts[2]
    return out


class CgroupFS(object):
    """Memory and pids accounting of a cgroup, cgroup v2 first, v1 as a fallback."""

    def __init__(self, root="/sys/fs/cgroup"):
        self.root = root
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            self.unified = root
        elif os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
            self.unified = os.path.join(root, "unified")
        else:
            self.unified = None

    @staticmethod
    def _read(path):
        with open(path) as handle:
            return handle.read().strip()

    def _number(self, path):
        value = self._read(path)
        if value == "max":
            return None
        number = int(value)
        return None if number >= 2 ** 62 else number  # v1 "unlimited" is a huge page-aligned number

    def _keyed(self, path):
        out = {}
        for line in self._read(path).splitlines():
            key, _sep, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
        return out

    def memory(self, paths):
        """{version, cgroup, current, max, oom, oom_kill} or None when no memory controller is visible."""
        if self.unified and "" in paths:
            base = os.path.join(self.unified, paths[""].lstrip("/"))
            if os.path.exists(os.path.join(base, "memory.current")):
                events = self._keyed(os.path.join(base, "memory.events"))
                return {"version": 2, "cgroup": paths[""], "current": self._number(os.path.join(base, "memory.current")),
                        "max": self._number(os.path.join(base, "memory.max")),
                        "oom": events.get("oom", 0), "oom_kill": events.get("oom_kill", 0)}
        if "memory" in paths:
            base = os.path.join(self.root, "memory", paths["memory"].lstrip("/"))
            if os.path.exists(os.path.join(base, "memory.usage_in_bytes")):
                control = self._keyed(os.path.join(base, "memory.oom_control"))
                return {"version": 1, "cgroup": paths["memory"],
                        "current": self._number(os.path.join(base, "memory.usage_in_bytes")),
                        "max": self._number(os.path.join(base, "memory.limit_in_bytes")),
                        "oom": self._number(os.path.join(base, "memory.failcnt")) or 0,
                        "oom_kill": control.get("oom_kill", 0)}
        return None

    def pids(self, paths):
        """{version, cgroup, current, max} or None."""
        candidates = []
        if self.unified and "" in paths:
            candidates.append((2, paths[""], os.path.join(self.unified, paths[""].lstrip("/"))))
        if "pids" in paths:
            candidates.append((1, paths["pids"], os.path.join(self.root, "pids", paths["pids"].lstrip("/"))))
        for version, cgroup, base in candidates:
            if os.path.exists(os.path.join(base, "pids.current")) and os.path.exists(os.path.join(base, "pids.max")):
                return {"version": version, "cgroup": cgroup, "current": self._number(os.path.join(base, "pids.current")),
                        "max": self._number(os.path.join(base, "pids.max"))}
        return None


# ------------------------------------------------------------------ kernel log
OOM_KILL = re.compile(r"(?P<memcg>Memory cgroup out of memory|Out of memory)[^:]*: Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)"
                      r"(?:.*?anon-rss:(?P<anon_rss_kb>\d+)kB)?")
OOM_CONSTRAINT = re.compile(r"oom-kill:constraint=(?P<constraint>[A-Z_]+).*?task=(?P<task>[^,]+),pid=(?P<pid>\d+)")
OOM_MEMCG = re.compile(r"oom_memcg=(?P<memcg>[^,]+)")


def read_kmsg(path="/dev/kmsg", max_records=100000):
    """Every record still in the kernel ring buffer as (seconds since boot, message), without blocking."""
    records = []
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while len(records) < max_records:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == 32:  # EPIPE: records overwritten while reading; continue with the next
                    continue
                raise
            if not raw:
                break
            header, _sep, message = raw.decode("utf-8", "replace").partition(";")
            fields = header.split(",")
            if len(fields) >= 3 and fields[2].isdigit():
                records.append((int(fields[2]) / 1e6, message.split("\n", 1)[0]))
    finally:
        os.close(fd)
    return records


def oom_kills(records):
    """Kernel OOM kills from (seconds since boot, message) records, oldest first."""
    kills = []
    constraints = {}
    for seconds, message in records:
        match = OOM_CONSTRAINT.search(message)
        if match:
            memcg = OOM_MEMCG.search(message)
            constraints[int(match.group("pid"))] = (match.group("constraint"), memcg.group("memcg") if memcg else None)
            continue
        match = OOM_KILL.search(message)
        if match:
            pid = int(match.group("pid"))
            constraint, memcg = constraints.get(pid, (None, None))
            kills.append({
                "seconds_since_boot": round(seconds, 1), "pid": pid, "comm": match.group("comm"),
                "memcg": match.group("memcg").startswith("Memory cgroup") or constraint == "CONSTRAINT_MEMCG",
                "cgroup": memcg, "anon_rss_kb": int(match.group("anon_rss_kb")) if match.group("anon_rss_kb") else None,
                "message": message.strip()[:300],
            })
    return kills
