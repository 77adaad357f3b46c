#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: log_scan
short_description: Stream agent service logs, count and correlate entries, and turn known error signatures into findings
version_added: 0.1.0
description:
  - Streams the files and globs in O(paths) (plain and gzip-rotated) and, when asked, journald units, with constant
    memory, limited to a time window (O(since)) and a byte cap per file (O(max_bytes), the newest part of plain files).
  - "Parses the seed format C([2025-12-24T14:35:22.123Z] [ERROR] [agent:code-review] message) with its indented
    C(key: value) metadata lines, JSON lines with pino, winston or bunyan field names, and anything else as plain text
    with a best-effort timestamp and level."
  - "Returns counts by level and component, errors per time bucket (to see when it started), the top error signatures
    (messages with numbers, ids, hex and paths replaced), and correlation: warn, error and fatal entries grouped by
    conversation, request or correlation id across services, in time order (info and debug entries are counted only)."
  - Known signatures become findings (C(log.*) rules) - spawn EINVAL/ENOENT/EACCES/E2BIG/EAGAIN, fetch or WebSocket not
    defined, ECONNREFUSED (with the port's likely service), PostgreSQL slot exhaustion and deadlocks, V8 heap out of
    memory, LLM API 429/529 (with retry-after), WebSocket close 1006, HTTP timeouts (fetch TimeoutError, undici
    UND_ERR_*_TIMEOUT, axios ECONNABORTED), agent task timeouts, resets, DNS and TLS errors, EMFILE, ENOSPC. Each
    rule's signature and hint words are its catalog entry. They are looked for in warn, error and fatal entries and in
    entries without a recognisable level; an info or debug entry that mentions an error code is counted, not turned
    into a finding.
  - Files are read a block (1 MiB) at a time and the seed format is parsed with string operations, so memory stays
    constant; throughput is in RV(facts.mb_per_second) (tens of MB/s per core; see C(make bench)).
  - Missing files, permission errors, binary files, NUL-byte lines and lines over O(max_line_bytes) are reported and
    skipped, never fatal. All text returned is redacted on the host.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics
  - agentops.runbooks.diagnostics.redaction
options:
  paths:
    description: Log files or globs (C(agentops_log_paths)). Rotated C(.gz) files are read too.
    type: list
    elements: str
    default: []
  journald_units:
    description: systemd units whose journal to read with C(journalctl -o json) (C(agentops_journald_units)).
    type: list
    elements: str
    default: []
  since:
    description: Only entries from the last this many seconds (C(agentops_log_window)); 0 reads everything.
    type: int
    default: 86400
  max_bytes:
    description: At most this many bytes per file.
    type: int
    default: 268435456
  max_line_bytes:
    description: Longer lines are skipped and counted.
    type: int
    default: 65536
  bucket_seconds:
    description: Width of the time buckets of the error rate.
    type: int
    default: 60
  top_n:
    description: How many signatures and correlated ids to return.
    type: int
    default: 10
  timeout:
    description: Seconds after which the scan stops and reports what it read.
    type: int
    default: 60
  recent_window:
    description:
      - Seconds that count as now (C(agentops_recent_window)). The error share of the last O(recent_window) seconds of
        the scan - ending now, or at the newest entry of a log that stopped earlier - becomes C(log.error_rate) (with at
        least the rule's C(min_entries) entries), and its ratio to the error share before it C(log.error_spike).
    type: int
    default: 900
"""

EXAMPLES = r"""
- name: Scan the agent services' logs of the last two hours
  agentops.runbooks.log_scan:
    paths:
      - /var/log/agent/*.log
      - /var/log/agent/*.log.*.gz
    journald_units: [agent-manager.service]
    since: 7200
  register: logs
"""

RETURN = r"""
facts:
  description: The aggregates.
  returned: always
  type: dict
  contains:
    files:
      description: Per file read, C(path), C(bytes), C(lines) and what was skipped in it.
      type: list
      elements: dict
    skipped_files:
      description: Files not read, with C(path) and C(why) (missing, permission, binary, outside the window).
      type: list
      elements: dict
    entries:
      description: Entries counted in the window.
      type: int
    by_level:
      description: Entries per level.
      type: dict
    by_component:
      description: Per component, entries per level.
      type: dict
    buckets:
      description: Per time bucket, C(start), C(total), C(errors), C(warnings).
      type: list
      elements: dict
    first_error_bucket:
      description: Start of the first bucket with errors.
      type: str
    error_rates:
      description:
        - The error share of the recent window (C(window_start), C(window_end), C(recent_entries), C(recent_errors),
          C(recent_error_percent)), of the baseline before it (C(baseline_*)) and of the whole scan (C(overall_*)), per
          component in the recent window (C(components)), and C(errors_per_minute) (the last 60 buckets).
      type: dict
    errors_by_file:
      description: Error entries per file read (the 20 with the most).
      type: dict
    affected:
      description: Distinct C(users) (C(userId), C(user_id), C(user) ... in error entries) and C(conversations)
        (correlation ids of error entries), with C(capped) when more were seen than are counted.
      type: dict
    top_signatures:
      description: Most frequent normalised error and warning messages.
      type: list
      elements: dict
    correlation:
      description: Per id with errors or crossing services, its C(timeline) in time order.
      type: list
      elements: dict
    mb_per_second:
      description: Throughput of the scan.
      type: float
    redactions:
      description: Secrets replaced in the text returned, per kind. A message is redacted whole before it is
        normalised into a signature or cut into an example or a timeline entry; the whole result passes through the
        redaction engine once more before it is returned.
      type: dict
findings:
  description: Findings of the C(log.*) rules.
  returned: always
  type: list
  elements: dict
incomplete:
  description: Files or units that could not be read, each with C(check) and C(error).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import run_wrapper


def main():
    run_wrapper("logs")


if __name__ == "__main__":
    main()
