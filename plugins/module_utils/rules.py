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
templates filled from the finding's evidence. ``fix.command`` may be a list of
alternatives, most specific first: the first whose keys are all known (from the
evidence, or on the controller from the host: ``host``, ``pid`` of its largest
agent process, ``pg_host``/``pg_port``/``pg_user``/``pg_database``) is used,
with every value shell-quoted, so a printed command never holds a placeholder.

Thresholds map a severity to the value at which it starts. ``direction`` says
whether larger (``above``, the default) or smaller (``below``) values are worse.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.agentops.runbooks.plugins.module_utils import (rules_containers, rules_coordination, rules_endpoints, rules_k8s, rules_node,
                                                                        rules_services, rules_spawn)

DOCS_PAGE = "docs/Production-Debugging-Playbooks.md"

CATEGORIES = {
    "host": "Host resources",
    "proc": "Processes",
    "pg": "PostgreSQL connections and locks",
    "log": "Log signatures",
    "diagnose": "The diagnosis itself",
}


def _remediate_postgres(options):
    """The remediate_postgres command with ``options``, most specific first: where the host's PostgreSQL is
    (filled from the inventory; never a password), then without the user, then the options alone."""
    where = "--limit {host} -e agentops_pg_host={pg_host} -e agentops_pg_port={pg_port} -e agentops_pg_database={pg_database}"
    return ["ansible-playbook agentops.runbooks.remediate_postgres %s -e agentops_pg_user={pg_user} %s" % (where, options),
            "ansible-playbook agentops.runbooks.remediate_postgres %s %s" % (where, options),
            "ansible-playbook agentops.runbooks.remediate_postgres %s" % options]


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
            "command": "for p in /proc/[0-9]*; do echo \"$(ls $p/fd 2>/dev/null | wc -l) ${{p#/proc/}}\"; done | sort -n | tail -n 10",
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
            "command": "uptime; last -x reboot shutdown 2>/dev/null | head -n 5",
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
            "summary": ("Ask the parent to reap (SIGCHLD, what the playbook does first); if zombies remain, restart the "
                        "parent service (process_reaper_services). Dry run first, then -e process_reaper_dry_run=false."),
            "command": "ansible-playbook agentops.runbooks.reap_processes -e process_reaper_orphans=false",
            "playbook": "agentops.runbooks.reap_processes",
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
            "summary": ("Check what they are doing (ps -o pid,etimes,rss,args -p {pids}), then end them: SIGTERM, SIGKILL "
                        "after a grace period. Dry run first, then -e process_reaper_dry_run=false."),
            "command": "ansible-playbook agentops.runbooks.reap_processes -e process_reaper_zombies=false -e process_reaper_min_age=0",
            "playbook": "agentops.runbooks.reap_processes",
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
    "proc.memory_leak": {
        "category": "proc",
        "title": "Agent process memory keeps growing",
        "symptom": ("PID {pid} ({name}) grew {slope_mb_per_min} MB/min over {window_seconds} s ({first_mb} -> {last_mb} MB RSS, "
                    "{samples} samples, fit R^2 {r_squared}){projection_note}."),
        "diagnosis": (
            "Sustained RSS growth (most steps rising, a straight line fitting the samples) in a process past its warm-up "
            "(agentops_leak_min_age): in Node services usually a heap leak "
            "(caches without bounds, listeners added per request, closures kept by timers) or native memory "
            "(buffers, child process pipes). V8 ends with 'FATAL ERROR: Reached heap limit Allocation failed - "
            "JavaScript heap out of memory' at --max-old-space-size; the kernel OOM killer acts first when a "
            "cgroup limit is lower."
        ),
        "fix": {
            "summary": ("Capture evidence (status, smaps_rollup, a heap snapshot if the process runs with "
                        "--heapsnapshot-signal), then restart it in a quiet window."),
            "command": ("ansible-playbook agentops.runbooks.reap_processes -e process_reaper_zombies=false "
                        "-e process_reaper_orphans=false -e process_reaper_leak_response=true"),
            "playbook": "agentops.runbooks.reap_processes",
        },
        # What makes growth a leak (plugins/module_utils/memory.py judge): at least min_samples samples, at least
        # min_rising of the steps rising, a least-squares fit with R^2 >= min_r_squared, and growth of at least
        # min_growth_mb and min_growth_percent of the first RSS. Confidence = R^2 x min(1, samples /
        # full_confidence_samples) x min(1, 1/2 + 1/2 x window / full_confidence_seconds).
        "fit": {"min_samples": 4, "min_rising": 0.66, "min_r_squared": 0.8, "min_growth_mb": 2.0,
                "min_growth_percent": 1.0, "full_confidence_samples": 12, "full_confidence_seconds": 60.0},
        # A leak projected to reach its limit within this many minutes is critical whatever its slope.
        "floors": [{"name": "critical_within_minutes", "when": "minutes_to_limit", "below": 15, "severity": "critical",
                    "because": "limit within {limit:g} min"}],
        "thresholds": {"medium": 5.0, "high": 30.0, "critical": 120.0},
    },
    "proc.oom_kill": {
        "category": "proc",
        "title": "The kernel OOM killer ended processes",
        "symptom": "{count} OOM kill(s) in the kernel log since boot; the last: pid {pid} ({comm}){memcg_note}, {when}.",
        "diagnosis": (
            "'Out of memory: Killed process' (the whole host ran out) or 'Memory cgroup out of memory' (a container "
            "or service hit its memory limit). In a container that shows as OOMKilled / exit 137, and any process "
            "of the container can be the victim, a spawned CLI as well as the service."
        ),
        "fix": {
            "summary": "Find what grew before the kill (the report's top RSS and leak findings) and size the limit to the real peak.",
            "command": "(dmesg -T 2>/dev/null || journalctl -k --no-pager 2>/dev/null) | grep -iE 'killed process|oom-kill' | tail -n 20",
            "playbook": None,
        },
        "thresholds": {},
        "severity": "high",
    },
    "proc.cgroup_memory": {
        "category": "proc",
        "title": "A service's cgroup is near its memory limit",
        "symptom": "cgroup {cgroup} uses {used_percent}% of its memory limit ({current_mb} of {max_mb} MB); {oom_kill} OOM kill(s) so far.",
        "diagnosis": (
            "At the limit the kernel reclaims the cgroup's page cache, then kills its largest process. Usage "
            "includes page cache, so a high share alone is not a leak; OOM kills are."
        ),
        "fix": {
            "summary": "Compare with the processes' RSS; raise the limit only if the peak is legitimate.",
            "command": "cat /sys/fs/cgroup{cgroup}/memory.events /sys/fs/cgroup{cgroup}/memory.stat 2>/dev/null | head -n 30",
            "playbook": None,
        },
        "thresholds": {"high": 90.0, "critical": 97.0},
        "floors": [{"name": "when_oom_killed", "when": "oom_kill", "severity": "high",
                    "because": "the kernel has already killed processes of this cgroup"}],
    },
    "proc.pids_limit": {
        "category": "proc",
        "title": "A cgroup is near its task limit",
        "symptom": "cgroup {cgroup} has {current} tasks of pids.max {max} ({used_percent}%).",
        "diagnosis": (
            "At pids.max fork() and clone() fail with EAGAIN: the service cannot spawn CLI children or threads, and "
            "the kernel logs 'cgroup: fork rejected by pids controller'. Leaked children and zombies count."
        ),
        "fix": {
            "summary": "Reap zombies and orphaned children of the service; raise TasksMax only after that.",
            "command": "ps -eo pid,ppid,stat,comm --sort=ppid | awk '$3 ~ /Z/ || $2 == 1'",
            "playbook": None,
        },
        "thresholds": {"high": 80.0, "critical": 95.0},
    },
    "proc.deleted_open_files": {
        "category": "proc",
        "title": "Deleted files still held open",
        "symptom": "{count} deleted file(s) held open hold {total_mb} MB; the most by pid {pid} ({name}): {pid_mb} MB.",
        "diagnosis": (
            "A file deleted (rotated log, temp file) while a process keeps it open still occupies disk until the "
            "process closes it: df shows the space used, du cannot find it, and writes fail with ENOSPC."
        ),
        "fix": {
            "summary": "Make the process reopen its logs (its reload signal) or restart it; truncating the fd frees the space at once.",
            "command": "ls -l /proc/{pid}/fd | grep '(deleted)' | head -n 20",
            "playbook": None,
        },
        "thresholds": {"medium": 100.0, "high": 1024.0},
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
    # -------------------------------------------------------------------- pg
    "pg.saturation": {
        "category": "pg",
        "title": "Connection slots nearly exhausted",
        "symptom": ("{in_use} of {usable} usable connection slots in use ({used_percent}%): max_connections "
                    "{max_connections}, {superuser_reserved_connections} reserved for superusers."),
        "diagnosis": (
            "Once the usable slots are gone, new clients get 'FATAL: sorry, too many clients already' "
            "(SQLSTATE 53300) or 'remaining connection slots are reserved ...': requests fail while the "
            "database itself is healthy. Usually one application's pool holds most slots (see pg.pool_hog); "
            "raising max_connections only hides a leak and costs memory per backend."
        ),
        "fix": {
            "summary": "Free idle and idle-in-transaction sessions of the hogging application (dry run first), then fix its pool size.",
            "command": _remediate_postgres("-e pg_connections_terminate_idle_in_transaction_after=300"),
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {"medium": 80.0, "high": 90.0, "critical": 95.0},
    },
    "pg.pool_hog": {
        "category": "pg",
        "title": "One application holds most connections",
        "symptom": ("Application '{application}' holds {count} of {usable} usable slots ({share}%); {idle} idle, "
                    "{idle_in_transaction} idle in transaction, from {clients} client address(es)."),
        "diagnosis": (
            "A pool that keeps growing or never releases connections: with node-postgres, pg.Pool defaults to "
            "max 10 per process and connectionTimeoutMillis 0 (callers wait forever when it is exhausted); a "
            "client that is not release()d leaks a slot. Budget: replicas x processes x pool max must stay at or "
            "below {usable} usable slots minus headroom for other applications and maintenance."
        ),
        "fix": {
            "summary": "Cap the application's idle sessions (oldest first), then lower its pool max or fix the missing release().",
            "command": _remediate_postgres("-e {idle_caps}"),
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {"medium": 50.0, "high": 75.0},
    },
    "pg.idle_in_transaction": {
        "category": "pg",
        "title": "Sessions idle in transaction",
        "symptom": ("{count} session(s) idle in transaction; the oldest, pid {oldest_pid} ({oldest_application}), "
                    "for {oldest_seconds} s{blocking_note}."),
        "diagnosis": (
            "A transaction was opened and the client stopped talking (an awaited call between queries, an "
            "exception path that skips COMMIT/ROLLBACK, a debugger). The session keeps its slot, its locks and "
            "its snapshot: it blocks writers and vacuum. Age is measured from state_change."
        ),
        "fix": {
            "summary": "Terminate the oldest ones (dry run first) and set idle_in_transaction_session_timeout for the role.",
            "command": _remediate_postgres("-e pg_connections_terminate_idle_in_transaction_after={oldest_seconds}"),
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {"medium": 60, "high": 300, "critical": 1800},
        "floors": [{"name": "when_blocking", "when": "blocking_pids", "severity": "high",
                    "because": "it holds locks other sessions wait for"}],
    },
    "pg.lock_chain": {
        "category": "pg",
        "title": "Sessions waiting on a lock chain",
        "symptom": ("pid {root_pid} ({root_application}, {root_state}) blocks {blocked} session(s); the longest "
                    "has waited {max_wait_seconds} s."),
        "diagnosis": (
            "Writers queue behind the root blocker's locks; every new request touching those rows or tables joins "
            "the queue and the pool drains. A root blocker that is idle in transaction is a client bug; an active "
            "one is a long statement (migration, bulk update) holding locks."
        ),
        "fix": {
            "summary": "Terminate the root blocker (dry run first); its transaction rolls back and the chain drains.",
            "command": _remediate_postgres("-e pg_connections_terminate_blockers_after={max_wait_seconds}"),
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {"medium": 5, "high": 30, "critical": 300},
    },
    "pg.long_query": {
        "category": "pg",
        "title": "Long-running queries",
        "symptom": "{count} active quer(ies) running for at least {threshold} s; the longest, pid {pid} ({application}), for {longest_seconds} s.",
        "diagnosis": (
            "A runaway query holds a slot, CPU, I/O and locks, and its snapshot stops vacuum. Without a "
            "statement_timeout nothing ends it."
        ),
        "fix": {
            "summary": "Cancel it (the session survives), terminate only if cancel does not help; then set statement_timeout.",
            "command": _remediate_postgres("-e pg_connections_cancel_active_after={threshold}"),
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {"medium": 60, "high": 300, "critical": 1800},
    },
    "pg.deadlocks": {
        "category": "pg",
        "title": "Deadlocks recorded",
        "symptom": "{deadlocks} deadlock(s) in database {database} since statistics were reset ({stats_reset}).",
        "diagnosis": (
            "PostgreSQL aborts one transaction of each deadlock with 'ERROR: deadlock detected' (40P01) after "
            "deadlock_timeout. Transactions that lock the same rows in different orders; the server log's DETAIL "
            "lines name both processes and the lock."
        ),
        "fix": {
            "summary": "Find the statements in the server log and make transactions lock rows in one order (ORDER BY id FOR UPDATE).",
            "command": "grep -A3 'deadlock detected' /var/log/postgresql/*.log | tail -n 40",
            "playbook": None,
        },
        "thresholds": {"low": 1, "medium": 10, "high": 100},
    },
    "pg.missing_timeouts": {
        "category": "pg",
        "title": "No safety timeout for idle transactions",
        "symptom": "idle_in_transaction_session_timeout is 0 (off); statement_timeout is {statement_timeout}, lock_timeout {lock_timeout}.",
        "diagnosis": (
            "Nothing ends a session that opens a transaction and goes quiet, so one client bug can hold locks "
            "and slots for hours. Set it per application role rather than globally (idle_session_timeout is "
            "best avoided behind poolers)."
        ),
        "fix": {
            "summary": "Set idle_in_transaction_session_timeout for the application roles.",
            "command": _remediate_postgres("-e {role_timeouts}"),
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {},
    },
    "pg.unreachable": {
        "category": "pg",
        "title": "PostgreSQL cannot be reached",
        "symptom": "Cannot connect to PostgreSQL at {target} ({kind}): {error}",
        "diagnosis": (
            "refused: nothing listens there (server down, wrong port, not listening on that address); auth: "
            "wrong password or no pg_hba.conf entry; timeout: a firewall or an overloaded host; dns: the name "
            "does not resolve; shutting_down: the server is stopping, starting or recovering."
        ),
        "fix": {
            "summary": "Check the server's state and log on the database host.",
            "command": ["pg_isready -h {host} -p {port}; ss -ltnp {port_filter}", "pg_isready -h {host} -p {port}; ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "pg.too_many_clients": {
        "category": "pg",
        "title": "PostgreSQL refuses new connections: slots exhausted",
        "symptom": "Connecting to {target} as {user} failed: {error}",
        "diagnosis": (
            "Every connection slot available to this role is taken ('sorry, too many clients already', SQLSTATE "
            "53300), or only the slots reserved for superusers (or pg_use_reserved_connections on 16+) are left. "
            "Clients fail to connect, node-postgres pools wait forever (connectionTimeoutMillis 0) or throw "
            "'timeout exceeded when trying to connect'."
        ),
        "fix": {
            "summary": "Audit through a reserved superuser slot, then terminate idle sessions of the hogging application (dry run first).",
            "command": "ansible-playbook agentops.runbooks.diagnose -e agentops_pg_user=postgres",
            "playbook": "agentops.runbooks.remediate_postgres",
        },
        "thresholds": {},
    },
    "pg.limited_privileges": {
        "category": "pg",
        "title": "Other roles' sessions are hidden from the audit",
        "symptom": "{hidden} of {sessions} sessions are hidden from role {user} (no pg_monitor / pg_read_all_stats).",
        "diagnosis": (
            "Without pg_read_all_stats the state and query of other roles' sessions read as NULL / "
            "'<insufficient privilege>': idle-in-transaction sessions, long queries and lock chains among "
            "them are unknown, not absent."
        ),
        "fix": {
            "summary": "Audit as a role with pg_monitor.",
            "command": [
                "echo 'GRANT pg_monitor TO :\"role\";' | psql -h {pg_host} -p {pg_port} -d {pg_database} -U postgres -v role={user}",
                "echo 'GRANT pg_monitor TO :\"role\";' | psql -U postgres -v role={user}",
            ],
            "playbook": None,
        },
        "thresholds": {},
    },
    "pg.check_incomplete": {
        "category": "pg",
        "title": "The PostgreSQL audit query failed",
        "symptom": "The audit query failed on {target}: {error}",
        "diagnosis": "Connected, but the audit statement failed (a server older than 12, a statement timeout, or a missing privilege).",
        "fix": {
            "summary": "Run the audit by hand with -vvv to see the server's error.",
            "command": "ansible-playbook agentops.runbooks.diagnose -e agentops_checks=[pg] -vvv",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
    # -------------------------------------------------------------------- log
    # A signature rule is one table: "signature" (the regex searched in warn, error and fatal entries and in entries of
    # no known level: message, metadata and first stack line), "hints" (literals of its matches; the rule is tried only
    # when one occurs in the entry, so no hint may hold ':' or a line break) and "examples" (real lines it must match).
    # plugins/module_utils/logscan.py derives its SIGNATURES, RULE_HINTS and HINTS from them.
    'log.spawn_einval': {
        "category": "log",
        "title": 'spawn EINVAL: the spawn call itself was refused',
        "signature": r'spawn(?:Sync)?\s+(?P<cmd>\S+)?\s*EINVAL|spawn EINVAL',
        "hints": ('EINVAL',),
        "examples": (
            'Error: spawn EINVAL',
            'Error: spawnSync npm.cmd EINVAL',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'Two causes. On Windows, Node 18.20.2 / 20.12.2 / 21.7.3 and later refuse to spawn .bat/.cmd files (npm.cmd, npx.cmd) '
            'without shell: true (CVE-2024-27980): spawn with shell: true and quoted arguments, or through cmd.exe /d /s /c; never '
            'downgrade Node. On Linux the kernel refuses the spawn options: typically a uid/gid the process\'s user namespace does '
            'not map (a container started with userns remapping, or spawn() uid/gid options with ids that do not exist there). The spawn '
            'family says which cause applies on this host (the report\'s "now:").'
        ),
        "fix": {
            "summary": 'Windows: change the spawn call (shell: true with quoted args, or cmd.exe /d /s /c). Linux: fix the uid/gid options '
                       'or the user namespace mapping.',
            "command": "grep -rn --include='*.js' --include='*.ts' 'spawn(' . 2>/dev/null | grep -iE '[.]cmd|[.]bat|npx|npm' | head -n 20",
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.spawn_enoent': {
        "category": "log",
        "title": 'spawn ENOENT: the CLI the agent runs is not found',
        "signature": r'spawn(?:Sync)? (?P<cmd>\S+) ENOENT',
        "hints": ('ENOENT',),
        "examples": (
            'Error: spawn claude ENOENT',
            'Error: spawnSync /usr/local/bin/claude ENOENT',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'The command is not on the PATH the child sees (when env is passed, its PATH is used; without PATH Unix falls back to '
            "/usr/bin:/bin), or the cwd does not exist, or a shebang interpreter is missing (CRLF shebangs read as 'node\\r')."
        ),
        "fix": {
            "summary": "Resolve the command on the service's own PATH (/proc/PID/environ) and check the cwd; pass an absolute path or a full env.",
            "command": [
                "tr '\\0' '\\n' < /proc/{pid}/environ | grep ^PATH=; ls -l /proc/{pid}/cwd",
                "ps -eo pid,user,args | grep -E '[n]ode|[c]laude|[n]px' | head -n 10",
            ],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.spawn_eacces': {
        "category": "log",
        "title": 'spawn EACCES: the CLI cannot be executed',
        "signature": r'spawn(?:Sync)? (?P<cmd>\S+) EACCES',
        "hints": ('EACCES',),
        "examples": (
            'Error: spawn /opt/tools/claude EACCES',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'No execute bit, a directory on the way that is not searchable, or a noexec mount (often /tmp). Never remount /tmp exec as a fix.'
        ),
        "fix": {
            "summary": "Check the mode of the file and every parent directory, and the mount's options.",
            "command": ["namei -l {command_path} || true; findmnt -T {command_path} -o TARGET,OPTIONS || true",
                        "findmnt -o TARGET,OPTIONS | grep noexec || echo no noexec mount"],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.spawn_e2big': {
        "category": "log",
        "title": 'spawn E2BIG: arguments too long',
        "signature": r'spawn(?:Sync)?(?: \S+)? E2BIG|Argument list too long',
        "hints": ('E2BIG', 'Argument list'),
        "examples": (
            'Error: spawn E2BIG',
            '/bin/sh: 1: claude: Argument list too long',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'One argument over 128 KiB (MAX_ARG_STRLEN) or argv plus environment over about a quarter of RLIMIT_STACK: typically a whole '
            'prompt passed as an argument.'
        ),
        "fix": {
            "summary": 'Pass prompts through stdin or a file instead of argv.',
            "command": 'getconf ARG_MAX; ulimit -s',
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.fetch_undefined': {
        "category": "log",
        "title": 'fetch is not defined: Node too old or fetch disabled',
        "signature": r'fetch is not defined',
        "hints": ('fetch is not',),
        "examples": (
            'ReferenceError: fetch is not defined',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "Global fetch is unflagged from Node 18.0.0 (stable in 21); 'ReferenceError: fetch is not defined' means an older Node, or "
            '--no-experimental-fetch.'
        ),
        "fix": {
            "summary": 'Check which node binary the service really runs and its flags.',
            "command": [
                "readlink /proc/{pid}/exe; tr '\\0' ' ' < /proc/{pid}/cmdline; echo",
                "ps -eo pid,args | grep -E '[n]ode' | head -n 10; node --version 2>&1 || true",
            ],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.websocket_undefined': {
        "category": "log",
        "title": 'WebSocket is not defined: Node older than 22',
        "signature": r'WebSocket is not defined',
        "hints": ('WebSocket is not',),
        "examples": (
            'ReferenceError: WebSocket is not defined',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'The global WebSocket is on by default from Node 22.0.0 (stable 22.4.0): an older runtime (or --no-experimental-websocket) cannot '
            'use it; use the ws package or upgrade.'
        ),
        "fix": {
            "summary": "Check the runtime version the service runs; a '(deleted)' exe means it still runs an old binary.",
            "command": [
                "readlink /proc/{pid}/exe; \"$(readlink /proc/{pid}/exe | sed 's/ (deleted)$//')\" --version",
                "node --version 2>&1 || true",
            ],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.econnrefused': {
        "category": "log",
        "title": 'Connections refused',
        "signature": r'ECONNREFUSED(?:\s+(?P<host>[\w.:\[\]-]+?):(?P<port>\d+))?',
        "hints": ('ECONNREFUSED',),
        "examples": (
            'connect ECONNREFUSED 127.0.0.1:5432',
            'Error: connect ECONNREFUSED ::1:6379',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example} Ports: {ports}.',
        "diagnosis": (
            'Nothing listens on that address and port: the dependency is down, restarting, on another port, or only on another interface. '
            '{likely_services}'
        ),
        "fix": {
            "summary": 'Check the dependency named by the port and whether it listens.',
            "command": ["ss -ltnp {port_filter}", "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 10},
    },
    'log.pg_connections': {
        "category": "log",
        "title": 'PostgreSQL refused connections: slots exhausted',
        "signature": r'sorry, too many clients already|remaining connection slots are reserved',
        "hints": ('too many clients', 'connection slots'),
        "examples": (
            'error: sorry, too many clients already',
            'FATAL:  remaining connection slots are reserved for non-replication superuser connections',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "'sorry, too many clients already' or 'remaining connection slots are reserved ...' in the application's log: the database ran "
            'out of connection slots (see the pg.* findings for who holds them).'
        ),
        "fix": {
            "summary": "Audit the server (diagnose with agentops_pg_host) and free the hogging pool's idle sessions.",
            "command": [
                "ansible-playbook agentops.runbooks.diagnose --limit {host} -e agentops_pg_host={pg_host} -e agentops_pg_port={pg_port}",
                "ansible-playbook agentops.runbooks.diagnose --limit {host} -e agentops_pg_host=/var/run/postgresql",
            ],
            "playbook": 'agentops.runbooks.remediate_postgres',
        },
        "thresholds": {'critical': 1},
    },
    'log.pg_deadlock': {
        "category": "log",
        "title": 'PostgreSQL deadlocks',
        "signature": r'deadlock detected',
        "hints": ('deadlock',),
        "examples": (
            'error: deadlock detected',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "'deadlock detected' (40P01): two transactions locked the same rows in different orders; PostgreSQL aborted one."
        ),
        "fix": {
            "summary": "Make the transactions lock rows in one order; the server log's DETAIL lines name both.",
            "command": "grep -A3 'deadlock detected' /var/log/postgresql/*.log | tail -n 40",
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 20},
    },
    'log.v8_heap_oom': {
        "category": "log",
        "title": 'Node ran out of heap',
        "signature": r'Reached heap limit|JavaScript heap out of memory|Ineffective mark-compacts near heap limit',
        "hints": ('heap limit', 'heap out of memory'),
        "examples": (
            'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory',
            'FATAL ERROR: Ineffective mark-compacts near heap limit Allocation failed',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory' (often after 'Ineffective mark-compacts near "
            "heap limit'): the process hit --max-old-space-size and aborted. Usually a leak (see proc.memory_leak) rather than a limit set "
            'too low.'
        ),
        "fix": {
            "summary": (
                'Capture evidence from the growing process and restart it in a quiet window; raise --max-old-space-size only with a measured '
                'peak.'
            ),
            "command": (
                'ansible-playbook agentops.runbooks.reap_processes -e process_reaper_zombies=false -e process_reaper_orphans=false -e '
                'process_reaper_leak_response=true'
            ),
            "playbook": 'agentops.runbooks.reap_processes',
        },
        "thresholds": {'critical': 1},
    },
    'log.llm_rate_limit': {
        "category": "log",
        "title": 'LLM API rate limited or overloaded',
        "signature": (r'(?i)\b(?:429|529)\b.*?(?:rate_limit_error|overloaded_error|Too Many Requests|Overloaded)'
                      r'|rate_limit_error|overloaded_error'),
        "hints": ('429', '529', 'rate_limit', 'overloaded', 'Overloaded'),
        "examples": (
            'Anthropic API 429 rate_limit_error: Number of request tokens has exceeded your per-minute rate limit',
            '529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            'Request failed with status code 529 Overloaded',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example} Retry-after seen: {retry_after}.',
        "diagnosis": (
            "429 rate_limit_error (this key's request or token budget) or 529 overloaded_error (the provider is overloaded). Clients must "
            'honour retry-after; raising concurrency makes it worse.'
        ),
        "fix": {
            "summary": 'Honour retry-after with backoff and full jitter; lower concurrency; never raise it automatically.',
            "command": ["grep -hoE 'anthropic-ratelimit-[a-z-]+: [^ ]+' {file} | sort | uniq -c | tail",
                        "grep -hoE 'anthropic-ratelimit-[a-z-]+: [^ ]+' {files} | sort | uniq -c | tail"],
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 50},
    },
    'log.ws_abnormal_close': {
        "category": "log",
        "title": 'WebSocket connections closed abnormally (1006)',
        "signature": r'(?i)(?:close|closed|code)[^\n]{0,40}?\b1006\b|\b1006\b[^\n]{0,20}(?:abnormal|closed?)',
        "hints": ('1006',),
        "examples": (
            'WebSocket closed: code=1006 reason=',
            'ws close 1006 abnormal closure',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'Close code 1006 is never sent on the wire: the connection dropped without a close frame (an idle timeout on a proxy or load '
            'balancer - nginx proxy_read_timeout and AWS ALB default to 60 s - an RST, or a killed pod). The heartbeat interval must stay '
            'below the smallest idle timeout on the path.'
        ),
        "fix": {
            "summary": "Compare the heartbeat interval with every proxy's idle timeout; reconnect with backoff and jitter.",
            "command": "grep -rn 'proxy_read_timeout\\|idle_timeout' /etc/nginx /etc/haproxy 2>/dev/null | head -n 20",
            "playbook": None,
        },
        "thresholds": {'low': 1, 'medium': 10, 'high': 100},
    },
    'log.network_reset': {
        "category": "log",
        "title": 'Timeouts and reset connections',
        "signature": r'\bETIMEDOUT\b|\bECONNRESET\b|socket hang up|UND_ERR_SOCKET|other side closed',
        "hints": ('ETIMEDOUT', 'ECONNRESET', 'hang up', 'UND_ERR_SOCKET', 'other side closed'),
        "examples": (
            'FetchError: request to https://api.example.com failed, reason: socket hang up',
            'Error: read ECONNRESET',
            'Error: connect ETIMEDOUT 10.0.0.7:443',
            'TypeError: fetch failed (cause: SocketError: other side closed, code UND_ERR_SOCKET)',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "ETIMEDOUT, ECONNRESET, 'socket hang up' or undici's UND_ERR_SOCKET ('other side closed'; its *_TIMEOUT codes are "
            "log.http_timeout): keep-alive sockets reused after the server closed them (the "
            "server's keepAliveTimeout, 5 s by default in Node, must exceed the client's idle timeout), broken dual-stack (Node 20+ tries "
            'IPv6 and IPv4 in parallel), or an overloaded peer.'
        ),
        "fix": {
            "summary": 'Check keep-alive timeouts along the path and whether the peer is overloaded.',
            "command": 'ss -tan state time-wait | wc -l',
            "playbook": None,
        },
        "thresholds": {'low': 1, 'medium': 20, 'high': 200},
    },
    'log.dns_failure': {
        "category": "log",
        "title": 'DNS lookups failing',
        "signature": r'getaddrinfo (?:ENOTFOUND|EAI_AGAIN) (?P<dnshost>[\w.-]+)|\bENOTFOUND\b|\bEAI_AGAIN\b',
        "hints": ('ENOTFOUND', 'EAI_AGAIN'),
        "examples": (
            'getaddrinfo ENOTFOUND api.anthropic.com',
            'Error: getaddrinfo EAI_AGAIN db.internal',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'ENOTFOUND: the name does not exist; EAI_AGAIN: the resolver failed temporarily. In Kubernetes, ndots:5 multiplies queries for '
            'external names: use trailing-dot FQDNs or a lower ndots.'
        ),
        "fix": {
            "summary": 'Resolve the names from the host and check /etc/resolv.conf.',
            "command": ["cat /etc/resolv.conf; getent hosts {dns_host} || echo {dns_host} does not resolve here",
                        "cat /etc/resolv.conf"],
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 10},
    },
    'log.tls_error': {
        "category": "log",
        "title": 'TLS certificate errors',
        "signature": (r'CERT_HAS_EXPIRED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN'
                      r'|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|certificate has expired'
                      r'|unable to verify the first certificate|self[- ]signed certificate'),
        "hints": ('CERT', 'certificate'),
        "examples": (
            'Error: certificate has expired (CERT_HAS_EXPIRED)',
            'Error: unable to verify the first certificate',
            'FetchError: request failed, reason: self-signed certificate in certificate chain (SELF_SIGNED_CERT_IN_CHAIN)',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE (the server omits its intermediate), SELF_SIGNED_CERT_IN_CHAIN, '
            'DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_GET_ISSUER_CERT_LOCALLY. NODE_EXTRA_CA_CERTS is read only at start. Never set '
            'NODE_TLS_REJECT_UNAUTHORIZED=0.'
        ),
        "fix": {
            "summary": "Inspect the chain the peer serves; fix the server's chain or the CA bundle, then restart the client.",
            "command": [
                "openssl s_client -connect {tls_host}:443 -servername {tls_host} -showcerts </dev/null 2>/dev/null"
                " | openssl x509 -noout -dates -issuer -subject || echo no certificate could be read from {tls_host}:443",
                "grep -hE 'CERT_|certificate' {file} | tail -n 5",
                "grep -hE 'CERT_|certificate' {files} | tail -n 5",
            ],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.emfile': {
        "category": "log",
        "title": 'Too many open files (EMFILE)',
        "signature": r'(?i)\bEMFILE\b|too many open files',
        "hints": ('EMFILE', 'open files'),
        "examples": (
            "Error: EMFILE: too many open files, open '/srv/agent/tmp/x'",
            'accept: Too many open files',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            'The process reached its descriptor limit: sockets or files not closed, or a limit set too low (see proc.fd_exhaustion).'
        ),
        "fix": {
            "summary": 'Find what the descriptors are; fix the leak or raise LimitNOFILE.',
            "command": ["ls /proc/{pid}/fd | wc -l; grep 'open files' /proc/{pid}/limits",
                        "cat /proc/sys/fs/file-nr; ulimit -n"],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.enospc': {
        "category": "log",
        "title": 'No space left on device (ENOSPC)',
        "signature": r'\bENOSPC\b|No space left on device|System limit for number of file watchers reached',
        "hints": ('ENOSPC', 'No space', 'file watchers'),
        "examples": (
            'Error: ENOSPC: no space left on device, write',
            'write /var/log/agent.log: No space left on device',
            "Error: System limit for number of file watchers reached, watch '/srv/app'",
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "A filesystem is full, out of inodes, or the inotify watch limit was reached ('System limit for number of file watchers reached': "
            'fs.inotify.max_user_watches). Deleted files held open keep their space.'
        ),
        "fix": {
            "summary": 'Check disk, inodes and deleted-but-open files (host.disk_*, proc.deleted_open_files).',
            "command": 'df -h; df -i; cat /proc/sys/fs/inotify/max_user_watches',
            "playbook": None,
        },
        "thresholds": {'critical': 1},
    },
    'log.http_timeout': {
        "category": "log",
        "title": 'HTTP requests timing out (fetch, undici, axios)',
        "signature": (r'The operation was aborted due to timeout|UND_ERR_(?:CONNECT|HEADERS|BODY)_TIMEOUT'
                      r'|(?:Connect|Headers|Body) Timeout Error|\bECONNABORTED\b|timeout of \d+ ?ms exceeded'),
        "hints": ('aborted due to timeout', 'UND_ERR_', 'Timeout Error', 'ECONNABORTED', 'timeout of'),
        "examples": (
            'TimeoutError: The operation was aborted due to timeout',
            'AbortError: The operation was aborted due to timeout',
            'TypeError: fetch failed (cause: HeadersTimeoutError: Headers Timeout Error, code UND_ERR_HEADERS_TIMEOUT)',
            'ConnectTimeoutError: Connect Timeout Error (attempted address: api.anthropic.com:443, timeout: 10000ms)',
            'AxiosError: timeout of 30000ms exceeded code=ECONNABORTED',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "A client gave up waiting: fetch with AbortSignal.timeout() rejects with 'TimeoutError: The operation was aborted due to "
            "timeout'; undici (behind fetch) fails with UND_ERR_CONNECT_TIMEOUT (connect, 10 s by default), UND_ERR_HEADERS_TIMEOUT or "
            "UND_ERR_BODY_TIMEOUT (300 s each); axios with ECONNABORTED 'timeout of N ms exceeded'. The peer is slow or overloaded, the "
            "path drops packets, or the timeout is shorter than the work (a long LLM completion). Connection resets are log.network_reset."
        ),
        "fix": {
            "summary": "Find which peer is slow (connect or response), compare the client's timeout with the peer's real latency; retry with backoff.",
            "command": ["grep -hoE 'UND_ERR_[A-Z_]+|aborted due to timeout|timeout of [0-9]+ ?ms exceeded|ECONNABORTED' {file} | sort | uniq -c",
                        "ss -tn state syn-sent | head -n 20; ss -s"],
            "playbook": None,
        },
        "thresholds": {'low': 1, 'medium': 20, 'high': 200},
    },
    'log.task_timeout': {
        "category": "log",
        "title": 'Agent tasks timing out',
        "signature": r'\b[Tt]imed out after \d+(?:\.\d+)? ?(?:ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)\b',
        "hints": ('timed out after', 'Timed out after'),
        "examples": (
            'task code-review timed out after 300000 ms',
            'TimeoutError: Promise timed out after 60000 milliseconds',
            'claude run Timed out after 120s',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "'timed out after N ms' from the agent's own task or promise timeouts (p-timeout, a CLI run, a tool call): the work took "
            "longer than its budget - a hung CLI child, an upstream call that never answers, or a budget set below the real duration. "
            "Repeated timeouts of the same task usually mean a stuck dependency, not a slow one."
        ),
        "fix": {
            "summary": "See which tasks time out and after how long; look for hung CLI children (proc.* findings) before raising the budget.",
            "command": ["grep -hE '[Tt]imed out after' {file} | tail -n 20",
                        "ps -eo pid,ppid,etimes,stat,args --sort=-etimes | grep -E '[c]laude|[n]ode' | head -n 20"],
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 20},
    },
    'log.spawn_eagain': {
        "category": "log",
        "title": 'spawn EAGAIN: no more processes (pids limit)',
        "signature": (r'spawn(?:Sync)?(?: (?P<cmd>\S+))? EAGAIN|fork rejected by pids controller'
                      r'|fork: (?:retry: )?Resource temporarily unavailable'),
        "hints": ('EAGAIN', 'fork rejected', 'Resource temporarily'),
        "examples": (
            'Error: spawn claude EAGAIN',
            'cgroup: fork rejected by pids controller in /system.slice/agent.service',
            'bash: fork: retry: Resource temporarily unavailable',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "fork and spawn return EAGAIN when the service's cgroup reached pids.max (the kernel logs 'cgroup: fork rejected by pids "
            "controller in <cgroup>'), or RLIMIT_NPROC / kernel.threads-max: every new CLI child fails. Usually leaked children, "
            "zombies or threads (see proc.pids_limit, proc.zombie) rather than a limit set too low."
        ),
        "fix": {
            "summary": "Compare the cgroup's pids.current with pids.max and find who holds the tasks before raising TasksMax.",
            "command": ["d=/sys/fs/cgroup$(awk -F: '$1 == 0 {{print $3}}' /proc/{pid}/cgroup); "
                        "cat \"$d/pids.current\" \"$d/pids.max\" 2>/dev/null || echo \"no pids controller at $d\"; "
                        "grep 'Max processes' /proc/{pid}/limits",
                        "cat /proc/sys/kernel/pid_max /proc/sys/kernel/threads-max; ps -eLf --no-headers | wc -l"],
            "playbook": None,
        },
        "thresholds": {'high': 1},
    },
    'log.coordination_failed': {
        "category": "log",
        "title": 'Agent coordination failing',
        "signature": r'\b(?:[Cc]oordination[_ ]failed|CoordinationFailed\w*|COORDINATION_FAILED)\b',
        "hints": ('oordination failed', 'oordination_failed', 'CoordinationFailed', 'COORDINATION_FAILED'),
        "examples": (
            'coordination_failed: no agent accepted task t-4711 after 3 attempts',
            'Error: Coordination failed for conversation conv-9 (leader lost)',
            'CoordinationFailedError: quorum not reached (2/5 agents)',
            '{"level":50,"code":"COORDINATION_FAILED","msg":"plan could not be distributed"}',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "The coordinator could not hand out or gather work: the bus it uses (Redis, RabbitMQ, the database) is down or "
            "slow, no agent answered in time, or the agents disagree on the plan. The coordination findings (queues, "
            "heartbeats, stuck tasks) say which: all heartbeats stale points at the bus, some at those agents."
        ),
        "fix": {
            "summary": "Check the coordination findings of the same hosts first (queues, heartbeats, stuck tasks), then the bus itself.",
            "command": ["grep -hE '[Cc]oordination[_ ]failed|CoordinationFailed|COORDINATION_FAILED' {file} | tail -n 20",
                        "ss -tn '( dport = :6379 or dport = :5672 or dport = :5432 )' | head -n 20"],
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 20},
    },
    'log.assignment_timeout': {
        "category": "log",
        "title": 'Task assignments timing out',
        "signature": r'\b(?:[Aa]ssignment (?:timed out|timeout)|ASSIGNMENT_TIMEOUT|AssignmentTimeout\w*|assignment_timeout)\b',
        "hints": ('ssignment timed out', 'ssignment timeout', 'ASSIGNMENT_TIMEOUT', 'AssignmentTimeout', 'assignment_timeout'),
        "examples": (
            'task t-4711 assignment timed out: no agent claimed it',
            'Assignment timeout for task t-12 (agent code-review did not ack within 30s)',
            'AssignmentTimeoutError: task t-88 was not accepted',
            'error code=ASSIGNMENT_TIMEOUT task=t-9',
            'scheduler: assignment_timeout task=t-31 agent=agent-b',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "A task was offered to an agent (or put on its queue) and nobody claimed or acknowledged it in time: the "
            "agents are busy on stuck tasks, down, or consume another queue; or the claim reached them but the "
            "acknowledgement was lost on the way back (a broken connection to the bus)."
        ),
        "fix": {
            "summary": "Look at the agents' queues and heartbeats (coordination findings) and at tasks stuck in a running state.",
            "command": ["grep -hE '[Aa]ssignment (timed out|timeout)|ASSIGNMENT_TIMEOUT|AssignmentTimeout|assignment_timeout' {file} | tail -n 20",
                        "ps -eo pid,ppid,etimes,stat,args --sort=-etimes | grep -E '[c]laude|[n]ode' | head -n 20"],
            "playbook": None,
        },
        "thresholds": {'low': 1, 'medium': 10, 'high': 100},
    },
    'log.agent_not_responding': {
        "category": "log",
        "title": 'Agents not responding',
        "signature": r'\b[Aa]gent\b[^\n]{0,60}?\bnot responding\b|\b(?:AGENT_NOT_RESPONDING|agent_not_responding|AgentNotResponding\w*)\b',
        "hints": ('not responding', 'AGENT_NOT_RESPONDING', 'agent_not_responding', 'AgentNotResponding'),
        "examples": (
            'agent not responding; agent-b missed 3 heartbeats',
            'Agent code-review (pid 4242) is not responding, reassigning task t-17',
            'AgentNotRespondingError: agent-c did not answer the ping',
            '{"level":40,"event":"agent_not_responding","agent":"agent-b"}',
            'code=AGENT_NOT_RESPONDING agent=agent-c',
        ),
        "symptom": '{count} log entr(ies) since {first_seen} (last {last_seen}) in {components}: {example}',
        "diagnosis": (
            "The coordinator gave up on an agent: missed heartbeats or an unanswered ping. The agent is down, hung (a "
            "blocked event loop, a CLI child that never exits) or cut off from the bus. Many agents at once points at "
            "the bus or the coordinator, not the agents."
        ),
        "fix": {
            "summary": "Check the named agents' processes (state, CPU, children) and their last log lines; compare with the heartbeat findings.",
            "command": ["grep -hE '[Aa]gent.{{0,60}}not responding|AGENT_NOT_RESPONDING|agent_not_responding|AgentNotResponding' {file} | tail -n 20",
                        "ps -eo pid,ppid,etimes,stat,pcpu,args --sort=-etimes | grep -E '[c]laude|[n]ode' | head -n 20"],
            "playbook": None,
        },
        "thresholds": {'medium': 1, 'high': 10},
    },
    "log.error_rate": {
        "category": "log",
        "title": "Share of errors in the logs",
        "symptom": ("{recent_error_percent}% of {recent_entries} log entries between {first_seen} and {last_seen} were errors "
                    "({overall_error_percent}% over the whole scan); worst: {worst_components}. Affected: {affected_users} user(s), "
                    "{affected_conversations} conversation(s) with errors."),
        "diagnosis": (
            "The error share of the most recent window (agentops_recent_window, default 15 minutes, ending at the newest "
            "entry) is what users feel now. 50% or more is an outage of that service for half its requests (SEV-2 or "
            "worse); from 95% the service is down (SEV-1); a few percent of intermittent errors is SEV-3. The top "
            "signatures and the other log findings of this host say which errors they are."
        ),
        "fix": {
            "summary": "Look at the newest errors of the worst component and act on the finding that explains them.",
            "command": ["grep -hE '\\[(ERROR|FATAL)\\]|\"level\":(50|60)|\"level\":\"(error|fatal)\"' {file} | tail -n 20",
                        "journalctl -p err -n 20 --no-pager 2>/dev/null || true"],
            "playbook": None,
        },
        # Percent of the recent window's entries that are errors; judged only with at least min_entries entries.
        "thresholds": {"medium": 5.0, "high": 20.0, "critical": 50.0},
        "min_entries": 20,
        # An error share at or above this in the recent window means the service is down: SEV-1 whatever the fleet size.
        "outage_percent": 95.0,
    },
    "log.error_spike": {
        "category": "log",
        "title": "Errors spiked in the most recent window",
        "symptom": ("The error rate of the last window ({recent_error_percent}% of {recent_entries} entries, to {last_seen}) is "
                    "{ratio}x the earlier baseline of the same scan ({baseline_error_percent}% of {baseline_entries} entries)."),
        "diagnosis": (
            "Something changed: a deploy, a dependency failing, a rate limit or a saturated pool. Compare the start of the "
            "spike ({first_seen}) with deploys, restarts and the first occurrence of each signature in this report."
        ),
        "fix": {
            "summary": "Line up the spike's start with recent deploys and restarts; roll back a deploy that coincides.",
            "command": ["ls -lt --time-style=full-iso {file} | head -n 3; uptime", "uptime"],
            "playbook": "agentops.runbooks.rollback",
        },
        # Recent error rate divided by the baseline's (judged with at least min_entries entries on each side and a
        # recent rate of at least min_recent_percent).
        "thresholds": {"medium": 3.0, "high": 10.0},
        "min_entries": 20,
        "min_recent_percent": 5.0,
    },
    'log.check_incomplete': {
        "category": "log",
        "title": 'A log could not be read',
        "symptom": 'Could not read {what}: {error}',
        "diagnosis": (
            'That log was not analysed, so its signatures are unknown, not absent.'
        ),
        "fix": {
            "summary": "Check the path and the connecting user's permission (become).",
            "command": "ls -ld {what} 2>&1; id",
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


def _merge(parts):
    """Add each family's part of the catalog (its category and rules) to CATEGORIES and RULES; an id defined twice
    or outside its part's category is a programming error, raised at import (a test imports this file)."""
    for part in parts:
        category, title = part.CATEGORY
        CATEGORIES[category] = title
        for rule_id, rule in part.RULES.items():
            if rule_id in RULES or rule.get("category") != category:
                raise ValueError("rule %s is defined twice or outside its category %s" % (rule_id, category))
            RULES[rule_id] = rule


_merge((rules_node, rules_spawn, rules_services, rules_endpoints, rules_containers, rules_k8s, rules_coordination))


def anchor(rule_id):
    """The docs anchor of a rule: ``host.disk_space`` -> ``host-disk_space``."""
    return rule_id.replace(".", "-")


def docs_url(rule_id):
    return "%s#%s" % (DOCS_PAGE, anchor(rule_id))
