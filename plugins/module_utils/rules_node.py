# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the node family: one part of the rules catalog (merged into ``rules.RULES``, same format).

``NODE_EOL`` is the dated end-of-life table the node family grades ``node.eol`` and ``node.eol_soon`` against:
the ``end`` of each release line in the Node.js Release Working Group's ``schedule.json`` (github.com/nodejs/Release),
as read on ``NODE_EOL_AS_OF``. A release line missing from it (a newer Node) is reported as not in the table, never
as supported or unsupported. Update the table and its date together.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("node", "Node.js runtime")

NODE_EOL_SOURCE = "Node.js Release Working Group schedule.json (github.com/nodejs/Release)"
NODE_EOL_AS_OF = "2026-11-27"
# major -> last day of support ("end" in schedule.json); 0 stands for the 0.10 and 0.12 lines.
NODE_EOL = {
    0: "2016-12-31", 4: "2018-04-30", 5: "2016-06-30", 6: "2019-04-30", 7: "2017-06-30", 8: "2019-12-31",
    9: "2018-06-30", 10: "2021-04-30", 11: "2019-06-01", 12: "2022-04-30", 13: "2020-06-01", 14: "2023-04-30",
    15: "2021-06-01", 16: "2023-09-11", 17: "2022-06-01", 18: "2025-04-30", 19: "2023-06-01", 20: "2026-04-30",
    21: "2024-06-01", 22: "2027-04-30", 23: "2025-06-01", 24: "2028-04-30", 25: "2026-06-01", 26: "2029-04-30",
}

_VERSION_CHECK = "/proc/{pid}/exe --version"

RULES = {
    "node.fetch_unavailable": {
        "category": "node",
        "title": "No global fetch in this Node process",
        "symptom": "pid {pid} ({name}) runs Node {version} ({exe}): global fetch is not available - {why}.",
        "diagnosis": (
            "Global fetch is on by default from Node 18.0.0 (behind --experimental-fetch in 16.15 and 17.5) and off with "
            "--no-experimental-fetch. Code or an SDK that calls fetch() fails here with 'ReferenceError: fetch is not "
            "defined' (or falls back to a polyfill it may not ship). The version is that of the binary the process runs "
            "(/proc/PID/exe), which is not always the node first on PATH."
        ),
        "fix": {
            "summary": ("Run the service on a supported Node LTS line (all have fetch; see node.eol) or drop --no-experimental-fetch from "
                        "its command line and NODE_OPTIONS; then restart it through its supervisor."),
            "command": _VERSION_CHECK,
            "playbook": None,
        },
        "thresholds": {},
    },
    "node.websocket_unavailable": {
        "category": "node",
        "title": "No global WebSocket in this Node process",
        "symptom": "pid {pid} ({name}) runs Node {version} ({exe}): global WebSocket is not available - {why}.",
        "diagnosis": (
            "Global WebSocket is on by default from Node 22.0.0 (behind --experimental-websocket in 20.10 and 21) and off "
            "with --no-experimental-websocket. Code that uses the global (not the ws package) fails with 'ReferenceError: "
            "WebSocket is not defined'. Informational unless such an error is in the logs."
        ),
        "fix": {
            "summary": "Use Node 22 or newer, or import a WebSocket client (the ws package), or start Node 20.10+ with --experimental-websocket.",
            "command": _VERSION_CHECK,
            "playbook": None,
        },
        "thresholds": {},
    },
    "node.eol": {
        "category": "node",
        "title": "Node.js release line past its end of life",
        "symptom": "pid {pid} ({name}) runs Node {version} ({exe}); Node {major} reached end of life on {eol_date}, {days_past_eol} day(s) ago.",
        "diagnosis": (
            "An end-of-life release line gets no security fixes (OpenSSL, llhttp, undici CVEs) and current SDKs stop "
            "supporting it. Supported LTS lines: {supported}. Dates from {eol_source}, as of {eol_as_of}."
        ),
        "fix": {
            "summary": "Move the service to a supported LTS line and restart it; test the upgrade outside production first.",
            "command": _VERSION_CHECK,
            "playbook": None,
        },
        "thresholds": {"medium": 0, "high": 365},
    },
    "node.eol_soon": {
        "category": "node",
        "title": "Node.js release line near its end of life",
        "symptom": "pid {pid} ({name}) runs Node {version} ({exe}); Node {major} reaches end of life on {eol_date}, in {days_to_eol} day(s).",
        "diagnosis": "After that date the line gets no security fixes. Supported LTS lines: {supported}. Dates from {eol_source}, as of {eol_as_of}.",
        "fix": {
            "summary": "Plan the move to a supported LTS line before that date.",
            "command": _VERSION_CHECK,
            "playbook": None,
        },
        "direction": "below",
        "thresholds": {"low": 90},
    },
    "node.binary_replaced": {
        "category": "node",
        "title": "The binary of a running process was replaced on disk",
        "symptom": "pid {pid} ({name}) still runs the deleted {exe} ({version}); the file at that path now: {on_disk}.",
        "diagnosis": (
            "/proc/PID/exe ends in '(deleted)': the binary was upgraded or removed after the process started, so the process "
            "runs the old code until it restarts. Its version, features and fixes are those of the old binary (shown here), not "
            "of what an upgrade installed; a restart may also pick up a different Node than expected."
        ),
        "fix": {
            "summary": "Restart the service through its supervisor (systemctl, pm2, the container runtime) so it runs the installed binary.",
            "command": "ls -l /proc/{pid}/exe",
            "playbook": None,
        },
        "thresholds": {},
    },
    "node.heap_over_cgroup_limit": {
        "category": "node",
        "title": "V8 heap limit at or above the memory cgroup's limit",
        "symptom": ("pid {pid} ({name}, Node {version}) may grow its heap to {heap_limit_mb} MB ({heap_source}) but cgroup "
                    "{cgroup} allows {cgroup_limit_mb} MB in all ({heap_percent}%)."),
        "diagnosis": (
            "Before V8 reaches its heap limit (and fails with 'JavaScript heap out of memory', or collects garbage harder) "
            "the process's resident memory - heap plus code, buffers and native memory - passes the cgroup's limit, and the "
            "kernel OOM killer ends it (exit 137, 'Memory cgroup out of memory: Killed process') with no V8 error in the "
            "logs. The memory Node sized its default from: {heap_basis}."
        ),
        "fix": {
            "summary": ("Start Node with --max-old-space-size at about 75% of the limit (NODE_OPTIONS=--max-old-space-size=N "
                        "in the unit or container), or raise the limit; then restart it."),
            "command": ("cat /proc/{pid}/cgroup; grep -a -o -E 'max[-_]old[-_]space[-_]size[= ]?[0-9]*' /proc/{pid}/cmdline "
                        "/proc/{pid}/environ || echo 'no --max-old-space-size: V8 default'"),
            "playbook": None,
        },
        "thresholds": {"medium": 75.0, "high": 100.0},
    },
    "node.pid1_without_init": {
        "category": "node",
        "title": "An agent runs as PID 1 of its container with no init",
        "symptom": "pid {pid} ({name}, {runtime}) is PID 1 of its PID namespace (NSpid {nspid}); SIGTERM: {sigterm}.",
        "diagnosis": (
            "PID 1 of a PID namespace gets no default signal actions: a SIGTERM without a handler is dropped. Node always "
            "installs its own SIGTERM handler (so SigCgt shows SIGTERM caught) which re-raises the signal with the default "
            "action - dropped again at PID 1 - unless the code listens with process.on('SIGTERM'). Whether it does cannot be "
            "read from /proc. Without a listener docker stop and Kubernetes wait the whole grace period, then SIGKILL "
            "(exit 137): in-flight requests and spawned CLI children are cut off. PID 1 must also reap orphans, which Node "
            "does not do (see node.pid1_zombies)."
        ),
        "fix": {
            "summary": ("Run an init as PID 1 (docker run --init, tini or dumb-init as the image's ENTRYPOINT, never npm start) and "
                        "handle SIGTERM in the code: stop accepting work, close servers and pools, then exit."),
            "command": "grep -E '^(NSpid|SigIgn|SigCgt)' /proc/{pid}/status",
            "playbook": None,
        },
        "thresholds": {},
    },
    "node.pid1_zombies": {
        "category": "node",
        "title": "Zombies under an agent at PID 1 that does not reap them",
        "symptom": "{count} zombie(s) under pid {pid} ({name}, {runtime}), PID 1 of its PID namespace with no init: {zombie_pids}.",
        "diagnosis": (
            "Orphaned grandchildren (a CLI's own children, shells of exec()) are reparented to PID 1 of the namespace. Node "
            "waits only for the children it spawned itself, so the others stay zombies: each holds a PID until the container "
            "stops, and at pids.max new spawns fail with EAGAIN."
        ),
        "fix": {
            "summary": "Add an init that reaps (docker run --init, tini) in front of Node; restarting the container clears the zombies.",
            "command": "ps -eo pid,ppid,stat,comm | awk -v p={pid} 'NR == 1 || $2 == p'",
            "playbook": None,
        },
        "thresholds": {"low": 1, "medium": 10, "high": 100},
    },
    "node.check_incomplete": {
        "category": "node",
        "title": "A Node.js runtime check could not run",
        "symptom": "Could not check {what}: {error}",
        "diagnosis": (
            "That process or binary was not checked, so its Node version, features and limits are unknown, not healthy. "
            "Usual causes: a diagnosis without become (another user's /proc/PID/exe), a binary that does not run outside its "
            "container, or one that hung on --version."
        ),
        "fix": {
            "summary": "Run the diagnosis with become, or check the binary by hand.",
            "command": ["ls -l /proc/{pid}/exe", "ansible-playbook agentops.runbooks.diagnose --become"],
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
}
