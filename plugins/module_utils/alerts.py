# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The alert part of the rules catalog: for each rule whose condition a common exporter's metrics show, the PromQL
that measures it and how long it must hold before Prometheus fires.

Keyed by rule id like ``rules.RULES`` and kept in its own file, so that people editing the rules (``rules.py`` and its
``rules_*.py`` parts) and the alerts do not collide. A unit test fails on a key that is not a rule id.
``scripts/gen_alerts.py`` (run by ``make docs``) turns this table into ``prometheus/agentops-alerts.yml`` (Prometheus
rule groups, one per exporter) and ``docs/Alerting.md``; a test fails when they drift.

An entry is one of two kinds:

- graded (the rule has ``thresholds``): ``value`` is PromQL for the number the rule grades, in the rule's unit. The
  generator writes one alert per threshold level: ``value >= threshold``, or ``value < threshold`` for a rule whose
  ``direction`` is ``below`` (the comparison ``findings.grade`` makes). The number is read from ``rules.RULES``, so an
  alert never drifts from the diagnosis, and the alert's ``severity`` label is that level.
- fixed (the rule has no thresholds): ``conditions`` lists ``(severity, PromQL condition)``. The severity is the rule's
  catalog ``severity`` when it has one (a test enforces it), else the severity its collector emits for that case.

Other keys: ``exporter`` (a key of ``EXPORTERS``), ``for`` (a Prometheus duration), ``metrics`` (every metric name the
PromQL uses, as the exporter documents it; a test checks the list against the expression), ``description`` (the
alert's description annotation: ``{value}`` becomes the measured value, ``{threshold}`` the level's threshold; Prometheus
templates such as ``{{ $labels.instance }}`` pass through) and ``note`` (how the metric differs from the on-host check,
shown in docs/Alerting.md).

Rules without an entry are not visible in a common exporter's metrics (log signatures, spawn readiness, Node.js
runtime facts, supervision trees); ``docs/Alerting.md`` lists them with the reason from ``NOT_ALERTED``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible_collections.agentops.runbooks.plugins.module_utils.procfs import PSEUDO_FSTYPES

# key -> (name shown in the docs, where it is documented, what it needs switched on for these alerts)
EXPORTERS = {
    "node_exporter": (
        "node_exporter", "https://github.com/prometheus/node_exporter",
        "Default collectors, plus `--collector.processes` (host.pids, proc.zombie) and `--collector.systemd "
        "--collector.systemd.enable-restarts-metrics` (services.*). `node_vmstat_oom_kill` is in the default "
        "`--collector.vmstat.fields`."),
    "process-exporter": (
        "process-exporter", "https://github.com/ncabatoff/process-exporter",
        "A name group per agent service (for example `{{.Comm}}` or one group per service in its config); the values "
        "are per group."),
    "postgres_exporter": (
        "postgres_exporter", "https://github.com/prometheus-community/postgres_exporter",
        "Default metrics (`pg_up`, `pg_settings_*`, `pg_stat_activity_*`, `pg_stat_database_*`); a role with "
        "`pg_monitor` so that every session is counted."),
    "blackbox_exporter": (
        "blackbox_exporter", "https://github.com/prometheus/blackbox_exporter",
        "An `http` (or `tcp`) module probing each endpoint listed in `agentops_endpoints`; TLS expiry needs the "
        "probe to complete its handshake."),
    "cadvisor": (
        "cAdvisor", "https://github.com/google/cadvisor",
        "cAdvisor (standalone, or the kubelet's `/metrics/cadvisor`) with the memory metrics; systemd services' "
        "cgroups appear as `id=\"/system.slice/<unit>\"`."),
    "kube-state-metrics": (
        "kube-state-metrics", "https://github.com/kubernetes/kube-state-metrics",
        "Default resources (pods, deployments, statefulsets, nodes, persistentvolumeclaims)."),
    "redis_exporter": (
        "redis_exporter", "https://github.com/oliver006/redis_exporter",
        "One target per coordination Redis; queue depths need `--check-keys` (or `REDIS_EXPORTER_CHECK_KEYS`) naming the "
        "queue keys, which exports `redis_key_size`."),
}

# Label matchers for the filesystems the host family measures: procfs.PSEUDO_FSTYPES are left out, as on the host.
# Several matchers on one label are ANDed by PromQL; short ones keep the generated rules file readable.
_FSTYPES = sorted(PSEUDO_FSTYPES)
FS = "{%s}" % ", ".join('fstype!~"%s"' % "|".join(name.replace(".", "\\\\.") for name in _FSTYPES[i:i + 10])
                        for i in range(0, len(_FSTYPES), 10))

ALERTS = {
    # ------------------------------------------------------------------ node_exporter: host
    "host.load": {
        "exporter": "node_exporter",
        "value": 'node_load1 / on (instance, job) count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})',
        "for": "15m",
        "metrics": ("node_load1", "node_cpu_seconds_total"),
        "description": "{{ $labels.instance }}: 1-minute load {value} per core (alert at {threshold}).",
        "note": "Counts every online CPU; the diagnosis counts the CPUs its processes may run on (affinity), the same on most hosts.",
    },
    "host.memory": {
        "exporter": "node_exporter",
        "value": "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        "for": "5m",
        "metrics": ("node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"),
        "description": "{{ $labels.instance }}: {value}% of memory in use (alert at {threshold}%).",
    },
    "host.swap": {
        "exporter": "node_exporter",
        "value": "100 * (1 - node_memory_SwapFree_bytes / (node_memory_SwapTotal_bytes > 0))",
        "for": "15m",
        "metrics": ("node_memory_SwapFree_bytes", "node_memory_SwapTotal_bytes"),
        "description": "{{ $labels.instance }}: {value}% of swap in use (alert at {threshold}%).",
    },
    "host.disk_space": {
        "exporter": "node_exporter",
        # As df and the host family: used / (used + available to unprivileged users); `and` keeps the filesystems it measures.
        "value": ("100 * (node_filesystem_size_bytes - node_filesystem_free_bytes) / (node_filesystem_size_bytes - node_filesystem_free_bytes "
                  "+ node_filesystem_avail_bytes) and node_filesystem_size_bytes%s" % FS),
        "for": "5m",
        "metrics": ("node_filesystem_size_bytes", "node_filesystem_free_bytes", "node_filesystem_avail_bytes"),
        "description": "{{ $labels.instance }}: {{ $labels.mountpoint }} ({{ $labels.fstype }}) is {value}% full (alert at {threshold}%).",
    },
    "host.disk_inodes": {
        "exporter": "node_exporter",
        "value": "100 * (1 - node_filesystem_files_free / (node_filesystem_files > 0)) and node_filesystem_files%s" % FS,
        "for": "5m",
        "metrics": ("node_filesystem_files_free", "node_filesystem_files"),
        "description": "{{ $labels.instance }}: {{ $labels.mountpoint }} ({{ $labels.fstype }}) uses {value}% of its inodes (alert at {threshold}%).",
    },
    "host.file_handles": {
        "exporter": "node_exporter",
        "value": "100 * node_filefd_allocated / node_filefd_maximum",
        "for": "5m",
        "metrics": ("node_filefd_allocated", "node_filefd_maximum"),
        "description": "{{ $labels.instance }}: {value}% of fs.file-max allocated (alert at {threshold}%).",
    },
    "host.pids": {
        "exporter": "node_exporter",
        "value": "100 * node_processes_threads / node_processes_max_processes",
        "for": "5m",
        "metrics": ("node_processes_threads", "node_processes_max_processes"),
        "description": "{{ $labels.instance }}: tasks at {value}% of kernel.pid_max (alert at {threshold}%).",
        "note": "Needs node_exporter's `processes` collector (off by default).",
    },
    "host.recent_reboot": {
        "exporter": "node_exporter",
        "value": "time() - node_boot_time_seconds",
        "for": "0m",
        "metrics": ("node_boot_time_seconds",),
        "description": "{{ $labels.instance }}: up for only {value} s (alert below {threshold} s).",
    },
    # ------------------------------------------------------------------ node_exporter: processes
    "proc.oom_kill": {
        "exporter": "node_exporter",
        "conditions": (("high", "increase(node_vmstat_oom_kill[30m]) > 0"),),
        "for": "0m",
        "metrics": ("node_vmstat_oom_kill",),
        "description": "{{ $labels.instance }}: the kernel OOM killer ended {value} process(es) in the last 30 minutes.",
        "note": "Kills in the last 30 minutes; the diagnosis reports every kill since boot from the kernel log.",
    },
    "proc.zombie": {
        "exporter": "node_exporter",
        "value": 'node_processes_state{state="Z"}',
        "for": "15m",
        "metrics": ("node_processes_state",),
        "description": "{{ $labels.instance }}: {value} zombie process(es) (alert at {threshold}).",
        "note": ("All zombies of the host; the diagnosis counts them per parent and names the parent. Needs the "
                 "`processes` collector."),
    },
    # ------------------------------------------------------------------ node_exporter: services (systemd collector)
    "services.crash_loop": {
        "exporter": "node_exporter",
        "value": 'increase(node_systemd_service_restart_total[10m])',
        "for": "0m",
        "metrics": ("node_systemd_service_restart_total",),
        "description": "{{ $labels.instance }}: {{ $labels.name }} restarted {value} times in 10 minutes (alert at {threshold}).",
        "note": ("systemd units only (NRestarts); the diagnosis also counts pm2 and container restarts. Needs "
                 "`--collector.systemd --collector.systemd.enable-restarts-metrics`."),
    },
    "services.down": {
        "exporter": "node_exporter",
        "conditions": (("high", 'node_systemd_unit_state{state="failed"} == 1'),),
        "for": "1m",
        "metrics": ("node_systemd_unit_state",),
        "description": "{{ $labels.instance }}: {{ $labels.name }} has failed and systemd no longer restarts it.",
        "note": "systemd units in state failed; the diagnosis also sees pm2 apps in errored and exited containers.",
    },
    # ------------------------------------------------------------------ process-exporter
    "proc.fd_exhaustion": {
        "exporter": "process-exporter",
        "value": "100 * namedprocess_namegroup_worst_fd_ratio",
        "for": "5m",
        "metrics": ("namedprocess_namegroup_worst_fd_ratio",),
        "description": ("{{ $labels.instance }}: a process of group {{ $labels.groupname }} has {value}% of its "
                        "open-files limit in use (alert at {threshold}%)."),
    },
    "proc.memory_leak": {
        "exporter": "process-exporter",
        # MB per minute, MB = 1024 * 1024 bytes as in memory.py.
        "value": 'deriv(namedprocess_namegroup_memory_bytes{memtype="resident"}[30m]) * 60 / 1048576',
        "for": "30m",
        "metrics": ("namedprocess_namegroup_memory_bytes",),
        "description": "{{ $labels.instance }}: group {{ $labels.groupname }} grows {value} MB/min of RSS (alert at {threshold} MB/min).",
        "note": ("The slope of the group's resident memory over 30 minutes, held for 30 more; the diagnosis fits each "
                 "process's samples and also requires a good fit (R^2) and a process past its warm-up."),
    },
    # ------------------------------------------------------------------ postgres_exporter
    "pg.saturation": {
        "exporter": "postgres_exporter",
        # usable = max_connections - superuser_reserved_connections - reserved_connections (PostgreSQL 16+, else 0).
        "value": ("100 * sum without (datname, state) (pg_stat_activity_count) / (pg_settings_max_connections "
                  "- pg_settings_superuser_reserved_connections - (pg_settings_reserved_connections or pg_settings_max_connections * 0))"),
        "for": "2m",
        "metrics": ("pg_stat_activity_count", "pg_settings_max_connections", "pg_settings_superuser_reserved_connections",
                    "pg_settings_reserved_connections"),
        "description": "{{ $labels.instance }}: {value}% of the usable connection slots in use (alert at {threshold}%).",
    },
    "pg.idle_in_transaction": {
        "exporter": "postgres_exporter",
        "value": 'max without (datname, state) (pg_stat_activity_max_tx_duration{state="idle in transaction"})',
        "for": "1m",
        "metrics": ("pg_stat_activity_max_tx_duration",),
        "description": "{{ $labels.instance }}: a session idle in transaction holds a transaction open for {value} s (alert at {threshold} s).",
        "note": ("The exporter measures the transaction's age (xact_start), the diagnosis the time idle (state_change): "
                 "the alert can fire before the diagnosis grades it."),
    },
    "pg.long_query": {
        "exporter": "postgres_exporter",
        "value": 'max without (datname, state) (pg_stat_activity_max_tx_duration{state="active"})',
        "for": "1m",
        "metrics": ("pg_stat_activity_max_tx_duration",),
        "description": "{{ $labels.instance }}: an active transaction has run for {value} s (alert at {threshold} s).",
        "note": ("The age of the oldest active transaction (which includes autovacuum workers), where the diagnosis "
                 "measures each client query from query_start."),
    },
    "pg.deadlocks": {
        "exporter": "postgres_exporter",
        "value": "increase(pg_stat_database_deadlocks[1h])",
        "for": "0m",
        "metrics": ("pg_stat_database_deadlocks",),
        "description": "{{ $labels.instance }}: {value} deadlock(s) in database {{ $labels.datname }} in the last hour (alert at {threshold}).",
        "note": "Deadlocks in the last hour; the diagnosis counts them since the statistics were last reset.",
    },
    "pg.unreachable": {
        "exporter": "postgres_exporter",
        "conditions": (("critical", "pg_up == 0"),),
        "for": "1m",
        "metrics": ("pg_up",),
        "description": "{{ $labels.instance }}: postgres_exporter cannot connect to PostgreSQL.",
    },
    # ------------------------------------------------------------------ blackbox_exporter
    "endpoints.unreachable": {
        "exporter": "blackbox_exporter",
        "conditions": (("high", "probe_success == 0 unless on (instance, job) probe_http_status_code > 0"),),
        "for": "2m",
        "metrics": ("probe_success", "probe_http_status_code"),
        "description": "{{ $labels.instance }}: the probe got no answer (connection refused, dropped or timed out).",
        "note": "A failed probe that got no HTTP status; a failed probe with a status is endpoints.http_status.",
    },
    "endpoints.http_status": {
        "exporter": "blackbox_exporter",
        "conditions": (("high", "probe_http_status_code >= 500"),
                       ("medium", "probe_http_status_code >= 400 and probe_http_status_code < 500")),
        "for": "2m",
        "metrics": ("probe_http_status_code",),
        "description": "{{ $labels.instance }}: answered HTTP {{ $value }}.",
        "note": ("Any status of 400 and above, as the diagnosis without `expect_status` (5xx high, 4xx medium); a "
                 "different expected status is the blackbox module's `valid_status_codes`."),
    },
    "endpoints.tls_expired": {
        "exporter": "blackbox_exporter",
        "conditions": (("critical", "probe_ssl_earliest_cert_expiry - time() <= 0"),),
        "for": "0m",
        "metrics": ("probe_ssl_earliest_cert_expiry",),
        "description": "{{ $labels.instance }}: a certificate of the chain expired {{ $value | humanizeDuration }} ago.",
        "note": ("Needs a module that completes the handshake despite the expiry (`tls_config: {insecure_skip_verify: "
                 "true}`); otherwise the probe fails and endpoints.unreachable fires."),
    },
    "endpoints.tls_expiring": {
        "exporter": "blackbox_exporter",
        "value": "(probe_ssl_earliest_cert_expiry - time()) / 86400 > 0",
        "for": "0m",
        "metrics": ("probe_ssl_earliest_cert_expiry",),
        "description": "{{ $labels.instance }}: a certificate of the chain expires in {value} day(s) (alert below {threshold}).",
        "note": "Days to the earliest expiry in the chain, the leaf's in the diagnosis; expired certificates are endpoints.tls_expired.",
    },
    "endpoints.http_slow": {
        "exporter": "blackbox_exporter",
        "value": "sum without (phase) (probe_http_duration_seconds) * 1000",
        "for": "5m",
        "metrics": ("probe_http_duration_seconds",),
        "description": "{{ $labels.instance }}: answered in {value} ms (alert at {threshold} ms).",
        "note": "All phases of the HTTP request (resolve, connect, TLS, processing, transfer), in milliseconds.",
    },
    # ------------------------------------------------------------------ cAdvisor
    "proc.cgroup_memory": {
        "exporter": "cadvisor",
        # memory.current / memory.max, as the diagnosis (page cache included); cgroups without a limit report 0.
        "value": "100 * container_memory_usage_bytes / (container_spec_memory_limit_bytes > 0)",
        "for": "5m",
        "metrics": ("container_memory_usage_bytes", "container_spec_memory_limit_bytes"),
        "description": "{{ $labels.instance }}: cgroup {{ $labels.id }} uses {value}% of its memory limit (alert at {threshold}%).",
        "note": "Without the diagnosis's floor (high once the cgroup had an OOM kill): proc.oom_kill alerts on kills.",
    },
    "containers.memory_near_limit": {
        "exporter": "cadvisor",
        # The working set excludes inactive page cache, as the diagnosis does.
        "value": "100 * container_memory_working_set_bytes / (container_spec_memory_limit_bytes > 0)",
        "for": "5m",
        "metrics": ("container_memory_working_set_bytes", "container_spec_memory_limit_bytes"),
        "description": "{{ $labels.instance }}: container {{ $labels.name }}{{ $labels.container }} uses {value}% of its memory limit (alert at {threshold}%).",
    },
    "containers.cpu_throttled": {
        "exporter": "cadvisor",
        "value": "100 * increase(container_cpu_cfs_throttled_periods_total[10m]) / (increase(container_cpu_cfs_periods_total[10m]) > 0)",
        "for": "10m",
        "metrics": ("container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_periods_total"),
        "description": ("{{ $labels.instance }}: container {{ $labels.name }}{{ $labels.container }} was throttled in {value}% of its CFS "
                        "periods (alert at {threshold}%)."),
        "note": "Periods of the last 10 minutes; the diagnosis reads the counters since the container started.",
    },
    # ------------------------------------------------------------------ kube-state-metrics
    "k8s.crash_loop": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"} == 1'),),
        "for": "5m",
        "metrics": ("kube_pod_container_status_waiting_reason",),
        "description": "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} is in CrashLoopBackOff.",
    },
    "k8s.image_pull": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_pod_container_status_waiting_reason{reason=~"ErrImagePull|ImagePullBackOff"} == 1'),),
        "for": "5m",
        "metrics": ("kube_pod_container_status_waiting_reason",),
        "description": "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} cannot pull its image ({{ $labels.reason }}).",
    },
    "k8s.container_config_error": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_pod_container_status_waiting_reason{reason=~"CreateContainerConfigError|CreateContainerError"} == 1'),),
        "for": "5m",
        "metrics": ("kube_pod_container_status_waiting_reason",),
        "description": "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} cannot be created ({{ $labels.reason }}).",
    },
    "k8s.oom_killed": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_pod_container_status_last_terminated_reason{reason="OOMKilled"} == 1 '
                                'and on (namespace, pod, container) increase(kube_pod_container_status_restarts_total[30m]) > 0'),),
        "for": "0m",
        "metrics": ("kube_pod_container_status_last_terminated_reason", "kube_pod_container_status_restarts_total"),
        "description": "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} was OOMKilled and restarted in the last 30 minutes.",
    },
    "k8s.restarts": {
        "exporter": "kube-state-metrics",
        "value": "increase(kube_pod_container_status_restarts_total[1h])",
        "for": "0m",
        "metrics": ("kube_pod_container_status_restarts_total",),
        "description": ("Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} restarted {value} times in an "
                        "hour (alert at {threshold})."),
        "note": "Restarts in the last hour; the diagnosis counts them since the pod started.",
    },
    "k8s.pod_pending": {
        "exporter": "kube-state-metrics",
        "value": 'time() - kube_pod_created and on (namespace, pod) kube_pod_status_phase{phase="Pending"} == 1',
        "for": "2m",
        "metrics": ("kube_pod_created", "kube_pod_status_phase"),
        "description": "Pod {{ $labels.namespace }}/{{ $labels.pod }} has been Pending for {value} s (alert at {threshold} s).",
        "note": "Age since the pod was created while it is Pending, held for 2 minutes (so the medium level, 0 s, means Pending for 2 minutes).",
    },
    "k8s.deployment_unavailable": {
        "exporter": "kube-state-metrics",
        "conditions": (("medium", "kube_deployment_status_replicas_unavailable > 0"),),
        "for": "10m",
        "metrics": ("kube_deployment_status_replicas_unavailable",),
        "description": "Deployment {{ $labels.namespace }}/{{ $labels.deployment }} has {{ $value }} unavailable replica(s).",
    },
    "k8s.statefulset_unavailable": {
        "exporter": "kube-state-metrics",
        "conditions": (("medium", "kube_statefulset_status_replicas_ready < kube_statefulset_replicas"),),
        "for": "10m",
        "metrics": ("kube_statefulset_status_replicas_ready", "kube_statefulset_replicas"),
        "description": "StatefulSet {{ $labels.namespace }}/{{ $labels.statefulset }} has only {{ $value }} ready replica(s).",
    },
    "k8s.node_not_ready": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_node_status_condition{condition="Ready", status="true"} == 0'),),
        "for": "5m",
        "metrics": ("kube_node_status_condition",),
        "description": "Node {{ $labels.node }} is not Ready.",
    },
    "k8s.node_pressure": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_node_status_condition{condition=~"MemoryPressure|DiskPressure|PIDPressure", status="true"} == 1'),),
        "for": "5m",
        "metrics": ("kube_node_status_condition",),
        "description": "Node {{ $labels.node }} reports {{ $labels.condition }}.",
    },
    "k8s.pvc_pending": {
        "exporter": "kube-state-metrics",
        "conditions": (("high", 'kube_persistentvolumeclaim_status_phase{phase="Pending"} == 1'),),
        "for": "5m",
        "metrics": ("kube_persistentvolumeclaim_status_phase",),
        "description": "PersistentVolumeClaim {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} is not bound.",
    },
    # ------------------------------------------------------------------ redis_exporter
    "coordination.redis_unreachable": {
        "exporter": "redis_exporter",
        "conditions": (("high", "redis_up == 0"),),
        "for": "1m",
        "metrics": ("redis_up",),
        "description": "{{ $labels.instance }}: redis_exporter cannot reach Redis.",
    },
    "coordination.redis_memory": {
        "exporter": "redis_exporter",
        "value": "100 * redis_memory_used_bytes / (redis_memory_max_bytes > 0)",
        "for": "5m",
        "metrics": ("redis_memory_used_bytes", "redis_memory_max_bytes"),
        "description": "{{ $labels.instance }}: Redis uses {value}% of its maxmemory (alert at {threshold}%).",
    },
    "coordination.redis_evictions": {
        "exporter": "redis_exporter",
        "conditions": (("high", "increase(redis_evicted_keys_total[10m]) > 0"),),
        "for": "0m",
        "metrics": ("redis_evicted_keys_total",),
        "description": "{{ $labels.instance }}: Redis evicted {{ $value }} key(s) in 10 minutes.",
        "note": "Evictions in the last 10 minutes; the diagnosis counts them since Redis started.",
    },
    "coordination.redis_rejected_connections": {
        "exporter": "redis_exporter",
        "conditions": (("medium", "increase(redis_rejected_connections_total[10m]) > 0"),),
        "for": "0m",
        "metrics": ("redis_rejected_connections_total",),
        "description": "{{ $labels.instance }}: Redis rejected {{ $value }} connection(s) in 10 minutes (maxclients).",
        "note": "Rejections in the last 10 minutes; the diagnosis counts them since Redis started.",
    },
    "coordination.queue_backlog": {
        "exporter": "redis_exporter",
        "value": "redis_key_size",
        "for": "5m",
        "metrics": ("redis_key_size",),
        "description": "{{ $labels.instance }}: queue {{ $labels.key }} holds {value} item(s) (alert at {threshold}).",
        "note": "Only the keys named in `--check-keys`; the diagnosis finds the queue keys itself.",
    },
}

# Rules with no alert, and why: keyed by rule id, prefix (ending in "." or "_") or suffix (starting with "."), the
# longest match winning. docs/Alerting.md lists every rule without an alert with its reason (or "not assessed yet").
NOT_ALERTED = {
    "log.": "A log signature: no common exporter counts log lines by signature (alert on it from your log pipeline).",
    "spawn.": "Spawn readiness is checked as each agent process (its PATH, permissions, mounts): no exporter shows it.",
    "node.": "Node.js runtime facts (version, heap limit, PID 1) are read from the process: no exporter shows them.",
    "diagnose.": "About the diagnosis run itself (Ansible could not reach the host or run a check).",
    ".check_incomplete": "A check that could not run: the diagnosis reports it, there is no metric to alert on.",
    "proc.orphan": "Orphans are judged from the supervision tree (systemd, containers, pm2): no exporter shows it.",
    "proc.high_rss": "process-exporter sums a whole name group; one process's share of memory is not exported.",
    "proc.deleted_open_files": "Deleted-but-open files are read from /proc/<pid>/fd: no exporter counts them.",
    "proc.pids_limit": "A cgroup's pids.current and pids.max are not in node_exporter, process-exporter or cAdvisor's defaults.",
    "proc.limited_visibility": "About the diagnosis's own permissions.",
    "pg.pool_hog": "postgres_exporter's default pg_stat_activity_count has no application_name label.",
    "pg.lock_chain": "postgres_exporter's default metrics count locks but not how long sessions wait for them.",
    "pg.missing_timeouts": "Per-role settings (ALTER ROLE ... SET) are not in pg_settings_*: a configuration finding, not an alert.",
    "pg.too_many_clients": "pg.saturation at critical (95% of the usable slots) fires first; at 100% the exporter itself may not connect (pg.unreachable).",
    "pg.limited_privileges": "About the diagnosis's own database privileges.",
    "endpoints.dns_failure": "blackbox_exporter's http probe fails without a DNS-specific metric (endpoints.unreachable fires).",
    "endpoints.dns_ndots": "Read from the agent's resolv.conf: no exporter shows it.",
    "endpoints.tls_untrusted": "A failed verification fails the probe without a reason metric (endpoints.unreachable fires).",
    "endpoints.tls_hostname": "A failed verification fails the probe without a reason metric (endpoints.unreachable fires).",
    "endpoints.tls_handshake": "A failed handshake fails the probe without a reason metric (endpoints.unreachable fires).",
    "endpoints.http_timeout": "A timed-out probe has no HTTP status: endpoints.unreachable fires.",
    "endpoints.http_failed": "A probe without a valid answer has no HTTP status: endpoints.unreachable fires.",
    "endpoints.http_body": "The blackbox module's fail_if_body_not_matches_regexp fails the probe without a separate metric.",
    "endpoints.ws_upgrade_refused": "blackbox_exporter has no WebSocket prober.",
    "endpoints.ws_no_pong": "blackbox_exporter has no WebSocket prober.",
    "services.unknown_unit": "A unit that does not exist has no metrics.",
    "containers.": "Read from the container runtime (inspect, logs, mounts): cAdvisor does not export it.",
    "containers.oom_killed": "cAdvisor has no per-container OOM-kill reason for Docker/Podman; proc.oom_kill alerts on the host's kills.",
    "containers.restart_loop": "Docker/Podman restart counts are not in cAdvisor's metrics (services.crash_loop covers systemd, k8s.restarts pods).",
    "containers.pids_near_limit": "cAdvisor's default metrics do not include pids.max.",
    "k8s.": "Read from the API objects (events, specs, probes): kube-state-metrics has no metric for it.",
    "k8s.heap_over_limit": "The V8 heap limit comes from the container's command line and environment: no exporter shows it.",
    "coordination.": "Needs reading queue contents or consumer state (heartbeats, task states, blocked clients): no exporter metric.",
    "coordination.rabbitmq_": "RabbitMQ is watched through its management API here; its own Prometheus plugin is not among these exporters yet.",
}


def not_alerted_reason(rule_id):
    """Why ``rule_id`` has no alert (the longest matching key of ``NOT_ALERTED``), or None."""
    matches = [key for key in NOT_ALERTED if rule_id == key or (key[-1] in "._" and rule_id.startswith(key))
               or (key.startswith(".") and rule_id.endswith(key))]
    return NOT_ALERTED[max(matches, key=len)] if matches else None
