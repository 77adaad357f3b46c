# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The services family: restart counts, crash loops and the last error of the services the supervisors present run.

systemd (``systemctl show`` of the units named in ``services`` and of the units found in the agent processes'
cgroups; the unit's journal for its restarts of the last 10 minutes and its last error), pm2 (``pm2 jlist`` of every
pm2 daemon running here - never starting one - plus its own log for exits of the last 10 minutes and each app's error
log tail) when their command-line clients answer, and docker/podman (``inspect`` restart counts) through their client
or, without one, their Engine API socket (ctr_engine.reach, the containers family's way). A client that is not
installed, or whose daemon does not run, is "not present" or "not running", not a failure; one that answers with an
error is recorded as incomplete. Read-only: every command is an argv list run with a time limit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import re
import shutil
import subprocess
import sys
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import ctr_engine, procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import svc_parse as sp
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate

WINDOW = 600  # restarts are judged per 10 minutes (the rule's thresholds)
TAIL_BYTES = 65536
TAIL_LINES = 20
PM2_LOG_BYTES = 262144
PM2_LOG_LINES = 5000
JOURNAL_LINES = 5000
CONTAINERS_MAX = 100
LINE_MAX = 400
SEARCH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
PM2_PLACES = ("/usr/local/bin/pm2", "/usr/bin/pm2", "/usr/local/lib/node_modules/pm2/bin/pm2", "/usr/lib/node_modules/pm2/bin/pm2",
              "/opt/homebrew/bin/pm2")
# The daemon's title; the kernel cuts it to the length of its original command line, so the home may be cut too.
PM2_DAEMON = re.compile(r"^PM2 v[\d.]+\S*: God Daemon(?: \((?P<home>.*?)(?P<end>\))?)?$")
# What a client prints when its daemon or init system is simply not there (not present, not a failure).
NOT_RUNNING = re.compile(r"not been booted with systemd|" + ctr_engine.NOT_ANSWERING.pattern, re.I)


def find_bin(name, extra=()):
    """The path of ``name`` on PATH or in the usual system directories (or one of ``extra``), or None."""
    path = os.pathsep.join([os.environ.get("PATH", "")] + list(SEARCH_DIRS))
    found = shutil.which(name, path=path)
    if found:
        return found
    for candidate in extra:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_command(argv, timeout, env=None, uid=None):
    """(rc, stdout, stderr) of ``argv`` (a list, never a shell string) run for at most ``timeout`` seconds; as ``uid``
    when given and this runs as root. OSError when it cannot start or runs past its time."""
    kwargs = {}
    if uid is not None and os.geteuid() == 0 and uid != 0:
        entry = pwd.getpwuid(uid)
        if sys.version_info >= (3, 9):
            kwargs.update(user=uid, group=entry.pw_gid, extra_groups=[])
        else:  # pragma: no cover  # older targets
            kwargs["preexec_fn"] = lambda: (os.setgroups([]), os.setgid(entry.pw_gid), os.setuid(uid))
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False, **kwargs)
    except subprocess.TimeoutExpired:
        raise OSError(0, "%s did not answer within %s s" % (os.path.basename(argv[0]), timeout))
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def _runs_on_node(path):
    """True when ``path`` is a Node script (a ``node`` shebang or none): run it with the daemon's own node binary, so
    a node missing from PATH (nvm) does not matter. A shell or binary wrapper runs as it is."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return not first.startswith(b"#!") or b"node" in first


class ServicesCollector(object):
    def __init__(self, proc, patterns, units, pm2="auto", timeout=10.0, thresholds=None, redactor=None, runtimes=("docker", "podman"),
                 runner=run_command, clock=time.time):
        self.proc = proc
        self.patterns = patterns
        self.units = list(units)
        self.pm2_option = pm2
        self.timeout = timeout
        self.thresholds = thresholds or {}
        self.redactor = redactor or Redactor()
        self.runtimes = list(runtimes)
        self.runner = runner
        self.clock = clock
        self.now = clock()
        self.facts = {}
        self.findings = []
        self.incomplete = []

    # ------------------------------------------------------------ helpers
    def _incomplete(self, what, error):
        error = truncate(self.redactor.text(str(error).strip()), 300) or "failed"
        self.incomplete.append({"check": what, "error": error})
        self.findings.append(fm.make("services.check_incomplete", "unknown", {"what": what, "error": error}, subject=what))

    def _line(self, line):
        return truncate(self.redactor.text(line or ""), LINE_MAX) if line else None

    def _run(self, argv, env=None, uid=None):
        return self.runner(argv, self.timeout, env=env, uid=uid)

    def run(self):
        agents, daemons = self.scan()
        for name, step in (("systemd", lambda: self.systemd(agents)), ("pm2", lambda: self.pm2(agents, daemons)),
                           ("containers", self.containers)):
            try:
                step()
            except (OSError, ValueError, KeyError, TypeError) as exc:  # one supervisor's surprise stays its own
                self._incomplete(name, fm.describe(exc))
        self.facts["crash_loops"] = sorted(f["subject"] for f in self.findings if f["id"] == "services.crash_loop")
        return {"facts": self.facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    # ------------------------------------------------------------ /proc
    def scan(self):
        """The agent processes ({pid, name, unit, pm2_home}) and the pm2 daemons ({pid, home, uid, node}) in one pass."""
        agents, daemons = [], []
        supervision = procfs.Supervision(self.proc)
        counts = {}
        try:
            processes = list(self.proc.processes(counts))
        except OSError as exc:
            self._incomplete("the process table", fm.describe(exc))
            return agents, daemons
        for pid, stat, uid, argv in processes:
            match = PM2_DAEMON.match(argv[0]) if len(argv) == 1 else None
            if match:
                home = self._daemon_home(pid, match)
                if home:
                    daemons.append({"pid": pid, "home": home, "uid": uid, "node": self._exe(pid)})
                else:
                    self._incomplete("pm2 daemon pid %d" % pid, "its PM2_HOME could not be read (title cut, environ unreadable)")
                continue
            if not procfs.is_agent(self.patterns, stat["comm"], argv):
                continue
            owner = supervision.owner(pid, stat["comm"], argv)
            entry = {"pid": pid, "name": stat["comm"], "uid": uid,
                     "unit": owner[1] if owner and owner[0] == "systemd" and owner[1].endswith(".service") else None}
            try:
                entry["pm2_home"] = procfs.parse_environ(self.proc.read(pid, "environ")).get("PM2_HOME")
            except OSError:
                entry["pm2_home"] = None
            agents.append(entry)
        self.facts["agent_processes"] = len(agents)
        return agents, daemons

    def _daemon_home(self, pid, match):
        """The daemon's PM2_HOME: from its title when whole, else from its environment (PM2_HOME, or HOME/.pm2)."""
        if match.group("end") and match.group("home"):
            return match.group("home")
        try:
            environ = procfs.parse_environ(self.proc.read(pid, "environ"))
        except OSError:
            return None
        if environ.get("PM2_HOME"):
            return environ["PM2_HOME"]
        return os.path.join(environ["HOME"], ".pm2") if environ.get("HOME") else None

    def _exe(self, pid):
        try:
            exe = os.readlink(self.proc.path(pid, "exe"))
        except OSError:
            return None
        return exe if os.path.isfile(exe) else None

    # ------------------------------------------------------------ systemd
    def systemd(self, agents):
        units = [(unit, "services") for unit in self.units]
        for agent in agents:
            if agent["unit"] and agent["unit"] not in [u for u, _s in units]:
                units.append((agent["unit"], "cgroup of pid %d" % agent["pid"]))
        facts = self.facts["systemd"] = {"state": "no units to check", "units": []}
        if not units:
            return
        systemctl = find_bin("systemctl")
        if not systemctl:
            facts["state"] = "not present (no systemctl)"
            return
        names = [u for u, _s in units]
        rc, out, err = self._run([systemctl, "show", "--no-pager", "-p", ",".join(sp.SYSTEMD_PROPERTIES), "--"] + names)
        if rc != 0:
            if NOT_RUNNING.search(err + out):
                facts["state"] = "not running (systemd is not this system's init)"
                return
            self._incomplete("systemctl show %s" % " ".join(names), (err or out).strip() or "exited with %d" % rc)
            return
        facts["state"] = "answered"
        shown = sp.systemctl_show(out, names)
        journalctl = find_bin("journalctl")
        for unit, source in units:
            props = shown.get(unit)
            if props is None:
                self._incomplete("systemctl show %s" % unit, "systemctl printed nothing for this unit")
                continue
            state = sp.unit_state(unit, props)
            state["source"] = source
            facts["units"].append(state)
            if state["load_state"] == "not-found":
                if source == "services":
                    self.findings.append(fm.make("services.unknown_unit", "low", {"unit": unit}, subject=unit))
                continue
            if not (state["looping"] or state["active_state"] == "failed" or state["restarts"]):
                continue
            self.systemd_unit(state, journalctl)

    def systemd_unit(self, state, journalctl):
        unit = state["unit"]
        recent = None
        lines = []
        if journalctl:
            try:
                rc, out, err = self._run([journalctl, "-u", unit, "--since", "-%ds" % WINDOW, "-n", str(JOURNAL_LINES),
                                          "--no-pager", "-o", "short-unix"])
                if rc != 0:
                    raise OSError(0, (err or out).strip() or "journalctl exited with %d" % rc)
                lines = sp.journal_lines(out)
                restarts = [when for when, _ident, message in lines if sp.RESTART_SCHEDULED in message]
                recent = (len(restarts), restarts)
                if not self._error_of(lines):
                    rc, out, err = self._run([journalctl, "-u", unit, "-n", "50", "--no-pager", "-o", "short-unix"])
                    if rc == 0:
                        lines = sp.journal_lines(out)
            except OSError as exc:
                self._incomplete("journal of %s" % unit, fm.describe(exc))
        last = self._line(self._error_of(lines))
        state["last_error"] = last
        evidence = self._common("systemd", unit, last, state["restarts"] or 0)
        failure = ", result %s" % state["result"] if state["result"] not in ("", "success") else ""
        evidence.update(unit=unit, status="%s (%s)%s" % (state["active_state"], state["sub_state"], failure))
        if recent is not None:
            count, stamps = recent
            evidence.update(recent_restarts=count, restarts_per_minute=round(count * 60.0 / WINDOW, 1), rate_source="journal",
                            rate="%d times in the last 10 minutes (%s per minute; %s since its last manual start)" % (
                                count, round(count * 60.0 / WINDOW, 1), self._count(state["restarts"])),
                            first_seen=sp.iso(stamps[0]) if stamps else None, last_seen=sp.iso(stamps[-1]) if stamps else None)
        else:
            estimate = sp.cycle_estimate(state) or 0
            cycle = (state["last_run_seconds"] or 0.0) + (state["restart_delay_seconds"] or 0.0)
            evidence.update(recent_restarts=estimate, rate_source="unit timing",
                            restarts_per_minute=round(60.0 / cycle, 1) if estimate and cycle else 0.0,
                            rate="about %d times per 10 minutes (a run of %s s plus a restart delay of %s s; %s since its last "
                                 "manual start)" % (estimate, state["last_run_seconds"], state["restart_delay_seconds"],
                                                    self._count(state["restarts"])) if estimate else
                                 "%s since its last manual start" % self._count(state["restarts"]))
        evidence["count"] = evidence["recent_restarts"]
        state.update(recent_restarts=evidence["recent_restarts"], rate=evidence["rate"])
        gave_up = state["active_state"] == "failed"
        self._judge(evidence, gave_up=gave_up, waiting=state["sub_state"].startswith("auto-restart"), why=(
            "systemd stopped restarting it (result %s, exit status %s)" % (state["result"], state["exit_status"])) if gave_up else
            "it is waiting to be restarted (%s)" % state["sub_state"])

    @staticmethod
    def _error_of(lines):
        """The last error line of a unit's journal, its own output before systemd's messages about it."""
        own = [message for _when, ident, message in lines if not ident.startswith("systemd[")]
        mine = sp.last_error(own) if own else None
        if mine and sp.ERRORISH.search(mine):
            return mine
        return sp.last_error([message for _when, _ident, message in lines]) or mine

    @staticmethod
    def _count(number):
        return "%s restart%s" % (number, "" if number == 1 else "s") if number is not None else "restarts not counted"

    # ------------------------------------------------------------ pm2
    def pm2_binary(self, daemons):
        if self.pm2_option not in ("", "auto"):
            return self.pm2_option if os.path.isfile(self.pm2_option) else None
        for daemon in daemons:  # the pm2 that started the daemon, when its environment says so
            try:
                underscore = procfs.parse_environ(self.proc.read(daemon["pid"], "environ")).get("_") or ""
            except OSError:
                continue
            if os.path.basename(underscore) == "pm2" and os.path.isfile(underscore):
                return underscore
        return find_bin("pm2", PM2_PLACES)

    def pm2(self, agents, daemons):
        facts = self.facts["pm2"] = {"state": "not present", "binary": None, "daemons": [], "apps": []}
        homes = dict((d["home"], d) for d in daemons)
        wanted = sorted(set(a["pm2_home"] for a in agents if a.get("pm2_home")))
        facts["homes_without_daemon"] = [home for home in wanted if home not in homes]
        if not daemons:
            if self.pm2_option not in ("", "auto") and not os.path.isfile(self.pm2_option):
                raise ValueError("pm2 %s is not a file." % self.pm2_option)
            facts["state"] = "no pm2 daemon running"
            return
        binary = self.pm2_binary(daemons)
        facts["binary"] = binary
        facts["daemons"] = [{"pid": d["pid"], "home": d["home"], "user": procfs.username(d["uid"])} for d in daemons]
        if not binary:
            for daemon in daemons:
                self._incomplete("pm2 daemon %s" % daemon["home"], "a pm2 daemon runs but no pm2 command was found; set agentops_pm2 "
                                 "to its path")
            return
        facts["state"] = "answered"
        for daemon in sorted(daemons, key=lambda d: d["home"]):
            try:
                self.pm2_home(binary, daemon)
            except (OSError, ValueError) as exc:
                self._incomplete("pm2 jlist (PM2_HOME=%s)" % daemon["home"], fm.describe(exc))

    def pm2_home(self, binary, daemon):
        home = daemon["home"]
        user_home = "/"
        try:
            user_home = pwd.getpwuid(daemon["uid"]).pw_dir
        except KeyError:
            pass
        node = daemon["node"] or find_bin("node")
        path = os.pathsep.join(([os.path.dirname(node)] if node else []) + list(SEARCH_DIRS))
        env = {"PATH": path, "HOME": user_home, "PM2_HOME": home, "LANG": "C.UTF-8"}
        argv = ([node, binary] if node and _runs_on_node(binary) else [binary]) + ["jlist"]
        rc, out, err = self._run(argv, env=env, uid=daemon["uid"])
        if rc != 0:
            raise OSError(0, (err or out).strip() or "pm2 jlist exited with %d" % rc)
        apps = sp.pm2_jlist(out)
        exits = None
        try:
            exits = sp.pm2_exits(sp.tail_lines(os.path.join(home, "pm2.log"), PM2_LOG_BYTES, PM2_LOG_LINES), self.now, WINDOW)
        except OSError:
            exits = None  # no pm2.log to count from: the counters of pm2 jlist are used instead
        for item in apps:
            app = sp.pm2_app(item, self.now)
            app["home"] = home
            self.facts["pm2"]["apps"].append(app)
            self.pm2_app(app, binary, exits)

    def pm2_app(self, app, binary, exits):
        if not app["restarts"] and app["status"] != "errored":
            return
        last = None
        if app["err_log"]:
            try:
                last = self._line(sp.last_error(sp.tail_lines(app["err_log"], TAIL_BYTES, TAIL_LINES)))
            except OSError as exc:
                self._incomplete("error log of pm2 app %s" % app["name"], fm.describe(exc))
        app["last_error"] = last
        window = self.now - app["created_epoch"] if app["created_epoch"] else None
        evidence = self._common("pm2", app["name"], last, app["restarts"])
        evidence.update(name=app["name"], pm2=binary, pm2_home=app["home"], status=app["status"],
                        unstable_restarts=app["unstable_restarts"])
        if app["err_log"]:
            evidence["err_log"] = app["err_log"]
        stamps = None
        if exits is not None:
            stamps = [t for t in exits.get((app["name"], str(app["pm_id"])), []) if not app["created_epoch"] or t >= app["created_epoch"] - 1]
        if window is not None and window <= WINDOW:
            recent, source = app["restarts"], "pm2 counters"
            per_minute = round(app["restarts"] * 60.0 / max(window, 1.0), 1)
            rate = "%d times in %d s (%s per minute)" % (app["restarts"], round(window), per_minute)
        else:
            if stamps is not None:
                recent, source = len(stamps), "pm2.log"
            else:
                recent, source = (int(round(app["restarts"] * WINDOW / window)) if window else 0), "pm2 counters (average)"
            per_minute = round(recent * 60.0 / WINDOW, 1)
            rate = "%d times in the last 10 minutes (%s per minute; %s since %s)" % (recent, per_minute, self._count(app["restarts"]),
                                                                                     app["created"] or "it was started")
        first = (stamps[0] if stamps else app["created_epoch"]) if window is not None and window <= WINDOW else (stamps[0] if stamps else None)
        last_seen = stamps[-1] if stamps else app["started_epoch"]
        evidence.update(recent_restarts=recent, count=recent, restarts_per_minute=per_minute, rate=rate, rate_source=source,
                        window_seconds=round(window) if window is not None else None,
                        first_seen=sp.iso(first), last_seen=sp.iso(last_seen))
        app.update(recent_restarts=recent, rate=rate)
        self._judge(evidence, gave_up=app["status"] == "errored", waiting=app["status"] in ("waiting restart", "launching"), why=(
            "pm2 stopped restarting it after %d unstable restarts (status errored)" % app["unstable_restarts"]
            if app["status"] == "errored" else "pm2 is waiting to start it again (status %s)" % app["status"]))

    # ------------------------------------------------------------ docker / podman
    def containers(self):
        facts = self.facts["containers"] = {}
        for runtime in self.runtimes:
            engine, state, listed = ctr_engine.reach(runtime, find_bin, self.runner, self.timeout, self._incomplete)
            facts[runtime] = {"state": state}
            if engine is None:
                continue
            facts[runtime].update(containers=[], listed=len(listed))
            if not listed:
                continue
            try:
                items = engine.inspect([ident for ident, dummy in listed[:CONTAINERS_MAX]])
            except (OSError, ValueError) as exc:
                self._incomplete("%s inspect" % runtime, fm.describe(exc))
                continue
            for item in items:
                box = sp.container_state(item, self.now)
                facts[runtime]["containers"].append(box)
                self.container(runtime, box)

    def container(self, runtime, state):
        if not state["restarts"] and state["status"] != "restarting":
            return
        window = self.now - state["created_epoch"] if state["created_epoch"] else None
        if window is not None and window <= WINDOW:
            recent = state["restarts"]
            rate = "%d times in %d s (%s per minute)" % (recent, round(window), round(recent * 60.0 / max(window, 1.0), 1))
        else:
            recent = int(round(state["restarts"] * WINDOW / window)) if window else 0
            rate = "%s since %s (about %d per 10 minutes on average)" % (self._count(state["restarts"]), state["created"], recent)
        last = self._line(state["error"]) if state["error"] else None
        evidence = self._common(runtime, state["name"], last, state["restarts"])
        evidence.update(container=state["name"], runtime=runtime, recent_restarts=recent, count=recent, rate=rate,
                        rate_source="%s inspect" % runtime, restarts_per_minute=round(recent * 60.0 / WINDOW, 1),
                        status="%s (exit code %s%s)" % (state["status"], state["exit_code"], ", OOM-killed" if state["oom_killed"] else ""),
                        first_seen=state["created"], last_seen=sp.iso(self.now - state["uptime_seconds"]) if state["uptime_seconds"] else None)
        state.update(recent_restarts=recent, rate=rate)
        gave_up = state["status"] in ("exited", "dead") and state["restart_policy"] != "no" and state["exit_code"] not in (0, 143, None)
        self._judge(evidence, gave_up=gave_up, waiting=state["status"] == "restarting",
                    why="the container is %s with restart policy %s" % (evidence["status"], state["restart_policy"]))

    # ------------------------------------------------------------ findings
    def _common(self, supervisor, service, last, restarts):
        dep = sp.dependency(last)
        return {
            "supervisor": supervisor, "service": service, "restarts": restarts,
            "last_error": last or "(no error line was read)",
            "dependency": dep["service"] if dep else None, "dependency_port": dep["port"] if dep else None,
            "dependency_host": dep["host"] if dep else None,
            "dependency_note": " %s%s." % (dep["text"][0].upper(), dep["text"][1:]) if dep else "",
        }

    def _judge(self, evidence, gave_up, waiting, why):
        """services.down when the supervisor gave up on the service (its state now beats its restart history), else
        services.crash_loop when the restarts of the last 10 minutes reach a threshold, else services.down when the
        service is waiting to be started again."""
        subject = "%s %s" % (evidence["supervisor"], evidence["service"])
        found = None if gave_up else fm.graded("services.crash_loop", evidence["recent_restarts"], evidence, self.thresholds,
                                               subject=subject)
        if found:
            self.findings.append(found)
        elif gave_up or waiting:
            self.findings.append(fm.make("services.down", "high", dict(evidence, why=why), subject=subject))


class ServicesFamily(object):
    """Restart counts and crash loops under systemd, pm2, docker and podman, with each service's last error."""

    name = "services"
    title = "services and crash loops"
    enable = "add services to agentops_checks"
    redacts = True
    options = dict(
        services=dict(type="list", elements="raw", default=[]),
        patterns=dict(type="list", elements="str", default=["node", "claude", "npx", "npm"]),
        pm2=dict(type="str", default="auto"),
        runtimes=dict(type="list", elements="str", default=["docker", "podman"]),
        command_timeout=dict(type="float", default=10.0),
        proc_root=dict(type="path", default="/proc"),
    )
    variables = {"services": "services", "patterns": "process_patterns", "pm2": "pm2", "runtimes": "container_runtimes",
                 "command_timeout": "command_timeout"}
    secrets = {}
    enabled_by = None
    ranges = {"command_timeout": [1, 120]}

    def collect(self, module, params):
        check_ranges(self, params, "seconds")
        if not params["patterns"]:
            raise ValueError("patterns must name at least one process pattern.")
        ctr_engine.check_runtimes(params["runtimes"])
        if params["pm2"] not in ("", "auto") and not os.path.isabs(params["pm2"]):
            raise ValueError("pm2 must be auto or an absolute path, got %r." % params["pm2"])
        units = sp.service_units(params["services"])
        patterns = procfs.compile_patterns(params["patterns"])
        if not os.path.isdir(params["proc_root"]):
            raise ValueError("proc_root %s is not a directory." % params["proc_root"])
        redactor = Redactor(key=params.get("redaction_key"))
        collector = ServicesCollector(procfs.ProcFS(params["proc_root"]), patterns, units, params["pm2"], params["command_timeout"],
                                      params["thresholds"], redactor, params["runtimes"])
        return redactor.data(collector.run())
