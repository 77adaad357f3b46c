#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: service_restart
short_description: Restart allowed services (systemd units, pm2 apps, containers, Deployments) at most once per window
version_added: 0.2.0
description:
  - Restarts each of O(targets) - C(systemctl restart <unit>), C(pm2 restart <name>) (with the app's C(PM2_HOME), as
    the daemon's user), C(docker restart <name>) or C(podman restart <name>), C(kubectl rollout restart
    deployment/<name> -n <namespace>) followed by C(kubectl rollout status) - and records every restart in
    C(<record_dir>/restarts.json) (directory 0700, file 0600, never written through a symbolic link).
  - Guardrails, all checked before anything is restarted - a target that is not on O(allowed) is refused (RV(refused))
    and nothing is restarted; every target must exist (the unit is installed, a running pm2 daemon knows the app, a
    container runtime knows the container, the Deployment exists); a pm2 daemon is never started; a target restarted
    successfully less than O(window) seconds ago (per the record) is left alone and says so.
  - The engine of the C(agentops.runbooks.service_restart) role, which adds the dry run, the health gate and the
    published result.
  - Stops at the first restart that fails (or Deployment that does not become ready) and fails with one sentence; the
    targets after it are not restarted. What was done is recorded first.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.kubectl
options:
  targets:
    description: What to restart, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      kind:
        description: What kind of service it is.
        type: str
        required: true
        choices: [systemd, pm2, container, deployment]
      name:
        description: The unit (C(agent) means C(agent.service)), pm2 app, container or Deployment name.
        type: str
        required: true
      namespace:
        description: The Deployment's namespace (C(deployment) only).
        type: str
        default: default
      pm2_home:
        description: The pm2 daemon's C(PM2_HOME) (C(pm2) only). Default is the one running daemon that knows the app.
        type: path
      runtime:
        description: The container runtime (C(container) only). Default is the first of O(runtimes) that knows the container.
        type: str
        choices: [docker, podman]
  allowed:
    description:
      - What may be restarted. A unit name (as in C(agentops_services)), a C({pattern, unit, command}) entry of
        C(agentops_services) (its C(unit)), or C({kind, name, namespace}) for any kind.
      - An entry with only a C(command) allows nothing here (a target is named by kind and name).
    type: list
    elements: raw
    default: []
  window:
    description: Seconds during which a target restarted successfully is not restarted again (0 to 604800; 0 always restarts).
    type: int
    default: 300
  record_dir:
    description: Directory of the record C(restarts.json).
    type: path
    required: true
  pm2:
    description: The pm2 command (an absolute path), or V(auto) to use the pm2 that started the daemon, else the one on PATH.
    type: str
    default: auto
  runtimes:
    description: Container runtimes to ask, in order.
    type: list
    elements: str
    default: [docker, podman]
  rollout_timeout:
    description: Seconds a restarted Deployment may take to become ready (1 to 3600).
    type: int
    default: 300
  command_timeout:
    description: Seconds each other command may take (1 to 3600).
    type: float
    default: 120.0
attributes:
  check_mode:
    support: full
    description:
      - Runs only the reading commands (C(systemctl show), C(pm2 jlist), C(container inspect), C(kubectl get)) and returns
        the exact restart commands in RV(commands).
  diff_mode:
    support: none
    description: What was restarted is in RV(restarts).
"""

EXAMPLES = r"""
- name: Restart a crash-looping pm2 app and a systemd unit
  agentops.runbooks.service_restart:
    targets:
      - {kind: pm2, name: worker}
      - {kind: systemd, name: agent-api}
    allowed: [agent-api.service, {kind: pm2, name: worker}]
    record_dir: /var/tmp/agentops-restarts
"""

RETURN = r"""
restarts:
  description:
    - One entry per target, with C(target) (for example C(pm2 app worker)), C(kind), C(name), C(commands), C(outcome)
      (C(restarted), C(would restart), C(recently restarted), C(failed), C(not ready) or C(not attempted)), C(why),
      C(output) (redacted, cut) and C(at) (UTC).
  returned: always
  type: list
  elements: dict
commands:
  description: The restart commands run (or, in check mode, that would run), as a user would type them.
  returned: always
  type: list
  elements: str
left_alone:
  description: The targets not restarted because they were restarted less than O(window) seconds ago, each with C(target) and C(why).
  returned: always
  type: list
  elements: dict
refused:
  description: The targets that are not on O(allowed) (then nothing is restarted).
  returned: always
  type: list
  elements: str
record:
  description: Path of the record (not written in check mode).
  returned: always
  type: str
"""

import json
import os
import pwd
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import kubectl as kc
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import safefile
from ansible_collections.agentops.runbooks.plugins.module_utils import svc_parse as sp
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import services as svc
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate

RECORD = "restarts.json"
KEEP = 500  # entries kept in the record
# pm2 app and container names as their tools accept them; never an option.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.@:][A-Za-z0-9_.@:-]{0,252}$")
LABEL = {"systemd": "systemd unit", "pm2": "pm2 app", "container": "container", "deployment": "deployment"}


def key_of(kind, name, namespace=None):
    """The identity of a target: ``kind:name`` (``deployment:namespace/name``; a unit with its suffix)."""
    if kind == "systemd":
        name = sp.unit_name(name)
    elif kind == "deployment":
        kc.check_names(name, namespace or "default")
        name = "%s/%s" % (namespace or "default", name)
    elif not PLAIN_NAME.match(name or ""):
        raise ValueError("%s name %r may only hold letters, digits, '.', '_', '@', ':' and '-'." % (LABEL[kind], name))
    return "%s:%s" % (kind, name)


def label(target):
    return "%s %s" % (LABEL[target["kind"]], target["key"].split(":", 1)[1])


def allowed_keys(entries):
    """The keys of the allow list (see the ``allowed`` option); ValueError names an entry that is none of its forms."""
    keys = set()
    for entry in entries or []:
        if isinstance(entry, str):
            keys.add(key_of("systemd", entry))
        elif isinstance(entry, dict) and entry.get("kind"):
            if entry["kind"] not in LABEL or not entry.get("name"):
                raise ValueError("allowed entry %s needs kind (systemd, pm2, container or deployment) and name." % json.dumps(entry))
            keys.add(key_of(entry["kind"], entry["name"], entry.get("namespace")))
        elif isinstance(entry, dict) and (entry.get("unit") or entry.get("command")):
            if entry.get("unit"):  # agentops_services' {pattern, unit, command}: only a unit can be named as a target
                keys.add(key_of("systemd", entry["unit"]))
        else:
            raise ValueError("allowed entry %s is not a unit name, {pattern, unit, command} or {kind, name}." % json.dumps(entry))
    return keys


def last_restarts(record_dir):
    """{key: epoch of its last successful restart} from the record; {} when there is none yet."""
    path = os.path.join(record_dir, RECORD)
    if safefile.check(record_dir, directory=True) is None or safefile.check(path) is None:
        return {}, []
    fd = safefile.open_read(path)
    with os.fdopen(fd, "rb") as handle:
        try:
            entries = json.loads(handle.read().decode("utf-8")).get("restarts") or []
        except (ValueError, AttributeError):
            raise ValueError("%s is not a restart record (JSON with a restarts list); move it away." % path)
    last = {}
    for entry in entries:
        if entry.get("outcome") == "restarted":
            last[entry.get("key")] = max(last.get(entry.get("key"), 0), entry.get("epoch") or 0)
    return last, entries


class Restarter(object):
    """Resolves targets (read-only) and restarts them. ``run(argv, timeout, env=None, uid=None)`` -> (rc, out, err)."""

    def __init__(self, params, run=svc.run_command, proc=None):
        self.p = params
        self.run = run
        self.proc = proc or procfs.ProcFS()
        self.kubectl = None
        self._daemons = None

    def _call(self, argv, env=None, uid=None, timeout=None):
        try:
            return self.run(argv, timeout or self.p["command_timeout"], env=env, uid=uid)
        except OSError as exc:
            return 127, "", str(exc.strerror or exc)

    def client(self, namespace):
        return kc.Kubectl(lambda argv, timeout, env: self.run(argv, timeout, env=env), self.p["kubectl"], namespace,
                          self.p["kubeconfig"], self.p["context"], self.p["command_timeout"])

    # ------------------------------------------------------------ resolving (read-only)
    def resolve(self, target):
        """The restart steps of a target: [{argv, env, uid, wait}]; ValueError when it cannot be restarted here."""
        kind, name = target["kind"], target["key"].split(":", 1)[1]
        if kind == "systemd":
            systemctl = svc.find_bin("systemctl")
            if not systemctl:
                raise ValueError("%s cannot be restarted: there is no systemctl here." % label(target))
            rc, out, err = self._call([systemctl, "show", "-p", "LoadState", "--", name])
            state = dict(line.partition("=")[::2] for line in out.splitlines()).get("LoadState", "").strip()
            if rc != 0 or state != "loaded":
                raise ValueError("%s cannot be restarted: %s." % (label(target), "it is not installed here" if state in (
                    "not-found", "masked") else " ".join((err or out).split()) or "systemctl show exited with %d" % rc))
            return [{"argv": [systemctl, "restart", "--", name]}]
        if kind == "pm2":
            return self.resolve_pm2(target, name)
        if kind == "container":
            for runtime in [target["runtime"]] if target.get("runtime") else self.p["runtimes"]:
                binary = svc.find_bin(runtime)
                if binary and self._call([binary, "container", "inspect", "--", name])[0] == 0:
                    return [{"argv": [binary, "restart", "--", name]}]
            raise ValueError("%s cannot be restarted: %s knows no such container." % (
                label(target), " or ".join([target["runtime"]] if target.get("runtime") else self.p["runtimes"])))
        namespace, deployment = name.split("/", 1)
        client = self.client(namespace)
        try:
            client.deployment(deployment)
        except kc.KubectlError as exc:
            raise ValueError("%s cannot be restarted: %s" % (label(target), exc))
        return [dict(argv=argv, env=client.env, shown=client.show(argv), wait=wait) for argv, wait in (
            (client.restart_argv(deployment), False), (client.status_argv(deployment, self.p["rollout_timeout"]), True))]

    def daemons(self):
        if self._daemons is None:
            collector = svc.ServicesCollector(self.proc, [], [], pm2=self.p["pm2"], timeout=self.p["command_timeout"])
            self._daemons = collector.scan()[1], collector
        return self._daemons

    def resolve_pm2(self, target, name):
        daemons, collector = self.daemons()
        if target.get("pm2_home"):
            daemons = [d for d in daemons if os.path.abspath(d["home"]) == os.path.abspath(target["pm2_home"])]
        if not daemons:
            raise ValueError("%s cannot be restarted: no pm2 daemon runs%s (pm2 is never started here)." % (
                label(target), " for PM2_HOME=%s" % target["pm2_home"] if target.get("pm2_home") else ""))
        binary = collector.pm2_binary(daemons)
        if not binary:
            raise ValueError("%s cannot be restarted: a pm2 daemon runs but no pm2 command was found; set agentops_pm2." % label(target))
        knowing = []
        for daemon in daemons:
            node = daemon["node"] or svc.find_bin("node")
            try:
                home = pwd.getpwuid(daemon["uid"]).pw_dir
            except KeyError:
                home = "/"
            env = {"PATH": os.pathsep.join(([os.path.dirname(node)] if node else []) + list(svc.SEARCH_DIRS)), "HOME": home,
                   "PM2_HOME": daemon["home"], "LANG": "C.UTF-8"}
            pm2 = ([node, binary] if node and svc._runs_on_node(binary) else [binary])
            rc, out, err = self._call(pm2 + ["jlist"], env=env, uid=daemon["uid"])
            try:
                apps = sp.pm2_jlist(out) if rc == 0 else []
            except ValueError:
                apps = []
            if any(app.get("name") == name for app in apps):
                knowing.append({"argv": pm2 + ["restart", name], "env": env, "uid": daemon["uid"], "home": daemon["home"]})
        if len(knowing) != 1:
            raise ValueError("%s cannot be restarted: %s." % (label(target), "no running pm2 daemon knows it" if not knowing else
                             "the pm2 daemons of %s all know it; name its pm2_home" % ", ".join(k["home"] for k in knowing)))
        return knowing

    # ------------------------------------------------------------ restarting
    def restart(self, steps):
        """(outcome, output) of running the steps in order."""
        output = []
        for step in steps:
            timeout = self.p["rollout_timeout"] + 30 if step.get("wait") else None
            rc, out, err = self._call(step["argv"], env=step.get("env"), uid=step.get("uid"), timeout=timeout)
            output.append(" ".join((out + "\n" + err).split()))
            if rc != 0:
                return ("not ready" if step.get("wait") else "failed"), " ".join(output)
        return "restarted", " ".join(output)


def shown(step):
    """A step as a user would type it: its own rendering (kubectl's, with KUBECONFIG), else PM2_HOME and the argv."""
    if step.get("shown"):
        return step["shown"]
    prefix = "PM2_HOME=%s " % step["env"]["PM2_HOME"] if (step.get("env") or {}).get("PM2_HOME") else ""
    return prefix + kc.shown(step["argv"])


def write_record(record_dir, entries):
    fd = safefile.open_dir(record_dir)
    try:
        with safefile.locked(fd):
            safefile.write_private(fd, RECORD, json.dumps({"restarts": entries[-KEEP:]}, indent=1, sort_keys=True) + "\n",
                                   where=os.path.abspath(record_dir))
    finally:
        os.close(fd)


def main():
    target_spec = dict(kind=dict(type="str", required=True, choices=["systemd", "pm2", "container", "deployment"]),
                       name=dict(type="str", required=True), namespace=dict(type="str", default="default"),
                       pm2_home=dict(type="path"), runtime=dict(type="str", choices=["docker", "podman"]))
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type="list", elements="dict", required=True, options=target_spec),
            allowed=dict(type="list", elements="raw", default=[]), window=dict(type="int", default=300),
            record_dir=dict(type="path", required=True), pm2=dict(type="str", default="auto"),
            runtimes=dict(type="list", elements="str", default=["docker", "podman"]),
            rollout_timeout=dict(type="int", default=300), command_timeout=dict(type="float", default=120.0), **kc.CLIENT_SPEC
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, restarts=[], commands=[], refused=[], left_alone=[], record=os.path.join(p["record_dir"], RECORD))
    try:
        for option, low, high in (("window", 0, 604800), ("rollout_timeout", 1, 3600), ("command_timeout", 1, 3600)):
            if not low <= p[option] <= high:
                raise ValueError("%s must be between %s and %s, got %s." % (option, low, high, p[option]))
        if p["pm2"] not in ("", "auto") and not os.path.isabs(p["pm2"]):
            raise ValueError("pm2 must be auto or an absolute path, got %r." % p["pm2"])
        targets = []
        for item in p["targets"]:
            target = dict(item, key=key_of(item["kind"], item["name"], item["namespace"]))
            if target["key"] not in [t["key"] for t in targets]:
                targets.append(target)
        allowed = allowed_keys(p["allowed"])
        result["refused"] = [label(t) for t in targets if t["key"] not in allowed]
        if result["refused"]:
            raise ValueError("%s %s not on the allow list, so nothing was restarted." % (
                ", ".join(result["refused"]), "is" if len(result["refused"]) == 1 else "are"))
        last, history = last_restarts(p["record_dir"])
        restarter = Restarter(p)
        now = time.time()
        plan = []
        for target in targets:
            entry = {"target": label(target), "key": target["key"], "kind": target["kind"], "name": target["name"],
                     "commands": [], "outcome": "would restart" if module.check_mode else "not attempted", "why": None}
            ago = now - last.get(target["key"], 0)
            if p["window"] and ago < p["window"]:
                entry.update(outcome="recently restarted", why="%s was restarted %d s ago, within the window of %d s; left alone" % (
                    entry["target"], ago, p["window"]))
                plan.append((entry, None))
                continue
            steps = restarter.resolve(target)
            entry["commands"] = [shown(step) for step in steps]
            plan.append((entry, steps))
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc).rstrip(".") + ".", **result)
    result["restarts"] = [entry for entry, steps in plan]
    result["commands"] = [command for entry, steps in plan if steps for command in entry["commands"]]
    result["left_alone"] = [{"target": entry["target"], "why": entry["why"]} for entry, steps in plan if not steps]
    if module.check_mode or not result["commands"]:
        module.exit_json(**result)
    redactor, failure = Redactor(), None
    for entry, steps in plan:
        if not steps or failure:
            continue
        entry["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entry["epoch"] = round(time.time(), 3)
        entry["outcome"], output = restarter.restart(steps)
        entry["output"] = truncate(redactor.text(output), 500)
        result["changed"] = True
        if entry["outcome"] != "restarted":
            failure = "%s %s: %s" % (entry["target"], "did not become ready" if entry["outcome"] == "not ready"
                                     else "could not be restarted", entry["output"] or "no output")
    try:
        write_record(p["record_dir"], history + [e for e, steps in plan if steps and e["outcome"] != "not attempted"])
    except (ValueError, OSError) as exc:
        module.fail_json(msg="The restarts were done but not recorded: %s" % exc, **result)
    if failure:
        left = [e["target"] for e, steps in plan if steps and e["outcome"] == "not attempted"]
        module.fail_json(msg=failure.rstrip(".") + (". %s %s not restarted." % (", ".join(left), "was" if len(left) == 1 else "were")
                                                    if left else "."), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
