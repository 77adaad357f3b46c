"""The scanner's fast path (Scanner.feed_chunk through scan_file: C-level counting, Python only for the entries that need
a closer look) against its reference (read_chunks and Scanner.feed_lines), field by field, on the test corpora and on
generated logs of every shape: seed format, pino, winston and bunyan JSON lines, mixed, CRLF, NUL and long lines, gzip,
truncation, time windows, bucket sizes, small limits, block sizes, secrets."""
import gzip
import json
import os
import random
import sys
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import logscan
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position

START = 1764000000 // 60 * 60  # the generated logs start here
NOW = START + 86400
SMALL_LIMITS = {"components": 4, "buckets": 6, "component_buckets": 9, "ids": 12, "per_id": 3, "signatures": 7, "affected": 40,
                "examples": 2}
FIELDS = ("entries", "outside_window", "by_level", "by_component", "buckets", "first_error_bucket", "affected", "errors_by_file",
          "top_signatures", "correlation", "matches")


def plain(value):
    return json.loads(json.dumps(value, default=sorted, sort_keys=True))


def outputs(scanner, reports, window=900):
    result = scanner.result()
    out = dict((field, plain(result[field])) for field in FIELDS)
    out["component_order"] = list(result["by_component"])  # first-seen order decides the limits: it must agree too
    out["level_order"] = dict((name, list(levels)) for name, levels in result["by_component"].items())
    out["error_rates"] = plain(scanner.error_rates(NOW + 10 ** 6, window))
    out["error_rates_recent"] = plain(scanner.error_rates(START + 1800, window))
    out["reports"] = reports
    out["redactions"] = dict(scanner.redactor.counts)
    return out


def make(since=None, bucket=60, limits=None, key=None):
    return logscan.Scanner(Redactor(key=key), since=since, bucket=bucket, top_n=25, limits=limits)


def reference(paths, max_bytes=1 << 40, max_line=65536, size=logscan.CHUNK, **kwargs):
    scanner, reports = make(**kwargs), []
    for path in paths:
        report = {}
        for number, lines in logscan.read_chunks(path, max_bytes, max_line, report, size):
            scanner.feed_lines(lines, path, number)
        scanner.close()
        reports.append(report)
    return outputs(scanner, reports)


FAST_BLOCKS = {"seed": 0, "json": 0}


@pytest.fixture(autouse=True)
def fast_blocks(monkeypatch):
    """Counts the blocks the fast paths took (not left to feed_lines)."""
    FAST_BLOCKS.update(seed=0, json=0)
    for kind in FAST_BLOCKS:
        def counted(self, data, file, number, kind=kind, method=getattr(logscan.Scanner, "_%s_block" % kind)):
            taken = method(self, data, file, number)
            FAST_BLOCKS[kind] += bool(taken)
            return taken
        monkeypatch.setattr(logscan.Scanner, "_%s_block" % kind, counted)
    return FAST_BLOCKS


def fast(paths, max_bytes=1 << 40, max_line=65536, size=logscan.CHUNK, **kwargs):
    scanner, reports = make(**kwargs), []
    for path in paths:
        report = {}
        assert logscan.scan_file(scanner, path, max_bytes, max_line, report, size=size)
        reports.append(report)
    return outputs(scanner, reports)


def assert_same(paths, **kwargs):
    expected, got = reference(paths, **kwargs), fast(paths, **kwargs)
    for field in sorted(expected):
        assert got[field] == expected[field], field
    return expected


# ----------------------------------------------------------------------------- corpora
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    log_corpus.write(str(directory))
    return sorted(str(directory / name) for name in os.listdir(str(directory)) if name != "core.bin")


@pytest.mark.parametrize("since", [None, 0, 3600, 30])
def test_the_three_service_corpus(corpus, since):
    expected = assert_same(corpus, since=None if since is None else time.time() - since if since else None)
    if since == 30:  # the corpus is ten minutes old
        assert expected["entries"] == 0 and expected["outside_window"] > 200
    else:
        assert expected["entries"] > 200 and expected["matches"] and expected["correlation"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mixed") / "mixed.log")
    log_corpus.write_mixed(path, entries=3000, now=NOW)
    return path


@pytest.mark.parametrize("size", [7, 300, 4096, 1 << 20])
@pytest.mark.parametrize("since,limits", [(None, None), (NOW - 5400, SMALL_LIMITS)])
def test_every_line_shape_at_any_block_size(mixed, size, since, limits):
    assert_same([mixed], size=size, since=since, limits=limits, max_line=300)


# ----------------------------------------------------------------------------- generated logs
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("generated")
    paths = {}
    for kind in ("seed", "pino"):
        paths[kind] = str(directory / ("%s.log" % kind))
        log_corpus.write_generated(paths[kind], kind, megabytes=1.5, per_minute=500, start=START, templates=4)
    return directory, paths


@pytest.mark.parametrize("kind", ["seed", "pino"])
@pytest.mark.parametrize("bucket", [60, 300, 7])
def test_generated_logs_per_bucket_size(generated, kind, bucket, fast_blocks):
    expected = assert_same([generated[1][kind]], bucket=bucket)
    assert fast_blocks["seed" if kind == "seed" else "json"] >= 1
    assert expected["entries"] > 8000 and len(expected["buckets"]) >= 3 and expected["affected"]["users"] > 30


@pytest.mark.parametrize("kind", ["seed", "pino"])
@pytest.mark.parametrize("since", [START + 120, START + 121.5, START + 121.0005, START + 10 ** 6, START - 1])
def test_generated_logs_with_the_window_starting_anywhere(generated, kind, since, fast_blocks):
    expected = assert_same([generated[1][kind]], since=since, size=65536)
    assert fast_blocks["seed" if kind == "seed" else "json"] >= 18
    assert expected["outside_window"] or since < START


@pytest.mark.parametrize("kind", ["seed", "pino"])
def test_small_limits_apply_in_the_same_first_seen_order(generated, kind):
    expected = assert_same([generated[1][kind]], limits=SMALL_LIMITS, size=32768)
    assert "(other)" in expected["by_component"] and len(expected["buckets"]) == SMALL_LIMITS["buckets"]


def test_seed_and_pino_files_into_one_scanner_with_a_run_key(generated):
    assert_same([generated[1]["seed"], generated[1]["pino"]], key="k" * 32, size=200000)


def rewrite(source, target, change, seed=3):
    """Copy ``source`` to ``target`` with ``change(rnd, line)`` -> list of lines applied to every line."""
    rnd = random.Random(seed)
    with open(source, "rb") as handle:
        lines = handle.read().decode("utf-8").split("\n")[:-1]
    out = []
    for line in lines:
        out.extend(change(rnd, line))
    with open(target, "wb") as handle:
        handle.write(("\n".join(out) + "\n").encode("utf-8", "surrogateescape"))
    return target


def sprinkle(shapes, share):
    def change(rnd, line):
        return [line] + ([rnd.choice(shapes)(rnd, line)] if rnd.random() < share else [])
    return change


ODD_SEED = [
    lambda rnd, line: "2025-11-24T16:00:%02d.000Z ERROR monitor: plain line ECONNREFUSED 10.0.0.1:6379 requestId=r-%d" % (rnd.randrange(60), rnd.randrange(9)),
    lambda rnd, line: line.replace(".", "+02:00.", 1) if line.startswith("[") else line,
    lambda rnd, line: line[:18] + "61" + line[20:] if line.startswith("[") else line,
    lambda rnd, line: "[not a time] [ERROR] [x] odd stamp",
    lambda rnd, line: "",
    lambda rnd, line: "   ",
    lambda rnd, line: "\tstack line at foo (bar.js:1:2)",
    lambda rnd, line: "[2025-11-24T16:00:00.000Z] [INFO] [x] has userId=u-%d and conversation_id=c-%d" % (rnd.randrange(99), rnd.randrange(9)),
    lambda rnd, line: "[2025-11-24T16:00:00.000Z] [Error] [x]\ttab after the component",
    lambda rnd, line: "[2025-11-24T16:00:00.000Z] [FOO] [x] unknown level, spawn claude ENOENT",
    lambda rnd, line: "[2025-11-24T16:00:00.123456Z] [WARN] [x] six digits",
    lambda rnd, line: "[2025-11-24 16:00:00,5] [info] [w] comma, space, no zone",
    lambda rnd, line: "{\"level\":50,\"time\":1764000000000,\"name\":\"json-in-seed\",\"msg\":\"connect ECONNREFUSED 1.2.3.4:5432\"}",
    lambda rnd, line: "[2025-11-24T16:00:00.000Z] [INFO] [p\u00e4th] non-ASCII component \u00e9",
    lambda rnd, line: "[2025-11-24T16:00:00.000Z] [INFO] [k] token sk-ant-api03-%s in a message" % ("Zx9Qw8Er7Ty6Ui5Op4As%d" % rnd.randrange(3)),
]


@pytest.mark.parametrize("share", [0.0005, 0.01, 0.2])
def test_seed_logs_with_odd_lines_among_them(generated, share, fast_blocks):
    path = rewrite(generated[1]["seed"], str(generated[0] / ("odd-%s.log" % share)), sprinkle(ODD_SEED, share))
    assert_same([path], size=131072)
    assert fast_blocks["seed"] >= (10 if share < 0.1 else 0)
    assert_same([path], size=131072, since=START + 600, bucket=300, limits=SMALL_LIMITS)


ODD_JSON = [
    lambda rnd, line: '{"level":"warn","timestamp":"2025-11-24T16:00:00.%03dZ","service":"api","message":"slow"}' % rnd.randrange(1000),
    lambda rnd, line: '{"name":"b","hostname":"h","pid":1,"level":60,"msg":"dead","time":"2025-11-24T16:00:00.000Z","v":0}',
    lambda rnd, line: '{"severity":"ERROR","msg":"no level field","time":1764000000123}',
    lambda rnd, line: '{"level":30,"time":1764000000123,"name":"x","component":"overrides-name","msg":"hi"}',
    lambda rnd, line: '{"level":30,"time":1764000000123,"name":"x","msg":"hidden \\u0049d: conversation\\u0049d","conversation\\u0049d":"c-9"}',
    lambda rnd, line: line[:len(line) // 2],
    lambda rnd, line: '{"level":30,"time":1764000000123,"name":"",',
    lambda rnd, line: '{"level":[30],"time":1764000000123,"name":"x","msg":"unhashable level"}',
    lambda rnd, line: '{"level":30,"time":1764000000,"name":"x","msg":"seconds, not milliseconds"}',
    lambda rnd, line: '{"level":30,"time":"1764000000123","name":7,"msg":{"nested":"message"}}',
    lambda rnd, line: '{}',
    lambda rnd, line: '{"level":30,"time":1764000000123,"name":"x","msg":"a"} {"second":"object"}',
    lambda rnd, line: '[1, 2]',
    lambda rnd, line: '  {"indented": "json"}',
    lambda rnd, line: '{"level":30,"time":1764000000123,"name":"x","msg":"two values"},5',
    lambda rnd, line: '{"level":30,"time":1764000000123,"name":"x","msg":"two objects"},{"level":50}',
    lambda rnd, line: '{"level":40,"time":1764000000123,"name":"x","msg":"password=hunter2hunter2 in a warning"}',
]


@pytest.mark.parametrize("share", [0.0005, 0.02, 0.3])
def test_json_logs_with_other_json_shapes_and_broken_lines(generated, share, fast_blocks):
    path = rewrite(generated[1]["pino"], str(generated[0] / ("odd-%s.json" % share)), sprinkle(ODD_JSON, share))
    assert_same([path], size=131072)
    assert fast_blocks["json"] >= (8 if share < 0.01 else 0)
    assert_same([path], size=131072, since=START + 600, bucket=300, limits=SMALL_LIMITS)


def test_winston_and_bunyan_lines_with_iso_times(generated):
    def winston(rnd, line):
        value = json.loads(line)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(value.pop("time") // 1000)) + ".%03dZ" % rnd.randrange(1000)
        return [json.dumps({"level": {30: "info", 20: "debug", 40: "warn", 50: "error"}[value.pop("level")], "timestamp": stamp,
                            "service": value.pop("name"), "message": value.pop("msg"), **value})]
    path = rewrite(generated[1]["pino"], str(generated[0] / "winston.json"), winston)
    assert_same([path], size=65536, since=START + 300)


@pytest.mark.parametrize("kind", ["seed", "pino"])
def test_crlf_nul_and_long_lines(generated, kind):
    def change(rnd, line):
        roll = rnd.random()
        if roll < 0.001:
            return [line, "x" * 70000]
        if roll < 0.002:
            return [line, "nul \x00 line"]
        return [line]
    path = rewrite(generated[1][kind], str(generated[0] / ("bad-%s.log" % kind)), change)
    assert_same([path], size=200000)
    crlf = str(generated[0] / ("crlf-%s.log" % kind))
    with open(path, "rb") as source, open(crlf, "wb") as target:
        target.write(source.read().replace(b"\n", b"\r\n", 5000))
    assert_same([crlf], size=200000)


@pytest.mark.parametrize("kind", ["seed", "pino"])
def test_gzip_and_truncation(generated, kind):
    packed = str(generated[0] / ("%s.log.1.gz" % kind))
    with open(generated[1][kind], "rb") as source, gzip.open(packed, "wb") as target:
        target.write(source.read())
    assert_same([packed], size=100000)
    assert_same([packed], size=100000, max_bytes=700001)
    expected = assert_same([generated[1][kind]], size=100000, max_bytes=500000)
    assert expected["reports"][0]["truncated_to_last_bytes"] == 500000


def test_a_file_without_a_final_newline_and_metadata_across_blocks(tmp_path):
    path = tmp_path / "agent.log"
    lines = []
    for index in range(400):
        level = ("INFO", "ERROR", "DEBUG", "WARN")[index % 4]
        lines.append("[2025-11-24T16:%02d:%02d.000Z] [%s] [w%d] message %d" % (index // 60 % 60, index % 60, level, index % 3, index))
        lines += ["  userId: u-%d" % (index % 11), "  conversationId: c-%d" % (index % 13)] if index % 3 == 0 else []
    path.write_text("  metadata before any entry\n\n" + "\n".join(lines))
    for size in (1, 50, 333, 4096):
        assert_same([str(path)], size=size)


def test_metadata_lines_of_every_shape_under_examined_entries(tmp_path):
    """The fast path parses the soft lines under warn-and-above entries with one regex per entry: more keys than an
    entry keeps (50), more stack lines than it keeps (20), blank and whitespace-only lines, unusual whitespace, a
    repeated key, a key without a space after its colon, values with trailing spaces, non-UTF-8 bytes."""
    lines = []
    for index in range(300):
        level = ("ERROR", "WARN", "INFO", "FATAL", "Error")[index % 5]
        lines.append("[2025-11-24T16:%02d:%02d.%03dZ] [%s] [w%d] spawn claude ENOENT %d" % (index // 60 % 60, index % 60, index, level, index % 3, index))
        if index % 7 == 0:
            lines += ["  k%d: v%d  " % (key, key) if key < 50 else "  k%d: connect ECONNREFUSED 10.1.1.%d:5432" % (key, key)
                      for key in range(index % 60)]  # the 51st key and after: stack lines, the first of them searched
        if index % 11 == 0:
            lines += ["    at frame %d (x.js:1:2)" % frame for frame in range(index % 25)]
        lines += ["", "   ", "\t", " \u00a0userId: u-%d" % (index % 9), "\tconversationId:c-%d" % (index % 13), "  \x0bodd: \x0bspace\x0b",
                  "  userId: again-%d" % index, "  errorCode: E%d   " % (index % 4)][:index % 9]
    data = ("\n".join(lines) + "\n").encode("utf-8").replace(b"again-1", b"again-\xff1")
    path = tmp_path / "meta.log"
    path.write_bytes(data)
    for size in (4096, 65536):
        assert_same([str(path)], size=size)
    assert FAST_BLOCKS["seed"] > 0


# ----------------------------------------------------------------------------- feed_chunk on its own
def soup(rnd, count):
    shapes = ODD_SEED + ODD_JSON + [lambda rnd, line: line] * 20
    level = rnd.choice(["INFO", "DEBUG", "WARN", "ERROR"])
    base = ["[2025-11-24T16:00:%02d.%03dZ] [%s] [c%d] m %d" % (rnd.randrange(60), rnd.randrange(1000), level, rnd.randrange(5), rnd.randrange(9)),
            '{"level":%d,"time":%d,"name":"j%d","msg":"m"}' % (rnd.choice([20, 30, 40, 50]), 1764000000000 + rnd.randrange(10 ** 6), rnd.randrange(3)),
            "  conversationId: c-%d" % rnd.randrange(20), "  userId: u-%d" % rnd.randrange(20), ""]
    out = []
    for dummy in range(count):
        line = rnd.choice(base)
        out.append(rnd.choice(shapes)(rnd, line))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_feed_chunk_equals_feed_lines_on_any_split(seed):
    rnd = random.Random(seed)
    lines = soup(rnd, 600) if seed % 3 else [line for line in soup(rnd, 600) if line.startswith("[") or line.startswith("  ")]
    if seed % 4 == 0:
        lines = [line for line in lines if line.startswith("{")] or lines
    data = ("\n".join(lines) + "\n").encode()
    expected, got = make(since=1764000000.5 if seed % 2 else None), make(since=1764000000.5 if seed % 2 else None)
    expected.feed_lines(logscan.decoded(data), "/var/log/agent/w.log", 1)
    expected.close()
    cuts = sorted(set(rnd.randrange(len(lines)) for dummy in range(rnd.randrange(1, 8))))
    number = 1
    for begin, end in zip([0] + cuts, cuts + [len(lines)]):
        got.feed_chunk(("\n".join(lines[begin:end]) + "\n").encode() if end > begin else b"", "/var/log/agent/w.log", number)
        number += end - begin
    got.close()
    assert outputs(got, []) == outputs(expected, [])


def test_scan_file_stops_at_the_deadline(generated):
    scanner, report = make(), {}
    ticks = iter(range(10 ** 6))
    assert logscan.scan_file(scanner, generated[1]["seed"], 1 << 40, 65536, report, deadline=2, clock=lambda: next(ticks), size=65536) is False
    assert scanner.current is None and 0 < scanner.result()["entries"] < 20000 and "bytes" not in report


def test_entry_time_agrees_with_the_parsers(mixed):
    """entry_time (log_bundle's window) answers what parse_json and parse_plain answer, from its caches too."""
    def parsed(line):
        entry = logscan.parse_json(line, "", 0) if line[:1] == "{" else None
        return (entry or logscan.parse_plain(line, "", 0)).ts

    lines = [line for dummy, line in logscan.read_lines(mixed, 1 << 40, 65536, {})]
    lines += ["[2025-12-24T14:35:22.123Z] [INFO] [w] x\n[more]", "[2025-12-24T14:35:22.123Z ] [INFO] [w] x", "[ 2025-12-24T14:35:22Z] [a] [b]",
              "[2025-12-24T14:35:22.5+02:00] [warning] [w] zone", "[1766586922] [INFO] [w] epoch", "[Dec 24 14:35:22] [INFO] [w] syslog",
              "[2025-12-24T14:35:61.123Z] [INFO] [w] second 61", "[2025-12-24T14:35:22.123Z]  [INFO]\t[w]"]
    for dummy in range(2):
        for line in lines:
            assert logscan.entry_time(line) == parsed(line), line
