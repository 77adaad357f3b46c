# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The k8s family: what kubectl says about the agents' pods, their workloads, services and nodes.

It runs when ``agentops_kubeconfig`` names a kubeconfig, or in-cluster service-account credentials exist (or the
user's default kubeconfig), and kubectl answers; otherwise it is "not present". Per namespace asked
(``agentops_k8s_namespaces``; by default the context's current one; ``*`` for all) it makes one
``kubectl get pods,services,endpoints,deployments,replicasets,statefulsets,cronjobs,jobs,persistentvolumeclaims,ingresses
-o json`` and one ``kubectl get events -o json``; then one ``kubectl get nodes -o json``, and one for the CoreDNS
pods when kube-system is not among the namespaces. Each is an argv list with a time limit; the kubeconfig goes in
the environment (``KUBECONFIG``), never on a command line. Secrets are never read, no environment value but
``NODE_OPTIONS`` is looked at, and every message returned goes through the redaction engine. The checks follow
k8sgpt's core analyzers (Pod, Deployment, ReplicaSet, Service, PVC, Ingress, StatefulSet, CronJob, Node, Events).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re
import shutil
import tempfile
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import k8s_objects as ko
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.services import find_bin, run_command
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate

SERVICEACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ALL = "*"
MESSAGE_MAX = 400
PODS_IN_FACTS = 200
# Warning events that a more specific rule already reports (probes, back-off, pulls, scheduling, volumes, jobs).
COVERED_EVENTS = frozenset(("Unhealthy", "BackOff", "Failed", "FailedScheduling", "ProvisioningFailed", "BackoffLimitExceeded",
                            "DeadlineExceeded"))
WAITING_PULL = frozenset(("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"))
WAITING_CONFIG = frozenset(("CreateContainerConfigError", "CreateContainerError", "RunContainerError"))
PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure")
KLOG = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ \S+:\d+\] ")
# kubectl's words for a cluster it cannot talk to at all: then nothing else is asked.
UNREACHABLE = re.compile(r"Unable to connect to the server|connection refused|connection to the server \S+ was refused|no such host|"
                         r"i/o timeout|did not answer within|"
                         r"Unauthorized|must be logged in|couldn't get current server API group list|"
                         r"invalid configuration|no configuration has been provided|context was not found", re.I)


def credentials(kubeconfig, serviceaccount, environ=None, home=None):
    """``(source, kubeconfig path or None)``: where kubectl takes its credentials from, or ``(None, why)`` when there
    are none. ``kubeconfig`` (the option) first, then the in-cluster service account, then kubectl's own default
    kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    environ = os.environ if environ is None else environ
    if kubeconfig:
        return "kubeconfig", kubeconfig
    if os.path.isfile(os.path.join(serviceaccount, "token")):
        return "in-cluster service account", None
    default = [p for p in (environ.get("KUBECONFIG") or "").split(os.pathsep) if p]
    default = default or [os.path.join(home or os.path.expanduser("~"), ".kube", "config")]
    if any(os.path.isfile(path) for path in default):
        return "default kubeconfig", None
    return None, "no kubeconfig (agentops_kubeconfig, $KUBECONFIG, ~/.kube/config) and no in-cluster service account token"


def kubectl_error(text):
    """kubectl's own error lines, without client-go's log lines (``E1127 03:12:09.412118 48211 memcache.go:265] ...``) and
    warnings, unless nothing else was printed; repeated lines once."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    own = [line for line in lines if not KLOG.match(line) and not line.startswith("Warning:")]
    kept = []
    for line in own or lines[-1:]:
        if line not in kept:
            kept.append(line)
    return "\n".join(kept)


class K8sCollector(object):
    def __init__(self, kubectl, env, context, namespaces, timeout=10.0, drain_seconds=0.0, thresholds=None, redactor=None,
                 runner=run_command, clock=time.time):
        self.kubectl = kubectl
        self.env = env
        self.context = context or None
        self.namespaces = list(namespaces)
        self.timeout = timeout
        self.drain_seconds = drain_seconds
        self.thresholds = thresholds or {}
        self.redactor = redactor or Redactor()
        self.runner = runner
        self.now = clock()
        self.objects = {}
        self.facts = {"calls": []}
        self.findings = []
        self.incomplete = []
        self.unreachable = False
        self.partial = False  # some resource types were not listed: a missing object may only be unseen

    # ------------------------------------------------------------ helpers
    def _incomplete(self, what, error):
        error = truncate(self.redactor.text(str(error).strip()), 300) or "failed"
        self.incomplete.append({"check": what, "error": error})
        self.findings.append(fm.make("k8s.check_incomplete", "unknown", {"what": what, "error": error, "context": self.context},
                                     subject=what, overrides=self.thresholds))

    def _text(self, text):
        return truncate(self.redactor.text(" ".join(str(text or "").split())), MESSAGE_MAX) if text else ""

    def _add(self, rule_id, evidence, subject, value=None):
        evidence = dict(evidence, context=self.context)
        if fm.RULES[rule_id].get("thresholds") and value is not None:
            found = fm.graded(rule_id, value, evidence, self.thresholds, subject=subject)
        else:
            found = fm.make(rule_id, None, evidence, subject=subject, overrides=self.thresholds)
        if found:
            self.findings.append(found)

    def _scope(self, namespace):
        if namespace is None:
            return []
        return ["--all-namespaces"] if namespace == ALL else ["--namespace=%s" % namespace]

    def _get(self, what, args):
        """The items kubectl prints for ``get args -o json``, or None when it could not answer; a partial answer (some
        resource types refused) keeps what it printed and records the rest as incomplete."""
        if self.unreachable:
            return None
        argv = [self.kubectl] + (["--context=%s" % self.context] if self.context else []) + \
            ["--request-timeout=%ds" % int(math.ceil(self.timeout)), "get"] + args + ["-o", "json"]
        self.facts["calls"].append(" ".join(["kubectl"] + argv[1:]))
        try:
            rc, out, err = self.runner(argv, self.timeout + 2, env=self.env)
        except OSError as exc:
            rc, out, err = None, "", fm.describe(exc)
        items = None
        if out.strip().startswith("{"):
            try:
                items = ko.parse_list(out)
            except ValueError as exc:
                err = err or "kubectl printed something that is not JSON (%s)" % exc
                rc = rc or 1
        if rc != 0 or items is None:
            message = kubectl_error(err or out) or "kubectl exited with %s" % rc
            if items is None and UNREACHABLE.search(err or out or message):
                self.unreachable = True
                what = "the cluster (%s)" % what
            self._incomplete(what, message)
        for item in items or []:
            kind = item.get("kind") or "?"
            self.objects.setdefault(kind, {})[ko.meta(item)] = item
        return items

    def items(self, kind):
        return [self.objects[kind][key] for key in sorted(self.objects.get(kind, {}))]

    # ------------------------------------------------------------ run
    def run(self):
        scopes = [ALL] if ALL in self.namespaces else (self.namespaces or [None])
        for scope in scopes:
            label = "namespace %s" % scope if scope not in (None, ALL) else ("all namespaces" if scope == ALL else "the current namespace")
            if self._get("objects of %s" % label, [",".join(ko.NAMESPACED)] + self._scope(scope)) is None or self.incomplete:
                self.partial = True
            self._get("events of %s" % label, ["events"] + self._scope(scope))
        self.node_items = self._get("nodes", ["nodes"])
        self.dns_items = None
        if ALL in self.namespaces or "kube-system" in self.namespaces:
            self.dns_items = [p for p in self.items("Pod") if ko.meta(p)[0] == "kube-system" and ko.labels(p).get("k8s-app") == "kube-dns"]
        else:
            before = set(self.objects.get("Pod", {}))
            self.dns_items = self._get("CoreDNS pods (kube-system)", ["pods", "--namespace=kube-system", "-l", "k8s-app=kube-dns"])
            for item in self.dns_items or []:  # only for the DNS check, not reported as the agents' pods
                if ko.meta(item) not in before:
                    self.objects["Pod"].pop(ko.meta(item), None)
        if not self.unreachable:
            for step in (self.pods, self.services, self.deployments, self.replicasets, self.statefulsets, self.pvcs, self.ingresses,
                         self.cronjobs, self.events, self.nodes, self.coredns):
                try:
                    step()
                except (KeyError, TypeError, ValueError, AttributeError) as exc:  # one surprising object stays its own check
                    self._incomplete("the %s check" % step.__name__, "%s: %s" % (exc.__class__.__name__, exc))
        self.facts.update(self.summary())
        return {"facts": self.facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def summary(self):
        namespaces = sorted(set(ko.meta(item)[0] for kind in self.objects if kind not in ("Node",) for item in self.objects[kind].values()) -
                            {""})
        pods = []
        for pod in self.items("Pod")[:PODS_IN_FACTS]:
            statuses = [s for role, s in ko.container_statuses(pod) if role == "main"]
            pods.append({"namespace": ko.meta(pod)[0], "name": ko.meta(pod)[1], "phase": (pod.get("status") or {}).get("phase"),
                         "ready": "%d/%d" % (sum(1 for s in statuses if s.get("ready")), len(statuses)),
                         "restarts": sum(int(s.get("restartCount") or 0) for s in statuses)})
        return {
            "namespaces": namespaces, "pods": pods,
            "objects": dict((kind, len(self.objects[kind])) for kind in sorted(self.objects)),
            "nodes": [{"name": ko.meta(n)[1], "ready": ko.condition(n, "Ready").get("status"),
                       "pressure": [c for c in PRESSURE if ko.condition(n, c).get("status") == "True"]} for n in self.items("Node")],
            "reachable": not self.unreachable,
        }

    # ------------------------------------------------------------ pods
    def _replicasets(self):
        return self.objects.get("ReplicaSet", {})

    def _pod_base(self, pod, container=None):
        namespace, name = ko.meta(pod)
        kind, owner = ko.workload(pod, self._replicasets())
        return {"namespace": namespace, "pod": name, "container": container,
                "workload": "%s/%s" % (kind.lower(), owner) if kind and owner else "pod/%s" % name,
                "deployment": owner if kind == "Deployment" else None}

    def pods(self):
        seen_specs = set()
        for pod in self.items("Pod"):
            namespace, name = ko.meta(pod)
            status = pod.get("status") or {}
            spec = pod.get("spec") or {}
            limits = dict((c.get("name"), ((c.get("resources") or {}).get("limits") or {}).get("memory"))
                          for c in (spec.get("containers") or []) + (spec.get("initContainers") or []))
            started = ko.epoch(status.get("startTime")) or ko.epoch((pod.get("metadata") or {}).get("creationTimestamp"))
            for _role, cs in ko.container_statuses(pod):
                self.container(pod, cs, limits.get(cs.get("name")), started)
            self.pending(pod, status, started)
            base = self._pod_base(pod)
            key = (namespace, base["workload"] if not base["workload"].startswith("pod/") else name)
            if key in seen_specs:
                continue  # the pods of one workload share its spec: judged once
            seen_specs.add(key)
            for container in spec.get("containers") or []:
                self.heap(pod, container)
            self.grace(pod, spec)

    def container(self, pod, cs, limit, started):
        name = cs.get("name")
        base = self._pod_base(pod, name)
        subject = "pod %s/%s container %s" % (base["namespace"], base["pod"], name)
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = int(cs.get("restartCount") or 0)
        reason, code = last.get("reason"), last.get("exitCode")
        finished = ko.epoch(last.get("finishedAt"))
        history = dict(base, restarts=restarts, count=restarts, last_reason=reason or "(none recorded)",
                       last_exit_code=code if code is not None else "(none)", memory_limit=limit or "none",
                       exit_meaning=ko.exit_meaning(code, reason, limit), first_seen=ko.iso(started),
                       last_seen=ko.iso(finished) or ko.iso(started))
        waiting_reason = waiting.get("reason")
        if waiting_reason == "CrashLoopBackOff":
            self._add("k8s.crash_loop", dict(history, waiting_message=self._text(waiting.get("message")) or "(no message)",
                                             oom_killed=reason == "OOMKilled"), subject)
            return
        if waiting_reason in WAITING_PULL:
            self._add("k8s.image_pull", dict(base, image=cs.get("image") or "(unknown)", reason=waiting_reason,
                                             message=self._text(waiting.get("message")) or "(no message)"), subject)
            return
        if waiting_reason in WAITING_CONFIG:
            self._add("k8s.container_config_error", dict(base, reason=waiting_reason,
                                                         message=self._text(waiting.get("message")) or "(no message)"), subject)
            return
        if reason == "OOMKilled":
            self._add("k8s.oom_killed", history, subject)
            return
        if restarts:
            self._add("k8s.restarts", history, subject, value=restarts)

    def pending(self, pod, status, started):
        if status.get("phase") != "Pending":
            return
        scheduled = ko.condition(pod, "PodScheduled")
        if scheduled.get("status") != "False":
            return
        base = self._pod_base(pod)
        since = ko.epoch(scheduled.get("lastTransitionTime")) or started
        pending = max(0, int(self.now - since)) if since else 0
        self._add("k8s.pod_pending", dict(base, reason=scheduled.get("reason") or "(no reason)",
                                          message=self._text(scheduled.get("message")) or "(no message)",
                                          pending_seconds=pending, since=ko.iso(since)),
                  "pod %s/%s" % (base["namespace"], base["pod"]), value=pending)

    def heap(self, pod, container):
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        limit_mb = ko.memory_mb(limit)
        heap_mb, source, _note = ko.heap_flag_mb(container)
        if not limit_mb or not heap_mb:
            return
        base = self._pod_base(pod, container.get("name"))
        percent = round(100.0 * heap_mb / limit_mb, 1)
        self._add("k8s.heap_over_limit", dict(base, heap_mb=heap_mb, heap_source=source, memory_limit=limit, limit_mb=limit_mb,
                                              heap_percent=percent),
                  "%s container %s" % (base["workload"], base["container"]), value=percent)

    def grace(self, pod, spec):
        if not self.drain_seconds:
            return
        grace = ko.grace_seconds(spec)
        if grace >= self.drain_seconds:
            return
        sleeps = [s for s in (ko.prestop_sleep(c) for c in spec.get("containers") or []) if s]
        base = self._pod_base(pod)
        note = (" A preStop hook sleeps %d s of it first, leaving %d s." % (max(sleeps), max(0, grace - max(sleeps)))) if sleeps else ""
        drain = int(self.drain_seconds) if self.drain_seconds == int(self.drain_seconds) else self.drain_seconds
        self._add("k8s.grace_shorter_than_drain", dict(base, grace_seconds=grace, drain_seconds=drain, prestop_note=note), base["workload"])

    # ------------------------------------------------------------ services, ingresses
    def services(self):
        endpoints = self.objects.get("Endpoints", {})
        pods = self.items("Pod")
        for service in self.items("Service"):
            namespace, name = ko.meta(service)
            spec = service.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or spec.get("type") == "ExternalName":
                continue
            if (namespace, name) not in endpoints and self.partial:
                continue  # its Endpoints may exist but not have been listed
            subsets = (endpoints.get((namespace, name)) or {}).get("subsets") or []
            ready = sum(len(s.get("addresses") or []) for s in subsets)
            if ready:
                continue
            not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
            matching = [p for p in pods if ko.meta(p)[0] == namespace and ko.matches(selector, p)]
            if not matching:
                why = "no pod in %s has the labels %s" % (namespace, ko.selector_text(selector))
            else:
                why = "%d pod(s) match its selector but none is ready (%s)" % (
                    len(matching), ", ".join(sorted(ko.meta(p)[1] for p in matching if not ko.pod_ready(p))[:5]) or "not ready")
            self._add("k8s.service_no_endpoints", {"namespace": namespace, "service": name, "selector": ko.selector_text(selector),
                                                   "matching_pods": len(matching), "not_ready": not_ready, "why": why},
                      "service %s/%s" % (namespace, name))

    def ingresses(self):
        services = self.objects.get("Service", {})
        for ingress in self.items("Ingress"):
            namespace, name = ko.meta(ingress)
            for service, host, path in ko.ingress_backends(ingress):
                if (namespace, service) in services or (self.partial and not any(ns == namespace for ns, _n in services)):
                    continue
                self._add("k8s.ingress_backend_missing", {"namespace": namespace, "ingress": name, "service": service,
                                                          "rule_host": host, "path": path},
                          "ingress %s/%s" % (namespace, name))

    # ------------------------------------------------------------ workloads
    def deployments(self):
        for deployment in self.items("Deployment"):
            namespace, name = ko.meta(deployment)
            spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
            desired = spec.get("replicas", 1)
            available = int(status.get("availableReplicas") or 0)
            if not desired or available >= desired or spec.get("paused"):
                continue
            revision = ko.revision(deployment)
            older = [ko.revision(rs) for rs in self.items("ReplicaSet") if ko.meta(rs)[0] == namespace and ko.owner(rs) == ("Deployment", name)]
            older = [r for r in older if r is not None and revision is not None and r < revision]
            progressing = ko.condition(deployment, "Progressing")
            progress = "%s: %s" % (progressing.get("reason"), self._text(progressing.get("message")).rstrip(".")) if progressing else "(no condition)"
            self._add("k8s.deployment_unavailable", {
                "namespace": namespace, "deployment": name, "desired": desired, "available": available,
                "unavailable": int(status.get("unavailableReplicas") or (desired - available)),
                "updated": int(status.get("updatedReplicas") or 0), "revision": revision if revision is not None else "?",
                "previous_revision": max(older) if older else None,
                "progress": progress, "none_available": available == 0,
                "deadline_exceeded": progressing.get("reason") == "ProgressDeadlineExceeded"}, "deployment %s/%s" % (namespace, name))

    def replicasets(self):
        for rs in self.items("ReplicaSet"):
            failure = ko.condition(rs, "ReplicaFailure")
            if failure.get("status") != "True":
                continue
            namespace, name = ko.meta(rs)
            kind, owner = ko.owner(rs)
            self._add("k8s.replicaset_failure", {
                "namespace": namespace, "replicaset": name, "workload": "%s/%s" % (kind.lower(), owner) if owner else "replicaset/%s" % name,
                "reason": failure.get("reason") or "(no reason)", "message": self._text(failure.get("message")) or "(no message)"},
                "replicaset %s/%s" % (namespace, name))

    def statefulsets(self):
        services = self.objects.get("Service", {})
        for sts in self.items("StatefulSet"):
            namespace, name = ko.meta(sts)
            spec, status = sts.get("spec") or {}, sts.get("status") or {}
            desired = spec.get("replicas", 1)
            ready = int(status.get("readyReplicas") or 0)
            if not desired or ready >= desired:
                continue
            governing = spec.get("serviceName")
            note = (" Its governing service %s does not exist, so its pods get no stable DNS names." % governing
                    if governing and (namespace, governing) not in services and "Service" in self.objects else "")
            self._add("k8s.statefulset_unavailable", {"namespace": namespace, "statefulset": name, "desired": desired, "ready": ready,
                                                      "service_note": note, "none_ready": ready == 0},
                      "statefulset %s/%s" % (namespace, name))

    def pvcs(self):
        events = self.items("Event")
        for pvc in self.items("PersistentVolumeClaim"):
            phase = (pvc.get("status") or {}).get("phase")
            if phase not in ("Pending", "Lost"):
                continue
            namespace, name = ko.meta(pvc)
            said = [e for e in events if (e.get("involvedObject") or {}).get("kind") == "PersistentVolumeClaim"
                    and (e.get("involvedObject") or {}).get("name") == name and ko.meta(e)[0] == namespace and e.get("type") == "Warning"]
            said.sort(key=lambda e: ko.event_window(e)[2] or 0)
            created = ko.epoch((pvc.get("metadata") or {}).get("creationTimestamp"))
            self._add("k8s.pvc_pending", {
                "namespace": namespace, "pvc": name, "phase": phase,
                "storage_class": (pvc.get("spec") or {}).get("storageClassName") or "(cluster default)",
                "message": ("%s: %s" % (said[-1].get("reason"), self._text(said[-1].get("message")))) if said else "(no warning event)",
                "pending_seconds": max(0, int(self.now - created)) if created else None}, "pvc %s/%s" % (namespace, name))

    def cronjobs(self):
        jobs = {}
        for job in self.items("Job"):
            kind, owner = ko.owner(job)
            if kind == "CronJob":
                jobs.setdefault((ko.meta(job)[0], owner), []).append(job)
        for cronjob in self.items("CronJob"):
            namespace, name = ko.meta(cronjob)
            own = sorted(jobs.get((namespace, name), []), key=lambda j: ko.epoch((j.get("metadata") or {}).get("creationTimestamp")) or 0)
            if not own:
                continue
            last = own[-1]
            failed = ko.condition(last, "Failed")
            if failed.get("status") != "True":
                continue
            failures = [j for j in own if ko.condition(j, "Failed").get("status") == "True"]
            self._add("k8s.cronjob_failed", {
                "namespace": namespace, "cronjob": name, "job": ko.meta(last)[1], "reason": failed.get("reason") or "(no reason)",
                "message": self._text(failed.get("message")) or "(no message)", "count": len(failures), "jobs_seen": len(own),
                "first_seen": ko.iso(ko.epoch(ko.condition(failures[0], "Failed").get("lastTransitionTime"))),
                "last_seen": ko.iso(ko.epoch(failed.get("lastTransitionTime")))}, "cronjob %s/%s" % (namespace, name))

    # ------------------------------------------------------------ events
    def events(self):
        probes, others = {}, {}
        for event in self.items("Event"):
            if event.get("type") != "Warning":
                continue
            involved = event.get("involvedObject") or {}
            namespace = involved.get("namespace") or ko.meta(event)[0]
            count, first, last = ko.event_window(event)
            reason = event.get("reason") or "(no reason)"
            probe = ko.probe_kind(event.get("message")) if reason == "Unhealthy" else None
            if probe:
                field = re.match(r"^spec\.(?:initC|c)ontainers\{(.+)\}$", involved.get("fieldPath") or "")
                key = (namespace, involved.get("name"), probe, field.group(1) if field else None)
                entry = probes.setdefault(key, {"count": 0, "first": None, "last": None, "message": ""})
            elif reason in COVERED_EVENTS:
                continue
            else:
                key = (namespace, reason)
                entry = others.setdefault(key, {"count": 0, "first": None, "last": None, "message": "", "objects": set()})
                entry["objects"].add("%s/%s" % ((involved.get("kind") or "?").lower(), involved.get("name")))
            entry["count"] += count
            if first is not None and (entry["first"] is None or first < entry["first"]):
                entry["first"] = first
            if last is not None and (entry["last"] is None or last >= entry["last"]):
                entry["last"], entry["message"] = last, event.get("message")
            elif not entry["message"]:
                entry["message"] = event.get("message")
        for (namespace, pod, probe, container), entry in sorted(probes.items(), key=lambda pair: tuple(str(k) for k in pair[0])):
            pods = self.objects.get("Pod", {})
            evidence = dict(self._pod_base(pods[(namespace, pod)], container) if (namespace, pod) in pods else {
                "namespace": namespace, "pod": pod, "container": container, "workload": "pod/%s" % pod, "deployment": None})
            evidence.update(probe=probe, message=self._text(entry["message"]), count=entry["count"],
                            first_seen=ko.iso(entry["first"]), last_seen=ko.iso(entry["last"]))
            rule = "k8s.readiness_probe_failed" if probe == "readiness" else "k8s.liveness_probe_failed"
            self._add(rule, evidence, "pod %s/%s %s probe%s" % (namespace, pod, probe, " of %s" % container if container else ""))
        for (namespace, reason), entry in sorted(others.items()):
            objects = sorted(entry["objects"])
            self._add("k8s.warning_events", {"namespace": namespace, "reason": reason, "message": self._text(entry["message"]),
                                             "objects": ", ".join(objects[:5]) + (" and %d more" % (len(objects) - 5) if len(objects) > 5 else ""),
                                             "count": entry["count"], "first_seen": ko.iso(entry["first"]), "last_seen": ko.iso(entry["last"])},
                      "events %s %s" % (namespace, reason), value=entry["count"])

    # ------------------------------------------------------------ nodes, DNS
    def nodes(self):
        for node in self.items("Node"):
            name = ko.meta(node)[1]
            ready = ko.condition(node, "Ready")
            if ready and ready.get("status") != "True":
                self._add("k8s.node_not_ready", {"node": name, "status": ready.get("status"), "reason": ready.get("reason") or "(no reason)",
                                                 "message": self._text(ready.get("message")) or "(no message)",
                                                 "since": ready.get("lastTransitionTime") or "(unknown)"}, "node %s" % name)
            for kind in PRESSURE:
                cond = ko.condition(node, kind)
                if cond.get("status") == "True":
                    self._add("k8s.node_pressure", {"node": name, "condition": kind, "reason": cond.get("reason") or "(no reason)",
                                                    "message": self._text(cond.get("message")) or "(no message)",
                                                    "since": cond.get("lastTransitionTime") or "(unknown)"}, "node %s %s" % (name, kind))

    def coredns(self):
        pods = self.dns_items
        if pods is None:
            return
        self.facts["coredns"] = {"pods": len(pods), "ready": sum(1 for p in pods if ko.pod_ready(p))}
        down = [p for p in pods if not ko.pod_ready(p)]
        if not down:
            return
        reasons = []
        for pod in down:
            for _role, cs in ko.container_statuses(pod):
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason"):
                    reasons.append("%s: %s" % (ko.meta(pod)[1], waiting["reason"]))
                elif not cs.get("ready"):
                    reasons.append("%s: container %s not ready" % (ko.meta(pod)[1], cs.get("name")))
        ready = len(pods) - len(down)
        self._add("k8s.coredns_not_ready", {"namespace": "kube-system", "ready": ready, "total": len(pods), "none_ready": ready == 0,
                                            "not_ready_pods": ", ".join(sorted(ko.meta(p)[1] for p in down)),
                                            "reasons": "; ".join(reasons) or "no container reason given"}, "CoreDNS")


class K8sFamily(object):
    """Kubernetes pods, workloads, services and nodes through kubectl (k8sgpt's core analyzers as catalog rules)."""

    name = "k8s"
    title = "Kubernetes"
    enable = "set agentops_kubeconfig or agentops_k8s_namespaces (or run in a pod with a service account), with kubectl installed"
    redacts = True
    options = dict(
        kubeconfig=dict(type="str", default=""),
        namespaces=dict(type="list", elements="str", default=[]),
        context=dict(type="str", default=""),
        kubectl=dict(type="str", default="auto"),
        command_timeout=dict(type="float", default=10.0),
        drain_seconds=dict(type="float", default=0.0),
        serviceaccount_dir=dict(type="path", default=SERVICEACCOUNT),
    )
    variables = dict(
        kubeconfig=("kubeconfig", "Path on the host of the kubeconfig kubectl uses (passed as KUBECONFIG, never on a command line); empty "
                                  "uses in-cluster service-account credentials or kubectl's default kubeconfig."),
        namespaces=("k8s_namespaces", "Kubernetes namespaces to check; empty means the current namespace of the kubeconfig context, "
                                      "and * means all namespaces."),
        context=("k8s_context", "kubeconfig context to use; empty means its current context."),
        kubectl=("kubectl", "Path of the kubectl command, or auto to find it on PATH."),
        command_timeout=("command_timeout", "Seconds each supervisor or cluster client command (systemctl, pm2, docker, kubectl) may take "
                                            "before it is reported as not answering."),
        drain_seconds=("k8s_drain_seconds", "Seconds the application needs to drain on SIGTERM; when set, pods whose "
                                            "terminationGracePeriodSeconds is shorter are reported (0 means unknown)."),
    )
    secrets = {}
    enabled_by = ("kubeconfig", "k8s_namespaces")
    ranges = dict(command_timeout=[1, 120], drain_seconds=[0, 86400])

    def collect(self, module, params):
        check_ranges(self, params, "seconds")
        namespaces = [str(n).strip() for n in params["namespaces"]]
        bad = [n for n in namespaces if n != ALL and not (ko.NAMESPACE_NAME.match(n) and len(n) <= 63)]
        if bad:
            raise ValueError("namespaces must be Kubernetes namespace names (or * for all), got %r." % bad[0])
        if params["context"].startswith("-") or "\n" in params["context"]:
            raise ValueError("context must be a kubeconfig context name, got %r." % params["context"])
        if params["kubectl"] not in ("", "auto") and not os.path.isabs(params["kubectl"]):
            raise ValueError("kubectl must be auto or an absolute path, got %r." % params["kubectl"])
        if params["kubeconfig"] and not os.path.isabs(os.path.expanduser(params["kubeconfig"])):
            raise ValueError("kubeconfig must be an absolute path, got %r." % params["kubeconfig"])
        redactor = Redactor(key=params.get("redaction_key"))
        if params["kubectl"] in ("", "auto"):
            kubectl = find_bin("kubectl")
        else:
            kubectl = params["kubectl"] if os.path.isfile(params["kubectl"]) and os.access(params["kubectl"], os.X_OK) else None
        if not kubectl:
            return {"facts": {"kubectl": "not present", "reason": "no kubectl command on this host"}, "findings": [], "incomplete": []}
        kubeconfig = os.path.expanduser(params["kubeconfig"]) if params["kubeconfig"] else ""
        source, detail = credentials(kubeconfig, params["serviceaccount_dir"])
        if source is None:
            return {"facts": {"kubectl": "not present", "reason": detail}, "findings": [], "incomplete": []}
        # kubectl's discovery cache goes to a directory of this run, removed afterwards: nothing is left in ~/.kube.
        cache = tempfile.mkdtemp(prefix="agentops-kubectl-")
        env = dict(os.environ, KUBECACHEDIR=cache)
        if kubeconfig:
            env["KUBECONFIG"] = kubeconfig
        try:
            collector = K8sCollector(kubectl, env, params["context"], namespaces, params["command_timeout"], params["drain_seconds"],
                                     params["thresholds"], redactor)
            collector.facts.update(kubectl=kubectl, config_source=source, context=params["context"] or "(current)",
                                   namespaces_asked=namespaces or ["(current)"])
            if kubeconfig and not os.path.isfile(kubeconfig):
                collector._incomplete("kubeconfig", "%s does not exist on this host (agentops_kubeconfig)" % kubeconfig)
                return redactor.data({"facts": collector.facts, "findings": collector.findings, "incomplete": collector.incomplete})
            return redactor.data(collector.run())
        finally:
            shutil.rmtree(cache, ignore_errors=True)
