# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules catalog, as data.

Every finding any module emits is keyed by one of these rule ids. A rule id is
forever: reports, docs anchors and event-driven rulebooks key on it. The static
prose (title, symptom template, diagnosis, fix) and the default thresholds live
here; modules only add evidence. ``docs/Production-Debugging-Playbooks.md`` is
generated from this file (``make docs``) and a test fails when the two drift.

Templates (``symptom``, ``diagnosis``, ``fix.command``) are ``str.format``
templates filled from the finding's evidence; a key the evidence lacks is left
as ``{key}`` rather than failing.

Thresholds map a severity to the value at which it starts. ``direction`` says
whether larger (``above``, the default) or smaller (``below``) values are worse.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCS_PAGE = "docs/Production-Debugging-Playbooks.md"

CATEGORIES = {
    "host": "Host resources",
    "proc": "Processes",
    "diagnose": "The diagnosis itself",
}

RULES = {
    # ------------------------------------------------------------------ host
    "host.load": {
        "category": "host",
        "title": "CPU load above what the cores can serve",
        "symptom": "1-minute load average {load1} on {cores} usable cores ({per_core} per core).",
        "diagnosis": (
            "More runnable (or uninterruptible, D-state) tasks than cores: requests queue, "
            "event loops stall and health checks time out. Node services are single-threaded "
            "per process, so one busy process can saturate its core while the host looks idle; "
            "a high load with low CPU use points at tasks blocked on I/O (disk, NFS)."
        ),
        "fix": {
            "summary": "Find what is running or blocked; shed load or scale out before restarting anything.",
            "command": "top -b -n 1 -o %CPU | head -n 25; ps -eo pid,stat,wchan:20,comm | awk '$2 ~ /D/'",
            "playbook": None,
        },
        "thresholds": {"medium": 1.5, "high": 3.0, "critical": 6.0},
    },
    "host.memory": {
        "category": "host",
        "title": "Memory nearly exhausted",
        "symptom": "{used_percent}% of memory in use ({available_mb} MB available of {total_mb} MB).",
        "diagnosis": (
            "Little memory is left for new allocations: the kernel reclaims page cache, then "
            "swaps, then the OOM killer ends the largest process (often the agent service or a "
            "spawned CLI). Check the top RSS processes in this report for a leak."
        ),
        "fix": {
            "summary": "Identify the largest and growing processes; restart a leaking service during a quiet window.",
            "command": "ps -eo pid,rss,etimes,comm --sort=-rss | head -n 15",
            "playbook": None,
        },
        "thresholds": {"high": 90.0, "critical": 95.0},
    },
    "host.swap": {
        "category": "host",
        "title": "Heavy swap use",
        "symptom": "{used_percent}% of swap in use ({used_mb} MB of {total_mb} MB).",
        "diagnosis": (
            "Working sets no longer fit in RAM. Swapped-out Node heaps make garbage collection "
            "page in memory and pause the event loop for seconds."
        ),
        "fix": {
            "summary": "Find the processes with the largest swap use and reduce memory pressure.",
            "command": "grep -H VmSwap /proc/[0-9]*/status 2>/dev/null | sort -k2 -n -r | head -n 15",
            "playbook": None,
        },
        "thresholds": {"medium": 50.0, "high": 80.0},
    },
    "host.disk_space": {
        "category": "host",
        "title": "Filesystem nearly full",
        "symptom": "{mount_point} ({fstype}) is {used_percent}% full: {available_mb} MB left of {size_mb} MB.",
        "diagnosis": (
            "Writes fail with ENOSPC once the filesystem fills: logs stop, PostgreSQL may stop "
            "accepting writes, npm and CLI tools fail on temporary files. Deleted files that a "
            "process still holds open keep their space until the process closes them."
        ),
        "fix": {
            "summary": "Find the largest directories and deleted-but-open files on that mount; rotate or remove logs.",
            "command": "du -xh --max-depth=2 {mount_point} 2>/dev/null | sort -h | tail -n 15",
            "playbook": None,
        },
        "thresholds": {"high": 90.0, "critical": 95.0},
    },
    "host.disk_inodes": {
        "category": "host",
        "title": "Filesystem out of inodes",
        "symptom": "{mount_point} ({fstype}) uses {used_percent}% of its inodes ({free} free).",
        "diagnosis": (
            "New files cannot be created (ENOSPC) although space is left: typically millions "
            "of small files from caches, session stores or temporary directories."
        ),
        "fix": {
            "summary": "Find the directories with the most files on that mount and clean them up.",
            "command": "du -x --inodes --max-depth=3 {mount_point} 2>/dev/null | sort -n | tail -n 15",
            "playbook": None,
        },
        "thresholds": {"high": 90.0, "critical": 95.0},
    },
    "host.file_handles": {
        "category": "host",
        "title": "System-wide file handles nearly exhausted",
        "symptom": "{allocated} of {max} system file handles allocated ({used_percent}%).",
        "diagnosis": (
            "When fs.file-max is reached every process gets ENFILE on open(), socket() and "
            "accept(): new connections and spawned children fail across the whole host."
        ),
        "fix": {
            "summary": "Find the processes holding the most descriptors; raise fs.file-max only once a leak is ruled out.",
            "command": "for p in /proc/[0-9]*; do echo \"$(ls $p/fd 2>/dev/null | wc -l) ${p#/proc/}\"; done | sort -n | tail -n 10",
            "playbook": None,
        },
        "thresholds": {"high": 80.0, "critical": 95.0},
    },
    "host.pids": {
        "category": "host",
        "title": "Task count near kernel.pid_max",
        "symptom": "{tasks} tasks (processes and threads) against kernel.pid_max {pid_max} ({used_percent}%).",
        "diagnosis": (
            "Every thread takes a PID. Near the limit fork() and clone() fail with EAGAIN, so "
            "spawning CLI children and creating worker threads fails."
        ),
        "fix": {
            "summary": "Find the processes with the most threads or children (leaked CLI children, zombies).",
            "command": "ps -eo nlwp,pid,comm --sort=-nlwp | head -n 10",
            "playbook": None,
        },
        "thresholds": {"high": 80.0, "critical": 95.0},
    },
    "host.recent_reboot": {
        "category": "host",
        "title": "Host rebooted recently",
        "symptom": "Up for only {uptime_seconds} seconds.",
        "diagnosis": (
            "A recent reboot (planned, a kernel panic, or the hypervisor) explains lost "
            "in-memory state and reset counters; it may also be the incident's trigger."
        ),
        "fix": {
            "summary": "Read the previous boot's last kernel and service messages.",
            "command": "journalctl --list-boots | tail -n 3; journalctl -b -1 -p warning -n 50 --no-pager",
            "playbook": None,
        },
        "thresholds": {"info": 900},
        "direction": "below",
    },
    "host.check_incomplete": {
        "category": "host",
        "title": "A host check could not run",
        "symptom": "Could not read {what}: {error}",
        "diagnosis": (
            "This part of the host was not measured, so the report cannot say it is healthy. "
            "Usual causes: a permission the connecting user lacks, a hung network filesystem, "
            "or a kernel without that interface."
        ),
        "fix": {
            "summary": "Run the diagnosis with privileges (become) or check that path by hand.",
            "command": "ansible-playbook agentops.runbooks.diagnose --become",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
    # ------------------------------------------------------------------ proc
    "proc.zombie": {
        "category": "proc",
        "title": "Zombie processes not reaped by their parent",
        "symptom": "{count} zombie process(es) under parent {ppid} ({parent_name}).",
        "diagnosis": (
            "A zombie has exited but its parent never called wait(). Zombies hold a PID each, "
            "not memory; many of them point at a parent that spawns children (CLI tools, shells) "
            "without reaping them, or at a container whose PID 1 does not reap (Node or npm as "
            "PID 1, no tini/--init). A zombie cannot be killed: its parent must reap it or exit."
        ),
        "fix": {
            "summary": "Ask the parent to reap (SIGCHLD); if zombies remain, restart the parent service.",
            "command": "kill -s CHLD {ppid}; sleep 2; ps -o pid,stat,comm --ppid {ppid}",
            "playbook": None,
        },
        "thresholds": {"low": 1, "medium": 10, "high": 100},
    },
    "proc.orphan": {
        "category": "proc",
        "title": "Orphaned agent processes",
        "symptom": "{count} agent process(es) matching {patterns} were re-parented to PID 1.",
        "diagnosis": (
            "Their parent (the agent service or a worker) exited without ending its children: "
            "spawned CLI sessions (node, claude, npx) keep running, holding memory, file "
            "descriptors, database connections and API quota. Common after a crash or a restart "
            "whose stop signal did not reach the process group."
        ),
        "fix": {
            "summary": "Check what they are doing, then end them with SIGTERM (SIGKILL after a grace period).",
            "command": "ps -o pid,ppid,etimes,rss,args -p {pids}",
            "playbook": None,
        },
        "thresholds": {"medium": 1, "high": 10},
    },
    "proc.fd_exhaustion": {
        "category": "proc",
        "title": "Process near its open-files limit",
        "symptom": "PID {pid} ({name}) has {fd_count} of {fd_limit} file descriptors open ({used_percent}%).",
        "diagnosis": (
            "At the limit open(), socket() and accept() fail with EMFILE: the service stops "
            "accepting connections and cannot spawn children. A count that keeps rising points "
            "at a leak (sockets or file handles not closed) rather than a limit set too low."
        ),
        "fix": {
            "summary": "Look at what the descriptors are; fix the leak, or raise LimitNOFILE for the service.",
            "command": "ls -l /proc/{pid}/fd | awk '{{print $NF}}' | sed 's/[0-9]*]$//' | sort | uniq -c | sort -n | tail",
            "playbook": None,
        },
        "thresholds": {"high": 80.0, "critical": 95.0},
    },
    "proc.high_rss": {
        "category": "proc",
        "title": "One process holds a large share of memory",
        "symptom": "PID {pid} ({name}) uses {rss_mb} MB, {percent}% of memory.",
        "diagnosis": (
            "A single process this large is the first OOM-killer candidate. For Node services "
            "compare it with --max-old-space-size and watch whether it keeps growing (a leak)."
        ),
        "fix": {
            "summary": "Watch its growth; capture evidence before restarting it.",
            "command": "grep -E 'VmRSS|VmHWM|Threads' /proc/{pid}/status",
            "playbook": None,
        },
        "thresholds": {"medium": 30.0, "high": 50.0},
    },
    "proc.limited_visibility": {
        "category": "proc",
        "title": "Some processes could not be fully inspected",
        "symptom": "{unreadable} process(es) could not be fully read as {user}; {vanished} exited during the scan.",
        "diagnosis": (
            "Without privileges the descriptors and limits of other users' processes are hidden, "
            "so descriptor exhaustion in those processes cannot be ruled out."
        ),
        "fix": {
            "summary": "Run the diagnosis with become to see every process.",
            "command": "ansible-playbook agentops.runbooks.diagnose --become",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
    "proc.check_incomplete": {
        "category": "proc",
        "title": "The process table could not be read",
        "symptom": "Could not read {what}: {error}",
        "diagnosis": (
            "No process findings could be produced, so zombies, orphans and descriptor leaks "
            "are unknown on this host, not absent."
        ),
        "fix": {
            "summary": "Check that /proc is mounted and readable (hidepid) for the connecting user.",
            "command": "mount | grep ' /proc '",
            "playbook": None,
        },
        "thresholds": {},
    },
    # -------------------------------------------------------------- diagnose
    "diagnose.unreachable": {
        "category": "diagnose",
        "title": "Host could not be reached",
        "symptom": "The diagnosis could not connect: {error}",
        "diagnosis": (
            "Nothing on this host was measured. The host may be down, out of memory, "
            "partitioned, or refusing SSH; it may also be the cause of the incident."
        ),
        "fix": {
            "summary": "Check the host from its console or hypervisor; re-run the diagnosis when it answers.",
            "command": "ansible {host} -m ansible.builtin.ping",
            "playbook": None,
        },
        "thresholds": {},
    },
    "diagnose.check_failed": {
        "category": "diagnose",
        "title": "A diagnostic module failed",
        "symptom": "The {check} check failed: {error}",
        "diagnosis": (
            "This signal family was not measured on the host, so its part of the picture is "
            "unknown, not healthy. The other checks still ran."
        ),
        "fix": {
            "summary": "Re-run with -vvv to see the module's output; check the host's Python.",
            "command": "ansible-playbook agentops.runbooks.diagnose --limit {host} -vvv",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
}


def anchor(rule_id):
    """The docs anchor of a rule: ``host.disk_space`` -> ``host-disk_space``."""
    return rule_id.replace(".", "-")


def docs_url(rule_id):
    return "%s#%s" % (DOCS_PAGE, anchor(rule_id))
