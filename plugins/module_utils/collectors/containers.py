# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The containers family: Docker and Podman containers, each judged from its inspect JSON and, while it runs, from
the host's view of it (its cgroup, its PID 1, its mounts, its open files, its resolv.conf).

A runtime is read through its command-line client (``ps``, ``inspect``, ``image inspect``, ``logs --tail 50``) or,
when no client is installed, through the Engine API on its unix socket. A runtime with neither is "not present"; one
whose daemon does not answer is "not running": neither is a failure. Per container (all, or those whose name
matches ``patterns``): state, exit code, OOM kill (the runtime's flag, or the kernel log's memory-cgroup kill of its
cgroup when the runtime did not record it), the signal behind an exit of 128+N, restarts and restart policy, health
with the last probe output, memory/CPU/pids usage against the cgroup's limits, whether PID 1 is an init, mounts that
are read-only where the container writes, not writable by its user, or noexec, DNS settings, and the image's
architecture against the host's. The environment is never returned (only the names of its keys); logs and probe
output are redacted. Read-only: argv lists and GET requests, each with a time limit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import ctr_engine as ce
from ansible_collections.agentops.runbooks.plugins.module_utils import ctr_inspect as ci
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import svc_parse as sp
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.services import find_bin, run_command
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate

RUNTIMES = ("docker", "podman")
CONTAINERS_MAX = 50
LOG_TAIL = 50
LINE_MAX = 300
WINDOW = 600
PROCS_MAX = 200
FDS_MAX = 4000
MB = 1024.0 * 1024.0
STOP_SIGNALS = (2, 15)  # SIGINT, SIGTERM: how a runtime stops a container; an exit by them is not a fault
LOOPBACK = re.compile(r"^(?:127\.|::1$|0:0:0:0:0:0:0:1$)")


class ContainersCollector(object):
    def __init__(self, proc, cgroups, cgroup_root="/sys/fs/cgroup", patterns=(), runtimes=RUNTIMES, timeout=10.0, thresholds=None,
                 redactor=None, runner=run_command, find=find_bin, environ=None, kmsg=procfs.read_kmsg, clock=time.time, machine=None):
        self.proc = proc
        self.cgroups = cgroups
        self.cgroup_root = cgroup_root
        self.patterns = list(patterns)
        self.runtimes = list(runtimes)
        self.timeout = timeout
        self.thresholds = thresholds or {}
        self.redactor = redactor or Redactor()
        self.runner = runner
        self.find = find
        self.environ = os.environ if environ is None else environ
        self.kmsg = kmsg
        self.now = clock()
        self.arch = ci.host_architecture(machine)
        self.findings = []
        self.incomplete = []
        self._kills = None
        self._namespaces = None

    # ------------------------------------------------------------ helpers
    def _incomplete(self, what, error):
        error = truncate(self.redactor.text(str(error).strip()), 300) or "failed"
        self.incomplete.append({"check": what, "error": error})
        self.findings.append(fm.make("containers.check_incomplete", "unknown", {"what": what, "error": error}, subject=what))

    def _add(self, rule_id, evidence, subject, value=None):
        if value is None:
            found = fm.make(rule_id, None, evidence, subject=subject, overrides=self.thresholds)
        else:
            found = fm.graded(rule_id, value, evidence, self.thresholds, subject=subject)
        if found:
            self.findings.append(found)
        return found

    def _line(self, line):
        return truncate(self.redactor.text(line or "").strip(), LINE_MAX)

    # ------------------------------------------------------------ the run
    def run(self):
        facts = {"runtimes": {}, "host_architecture": self.arch, "containers": [], "patterns": [p.pattern for p in self.patterns]}
        for runtime in self.runtimes:
            engine, state, listed = ce.reach(runtime, self.find, self.runner, self.timeout, self._incomplete, self.environ)
            facts["runtimes"][runtime] = state
            if engine is None:
                continue
            try:
                self.containers(engine, listed, facts)
            except (OSError, ValueError) as exc:
                self._incomplete("%s containers (%s)" % (runtime, engine.where), fm.describe(exc))
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def containers(self, engine, listed, facts):
        wanted = [(ident, name) for ident, name in listed if not self.patterns or any(p.search(name) for p in self.patterns)]
        facts.setdefault("listed", {})[engine.runtime] = len(listed)
        facts.setdefault("matched", {})[engine.runtime] = len(wanted)
        if len(wanted) > CONTAINERS_MAX:
            facts.setdefault("not_inspected", {})[engine.runtime] = len(wanted) - CONTAINERS_MAX
        wanted = wanted[:CONTAINERS_MAX]
        if not wanted:
            return
        items = engine.inspect([ident for ident, _name in wanted])
        images = {}
        image_ids = sorted(set(str(item.get("Image") or "") for item in items if item.get("Image")))
        if image_ids:
            try:
                images = engine.images(image_ids)
            except (OSError, ValueError) as exc:
                self._incomplete("%s image inspect" % engine.runtime, fm.describe(exc))
        for item in items:
            box = ci.container(item, self.now)
            box["runtime"] = engine.runtime
            try:
                self.judge(engine, box, images)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # one container's surprise stays its own
                self._incomplete("%s container %s" % (engine.runtime, box["name"]), fm.describe(exc))
            facts["containers"].append(self.public(box))

    @staticmethod
    def public(box):
        keep = ("runtime", "name", "id", "image", "status", "exit_code", "exit_reason", "oom_killed", "oom_source", "restarts",
                "restart_policy", "recent_restarts", "health", "pid", "pid1", "init", "user", "working_dir", "network_mode", "ports",
                "readonly_rootfs", "limits", "usage", "mounts", "resolv", "image_architecture", "env_keys", "created", "finished")
        return dict((key, box.get(key)) for key in keep if key in box)

    # ------------------------------------------------------------ one container
    def judge(self, engine, box, images):
        runtime, name = engine.runtime, box["name"]
        subject = "%s %s" % (runtime, name)
        base = {"container": name, "runtime": runtime, "image": box["image"], "status": box["status"],
                "restart_policy": box["restart_policy"], "restarts": box["restarts"] or 0}
        logs = _Logs(self, engine, box)
        if box["health"]:
            box["health"]["last_output"] = self._line(box["health"]["last_output"])
        if box["running"] and box["pid"]:
            self.host_view(box)
        self.exits(box, base, subject, logs)
        self.restarts(box, base, subject, logs)
        self.health(box, base, subject)
        self.usage(box, base, subject)
        self.pid1(box, base, subject)
        self.mounts(box, base, subject, logs)
        self.architecture(box, base, subject, images, logs)
        self.dns(box, base, subject)
        if logs.error:
            self._incomplete("%s logs --tail %d %s" % (runtime, LOG_TAIL, name), logs.error)

    def host_view(self, box):
        """What the host sees of a running container: its cgroup accounting, PID 1, processes, mountinfo, resolv.conf."""
        pid = box["pid"]
        try:
            stat = self.proc.stat(pid)
            argv = self.proc.cmdline(pid)
        except (OSError, ValueError) as exc:
            box["host_view_error"] = fm.describe(exc) if isinstance(exc, OSError) else str(exc)
            return
        box["pid1"] = {"pid": pid, "program": stat["comm"], "cmd": truncate(self.redactor.argv(argv), 200) if argv else stat["comm"]}
        try:
            box["pid1"]["handles_sigterm"] = 15 in ci.sigcgt(self.proc.read(pid, "status"))
        except OSError:
            box["pid1"]["handles_sigterm"] = None
        try:
            paths = self.proc.cgroups(pid)
        except (OSError, ValueError):
            paths = {}
        usage = {}
        memory = self.cgroups.memory(paths) if paths else None
        if memory:
            current = memory.get("current")
            stat_name = "memory.stat"
            base = (os.path.join(self.cgroups.unified, memory["cgroup"].lstrip("/")) if memory["version"] == 2 and self.cgroups.unified
                    else os.path.join(self.cgroup_root, "memory", memory["cgroup"].lstrip("/")))
            try:
                with open(os.path.join(base, stat_name)) as handle:
                    current = ci.working_set(handle.read(), current)
            except OSError:
                pass
            usage["memory"] = {"usage_mb": round(current / MB, 1) if current is not None else None,
                               "limit_mb": round(memory["max"] / MB, 1) if memory.get("max") else None,
                               "percent": round(100.0 * current / memory["max"], 1) if memory.get("max") and current is not None else None,
                               "oom_kills": memory.get("oom_kill") or 0, "cgroup": memory["cgroup"]}
        pids = self.cgroups.pids(paths) if paths else None
        if pids:
            usage["pids"] = {"current": pids["current"], "max": pids["max"],
                             "percent": round(100.0 * pids["current"] / pids["max"], 1) if pids["max"] and pids["current"] is not None else None}
        try:
            cpu = ci.cpu_throttling(self.cgroup_root, paths) if paths else None
        except (OSError, ValueError):
            cpu = None
        if cpu:
            usage["cpu"] = cpu
        box["usage"] = usage
        try:
            box["mountinfo"] = self.proc.mountinfo(pid)
        except OSError:
            box["mountinfo"] = None
        box["processes"] = self.namespace_pids(pid)

    def namespace_pids(self, pid):
        """The pids in the same PID namespace as ``pid`` (one pass over /proc for all containers)."""
        if self._namespaces is None:
            self._namespaces = {}
            try:
                pids = self.proc.pids()
            except OSError:
                pids = []
            for other in pids:
                namespace = self.proc.pid_namespace(other)
                if namespace:
                    self._namespaces.setdefault(namespace, []).append(other)
        namespace = self.proc.pid_namespace(pid)
        return (self._namespaces.get(namespace) or [pid])[:PROCS_MAX] if namespace else [pid]

    # ------------------------------------------------------------ exits, OOM, restarts
    def kernel_kill(self, full_id):
        """The kernel's memory-cgroup OOM kill in this container's cgroup (its id in oom_memcg), or None; raises OSError
        when the kernel log cannot be read."""
        if self._kills is None:
            try:
                self._kills = procfs.oom_kills(self.kmsg())
            except OSError as exc:
                self._kills = exc
        if isinstance(self._kills, OSError):
            raise self._kills
        found = [kill for kill in self._kills if full_id and full_id in str(kill.get("cgroup") or "")]
        return found[-1] if found else None

    def exits(self, box, base, subject, logs):
        code = box["exit_code"]
        oom, source = box["oom_killed"], "%s inspect (State.OOMKilled)" % box["runtime"]
        kernel_note = ""
        if not box["running"] and code == 137 and not oom:
            try:
                kill = self.kernel_kill(box["full_id"])
            except OSError as exc:
                kill = None
                kernel_note = " The kernel log could not be read (%s), so an OOM kill cannot be ruled out." % fm.describe(exc)
                self._incomplete("kernel log (OOM kills) for %s" % subject, fm.describe(exc))
            if kill:
                oom = True
                source = ("the kernel log: 'Memory cgroup out of memory: Killed process %d (%s)' in its cgroup; %s did not set "
                          "State.OOMKilled" % (kill["pid"], kill["comm"], box["runtime"]))
        number, reason = ci.exit_reason(code, oom)
        box["exit_reason"] = reason if not box["running"] or box["restarts"] else None
        limit = box["limits"]["memory_bytes"]
        memory = (box.get("usage") or {}).get("memory") or {}
        if oom and not box["running"]:
            box["oom_killed"], box["oom_source"] = True, source
            self._add("containers.oom_killed", dict(base, exit_code=code, oom_source=source, what="the container's main process",
                                                    memory_limit_mb=round(limit / MB, 1) if limit else "none (the host's memory)",
                                                    finished=box["finished"] or "(unknown)"), subject)
            return
        if memory.get("oom_kills"):
            box["oom_source"] = "cgroup oom_kill counter %d" % memory["oom_kills"]
            self._add("containers.oom_killed", dict(base, exit_code=code, oom_source="the container's cgroup counts %d OOM kill(s) "
                                                    "(%s); the container itself still runs" % (memory["oom_kills"], memory["cgroup"]),
                                                    what="a process inside the container (a spawned child or worker)",
                                                    memory_limit_mb=memory.get("limit_mb") or "none",
                                                    finished=box["finished"] or "(still running)"), subject)
        if box["running"] or number is None or number in STOP_SIGNALS:
            return
        if code == 137:
            why = ("Nothing recorded an OOM kill (no State.OOMKilled, none in the kernel log for its cgroup): SIGKILL came from "
                   "outside: '%s kill', a stop that outlived its timeout (%s s), 'kill -9' on the host, or an OOM kill older than "
                   "the kernel log.%s" % (box["runtime"], box.get("stop_timeout") or 10, kernel_note))
        else:
            why = "The process died of %s: a crash (SIGSEGV, SIGABRT, SIGBUS) or a signal sent from outside." % ci.signal_name(number)
        self._add("containers.killed_by_signal", dict(base, exit_code=code, signal=ci.signal_name(number), signal_number=number,
                                                      why=why, finished=box["finished"] or "(unknown)",
                                                      last_error=logs.last_error() or "(no error line in its last %d log lines)" % LOG_TAIL),
                  subject)

    def restarts(self, box, base, subject, logs):
        count = box["restarts"] or 0
        if not count and box["status"] != "restarting":
            return
        created = box["created_epoch"]
        window = self.now - created if created else None
        if window is not None and window <= WINDOW:
            recent = count
            rate = "%d times in %d s" % (count, round(window))
        else:
            recent = int(round(count * WINDOW / window)) if window else count
            rate = "%d times since %s (about %d per 10 minutes)" % (count, box["created"], recent)
        box["recent_restarts"] = recent
        reason = ci.exit_reason(box["exit_code"], box["oom_killed"])[1] if not box["running"] else "running again now"
        self._add("containers.restart_loop", dict(base, rate=rate, recent_restarts=recent, now=reason,
                                                  last_error=logs.last_error() or "(no error line in its last %d log lines)" % LOG_TAIL),
                  subject, value=recent)

    def health(self, box, base, subject):
        health = box["health"]
        if not health or health["status"] != "unhealthy":
            return
        self._add("containers.unhealthy", dict(base, failing_streak=health["failing_streak"],
                                               last_probe_output=health["last_output"] or "(no output)",
                                               last_probe_exit_code=health["last_exit_code"], last_probe=health["last_probe"] or "(unknown)"),
                  subject)

    # ------------------------------------------------------------ limits vs usage
    def usage(self, box, base, subject):
        usage = box.get("usage") or {}
        memory, pids, cpu = usage.get("memory") or {}, usage.get("pids") or {}, usage.get("cpu") or {}
        if memory.get("percent") is not None:
            self._add("containers.memory_near_limit", dict(base, usage_mb=memory["usage_mb"], limit_mb=memory["limit_mb"],
                                                           percent=memory["percent"]), subject, value=memory["percent"])
        if pids.get("percent") is not None:
            self._add("containers.pids_near_limit", dict(base, pids_current=pids["current"], pids_max=pids["max"], percent=pids["percent"]),
                      subject, value=pids["percent"])
        if cpu.get("quota_cpus") and cpu.get("periods", 0) >= 100:
            self._add("containers.cpu_throttled", dict(base, throttled_percent=cpu["throttled_percent"], periods=cpu["periods"],
                                                       throttled=cpu["throttled"], cpus=cpu["quota_cpus"]),
                      subject, value=cpu["throttled_percent"])

    # ------------------------------------------------------------ PID 1
    def pid1(self, box, base, subject):
        pid1 = box.get("pid1")
        if not pid1:
            return
        program = pid1["program"]
        box["pid1"]["is_init"] = box["init"] or program in ci.INITS
        if box["pid1"]["is_init"]:
            return
        zombies = 0
        for pid in box.get("processes") or []:
            try:
                if self.proc.stat(pid)["state"] == "Z":
                    zombies += 1
            except (OSError, ValueError):
                continue
        box["pid1"]["zombies"] = zombies
        sigterm = pid1.get("handles_sigterm")
        self._add("containers.no_init", dict(base, pid1_program=program, pid1_cmd=pid1["cmd"], zombies=zombies,
                                             processes=len(box.get("processes") or []),
                                             sigterm=("PID 1 catches SIGTERM" if sigterm else "PID 1 has no SIGTERM handler (SigCgt): a stop "
                                                      "waits %s s and then kills it" % (box.get("stop_timeout") or 10)
                                                      if sigterm is False else "its signal handlers could not be read")),
                  subject)

    # ------------------------------------------------------------ mounts
    def mounts(self, box, base, subject, logs):
        mounts = box["mounts"]
        real = dict((m["mount_point"], m) for m in box.get("mountinfo") or [])
        for mount in mounts:
            seen = real.get(mount["destination"])
            options = set((seen["options"] if seen else "").split(",")) | set(mount["options"])
            mount["readonly"] = ("ro" in options) if seen else not mount["rw"]
            mount["noexec"] = "noexec" in options
        writes = self.open_for_write(box)
        user = self.container_user(box)
        public = []
        for mount in mounts:
            dest = mount["destination"]
            entry = {"type": mount["type"], "source": mount["source"], "destination": dest, "readonly": mount["readonly"],
                     "noexec": mount["noexec"]}
            public.append(entry)
            in_workdir = ci.under(box["working_dir"], dest)
            if mount["readonly"]:
                open_files = [path for path in writes if ci.under(path, dest)]
                lines = logs.matching(ci.EROFS, dest, mounts)
                if in_workdir or open_files or lines:
                    how = "; ".join(filter(None, (
                        "it is the working directory (%s)" % box["working_dir"] if in_workdir else "",
                        "its processes hold %s open for writing" % ", ".join(open_files[:3]) if open_files else "",
                        "its logs show %d 'read-only file system' error(s)" % len(lines) if lines else "")))
                    self._add("containers.readonly_write", dict(base, destination=dest, source=mount["source"] or "(none)", how=how,
                                                                erofs_in_logs=len(lines), last_erofs=lines[-1] if lines else "(none)"),
                              subject)
                continue
            if mount["noexec"]:
                runs = box["command"] and box["command"][0].startswith("/") and ci.under(box["command"][0], dest)
                lines = logs.matching(ci.EACCES, dest, mounts)
                if runs or in_workdir or lines:
                    self._add("containers.noexec_mount", dict(base, destination=dest, source=mount["source"] or "(none)",
                                                              how="; ".join(filter(None, (
                                                                  "its command %s is there" % box["command"][0] if runs else "",
                                                                  "it is the working directory" if in_workdir else "",
                                                                  "its logs show %d permission error(s) there" % len(lines) if lines else ""))),
                                                              last_denied=lines[-1] if lines else "(none)"), subject)
            entry.update(self.ownership(box, mount, user, in_workdir, base, subject, logs))
        if box["readonly_rootfs"]:
            lines = logs.matching(ci.EROFS, "/", mounts, root_only=True)
            if lines:
                self._add("containers.readonly_write", dict(base, destination="/ (the container's root filesystem, --read-only)",
                                                            source="(image)", how="its logs show %d 'read-only file system' error(s) "
                                                                                  "outside its mounts" % len(lines),
                                                            erofs_in_logs=len(lines), last_erofs=lines[-1]), subject)
        box["mounts"] = public

    def container_user(self, box):
        """{spec, uid, gids} of the container's user (Config.User; names resolved through its own /etc/passwd while it
        runs), or {spec, uid: None} when unknown."""
        name, group = ci.user_spec(box["user"])
        user = {"spec": box["user"] or "root (default)", "uid": None, "gids": set()}
        passwd = groups = None
        if box.get("pid1"):
            try:
                with open(self.proc.path(box["pid"], "root", "etc", "passwd")) as handle:
                    passwd = handle.read()
                with open(self.proc.path(box["pid"], "root", "etc", "group")) as handle:
                    groups = handle.read()
            except OSError:
                pass
        if name.isdigit():
            user["uid"] = int(name)
            found = ci.passwd_lookup(passwd, name) if passwd else None
            if found:
                user["gids"].add(found[1])
        elif passwd:
            found = ci.passwd_lookup(passwd, name)
            if found:
                user["uid"] = found[0]
                user["gids"].add(found[1])
        if group:
            if group.isdigit():
                user["gids"] = set([int(group)])
            elif groups and ci.group_lookup(groups, group) is not None:
                user["gids"] = set([ci.group_lookup(groups, group)])
        elif user["uid"] is not None and not user["gids"]:
            user["gids"].add(user["uid"] if user["uid"] else 0)
        return user

    def ownership(self, box, mount, user, in_workdir, base, subject, logs):
        """Owner and mode of a writable mount's source on the host against the container's user (EACCES)."""
        source = mount["source"]
        if mount["type"] not in ("bind", "volume") or not source.startswith("/"):
            return {}
        try:
            info = os.stat(source)
        except OSError as exc:
            return {"owner": "unreadable (%s)" % fm.describe(exc)}
        out = {"owner_uid": info.st_uid, "owner_gid": info.st_gid, "mode": "%04o" % (info.st_mode & 0o7777)}
        if user["uid"] is None or box["userns"] or not os.path.isdir(source):
            return out
        if ci.can_write(info.st_mode, info.st_uid, info.st_gid, user["uid"], user["gids"]):
            return out
        lines = logs.matching(ci.EACCES, mount["destination"], box["mounts"])
        out["writable_by_user"] = False
        if in_workdir or lines:
            self._add("containers.mount_permission", dict(
                base, destination=mount["destination"], source=source, owner_uid=info.st_uid, owner_gid=info.st_gid,
                mode=out["mode"], user=user["spec"], uid=user["uid"], gids=",".join(str(g) for g in sorted(user["gids"])) or "(none)",
                denied_in_logs=len(lines), last_denied=lines[-1] if lines else "(none)",
                how="it is the working directory" if in_workdir else "its logs show %d permission error(s) there" % len(lines)), subject)
        return out

    def open_for_write(self, box):
        """Paths (as the container sees them) its processes hold open for writing, from /proc/PID/fd and fdinfo."""
        paths = set()
        seen = 0
        for pid in box.get("processes") or []:
            try:
                names = os.listdir(self.proc.path(pid, "fd"))
            except OSError:
                continue
            for name in names:
                seen += 1
                if seen > FDS_MAX:
                    return sorted(paths)
                try:
                    target = os.readlink(self.proc.path(pid, "fd", name))
                    if target.startswith("/") and ci.fd_writes(self.proc.read(pid, "fdinfo", name)):
                        paths.add(target)
                except OSError:
                    continue
        return sorted(paths)

    # ------------------------------------------------------------ image, DNS
    def architecture(self, box, base, subject, images, logs):
        image = images.get(box["image_id"]) or images.get(box["image_id"].split(":", 1)[-1])
        if not image:
            return
        arch = str(image.get("Architecture") or "")
        box["image_architecture"] = "%s%s" % (arch, "/" + image["Variant"] if image.get("Variant") else "")
        if not arch or arch == self.arch:
            return
        lines = logs.matching(ci.EXEC_FORMAT, None, [])
        self._add("containers.arch_mismatch", dict(base, image_architecture=box["image_architecture"], host_architecture=self.arch,
                                                   exec_format_error=len(lines), last_error=lines[-1] if lines else "(none in its logs)"),
                  subject)

    def dns(self, box, base, subject):
        text = None
        if box.get("pid1"):
            try:
                with open(self.proc.path(box["pid"], "root", "etc", "resolv.conf")) as handle:
                    text = handle.read(65536)
            except OSError:
                text = None
        if text is None and box["resolv_conf_path"]:
            try:
                with open(box["resolv_conf_path"]) as handle:
                    text = handle.read(65536)
            except OSError:
                text = None
        if text is None:
            return
        resolv = ci.parse_resolv(text)
        box["resolv"] = resolv
        mode = box["network_mode"]
        if mode in ("none", "container") or mode.startswith("container:"):
            return
        loopback = [server for server in resolv["nameservers"] if LOOPBACK.match(server)]
        if mode != "host" and (not resolv["nameservers"] or loopback):
            problem = ("its resolv.conf names no nameserver" if not resolv["nameservers"] else
                       "its nameserver(s) %s are loopback addresses: inside its own network namespace nothing answers there" %
                       ", ".join(loopback))
            self._add("containers.dns_unreachable", dict(base, network_mode=mode or "(default)", nameservers=", ".join(resolv["nameservers"])
                                                         or "(none)", problem=problem), subject)
        elif resolv["ndots"] >= 2 and resolv["search"]:
            self._add("containers.dns_ndots", dict(base, ndots=resolv["ndots"], search=" ".join(resolv["search"]),
                                                   lookups=len(resolv["search"]) + 1), subject)


class _Logs(object):
    """A container's last log lines, read at most once and only when a check needs them; redacted line by line."""

    def __init__(self, collector, engine, box):
        self.collector = collector
        self.engine = engine
        self.box = box
        self.lines = None
        self.error = None

    def get(self):
        if self.lines is None:
            self.lines = []
            try:
                text = self.engine.logs(self.box["full_id"] or self.box["name"], LOG_TAIL)
            except (OSError, ValueError) as exc:
                self.error = fm.describe(exc)
                return self.lines
            self.lines = [self.collector._line(line) for line in text.splitlines()[-LOG_TAIL:] if line.strip()]
        return self.lines

    def last_error(self):
        return sp.last_error(self.get()) if self.get() else None

    def matching(self, pattern, destination, mounts, root_only=False):
        """Lines matching ``pattern`` that name a path under ``destination`` (any line when None; with root_only, a path
        under no mount)."""
        found = []
        for line in self.get():
            if not pattern.search(line):
                continue
            if destination is None:
                found.append(line)
                continue
            for path in ci.paths_in(line):
                if root_only:
                    hit = ci.mount_for(path, mounts) is None and not path.startswith(("/proc", "/sys", "/dev"))
                else:
                    hit = ci.under(path, destination) and (ci.mount_for(path, mounts) or {}).get("destination") == destination
                if hit:
                    found.append(line)
                    break
        return found


class ContainersFamily(object):
    """Docker and Podman containers: exits, OOM kills, restarts, health, limits, PID 1, mounts, DNS, image architecture."""

    name = "containers"
    title = "containers (Docker, Podman)"
    enable = "add containers to agentops_checks"
    redacts = True
    options = dict(
        patterns=dict(type="list", elements="str", default=[]),
        runtimes=dict(type="list", elements="str", default=["docker", "podman"]),
        command_timeout=dict(type="float", default=10.0),
        proc_root=dict(type="path", default="/proc"),
        cgroup_root=dict(type="path", default="/sys/fs/cgroup"),
    )
    variables = dict(
        patterns=("container_patterns", "Regular expressions searched in container names: only matching containers are judged "
                                        "(empty: every container)."),
        runtimes=("container_runtimes", "The container runtimes to read (docker, podman), through their client or their API socket."),
        command_timeout=("command_timeout", "Seconds each supervisor or container client command may take before it counts as not "
                                            "answering."),
    )
    secrets = {}
    enabled_by = None
    ranges = {"command_timeout": [1, 120]}

    def collect(self, module, params):
        check_ranges(self, params, "seconds")
        ce.check_runtimes(params["runtimes"])
        patterns = []
        for pattern in params["patterns"]:
            try:
                patterns.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError("patterns has an invalid regular expression %r: %s." % (pattern, exc))
        if not os.path.isdir(params["proc_root"]):
            raise ValueError("proc_root %s is not a directory." % params["proc_root"])
        redactor = Redactor(key=params.get("redaction_key"))
        collector = ContainersCollector(procfs.ProcFS(params["proc_root"]), procfs.CgroupFS(params["cgroup_root"]), params["cgroup_root"],
                                        patterns, params["runtimes"], params["command_timeout"], params["thresholds"], redactor)
        return redactor.data(collector.run())
