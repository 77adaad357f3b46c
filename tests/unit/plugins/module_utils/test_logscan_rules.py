"""One table per log rule (its signature, hint words and example lines live in its catalog entry, logscan derives the
rest), and templates that never show a {key}: every log rule rendered with the evidence the scanner really emits, every
rule of the whole catalog checked against the evidence keys the plugins' code writes."""
import gzip
import os
import re
import string
import sys
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import logscan
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import logs
from ansible_collections.agentops.runbooks.plugins.module_utils.findings import fix_command
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position

SIGNATURE_RULES = sorted(rule_id for rule_id, rule in RULES.items() if rule_id.startswith("log.") and "signature" in rule)
# Rules the log family emits without a signature (rates, unreadable logs).
OTHER_LOG_RULES = ("log.check_incomplete", "log.error_rate", "log.error_spike")
# Keys the report fills from the host's context rather than from a finding's evidence.
HOST_CONTEXT = ("host", "pid", "pg_host", "pg_port", "pg_user", "pg_database")
HOST_VALUES = {"host": "agent-1", "pid": 1, "pg_host": "/var/run/postgresql", "pg_port": 5432, "pg_user": "postgres", "pg_database": "app"}
ISSUE_13 = ("log.http_timeout", "log.task_timeout", "log.spawn_eagain")


def fields(template):
    return [name for dummy, name, dummy2, dummy3 in string.Formatter().parse(template or "") if name]


def templates(rule):
    command = (rule.get("fix") or {}).get("command")
    return [rule.get("symptom"), rule.get("diagnosis")] + (command if isinstance(command, list) else [command])


def test_every_log_rule_is_a_signature_rule_or_a_known_other():
    log_rules = sorted(rule_id for rule_id in RULES if rule_id.startswith("log."))
    assert sorted(SIGNATURE_RULES + list(OTHER_LOG_RULES)) == log_rules
    assert set(ISSUE_13) <= set(SIGNATURE_RULES)


@pytest.mark.parametrize("rule_id", SIGNATURE_RULES)
def test_each_signature_rule_holds_its_signature_hints_and_examples(rule_id):
    rule = RULES[rule_id]
    pattern = re.compile(rule["signature"])
    assert rule["hints"] and rule["examples"], rule_id
    for hint in rule["hints"]:
        # the raw-text gate of the fast path may only skip what known() would not find: no hint spans "key: value"
        assert hint and hint == hint.strip() and ":" not in hint and "\n" not in hint, hint
        assert any(hint in example for example in rule["examples"]), "hint %r in no example" % hint
    for example in rule["examples"]:
        assert pattern.search(example), example
        assert any(hint in example for hint in rule["hints"]), "example %r holds no hint" % example
        assert rule_id in [found[0] for found in logscan.known(example)], example


def test_known_tries_the_rules_of_every_hint_in_the_text_overlapping_and_nested_ones_too(monkeypatch):
    """known() finds the hints with the trie (one search per place a hint starts) instead of testing each hint: on
    texts made of hints, their pieces and their overlaps, it must try exactly the rules of the hints that occur."""
    import random
    rnd = random.Random(7)
    hints = tuple(logscan.HINT_RULES)
    pieces = list(hints) + [hint[:cut] for hint in hints for cut in range(1, len(hint))] + \
        [hint[cut:] for hint in hints for cut in range(1, len(hint))] + [" ", "x", "\n", "ENOENTIMEOUT"]
    monkeypatch.setattr(logscan, "PATTERNS", dict((rule_id, re.compile("")) for rule_id in logscan.PATTERNS))  # a rule tried matches
    tried = []
    for dummy in range(20000):
        text = "".join(rnd.choice(pieces) for dummy in range(rnd.randrange(1, 8)))
        expected = set(rule for hint in hints if hint in text for rule in logscan.HINT_RULES[hint])
        assert set(item[0] for item in logscan.known(text)) == expected, text
        tried.append(len(expected))
    assert max(tried) >= 4 and tried.count(0) > 100  # texts with many hints and texts with none were among them


def test_logscan_derives_its_tables_from_the_catalog():
    assert [rule_id for rule_id, dummy in logscan.SIGNATURES] == SIGNATURE_RULES
    for rule_id, pattern in logscan.SIGNATURES:
        assert pattern.pattern == RULES[rule_id]["signature"]
        assert logscan.RULE_HINTS[rule_id] == tuple(RULES[rule_id]["hints"])
        for hint in RULES[rule_id]["hints"]:
            assert rule_id in logscan.HINT_RULES[hint] and logscan.HINTS.trie.search("x %s y" % hint)
            assert rule_id in logscan.HINTS.present("x %s y" % hint)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("corpus"))
    expected = log_corpus.write(directory)
    with open(os.path.join(directory, "broken.log.2.gz"), "wb") as handle:  # cut short: the scan reports it incomplete
        handle.write(gzip.compress(b"[2025-11-24T16:00:00.000Z] [INFO] [x] y\n" * 2000)[:300])
    return directory, expected


def corpus_lines(directory):
    for name in sorted(os.listdir(directory)):
        if name.endswith(".log"):
            with open(os.path.join(directory, name), "rb") as handle:
                yield from handle.read().decode("utf-8", "replace").split("\n")


@pytest.mark.parametrize("rule_id", SIGNATURE_RULES)
def test_each_corpus_line_a_signature_matches_holds_one_of_its_hints(corpus, rule_id):
    pattern, hints = re.compile(RULES[rule_id]["signature"]), RULES[rule_id]["hints"]
    matched = [line for line in corpus_lines(corpus[0]) if pattern.search(line)]
    assert matched, "the corpus has no line of %s" % rule_id
    for line in matched:
        assert any(hint in line for hint in hints), line


def scan(paths, since=0, recent_window=900):
    return logs.scan({"paths": paths, "journald_units": [], "since": since, "max_bytes": 1 << 30, "max_line_bytes": 65536,
                      "bucket_seconds": 60, "top_n": 10, "timeout": 60, "thresholds": {}, "recent_window": recent_window})


@pytest.fixture(scope="module")
def emitted(corpus, tmp_path_factory):
    """Every log finding the scanner emits on the corpus, plus a spike log for the rate rules."""
    spike = str(tmp_path_factory.mktemp("spike") / "spike.log")
    start = (int(time.time()) - 7200) // 60 * 60
    log_corpus.write_generated(spike, "seed", megabytes=0.3, per_minute=40, start=start, templates=4, mix=(0.9, 0.08, 0.01, 0.01))
    with open(spike, "a") as handle:
        for index in range(400):
            handle.write("[%s] [ERROR] [api] upstream failed %d\n" % (logscan.iso(time.time() - 300 + index * 0.5), index))
    found = {}
    for paths in ([os.path.join(corpus[0], "*.log"), os.path.join(corpus[0], "*.gz")], [spike]):
        for finding in scan(paths)["findings"]:
            found.setdefault(finding["id"], finding)
    return found


def test_the_corpus_yields_every_log_rule(emitted):
    assert sorted(emitted) == sorted(SIGNATURE_RULES + list(OTHER_LOG_RULES))


@pytest.mark.parametrize("rule_id", SIGNATURE_RULES + list(OTHER_LOG_RULES))
def test_each_log_rule_renders_with_the_evidence_the_scanner_emits(emitted, rule_id):
    finding = emitted[rule_id]
    rule = RULES[rule_id]
    for name in fields(rule["symptom"]) + fields(rule["diagnosis"]):
        assert name in finding["evidence"], "%s: {%s} is not in the evidence the scanner emits" % (rule_id, name)
    for text in (finding["symptom"], finding["diagnosis"]):
        assert not re.search(r"\{[A-Za-z_]+\}", text), text
    command = finding["fix"]["command"] or fix_command(rule_id, dict(HOST_VALUES, **finding["evidence"]))
    assert command, "%s: no fix command can be filled from its evidence and the host's context" % rule_id
    assert not re.search(r"(?<!\$)\{[a-z_]+\}", command)
    assert finding["severity"] in ("critical", "high", "medium", "low", "info", "unknown")


def test_issue_13_timeouts_and_eagain_are_found_in_every_shape(emitted):
    assert emitted["log.http_timeout"]["evidence"]["count"] == 3  # fetch's TimeoutError, undici's code, axios's message
    assert emitted["log.task_timeout"]["evidence"]["count"] == 1
    assert emitted["log.spawn_eagain"]["evidence"]["commands"] == ["claude"]
    assert emitted["log.spawn_eagain"]["severity"] == "high"
    assert emitted["log.network_reset"]["evidence"]["count"] == 1  # the undici timeout is not a reset


def test_log_rule_severities_follow_the_catalog_and_user_thresholds(corpus):
    paths = [os.path.join(corpus[0], "*.log")]
    default = dict((f["id"], f["severity"]) for f in scan(paths)["findings"])
    assert default["log.http_timeout"] == "low" and default["log.task_timeout"] == "medium"
    params = {"paths": paths, "journald_units": [], "since": 0, "max_bytes": 1 << 30, "max_line_bytes": 65536, "bucket_seconds": 60,
              "top_n": 10, "timeout": 60, "recent_window": 900,
              "thresholds": {"log.http_timeout": {"high": 2}, "log.task_timeout": {"critical": 1}}}
    tuned = dict((f["id"], f["severity"]) for f in logs.scan(params)["findings"])
    assert tuned["log.http_timeout"] == "high" and tuned["log.task_timeout"] == "critical"


def evidence_keys_written_by_the_plugins():
    """Every name the plugins' code can write as an evidence key: quoted strings and keyword arguments."""
    names = set()
    for root, dummy, files in os.walk(os.path.join(REPO, "plugins")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(root, name)) as handle:
                    text = handle.read()
                names.update(re.findall(r"[\"']([A-Za-z_][A-Za-z0-9_]*)[\"']", text))
                names.update(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)=", text))
    return names


def test_every_template_key_of_the_whole_catalog_is_evidence_or_host_context():
    """A {key} in any rule's symptom, diagnosis or fix command that no plugin code writes would show as {key} in a report
    (or leave the rule without a command): every one is a host-context key or a name the plugins write."""
    written = evidence_keys_written_by_the_plugins()
    missing = set()
    for rule_id, rule in sorted(RULES.items()):
        for template in templates(rule):
            for name in fields(template):
                if name not in HOST_CONTEXT and name not in written:
                    missing.add("%s: {%s}" % (rule_id, name))
    assert missing == KNOWN_GAPS, sorted(missing ^ KNOWN_GAPS)


# Gaps found by the test above and owned by another part of the catalog; each must go from here when it is fixed.
KNOWN_GAPS = set()
