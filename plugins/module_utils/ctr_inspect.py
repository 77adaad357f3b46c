# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure readers for the containers family: ``docker inspect`` / ``podman inspect`` JSON (the Engine API's
``/containers/{id}/json`` has the same shape) to the few facts the family judges, and the small texts around a
container (resolv.conf, /etc/passwd, log lines, a cgroup's CPU accounting).

Nothing here runs a command. The container's environment (``Config.Env``) and its create command are never
copied: only the names of its environment keys are kept.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import posixpath
import re
import signal

from ansible_collections.agentops.runbooks.plugins.module_utils import svc_parse as sp

# os.uname().machine -> the architecture names images use (GOARCH).
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm",
        "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64le"}
# What PID 1 may be and still reap zombies and forward signals.
INITS = frozenset(("tini", "tini-static", "docker-init", "dumb-init", "catatonit", "podman-init", "s6-svscan", "s6-linux-init",
                   "runsvdir", "my_init", "supervisord", "systemd", "init", "runit", "openrc-init", "pm2-runtime", "sinit"))
EROFS = re.compile(r"read-only file system|EROFS", re.I)
EACCES = re.compile(r"permission denied|EACCES|operation not permitted|EPERM", re.I)
EXEC_FORMAT = re.compile(r"exec format error|ENOEXEC", re.I)
# An absolute path in a log line (``touch: /data/x: Read-only file system``, ``EROFS: ..., open '/data/x'``).
PATH_IN_LINE = re.compile(r"(?<![\w.:/-])(/[\w.@+-]+(?:/[\w.@+-]*)*)")


def host_architecture(machine=None):
    """The host's architecture as images name it (``amd64``, ``arm64`` ...)."""
    machine = machine or os.uname()[4]
    return ARCH.get(machine, machine)


def signal_name(number):
    """``SIGKILL`` for 9; ``signal N`` for numbers Python does not name."""
    try:
        return signal.Signals(number).name
    except (ValueError, AttributeError):
        return "signal %d" % number


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _health(state):
    """{status, failing_streak, last_output, last_exit_code, last_probe} of State.Health (docker, podman >= 4) or
    State.Healthcheck (older podman); None without a health check."""
    health = state.get("Health") or state.get("Healthcheck") or {}
    status = health.get("Status") or ""
    if not status:
        return None
    log = [entry for entry in (health.get("Log") or []) if isinstance(entry, dict)]
    last = log[-1] if log else {}
    return {"status": status, "failing_streak": _int(health.get("FailingStreak")) or 0,
            "last_output": str(last.get("Output") or "").strip(), "last_exit_code": _int(last.get("ExitCode")),
            "last_probe": sp.iso(sp.parse_iso(last.get("End") or last.get("Start")))}


def parse_ports(item):
    """Published ports as ``["0.0.0.0:8080->8080/tcp", ...]`` from NetworkSettings.Ports (or HostConfig.PortBindings)."""
    ports = (item.get("NetworkSettings") or {}).get("Ports") or (item.get("HostConfig") or {}).get("PortBindings") or {}
    out = []
    for inside, bindings in sorted(ports.items()):
        for binding in bindings or []:
            if isinstance(binding, dict):
                out.append("%s:%s->%s" % (binding.get("HostIp") or "0.0.0.0", binding.get("HostPort") or "?", inside))
    return out


def parse_mounts(item):
    """[{type, source, destination, rw, options}] of the container's Mounts."""
    out = []
    for mount in item.get("Mounts") or []:
        if not isinstance(mount, dict):
            continue
        options = [str(o) for o in mount.get("Options") or []]
        mode = str(mount.get("Mode") or "")
        options += [part for part in mode.split(",") if part and part not in options]
        out.append({"type": mount.get("Type") or "bind", "source": mount.get("Source") or "", "destination": mount.get("Destination") or "",
                    "rw": bool(mount.get("RW", True)), "options": options, "name": mount.get("Name") or None})
    return out


def parse_limits(host):
    """{memory_bytes, cpus, pids} limits the container was created with (0 or None: no limit)."""
    cpus = None
    if _int(host.get("NanoCpus")):
        cpus = round(host["NanoCpus"] / 1e9, 2)
    elif _int(host.get("CpuQuota")) and _int(host.get("CpuPeriod")):
        cpus = round(float(host["CpuQuota"]) / host["CpuPeriod"], 2)
    pids = _int(host.get("PidsLimit"))
    return {"memory_bytes": _int(host.get("Memory")) or None, "cpus": cpus, "pids": pids if pids and pids > 0 else None}


def container(item, now):
    """The facts of one container from its inspect JSON (docker or podman); never its environment values."""
    state = item.get("State") or {}
    config = item.get("Config") or {}
    host = item.get("HostConfig") or {}
    base = sp.container_state(item, now)
    env = config.get("Env") or []
    entrypoint = config.get("Entrypoint") or []
    cmd = config.get("Cmd") or []
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint] if entrypoint else []
    if isinstance(cmd, str):
        cmd = [cmd]
    base.update({
        "full_id": str(item.get("Id") or ""),
        "image": config.get("Image") or item.get("ImageName") or "",
        "image_id": str(item.get("Image") or ""),
        "pid": _int(state.get("Pid")) or None,
        "running": bool(state.get("Running")) or state.get("Status") == "running",
        "finished": sp.iso(sp.parse_iso(state.get("FinishedAt"))),
        "health": _health(state),
        "user": str(config.get("User") or ""),
        "working_dir": config.get("WorkingDir") or "/",
        "command": [str(part) for part in list(entrypoint) + list(cmd)],
        "init": bool(host.get("Init")),
        "network_mode": host.get("NetworkMode") or "",
        "ports": parse_ports(item),
        "port_requests": sorted(str(port) for port in (host.get("PortBindings") or {})),
        "readonly_rootfs": bool(host.get("ReadonlyRootfs")),
        "userns": host.get("UsernsMode") or "",
        "limits": parse_limits(host),
        "mounts": parse_mounts(item),
        "resolv_conf_path": item.get("ResolvConfPath") or "",
        "cgroup_path": state.get("CgroupPath") or "",
        "env_keys": sorted(set(str(e).split("=", 1)[0] for e in env if isinstance(e, str))),
        "stop_timeout": _int(config.get("StopTimeout")),
    })
    return base


def exit_reason(code, oom_killed):
    """(signal number or None, sentence) for an exit code: 128+N is 'killed by signal N'."""
    if code is None:
        return None, "no exit code recorded"
    if oom_killed:
        return 9, "OOM-killed (SIGKILL from the kernel when the container reached its memory limit)"
    if code > 128 and code - 128 < 65:
        number = code - 128
        return number, "killed by %s (signal %d)" % (signal_name(number), number)
    if code in (126, 127):
        return None, "exit %d: the command %s" % (code, "could not be executed" if code == 126 else "was not found")
    return None, "exited with code %d" % code


def parse_resolv(text):
    """{nameservers, search, ndots, options} of a resolv.conf."""
    out = {"nameservers": [], "search": [], "ndots": 1, "options": []}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            out["nameservers"].append(fields[1])
        elif fields[0] in ("search", "domain"):
            out["search"] = fields[1:]
        elif fields[0] == "options":
            for option in fields[1:]:
                out["options"].append(option)
                if option.startswith("ndots:") and option[6:].isdigit():
                    out["ndots"] = int(option[6:])
    return out


def user_spec(user):
    """(user, group) of Config.User (``"1000:1000"``, ``"agent"``, ``""`` = root)."""
    name, _sep, group = str(user or "").partition(":")
    return name or "0", group or None


def passwd_lookup(text, name):
    """(uid, gid) of a user name (or a numeric uid) in an /etc/passwd text; None when absent."""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and (fields[0] == name or fields[2] == name) and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3])
    return None


def group_lookup(text, name):
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def can_write(mode, owner_uid, owner_gid, uid, gids):
    """Whether uid (with groups gids) may write a directory of ``mode`` owned by owner_uid:owner_gid (no ACLs, no
    capabilities; uid 0 always may)."""
    if uid == 0:
        return True
    if uid == owner_uid:
        return bool(mode & 0o200)
    if owner_gid in gids:
        return bool(mode & 0o020)
    return bool(mode & 0o002)


def under(path, directory):
    """True when ``path`` is ``directory`` or below it (both absolute, normalised)."""
    path = posixpath.normpath(path or "/")
    directory = posixpath.normpath(directory or "/")
    return path == directory or directory == "/" or path.startswith(directory.rstrip("/") + "/")


def mount_for(path, mounts):
    """The mount (of ``mounts``) whose destination holds ``path``, the deepest one; None for the root filesystem."""
    best = None
    for mount in mounts:
        if mount["destination"] and under(path, mount["destination"]):
            if best is None or len(mount["destination"]) > len(best["destination"]):
                best = mount
    return best


def paths_in(line):
    return [match.group(1) for match in PATH_IN_LINE.finditer(line or "")]


def demux_logs(raw):
    """The text of an Engine API log stream: frames of an 8-byte header (stream, 0, 0, 0, size big-endian) when the
    container has no TTY, else plain text."""
    if len(raw) >= 8 and raw[0:1] in (b"\x00", b"\x01", b"\x02") and raw[1:4] == b"\x00\x00\x00":
        out = []
        offset = 0
        while offset + 8 <= len(raw):
            size = int.from_bytes(raw[offset + 4:offset + 8], "big")
            out.append(raw[offset + 8:offset + 8 + size])
            offset += 8 + size
        raw = b"".join(out)
    return raw.decode("utf-8", "replace")


def cpu_throttling(cgroup_root, paths):
    """{periods, throttled, throttled_percent, quota_cpus} of a cgroup's CPU controller (v2 cpu.stat/cpu.max, v1
    cpu.stat/cpu.cfs_quota_us); None when no CPU accounting is visible."""
    candidates = []
    unified = cgroup_root if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")) else os.path.join(cgroup_root, "unified")
    if "" in paths:
        candidates.append((2, os.path.join(unified, paths[""].lstrip("/"))))
    for key in ("cpu", "cpu,cpuacct"):
        if key in paths:
            candidates.append((1, os.path.join(cgroup_root, key, paths[key].lstrip("/"))))
    for version, base in candidates:
        stat_path = os.path.join(base, "cpu.stat")
        if not os.path.exists(stat_path):
            continue
        values = {}
        with open(stat_path) as handle:
            for line in handle:
                key, _sep, value = line.partition(" ")
                if value.strip().isdigit():
                    values[key] = int(value)
        if "nr_periods" not in values:
            continue
        quota = None
        try:
            if version == 2:
                with open(os.path.join(base, "cpu.max")) as handle:
                    limit, _sep, period = handle.read().strip().partition(" ")
                if limit != "max" and period:
                    quota = round(float(limit) / float(period), 2)
            else:
                with open(os.path.join(base, "cpu.cfs_quota_us")) as handle:
                    limit = int(handle.read().strip())
                with open(os.path.join(base, "cpu.cfs_period_us")) as handle:
                    period = int(handle.read().strip())
                if limit > 0 and period > 0:
                    quota = round(float(limit) / period, 2)
        except (OSError, ValueError):
            quota = None
        periods, throttled = values.get("nr_periods", 0), values.get("nr_throttled", 0)
        return {"periods": periods, "throttled": throttled, "quota_cpus": quota,
                "throttled_percent": round(100.0 * throttled / periods, 1) if periods else 0.0}
    return None


def sigcgt(status_text):
    """The set of signal numbers a process catches (``SigCgt`` of /proc/PID/status)."""
    for line in status_text.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return set(number + 1 for number in range(64) if mask >> number & 1)
    return set()


def working_set(memory_stat_text, usage):
    """Usage minus the inactive page cache (what the OOM killer cannot reclaim cheaply), the kubelet's working set."""
    inactive = None
    for line in memory_stat_text.splitlines():
        key, _sep, value = line.partition(" ")
        if key in ("total_inactive_file", "inactive_file") and value.strip().isdigit():
            if inactive is None or key == "total_inactive_file":
                inactive = int(value)
    if usage is None:
        return None
    return max(0, usage - (inactive or 0))


def fd_writes(flags_text):
    """True when an fdinfo's ``flags`` (octal) open the file for writing (O_WRONLY or O_RDWR)."""
    for line in flags_text.splitlines():
        if line.startswith("flags:"):
            try:
                return int(line.split()[1], 8) & 3 in (1, 2)
            except (IndexError, ValueError):
                return False
    return False
