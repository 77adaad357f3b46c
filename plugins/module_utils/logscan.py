# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming log analysis with constant memory: parsers, signatures, correlation.

Entries come from three shapes of line:
* the seed format ``[2025-12-24T14:35:22.123Z] [ERROR] [agent:code-review] message``
  followed by indented ``key: value`` metadata lines (and stack lines);
* JSON lines with pino, winston or bunyan field names;
* anything else, as plain text with a best-effort timestamp and level.

Every aggregate is bounded (components, buckets, signatures, correlation ids,
entries per id), so memory does not grow with the size of the logs. Text that
leaves the scanner passes through the redaction engine.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import contextlib
import glob
import gzip
import itertools
import json
import os
import re
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate

LEVELS = ("fatal", "error", "warn", "info", "debug", "trace", "unknown")
PINO = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}
NAMES = {"trace": "trace", "debug": "debug", "verbose": "debug", "silly": "trace", "info": "info", "notice": "info",
         "http": "info", "warn": "warn", "warning": "warn", "error": "error", "err": "error", "fatal": "fatal",
         "critical": "fatal", "crit": "fatal", "panic": "fatal", "alert": "fatal", "emerg": "fatal"}
CORRELATION_KEYS = ("conversationId", "conversation_id", "requestId", "request_id", "reqId", "correlationId",
                    "correlation_id", "traceId", "trace_id", "x-request-id", "sessionId", "jobId")

SEED = re.compile(r"^\[(?P<ts>[^\]]+)\]\s+\[(?P<level>[A-Za-z]+)\]\s+\[(?P<component>[^\]]*)\]\s?(?P<msg>.*)$")
META = re.compile(r"^\s+(?P<key>[A-Za-z_][\w.-]*):\s?(?P<value>.*)$")
ISO = re.compile(r"(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
SYSLOG = re.compile(r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})")
LEVEL_WORD = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|FATAL|CRIT(?:ICAL)?|PANIC)\b", re.I)
CORRELATION_ORDER = dict((key, index) for index, key in enumerate(CORRELATION_KEYS))
PLAIN_USER = re.compile(r"\b(?:userId|user_id|user)[\"']?\s*[=:]\s*[\"']?(?P<value>[\w.@:-]{1,128})")
PLAIN_ID = re.compile(r"\b(?P<key>%s)[\"']?\s*[=:]\s*[\"']?(?P<value>[\w.:-]{3,})" % "|".join(re.escape(k) for k in CORRELATION_KEYS))

NORMALIZE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?:/[\w.@-]+){2,}/?"), "<path>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\b[A-Za-z]+[-_][A-Za-z0-9]*\d[A-Za-z0-9_-]*\b"), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\"[^\"]{20,}\"|'[^']{20,}'"), "<str>"),
]

# Known signatures: rule id -> pattern searched in an entry's message, metadata and first stack line.
SIGNATURES = [
    ("log.spawn_einval", re.compile(r"spawn(?:Sync)?\s+(?P<cmd>\S+)?\s*EINVAL|spawn EINVAL")),
    ("log.spawn_enoent", re.compile(r"spawn(?:Sync)? (?P<cmd>\S+) ENOENT")),
    ("log.spawn_eacces", re.compile(r"spawn(?:Sync)? (?P<cmd>\S+) EACCES")),
    ("log.spawn_e2big", re.compile(r"spawn(?:Sync)?(?: \S+)? E2BIG|Argument list too long")),
    ("log.fetch_undefined", re.compile(r"fetch is not defined")),
    ("log.websocket_undefined", re.compile(r"WebSocket is not defined")),
    ("log.econnrefused", re.compile(r"ECONNREFUSED(?:\s+(?P<host>[\w.:\[\]-]+?):(?P<port>\d+))?")),
    ("log.pg_connections", re.compile(r"sorry, too many clients already|remaining connection slots are reserved")),
    ("log.pg_deadlock", re.compile(r"deadlock detected")),
    ("log.v8_heap_oom", re.compile(r"Reached heap limit|JavaScript heap out of memory|Ineffective mark-compacts near heap limit")),
    ("log.llm_rate_limit", re.compile(r"\b(?:429|529)\b.*?(?:rate_limit_error|overloaded_error|Too Many Requests|Overloaded)"
                                      r"|rate_limit_error|overloaded_error", re.I)),
    ("log.ws_abnormal_close", re.compile(r"(?:close|closed|code)[^\n]{0,40}?\b1006\b|\b1006\b[^\n]{0,20}(?:abnormal|closed?)", re.I)),
    ("log.network_reset", re.compile(r"\bETIMEDOUT\b|\bECONNRESET\b|socket hang up|UND_ERR_(?:CONNECT_TIMEOUT|HEADERS_TIMEOUT|BODY_TIMEOUT|SOCKET)")),
    ("log.dns_failure", re.compile(r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) (?P<dnshost>[\w.-]+)|\bENOTFOUND\b|\bEAI_AGAIN\b")),
    ("log.tls_error", re.compile(r"CERT_HAS_EXPIRED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT"
                                 r"|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|certificate has expired")),
    ("log.emfile", re.compile(r"\bEMFILE\b|too many open files", re.I)),
    ("log.enospc", re.compile(r"\bENOSPC\b|No space left on device|System limit for number of file watchers reached")),
]
# Cheap prefilter: a rule's pattern is searched only when one of its hints appears in the entry.
RULE_HINTS = {
    "log.spawn_einval": ("EINVAL",), "log.spawn_enoent": ("ENOENT",), "log.spawn_eacces": ("EACCES",),
    "log.spawn_e2big": ("E2BIG", "Argument list"), "log.fetch_undefined": ("fetch is not",),
    "log.websocket_undefined": ("WebSocket is not",), "log.econnrefused": ("ECONNREFUSED",),
    "log.pg_connections": ("too many clients", "connection slots"), "log.pg_deadlock": ("deadlock",),
    "log.v8_heap_oom": ("heap limit", "heap out of memory"),
    "log.llm_rate_limit": ("429", "529", "rate_limit", "overloaded", "Overloaded"), "log.ws_abnormal_close": ("1006",),
    "log.network_reset": ("ETIMEDOUT", "ECONNRESET", "hang up", "UND_ERR"), "log.dns_failure": ("ENOTFOUND", "EAI_AGAIN"),
    "log.tls_error": ("CERT", "certificate"), "log.emfile": ("EMFILE", "open files"),
    "log.enospc": ("ENOSPC", "No space", "file watchers"),
}
HINT_RULES = {}
for _rule, _hints in RULE_HINTS.items():
    for _hint in _hints:
        HINT_RULES.setdefault(_hint, []).append(_rule)
SIGNATURE_HINTS = tuple(HINT_RULES)
PATTERNS = dict(SIGNATURES)
ID_HINTS = ("Id", "_id", "-id")
RETRY_AFTER = re.compile(r"retry[-_]?after[\"']?\s*[:=]\s*[\"']?(\d+(?:\.\d+)?)", re.I)
PORT_SERVICES = {"5432": "PostgreSQL", "6379": "Redis", "3306": "MySQL", "27017": "MongoDB", "5672": "RabbitMQ",
                 "9200": "Elasticsearch", "11211": "memcached", "443": "an HTTPS endpoint", "80": "an HTTP endpoint",
                 "8080": "an HTTP service", "3000": "a Node HTTP service", "9092": "Kafka", "2379": "etcd"}

LIMITS = {"components": 200, "buckets": 10000, "signatures": 5000, "ids": 2000, "per_id": 40, "examples": 3,
          "component_buckets": 50000, "affected": 100000}
# Who an error entry affected: user ids from these metadata keys (or userId=... in the message).
USER_KEYS = ("userId", "user_id", "user", "uid", "accountId", "account_id")


EPOCH = re.compile(r"^\d{10}(?:\.\d+)?$")
EPOCH_MS = re.compile(r"^\d{13}$")
ISO_FULL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:?\d{2})?$")
_SECOND = {"key": None, "value": None}


def parse_time(text):
    """Epoch seconds from an ISO 8601, syslog or epoch(ms) timestamp; None when unparseable."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return text / 1000.0 if text > 1e11 else float(text)
    text = str(text).strip()
    if EPOCH.match(text):
        return float(text)
    if EPOCH_MS.match(text):
        return int(text) / 1000.0
    match = ISO_FULL.match(text)
    if match:
        seconds, fraction, offset = iso_parts(match)
        return seconds + fraction - offset
    match = SYSLOG.match(text)
    if match:
        try:
            parsed = time.strptime("%s %s" % (time.gmtime().tm_year, match.group("ts")), "%Y %b %d %H:%M:%S")
            return float(calendar.timegm(parsed))
        except ValueError:
            return None
    return None


def iso_parts(match):
    """(whole seconds, fraction, zone offset in seconds) of an ISO_FULL match; 0 for a missing part."""
    y, mo, d, h, mi, s, frac, zone = match.groups()
    key = match.string[:19]
    if _SECOND["key"] == key:  # consecutive entries share their second: skip timegm
        seconds = _SECOND["value"]
    else:
        seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
        _SECOND["key"], _SECOND["value"] = key, seconds
    offset = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = (1 if zone[0] == "+" else -1) * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds, float("0." + frac) if frac else 0, offset


def level_of(value):
    if isinstance(value, (int, float)):
        return PINO.get(int(value), "error" if value >= 50 else ("warn" if value >= 40 else "info"))
    return NAMES.get(str(value).strip().lower(), "unknown")


def normalize(message):
    """The signature of a message: numbers, ids, hex and paths replaced, cut to 300 characters.
    Give it redacted text: replacing digits first could leave a secret no pattern recognises."""
    text = truncate(message, 300, "")
    for pattern, placeholder in NORMALIZE:
        text = pattern.sub(placeholder, text)
    return " ".join(text.split())


class Entry(object):
    __slots__ = ("ts", "level", "component", "msg", "meta", "stack", "file", "line")

    def __init__(self, ts, level, component, msg, file, line, meta=None):
        self.ts, self.level, self.component, self.msg = ts, level, component, msg
        self.meta, self.stack, self.file, self.line = meta or {}, [], file, line

    def text(self):
        if not self.meta and not self.stack:
            return self.msg
        parts = [self.msg]
        parts.extend("%s: %s" % kv for kv in self.meta.items())
        parts.extend(self.stack[:1])
        return "\n".join(parts)

    def ids(self):
        found = []
        if self.meta:
            keys = [key for key in self.meta if key in CORRELATION_ORDER]
            if len(keys) > 1:
                keys.sort(key=CORRELATION_ORDER.get)
            found = [str(self.meta[key]) for key in keys if self.meta[key]]
        if not found and any(hint in self.msg for hint in ID_HINTS):
            found = [m.group("value") for m in PLAIN_ID.finditer(self.msg)]
        return found


def parse_json(line, file, number):
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    level = level_of(data.get("level", data.get("severity", "unknown")))
    msg = data.get("msg", data.get("message", ""))
    if not isinstance(msg, str):
        msg = json.dumps(msg, sort_keys=True)
    component = data.get("component") or data.get("service") or data.get("name") or data.get("module") or data.get("logger") or ""
    meta = {}
    for key, value in data.items():
        if key in ("level", "severity", "msg", "message", "time", "timestamp", "@timestamp", "v", "pid", "hostname"):
            continue
        if isinstance(value, (str, int, float, bool)):
            meta[key] = value
        elif key in ("err", "error") and isinstance(value, dict):
            meta["error"] = value.get("message", "")
            if value.get("code"):
                meta["errorCode"] = value["code"]
            if value.get("stack"):
                meta["stack"] = str(value["stack"]).split("\n", 1)[0]
    ts = parse_time(data.get("time", data.get("timestamp", data.get("@timestamp"))))
    return Entry(ts, level, str(component), msg, file, number, meta)


PLAIN_HEAD = re.compile(r"^[\s\[]*(?P<level>%s)[\]:]?\s+(?:(?P<component>[A-Za-z][\w.:-]{0,40}?)(?:\[\d+\])?:\s+)?"
                        % LEVEL_WORD.pattern[3:-3], re.I)


def parse_plain(line, file, number):
    match = SEED.match(line)
    if match:
        return Entry(parse_time(match.group("ts")), level_of(match.group("level")), match.group("component"),
                     match.group("msg"), file, number)
    ts, rest = None, line
    match = ISO.match(line.lstrip("[")) or SYSLOG.match(line)
    if match:
        ts = parse_time(match.group("ts"))
        rest = line.lstrip("[")[match.end():].lstrip("] ")
    head = PLAIN_HEAD.match(rest)
    if head:
        return Entry(ts, level_of(head.group("level")), head.group("component") or "", rest[head.end():], file, number)
    level = LEVEL_WORD.search(rest[:200])
    return Entry(ts, level_of(level.group(1)) if level else "unknown", "", rest, file, number)


def entry_time(line):
    """Epoch seconds of the entry a line starts (JSON or text), or None."""
    entry = parse_json(line, "", 0) if line[:1] == "{" else None
    return (entry or parse_plain(line, "", 0)).ts


def seen(item, entry):
    """Count ``entry`` in an aggregate with count, first_seen, last_seen and components."""
    item["count"] += 1
    if entry.ts is not None:
        item["first_seen"] = entry.ts if item["first_seen"] is None else min(item["first_seen"], entry.ts)
        item["last_seen"] = entry.ts if item["last_seen"] is None else max(item["last_seen"], entry.ts)
    if len(item["components"]) < 10:
        item["components"].add(entry.component or "(none)")


SERIOUS = frozenset(("fatal", "error", "warn"))
LOOKED_AT = SERIOUS | frozenset(("unknown",))
CACHE_LIMIT = 4096


class Scanner(object):
    """Feed lines file by file; read the aggregates with result().

    Entries are counted per (component, level, bucket) in one dictionary that is folded
    into the per-level, per-component and per-bucket counts in first-seen order, so the
    limits apply exactly as if every entry were counted on its own. Signatures are matched
    in warn, error and fatal entries and in entries without a recognisable level; ids are
    looked up only in entries with metadata or an id-like word in the message.
    """

    def __init__(self, redactor, since=None, bucket=60, top_n=10, limits=None):
        self.redactor = redactor
        self.since = since
        self.bucket = bucket
        self.top_n = top_n
        self.limits = dict(LIMITS, **(limits or {}))
        self.levels = dict((name, 0) for name in LEVELS)
        self.components = {}
        self.buckets = {}
        self.signatures = {}
        self.ids = {}
        self.matches = {}
        self.entries = 0
        self.outside_window = 0
        self.current = None
        self.counts = {}  # (component, level, bucket start or None) -> entries not yet folded
        self.seconds = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds
        self.tails = {}  # ".123Z", "+02:00", "" -> (fraction, zone offset in seconds)
        self.level_words = {}  # "ERROR" -> "error"
        self.service = (None, None)
        self.component_buckets = {}  # (component, bucket start) -> [entries, errors]
        self.affected = {"users": set(), "conversations": set(), "capped": False}
        self.file_errors = {}  # file -> error entries (error and fatal)

    # --------------------------------------------------------------- feeding
    def feed(self, line, file, number):
        self.feed_lines((line,), file, number)

    def feed_lines(self, lines, file, number):
        """Feed consecutive lines of ``file``, the first being line ``number``.

        A seed-format line is parsed with string operations. When the next line starts another
        entry it is counted at once; when metadata may follow it is held as a tuple. It becomes
        an Entry only when metadata follows or it has a level or id that needs a closer look.
        """
        words, stamp, settle = self.level_words, self.stamp, self.settle
        service = self.service_of(file)
        pending = None  # (ts, level, component, msg, number) of a seed-format entry metadata may follow
        for line, following in zip(lines, itertools.chain(itertools.islice(lines, 1, None), ("",))):
            first = line[:1]
            if first == "[":
                parts = line.split("] [", 2)
                level = (words.get(parts[1]) or self.level_word(parts[1])) if len(parts) == 3 else None
                text = parts[0][1:]
                if level is not None and text and "]" not in text:
                    rest = parts[2]
                    e = rest.find("]")
                    if e >= 0:
                        component = rest[:e] or service
                        msg = rest[e + 1:]
                        space = msg[:1]
                        if space == " ":
                            msg = msg[1:]
                        if space == " " or not space.isspace():
                            ts = stamp(text)
                            if pending is not None:
                                settle(pending, file)
                                pending = None
                            elif self.current is not None:
                                self.close()
                            pending = (ts, level, component, msg, number)
                            after = following[:1]
                            if after and not after.isspace():  # the next line starts another entry: no metadata
                                settle(pending, file)
                                pending = None
                            number += 1
                            continue
            elif first == " " or first == "\t":
                if pending is not None:
                    self.current = Entry(pending[0], pending[1], pending[2], pending[3], file, pending[4])
                    pending = None
                current = self.current
                if current is not None and line.strip():
                    match = META.match(line)
                    if match and len(current.meta) < 50:
                        current.meta[match.group("key")] = match.group("value").strip()
                    elif len(current.stack) < 20:
                        current.stack.append(line.strip())
                    number += 1
                    continue
            entry = parse_json(line, file, number) if first == "{" else None
            if entry is None:
                if not line.strip():
                    number += 1
                    continue
                entry = parse_plain(line, file, number)
            if not entry.component:
                entry.component = service
            if pending is not None:
                settle(pending, file)
                pending = None
            elif self.current is not None:
                self.close()
            self.current = entry
            number += 1
        if pending is not None:
            self.current = Entry(pending[0], pending[1], pending[2], pending[3], file, pending[4])
        if len(self.counts) > 50000:
            self.fold()

    def settle(self, pending, file):
        """Count a seed-format entry that nothing followed; an Entry only when it needs a closer look."""
        ts, level, component, msg, number = pending
        if level in LOOKED_AT or "Id" in msg or "_id" in msg or "-id" in msg:
            self.current = Entry(ts, level, component, msg, file, number)
            self.close()
        else:
            self.count(component, level, ts)

    def count(self, component, level, ts):
        """Count an entry per (component, level, bucket); False when it is outside the window."""
        if self.since is not None and ts is not None and ts < self.since:
            self.outside_window += 1
            return False
        self.entries += 1
        key = (component or "(none)", level, None if ts is None else int(ts // self.bucket * self.bucket))
        self.counts[key] = self.counts.get(key, 0) + 1
        return True

    def level_word(self, word):
        """The level of a seed-format level word ([A-Za-z]+), remembered; None for anything else."""
        if not (word.isalpha() and word.isascii()):
            return None
        level = level_of(word)
        if len(self.level_words) < CACHE_LIMIT:
            self.level_words[word] = level
        return level

    def stamp(self, text):
        """parse_time(text), from caches for the ISO 8601 shape a log repeats on every line."""
        seconds = self.seconds.get(text[:19])
        if seconds is not None:
            tail = self.tails.get(text[19:])
            if tail is not None:
                return seconds + tail[0] - tail[1]
        match = ISO_FULL.match(text)
        if not match:
            return parse_time(text)
        for cache in (self.seconds, self.tails):
            if len(cache) >= CACHE_LIMIT:  # a day has 86,400 seconds: start again rather than stop caching
                cache.clear()
        seconds, fraction, offset = iso_parts(match)
        self.seconds[text[:19]] = seconds
        self.tails[text[19:]] = (fraction, offset)
        return seconds + fraction - offset

    def service_of(self, file):
        if self.service[0] != file:
            self.service = (file, service_of(file))
        return self.service[1]

    def close(self):
        entry, self.current = self.current, None
        if entry is None:
            return
        level = entry.level
        if not self.count(entry.component, level, entry.ts):
            return
        if level in SERIOUS:
            self.count_signature(entry)
            self.match_hints(entry)
            if level != "warn":
                self.note_affected(entry)
                self.file_errors[entry.file] = self.file_errors.get(entry.file, 0) + 1
        elif level == "unknown":
            self.match_hints(entry)
        msg = entry.msg
        if entry.meta or "Id" in msg or "_id" in msg or "-id" in msg:
            for value in entry.ids():
                self.correlate(value, entry)

    def note_affected(self, entry):
        """Remember the distinct users and conversations an error entry names (bounded)."""
        affected = self.affected
        users = [str(entry.meta[key]) for key in USER_KEYS if entry.meta.get(key)]
        if not users and "ser" in entry.msg:
            users = [m.group("value") for m in PLAIN_USER.finditer(entry.msg)]
        for kind, values in (("users", users), ("conversations", entry.ids())):
            for value in values[:3]:
                if len(affected[kind]) < self.limits["affected"]:
                    affected[kind].add(value[:128])
                elif value[:128] not in affected[kind]:
                    affected["capped"] = True

    def error_rates(self, now, window):
        """The error share of the most recent ``window`` seconds of the scan (ending at ``now`` or, for logs that
        stopped earlier, at their newest entry) overall and per component, and of everything before it (the
        baseline); None without timestamped entries."""
        self.fold()
        if not self.buckets:
            return None
        end = min(now, max(self.buckets) + self.bucket)
        start = end - window

        def share(keys):
            entries = sum(self.buckets[k]["total"] for k in keys)
            errors = sum(self.buckets[k]["errors"] for k in keys)
            return entries, errors, round(100.0 * errors / entries, 1) if entries else 0.0
        recent = [k for k in self.buckets if start <= k < end]
        earlier = [k for k in self.buckets if k < start]
        components = {}
        for (name, bucket), (entries, errors) in self.component_buckets.items():
            if start <= bucket < end:
                item = components.setdefault(name, [0, 0])
                item[0] += entries
                item[1] += errors
        per_component = sorted(({"component": name, "entries": e, "errors": x, "error_percent": round(100.0 * x / e, 1)}
                                for name, (e, x) in components.items() if e), key=lambda c: (-c["error_percent"], -c["errors"]))
        total = sum(b["total"] for b in self.buckets.values())
        errors = sum(b["errors"] for b in self.buckets.values())
        recent_entries, recent_errors, recent_percent = share(recent)
        baseline_entries, baseline_errors, baseline_percent = share(earlier)
        return {"window_start": iso(start), "window_end": iso(end), "recent_entries": recent_entries, "recent_errors": recent_errors,
                "recent_error_percent": recent_percent, "baseline_entries": baseline_entries, "baseline_errors": baseline_errors,
                "baseline_error_percent": baseline_percent, "overall_entries": total, "overall_errors": errors,
                "overall_error_percent": round(100.0 * errors / total, 1) if total else 0.0, "components": per_component[:10],
                "errors_per_minute": [{"start": iso(k), "errors": self.buckets[k]["errors"], "entries": self.buckets[k]["total"]}
                                      for k in sorted(self.buckets)[-60:]]}

    def match_hints(self, entry):
        text = entry.text()
        hinted = [hint for hint in SIGNATURE_HINTS if hint in text]
        if hinted:
            self.match_known(entry, text, set(rule for hint in hinted for rule in HINT_RULES[hint]))

    def fold(self):
        """Add the pending (component, level, bucket) counts in first-seen order."""
        limit_components, limit_buckets = self.limits["components"], self.limits["buckets"]
        for (name, level, start), count in self.counts.items():
            self.levels[level] = self.levels.get(level, 0) + count
            per_level = self.components.get(name)
            if per_level is None:
                if len(self.components) >= limit_components:
                    per_level = self.components.setdefault("(other)", {})
                else:
                    per_level = self.components[name] = {}
            per_level[level] = per_level.get(level, 0) + count
            if start is None:
                continue
            per_component = self.component_buckets.get((name, start))
            if per_component is None and len(self.component_buckets) < self.limits["component_buckets"]:
                per_component = self.component_buckets[(name, start)] = [0, 0]
            if per_component is not None:
                per_component[0] += count
                if level in ("error", "fatal"):
                    per_component[1] += count
            bucket = self.buckets.get(start)
            if bucket is None:
                if len(self.buckets) >= limit_buckets:
                    continue
                bucket = self.buckets[start] = {"total": 0, "errors": 0, "warnings": 0}
            bucket["total"] += count
            if level in ("error", "fatal"):
                bucket["errors"] += count
            elif level == "warn":
                bucket["warnings"] += count
        self.counts = {}

    def count_signature(self, entry):
        msg = self.redactor.text(entry.msg)  # whole, before normalize and the cut
        key = (entry.level if entry.level != "fatal" else "error", normalize(msg))
        item = self.signatures.get(key)
        if item is None:
            if len(self.signatures) >= self.limits["signatures"]:
                return
            item = self.signatures[key] = {"count": 0, "first_seen": entry.ts, "last_seen": entry.ts, "components": set(),
                                           "example": truncate(msg, 300, "")}
        seen(item, entry)

    def match_known(self, entry, text, rules):
        for rule_id in sorted(rules):
            match = PATTERNS[rule_id].search(text)
            if not match:
                continue
            hit = self.matches.get(rule_id)
            if hit is None:
                hit = self.matches[rule_id] = {"count": 0, "first_seen": None, "last_seen": None, "components": set(),
                                               "files": set(), "examples": [], "ports": {}, "retry_after": [], "cmds": set(),
                                               "hosts": set()}
            seen(hit, entry)
            if len(hit["files"]) < 10:
                hit["files"].add(entry.file)
            if len(hit["examples"]) < self.limits["examples"]:
                hit["examples"].append("%s:%d %s" % (entry.file, entry.line, truncate(self.redactor.text(entry.msg), 300, "")))
            groups = match.groupdict()
            if groups.get("port"):
                hit["ports"][groups["port"]] = hit["ports"].get(groups["port"], 0) + 1
            if groups.get("cmd") and len(hit["cmds"]) < 10:
                hit["cmds"].add(self.redactor.text(groups["cmd"]))
            if groups.get("dnshost") and len(hit["hosts"]) < 10:
                hit["hosts"].add(self.redactor.text(groups["dnshost"]))
            if rule_id == "log.llm_rate_limit":
                retry = entry.meta.get("retryAfter") or entry.meta.get("retry_after")
                found = RETRY_AFTER.search(text)
                value = retry or (found.group(1) if found else None)
                if value is not None and len(hit["retry_after"]) < 20:
                    hit["retry_after"].append(str(value))

    def correlate(self, value, entry):
        timeline = self.ids.get(value)
        if timeline is None:
            if len(self.ids) >= self.limits["ids"]:
                return
            timeline = self.ids[value] = {"entries": [], "errors": 0, "components": set(), "dropped": 0}
        if entry.level in ("error", "fatal"):
            timeline["errors"] += 1
        timeline["components"].add(entry.component or "(none)")
        if len(timeline["entries"]) >= self.limits["per_id"]:
            timeline["dropped"] += 1
            return
        timeline["entries"].append({"ts": entry.ts, "component": entry.component, "level": entry.level,
                                    "message": truncate(self.redactor.text(entry.msg), 200, ""), "file": entry.file, "line": entry.line,
                                    "error_code": self.redactor.text(entry.meta.get("errorCode"))})

    # --------------------------------------------------------------- results
    def result(self):
        self.close()
        self.fold()
        signatures = sorted(self.signatures.items(), key=lambda kv: -kv[1]["count"])[:self.top_n]
        correlated = sorted(self.ids.items(), key=lambda kv: (-kv[1]["errors"], -len(kv[1]["components"]), kv[0]))
        correlated = [kv for kv in correlated if kv[1]["errors"] or len(kv[1]["components"]) > 1][:self.top_n]
        return {
            "entries": self.entries,
            "outside_window": self.outside_window,
            "by_level": dict((k, v) for k, v in self.levels.items() if v),
            "by_component": self.components,
            "buckets": [dict(v, start=iso(k)) for k, v in sorted(self.buckets.items())],
            "first_error_bucket": next((iso(k) for k, v in sorted(self.buckets.items()) if v["errors"]), None),
            "affected": {"users": len(self.affected["users"]), "conversations": len(self.affected["conversations"]),
                         "capped": self.affected["capped"]},
            "errors_by_file": dict(sorted(self.file_errors.items(), key=lambda kv: -kv[1])[:20]),
            # signatures, examples and timeline messages were redacted whole when they were kept, then cut
            "top_signatures": [{"level": key[0], "signature": key[1], "count": item["count"],
                                "first_seen": iso(item["first_seen"]), "last_seen": iso(item["last_seen"]),
                                "components": sorted(item["components"]), "example": item["example"]}
                               for key, item in signatures],
            "correlation": [{"id": self.redactor.text(key), "errors": item["errors"], "components": sorted(item["components"]),
                             "dropped": item["dropped"],
                             "timeline": [dict(e, ts=iso(e["ts"]))
                                          for e in sorted(item["entries"], key=lambda e: (e["ts"] is None, e["ts"] or 0))]}
                            for key, item in correlated],
            "matches": self.matches,
        }


def service_of(file):
    """A component name from the log's file name: /var/log/agent/worker.log.2.gz -> worker."""
    name = os.path.basename(file.split(":", 1)[1] if file.startswith("journal:") else file)
    return re.split(r"[.-]\d|\.log|\.json|\.gz|\.txt", name)[0] or name


def iso(epoch):
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ("%.3fZ" % (epoch % 1))[1:]


# ------------------------------------------------------------------- reading
class SkipFile(Exception):
    """A file that is not read, with why (missing, permission, binary, outside the window)."""


def is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


@contextlib.contextmanager
def open_log(path, max_bytes, max_line, report):
    """(handle, compressed) of ``path``, positioned where reading starts.

    Raises SkipFile for binary content. A plain file larger than ``max_bytes`` is opened
    at its last ``max_bytes``, resynchronised on a line start, noted in ``report``.
    """
    compressed = is_gzip(path)
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        head = handle.read(8192)
        controls = sum(1 for c in bytearray(head) if c < 9 or 13 < c < 32)
        if b"\x00" in head or controls > len(head) // 10:
            raise SkipFile("binary content")
        handle.seek(0)
        size = os.path.getsize(path)
        if not compressed and size > max_bytes:
            handle.seek(size - max_bytes)
            handle.readline(max_line + 1)  # resynchronise on a line start
            report["truncated_to_last_bytes"] = max_bytes
        yield handle, compressed


def read_lines(path, max_bytes, max_line, report):
    """Yield (number, text) of ``path`` (plain or gzip) with constant memory.

    A plain file larger than ``max_bytes`` is read from its last ``max_bytes`` (the newest
    entries); a gzip file stops after ``max_bytes`` decompressed. Lines longer than
    ``max_line`` bytes and lines with NUL bytes are skipped and counted in ``report``.
    Raises SkipFile for binary files.
    """
    with open_log(path, max_bytes, max_line, report) as (handle, compressed):
        read = 0
        number = 0
        while True:
            raw = handle.readline(max_line + 1)
            if not raw:
                break
            number += 1
            read += len(raw)
            if len(raw) > max_line and not raw.endswith(b"\n"):
                report["long_lines"] = report.get("long_lines", 0) + 1
                while True:  # discard the rest of the long line in bounded pieces
                    rest = handle.readline(max_line + 1)
                    read += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                continue
            if b"\x00" in raw:
                report["garbage_lines"] = report.get("garbage_lines", 0) + 1
                continue
            yield number, raw.decode("utf-8", "replace").rstrip("\r\n")
            if compressed and read >= max_bytes:
                report["truncated_after_bytes"] = max_bytes
                break
        report["bytes"] = read
        report["lines"] = number


CHUNK = 1 << 20


def read_chunks(path, max_bytes, max_line, report, size=CHUNK):
    """Yield (number of the first line, lines) of ``path`` (plain or gzip), a block at a time.

    The lines of read_lines, with the same skipping and truncation, split and decoded a
    block (``size`` bytes) at a time; a skipped line is yielded as an empty string so that
    line numbers stay right. Memory stays within a block plus one line of ``max_line`` bytes.
    """
    with open_log(path, max_bytes, max_line, report) as (handle, compressed):
        state = {"read": 0, "number": 0}
        carry = b""
        discarding = False  # inside a long line, until its end
        while True:
            block = handle.read(size)
            if not block:
                if carry:  # a last line without a newline
                    yield chunk_of(carry, max_line, report, state)
                break
            end = block.rfind(b"\n")
            if end < 0:
                data, carry = b"", carry + block
            else:
                data, carry = carry + block[:end + 1], block[end + 1:]
            if discarding:  # the rest of a long line, up to its newline
                if data:
                    cut = data.index(b"\n") + 1
                    state["read"] += cut
                    data, discarding = data[cut:], False
                else:
                    state["read"] += len(carry)
                    carry = b""
            stop = compressed and data and state["read"] + len(data) >= max_bytes
            if stop:
                data = data[:data.index(b"\n", max(0, max_bytes - state["read"] - 1)) + 1]
            if data:
                yield chunk_of(data, max_line, report, state)
            if stop:
                report["truncated_after_bytes"] = max_bytes
                break
            if not discarding and len(carry) > max_line:  # a long line: count it, drop what is read of it
                state["read"] += len(carry)
                state["number"] += 1
                report["long_lines"] = report.get("long_lines", 0) + 1
                carry, discarding = b"", True
        report["bytes"] = state["read"]
        report["lines"] = state["number"]


def chunk_of(data, max_line, report, state):
    """(number of the first line, decoded lines) of whole lines ``data``; long and NUL lines blanked."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    if len(text) != len(data) or "\x00" in text or max(map(len, lines)) > max_line:
        parts = data.split(b"\n")
        if data.endswith(b"\n"):
            parts.pop()
        lines = []
        for part in parts:
            if len(part) > max_line:
                report["long_lines"] = report.get("long_lines", 0) + 1
                part = b""
            elif b"\x00" in part:
                report["garbage_lines"] = report.get("garbage_lines", 0) + 1
                part = b""
            lines.append(part.decode("utf-8", "replace"))
    if "\r" in text:
        lines = [line.rstrip("\r\n") for line in lines]
    first = state["number"] + 1
    state["number"] += len(lines)
    state["read"] += len(data)
    return first, lines


def expand(patterns):
    """(existing files, patterns that matched nothing), in a stable order, without duplicates."""
    files, missing = [], []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else ([pattern] if os.path.lexists(pattern) else [])
        if not matched:
            missing.append(pattern)
        for path in matched:
            if path not in files and os.path.isfile(path):
                files.append(path)
    return files, missing


def journal_reader(module):
    """A reader of a unit's journal as text lines (JSON messages kept whole), or None without journalctl."""
    journalctl = module.get_bin_path("journalctl")
    if not journalctl:
        return None

    def read(unit, since):
        argv = [journalctl, "-u", unit, "-o", "json", "--no-pager"] + (["--since", "-%ds" % since] if since else [])
        rc, out, err = module.run_command(argv)
        if rc != 0:
            raise OSError(0, truncate(Redactor().text((err or out).strip()), 200) or "journalctl exited with %d" % rc)
        for line in out.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            message = record.get("MESSAGE") if isinstance(record.get("MESSAGE"), str) else ""
            stamp = record.get("__REALTIME_TIMESTAMP")
            yield message if message.startswith("{") else ("%s %s" % (iso(int(stamp) / 1e6) if stamp else "", message)).strip()
    return read
