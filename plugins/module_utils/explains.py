# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The catalog's "explains" relations, as data: rule A explains rule B under a stated condition.

Kept beside the catalog (``rules.py`` and its ``rules_*.py`` parts) and keyed by the same rule ids, so that adding a
relation never touches a rule's text; a unit test checks that every id named here is in ``rules.RULES``.

``EXPLAINS`` maps a cause's rule id to a list of relations::

    {"effects": ("log.spawn_eagain", ...),   # the rule ids it explains
     "same": ["host"],                        # what cause and effect must share: "host", "port", "application",
                                              # "subject" (the same thing, named alike: "docker agent-api");
                                              # [] = anywhere in the incident
     "window_seconds": 3600,                  # optional: the effect began at most this long after the cause's last sign
     "before": True,                          # optional: the cause's first sign precedes the effect's (60 s slack)
     "because": "one sentence: how the cause produces the effect"}

A time condition holds when either side has no time (a state measured now, like a full disk): only events can
contradict each other's order. What each finding offers for "port" and "application" is read from its evidence by
``plugins/plugin_utils/rootcause.py`` (``keys``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Effects every log-visible failure explains on its own host: the share of errors and its spike.
_ERRORS = ("log.error_rate", "log.error_spike")
# What callers see when a service is not there: refused connections, failed probes, dropped WebSockets.
_CALLERS = ("log.econnrefused", "endpoints.unreachable", "endpoints.http_status", "endpoints.http_failed", "endpoints.http_timeout",
            "log.agent_not_responding", "log.network_reset")
_HOUR = 3600

EXPLAINS = {
    # ------------------------------------------------------------ PostgreSQL saturated by one application
    "pg.pool_hog": [
        {"effects": ("pg.saturation",), "same": ["host"],
         "because": "the connections one application holds are taken from the server's usable slots"},
        {"effects": ("log.pg_connections", "pg.too_many_clients"), "same": ["application"],
         "because": "once that application's pool holds every slot, its own new connections are refused with 'too many clients'"},
        {"effects": ("endpoints.http_status", "endpoints.unreachable", "services.crash_loop", "services.down"), "same": ["application"],
         "because": "an application that cannot get a database connection fails its requests or its start"},
    ],
    "pg.saturation": [
        {"effects": ("pg.too_many_clients", "log.pg_connections"), "same": [],
         "because": "with no usable slot left PostgreSQL refuses every new client with 'sorry, too many clients already'"},
    ],
    "pg.too_many_clients": [
        {"effects": ("log.pg_connections",), "same": [],
         "because": "the server that refused the diagnosis also refuses the applications"},
    ],
    "pg.unreachable": [
        {"effects": ("log.econnrefused", "services.crash_loop", "services.down"), "same": ["port"],
         "because": "the PostgreSQL server does not accept connections on that port, so every client that needs it is refused or exits"},
    ],
    "pg.idle_in_transaction": [
        {"effects": ("pg.lock_chain", "pg.long_query"), "same": ["host"],
         "because": "a session idle in its transaction keeps its locks, and the sessions that need them wait"},
    ],
    "log.pg_connections": [
        {"effects": _CALLERS + ("endpoints.ws_no_pong", "log.ws_abnormal_close"), "same": ["host"], "window_seconds": _HOUR,
         "before": True, "because": "requests that need the database fail, so the application's callers get refusals and errors"},
        {"effects": ("services.crash_loop", "services.down"), "same": ["application"], "window_seconds": _HOUR, "before": True,
         "because": "a service that cannot connect to its database at start exits, and its supervisor restarts it"},
        {"effects": _ERRORS, "same": ["host"], "because": "each refused connection is logged as an error"},
    ],
    # ------------------------------------------------------------ orphaned agents use up the pids limit
    "proc.orphan": [
        {"effects": ("proc.pids_limit", "host.pids", "containers.pids_near_limit"), "same": ["host"],
         "because": "orphaned agent processes (and their threads) keep their task slots until someone kills them"},
        {"effects": ("log.spawn_eagain",), "same": ["host"],
         "because": "with the task slots held by orphans, fork() fails and spawn reports EAGAIN"},
    ],
    "proc.pids_limit": [
        {"effects": ("log.spawn_eagain",), "same": ["host"], "because": "at pids.max fork() and clone() fail with EAGAIN"},
    ],
    "host.pids": [
        {"effects": ("log.spawn_eagain",), "same": ["host"], "because": "near kernel.pid_max fork() fails with EAGAIN"},
    ],
    "containers.pids_near_limit": [
        {"effects": ("log.spawn_eagain",), "same": ["host"], "because": "at the container's pids limit fork() fails with EAGAIN"},
    ],
    "log.spawn_eagain": [
        {"effects": ("log.task_timeout", "log.agent_not_responding", "log.assignment_timeout") + _ERRORS, "same": ["host"],
         "window_seconds": _HOUR, "before": True, "because": "tasks whose CLI child could not be spawned never finish"},
    ],
    # ------------------------------------------------------------ memory leak, OOM kill, crash loop, dropped WebSockets
    "proc.memory_leak": [
        {"effects": ("proc.oom_kill", "proc.cgroup_memory", "host.memory", "host.swap", "log.v8_heap_oom", "containers.memory_near_limit",
                     "containers.oom_killed"), "same": ["host"],
         "because": "a process whose memory keeps growing reaches its limit, and the kernel (or V8) ends it"},
        {"effects": ("k8s.oom_killed",), "same": ["application"],
         "because": "a container whose process keeps growing reaches its memory limit and is OOMKilled"},
    ],
    "proc.cgroup_memory": [
        {"effects": ("proc.oom_kill",), "same": ["host"], "because": "at its memory limit the cgroup's largest process is OOM-killed"},
    ],
    "host.memory": [
        {"effects": ("proc.oom_kill", "host.swap"), "same": ["host"],
         "because": "with no memory left the kernel swaps, then the OOM killer ends the largest process"},
    ],
    "node.heap_over_cgroup_limit": [
        {"effects": ("proc.oom_kill",), "same": ["host"],
         "because": "V8 lets the heap grow past the cgroup's limit, so the kernel kills the process before V8 collects"},
    ],
    "proc.oom_kill": [
        {"effects": ("services.crash_loop", "services.down", "containers.restart_loop"), "same": ["host"], "window_seconds": _HOUR,
         "before": True, "because": "each OOM kill ends the service's process and its supervisor starts it again"},
        {"effects": _CALLERS + ("endpoints.ws_no_pong",) + _ERRORS, "same": ["host"], "window_seconds": _HOUR, "before": True,
         "because": "while the killed process is down its callers are refused"},
        {"effects": ("log.ws_abnormal_close",), "same": [], "window_seconds": _HOUR, "before": True,
         "because": "a killed process sends no close frame, so its WebSocket peers see code 1006"},
    ],
    "log.v8_heap_oom": [
        {"effects": ("services.crash_loop", "services.down", "containers.restart_loop"), "same": ["host"], "window_seconds": _HOUR,
         "before": True, "because": "Node aborts at its heap limit and the supervisor restarts it"},
        {"effects": ("log.ws_abnormal_close",), "same": [], "window_seconds": _HOUR, "before": True,
         "because": "an aborted process sends no close frame, so its WebSocket peers see code 1006"},
    ],
    "containers.oom_killed": [
        {"effects": ("containers.restart_loop",), "same": ["host", "application"],
         "because": "the runtime restarts the container its memory limit killed"},
    ],
    "k8s.oom_killed": [
        {"effects": ("k8s.crash_loop", "k8s.restarts"), "same": ["application"],
         "because": "the kubelet restarts the container its memory limit killed, then backs off"},
        {"effects": ("log.ws_abnormal_close",), "same": [], "window_seconds": _HOUR, "before": True,
         "because": "a killed container sends no close frame, so its WebSocket peers see code 1006"},
    ],
    "services.crash_loop": [
        {"effects": ("log.ws_abnormal_close",), "same": [], "window_seconds": _HOUR, "before": True,
         "because": "every restart drops the service's WebSocket connections without a close frame (code 1006 at the peers)"},
        {"effects": _CALLERS + ("endpoints.ws_no_pong",) + _ERRORS, "same": ["host"], "window_seconds": _HOUR, "before": True,
         "because": "between restarts nothing serves the service's port, so its callers are refused"},
    ],
    "services.down": [
        {"effects": ("log.ws_abnormal_close",), "same": [], "window_seconds": _HOUR, "before": True,
         "because": "a service that is down drops its WebSocket connections (code 1006 at the peers)"},
        {"effects": _CALLERS + ("endpoints.ws_no_pong",) + _ERRORS, "same": ["host"], "before": True,
         "because": "nothing serves the service's port, so its callers are refused"},
    ],
    "k8s.crash_loop": [
        {"effects": ("k8s.deployment_unavailable", "k8s.service_no_endpoints"), "same": [],
         "because": "a crash-looping pod is never ready, so its workload and Service have no endpoints"},
        {"effects": ("log.ws_abnormal_close",) + _CALLERS, "same": [], "window_seconds": _HOUR, "before": True,
         "because": "every restart drops the pod's connections"},
    ],
    "containers.restart_loop": [
        {"effects": ("log.ws_abnormal_close",) + _CALLERS + _ERRORS, "same": ["host"], "window_seconds": _HOUR, "before": True,
         "because": "every restart drops the container's connections"},
        {"effects": ("services.crash_loop",), "same": ["host", "subject"],
         "because": "the services family sees the same container restart through its supervisor (docker or podman): one restart "
                    "loop, reported by both families, with the container's runtime as the better witness"},
    ],
    "endpoints.unreachable": [
        {"effects": ("log.econnrefused", "services.crash_loop", "services.down"), "same": ["port"],
         "because": "nothing accepts connections on that port now, so the clients that log refusals to it (or exit on them) "
                    "cannot connect"},
    ],
    # ------------------------------------------------------------ disk full, ENOSPC, crash loop
    "host.disk_space": [
        {"effects": ("log.enospc",), "same": ["host"], "because": "a full filesystem fails every write with ENOSPC"},
    ],
    "host.disk_inodes": [
        {"effects": ("log.enospc",), "same": ["host"], "because": "a filesystem without free inodes fails every new file with ENOSPC"},
    ],
    "log.enospc": [
        {"effects": ("services.crash_loop", "services.down", "containers.restart_loop", "containers.readonly_write"), "same": ["host"],
         "window_seconds": _HOUR, "before": True,
         "because": "a service that cannot write its files exits, and its supervisor restarts it"},
        {"effects": _ERRORS, "same": ["host"], "because": "each failed write is logged as an error"},
    ],
    # ------------------------------------------------------------ expired certificate, TLS errors, failed fetches
    "endpoints.tls_expired": [
        {"effects": ("log.tls_error", "endpoints.tls_untrusted", "endpoints.tls_handshake", "endpoints.http_failed"), "same": [],
         "because": "clients refuse an expired certificate (CERT_HAS_EXPIRED)"},
    ],
    "endpoints.tls_expiring": [
        {"effects": ("log.tls_error",), "same": ["host"],
         "because": "clients whose clock runs ahead, or that require remaining validity, already refuse a certificate about to expire"},
    ],
    "log.tls_error": [
        {"effects": ("log.network_reset", "log.http_timeout", "log.task_timeout") + _ERRORS, "same": ["host"], "window_seconds": _HOUR,
         "before": True, "because": "a request whose TLS handshake fails ends as 'fetch failed'"},
    ],
    # ------------------------------------------------------------ rate limits, timeouts
    "log.llm_rate_limit": [
        {"effects": ("log.task_timeout", "log.http_timeout", "log.agent_not_responding", "log.assignment_timeout") + _ERRORS,
         "same": ["host"], "window_seconds": _HOUR, "before": True,
         "because": "rate-limited (429) calls are retried and wait, so agent tasks run past their time-outs"},
    ],
    # ------------------------------------------------------------ runtime too old
    "node.fetch_unavailable": [
        {"effects": ("log.fetch_undefined",), "same": ["host"], "because": "code that calls the global fetch fails where Node has none"},
    ],
    "node.websocket_unavailable": [
        {"effects": ("log.websocket_undefined",), "same": ["host"],
         "because": "code that uses the global WebSocket fails where Node has none"},
    ],
    "log.fetch_undefined": [
        {"effects": _ERRORS, "same": ["host"], "because": "each failed call is logged as an error"},
    ],
    # ------------------------------------------------------------ descriptors
    "proc.fd_exhaustion": [
        {"effects": ("log.emfile",), "same": ["host"], "because": "a process at its descriptor limit gets EMFILE on open and accept"},
    ],
    "host.file_handles": [
        {"effects": ("log.emfile",), "same": ["host"], "because": "at fs.file-max every open fails"},
    ],
    "endpoints.dns_failure": [
        {"effects": ("log.dns_failure",), "same": ["host"], "because": "the name the logs fail to resolve does not resolve from here either"},
    ],
}


def relations(cause):
    """The relations of ``cause`` (a rule id): a list, empty when it explains nothing."""
    return EXPLAINS.get(cause) or []


def rule_ids():
    """Every rule id the relations name (causes and effects), for the test against the catalog."""
    ids = set(EXPLAINS)
    for items in EXPLAINS.values():
        for relation in items:
            ids.update(relation["effects"])
    return ids
