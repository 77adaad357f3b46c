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

One parser, two speeds. ``Scanner.feed_lines`` (the reference) parses every line in
Python. ``scan_file`` reads a block of bytes at a time and ``Scanner.feed_chunk``
counts it with C-level operations: a regex ``findall`` over the block for the seed
headers (a minute at a time when buckets are whole minutes), one ``json.loads`` per
block of JSON lines, ``find`` and ``count`` for the entries that need more. Only
those go through Python, with the code of the reference: warn and above (with their
metadata lines), a level word it does not know, and lines of any other shape. Info and
debug entries are only counted, with or without metadata or ids: only warn-and-above
entries are correlated by id. Both give the same results (tests/unit/plugins/
module_utils/test_logscan_fast.py compares them field by field). The signatures and
their hint words are the catalog's (rules.RULES, one table per log rule).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import calendar
import collections
import contextlib
import glob
import gzip
import itertools
import json
import operator
import os
import re
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.keywords import Keywords
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, truncate
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

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

# Known signatures, from the catalog's log rules (one table per rule: its "signature" regex and its "hints"): rule id ->
# pattern searched in an entry's message, metadata and first stack line, tried only when one of its hint words occurs.
SIGNATURES = [(rule_id, re.compile(rule["signature"])) for rule_id, rule in sorted(RULES.items())
              if rule_id.startswith("log.") and rule.get("signature")]
RULE_HINTS = dict((rule_id, tuple(RULES[rule_id]["hints"])) for rule_id, dummy in SIGNATURES)
HINT_RULES = {}
for _rule, _hints in RULE_HINTS.items():
    for _hint in _hints:
        HINT_RULES.setdefault(_hint, []).append(_rule)
HINTS = Keywords(HINT_RULES)  # hint -> the rules it gates
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
        if isinstance(text, bool) or not -1e15 < text < 1e15:  # NaN, infinities, absurd values: no timestamp
            return None
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
    return json_entry(data, file, number)


def json_entry(data, file, number):
    """The Entry of a decoded JSON line (a dict)."""
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


def known(text, rules=None):
    """((rule id, groups of its match, the retry-after value in the text or None), ...) of the known signatures in
    ``text``, in rule order; only rules one of whose hints occurs are tried (or only ``rules``)."""
    if rules is None:
        rules = HINTS.present(text)  # the rules of every hint in the text
        if not rules:
            return ()
    found = []
    for rule_id in sorted(rules):
        match = PATTERNS[rule_id].search(text)
        if match:
            retry = RETRY_AFTER.search(text) if rule_id == "log.llm_rate_limit" else None
            found.append((rule_id, match.groupdict(), retry.group(1) if retry else None))
    return tuple(found)


SEED_TIME = re.compile(r"\[([^\]]+)\]\s+\[[A-Za-z]+\]\s+\[[^\]]*\]")  # what decides whether SEED matches a line
_SECONDS, _TAILS = {}, {}


def stamp(text):
    """parse_time(text), from caches for the ISO 8601 shape a log repeats on every line (as Scanner.stamp)."""
    seconds = _SECONDS.get(text[:19])
    if seconds is not None:
        tail = _TAILS.get(text[19:])
        if tail is not None:
            return seconds + tail[0] - tail[1]
    match = ISO_FULL.match(text)
    if not match:
        return parse_time(text)
    for cache in (_SECONDS, _TAILS):
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
    seconds, fraction, offset = iso_parts(match)
    _SECONDS[text[:19]] = seconds
    _TAILS[text[19:]] = (fraction, offset)
    return seconds + fraction - offset


def entry_time(line):
    """Epoch seconds of the entry a line starts (JSON or text), or None."""
    first = line[:1]
    if first == "[" and "\n" not in line:  # parse_plain's time of a seed-format line, without parsing the rest of it
        match = SEED_TIME.match(line)
        if match:
            return stamp(match.group(1))
    entry = parse_json(line, "", 0) if first == "{" else None
    return (entry or parse_plain(line, "", 0)).ts


def seen(item, entry):
    """Count ``entry`` in an aggregate with count, first_seen, last_seen and components."""
    item["count"] += 1
    ts = entry.ts
    if ts is not None:  # min() and max() without the calls: the first of equal values stays
        first, last = item["first_seen"], item["last_seen"]
        if first is None or ts < first:
            item["first_seen"] = ts
        if last is None or ts > last:
            item["last_seen"] = ts
    if len(item["components"]) < 10:
        item["components"].add(entry.component or "(none)")


SERIOUS = frozenset(("fatal", "error", "warn"))
LOOKED_AT = SERIOUS | frozenset(("unknown",))
CACHE_LIMIT = 4096

# The fast path (Scanner.feed_chunk) works on a block of bytes with a newline put in front, so that every line
# follows a newline. A seed-format header it counts without Python per line: ISO time to the second (a fraction of
# 1-3 digits, Z or no zone), a level word, a component, then a space or the end of the line; the groups are the
# second, the level word and the component. Everything else is a "soft" line (indented or empty: metadata of the
# entry before it) or an "odd" line, which goes the way of feed_lines.
_SEED_HEAD = rb"\[(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:[.,]\d{1,3})?Z?\] \[([A-Za-z]+)\] \[([^\]\n]*)\](?=[ \n])"
SEED_KEY = re.compile(b"\n" + _SEED_HEAD)
# A header found by SEED_KEY and the soft lines under it, in the decoded text of such entries each after a newline:
# time, level word, component, message (one space after the component left out) and the soft lines, each after its
# newline. A soft line never starts with "[", so each entry ends where the next "\n[" starts.
SEED_ENTRY = re.compile(r"\n\[([^\]\n]*)\] \[([A-Za-z]+)\] \[([^\]\n]*)\] ?([^\n]*)((?:\n(?!\[)[^\n]*)*)")
# A soft line after its newline: (the line, key, value) where META.match(line) matches (a line has no newline, so
# [^\S\n] is \s), else (the line, "", "").
SOFT_LINE = re.compile(r"\n([^\S\n]+([A-Za-z_][\w.-]*):[^\S\n]?([^\n]*)|[^\n]*)")
SOFT_RUN = re.compile(rb"\n(?=[ \t\n])[^\n]*(?:\n(?=[ \t\n])[^\n]*)*")  # starts with a literal: a fast search
SEED_MINUTE = re.compile(rb"\n\[\d{4}-\d\d-\d\d[T ]\d\d:\d\d:[0-5]\d(?:[.,]\d{1,3})?Z?\] \[([A-Za-z]+\] \[[^\]\n]*)\](?=[ \n])")
MINUTE = re.compile(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
ODD = re.compile(rb"\n(?![ \t\n]|" + re.sub(rb"\((?!\?)", b"(?:", _SEED_HEAD) + b")")
JSON_MARK = '"\\u0001"'  # the member put first into every JSON line of a block: a key no logger writes
_MISSING = object()
_OUTSIDE = object()  # the bucket of entries before the window in the counts of a block
_INT, _STR, _DICT = set((int,)), set((str,)), set((dict,))
_GET_LEVEL = operator.methodcaller("get", "level", _MISSING)
_GET_TIME = operator.methodcaller("get", "time", _MISSING)
_GET_COMPONENT = operator.methodcaller("get", "component")
_GET_SERVICE = operator.methodcaller("get", "service")
_GET_NAME = operator.methodcaller("get", "name")
_has_mark = operator.methodcaller("__contains__", "\x01")
ODD_LIMIT = 64  # more odd lines than this in a block: the block goes the way of feed_lines
BORING = frozenset(("info", "debug", "trace"))  # levels whose entries without metadata or ids are only counted


class Scanner(object):
    """Feed lines file by file; read the aggregates with result().

    Entries are counted per (component, level, bucket) in one dictionary that is folded
    into the per-level, per-component and per-bucket counts in first-seen order, so the
    limits apply exactly as if every entry were counted on its own. Signatures are matched
    in warn, error and fatal entries and in entries without a recognisable level; ids are
    looked up (and correlated) only in warn, error and fatal entries.

    Counting (``count``) and everything else about an entry (``examine``) are independent:
    the fast path counts a block's entries in bulk, in first-seen order, and examines the
    few that need it in file order.
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
        self.seconds_b = {}  # b"YYYY-MM-DDTHH:MM:SS" and b"YYYY-MM-DDTHH:MM" -> epoch seconds (feed_chunk)
        self.clean = set()  # texts the redactor leaves as they are
        self.normalized = {}  # redacted message -> its signature
        self.known = {}  # message -> known(message), for entries whose text is their message
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

    def feed_chunk(self, data, file, number):
        """Feed whole lines as bytes, the first being line ``number`` of ``file``: the results of feed_lines of the
        lines decoded (and CR-stripped) as read_chunks decodes them, but counted a block at a time with C-level
        searches. Only entries that need a closer look (warn and above with their metadata lines, a level word not
        known) are parsed in Python as feed_lines parses them, and examined; a block this
        path does not understand (CR, NUL, many lines of another shape, a time window boundary inside a second)
        goes to feed_lines. The caller closes the file's last entry (close()) as after feed_lines."""
        if not data:
            return
        if data[-1:] != b"\n":
            data += b"\n"
        fast = b"\r" not in data and b"\x00" not in data and isinstance(self.bucket, int) and self.bucket >= 1
        if not (fast and (self._json_block(data, file, number) if data[:1] == b"{" else self._seed_block(data, file, number))):
            self.feed_lines(decoded(data), file, number)
        if len(self.counts) > 50000:
            self.fold()

    def _seed_block(self, data, file, number):
        """feed_chunk for seed-format blocks; False, having changed nothing, for a block it leaves to feed_lines."""
        buf = b"\n" + data  # buf[p] is the newline before the line that starts at data[p]
        last = len(buf) - 1
        runs = [(m.start(), m.end()) for m in SOFT_RUN.finditer(buf)]
        first = runs[0][1] if runs and runs[0][0] == 0 else 0  # the first line that is not soft
        if first == last or buf[first + 1] != 0x5b:  # only soft lines, or a block that does not start like the seed format
            return False
        tail = buf.rfind(b"\n", 0, runs[-1][0] if runs and runs[-1][1] == last else last)  # the last entry: left open
        inner = [run for run in runs if first < run[0] < tail]
        ends = dict(inner)
        nonsoft = buf.count(b"\n", first, tail) - sum(buf.count(b"\n", start, end) for start, end in inner)
        words = set()  # level words of entries to look at
        odd = []
        keys = self._minute_keys(buf, first, tail, ends, file, words, nonsoft) if self.bucket % 60 == 0 else None
        heads = SEED_KEY.findall(buf, first, tail + 1) if keys is None else ()
        if keys is not None:
            pieces = [(first, tail, keys)]
        elif len(heads) == nonsoft:
            pieces = [(first, tail, self._seed_keys(heads, file, words))]
        else:
            odd = [m.start() for m in ODD.finditer(buf, first, tail)]
            if len(odd) > ODD_LIMIT:
                return False
            pieces = []  # (start, end, keys) of the headers between odd lines; keys None for an odd entry
            start = first
            for position in odd + [tail]:
                if position > start:
                    pieces.append((start, position, self._seed_keys(SEED_KEY.findall(buf, start, position + 1), file, words)))
                if position < tail:
                    end = buf.find(b"\n", position + 1)
                    start = ends.get(end, end)
                    pieces.append((position, start, None))
        if any(piece[2] is False for piece in pieces):
            return False
        # The lines before the first entry (metadata of the previous block's last entry) ...
        if first:
            self.feed_lines(decoded(data[:first]), file, number)
        self.close()
        # ... the entries between the first and the last, counted; odd ones fed; interesting ones examined ...
        look = self._seed_interesting(buf, first, tail, words, set(odd))
        service = self.service_of(file)
        line, at = number + buf.count(b"\n", 0, first), first
        for start, end, keys in pieces:
            if keys is None:
                line += buf.count(b"\n", at, start)
                at = start
                self.feed_lines(decoded(data[start:end]), file, line)
                self.close()
                continue
            self._seed_count(keys)
            chosen = look[bisect.bisect_left(look, start):bisect.bisect_left(look, end)]
            if chosen:
                line, at = self._seed_examine(buf, chosen, ends, file, service, line, at)
        # ... and the last entry, left open as feed_lines leaves it: the next block may hold its metadata.
        self.feed_lines(decoded(data[tail:]), file, line + buf.count(b"\n", at, tail))
        return True

    def _json_block(self, data, file, number):
        """feed_chunk for blocks of JSON lines, decoded in one call; False, having changed nothing, for a block
        it leaves to feed_lines (a line that is not a JSON object on its own, other lines between)."""
        text = data.decode("utf-8", "replace")
        if JSON_MARK in text:
            return False
        # Every line starts an object whose first member is the mark: with n lines and n objects that all have
        # it, each line is one object (a line that continued another would put its mark inside that one).
        try:
            values = json.loads("[" + ("\n" + text[:-1]).replace("\n{", ',\n{' + JSON_MARK + ':0,')[1:] + "]")
        except ValueError:
            return False
        if len(values) < 2 or len(values) != text.count("\n") or set(map(type, values)) != _DICT or not all(map(_has_mark, values)):
            return False
        values.pop()  # the last entry stays open, like feed_lines leaves it, and goes through feed_lines
        keys = self._json_keys(values, file, text)
        if keys is None:
            return False
        self.close()
        self._seed_count(keys[0])
        for index in keys[1]:
            value = values[index]
            del value["\x01"]
            entry = json_entry(value, file, number + index)
            if not entry.component:
                entry.component = self.service_of(file)
            if not (self.since is not None and entry.ts is not None and entry.ts < self.since):
                self.examine(entry)
        self.feed_lines([text[text.rindex("\n", 0, len(text) - 1) + 1:-1]], file, number + len(values))
        return True

    def _json_keys(self, values, file, text):
        """({(component, level, bucket start, None or _OUTSIDE the window): count}, indexes of the lines to look at
        closely: a level other than info, debug and trace) of decoded JSON lines, with C-level maps where the lines
        share one shape (pino's), else a loop; None for a block where the time window starts inside the block and
        lines have no integer time."""
        service = self.service_of(file) or "(none)"
        since, bucket = self.since, self.bucket
        raw = list(map(_GET_LEVEL, values))
        try:
            if _MISSING in raw:
                raise TypeError("a line without level")
            names = dict((value, level_of(value)) for value in set(raw))
            times = list(map(_GET_TIME, values))
            if "\\u" in text:  # a key may hide behind an escape
                named = any(map(_GET_COMPONENT, values)) or any(map(_GET_SERVICE, values))
            else:
                named = '"component"' in text or '"service"' in text
            if named or set(map(type, times)) != _INT or min(times) <= 1e11:
                raise TypeError("not the shape of pino's lines")
            components = list(map(_GET_NAME, values))
            if not all(components) or set(map(type, components)) != _STR:
                raise TypeError("not the shape of pino's lines")
            low, high = min(times) / 1000.0, max(times) / 1000.0
            if since is not None and low < since <= high:
                raise TypeError("the window starts inside the block")
            counts = collections.Counter(zip(components, raw, map(operator.floordiv, times, itertools.repeat(1000 * bucket))))
            outside = since is not None and high < since
            keys = {}
            for (component, value, start), count in counts.items():
                key = (component, names[value], _OUTSIDE if outside else start * bucket)
                keys[key] = keys.get(key, 0) + count
            serious = set(value for value, name in names.items() if name in LOOKED_AT)
            return keys, list(itertools.compress(itertools.count(), map(serious.__contains__, raw))) if serious else []
        except TypeError:
            pass
        keys, levels = {}, []
        for value in values:
            level = level_of(value.get("level", value.get("severity", "unknown")))
            levels.append(level)
            component = value.get("component") or value.get("service") or value.get("name") or value.get("module") or value.get("logger") or ""
            ts = parse_time(value.get("time", value.get("timestamp", value.get("@timestamp"))))
            if since is not None and ts is not None and ts < since:
                start = _OUTSIDE
            else:
                start = None if ts is None else int(ts // bucket * bucket)
            key = (str(component) or service, level, start)
            keys[key] = keys.get(key, 0) + 1
        return keys, list(itertools.compress(itertools.count(), map(LOOKED_AT.__contains__, levels)))

    def _seed_examine(self, buf, chosen, ends, file, service, line, at):
        """Parse and examine the seed entries whose headers follow the newlines at the sorted positions ``chosen`` of
        ``buf`` (each with the soft lines under it) as feed_lines parses and examines them, with the steps done a block
        at a time where they can: line numbers, ends, slicing, decoding, header fields and the hint gate. ``line`` is
        the number of the line after ``at``; returns both for the last entry."""
        gaps = list(map(buf.count, itertools.repeat(b"\n"), [at] + chosen[:-1], chosen))
        gaps[0] += line
        numbers = list(itertools.accumulate(gaps))
        stops = list(map(buf.find, itertools.repeat(b"\n"), map(operator.add, chosen, itertools.repeat(1))))
        # one text: "\n" + entry (header and soft lines) for each; decoding at the newlines that join them is
        # decoding each on its own
        text = b"".join(map(buf.__getitem__, map(slice, chosen, map(ends.get, stops, stops)))).decode("utf-8", "replace")
        heads = list(SEED_ENTRY.finditer(text))
        if len(heads) != len(numbers):  # every position is a SEED_KEY header: this cannot differ
            raise ValueError("log_scan: %d entries parsed from %d seed headers" % (len(heads), len(numbers)))
        # places inside hints, at least one in each entry that holds one (hints hold no newline: a place inside an
        # entry's text belongs to a hint in that entry)
        gates = HINTS.positions(text)
        since, words, stamp, examine = self.since, self.level_words, self.stamp, self.examine
        gates.append(len(text))
        gate = 0
        for match, number in zip(heads, numbers):
            stamp_text, word, component, msg, soft = match.groups()
            entry = Entry(stamp(stamp_text), words.get(word) or self.level_word(word), component or service, msg, file, number)
            if soft:
                meta, stack = entry.meta, entry.stack
                for whole, key, value in SOFT_LINE.findall(soft):  # feed_lines' META.match of each soft line
                    if key and len(meta) < 50:
                        meta[key] = value.strip()
                    elif whole and not whole.isspace() and len(stack) < 20:
                        stack.append(whole.strip())
            if since is not None and entry.ts is not None and entry.ts < since:
                continue
            start = match.start()
            while gates[gate] < start:
                gate += 1
            examine(entry, gates[gate] < match.end())
        return numbers[-1], chosen[-1]

    def _minute_keys(self, buf, first, tail, ends, file, looked_at, nonsoft):
        """The keys of _seed_keys a minute at a time, for buckets of whole minutes: the headers between ``first`` and
        ``tail`` in runs of one minute, each counted with one search; None when a line is not in the SEED_MINUTE shape,
        minutes interleave, or the window starts inside a minute."""
        service = self.service_of(file) or "(none)"
        keys, total, at = {}, 0, first
        while at < tail:
            minute = buf[at + 2:at + 18]
            prefix = b"\n[" + minute
            last = buf.rfind(prefix, at, tail)  # the last line of this minute
            if last < 0 or not MINUTE.fullmatch(minute):
                return None
            end = buf.find(b"\n", last + 1)
            end = ends.get(end, end)
            found = SEED_MINUTE.findall(buf, at, end + 1)
            if buf.count(prefix, at, end) != len(found):
                return None
            total += len(found)
            start = self._span_start(minute, ":00Z", 60)
            if start is None:
                return None
            for head, count in collections.Counter(found).items():
                word, component = head.split(b"] [", 1)
                self._add_key(keys, word, component, service, start, looked_at, count)
            at = end
        return keys if total == nonsoft else None

    def _seed_keys(self, heads, file, looked_at):
        """{(component, level, bucket start or _OUTSIDE the window): count} of seed headers (SEED_KEY groups);
        False when a second straddles the start of the window (there the fraction decides). The level words of
        levels other than info, debug and trace go into ``looked_at``."""
        service = self.service_of(file) or "(none)"
        keys = {}
        for (second, word, component), count in collections.Counter(heads).items():
            start = self._span_start(second, "Z", 1)
            if start is None:
                return False
            self._add_key(keys, word, component, service, start, looked_at, count)
        return keys

    def _span_start(self, stamp, suffix, width):
        """The bucket start of the ``width`` seconds that begin at ``stamp`` (bytes, completed by ``suffix`` into an ISO
        time; cached), _OUTSIDE when they end before the window, None when they straddle its start."""
        cache = self.seconds_b
        value = cache.get(stamp)
        if value is None:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            value = cache[stamp] = self.stamp(stamp.decode("ascii") + suffix)
        if self.since is not None and value < self.since:
            return None if value + width > self.since else _OUTSIDE
        return int(value // self.bucket * self.bucket)

    def _add_key(self, keys, word, component, service, start, looked_at, count):
        """Add ``count`` seed headers of level ``word`` and ``component`` (bytes) to ``keys``; level words of levels
        other than info, debug and trace go into ``looked_at``."""
        word = word.decode("ascii")
        level = self.level_words.get(word) or self.level_word(word)
        if level not in BORING:
            looked_at.add(word)
        key = (component.decode("utf-8", "replace") or service, level, start)
        keys[key] = keys.get(key, 0) + count

    def _seed_count(self, keys):
        counts = self.counts
        for key, count in keys.items():
            if key[2] is _OUTSIDE:
                self.outside_window += count
            else:
                self.entries += count
                counts[key] = counts.get(key, 0) + count

    @staticmethod
    def _seed_interesting(buf, first, tail, words, odd):
        """Sorted newline positions (before the line) of the entries between ``first`` and ``tail`` that need a
        closer look: a level word that is not info, debug or trace (a literal search per word). Odd lines are
        left out: they are fed whole."""
        look = []
        for word in words:
            marker = b"] [" + word.encode("ascii") + b"] ["
            found = buf.find(marker, first, tail)
            while found >= 0:
                start = buf.rfind(b"\n", 0, found)
                if buf[start + 1] == 0x5b and buf.find(b"] [", start, found + 3) == found:
                    look.append(start)
                found = buf.find(marker, found + 1, tail)
        look = sorted(set(look)) if len(words) > 1 else look
        return [start for start in look if start not in odd] if odd else look

    def settle(self, pending, file):
        """Count a seed-format entry that nothing followed; an Entry only when it needs a closer look."""
        ts, level, component, msg, number = pending
        if level in LOOKED_AT:
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
        if entry is not None and self.count(entry.component, entry.level, entry.ts):
            self.examine(entry)

    def examine(self, entry, hinted=True):
        """Everything but counting an entry inside the window: signatures, known signatures, who it affected, ids.
        Only warn, error and fatal entries are correlated: a timeline follows an id through the entries that went
        wrong (info and debug entries are counted, never looked at one by one). ``hinted`` False: no hint word occurs in
        the entry's lines as read (header, metadata and stack lines), so no known signature is tried."""
        level, msg = entry.level, entry.msg
        if level in SERIOUS:
            ids = entry.ids() if entry.meta or "Id" in msg or "_id" in msg or "-id" in msg else ()
            self.count_signature(entry)
            if hinted:
                self.match_hints(entry)
            if level != "warn":
                self.note_affected(entry, ids)
                self.file_errors[entry.file] = self.file_errors.get(entry.file, 0) + 1
            for value in ids:
                self.correlate(value, entry)
        elif level == "unknown" and hinted:
            self.match_hints(entry)

    def note_affected(self, entry, ids=None):
        """Remember the distinct users and conversations an error entry names (bounded); ``ids``: entry.ids() if known."""
        affected = self.affected
        users = [str(entry.meta[key]) for key in USER_KEYS if entry.meta.get(key)]
        if not users and "ser" in entry.msg:
            users = [m.group("value") for m in PLAIN_USER.finditer(entry.msg)]
        for kind, values in (("users", users), ("conversations", entry.ids() if ids is None else ids)):
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
        if entry.meta or entry.stack:
            found = known(entry.text())
        else:  # the text is the message: what it matches is remembered
            found = self.known.get(entry.msg)
            if found is None:
                if len(self.known) >= CACHE_LIMIT:
                    self.known.clear()
                found = self.known[entry.msg] = known(entry.msg)
        if found:
            self.record_known(entry, found)

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
        msg = self.redact(entry.msg)  # whole, before normalize and the cut
        signature = self.normalized.get(msg)
        if signature is None:
            if len(self.normalized) >= CACHE_LIMIT:
                self.normalized.clear()
            signature = self.normalized[msg] = normalize(msg)
        key = (entry.level if entry.level != "fatal" else "error", signature)
        item = self.signatures.get(key)
        if item is None:
            if len(self.signatures) >= self.limits["signatures"]:
                return
            item = self.signatures[key] = {"count": 0, "first_seen": entry.ts, "last_seen": entry.ts, "components": set(),
                                           "example": truncate(msg, 300, "")}
        seen(item, entry)

    def match_known(self, entry, text, rules):
        self.record_known(entry, known(text, rules))

    def record_known(self, entry, found):
        """Count the known signatures ``found`` (see :func:`known`) in ``entry``."""
        for rule_id, groups, retry_found in found:
            hit = self.matches.get(rule_id)
            if hit is None:
                hit = self.matches[rule_id] = {"count": 0, "first_seen": None, "last_seen": None, "components": set(),
                                               "files": set(), "examples": [], "ports": {}, "retry_after": [], "cmds": set(),
                                               "hosts": set()}
            seen(hit, entry)
            if len(hit["files"]) < 10:
                hit["files"].add(entry.file)
            if len(hit["examples"]) < self.limits["examples"]:
                hit["examples"].append("%s:%d %s" % (entry.file, entry.line, truncate(self.redact(entry.msg), 300, "")))
            if groups.get("port"):
                hit["ports"][groups["port"]] = hit["ports"].get(groups["port"], 0) + 1
            if groups.get("cmd") and len(hit["cmds"]) < 10:
                hit["cmds"].add(self.redact(groups["cmd"]))
            if groups.get("dnshost") and len(hit["hosts"]) < 10:
                hit["hosts"].add(self.redact(groups["dnshost"]))
            if rule_id == "log.llm_rate_limit":
                retry = entry.meta.get("retryAfter") or entry.meta.get("retry_after")
                value = retry or retry_found
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
                                    "message": truncate(self.redact(entry.msg), 200, ""), "file": entry.file, "line": entry.line,
                                    "error_code": self.redact(entry.meta.get("errorCode"))})

    def redact(self, text):
        """``self.redactor.text(text)``; text its keyword prefilter passes is remembered and not looked at again."""
        if not text or not isinstance(text, str) or text in self.clean:
            return text
        if not self.redactor.clean(text):
            return self.redactor.text(text)
        if len(self.clean) >= CACHE_LIMIT:
            self.clean.clear()
        self.clean.add(text)
        return text

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


def decoded(data):
    """The lines of whole lines ``data`` (bytes) as read_chunks decodes them, nothing blanked."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line.rstrip("\r\n") for line in lines] if "\r" in text else lines


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
    Raises SkipFile for binary files. Read a block at a time (read_blocks).
    """
    for first, data in read_blocks(path, max_bytes, max_line, report):
        lines, skipped = _lines_of(data, max_line, report)
        if skipped:
            for offset, line in enumerate(lines):
                if offset not in skipped:
                    yield first + offset, line
        else:
            yield from zip(itertools.count(first), lines)


CHUNK = 1 << 20


def read_blocks(path, max_bytes, max_line, report, size=CHUNK):
    """Yield (number of the first line, data) of ``path`` (plain or gzip): whole lines as bytes, a block at a time.

    The reading of read_lines (truncation, where a gzip file stops, the report's bytes and lines) without
    decoding: a long line that spans blocks is counted and dropped here; a long line inside a block and lines
    with NUL bytes are left to the caller (:func:`lines_of`). The last line of a file may lack its newline.
    Memory stays within a block plus one line of ``max_line`` bytes.
    """
    with open_log(path, max_bytes, max_line, report) as (handle, compressed):
        state = {"read": 0, "number": 0}
        carry = b""
        discarding = False  # inside a long line, until its end
        while True:
            block = handle.read(size)
            if not block:
                if carry:  # a last line without a newline
                    yield _account(carry, state)
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
                yield _account(data, state)
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


def _account(data, state):
    first = state["number"] + 1
    state["number"] += data.count(b"\n") + (data[-1:] != b"\n")
    state["read"] += len(data)
    return first, data


def read_chunks(path, max_bytes, max_line, report, size=CHUNK):
    """Yield (number of the first line, lines) of ``path`` (plain or gzip), a block at a time.

    The lines of read_lines, with the same skipping and truncation, split and decoded a
    block (``size`` bytes) at a time; a skipped line is yielded as an empty string so that
    line numbers stay right. Memory stays within a block plus one line of ``max_line`` bytes.
    """
    for first, data in read_blocks(path, max_bytes, max_line, report, size):
        yield first, lines_of(data, max_line, report)


def lines_of(data, max_line, report):
    """The decoded lines of whole lines ``data``; lines longer than ``max_line`` bytes and NUL lines blanked and counted."""
    return _lines_of(data, max_line, report)[0]


def _lines_of(data, max_line, report):
    """(lines_of(...), the offsets of the blanked lines or None)."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    skipped = None
    if len(text) != len(data) or "\x00" in text or max(map(len, lines)) > max_line:
        parts = data.split(b"\n")
        if data.endswith(b"\n"):
            parts.pop()
        lines, skipped = [], set()
        for part in parts:
            if len(part) > max_line:
                report["long_lines"] = report.get("long_lines", 0) + 1
                skipped.add(len(lines))
                part = b""
            elif b"\x00" in part:
                report["garbage_lines"] = report.get("garbage_lines", 0) + 1
                skipped.add(len(lines))
                part = b""
            lines.append(part.decode("utf-8", "replace"))
    if "\r" in text:
        lines = [line.rstrip("\r\n") for line in lines]
    return lines, skipped


def has_long_line(data, max_line):
    """True when a line of ``data`` is longer than ``max_line`` bytes (without its newline): a few C-level searches."""
    start, end = 0, len(data)
    while end - start > max_line:
        cut = data.rfind(b"\n", start, start + max_line + 1)
        if cut < 0:
            return True
        start = cut + 1
    return False


def scan_file(scanner, path, max_bytes, max_line, report, deadline=None, clock=time.monotonic, size=CHUNK):
    """Scan ``path`` (plain or gzip) into ``scanner``: read_chunks and Scanner.feed_lines with the same results,
    a block of bytes at a time through Scanner.feed_chunk. Closes the file's last entry. Returns False when it
    stopped early because ``clock()`` passed ``deadline`` (checked after each block), True when it read to the
    end (or to ``max_bytes``). Raises SkipFile, OSError and EOFError as read_chunks does."""
    for number, data in read_blocks(path, max_bytes, max_line, report, size):
        if b"\x00" in data or has_long_line(data, max_line):
            scanner.feed_lines(lines_of(data, max_line, report), path, number)
        else:
            scanner.feed_chunk(data, path, number)
        if deadline is not None and clock() > deadline:
            scanner.close()
            return False
    scanner.close()
    return True


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
