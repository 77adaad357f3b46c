#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: diagnostics
short_description: Run every signal family a host needs in one module call
version_added: 0.2.0
description:
  - Runs the signal families named in O(checks) on the host in one round trip, the way M(ansible.builtin.setup)
    gathers fact subsets. Each family is a collector in C(plugins/module_utils/collectors/); the same collectors are
    behind the per-family modules M(agentops.runbooks.host_facts), M(agentops.runbooks.process_facts),
    M(agentops.runbooks.pg_connection_facts) and M(agentops.runbooks.log_scan), whose documentation lists each
    family's options.
  - The families run concurrently, each for at most O(timeout) seconds. A family that raises, runs past its time limit
    or refuses its options is recorded as C(failed) with one sentence, for that family only; the others still report.
  - Without O(families) and O(secrets), its action plugin takes each family's options from the public variables the
    family's registry entry names (C(diagnose_<name>) inside the diagnose role, else C(agentops_<name>), for example
    C(agentops_process_patterns)); C(docs/Signal-Families.md) lists every family, its options and their variables.
  - Also returns the host's record as the fact C(diagnose_result), what the incident_report role reads.
  - Read-only. Always C(changed=false).
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics
  - agentops.runbooks.diagnostics.redaction
options:
  checks:
    description: The signal families to run.
    type: list
    elements: str
    choices: [host, process, pg, logs, node, spawn, services, endpoints, k8s, containers, coordination]
    default: [host, process]
  families:
    description:
      - >-
        Options per family, keyed by family name, for example
        C({"process": {"patterns": ["node"]}, "logs": {"paths": ["/var/log/agent/*.log"]}}).
        Each family takes the options of its own module (C(host) - M(agentops.runbooks.host_facts),
        C(process) - M(agentops.runbooks.process_facts), C(pg) - M(agentops.runbooks.pg_connection_facts) without
        C(password), C(logs) - M(agentops.runbooks.log_scan)), except O(thresholds) and O(redaction_key), which are
        given once for all.
    type: dict
    default: {}
  secrets:
    description:
      - >-
        Secret options per family, kept out of every output (C({"pg": {"password": "..."}})).
    type: dict
    default: {}
  timeout:
    description: Seconds each family may run (C(agentops_check_timeout)), 1 to 3600.
    type: int
    default: 300
  validate:
    description:
      - >-
        What the action plugin checks on the controller before the module runs, as
        M(agentops.runbooks.check_variables) takes it (C(ranges), C(thresholds), C(patterns), C(flags), C(public)),
        plus the argument spec of the role the task is in and the ranges of the families' variables from their
        registry. A value that is not valid fails the call with C(agentops_refused=true) and one sentence naming
        the variable; a misspelled collection variable warns. The module itself ignores it.
      - Unset, nothing is checked beyond the module's own arguments.
    type: dict
"""

EXAMPLES = r"""
- name: Diagnose this host in one call
  agentops.runbooks.diagnostics:
    checks: [host, process, logs]
    families:
      process:
        patterns: [node, claude]
      logs:
        paths: [/var/log/agent/*.log]
  register: diagnosis
"""

RETURN = r"""
families:
  description:
    - Per family run, C(status) (C(ok), C(partial) when something could not be read, or C(failed)), C(ms) (its
      run time), and C(facts), C(findings) and C(incomplete) as its own module returns them, or C(error) (one
      sentence) when it failed.
  returned: always
  type: dict
ms:
  description: Milliseconds the module spent running the families.
  returned: always
  type: int
ansible_facts:
  description: Facts set on the host by the action plugin.
  returned: success
  type: dict
  contains:
    diagnose_result:
      description:
        - The host's record for the incident report, C(status), C(findings), C(facts), C(checks) (every family of the
          registry C(ok), C(partial), C(failed) or C(skipped)) and C(timings_ms).
      returned: success
      type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type="list", elements="str", choices=list(collectors.NAMES), default=["host", "process"]),
            families=dict(type="dict", default={}),
            secrets=dict(type="dict", default={}, no_log=True),
            timeout=dict(type="int", default=300),
            thresholds=collectors.COMMON["thresholds"],
            redaction_key=collectors.COMMON["redaction_key"],
            validate=dict(type="dict"),  # taken by the action plugin on the controller, never sent
        ),
        supports_check_mode=True,
    )
    p = module.params
    # The arguments echoed back (invocation) pass through the redaction engine: a family's options may hold a URL with
    # credentials or a token that its family refuses, and the echo must not show it either.
    echo = dict(p, families=Redactor(key=p["redaction_key"]).data(p["families"]))
    fail_json, exit_json = module.fail_json, module.exit_json
    module.fail_json = lambda **result: fail_json(invocation={"module_args": echo}, **result)
    module.exit_json = lambda **result: exit_json(invocation={"module_args": echo}, **result)
    if not 1 <= p["timeout"] <= 3600:
        module.fail_json(msg="timeout must be between 1 and 3600 seconds, got %d." % p["timeout"])
    unknown = sorted((set(p["families"]) | set(p["secrets"])) - set(collectors.NAMES))
    if unknown:
        module.fail_json(msg="families names %s; the families are %s." % (", ".join(unknown), ", ".join(collectors.NAMES)))
    exposed = sorted(name for name, given in p["families"].items() if isinstance(given, dict) and "password" in given)
    if exposed:
        module.fail_json(msg="families.%s holds a password; pass it under secrets, which is never shown." % exposed[0])
    options = {}
    for name in p["checks"]:
        given = p["families"].get(name) or {}
        if not isinstance(given, dict) or not isinstance(p["secrets"].get(name) or {}, dict):
            module.fail_json(msg="families.%s and secrets.%s must be mappings of option to value." % (name, name))
        options[name] = dict(given, **(p["secrets"].get(name) or {}))
    began = time.monotonic()
    results = collectors.run(module, [n for n in collectors.NAMES if n in p["checks"]], options,
                             {"thresholds": p["thresholds"], "redaction_key": p["redaction_key"]}, p["timeout"])
    module.exit_json(changed=False, families=results, ms=int((time.monotonic() - began) * 1000))


if __name__ == "__main__":
    main()
