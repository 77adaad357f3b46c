# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory diagnostics of agent processes, run by process_facts over its process table:
leak sampling (a least-squares slope of RSS over a window, projected to the process's
limit), kernel OOM kills, and the memory and pids accounting of their cgroups.

A leak needs sustained growth, not a high slope alone. A sampled process is reported as
``proc.memory_leak`` only when every one of these holds (the numbers are the catalog's
``RULES["proc.memory_leak"]["fit"]``; the defaults below apply where it names none):

- the process is at least ``min_age`` seconds old (``agentops_leak_min_age``, 120 s): a
  younger one is still warming up (loading code, filling caches and the V8 heap) and is
  listed as ``warming_up`` instead;
- at least ``min_samples`` samples (4): a line through 3 points has one residual degree of
  freedom, and pure noise fits it with R^2 >= 0.8 three times in ten;
- at least ``min_rising`` (2/3) of the steps between samples grew: a one-off jump then flat
  (a warm-up, a burst of work, one big cache fill) rises in one step only;
- the least-squares line explains the samples: R^2 >= ``min_r_squared`` (0.8); a jump then
  flat, a GC sawtooth and noise fit a line badly;
- the growth (last sample - first) is above noise - not flat, not shrinking: at least ``min_growth_mb`` (2 MB) and at
  least ``min_growth_percent`` (1 %) of the first sample, so a flat worker whose RSS wanders
  by a few hundred kB over a 3 s window is not a 10 MB/min leak;
- the slope reaches a threshold of the rule (graded by the catalog: medium, high, critical).

The severity is the slope's grade, raised to critical only when the catalog's
``critical_within_minutes`` (15) says the projected time to the limit is that short.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

MB = 1024.0 * 1024.0
LEAK = "proc.memory_leak"
# Used where the catalog's RULES["proc.memory_leak"]["fit"] names no value (see the module docstring).
FIT_DEFAULTS = {
    "min_samples": 4,
    "min_rising": 0.66,
    "min_r_squared": 0.8,
    "min_growth_mb": 2.0,
    "min_growth_percent": 1.0,
    "full_confidence_samples": 12,
    "full_confidence_seconds": 60.0,
}
CRITICAL_WITHIN_MINUTES = 15.0


def leak_criteria():
    """The criteria of proc.memory_leak: the catalog's ``fit`` over FIT_DEFAULTS, and its
    ``critical_within_minutes``."""
    rule = RULES.get(LEAK) or {}
    criteria = dict(FIT_DEFAULTS)
    criteria.update(rule.get("fit") or {})
    floors = [f for f in rule.get("floors") or () if f["name"] == "critical_within_minutes"]
    criteria["critical_within_minutes"] = floors[0]["below"] if floors else CRITICAL_WITHIN_MINUTES
    return criteria


def _moments(points):
    n = len(points)
    mean_t = sum(t for t, _v in points) / n
    mean_v = sum(v for _t, v in points) / n
    s_tt = sum((t - mean_t) ** 2 for t, _v in points)
    s_vv = sum((v - mean_v) ** 2 for _t, v in points)
    s_tv = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return s_tt, s_vv, s_tv


def slope_per_minute(points):
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    s_tt, _s_vv, s_tv = _moments(points)
    return 60.0 * s_tv / s_tt if s_tt else 0.0


def r_squared(points):
    """Coefficient of determination of the least-squares line through (seconds, MB) points: the share
    of the samples' variance the line explains, 0..1. 0 when there is nothing to explain (fewer than
    3 points, or every sample the same): a flat series has no trend."""
    if len(points) < 3:
        return 0.0
    s_tt, s_vv, s_tv = _moments(points)
    if not s_tt or not s_vv:
        return 0.0
    return max(0.0, min(1.0, s_tv * s_tv / (s_tt * s_vv)))


def rising(points):
    """Share of consecutive samples that grew."""
    steps = list(zip(points, points[1:]))
    return sum(1 for a, b in steps if b[1] > a[1]) / float(len(steps)) if steps else 0.0


def confidence(fit, samples, seconds, criteria=None):
    """How far a leak finding can be trusted, 0..1, rounded to 2 places::

        confidence = R^2 x min(1, samples / 12) x min(1, 1/2 + 1/2 x window / 60 s)

    The quality of the fit (R^2), scaled down when fewer than 12 samples back it and when the
    samples span less than a minute. A very short window still counts half - the fit itself is
    evidence - but a few seconds of growth cannot tell a leak from a cache filling or a warm-up
    still under way. A perfect line over 4 samples in 3 s (process_facts' defaults) gets 0.17,
    weak; 12 samples over 60 s get the R^2 itself. 12 and 60 are the catalog's
    ``full_confidence_samples`` and ``full_confidence_seconds``.
    """
    criteria = criteria or leak_criteria()
    full_samples = float(criteria["full_confidence_samples"]) or 1.0
    full_seconds = float(criteria["full_confidence_seconds"]) or 1.0
    value = fit * min(1.0, samples / full_samples) * min(1.0, 0.5 + 0.5 * max(0.0, seconds) / full_seconds)
    return round(max(0.0, min(1.0, value)), 2)


def judge(points, age_seconds, min_age, criteria):
    """The measures of one sampled series (``samples``, ``slope_mb_per_min``, ``r_squared``,
    ``rising_share``, ``growth_mb``) and its ``verdict``: the first criterion of the module docstring
    that failed (``warming_up``, ``too_few_samples``, ``within_noise``, ``not_sustained``,
    ``poor_fit``), or ``growing`` when all held. The slope's grade is the caller's."""
    first = points[0][1] if points else 0.0
    growth = points[-1][1] - first if points else 0.0
    fit, share = r_squared(points), rising(points)
    measures = {
        "samples": len(points),
        "slope_mb_per_min": round(slope_per_minute(points), 2),
        "r_squared": round(fit, 3),
        "rising_share": round(share, 2),
        "growth_mb": round(growth, 2),
    }
    if age_seconds is not None and age_seconds < min_age:
        verdict = "warming_up"
    elif len(points) < criteria["min_samples"]:
        verdict = "too_few_samples"
    elif growth < max(criteria["min_growth_mb"], first * criteria["min_growth_percent"] / 100.0):
        verdict = "within_noise"
    elif share < criteria["min_rising"]:
        verdict = "not_sustained"
    elif fit < criteria["min_r_squared"]:
        verdict = "poor_fit"
    else:
        verdict = "growing"
    measures["verdict"] = verdict
    return measures


class MemoryCollector(object):
    def __init__(self, proc, cgroups, window=3.0, samples=4, max_processes=50, thresholds=None, kernel_log=None,
                 min_age=120.0):
        self.proc = proc
        self.cgroups = cgroups
        self.window = window
        self.samples = samples
        self.max_processes = max_processes
        self.thresholds = thresholds or {}
        self.kernel_log = kernel_log  # callable returning [(seconds since boot, message)] or None
        self.min_age = float(min_age)  # seconds; younger processes are warming up, not leaking
        self.criteria = leak_criteria()
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
        """``agents``: [{pid, name, argv, rss_mb, age_seconds}] of the matched processes (from the process
        table); a missing ``age_seconds`` counts as old enough."""
        facts = {"sampled": [], "warming_up": [], "cgroups": [], "oom_kills": [], "window_seconds": 0.0,
                 "leak_criteria": dict(self.criteria, min_age_seconds=self.min_age)}
        agents = sorted(agents, key=lambda a: -a["rss_mb"])[:self.max_processes]
        facts["cgroups"] = self.cgroup_checks(agents)
        if agents and self.window > 0:
            series, spent = self.sample(agents)
            facts["window_seconds"] = round(spent, 2)
            for agent in agents:
                if agent["pid"] in series:
                    entry = self.leak(agent, series[agent["pid"]], spent)
                    facts["sampled"].append(entry)
                    if entry["verdict"] == "warming_up":
                        facts["warming_up"].append({"pid": agent["pid"], "name": agent["name"],
                                                    "age_seconds": entry["age_seconds"]})
        if self.kernel_log is not None:
            facts["oom_kills"] = self.oom_history(agents)
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def leak(self, agent, points, spent):
        """The sampled entry of one process; appends a proc.memory_leak finding when it leaks (see the module docstring)."""
        age = agent.get("age_seconds")
        entry = {"pid": agent["pid"], "name": agent["name"], "age_seconds": age,
                 "rss_mb": [round(v, 1) for _t, v in points]}
        entry.update(judge(points, age, self.min_age, self.criteria))
        slope = entry["slope_mb_per_min"]
        limit_mb, source, headroom = self.limits(dict(agent, rss_mb=points[-1][1]))  # the heap's headroom now
        entry["limit_mb"] = round(limit_mb, 1) if limit_mb else None
        entry["limit_source"] = source
        if entry["verdict"] != "growing":
            return entry  # no sustained growth: nothing to project
        minutes = None
        if limit_mb and slope > 0:
            minutes = round(max(0.0, headroom) / slope, 1)
            entry["minutes_to_limit"] = minutes
        span = points[-1][0] - points[0][0]
        note = ""
        if minutes is not None:
            note = "; at this rate it reaches its %s (%d MB) in about %s min" % (source, int(limit_mb or 0), minutes)
        found = fm.graded(LEAK, slope, {
            "pid": agent["pid"], "name": agent["name"], "slope_mb_per_min": slope, "r_squared": entry["r_squared"],
            "samples": entry["samples"], "rising_share": entry["rising_share"], "growth_mb": entry["growth_mb"],
            "age_seconds": age, "window_seconds": round(spent, 1), "first_mb": round(points[0][1], 1),
            "last_mb": round(points[-1][1], 1), "samples_mb": entry["rss_mb"], "limit_mb": entry["limit_mb"],
            "limit_source": source, "minutes_to_limit": minutes, "projection_note": note}, self.thresholds,
            subject="pid %d" % agent["pid"])
        if found is None:
            entry["verdict"] = "below_threshold"  # a clean line, but slower than the rule's lowest threshold
            return entry
        found["confidence"] = entry["confidence"] = confidence(entry["r_squared"], entry["samples"], span, self.criteria)
        entry["verdict"] = "leak"
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
                    # below every threshold, but the kernel has killed in it: the rule's when_oom_killed floor grades it
                    found = fm.make("proc.cgroup_memory", "info", evidence, subject=memory["cgroup"], overrides=self.thresholds)
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
            self.findings.append(fm.make("proc.oom_kill", None, {
                "count": len(kills), "pid": last["pid"], "comm": last["comm"], "when": last["when"] or "since boot",
                "first_seen": kills[0]["when"], "last_seen": last["when"],
                "memcg_note": " in memory cgroup %s" % (last["cgroup"] or "") if last["memcg"] else " (host out of memory)",
                "kills": kills[-10:]}, overrides=self.thresholds))
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
