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

import os
import pwd

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PF_KTHREAD = 0x00200000

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

    # ------------------------------------------------------------ processes
    def stat(self, pid):
        return parse_stat(self.read(pid, "stat"))

    def cmdline(self, pid):
        raw = self.read(pid, "cmdline")
        return [part for part in raw.split("\0") if part] if raw else []

    def fd_count(self, pid):
        return len(os.listdir(self.path(pid, "fd")))

    def limits(self, pid):
        return parse_limits(self.read(pid, "limits"))

    def owner(self, pid):
        return os.stat(self.path(pid)).st_uid


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
    return bool(stat["flags"] & PF_KTHREAD) or stat["pid"] == 2 or stat["ppid"] == 2


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
