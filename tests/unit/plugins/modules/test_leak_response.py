"""leak_response against real leaking node processes started by the test."""
import os
import stat
import subprocess
import time
import uuid

import pytest

from helpers import run_module

TITLE = "leaky-%s" % uuid.uuid4().hex[:8]  # per run: never matches another job's process
LEAKER = ("process.title = '%s'; const keep = []; " % TITLE +
          "setInterval(() => { if (keep.length < 200) keep.push(Buffer.alloc(1024 * 1024, 1)); }, 50); "
          "setTimeout(() => process.exit(0), 60000);")


@pytest.fixture
def leaker(tmp_path):
    started = []

    def start(node_options=""):
        # process.title rewrites argv (as many services do), so the flag travels in NODE_OPTIONS
        env = dict(os.environ, NODE_OPTIONS=node_options)
        proc = subprocess.Popen(["node", "-e", LEAKER], cwd=str(tmp_path), stdin=subprocess.DEVNULL, env=env)
        started.append(proc)
        time.sleep(0.8)
        return proc
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def args(tmp_path, **extra):
    base = {"patterns": [TITLE], "window": 2.0, "samples": 5, "min_growth": 100, "min_age": 0,
            "evidence_dir": str(tmp_path / "evidence")}
    base.update(extra)
    return base


def test_check_mode_writes_and_signals_nothing(tmp_path, leaker):
    proc = leaker("--heapsnapshot-signal=SIGUSR2")
    rc, result = run_module("leak_response", args(tmp_path, _ansible_check_mode=True))
    assert rc == 0, result
    assert [l["pid"] for l in result["leaking"]] == [proc.pid]
    assert result["leaking"][0]["heap_snapshot"].startswith("would send SIGUSR2")
    assert not (tmp_path / "evidence").exists()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".heapsnapshot")]


def test_evidence_then_heap_snapshot_then_one_restart_per_window(tmp_path, leaker):
    proc = leaker("--heapsnapshot-signal=SIGUSR2")
    service = {"pattern": TITLE, "command": ["true"]}
    rc, result = run_module("leak_response", args(tmp_path, restart=True, services=[service]))
    assert rc == 0, result
    item = result["leaking"][0]
    assert item["pid"] == proc.pid and item["slope_mb_per_min"] >= 100
    evidence = item["evidence"]
    assert stat.S_IMODE(os.stat(evidence).st_mode) == 0o700
    for name in ("status", "smaps_rollup", "limits", "summary.json"):
        assert stat.S_IMODE(os.stat(os.path.join(evidence, name)).st_mode) == 0o600
    assert item["heap_snapshot"].endswith(".heapsnapshot") and os.path.getsize(item["heap_snapshot"]) > 0
    assert proc.poll() is None  # the snapshot did not kill it
    assert result["restart"] == [{"pid": proc.pid, "pattern": TITLE, "unit": None, "command": ["true"]}]
    rc, again = run_module("leak_response", args(tmp_path, restart=True, services=[service], heap_snapshot=False))
    assert again["restart"] == [] and "at most once per 3600 s" in again["left_alone"][0]["why"]


def test_no_sigusr2_without_the_snapshot_flag(tmp_path, leaker):
    proc = leaker()
    rc, result = run_module("leak_response", args(tmp_path))
    assert rc == 0, result
    assert "does not run with --heapsnapshot-signal" in result["leaking"][0]["heap_snapshot"]
    time.sleep(0.5)
    assert proc.poll() is None


@pytest.mark.parametrize("extra, message", [
    ({"window": 0}, "window must be between 1 and 600"),
    ({"services": [{"pattern": "x"}]}, "needs a unit or a command"),
])
def test_bad_arguments_fail_with_one_sentence(tmp_path, extra, message):
    rc, result = run_module("leak_response", args(tmp_path, **extra))
    assert rc != 0 and message in result["msg"]


def one_sentence(message):
    return message.endswith(".") and "\n" not in message and "Traceback" not in message


def test_evidence_dir_that_is_a_symlink_is_refused_before_sampling(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.symlink(str(elsewhere), str(tmp_path / "evidence"))
    started = time.monotonic()
    rc, result = run_module("leak_response", args(tmp_path, window=30.0))
    assert rc != 0 and result["msg"] == ("Refusing to use %s: it is a symbolic link, and private files are never written "
                                         "through one." % (tmp_path / "evidence"))
    assert time.monotonic() - started < 20  # refused before the 30 s sampling window
    assert os.listdir(str(elsewhere)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_evidence_dir_owned_by_another_user_is_refused(tmp_path):
    (tmp_path / "evidence").mkdir(mode=0o755)
    os.chown(str(tmp_path / "evidence"), 65534, 65534)
    rc, result = run_module("leak_response", args(tmp_path))
    assert rc != 0 and "it is owned by uid 65534" in result["msg"] and one_sentence(result["msg"])
    assert stat.S_IMODE(os.stat(str(tmp_path / "evidence")).st_mode) == 0o755


@pytest.mark.parametrize("evidence_dir, message", [
    ("relative/evidence", "evidence_dir must be an absolute path below /, got 'relative/evidence'."),
    ("/", "evidence_dir must be an absolute path below /, got '/'."),
])
def test_evidence_dir_must_be_absolute(tmp_path, evidence_dir, message):
    rc, result = run_module("leak_response", args(tmp_path, evidence_dir=evidence_dir))
    assert rc != 0 and result["msg"] == message


def test_evidence_and_state_are_private_and_never_written_through_a_link(tmp_path, leaker):
    proc = leaker()
    evidence_dir = tmp_path / "var" / "evidence"
    service = {"pattern": TITLE, "command": ["true"]}
    old = os.umask(0o022)
    try:
        rc, result = run_module("leak_response", args(tmp_path, evidence_dir=str(evidence_dir), heap_snapshot=False,
                                                      restart=True, services=[service]))
    finally:
        os.umask(old)
    assert rc == 0 and result["leaking"][0]["pid"] == proc.pid, result
    evidence = result["leaking"][0]["evidence"]
    for directory in (tmp_path / "var", evidence_dir, evidence):
        assert stat.S_IMODE(os.lstat(str(directory)).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(str(evidence_dir / "leak_response_state.json")).st_mode) == 0o600
    assert not [name for name in os.listdir(evidence) if name.endswith(".tmp")]
    # A link planted where the state file goes is refused, and the file it points to is left alone.
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.unlink(str(evidence_dir / "leak_response_state.json"))
    os.symlink(str(victim), str(evidence_dir / "leak_response_state.json"))
    rc, again = run_module("leak_response", args(tmp_path, evidence_dir=str(evidence_dir), heap_snapshot=False,
                                                 restart=True, services=[service]))
    assert rc != 0 and "leak_response_state.json: it is a symbolic link" in again["msg"] and one_sentence(again["msg"])
    assert victim.read_text() == "precious"
