# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading the objects ``kubectl get -o json`` prints: quantities, times, exit codes, owners, selectors, probes.

Pure functions over the parsed JSON of the Kubernetes API (core/v1, apps/v1, batch/v1, networking.k8s.io/v1), used by
the k8s family (collectors/k8s.py). Nothing here runs a command or returns an environment value other than
``NODE_OPTIONS``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import re
import time

from ansible_collections.agentops.runbooks.plugins.module_utils import procfs

# The resource types of the one namespaced call, in the order kubectl is asked for them.
NAMESPACED = ("pods", "services", "endpoints", "deployments", "replicasets", "statefulsets", "cronjobs", "jobs",
              "persistentvolumeclaims", "ingresses")
NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MB = 1024 * 1024

_BINARY = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5, "Ei": 1024 ** 6}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")

# What an exit code of a container says (128 + N is signal N).
EXIT_MEANINGS = {
    0: "exit 0: the process ended on its own, which a server should not do",
    1: "exit 1: the application failed (an uncaught exception or process.exit(1)); its last log lines say why",
    2: "exit 2: the command was misused (a bad argument or option)",
    126: "exit 126: the command is not executable (permissions, or a script without its interpreter)",
    127: "exit 127: the command was not found in the image (entrypoint, command or PATH)",
    134: "exit 134 (SIGABRT): for Node usually 'JavaScript heap out of memory' (V8's heap limit, not the container's)",
    137: ("exit 137 (SIGKILL): killed from outside - the memory limit (OOMKilled), a failed liveness probe or a stop that "
          "outlived terminationGracePeriodSeconds"),
    139: "exit 139 (SIGSEGV): the process crashed in native code",
    143: "exit 143 (SIGTERM): the kubelet stopped it (a failed liveness probe, an eviction or a rollout) and it exited on the signal",
}


def quantity(text):
    """A Kubernetes resource quantity (``512Mi``, ``1G``, ``0.5``, ``100m``) as a float; ValueError when it is not one."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError("not a Kubernetes quantity: %r" % str(text)[:40])
    number, suffix = float(match.group(1)), match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def memory_mb(text):
    """A memory quantity in MiB (int), or None when absent or unreadable."""
    if text in (None, ""):
        return None
    try:
        return int(quantity(text) // MB)
    except ValueError:
        return None


def epoch(stamp):
    """Seconds since the epoch of an RFC 3339 time the API prints (``2026-11-27T03:00:00Z``, with or without a fraction
    or an offset), or None."""
    if not stamp or not isinstance(stamp, str):
        return None
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|z|[+-]\d{2}:?\d{2})?$", stamp.strip())
    if not match:
        return None
    seconds = calendar.timegm(time.strptime("%s %s" % (match.group(1), match.group(2)), "%Y-%m-%d %H:%M:%S"))
    zone = match.group(3)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds is not None else None


def exit_meaning(code, reason=None, limit=None):
    """One phrase for a container's last termination: its reason and what its exit code says."""
    if reason == "OOMKilled":
        return ("OOMKilled (exit %s): the container passed its memory limit%s and the kernel killed it"
                % (code if code is not None else 137, " of %s" % limit if limit else ""))
    if code is None:
        return "no earlier termination recorded"
    if code in EXIT_MEANINGS:
        return "%s%s" % ("%s, " % reason if reason and reason not in ("Error", "Completed") else "", EXIT_MEANINGS[code])
    if code > 128:
        return "exit %d: killed by signal %d" % (code, code - 128)
    return "%sexit %d: the application exited with this code" % ("%s, " % reason if reason and reason != "Error" else "", code)


def parse_list(text):
    """The items of a ``kubectl get ... -o json`` answer (a ``List``, or one object); ValueError when it is not JSON."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("kubectl printed JSON that is not an object")
    if "items" in data:
        return [item for item in data.get("items") or [] if isinstance(item, dict)]
    return [data] if data.get("kind") else []


def meta(item):
    metadata = item.get("metadata") or {}
    return metadata.get("namespace") or "", metadata.get("name") or ""


def labels(item):
    return (item.get("metadata") or {}).get("labels") or {}


def owner(item):
    """``(kind, name)`` of the controller owning ``item`` (its first owner when none is marked controller), or ``(None, None)``."""
    refs = [ref for ref in (item.get("metadata") or {}).get("ownerReferences") or [] if isinstance(ref, dict)]
    for ref in refs:
        if ref.get("controller"):
            return ref.get("kind"), ref.get("name")
    return (refs[0].get("kind"), refs[0].get("name")) if refs else (None, None)


def workload(pod, replicasets):
    """``(kind, name)`` of the workload a pod belongs to: the Deployment behind its ReplicaSet, else its direct owner."""
    kind, name = owner(pod)
    if kind == "ReplicaSet":
        namespace = meta(pod)[0]
        rs = replicasets.get((namespace, name))
        if rs is not None:
            up_kind, up_name = owner(rs)
            if up_kind == "Deployment":
                return up_kind, up_name
    return kind, name


def revision(item):
    """The rollout revision of a Deployment or ReplicaSet (its ``deployment.kubernetes.io/revision`` annotation), or None."""
    value = ((item.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision")
    return int(value) if str(value or "").isdigit() else None


def condition(item, kind):
    """The status condition of type ``kind`` (``{}`` when absent)."""
    for entry in (item.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry
    return {}


def selector_text(selector):
    return ",".join("%s=%s" % (key, selector[key]) for key in sorted(selector))


def matches(selector, item):
    found = labels(item)
    return bool(selector) and all(found.get(key) == value for key, value in selector.items())


def pod_ready(pod):
    return condition(pod, "Ready").get("status") == "True"


def container_statuses(pod):
    status = pod.get("status") or {}
    return [("init", s) for s in status.get("initContainerStatuses") or []] + [("main", s) for s in status.get("containerStatuses") or []]


def node_options_value(container):
    """``(value, note)`` of the container's NODE_OPTIONS: only that variable is read, and only a literal value;
    ``valueFrom`` or ``envFrom`` cannot be seen from the pod spec."""
    for entry in container.get("env") or []:
        if entry.get("name") == "NODE_OPTIONS":
            if "value" in entry:
                return entry.get("value") or "", None
            return None, "NODE_OPTIONS comes from a ConfigMap or Secret (valueFrom), not read"
    if container.get("envFrom"):
        return None, "envFrom may set NODE_OPTIONS, not read"
    return None, None


def heap_flag_mb(container):
    """``(megabytes, source, note)`` of ``--max-old-space-size`` in the container's command and args (a ``sh -c`` string
    too), else in its NODE_OPTIONS; ``(None, None, note)`` when not set or not visible."""
    words = []
    for part in list(container.get("command") or []) + list(container.get("args") or []):
        words.extend(str(part).split())
    value = procfs.node_heap_limit_mb(words, {})
    if value:
        return value, "--max-old-space-size in the container's command", None
    options, note = node_options_value(container)
    value = procfs.node_heap_limit_mb([], {"NODE_OPTIONS": options or ""})
    if value:
        return value, "--max-old-space-size in NODE_OPTIONS", None
    return None, None, note


def probe_kind(message):
    """``liveness``, ``readiness`` or ``startup`` from an Unhealthy event's message, or None."""
    match = re.match(r"^\s*(Liveness|Readiness|Startup) probe (?:failed|errored)", message or "")
    return match.group(1).lower() if match else None


def event_window(event):
    """``(count, first, last)`` (epoch seconds) of an Event, in either events API shape (``count`` and
    ``firstTimestamp``/``lastTimestamp``, or ``series`` and ``eventTime``)."""
    series = event.get("series") or {}
    count = event.get("count") or series.get("count") or 1
    first = epoch(event.get("firstTimestamp")) or epoch(event.get("eventTime"))
    last = epoch(event.get("lastTimestamp")) or epoch(series.get("lastObservedTime")) or epoch(event.get("eventTime")) or first
    return int(count), first, last


def grace_seconds(pod_spec):
    value = pod_spec.get("terminationGracePeriodSeconds")
    return 30 if value is None else int(value)


def prestop_sleep(container):
    """Seconds of a preStop ``sleep`` hook (``exec`` ``sleep N`` or the ``sleep`` action), else None."""
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if isinstance(hook.get("sleep"), dict):
        return hook["sleep"].get("seconds")
    command = " ".join(str(part) for part in ((hook.get("exec") or {}).get("command") or []))
    match = re.search(r"\bsleep\s+(\d+)", command)
    return int(match.group(1)) if match else None


def ingress_backends(ingress):
    """``[(service, host, path)]`` every backend an Ingress routes to (networking.k8s.io/v1, and the older
    ``serviceName`` shape)."""
    spec = ingress.get("spec") or {}
    out = []

    def service_of(backend):
        backend = backend or {}
        return (backend.get("service") or {}).get("name") or backend.get("serviceName")

    default = service_of(spec.get("defaultBackend") or spec.get("backend"))
    if default:
        out.append((default, "*", "(default backend)"))
    for rule in spec.get("rules") or []:
        for path in ((rule.get("http") or {}).get("paths") or []):
            name = service_of(path.get("backend"))
            if name:
                out.append((name, rule.get("host") or "*", path.get("path") or "/"))
    return out
