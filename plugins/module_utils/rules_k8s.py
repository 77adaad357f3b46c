# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the k8s family: one part of the rules catalog (merged into ``rules.RULES``, same format).

The checks follow k8sgpt's core analyzers (Pod, Deployment, ReplicaSet, Service, PVC, Ingress, StatefulSet, CronJob,
Node, Events). Every fix command is a kubectl command filled from the finding (namespace, pod, container, workload);
each is read-only (``rollout undo`` only with ``--dry-run=server``, which shows the rollback without doing it), so it
runs as printed. When the diagnosis used a kubeconfig context other than the current one, the command names it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("k8s", "Kubernetes")


def _k(*commands):
    """Alternatives for ``commands`` (most specific first): each with ``--context`` when the finding names one, then each as it is."""
    return [c.replace("kubectl ", "kubectl --context {context} ") for c in commands] + list(commands)


_LOGS = "kubectl -n {namespace} logs {pod} -c {container} --previous --tail=50; kubectl -n {namespace} describe pod {pod}"
_POD = "kubectl -n {namespace} describe pod {pod}"

RULES = {
    "k8s.crash_loop": {
        "category": "k8s",
        "title": "A pod's container is in CrashLoopBackOff",
        "symptom": ("Container {container} of pod {namespace}/{pod} ({workload}) is in CrashLoopBackOff after {restarts} restarts; "
                    "its last run ended {last_seen}: {exit_meaning}."),
        "diagnosis": (
            "The container exits soon after each start and the kubelet waits longer and longer (up to 5 minutes) before "
            "starting it again, so the pod is not ready most of the time and its service loses the endpoint. The exit "
            "code says where to look: exit 1 is the application's own error (its previous logs show it), 137 with "
            "OOMKilled is the memory limit ({memory_limit}), 137 or 143 without it is the kubelet stopping it (a failing "
            "liveness probe), 127 a command missing from the image. Kubelet's message: {waiting_message}"
        ),
        "fix": {
            "summary": ("Read the previous container's logs and fix what they name (a dependency, a setting, a bad release: roll the "
                        "deployment back); for OOMKilled raise the memory limit or lower --max-old-space-size."),
            "command": _k(_LOGS, _POD),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.oom_killed": {
        "category": "k8s",
        "title": "A container was OOMKilled at its memory limit",
        "symptom": ("Container {container} of pod {namespace}/{pod} was OOMKilled (exit {last_exit_code}) at {last_seen}; memory limit "
                    "{memory_limit}, {restarts} restarts."),
        "diagnosis": (
            "The container's processes together passed its memory limit and the kernel killed it, with no error in its "
            "own logs. For Node, V8's heap limit (--max-old-space-size) must leave room below the container's limit for "
            "code, buffers and native memory, or the heap grows past it; a real leak shows as memory climbing between "
            "restarts."
        ),
        "fix": {
            "summary": "Raise resources.limits.memory, or set NODE_OPTIONS=--max-old-space-size to about 75% of it; then look for a leak.",
            "command": _k(_LOGS, _POD),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.restarts": {
        "category": "k8s",
        "title": "A pod's container has restarted",
        "symptom": ("Container {container} of pod {namespace}/{pod} ({workload}) restarted {restarts} times since {first_seen}; the last "
                    "at {last_seen}: {exit_meaning}."),
        "diagnosis": (
            "It runs now, but each restart dropped its connections and in-flight requests. The last termination's "
            "reason and exit code say why; restarts close together are a crash loop in the making."
        ),
        "fix": {
            "summary": "Read the previous container's logs around the last restart and fix what they name.",
            "command": _k(_LOGS, _POD),
            "playbook": None,
        },
        # restartCount of the container since its pod started
        "thresholds": {"low": 3, "medium": 10, "high": 50},
    },
    "k8s.image_pull": {
        "category": "k8s",
        "title": "A pod cannot pull its image",
        "symptom": "Container {container} of pod {namespace}/{pod} is {reason} for image {image}: {message}",
        "diagnosis": (
            "The kubelet cannot pull the image: a tag or digest that does not exist, a private registry without (or "
            "with a wrong) imagePullSecret, a registry rate limit, or no route to the registry from the node. The pod "
            "never starts; a rollout that introduced it stays stuck."
        ),
        "fix": {
            "summary": "Correct the image reference or the imagePullSecrets, or roll the deployment back to the last image that pulled.",
            "command": _k(_POD + "; kubectl -n {namespace} get events --field-selector involvedObject.name={pod}"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.container_config_error": {
        "category": "k8s",
        "title": "A pod's container cannot be created from its configuration",
        "symptom": "Container {container} of pod {namespace}/{pod} is waiting in {reason}: {message}",
        "diagnosis": (
            "The kubelet cannot build the container: usually a ConfigMap or Secret (or a key of one) that the pod's env, "
            "envFrom or volumes name does not exist in the namespace, or a command the runtime refuses."
        ),
        "fix": {
            "summary": "Create the missing ConfigMap or Secret (or key), or correct the reference in the pod spec.",
            "command": _k(_POD),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.pod_pending": {
        "category": "k8s",
        "title": "A pod cannot be scheduled",
        "symptom": "Pod {namespace}/{pod} ({workload}) has been Pending for {pending_seconds} s: {reason}: {message}",
        "diagnosis": (
            "The scheduler found no node for it. Its message counts the nodes and why each was rejected: Insufficient "
            "memory or cpu (requests larger than any node has free), a taint the pod does not tolerate, a nodeSelector "
            "or affinity nothing matches, or a volume bound to another zone."
        ),
        "fix": {
            "summary": "Lower the pod's requests, add or free node capacity, or correct its selectors and tolerations.",
            "command": _k(_POD + "; kubectl get nodes -o wide"),
            "playbook": None,
        },
        # seconds since the scheduler first failed to place it
        "thresholds": {"medium": 0, "high": 300},
    },
    "k8s.liveness_probe_failed": {
        "category": "k8s",
        "title": "A liveness (or startup) probe fails and the kubelet restarts the container",
        "symptom": "Pod {namespace}/{pod}: {probe} probe failed {count} times between {first_seen} and {last_seen}; last: {message}",
        "diagnosis": (
            "After failureThreshold failures the kubelet kills the container (exit 137 or 143) and starts it again. A "
            "probe that times out under load, or checks a dependency, turns a slow moment into restarts for every "
            "replica at once: a liveness probe should answer from the process alone, with timeoutSeconds above its "
            "slowest answer."
        ),
        "fix": {
            "summary": ("Make the probe cheap and local (no database call), raise timeoutSeconds/failureThreshold, or use a "
                        "startupProbe for slow starts; read the logs of the killed container."),
            "command": _k(_POD + "; kubectl -n {namespace} logs {pod} -c {container} --previous --tail=50",
                          _POD + "; kubectl -n {namespace} logs {pod} --previous --tail=50"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.readiness_probe_failed": {
        "category": "k8s",
        "title": "A readiness probe fails and the pod gets no traffic",
        "symptom": "Pod {namespace}/{pod}: readiness probe failed {count} times between {first_seen} and {last_seen}; last: {message}",
        "diagnosis": (
            "While its readiness probe fails the pod is removed from its services' endpoints: requests go to the other "
            "replicas, or fail with 503 when none is ready. The probe's message shows what it saw (a status code, a "
            "timeout, connection refused)."
        ),
        "fix": {
            "summary": "Fix what the probe reports (a dependency down, a slow start) or correct the probe's path, port and timeout.",
            "command": _k(_POD + "; kubectl -n {namespace} get endpoints -o wide"),
            "playbook": None,
        },
        "severity": "medium",
        "thresholds": {},
    },
    "k8s.service_no_endpoints": {
        "category": "k8s",
        "title": "A service has no ready endpoints",
        "symptom": "Service {namespace}/{service} (selector {selector}) has no ready endpoint ({not_ready} not ready): {why}.",
        "diagnosis": (
            "Every connection to the service fails (connection refused or 503 at the ingress) although the service "
            "exists: either no pod carries the selector's labels (a renamed label, a deployment scaled to 0) or the "
            "pods that do are not ready (failing readiness probes, crash loops)."
        ),
        "fix": {
            "summary": "Make the matching pods ready, or correct the service's selector to the labels the pods carry.",
            "command": _k("kubectl -n {namespace} get endpoints {service} -o wide; kubectl -n {namespace} get pods -l {selector} -o wide"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.ingress_backend_missing": {
        "category": "k8s",
        "title": "An ingress routes to a service that does not exist",
        "symptom": "Ingress {namespace}/{ingress} sends {rule_host}{path} to service {service}, which does not exist in {namespace}.",
        "diagnosis": (
            "The ingress controller has nowhere to send these requests and answers 503 (or 404): the service was renamed "
            "or deleted, or the ingress names it with a typo or in another namespace."
        ),
        "fix": {
            "summary": "Point the ingress backend at the existing service (name and port), or create the service.",
            "command": _k("kubectl -n {namespace} describe ingress {ingress}; kubectl -n {namespace} get services"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.deployment_unavailable": {
        "category": "k8s",
        "title": "A deployment has unavailable replicas",
        "symptom": ("Deployment {namespace}/{deployment} (revision {revision}) has {available} of {desired} replicas available "
                    "({unavailable} unavailable, {updated} updated); progress: {progress}."),
        "diagnosis": (
            "Fewer replicas serve than asked for. Right after a rollout (ProgressDeadlineExceeded, new pods crash-looping "
            "or not ready) the new revision is the usual cause and rolling back restores service while it is fixed; "
            "otherwise the pods' own findings (pending, image pull, crash loop) name the cause."
        ),
        "fix": {
            "summary": ("If the last rollout caused it, roll back to the previous revision: the printed command shows the rollback "
                        "(--dry-run=server); run it without --dry-run to apply it, then kubectl rollout status. With no earlier "
                        "revision, fix the cause its pods' findings name."),
            "command": _k("kubectl -n {namespace} rollout history deployment/{deployment}; "
                          "kubectl -n {namespace} rollout undo deployment/{deployment} --to-revision={previous_revision} --dry-run=server",
                          "kubectl -n {namespace} rollout history deployment/{deployment}; kubectl -n {namespace} describe deployment {deployment}"),
            "playbook": None,
        },
        "severity": "medium",
        "floors": [{"name": "when_none_available", "when": "none_available", "severity": "high",
                    "because": "no replica is available"},
                   {"name": "when_deadline_exceeded", "when": "deadline_exceeded", "severity": "high",
                    "because": "the rollout passed its progress deadline"}],
        "thresholds": {},
    },
    "k8s.replicaset_failure": {
        "category": "k8s",
        "title": "A replica set cannot create its pods",
        "symptom": "ReplicaSet {namespace}/{replicaset} ({workload}) cannot create pods: {reason}: {message}",
        "diagnosis": (
            "The controller's pod creation is refused by the API server: a ResourceQuota or LimitRange exceeded, a "
            "PodSecurity or admission webhook rejection, or a missing service account. No pod of it even reaches the scheduler."
        ),
        "fix": {
            "summary": "Fix what the API server refuses (raise the quota, meet the security policy, create the service account).",
            "command": _k("kubectl -n {namespace} describe replicaset {replicaset}"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.statefulset_unavailable": {
        "category": "k8s",
        "title": "A stateful set has replicas that are not ready",
        "symptom": "StatefulSet {namespace}/{statefulset} has {ready} of {desired} replicas ready.{service_note}",
        "diagnosis": (
            "A stateful set starts its pods in order: one pod that does not become ready (a volume that does not bind, "
            "a crash loop) holds back every pod after it."
        ),
        "fix": {
            "summary": "Fix the first pod that is not ready (its volume claim, its logs); create the governing service if it is missing.",
            "command": _k("kubectl -n {namespace} describe statefulset {statefulset}"),
            "playbook": None,
        },
        "severity": "medium",
        "floors": [{"name": "when_none_ready", "when": "none_ready", "severity": "high", "because": "no replica is ready"}],
        "thresholds": {},
    },
    "k8s.pvc_pending": {
        "category": "k8s",
        "title": "A persistent volume claim is not bound",
        "symptom": "PersistentVolumeClaim {namespace}/{pvc} is {phase} (storage class {storage_class}): {message}",
        "diagnosis": (
            "No volume is bound to the claim, so every pod that mounts it stays Pending: the storage class does not "
            "exist or has no provisioner, the provisioner fails (quota, zone), or a static claim matches no volume."
        ),
        "fix": {
            "summary": "Name an existing storage class (or set a default one), or fix its provisioner; then the pods schedule.",
            "command": _k("kubectl -n {namespace} describe pvc {pvc}; kubectl get storageclass"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.cronjob_failed": {
        "category": "k8s",
        "title": "A cron job's last run failed",
        "symptom": "CronJob {namespace}/{cronjob}: its last job {job} failed ({reason}: {message}); {count} of the {jobs_seen} jobs kept failed.",
        "diagnosis": (
            "The scheduled task did not complete: its pods failed more often than backoffLimit allows "
            "(BackoffLimitExceeded) or ran past activeDeadlineSeconds (DeadlineExceeded). Whatever it maintains (a "
            "cleanup, a report, a token refresh) is now stale."
        ),
        "fix": {
            "summary": "Read the failed job's pod logs, fix the cause, and run it once by hand (kubectl create job --from=cronjob/NAME).",
            "command": _k("kubectl -n {namespace} logs job/{job} --tail=50; kubectl -n {namespace} describe job {job}"),
            "playbook": None,
        },
        "severity": "medium",
        "thresholds": {},
    },
    "k8s.node_not_ready": {
        "category": "k8s",
        "title": "A node is not ready",
        "symptom": "Node {node} is Ready={status} since {since}: {reason}: {message}",
        "diagnosis": (
            "The kubelet stopped reporting (the node is down, out of resources or cut off) or reports itself unhealthy "
            "(container runtime, network plugin). After the eviction timeout its pods are rescheduled elsewhere; until "
            "then they are unreachable."
        ),
        "fix": {
            "summary": "Check the node's kubelet and container runtime (journalctl -u kubelet on it), or drain and replace it.",
            "command": _k("kubectl describe node {node}"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.node_pressure": {
        "category": "k8s",
        "title": "A node reports memory, disk or PID pressure",
        "symptom": "Node {node} has {condition} since {since}: {reason}: {message}",
        "diagnosis": (
            "The kubelet is short of a resource: it taints the node so no new pods land there and evicts pods (lowest "
            "priority and BestEffort first) to recover. MemoryPressure comes before OOM kills, DiskPressure from images, "
            "logs and emptyDir volumes, PIDPressure from processes that spawn without reaping."
        ),
        "fix": {
            "summary": "Find what uses the resource on the node (pods without limits, images, logs, runaway processes) and free it.",
            "command": _k("kubectl describe node {node}"),
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "k8s.coredns_not_ready": {
        "category": "k8s",
        "title": "CoreDNS pods are not ready",
        "symptom": "{ready} of {total} CoreDNS pods in kube-system are ready; not ready: {not_ready_pods} ({reasons}).",
        "diagnosis": (
            "Cluster DNS answers every service lookup: with CoreDNS down, pods fail to resolve names (getaddrinfo "
            "EAI_AGAIN or ENOTFOUND in Node) although the services themselves are up. Fewer ready replicas also mean "
            "slower, dropped lookups under load."
        ),
        "fix": {
            "summary": "Read the CoreDNS logs (a Corefile error, a loop, an upstream that does not answer) and restore its pods.",
            "command": _k("kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide; kubectl -n kube-system logs -l k8s-app=kube-dns --tail=30"),
            "playbook": None,
        },
        "severity": "high",
        "floors": [{"name": "when_none_ready", "when": "none_ready", "severity": "critical", "because": "no CoreDNS pod is ready"}],
        "thresholds": {},
    },
    "k8s.heap_over_limit": {
        "category": "k8s",
        "title": "A container's V8 heap limit is at or above its memory limit",
        "symptom": ("Container {container} of {workload} in {namespace} lets V8's heap grow to {heap_mb} MB ({heap_source}) under a "
                    "memory limit of {memory_limit} ({heap_percent}%)."),
        "diagnosis": (
            "The heap alone may fill the container's limit before V8 collects harder or fails with 'JavaScript heap out "
            "of memory'; with code, buffers and native memory on top the kernel kills the container first (OOMKilled, "
            "exit 137) and the logs show no error."
        ),
        "fix": {
            "summary": "Set --max-old-space-size to about 75% of the memory limit (in NODE_OPTIONS or the command), or raise the limit.",
            "command": _k(_POD),
            "playbook": None,
        },
        # --max-old-space-size as a percentage of resources.limits.memory
        "thresholds": {"medium": 75.0, "high": 100.0},
    },
    "k8s.grace_shorter_than_drain": {
        "category": "k8s",
        "title": "terminationGracePeriodSeconds is shorter than the application's drain time",
        "symptom": ("Pods of {workload} in {namespace} get {grace_seconds} s between SIGTERM and SIGKILL; the application needs "
                    "{drain_seconds} s to drain.{prestop_note}"),
        "diagnosis": (
            "On every rollout, scale-down or eviction the kubelet kills the container (exit 137) before it has finished "
            "its in-flight requests and spawned CLI children: those requests fail and the children may be left "
            "half-done. The grace period includes the preStop hook."
        ),
        "fix": {
            "summary": "Raise terminationGracePeriodSeconds above the drain time plus any preStop sleep.",
            "command": _k("kubectl -n {namespace} get pod {pod} -o yaml | grep -E 'terminationGracePeriodSeconds|preStop'"),
            "playbook": None,
        },
        "severity": "medium",
        "thresholds": {},
    },
    "k8s.warning_events": {
        "category": "k8s",
        "title": "Kubernetes warning events",
        "symptom": "{count} {reason} warning event(s) in {namespace} between {first_seen} and {last_seen} ({objects}); last: {message}",
        "diagnosis": (
            "Warnings no other check explains (volumes that fail to mount, sandboxes that cannot be created, evictions, "
            "failed creations). Kubernetes keeps events for about an hour, so these are recent."
        ),
        "fix": {
            "summary": "Read the events and the objects they name; fix what the message says.",
            "command": _k("kubectl -n {namespace} get events --field-selector type=Warning,reason={reason}"),
            "playbook": None,
        },
        # events of one reason in one namespace, summed over their counts
        "thresholds": {"low": 1, "medium": 10},
    },
    "k8s.check_incomplete": {
        "category": "k8s",
        "title": "The cluster could not be read",
        "symptom": "Could not read {what}: {error}",
        "diagnosis": (
            "What kubectl did not answer is unknown, not healthy: a crash loop or an unready service there would not "
            "show in this report. Usual causes: RBAC that does not allow listing a resource (nodes and kube-system need "
            "cluster-wide rights), an API server that does not answer in agentops_command_timeout, an expired token or "
            "a kubeconfig that is not on this host."
        ),
        "fix": {
            "summary": "Check what the credentials may list, and the kubeconfig and context the diagnosis uses.",
            "command": _k("kubectl auth can-i --list"),
            "playbook": None,
        },
        "thresholds": {},
    },
}
