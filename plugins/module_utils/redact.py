# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one redaction engine: command lines in process facts, reports and log
bundles all pass through :class:`Redactor` before they leave a host.

The same secret always gets the same placeholder within one ``Redactor``
(``[REDACTED:bearer#1]``), so correlation across lines survives while the
secret does not. Counts per kind are kept for manifests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_KEYWORDS = r"(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth)"

# (kind, compiled pattern, group holding the secret). Order matters: specific
# token shapes first, generic key=value shapes last.
PATTERNS = [
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"), 0),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"), 0),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), 0),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})\b"), 0),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), 0),
    ("bearer", re.compile(r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9._~+/=\-]{8,})"), 1),
    ("url_password", re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:([^@\s/]+)@"), 1),
    ("header", re.compile(r"(?i)\b(?:authorization|proxy-authorization|set-cookie|cookie|x-api-key)\s*:\s*(\S[^\r\n]*)"), 1),
    ("password", re.compile(r"(?i)(?:--?)?[\w.\-]*" + _KEYWORDS + r"[\w.\-]*[\"']?\s*[=:]\s*[\"']?([^\s\"'&,;]+)"), 1),
    ("password", re.compile(r"(?i)\bpassword\s+'([^']*)'"), 1),  # SQL: ALTER ROLE x PASSWORD '...'
    ("password", re.compile(r"(?i)(?:^|\s)--?[\w\-]*" + _KEYWORDS + r"[\w\-]*\s+([^\s\-][^\s]*)"), 1),
]


class Redactor(object):
    def __init__(self, extra_patterns=None):
        self.patterns = list(PATTERNS)
        for index, pattern in enumerate(extra_patterns or ()):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError("extra redaction pattern %d (%r) is not a valid regular expression: %s." % (index + 1, pattern, exc))
            self.patterns.append(("custom", compiled, 1 if compiled.groups else 0))
        self._placeholders = {}
        self.counts = {}

    def _placeholder(self, kind, secret):
        key = (kind, secret)
        if key not in self._placeholders:
            number = sum(1 for k in self._placeholders if k[0] == kind) + 1
            self._placeholders[key] = "[REDACTED:%s#%d]" % (kind, number)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return self._placeholders[key]

    def text(self, value):
        """Return ``value`` with every secret replaced."""
        if not value:
            return value
        for kind, pattern, group in self.patterns:
            value = self._sub(kind, pattern, group, value)
        return value

    def _sub(self, kind, pattern, group, value):
        def replace(match):
            secret = match.group(group)
            if not secret or secret.startswith("[REDACTED:"):
                return match.group(0)
            start = match.start(group) - match.start(0)
            end = match.end(group) - match.start(0)
            whole = match.group(0)
            return whole[:start] + self._placeholder(kind, secret) + whole[end:]
        return pattern.sub(replace, value)

    def argv(self, args):
        """Redact a command line given as a list; returns one string."""
        return self.text(" ".join(args))

    @property
    def total(self):
        return sum(self.counts.values())
