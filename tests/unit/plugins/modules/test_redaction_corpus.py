"""Redaction that holds everywhere (issue 11), module by module, on the corpus of tests/fixtures/secrets_corpus.py:
log_scan and log_bundle over every log shape (seed, pino, winston, plain, gzip, multi-line PEM, a GCP
service-account file), process_facts over real processes started with secret-bearing command lines.
No piece of a planted secret may come out; every look-alike must come out unchanged."""
import json
import os
import re
import sys
import tarfile
import uuid

import pytest

from helpers import REPO, run_module

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import secrets_corpus  # noqa: E402  pylint: disable=wrong-import-position

LOG_OUTPUTS = ("seed", "pino", "winston", "plain", "gzip", "gcp_file")
PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+#\d+\]")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    corpus = secrets_corpus.Corpus()
    directory = tmp_path_factory.mktemp("corpus")
    paths = corpus.write_logs(str(directory))
    return corpus, directory, paths


def globs(directory):
    return [str(directory / "*.log"), str(directory / "*.gz")]


def test_the_corpus_has_60_secrets_in_30_shapes_and_30_lookalikes(tmp_path):
    corpus = secrets_corpus.Corpus(seed=1)
    corpus.write_logs(str(tmp_path))
    corpus.argvs("holder.js")
    corpus.queries("agent")
    corpus.diagnostics()
    totals = corpus.totals()
    assert totals["secrets"] >= 60 and totals["shapes"] >= 30 and totals["lookalikes"] >= 30, totals
    assert set(totals["by_output"]) >= set(LOG_OUTPUTS + ("argv", "sql", "diagnostics"))
    values = [s.value for s in corpus.secrets()]
    assert len(values) == len(set(values))  # each secret is planted once


# ------------------------------------------------------------------ log_scan
def test_log_scan_reports_no_secret_and_keeps_lookalikes(corpus):
    c, directory, dummy = corpus
    rc, result = run_module("log_scan", {"paths": globs(directory), "since": 0, "top_n": 1000})
    assert rc == 0, result
    text = json.dumps(result)
    assert c.leaks(text, LOG_OUTPUTS) == []
    # What log_scan reports of the look-alikes: messages of warn and error entries (examples, timelines) and ids.
    reported = [look for look in c.lookalikes["seed"] if not re.match(r"^\w+: ", look)] + ["conv-7f3a9c"]
    assert [look for look in reported if look not in text] == []
    assert result["facts"]["redactions"].get("private_key") and result["facts"]["redactions"].get("anthropic_key")
    # redacted whole, then cut: the example stops at 300 characters, the timeline message at 200
    example = [e for f in result["findings"] for e in f["evidence"].get("examples", [])]
    signatures = result["facts"]["top_signatures"]
    assert any(s["example"] == "x" * 285 + " token=" for s in signatures)  # the placeholder did not fit: never half of it
    timeline = [e["message"] for item in result["facts"]["correlation"] for e in item["timeline"]]
    assert "y" * 190 + " " in timeline
    assert all(len(m) <= 200 for m in timeline) and all(len(e) <= 400 for e in example)


# ------------------------------------------------------------------ log_bundle
def bundle(tmp_path, paths, incident="RED-1", **extra):
    args = {"paths": paths, "dest": str(tmp_path / "bundles"), "incident_id": incident, "since": 0, "min_free_mb": 0,
            "max_total_bytes": 16 << 20}
    args.update(extra)
    rc, result = run_module("log_bundle", args)
    assert rc == 0 and result["changed"] is True, result
    root = tmp_path / "out"
    with tarfile.open(result["bundle"], "r:gz") as archive:
        archive.extractall(str(root))
    files = {}
    for folder, dummy, names in os.walk(str(root / incident)):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, errors="replace") as handle:
                files[os.path.relpath(path, str(root / incident))] = handle.read()
    return result, files


def test_log_bundle_holds_no_secret_and_every_other_line_survives(corpus, tmp_path):
    c, directory, paths = corpus
    diagnostics = c.diagnostics()
    result, files = bundle(tmp_path, globs(directory), diagnostics=diagnostics)
    everything = "\n".join(files.values())
    assert c.leaks(everything, LOG_OUTPUTS + ("diagnostics",)) == []
    result.pop("invocation")  # the arguments as given; a real run gives diagnose results, already redacted
    assert c.leaks(json.dumps(result), LOG_OUTPUTS + ("diagnostics",)) == []
    assert c.missing(everything, LOG_OUTPUTS + ("diagnostics",)) == []
    # every line without a secret is copied unchanged; a PEM block is one line with one placeholder
    for output in ("seed", "pino", "winston", "plain"):
        name = "logs/" + os.path.basename(paths[output])
        copied = set(files[name].split("\n"))
        for line in open(paths[output]).read().split("\n"):
            if c.leaks(line, [output]) or "PRIVATE KEY-----" in line:
                continue
            assert line in copied, (output, line[:120])
    assert any(re.match(r"^\S+ ERROR monitor: loading host key:$", line) for line in files["logs/monitor.log"].split("\n"))
    assert "\n[REDACTED:private_key#" in files["logs/monitor.log"]
    assert re.search(r"cannot parse signing key \[REDACTED:private_key#\d+\]\n", files["logs/manager.log"])
    account = json.loads(files["logs/service-account.log"])  # still JSON, the key replaced
    assert PLACEHOLDER.fullmatch(account["private_key"]) and account["type"] == "service_account"
    pino_account = [json.loads(line) for line in files["logs/worker.log"].split("\n") if '"credentials"' in line][0]
    assert PLACEHOLDER.fullmatch(pino_account["credentials"]["private_key"])
    assert json.loads(files["diagnostics.json"])["pg"]["evidence"]["password"].startswith("[REDACTED:")
    kinds = result["manifest"]["redactions_by_kind"]
    assert kinds["private_key"] >= 5 and sum(kinds.values()) >= len(c.secrets(LOG_OUTPUTS + ("diagnostics",)))


def test_the_same_secret_keeps_one_placeholder_across_the_bundle(corpus, tmp_path):
    c, directory, paths = corpus
    secret = c.secrets(["seed"])[0].value
    (tmp_path / "again.log").write_text("[2099-01-01T00:00:00.000Z] [WARN] [worker] retry with %s\n" % secret)
    result, files = bundle(tmp_path, [paths["seed"], str(tmp_path / "again.log")])
    placeholder = PLACEHOLDER.search(files["logs/again.log"]).group(0)
    assert placeholder in files["logs/manager.log"]


def test_a_bundle_window_that_starts_inside_a_pem_block_leaks_none_of_it(tmp_path):
    c = secrets_corpus.Corpus()
    block, body = c.pem()
    c.plant("window", "pem_cut_at_window_start", body)
    log = tmp_path / "tail.log"
    tail = "[2099-01-01T00:00:01.000Z] [INFO] [x] after the key\n"
    log.write_text("[2099-01-01T00:00:00.000Z] [INFO] [x] before\n" * 200 + block + tail)
    window = 1024  # the smallest max_file_bytes: the newest 1024 bytes start in the middle of the key's body
    assert len(block.split("\n")[0]) + 200 < len(block) + len(tail) - window < len(block) - 200
    result, files = bundle(tmp_path, [str(log)], max_file_bytes=window)
    text = files["logs/tail.log"]
    assert "-----BEGIN" not in text and "before" not in text
    assert c.leaks(text, ["window"]) == [] and "after the key" in text and "[REDACTED:private_key#1]" in text


# ------------------------------------------------------------------ process_facts on real processes
@pytest.mark.skipif(not secrets_corpus._which("node"), reason="needs node to start processes with a chosen argv")
def test_process_facts_on_real_processes_returns_no_secret(tmp_path):
    c = secrets_corpus.Corpus()
    token = "agentops-redact-%s" % uuid.uuid4().hex[:12]
    procs = secrets_corpus.start_agents(c, token, str(tmp_path))
    try:
        rc, result = run_module("process_facts", {"patterns": [token], "top_n": 50, "leak_window": 0, "include_table": True,
                                                  "kernel_log": False})
    finally:
        secrets_corpus.stop_agents(procs)
    assert rc == 0, result
    assert result["facts"]["agent_count"] == len(procs)
    text = json.dumps(result)
    assert c.leaks(text, ["argv"]) == []
    assert c.missing(text, ["argv"]) == []
    cmds = sorted(a["cmd"] for a in result["facts"]["agents"])
    assert all(cmd.startswith(token + " ") for cmd in cmds) and sum(len(PLACEHOLDER.findall(cmd)) for cmd in cmds) >= len(c.secrets(["argv"]))
