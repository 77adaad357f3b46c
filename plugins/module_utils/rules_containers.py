# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the containers family: one part of the rules catalog (merged into ``rules.RULES``, same format)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("containers", "Containers (Docker, Podman)")

# Read-only looks at a container: its state and its last output (plain client commands, run as printed).
# When the container or its runtime is not known (a report read elsewhere), list the containers of this host.
_ANY = "docker ps -a 2>/dev/null || podman ps -a 2>/dev/null || echo 'no container runtime answers on this host'"
_INSPECT = ["{runtime} inspect {container}", _ANY]
_LOGS = ["{runtime} logs --tail 50 {container}; {runtime} inspect {container}", _ANY]

RULES = {
    "containers.oom_killed": {
        "category": "containers",
        "title": "A container was killed by its memory limit",
        "symptom": ("{runtime} container {container} ({image}): {what} was OOM-killed (exit code {exit_code}, memory limit "
                    "{memory_limit_mb} MB, finished {finished}); source: {oom_source}."),
        "diagnosis": (
            "The container's memory cgroup reached its limit and the kernel's OOM killer sent SIGKILL (exit 137). For a Node "
            "service the usual causes are a V8 heap larger than the limit (--max-old-space-size unset or above the limit), a "
            "leak, or spawned CLI children counted in the same cgroup. Some runtimes do not set State.OOMKilled (Podman with "
            "conmon on hybrid cgroups, a killed child instead of PID 1): the kernel log's 'Memory cgroup out of memory' kill "
            "in the container's cgroup, or the cgroup's oom_kill counter, is then the evidence."
        ),
        "fix": {
            "summary": ("Raise the memory limit above the peak (or lower --max-old-space-size to about 75% of it), find the leak, "
                        "and bound the number of concurrent children."),
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "high",
    },
    "containers.killed_by_signal": {
        "category": "containers",
        "title": "A container's main process was killed by a signal",
        "symptom": ("{runtime} container {container} ({image}) exited with code {exit_code}: killed by {signal} (signal "
                    "{signal_number}), finished {finished}. Last error: {last_error}"),
        "diagnosis": (
            "Exit codes above 128 are 128 + the number of the signal that ended the process. {why} SIGKILL cannot be "
            "caught, so nothing was flushed or closed; SIGSEGV/SIGBUS/SIGABRT point at a native crash (a native module, "
            "a wrong-architecture binary, memory corruption)."
        ),
        "fix": {
            "summary": "Find who sent it (the runtime's events, the host's audit or shell history) or why it crashed (its last output).",
            "command": _LOGS,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "medium",
    },
    "containers.restart_loop": {
        "category": "containers",
        "title": "A container keeps restarting",
        "symptom": ("{runtime} container {container} ({image}) restarted {rate} under restart policy {restart_policy}; "
                    "now: {now}. Last error: {last_error}"),
        "diagnosis": (
            "Its main process exits soon after each start and the runtime's restart policy starts it again: the service is "
            "down most of the time and each restart drops connections. The cause is in its last output and in how it "
            "exited (an exit code, a signal, an OOM kill), not in the runtime; the services family reports the same loop "
            "as services.crash_loop when it runs."
        ),
        "fix": {
            "summary": "Read its last output and fix what it names (a dependency, a setting, a bad image); restarting again changes nothing.",
            "command": _LOGS,
            "playbook": "agentops.runbooks.rollback",
        },
        # Restarts in the last 10 minutes (the restart count since it was created, averaged when it is older).
        "thresholds": {"medium": 3, "high": 5, "critical": 15},
    },
    "containers.unhealthy": {
        "category": "containers",
        "title": "A container's health check fails",
        "symptom": ("{runtime} container {container} ({image}) is unhealthy: {failing_streak} failed probe(s) in a row; "
                    "the last ({last_probe}) exited {last_probe_exit_code}: {last_probe_output}"),
        "diagnosis": (
            "The runtime's health check (HEALTHCHECK / --health-cmd) failed as many times in a row as its retries allow. "
            "Orchestrators and load balancers stop sending it traffic, and some restart it. The probe output says what "
            "failed: the service itself, or a dependency the probe also checks."
        ),
        "fix": {
            "summary": "Read the probe's output and the container's log; fix the service or the dependency the probe names.",
            "command": _LOGS,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "high",
    },
    "containers.memory_near_limit": {
        "category": "containers",
        "title": "A container is close to its memory limit",
        "symptom": "{runtime} container {container} uses {usage_mb} MB of its {limit_mb} MB memory limit ({percent}%, page cache excluded).",
        "diagnosis": (
            "At the limit the kernel OOM-kills a process of the container (exit 137). Usage is the cgroup's working set "
            "(usage minus inactive page cache)."
        ),
        "fix": {
            "summary": "Raise the limit or lower the service's memory (V8 --max-old-space-size, fewer concurrent children).",
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {"medium": 85.0, "high": 95.0},
    },
    "containers.pids_near_limit": {
        "category": "containers",
        "title": "A container is close to its pids limit",
        "symptom": "{runtime} container {container} runs {pids_current} of at most {pids_max} tasks ({percent}%).",
        "diagnosis": (
            "At the pids limit fork/clone fail with EAGAIN: spawning a CLI child fails with 'spawn EAGAIN' and threads "
            "cannot start. Leaked children or zombies count too."
        ),
        "fix": {
            "summary": "Find the leaking children (ps inside the container) or raise --pids-limit.",
            "command": _INSPECT,
            "playbook": "agentops.runbooks.reap_processes",
        },
        "thresholds": {"medium": 80.0, "high": 95.0},
    },
    "containers.cpu_throttled": {
        "category": "containers",
        "title": "A container is CPU-throttled by its limit",
        "symptom": ("{runtime} container {container} was throttled in {throttled_percent}% of its CFS periods ({throttled} "
                    "of {periods}) under a limit of {cpus} CPUs."),
        "diagnosis": (
            "The cgroup used its CPU quota before the period ended and waited for the next one: event loops stall for up to "
            "the period (100 ms), latencies and timeouts grow though the host looks idle."
        ),
        "fix": {
            "summary": "Raise the CPU limit (--cpus) or reduce the work (fewer concurrent children).",
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {"medium": 20.0, "high": 50.0},
    },
    "containers.no_init": {
        "category": "containers",
        "title": "A container runs without an init as PID 1",
        "symptom": ("{runtime} container {container}: PID 1 is {pid1_program} ({pid1_cmd}), not an init; {zombies} zombie(s) "
                    "among its {processes} process(es); {sigterm}."),
        "diagnosis": (
            "PID 1 of a PID namespace gets no default signal actions and must reap orphans. A program that is not an init "
            "ignores SIGTERM unless it installs a handler (a stop then waits out its timeout and kills it), and children "
            "it did not spawn itself (grandchildren of a spawned CLI) stay zombies and fill the pids limit."
        ),
        "fix": {
            "summary": "Run it with --init (docker-init/catatonit), or tini/dumb-init as entrypoint; handle SIGTERM in the service.",
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "low",
        "floors": [{"name": "when_zombies", "when": "zombies", "severity": "medium", "because": "zombies are piling up under it"}],
    },
    "containers.readonly_write": {
        "category": "containers",
        "title": "A container writes to a read-only mount",
        "symptom": "{runtime} container {container}: {destination} (from {source}) is read-only and the container writes there: {how}. Last: {last_erofs}",
        "diagnosis": (
            "Writes there fail with EROFS 'read-only file system' (a :ro volume, --read-only without a tmpfs for the paths "
            "it writes, or a host filesystem remounted read-only after errors). The service fails at the first write: "
            "caches, uploads, temp files, a CLI's config directory."
        ),
        "fix": {
            "summary": "Mount it read-write, or point the writes elsewhere (a writable volume or a tmpfs for that path).",
            "command": _LOGS,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "high",
    },
    "containers.mount_permission": {
        "category": "containers",
        "title": "A container's user cannot write its mount",
        "symptom": ("{runtime} container {container}: {destination} (from {source}, owner {owner_uid}:{owner_gid}, mode {mode}) "
                    "is not writable by its user {user} (uid {uid}, groups {gids}): {how}. Last: {last_denied}"),
        "diagnosis": (
            "The mount's host directory belongs to another uid/gid than the one the container runs as, so writes fail with "
            "EACCES 'permission denied'. Image users (node = 1000) rarely match the host's owner of a bind mount."
        ),
        "fix": {
            "summary": "chown the source to the container's uid:gid (or run with --user matching the owner; podman: --userns=keep-id).",
            "command": ["stat -c '%u:%g %a %n' {source}; " + _INSPECT[0], _ANY],
            "playbook": None,
        },
        "thresholds": {},
        "severity": "medium",
        "floors": [{"name": "when_denied_in_logs", "when": "denied_in_logs", "severity": "high",
                    "because": "its logs show the writes failing"}],
    },
    "containers.noexec_mount": {
        "category": "containers",
        "title": "A container runs programs from a noexec mount",
        "symptom": "{runtime} container {container}: {destination} (from {source}) is mounted noexec: {how}. Last: {last_denied}",
        "diagnosis": (
            "Nothing on a noexec mount can be executed: exec fails with EACCES, so a CLI installed or downloaded there "
            "(npx caches, a tmpfs /tmp) cannot be spawned."
        ),
        "fix": {
            "summary": "Remount without noexec, or install and run the programs from the image's own filesystem.",
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "medium",
    },
    "containers.arch_mismatch": {
        "category": "containers",
        "title": "A container's image is built for another architecture",
        "symptom": ("{runtime} container {container}: image {image} is {image_architecture}, the host is {host_architecture}; "
                    "{exec_format_error} 'exec format error' line(s) in its logs. Last: {last_error}"),
        "diagnosis": (
            "Without emulation (binfmt/qemu) the kernel cannot run the image's binaries: 'exec format error' at start. "
            "With emulation it runs, many times slower. A multi-arch image pulled with --platform, or built on another "
            "machine, is the usual cause."
        ),
        "fix": {
            "summary": "Pull or build the image for the host's architecture (--platform linux/<host arch>) and recreate the container.",
            "command": ["{runtime} image inspect --format '{{{{.Architecture}}}}' {image}; uname -m", _ANY],
            "playbook": None,
        },
        "thresholds": {},
        "severity": "high",
        "floors": [{"name": "when_exec_format_error", "when": "exec_format_error", "severity": "critical",
                    "because": "its binaries do not start"}],
    },
    "containers.dns_unreachable": {
        "category": "containers",
        "title": "A container has no reachable nameserver",
        "symptom": "{runtime} container {container} (network {network_mode}): {problem} (nameservers: {nameservers}).",
        "diagnosis": (
            "Every name lookup fails or times out (getaddrinfo EAI_AGAIN / ENOTFOUND): a host resolver on 127.0.0.53 "
            "copied into a container with its own network namespace answers nothing there."
        ),
        "fix": {
            "summary": "Give the container a reachable resolver (--dns, the runtime's dns setting) or use the host's upstream servers.",
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "high",
    },
    "containers.dns_ndots": {
        "category": "containers",
        "title": "A container's resolver tries search domains first",
        "symptom": "{runtime} container {container}: ndots:{ndots} with search domains {search}: up to {lookups} lookups per external name.",
        "diagnosis": (
            "A name with fewer dots than ndots is tried with each search domain before as is: external API hosts cost "
            "several failed lookups each, adding latency and resolver load, and timeouts when a search domain is slow."
        ),
        "fix": {
            "summary": "Lower ndots (--dns-option ndots:1) or use fully qualified names with a trailing dot.",
            "command": _INSPECT,
            "playbook": None,
        },
        "thresholds": {},
        "severity": "low",
    },
    "containers.check_incomplete": {
        "category": "containers",
        "title": "A container check could not run",
        "symptom": "Could not read {what}: {error}",
        "diagnosis": (
            "What that check would show is unknown, not healthy: a container problem there would not be in this report. "
            "Usual causes: a client that needs root (run the diagnosis with become), a daemon that did not answer in "
            "time (agentops_command_timeout), or a kernel log that is not readable."
        ),
        "fix": {
            "summary": "Run the diagnosis with become, or check the client by hand.",
            "command": "ansible-playbook agentops.runbooks.diagnose --become",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
}
