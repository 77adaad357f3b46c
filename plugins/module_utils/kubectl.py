# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every kubectl command the remediation modules run, built in one place, and the reading of a Deployment's revisions.

A Deployment's revisions are those of the ReplicaSets it owns (annotation ``deployment.kubernetes.io/revision``);
the live one is the Deployment's own annotation. ``kubectl rollout undo --to-revision=N`` gives the template of
revision N a new, higher number and records N in that ReplicaSet's ``deployment.kubernetes.io/revision-history``, so
"already at N" means: N is live, or N is in the live ReplicaSet's history.

No secret is ever put on a command line: credentials come from the kubeconfig (``--kubeconfig``), never ``--token``.
Helpers raise :class:`KubectlError` with one sentence; the modules' top level turns it into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex

REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"
# How a module reaches kubectl: its argument spec (documented by the agentops.runbooks.kubectl doc fragment).
CLIENT_SPEC = dict(kubectl=dict(type="str", default="kubectl"), kubeconfig=dict(type="path"), context=dict(type="str"))
# A Deployment name (DNS-1123 subdomain) and a namespace (DNS-1123 label), as the API server accepts them.
NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
NAMESPACE = re.compile(r"^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
REVISION_WORD = re.compile(r"^(previous|[1-9][0-9]{0,9})$")


class KubectlError(Exception):
    """One sentence: what kubectl could not do, or why a request is refused."""


def check_names(deployment, namespace):
    """ValueError naming the option when the Deployment or namespace is not a name the API server accepts."""
    if not NAME.match(deployment or ""):
        raise ValueError("deployment must be a Deployment name (lower-case letters, digits, '-' and '.'), got %r." % deployment)
    if not NAMESPACE.match(namespace or ""):
        raise ValueError("namespace must be a namespace name (lower-case letters, digits and '-'), got %r." % namespace)


def shown(argv):
    """A command as a user would type it."""
    return " ".join(shlex.quote(str(part)) for part in argv)


def live_revision(obj):
    """The revision annotation of a Deployment or ReplicaSet, or None."""
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION))
    except (TypeError, ValueError):
        return None


def revisions(deployment, replicasets):
    """``{current, history, live_history}`` of a Deployment (``kubectl get deployment -o json``) from the
    ReplicaSets (``kubectl get replicasets -o json``) it owns: the live revision, every revision still recorded, and
    the revisions the live ReplicaSet held before (rollbacks renumber a template)."""
    uid = (deployment.get("metadata") or {}).get("uid")
    name = (deployment.get("metadata") or {}).get("name")
    current = live_revision(deployment)
    history, live_history = set(), []
    for item in replicasets.get("items") or []:
        owners = (item.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("kind") == "Deployment" and (o.get("uid") == uid if uid else o.get("name") == name) for o in owners):
            continue
        number = live_revision(item)
        if number is None:
            continue
        history.add(number)
        if number == current:
            older = ((item.get("metadata") or {}).get("annotations") or {}).get(HISTORY) or ""
            live_history = sorted(int(n) for n in older.split(",") if n.strip().isdigit())
    if current is None:
        raise KubectlError("deployment/%s has no %s annotation yet; it has never rolled out." % (name, REVISION))
    return {"current": current, "history": sorted(history), "live_history": live_history}


def target_revision(state, wanted, resource):
    """The revision to undo to (an int), or None when the Deployment already runs ``wanted``."""
    if wanted == "previous":
        older = [n for n in state["history"] if n < state["current"]]
        if not older:
            raise KubectlError("%s is at revision %d and has no earlier revision; there is nothing to roll back to." % (
                resource, state["current"]))
        return max(older)
    number = int(wanted)
    if number == state["current"] or number in state["live_history"]:
        return None
    if number not in state["history"]:
        raise KubectlError("%s has no revision %d (its revisions are %s); nothing was done." % (
            resource, number, ", ".join(str(n) for n in state["history"]) or "none"))
    return number


class Kubectl(object):
    """kubectl for one namespace. ``run(argv, timeout, env)`` returns ``(rc, stdout, stderr)`` and raises OSError when
    the command cannot start or runs past its time. A kubeconfig goes in the environment (``KUBECONFIG``), as the k8s
    family passes it, never on the command line."""

    def __init__(self, run, binary="kubectl", namespace="default", kubeconfig=None, context=None, timeout=30.0):
        self.run = run
        self.base = [binary] + (["--context=%s" % context] if context else [])
        self.kubeconfig = kubeconfig
        self.env = dict(os.environ, KUBECONFIG=kubeconfig) if kubeconfig else None
        self.namespace = namespace
        self.timeout = timeout

    def show(self, argv):
        """A command as a user would type it, with its KUBECONFIG when one is set."""
        return ("KUBECONFIG=%s " % shlex.quote(self.kubeconfig) if self.kubeconfig else "") + shown(argv)

    def argv(self, args, options=()):
        """``kubectl <args> -n <namespace> <options>``, as kubectl's own examples write it."""
        return self.base + list(args) + ["-n", self.namespace] + list(options)

    # ------------------------------------------------------------ the commands
    def undo_argv(self, name, revision):
        return self.argv(["rollout", "undo", "deployment/%s" % name], ["--to-revision=%d" % revision])

    def restart_argv(self, name):
        return self.argv(["rollout", "restart", "deployment/%s" % name])

    def status_argv(self, name, seconds):
        return self.argv(["rollout", "status", "deployment/%s" % name], ["--timeout=%ds" % seconds])

    # ------------------------------------------------------------ running them
    def call(self, argv, timeout=None):
        """stdout of ``argv``; KubectlError with kubectl's own message when it fails."""
        try:
            rc, out, err = self.run(argv, timeout or self.timeout, self.env)
        except OSError as exc:
            raise KubectlError("%s failed: %s." % (self.show(argv), str(exc.strerror or exc).rstrip(".")))
        if rc != 0:
            message = " ".join((err or out).split()) or "exit status %d" % rc
            raise KubectlError("%s failed: %s" % (self.show(argv), message if message.endswith(".") else message + "."))
        return out

    def get_json(self, *args):
        argv = self.argv(args, ["-o", "json"])
        out = self.call(argv)
        try:
            return json.loads(out)
        except ValueError:
            raise KubectlError("%s did not print JSON." % self.show(argv))

    def deployment(self, name):
        return self.get_json("get", "deployment", name)

    def state(self, name):
        """The revisions of ``deployment/name`` (see :func:`revisions`)."""
        deployment = self.deployment(name)
        return revisions(deployment, self.get_json("get", "replicasets"))

    def wait(self, name, seconds):
        """``(ready, output)`` of ``kubectl rollout status --timeout``: False when the rollout did not finish in time
        (kubectl exits non-zero), with kubectl's last words."""
        argv = self.status_argv(name, seconds)
        try:
            rc, out, err = self.run(argv, seconds + 30, self.env)
        except OSError as exc:
            return False, str(exc.strerror or exc)
        lines = [line.strip() for line in (out + "\n" + err).splitlines() if line.strip()]
        return rc == 0, " ".join(lines[-2:])[:500]
