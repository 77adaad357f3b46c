"""log_scan on a corpus of three services' logs (tests/fixtures/log_corpus.py)."""
import json
import os
import re
import sys
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import logscan
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import logs as log_scan

from helpers import REPO, run_module

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("logs"))
    expected = log_corpus.write(directory)
    rc, result = run_module("log_scan", {"paths": [os.path.join(directory, "*.log"), os.path.join(directory, "*.gz"),
                                                   os.path.join(directory, "core.bin"), os.path.join(directory, "missing.log")],
                                         "since": 3600})
    assert rc == 0, result
    return directory, expected, result


@pytest.mark.parametrize("rule_id", sorted(log_corpus.SIGNATURE_LINES))
def test_every_listed_signature_yields_its_finding(corpus, rule_id):
    found = dict((f["id"], f) for f in corpus[2]["findings"])
    assert rule_id in found, sorted(found)
    assert found[rule_id]["evidence"]["count"] >= 1 and found[rule_id]["evidence"]["examples"]


def test_specific_evidence_port_service_and_retry_after(corpus):
    found = dict((f["id"], f) for f in corpus[2]["findings"])
    assert "5432 is usually PostgreSQL" in found["log.econnrefused"]["diagnosis"]
    assert found["log.llm_rate_limit"]["evidence"]["retry_after"] == "30"
    assert found["log.v8_heap_oom"]["severity"] == "critical"
    assert found["log.pg_deadlock"]["evidence"]["count"] == 2  # the gzip-rotated file counts too


def test_correlation_follows_the_conversation_across_three_services_in_time_order(corpus):
    timelines = dict((c["id"], c) for c in corpus[2]["facts"]["correlation"])
    conv = timelines["conv-7f3a"]
    # Only warn-and-above entries are correlated: the info entries of the conversation are counted, not followed.
    assert conv["components"] == ["agent:code-review", "monitor", "worker"] and conv["errors"] == 3
    steps = [(e["component"], e["level"]) for e in conv["timeline"]]
    assert steps == [("worker", "error"), ("monitor", "error"), ("agent:code-review", "error")]
    stamps = [e["ts"] for e in conv["timeline"]]
    assert stamps == sorted(stamps)


def test_counts_buckets_and_signatures(corpus):
    facts = corpus[2]["facts"]
    assert facts["by_level"]["info"] >= 200 and facts["by_level"]["error"] >= 17
    assert facts["by_component"]["worker"]["error"] >= 1 and facts["by_component"]["monitor"]["warn"] == 1
    errors = facts["by_level"]["error"] + facts["by_level"].get("fatal", 0)
    assert facts["first_error_bucket"] is not None and sum(b["errors"] for b in facts["buckets"]) == errors
    assert facts["top_signatures"][0]["count"] >= 1


def test_bad_inputs_are_reported_and_skipped_never_fatal(corpus):
    facts = corpus[2]["facts"]
    skipped = dict((os.path.basename(s["path"]), s["why"]) for s in facts["skipped_files"])
    assert skipped["core.bin"] == "binary content"
    assert skipped["missing.log"] == "no such file"
    huge = [f for f in facts["files"] if f["path"].endswith("huge-line.log")][0]
    assert huge["long_lines"] == 1 and huge["garbage_lines"] == 1
    assert facts["by_component"]["manager"]["info"] >= 2  # the lines around the 1 MB line were read


def test_no_secret_survives_in_any_output(corpus):
    everything = log_scan.scan({"paths": [os.path.join(corpus[0], "*.log")], "journald_units": [], "since": 0, "max_bytes": 1 << 20,
                                "max_line_bytes": 65536, "bucket_seconds": 60, "top_n": 1000, "timeout": 10, "thresholds": {}})
    for result in (corpus[2], everything):
        text = json.dumps(result)
        for name, secret in corpus[1]["secrets"].items():
            assert secret not in text, name
    # Text is redacted as it is reported: with every signature and id reported, the planted secrets are counted.
    assert everything["facts"]["redactions"].get("anthropic_key") == 1
    assert len(everything["facts"]["top_signatures"]) > len(corpus[2]["facts"]["top_signatures"])


def test_window_skips_old_entries_and_old_rotations(tmp_path):
    expected = log_corpus.write(str(tmp_path))
    rc, result = run_module("log_scan", {"paths": [str(tmp_path / "manager.log")], "since": 30})
    assert rc == 0 and result["facts"]["outside_window"] > 0
    assert "log.spawn_einval" not in [f["id"] for f in result["findings"]]  # 10+ minutes old
    assert expected["conversation"]


def test_unreadable_file_is_an_unknown_finding(tmp_path, monkeypatch):
    log_corpus.write(str(tmp_path))

    def denied(path, *args):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(log_scan, "scan_file", denied)
    params = {"paths": [str(tmp_path / "worker.log")], "journald_units": [], "since": 0, "max_bytes": 1 << 20,
              "max_line_bytes": 65536, "bucket_seconds": 60, "top_n": 5, "timeout": 10, "thresholds": {}}
    result = log_scan.scan(params)
    assert [(f["id"], f["severity"]) for f in result["findings"]] == [("log.check_incomplete", "unknown")]


@pytest.mark.parametrize("line, level, component", [
    ('{"level":50,"time":1764000000000,"name":"worker","msg":"boom"}', "error", "worker"),            # pino
    ('{"level":"warn","timestamp":"2025-11-24T16:00:00.000Z","service":"api","message":"slow"}', "warn", "api"),  # winston
    ('{"name":"manager","hostname":"h","pid":1,"level":60,"msg":"dead","time":"2025-11-24T16:00:00.000Z","v":0}', "fatal", "manager"),  # bunyan
])
def test_json_field_names_of_pino_winston_bunyan(line, level, component):
    entry = logscan.parse_json(line, "x.log", 1)
    assert (entry.level, entry.component) == (level, component) and entry.ts is not None


@pytest.mark.parametrize("args, message", [
    ({}, "Nothing to scan"),
    ({"paths": ["/x"], "bucket_seconds": 0}, "bucket_seconds must be between"),
])
def test_bad_arguments_fail_with_one_sentence(args, message):
    rc, result = run_module("log_scan", args)
    assert rc != 0 and message in result["msg"]


def _rate_log(path, now, baseline_share, recent_share, per_minute=40, minutes=60, recent_minutes=10):
    lines = []
    for minute in range(minutes):
        share = recent_share if minute >= minutes - recent_minutes else baseline_share
        for index in range(per_minute):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - (minutes - minute) * 60 + index)) + ".000Z"
            level = "ERROR" if index < round(share * per_minute) else "INFO"
            lines.append("[%s] [%s] [agent:api] call %d" % (stamp, level, index))
            if level == "ERROR":
                lines.append("  userId: u-%d" % (index % 7))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("baseline, recent, rate_severity, spike_severity", [
    (0.02, 0.40, "high", "high"),      # 20x the baseline
    (0.02, 0.10, "medium", "medium"),  # 5x
    (0.30, 0.30, "high", None),        # steady: a rate, no spike
    (0.0, 0.0, None, None),
])
def test_error_rate_and_spike_from_the_recent_window(tmp_path, baseline, recent, rate_severity, spike_severity):
    log = tmp_path / "api.log"
    _rate_log(log, time.time(), baseline, recent)
    result = log_scan.scan({"paths": [str(log)], "journald_units": [], "since": 0, "max_bytes": 1 << 24, "max_line_bytes": 65536,
                            "bucket_seconds": 60, "top_n": 10, "timeout": 60, "thresholds": {}, "recent_window": 600})
    found = dict((f["id"], f) for f in result["findings"])
    assert (found.get("log.error_rate") or {}).get("severity") == rate_severity
    assert (found.get("log.error_spike") or {}).get("severity") == spike_severity
    rates = result["facts"]["error_rates"]
    assert rates["recent_error_percent"] == pytest.approx(100 * recent, abs=2.5)
    assert rates["components"][0]["component"] == "agent:api" if recent else True
    if recent:
        assert result["facts"]["affected"]["users"] == min(7, round(recent * 40))
        assert not re.search(r"\{[a-z_]+\}", found["log.error_rate"]["symptom"])


@pytest.mark.parametrize("stamp", ["NaN", "Infinity", "-Infinity", "1e300", "true"])
def test_a_json_line_with_an_impossible_time_is_counted_without_a_timestamp(tmp_path, stamp):
    log = tmp_path / "worker.log"
    line = '{"level":50,"time":%s,"name":"worker","msg":"boom"}\n' % stamp
    log.write_text(line * 3 + '{"level":30,"time":1764000000000,"name":"worker","msg":"ok"}\n')
    result = log_scan.scan({"paths": [str(log)], "journald_units": [], "since": 0, "max_bytes": 1 << 20, "max_line_bytes": 65536,
                            "bucket_seconds": 60, "top_n": 5, "timeout": 10, "thresholds": {}})
    assert result["facts"]["entries"] == 4 and result["facts"]["by_level"] == {"error": 3, "info": 1}
