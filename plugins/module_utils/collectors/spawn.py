# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The spawn family: could each agent process spawn its CLI children right now? Diagnosed from host state.

For every agent process (matched like the process family does) and every command of ``commands``, the command is
resolved on that process's own PATH (``/proc/PID/environ``) and cwd, inside its own root and mount namespace, and
checked as its own uid/gids (see spawn_exec): ENOENT (not on that PATH, a missing or CRLF ``#!`` interpreter, a
missing ELF loader), EACCES (no execute bit, an unsearchable directory, a ``noexec`` mount), an ELF for another
machine, a deleted working directory, and how close the environment plus a typical prompt argument comes to the
kernel's argument limits (E2BIG). Windows-style paths in a process's cwd, argv or file names in its working
directory are cross-platform bugs. ``facts.einval_cause`` says which cause of ``spawn EINVAL`` applies on this host.

Never returned: the environment. Only PATH (redacted like everything else), sizes and counts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import platform
import re

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import redact
from ansible_collections.agentops.runbooks.plugins.module_utils import spawn_exec as sx
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

AGENTS_MAX = 200
PIDS_MAX = 20
LISTING_MAX = 5000
EXAMPLES_MAX = 5
TEXT_MAX = 300
FULL_MAP = ("0", "0", "4294967295")
SYSTEMD_ESCAPE = re.compile(r"\\x[0-9a-f]{2}")  # dev-disk-by\x2duuid: systemd's escaping, not a Windows path

# status of a resolution -> rule id
RULE_OF = {
    "not_found": "spawn.command_not_found",
    "not_executable": "spawn.not_executable",
    "dir_not_searchable": "spawn.dir_not_searchable",
    "noexec_mount": "spawn.noexec_mount",
    "interpreter_missing": "spawn.interpreter_missing",
    "shebang_crlf": "spawn.shebang_crlf",
    "exec_format": "spawn.exec_format",
}
SEVERITY_OF = {
    "spawn.command_not_found": "medium", "spawn.not_executable": "high", "spawn.dir_not_searchable": "high",
    "spawn.noexec_mount": "high", "spawn.interpreter_missing": "high", "spawn.shebang_crlf": "high",
    "spawn.exec_format": "high", "spawn.cwd_deleted": "high", "spawn.windows_path": "medium",
}
ERROR_OF = {
    "not_found": "spawn {command} ENOENT", "not_executable": "spawn {command} EACCES",
    "dir_not_searchable": "spawn {command} EACCES", "noexec_mount": "spawn {command} EACCES",
    "interpreter_missing": "spawn {command} ENOENT", "shebang_crlf": "spawn {command} ENOENT",
    "exec_format": "exec format error (ENOEXEC); Node then runs it through /bin/sh, which exits 126 or 127",
}


class Agent(object):
    """What one agent process's spawns depend on, read from /proc."""

    __slots__ = ("pid", "name", "argv", "user", "creds", "path", "path_source", "env_bytes", "env_count", "cwd",
                 "cwd_deleted", "root", "mounts", "namespace", "stack", "uid_map", "gid_map")


class SpawnCollector(object):
    def __init__(self, proc, patterns, commands, prompt_bytes, thresholds=None, redactor=None, host_machine=None,
                 handlers=None):
        self.proc = proc
        self.patterns = patterns
        self.commands = commands
        self.prompt_bytes = prompt_bytes
        self.thresholds = thresholds or {}
        self.redactor = redactor or Redactor()
        self.host_machine = host_machine or os.uname()[4]
        self.handlers = sx.binfmt_handlers(proc.path("sys", "fs", "binfmt_misc")) if handlers is None else handlers
        self.findings = []
        self.incomplete = []
        self.unreadable = {}  # (check, error) -> [what, count]
        self.vanished = 0

    # ------------------------------------------------------------ reading
    def _unreadable(self, check, what, error):
        entry = self.unreadable.setdefault((check, error), [what, 0])
        entry[1] += 1
        if len(self.incomplete) < AGENTS_MAX:
            self.incomplete.append({"check": "%s of %s" % (check, what), "error": error})

    def agents(self):
        own = os.getpid()
        found = []
        counts = {}
        for pid, stat, _uid, argv in self.proc.processes(counts):
            if pid == own or stat["state"] == "Z" or not procfs.is_agent(self.patterns, stat["comm"], argv):
                continue
            found.append((pid, stat["comm"], argv))
        self.vanished += counts.get("vanished", 0)
        return found

    def read_agent(self, pid, name, argv):
        """An Agent, or None when it exited meanwhile or could not be read (recorded as incomplete)."""
        agent = Agent()
        agent.pid, agent.name, agent.argv = pid, name, argv
        step = "status"
        try:
            agent.creds = sx.parse_status(self.proc.read(pid, "status"))
            agent.user = procfs.username(agent.creds.uid)
            step = "environ"
            with open(self.proc.path(pid, "environ"), "rb") as handle:
                raw = handle.read()
            entries = [item for item in raw.split(b"\0") if item]
            agent.env_bytes = len(raw) + (0 if raw.endswith(b"\0") or not raw else 1)
            agent.env_count = len(entries)
            path = [item[5:] for item in entries if item.startswith(b"PATH=")]
            agent.path = path[-1].decode("utf-8", "replace") if path else None
            agent.path_source = "environ" if path else "default"
            step = "cwd"
            cwd = os.readlink(self.proc.path(pid, "cwd"))
            agent.cwd_deleted = cwd.endswith(" (deleted)")
            agent.cwd = cwd[:-10] if agent.cwd_deleted else cwd
            step = "mountinfo"
            agent.mounts = self.proc.mountinfo(pid)
            agent.root = self.proc.path(pid, "root")
            step = "root"
            os.stat(agent.root)
            agent.namespace = self._link(pid, "ns", "mnt") or agent.root
            step = "limits"
            agent.stack = self.proc.limits(pid).get("Max stack size", (None, None))[0] if self._exists(pid, "limits") else None
            agent.uid_map = self._map(pid, "uid_map")
            agent.gid_map = self._map(pid, "gid_map")
        except OSError as exc:
            if exc.errno in procfs.GONE and not os.path.exists(self.proc.path(pid)):
                self.vanished += 1
                return None
            self._unreadable(step, self.proc.path(pid, step), fm.describe(exc).split(" (")[0])
            return None
        except ValueError as exc:
            self._unreadable(step, self.proc.path(pid, step), str(exc))
            return None
        return agent

    def _exists(self, *parts):
        return os.path.exists(self.proc.path(*parts))

    def _link(self, *parts):
        try:
            return os.readlink(self.proc.path(*parts))
        except OSError:
            return None

    def _map(self, pid, name):
        try:
            return [tuple(line.split()) for line in self.proc.read(pid, name).splitlines() if line.strip()]
        except OSError:
            return None

    # ------------------------------------------------------------ analysis
    def run(self):
        try:
            listed = self.agents()
        except OSError as exc:
            error = fm.describe(exc)
            self._unreadable("process table", self.proc.root, error)
            return self.result({"agent_count": 0, "agents": []})
        resolvers = {}
        groups = {}
        facts_agents = []
        agents = []
        for pid, name, argv in listed[:AGENTS_MAX]:
            agent = self.read_agent(pid, name, argv)
            if agent is None:
                continue
            agents.append(agent)
            key = (agent.namespace, agent.cwd, agent.path, agent.creds.key())
            resolver = resolvers.get(key)
            if resolver is None:
                resolver = resolvers[key] = sx.Resolver(agent.root, agent.cwd, agent.path, agent.creds, agent.mounts,
                                                        self.host_machine, self.handlers)
            outcomes = {}
            for command in self.commands:
                try:
                    result = resolver.resolve(command)
                except sx.Unreadable as exc:
                    self._unreadable("resolving %s" % command, exc.path, exc.error)
                    outcomes[command] = "unknown: %s" % exc.error
                    continue
                outcomes[command] = result.get("real") or result.get("file") if result["status"] == "ok" else result["status"]
                if result["status"] != "ok":
                    self.group(groups, agent, command, result)
            facts_agents.append(self.brief(agent, outcomes))
            self.cwd_deleted(agent)
            self.windows_paths(agent)
            facts_agents[-1]["arg_bytes"], facts_agents[-1]["arg_limit"] = self.e2big(agent)
        for (rule_id, _key), group in sorted(groups.items(), key=lambda item: (item[0][0], str(item[0][1]))):
            self.findings.append(self.grouped(rule_id, group))
        facts = {"agent_count": len(listed), "agents": facts_agents, "vanished": self.vanished}
        facts.update(self.einval(agents))
        return self.result(facts)

    def result(self, facts):
        for (check, error), (what, count) in sorted(self.unreadable.items()):
            self.findings.append(fm.make("spawn.check_incomplete", "unknown", {
                "what": what, "check": check, "error": error, "count": count}, subject="%s: %s" % (check, error)))
        facts.update({
            "commands": list(self.commands), "host_machine": self.host_machine, "prompt_bytes": self.prompt_bytes,
            "max_arg_strlen": sx.MAX_ARG_STRLEN, "arg_max_sysconf": _sysconf_arg_max(),
        })
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def brief(self, agent, outcomes):
        return {
            "pid": agent.pid, "name": agent.name, "user": agent.user, "uid": agent.creds.uid, "gid": agent.creds.gid,
            "cwd": agent.cwd, "cwd_deleted": agent.cwd_deleted, "path": agent.path, "path_source": agent.path_source,
            "env_bytes": agent.env_bytes, "env_count": agent.env_count, "commands": outcomes,
            "cmd": redact.truncate(self.redactor.argv(agent.argv), TEXT_MAX) if agent.argv else "[%s]" % agent.name,
        }

    def group(self, groups, agent, command, result):
        rule_id = RULE_OF[result["status"]]
        if result["status"] == "not_found":
            key = (command, agent.path)
        else:
            key = (command, result.get("file"), result.get("reason"))
        group = groups.setdefault((rule_id, key), {"result": result, "command": command, "agents": []})
        group["agents"].append(agent)

    def grouped(self, rule_id, group):
        result, command, agents = group["result"], group["command"], group["agents"]
        first = agents[0]
        pids = [a.pid for a in agents]
        evidence = {
            "command": command, "count": len(agents), "pid": first.pid, "name": first.name,
            "pids": ",".join(str(p) for p in pids[:PIDS_MAX]) + (",..." if len(pids) > PIDS_MAX else ""),
            "user": first.user, "uid": first.creds.uid, "gid": first.creds.gid, "runs_as": first.creds.describe(),
            "error": ERROR_OF[result["status"]].format(command=command),
        }
        if result["status"] == "not_found":
            shown = self.redactor.text(first.path if first.path is not None else sx.DEFAULT_PATH)
            evidence.update({
                "path": shown,
                "path_source": "the PATH of its environment" if first.path is not None
                else "no PATH in its environment, so the default %s" % sx.DEFAULT_PATH,
                # split after redacting: a credential in PATH must not survive in pieces
                "searched": result["searched"] if "/" in command else [entry or "." for entry in shown.split(":")],
                "cwd": first.cwd,
            })
            subject = "%s on %s" % (command, evidence["path"])
        else:
            evidence.update({
                "command_path": result.get("real") or result["file"], "file": result["file"], "reason": result["reason"],
                "mode": result.get("mode"),
            })
            for key in ("denied", "interpreter", "shebang", "mount_point", "mount_options", "fstype", "elf_machine",
                        "host_machine", "program", "emulated_by"):
                if result.get(key) is not None:
                    evidence[key] = result[key]
            if "owner" in result:
                evidence["owner"] = "%s:%s" % (procfs.username(result["owner"]), result["group"])
            subject = "%s: %s" % (command, evidence["command_path"])
        return fm.make(rule_id, SEVERITY_OF[rule_id], evidence, subject=subject)

    def cwd_deleted(self, agent):
        if agent.cwd_deleted:
            self.findings.append(fm.make("spawn.cwd_deleted", SEVERITY_OF["spawn.cwd_deleted"], {
                "pid": agent.pid, "name": agent.name, "cwd": agent.cwd, "user": agent.user}, subject="pid %d" % agent.pid))

    def windows_paths(self, agent):
        seen = []
        if sx.windows_path(agent.cwd):
            seen.append(("working directory", agent.cwd))
        code = False
        for arg in agent.argv[1:]:
            if code:
                code = False
                continue  # inline code (node -e): its backslashes are escapes, not paths
            if arg in procfs.INLINE_CODE:
                code = True
                continue
            found = sx.windows_path(arg)
            if found:
                seen.append(("command line", found))
        if not agent.cwd_deleted:
            try:
                names = []
                with os.scandir(self.proc.path(agent.pid, "cwd")) as entries:
                    for index, entry in enumerate(entries):
                        if index >= LISTING_MAX:
                            break
                        names.append(entry.name)
            except OSError as exc:
                if exc.errno not in procfs.GONE:
                    self._unreadable("listing the working directory", self.proc.path(agent.pid, "cwd"), fm.describe(exc).split(" (")[0])
                names = []
            for name in sorted(names):
                if sx.windows_path(name) or ("\\" in name and not SYSTEMD_ESCAPE.search(name)):
                    seen.append(("file names in its working directory", name))
        if not seen:
            return
        where = []
        for place, _example in seen:
            if place not in where:
                where.append(place)
        self.findings.append(fm.make("spawn.windows_path", SEVERITY_OF["spawn.windows_path"], {
            "pid": agent.pid, "name": agent.name, "cwd": agent.cwd, "count": len(seen), "where": ", ".join(where),
            "example": redact.truncate(self.redactor.text(seen[0][1]), TEXT_MAX),
            "examples": [{"where": place, "path": redact.truncate(self.redactor.text(text), TEXT_MAX)}
                         for place, text in seen[:EXAMPLES_MAX]],
        }, subject="pid %d" % agent.pid))

    def e2big(self, agent):
        """Bytes a spawn of the longest command with a prompt_bytes argument needs, against the process's limit."""
        limit = sx.arg_limit(agent.stack)
        longest = max([len(c.encode("utf-8")) for c in self.commands] or [0]) + 1
        need = sx.exec_size(agent.env_bytes, agent.env_count, [longest, self.prompt_bytes + 1])
        percent = round(100.0 * need / limit, 1)
        over = self.prompt_bytes + 1 > sx.MAX_ARG_STRLEN
        value = max(percent, 100.0) if over else percent
        found = fm.graded("spawn.e2big_risk", value, {
            "pid": agent.pid, "name": agent.name, "env_bytes": agent.env_bytes, "env_count": agent.env_count,
            "prompt_bytes": self.prompt_bytes, "arg_bytes": need, "arg_limit": limit, "used_percent": percent,
            "max_arg_strlen": sx.MAX_ARG_STRLEN, "prompt_over_max_arg_strlen": over,
            "stack_limit": "unlimited" if agent.stack is None else agent.stack,
            "arg_max_sysconf": _sysconf_arg_max(),
        }, self.thresholds, subject="pid %d" % agent.pid)
        if found:
            self.findings.append(found)
        return need, limit

    def einval(self, agents):
        """Which cause of ``spawn EINVAL`` applies on this host (paired by the controller with log.spawn_einval)."""
        narrowed = []
        for agent in agents:
            for kind, mapping in (("uid", agent.uid_map), ("gid", agent.gid_map)):
                if mapping and [tuple(m) for m in mapping] != [FULL_MAP]:
                    narrowed.append({"pid": agent.pid, "name": agent.name, "map": kind,
                                     "ranges": [" ".join(m) for m in mapping[:10]]})
        system = platform.system() or "Linux"
        sentence = ("This host runs %s: the .cmd/.bat cause of spawn EINVAL (Node 18.20.2 / 20.12.2 / 21.7.3 and later refuse "
                    "to spawn .bat/.cmd files without shell: true) is Windows only and does not apply. On Linux spawn EINVAL "
                    "comes from invalid spawn options: a uid or gid option the process's user namespace does not map "
                    "(setuid/setgid fail with EINVAL)" % system)
        if narrowed:
            first = narrowed[0]
            sentence += ("; agent pid %d (%s) runs in a user namespace whose %s map is only %s, so any other %s in spawn "
                         "options gives EINVAL" % (first["pid"], first["name"], first["map"], "; ".join(first["ranges"]),
                                                   first["map"]))
        else:
            sentence += ("; every agent process here sees the full uid/gid range, so look at the uid/gid values the code "
                         "passes to spawn (wrong types and NUL bytes throw ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE "
                         "instead)")
        return {"einval_cause": sentence + ".", "einval": {
            "platform": system, "windows_cmd_cause_applies": system == "Windows", "cause": "invalid spawn options",
            "user_namespaces": narrowed[:PIDS_MAX]}}


def _sysconf_arg_max():
    try:
        return os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError, AttributeError):
        return None


class SpawnFamily(object):
    """Could each agent process spawn its CLI children: PATH, permissions, mounts, interpreters, formats, E2BIG."""

    name = "spawn"
    title = "spawning CLI children"
    enable = "add spawn to agentops_checks"
    redacts = True
    options = dict(
        commands=dict(type="list", elements="str", default=["claude", "npx", "npm", "node", "git", "sh"]),
        patterns=dict(type="list", elements="str", default=["node", "claude", "npx", "npm"]),
        prompt_bytes=dict(type="int", default=100000),
        proc_root=dict(type="path", default="/proc"),
    )
    variables = {
        "commands": ("spawn_commands", "Commands the agents spawn (names looked up on each agent process's own PATH, or paths), "
                                       "checked for ENOENT, EACCES, noexec mounts, missing or CRLF interpreters and foreign ELF binaries."),
        "patterns": ("process_patterns", "Regular expressions naming agent processes, matched against the whole process name, the "
                                         "basename of argv[0], or (after an interpreter such as node or sh) of the script it runs."),
        "prompt_bytes": ("spawn_prompt_bytes", "Size in bytes of a typical prompt passed to a spawned CLI as one argument: with each "
                                               "agent's environment it is weighed against the kernel's argument limits (E2BIG)."),
    }
    secrets = {}
    enabled_by = None
    ranges = {"prompt_bytes": [0, 16777216]}

    def collect(self, module, params):
        check_ranges(self, params)
        if not params["commands"]:
            raise ValueError("commands must name at least one command.")
        if len(params["commands"]) > 50:
            raise ValueError("commands takes at most 50 commands, got %d." % len(params["commands"]))
        for command in params["commands"]:
            if not command or command.strip() != command or "\0" in command or "\n" in command:
                raise ValueError("commands entry %r is not a command name or path." % command)
        if not params["patterns"]:
            raise ValueError("patterns must name at least one process pattern.")
        patterns = procfs.compile_patterns(params["patterns"])
        if not os.path.isdir(params["proc_root"]):
            raise ValueError("proc_root %s is not a directory." % params["proc_root"])
        redactor = Redactor(key=params.get("redaction_key"))
        collector = SpawnCollector(procfs.ProcFS(params["proc_root"]), patterns, params["commands"], params["prompt_bytes"],
                                   params["thresholds"], redactor)
        return redactor.data(collector.run())
