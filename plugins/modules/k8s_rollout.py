#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_rollout
short_description: Roll a Kubernetes Deployment back to its previous or a named revision and wait for it
version_added: 0.2.0
description:
  - Reads the Deployment and the ReplicaSets it owns (C(kubectl get -o json)) to learn its live revision and the
    revisions still recorded, then runs C(kubectl rollout undo deployment/<name> --to-revision=<N>) and, with
    O(wait), C(kubectl rollout status --timeout=<timeout>s).
  - O(revision=previous) resolves to the highest revision below the live one before anything runs, so the command
    shown in check mode is the exact one that runs, and RV(revert_commands) is the exact way back.
  - A named revision that is already live (or that the live ReplicaSet held before a rollback renumbered it) changes
    nothing, so a second run with a named revision is idempotent. V(previous) steps back on every run.
  - A rollout that does not become ready in time does not fail the module; RV(ready) is false and the caller decides
    (the C(deploy_rollback) role reverts with RV(revert_commands)). A kubectl command that fails does fail it, with
    kubectl's message in one sentence.
  - Credentials come from the kubeconfig; nothing secret is passed on a command line.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.kubectl
options:
  deployment:
    description: The Deployment's name.
    type: str
    required: true
  namespace:
    description: Its namespace.
    type: str
    default: default
  revision:
    description: V(previous), or the revision number to roll back to (as C(kubectl rollout history) lists it).
    type: str
    default: previous
  wait:
    description: Wait for C(kubectl rollout status) after the undo.
    type: bool
    default: true
  timeout:
    description: Seconds C(kubectl rollout status) waits for the rollout (1 to 3600).
    type: int
    default: 300
  command_timeout:
    description: Seconds each reading command may take (1 to 600).
    type: float
    default: 30.0
attributes:
  check_mode:
    support: full
    description: Reads the Deployment and returns the exact commands it would run (RV(commands)); runs none of them.
  diff_mode:
    support: none
    description: The revisions before and after are in RV(from_revision) and RV(to_revision).
"""

EXAMPLES = r"""
- name: Roll the api Deployment back to the revision before the live one
  agentops.runbooks.k8s_rollout:
    deployment: api
    namespace: agents
    timeout: 120
  register: rollout

- name: Go back if it never became ready
  agentops.runbooks.k8s_rollout:
    deployment: api
    namespace: agents
    revision: "{{ rollout.from_revision }}"
  when: not rollout.ready
"""

RETURN = r"""
from_revision:
  description: The live revision before the undo.
  returned: always
  type: int
to_revision:
  description: The revision rolled back to (its template); null when nothing was to be done.
  returned: always
  type: int
revision:
  description: The live revision afterwards (a rollback gives the old template a new number); in check mode the live one.
  returned: always
  type: int
ready:
  description: Whether the rollout finished within O(timeout) (true when nothing was rolled back or O(wait) is false).
  returned: always
  type: bool
status:
  description: The last words of C(kubectl rollout status).
  returned: when it ran
  type: str
commands:
  description: The commands run (or, in check mode, that would run), as a user would type them.
  returned: always
  type: list
  elements: str
revert_commands:
  description: The commands that go back to RV(from_revision) (empty when nothing was rolled back).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import kubectl as kc
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.services import run_command


def rollback(params, client, check_mode):
    """The rollback as a result dict (without changed); KubectlError or ValueError for what cannot be done."""
    name = params["deployment"]
    resource = "deployment/%s in namespace %s" % (name, params["namespace"])
    state = client.state(name)
    target = kc.target_revision(state, params["revision"], resource)
    result = {"from_revision": state["current"], "to_revision": target, "revision": state["current"], "ready": True,
              "commands": [], "revert_commands": []}
    if target is None:
        return result
    steps = [client.undo_argv(name, target)] + ([client.status_argv(name, params["timeout"])] if params["wait"] else [])
    back = [client.undo_argv(name, state["current"])] + ([client.status_argv(name, params["timeout"])] if params["wait"] else [])
    result.update(commands=[client.show(a) for a in steps], revert_commands=[client.show(a) for a in back])
    if check_mode:
        return result
    client.call(steps[0])
    if params["wait"]:
        result["ready"], result["status"] = client.wait(name, params["timeout"])
    result["revision"] = kc.live_revision(client.deployment(name))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            deployment=dict(type="str", required=True), namespace=dict(type="str", default="default"),
            revision=dict(type="str", default="previous"), wait=dict(type="bool", default=True),
            timeout=dict(type="int", default=300), command_timeout=dict(type="float", default=30.0), **kc.CLIENT_SPEC
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        kc.check_names(p["deployment"], p["namespace"])
        if not kc.REVISION_WORD.match(p["revision"] or ""):
            raise ValueError("revision must be previous or a revision number, got %r." % p["revision"])
        if not 1 <= p["timeout"] <= 3600:
            raise ValueError("timeout must be between 1 and 3600, got %s." % p["timeout"])
        if not 1 <= p["command_timeout"] <= 600:
            raise ValueError("command_timeout must be between 1 and 600, got %s." % p["command_timeout"])
        client = kc.Kubectl(lambda argv, timeout, env: run_command(argv, timeout, env=env), p["kubectl"], p["namespace"], p["kubeconfig"],
                            p["context"], p["command_timeout"])
        result = rollback(p, client, module.check_mode)
    except (ValueError, kc.KubectlError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=result["to_revision"] is not None, **result)


if __name__ == "__main__":
    main()
