"""leak_response against real leaking node processes started by the test."""
import os
import stat
import subprocess
import time

import pytest

from helpers import run_module

LEAKER = ("process.title = 'leaky'; const keep = []; "
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
    base = {"patterns": ["leaky"], "window": 2.0, "samples": 5, "min_growth": 100, "evidence_dir": str(tmp_path / "evidence")}
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
    service = {"pattern": "leaky", "command": ["true"]}
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
    assert result["restart"] == [{"pid": proc.pid, "pattern": "leaky", "unit": None, "command": ["true"]}]
    rc, again = run_module("leak_response", args(tmp_path, restart=True, services=[service], heap_snapshot=False))
    assert again["restart"] == [] and "at most once per 3600 s" in again["skipped"][0]["why"]


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
