"""log_bundle on the three-service corpus with planted secrets (tests/fixtures/log_corpus.py)."""
import hashlib
import json
import os
import stat
import sys
import tarfile
import time

import pytest

from helpers import REPO, run_module

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def corpus(tmp_path):
    logs = tmp_path / "logs"
    expected = log_corpus.write(str(logs))
    return logs, expected


def build(tmp_path, logs, **extra):
    args = {"paths": [str(logs / "*.log"), str(logs / "*.gz"), str(logs / "core.bin"), str(logs / "missing.log")],
            "dest": str(tmp_path / "bundles"), "incident_id": "INC-9", "since": 3600, "min_free_mb": 0,
            "diagnostics": {"host": "web-1", "note": "token %s" % log_corpus.SECRETS["github"]}}
    args.update(extra)
    return run_module("log_bundle", args)


def extract(bundle, into):
    with tarfile.open(bundle, "r:gz") as archive:
        archive.extractall(str(into))
    return into / "INC-9"


def test_no_secret_survives_and_every_other_line_survives_unchanged(tmp_path, corpus):
    logs, expected = corpus
    rc, result = build(tmp_path, logs)
    assert rc == 0 and result["changed"] is True, result
    root = extract(result["bundle"], tmp_path / "out")
    everything = ""
    for folder, dummy, names in os.walk(str(root)):
        for name in names:
            with open(os.path.join(folder, name), errors="replace") as handle:
                everything += handle.read()
    for name, secret in expected["secrets"].items():
        assert secret not in everything, name
    for source in ("manager.log", "worker.log", "monitor.log"):
        with open(logs / source) as handle:
            original = handle.read().splitlines()
        with open(root / "logs" / source) as handle:
            copied = handle.read().splitlines()
        assert len(original) == len(copied)
        for before, after in zip(original, copied):
            if not any(secret in before for secret in expected["secrets"].values()):
                assert before == after
            else:
                assert "[REDACTED:" in after


def test_same_secret_same_placeholder_across_files_and_manifest_counts(tmp_path, corpus):
    logs, expected = corpus
    (logs / "again.log").write_text("[2099-01-01T00:00:00.000Z] [WARN] [worker] retry with %s\n" % expected["secrets"]["anthropic"])
    rc, result = build(tmp_path, logs, since=0)
    root = extract(result["bundle"], tmp_path / "out")
    placeholder = [w for w in (root / "logs" / "again.log").read_text().split() if w.startswith("[REDACTED:anthropic")][0]
    assert placeholder in (root / "logs" / "manager.log").read_text()
    manifest = json.loads((root / "manifest.json").read_text())
    per_file = dict((f["name"], f) for f in manifest["files"])
    assert per_file["logs/manager.log"]["redactions"] >= 3 and per_file["diagnostics.json"]["redactions"] == 1
    for entry in manifest["files"]:
        assert hashlib.sha256((root / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    skipped = dict((os.path.basename(s["source"]), s["why"]) for s in manifest["skipped"])
    assert skipped == {"core.bin": "binary content", "missing.log": "no such file"}
    assert "logs/manager.log.1" in per_file  # the gzip rotation, decompressed and redacted


def test_private_modes_and_a_second_run_changes_nothing(tmp_path, corpus):
    logs, dummy = corpus
    rc, first = build(tmp_path, logs)
    assert stat.S_IMODE(os.stat(first["bundle"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "bundles").st_mode) == 0o700
    with tarfile.open(first["bundle"], "r:gz") as archive:
        assert all(member.mode in (0o600, 0o700) for member in archive.getmembers())
    rc, second = build(tmp_path, logs)
    assert rc == 0 and second["changed"] is False and second["sha256"] == first["sha256"]


def test_check_mode_writes_nothing(tmp_path, corpus):
    logs, dummy = corpus
    rc, result = build(tmp_path, logs, _ansible_check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert len(result["manifest"]["would_collect"]) >= 4 and not (tmp_path / "bundles").exists()


def test_free_space_is_checked_before_writing(tmp_path, corpus):
    logs, dummy = corpus
    rc, result = build(tmp_path, logs, min_free_mb=10 ** 9)
    assert rc != 0 and "Not enough free space" in result["msg"] and "nothing was written" in result["msg"]
    assert not os.listdir(tmp_path / "bundles")


def test_total_cap_stops_adding_data(tmp_path, corpus):
    logs, dummy = corpus
    rc, result = build(tmp_path, logs, since=0, max_total_bytes=4096)
    total = sum(f.get("bytes", 0) for f in result["manifest"]["files"] if f["name"].startswith("logs/"))
    assert total <= 4096
    assert any(s["why"] == "the bundle reached max_total_bytes" for s in result["manifest"]["skipped"]) or \
        any(f.get("truncated") for f in result["manifest"]["files"])


@pytest.mark.parametrize("extra, message", [
    ({"incident_id": "../x"}, "may only hold letters"),
    ({"extra_patterns": ["("]}, "not a valid regular expression"),
])
def test_bad_arguments_fail_with_one_sentence(tmp_path, corpus, extra, message):
    rc, result = build(tmp_path, corpus[0], **extra)
    assert rc != 0 and message in result["msg"]


def test_bundle_dest_missing_parents_are_created_private_and_no_temporary_file_is_left(tmp_path, corpus):
    rc, result = build(tmp_path, corpus[0], dest=str(tmp_path / "var" / "bundles"))
    assert rc == 0, result
    for path in (tmp_path / "var", tmp_path / "var" / "bundles"):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    assert os.listdir(tmp_path / "var" / "bundles") == ["INC-9.tar.gz"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_bundle_dest_that_is_a_symlink_is_refused_and_nothing_is_written_through_it(tmp_path, corpus, check_mode):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.symlink(str(elsewhere), str(tmp_path / "bundles"))
    rc, result = build(tmp_path, corpus[0], _ansible_check_mode=check_mode)
    assert rc != 0 and result["msg"] == ("Refusing to use %s: it is a symbolic link, and private files are never "
                                         "written through one." % (tmp_path / "bundles"))
    assert os.listdir(elsewhere) == [] and stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o755


@pytest.mark.parametrize("force", [False, True])
def test_bundle_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, corpus, force):
    (tmp_path / "bundles").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(str(victim), str(tmp_path / "bundles" / "INC-9.tar.gz"))
    rc, result = build(tmp_path, corpus[0], force=force)
    assert rc != 0 and "INC-9.tar.gz: it is a symbolic link" in result["msg"], result
    assert victim.read_text() == "precious" and os.listdir(tmp_path / "bundles") == ["INC-9.tar.gz"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_bundle_dest_owned_by_another_user_is_refused(tmp_path, corpus):
    (tmp_path / "bundles").mkdir(mode=0o755)
    os.chown(str(tmp_path / "bundles"), 65534, 65534)
    rc, result = build(tmp_path, corpus[0])
    assert rc != 0 and "it is owned by uid 65534" in result["msg"]
    assert os.listdir(tmp_path / "bundles") == [] and stat.S_IMODE(os.stat(tmp_path / "bundles").st_mode) == 0o755


def test_a_corrupt_existing_bundle_is_one_sentence_not_a_traceback(tmp_path, corpus):
    (tmp_path / "bundles").mkdir(mode=0o700)
    (tmp_path / "bundles" / "INC-9.tar.gz").write_bytes(b"not a gzip file")
    rc, result = build(tmp_path, corpus[0])
    assert rc != 0 and "exists but is not a readable bundle of INC-9" in result["msg"] and "rebuild it with force" in result["msg"]
    rc, result = build(tmp_path, corpus[0], force=True)
    assert rc == 0 and result["changed"] is True, result


@pytest.mark.parametrize("extra, message", [
    ({"since": -1}, "since must be between 0 and 316224000, got -1."),
    ({"since": 10 ** 12}, "since must be between 0 and 316224000, got 1000000000000."),
    ({"max_file_bytes": 0}, "max_file_bytes must be between 1024 and 17179869184, got 0."),
    ({"max_file_bytes": 10 ** 15}, "max_file_bytes must be between 1024 and 17179869184"),
    ({"max_total_bytes": -5}, "max_total_bytes must be between 1024 and 17179869184, got -5."),
    ({"min_free_mb": -1}, "min_free_mb must be between 0 and 1073741824, got -1."),
    ({"min_free_mb": 10 ** 12}, "min_free_mb must be between 0 and 1073741824"),
    ({"dest": "relative/bundles"}, "dest must be an absolute path below /, got 'relative/bundles'."),
    ({"dest": "/"}, "dest must be an absolute path below /, got '/'."),
])
def test_bundle_numbers_out_of_range_and_bad_dest_are_one_sentence_before_anything_is_done(tmp_path, corpus, extra, message):
    rc, result = build(tmp_path, corpus[0], **extra)
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]
    assert not (tmp_path / "bundles").exists()


# ----------------------------------------------------------------------------- the block path against line by line
def line_by_line(collector, path, target, entry):
    """The redacted copy as it was written first, a line at a time (read_lines, entry_time, LineStream.feed): the
    oracle of Collector.write_log's block path."""
    from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import entry_time, read_lines
    before = collector.redactor.total
    state = {"budget": min(collector.p["max_file_bytes"], collector.p["max_total_bytes"] - collector.total), "written": 0}
    report, keep, stream = {}, True, collector.redactor.stream()
    with open(target, "w") as out:
        for dummy, line in read_lines(path, collector.p["max_file_bytes"], 1 << 20, report):
            if collector.since is not None and line[:1] not in (" ", "\t"):
                ts = entry_time(line)
                if ts is not None:
                    keep = ts >= collector.since
            if not keep:
                continue
            if not collector.write_lines(out, stream.feed(line), state, entry):
                break
        else:
            collector.write_lines(out, stream.close(), state, entry)
    entry.update(redactions=collector.redactor.total - before, skipped_lines=report.get("long_lines", 0) + report.get("garbage_lines", 0))


def both(path, tmp_path, since=0, max_file_bytes=16 << 30, key="k" * 32):
    from ansible_collections.agentops.runbooks.plugins.modules.log_bundle import Collector
    from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor
    out, now = [], time.time()
    for index, write in enumerate((line_by_line, None)):
        collector = Collector({"since": since, "max_file_bytes": max_file_bytes, "max_total_bytes": 16 << 30}, Redactor(key=key))
        collector.since = now - since if since else None  # one window for both
        target, entry = str(tmp_path / ("copy-%d" % index)), {}
        if write is None:
            collector.write_log(path, target, entry)
        else:
            write(collector, path, target, entry)
        with open(target, "rb") as handle:
            out.append((handle.read(), entry, dict(collector.redactor.counts)))
    assert out[0] == out[1], path
    return out[0]


def test_the_block_path_copies_what_line_by_line_copies(tmp_path, corpus):
    logs, expected = corpus
    import secrets_corpus  # noqa: E402  pylint: disable=import-outside-toplevel
    planted = secrets_corpus.Corpus(seed=11).write_logs(str(tmp_path / "secrets"))
    paths = sorted(str(logs / name) for name in os.listdir(str(logs)) if name != "core.bin") + sorted(planted.values())
    generated = str(tmp_path / "generated.log")
    log_corpus.write_generated(generated, "seed", megabytes=2.5, per_minute=300, templates=3)
    mixed = str(tmp_path / "mixed.log")
    log_corpus.write_mixed(mixed, entries=4000)
    paths += [generated, mixed]
    redacted = 0
    for path in paths:
        for since in (0, 3600, 86400 * 2):
            data, entry, counts = both(path, tmp_path, since=since)
            redacted += entry["redactions"]
    assert redacted > 20
    both(generated, tmp_path, max_file_bytes=700001)


def test_the_block_path_with_the_window_starting_inside_the_log(tmp_path, monkeypatch):
    from ansible_collections.agentops.runbooks.plugins.modules import log_bundle
    decided = []

    def window_of(text, since, keep, original=log_bundle.window_of):
        decided.append(original(text, since, keep))
        return decided[-1]
    monkeypatch.setattr(log_bundle, "window_of", window_of)
    generated = str(tmp_path / "generated.log")
    start = (int(time.time()) - 4 * 3600) // 60 * 60
    log_corpus.write_generated(generated, "seed", megabytes=3, per_minute=400, start=start, templates=3)
    with open(generated, "a") as handle:  # a secret in a block of its own, inside the window
        handle.write("[%s] [WARN] [api] key %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), log_corpus.SECRETS["anthropic"]))
    for since in (3600, 2 * 3600 + 17, 3 * 3600 + 1, 5 * 3600):
        data, entry, counts = both(generated, tmp_path, since=since)
        assert log_corpus.SECRETS["anthropic"].encode() not in data and entry["redactions"] == 1
    assert True in decided and False in decided and None in decided  # whole blocks kept, whole blocks dropped, blocks across the start
