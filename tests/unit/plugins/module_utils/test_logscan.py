"""The scanner's fast paths against its straightforward ones: block reading against read_lines, the seed
format's string parsing against parse_plain, and results that do not depend on how lines are fed."""
import gzip
import json
import os
import sys

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import logscan
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position

NOW = 1764000000


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mixed") / "mixed.log")
    log_corpus.write_mixed(path, entries=3000, now=NOW)
    return path


def readline_oracle(path, max_bytes, max_line, report):
    """The line reader as it was written first, a line at a time with readline: the oracle of read_lines and read_chunks."""
    with logscan.open_log(path, max_bytes, max_line, report) as (handle, compressed):
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


def by_lines(path, max_bytes, max_line, reader=readline_oracle):
    report = {}
    return list(reader(path, max_bytes, max_line, report)), report


def by_chunks(path, max_bytes, max_line, size):
    report = {}
    lines = [(number + offset, line) for number, chunk in logscan.read_chunks(path, max_bytes, max_line, report, size)
             for offset, line in enumerate(chunk)]
    return lines, report


@pytest.mark.parametrize("size", [7, 100, 4096, 1 << 20])
@pytest.mark.parametrize("max_bytes,max_line", [(1 << 40, 65536), (1 << 40, 300), (200000, 65536), (200000, 300)])
def test_read_chunks_yields_the_lines_of_read_lines(mixed, size, max_bytes, max_line):
    expected, expected_report = by_lines(mixed, max_bytes, max_line)
    got, report = by_chunks(mixed, max_bytes, max_line, size)
    kept = set(number for number, dummy in expected)
    assert [(n, line) for n, line in got if line or n in kept] == expected
    numbers = [n for n, dummy in got]
    assert numbers == sorted(set(numbers)) and numbers[-1] <= report["lines"]
    assert report == expected_report
    assert report.get("long_lines") and report.get("garbage_lines")
    assert by_lines(mixed, max_bytes, max_line, logscan.read_lines) == (expected, expected_report)


@pytest.mark.parametrize("size", [5, 64, 1 << 20])
def test_read_chunks_stops_a_gzip_file_where_read_lines_does(tmp_path, size):
    path = str(tmp_path / "app.log.1.gz")
    with gzip.open(path, "wt") as handle:
        handle.write("".join("[2025-12-24T14:35:%02d.000Z] [INFO] [worker] line %d\n" % (n % 60, n) for n in range(500)))
    for max_bytes in (1024, 1050, 10 ** 9):
        expected, expected_report = by_lines(path, max_bytes, 65536)
        got, report = by_chunks(path, max_bytes, 65536, size)
        assert got == expected and report == expected_report
        assert by_lines(path, max_bytes, 65536, logscan.read_lines) == (expected, expected_report)


SEED_LINES = [
    "[2025-12-24T14:35:22.123Z] [ERROR] [agent:code-review] spawn claude ENOENT",
    "[2025-12-24T14:35:22.123Z] [info] [] empty component",
    "[2025-12-24T14:35:22Z] [WARN] [worker]",
    "[2025-12-24T14:35:22.5+02:00] [warning] [w] zone",
    "[2025-12-24T14:35:22,5-0530] [Error] [w] comma and zone",
    "[2025-12-24 14:35:22] [DEBUG] [w] space separator, no zone",
    "[1766586922] [INFO] [w] epoch",
    "[1766586922123] [INFO] [w] epoch ms",
    "[Dec 24 14:35:22] [INFO] [w] syslog stamp",
    "[not a time] [INFO] [w] no time",
    "[2025-12-24T14:35:22.123Z] [FOO] [w] unknown level word",
    "[2025-12-24T14:35:22.123Z] [INFO] [w]no space",
    "[2025-12-24T14:35:22.123Z] [INFO] [w]\ttab",
    "[2025-12-24T14:35:22.123Z] [INFO] [w]  two spaces",
    "[2025-12-24T14:35:22.123Z]  [INFO] [w] two spaces before the level",
    "[2025-12-24T14:35:22.123Z] [INFO2] [w] digit in the level",
    "[2025-12-24T14:35:22.123Z] [\u00c9RROR] [w] non-ASCII level",
    "[2025-12-24T14:35:22.123Z] [INFO] [w] a ] bracket [x] in the message",
    "[2025-12-24T14:35:22.123Z] [INFO] [w [x] bracket in the component",
    "[] [INFO] [w] empty stamp",
    "[2025-12-24T14:35:22.123Z] [INFO] [w",
    "[2025-12-24T14:35:22.123Z] [INFO]",
    "[2025-12-24T14:35:22.123Z ] [INFO] [w] space in the stamp",
    "[2025-12-24T14:35:61.123Z] [INFO] [w] second 61",
]


@pytest.mark.parametrize("line", SEED_LINES)
def test_seed_string_parsing_agrees_with_parse_plain(line):
    scanner = logscan.Scanner(Redactor())
    for dummy in range(2):  # the second time, from the caches
        scanner.feed_lines([line], "/var/log/agent/worker.log", 7)
        entry = scanner.current
        expected = logscan.parse_plain(line, "/var/log/agent/worker.log", 7)
        expected.component = expected.component or "worker"
        assert (entry.ts, entry.level, entry.component, entry.msg, entry.line) == \
            (expected.ts, expected.level, expected.component, expected.msg, expected.line)
        scanner.close()


def scan(feed, since=None):
    scanner = logscan.Scanner(Redactor(), since=since, bucket=300, top_n=50, limits={"components": 150, "ids": 500, "per_id": 5})
    feed(scanner)
    return json.loads(json.dumps(scanner.result(), default=sorted, sort_keys=True))


@pytest.mark.parametrize("since", [None, NOW - 5400])
def test_results_do_not_depend_on_blocks_or_line_by_line_feeding(mixed, since):
    def line_by_line(scanner):
        for number, line in logscan.read_lines(mixed, 1 << 40, 65536, {}):
            scanner.feed(line, mixed, number)

    def blocks(size):
        def feed(scanner):
            for number, lines in logscan.read_chunks(mixed, 1 << 40, 65536, {}, size):
                scanner.feed_lines(lines, mixed, number)
        return feed

    expected = scan(line_by_line, since)
    assert expected["entries"] > 1000 and expected["correlation"] and expected["top_signatures"]
    assert (expected["outside_window"] > 500) == (since is not None)
    assert "(other)" in expected["by_component"]
    for size in (64, 4096, 1 << 20):
        assert scan(blocks(size), since) == expected


def test_time_caches_stay_bounded_and_results_unchanged(mixed, monkeypatch):
    def feed(scanner):
        for number, lines in logscan.read_chunks(mixed, 1 << 40, 65536, {}):
            scanner.feed_lines(lines, mixed, number)

    expected = scan(feed)
    monkeypatch.setattr(logscan, "CACHE_LIMIT", 4)
    scanner = logscan.Scanner(Redactor(), bucket=300, top_n=50, limits={"components": 150, "ids": 500, "per_id": 5})
    feed(scanner)
    assert len(scanner.seconds) <= 4 and len(scanner.tails) <= 4
    assert json.loads(json.dumps(scanner.result(), default=sorted, sort_keys=True)) == expected
    scanner.feed_lines(["[2030-01-01T00:00:00.250Z] [INFO] [w] a second never seen"], mixed, 1)
    assert "2030-01-01T00:00:00" in scanner.seconds  # still caching once full


def test_signatures_are_matched_in_warnings_errors_and_unlevelled_lines_only():
    scanner = logscan.Scanner(Redactor())
    scanner.feed_lines(["[2025-12-24T14:35:22.123Z] [INFO] [w] retried after connect ECONNREFUSED 127.0.0.1:5432",
                        "[2025-12-24T14:35:23.123Z] [DEBUG] [w] socket hang up",
                        "[2025-12-24T14:35:24.123Z] [WARN] [w] connect ECONNREFUSED 127.0.0.1:5432",
                        "connect ECONNREFUSED 127.0.0.1:6379"], "/var/log/w.log", 1)
    matches = scanner.result()["matches"]
    assert sorted(matches) == ["log.econnrefused"]
    assert matches["log.econnrefused"]["count"] == 2 and matches["log.econnrefused"]["ports"] == {"5432": 1, "6379": 1}
