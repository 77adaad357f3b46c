#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health_probe
short_description: Poll an HTTP health endpoint until it is healthy or a deadline passes, recording every probe
version_added: 0.1.0
description:
  - Requests O(url) every O(interval) seconds until a response has one of O(status) and, when set, a body matching
    O(body_regex); gives up at O(deadline) seconds. Every probe (time, status, latency, error) is returned.
  - Does not fail when unhealthy; it returns RV(healthy) so the caller decides (the C(deploy_rollback) role reverts).
author:
  - agentops.runbooks developers (@agentops)
options:
  url:
    description: The health endpoint.
    type: str
    required: true
  status:
    description: Status codes that count as healthy (each 100 to 599).
    type: list
    elements: int
    default: [200]
  body_regex:
    description: A regular expression the body must match (searched in the first 64 KiB).
    type: str
  timeout:
    description: Seconds for each request (0.1 to 300).
    type: float
    default: 5.0
  interval:
    description: Seconds between probes (0 to 600).
    type: float
    default: 2.0
  deadline:
    description: Seconds after which to give up (1 to 3600).
    type: float
    default: 60.0
  healthy_probes:
    description: Consecutive healthy probes needed (1 to 100).
    type: int
    default: 1
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Probing only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
"""

EXAMPLES = r"""
- name: Wait for the service to answer healthy
  agentops.runbooks.health_probe:
    url: http://127.0.0.1:8080/health
    body_regex: '"status":\s*"ok"'
    deadline: 90
  register: health
"""

RETURN = r"""
healthy:
  description: Whether the endpoint was healthy before the deadline.
  returned: always
  type: bool
probes:
  description: Every probe, with C(at) (UTC), C(elapsed_ms), C(status), C(healthy) and C(error).
  returned: always
  type: list
  elements: dict
seconds:
  description: Seconds spent probing.
  returned: always
  type: float
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url


def probe(url, timeout, validate_certs):
    """(status, body, error) of one request."""
    try:
        response = open_url(url, timeout=timeout, validate_certs=validate_certs, follow_redirects="safe")
        return response.getcode(), response.read(65536).decode("utf-8", "replace"), None
    except HTTPError as exc:
        return exc.code, exc.read(65536).decode("utf-8", "replace") if hasattr(exc, "read") else "", None
    except Exception as exc:  # connection refused, timeouts, TLS and DNS errors all count as unhealthy
        return None, "", " ".join(str(getattr(exc, "reason", exc)).split())[:300]


def poll(params, request=probe, sleep=time.sleep, clock=time.monotonic):
    pattern = re.compile(params["body_regex"]) if params.get("body_regex") else None
    began = clock()
    probes = []
    streak = 0
    while True:
        start = clock()
        status, body, error = request(params["url"], params["timeout"], params["validate_certs"])
        healthy = error is None and status in params["status"] and (pattern is None or bool(pattern.search(body)))
        probes.append({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "elapsed_ms": int((clock() - start) * 1000),
                       "status": status, "healthy": healthy, "error": error or (None if healthy else "status %s%s" % (
                           status, "" if pattern is None or status not in params["status"] else ", body did not match"))})
        streak = streak + 1 if healthy else 0
        if streak >= params["healthy_probes"]:
            return True, probes, round(clock() - began, 2)
        if clock() - began + params["interval"] > params["deadline"]:
            return False, probes, round(clock() - began, 2)
        sleep(params["interval"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True), status=dict(type="list", elements="int", default=[200]),
            body_regex=dict(type="str"), timeout=dict(type="float", default=5.0), interval=dict(type="float", default=2.0),
            deadline=dict(type="float", default=60.0), healthy_probes=dict(type="int", default=1),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        if not re.match(r"^https?://", p["url"]):
            raise ValueError("url must start with http:// or https://, got %r." % p["url"])
        for name, low, high in (("timeout", 0.1, 300), ("interval", 0, 600), ("deadline", 1, 3600), ("healthy_probes", 1, 100)):
            if not low <= p[name] <= high:
                raise ValueError("%s must be between %s and %s, got %s." % (name, low, high, p[name]))
        if not p["status"] or any(not 100 <= code <= 599 for code in p["status"]):
            raise ValueError("status must list HTTP status codes between 100 and 599, got %s." % p["status"])
        if p["body_regex"]:
            re.compile(p["body_regex"])
    except re.error as exc:
        module.fail_json(msg="body_regex is not a valid regular expression: %s." % exc)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    healthy, probes, seconds = poll(p)
    module.exit_json(changed=False, healthy=healthy, probes=probes, seconds=seconds)


if __name__ == "__main__":
    main()
