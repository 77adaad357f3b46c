import os
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils.procfs import ProcFS
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import host as host_facts

from helpers import run_module


def ids(result):
    return dict((f["id"] + ("@" + f["subject"] if f["subject"] else ""), f["severity"]) for f in result["findings"])


def collect(fake_proc, **kwargs):
    return host_facts.HostCollector(ProcFS(fake_proc.root), **kwargs).run()


def test_healthy_synthetic_host_has_no_findings(fake_proc, tmp_path):
    fake_proc.mount(1, "8:1", str(tmp_path), "ext4")
    result = collect(fake_proc)
    assert result["findings"] == [] or all(f["severity"] == "info" for f in result["findings"])
    facts = result["facts"]
    assert facts["cores"] >= 1
    assert facts["memory"]["used_percent"] == 25.0
    assert facts["tasks"] == {"total": 180, "pid_max": 32768, "used_percent": 0.5}
    assert [m["mount_point"] for m in facts["mounts"]] == [str(tmp_path)]


@pytest.mark.parametrize("setup, expected", [
    (lambda p: p.write("loadavg", "25.00 20.00 10.00 30/900 1\n"), {"host.load": "critical"}),
    (lambda p: p.meminfo(total_kb=1000000, available_kb=40000), {"host.memory": "critical"}),
    (lambda p: p.meminfo(total_kb=1000000, available_kb=900000, swap_total_kb=100000, swap_free_kb=10000), {"host.swap": "high"}),
    (lambda p: p.write("sys/fs/file-nr", "85000\t0\t100000\n"), {"host.file_handles": "high"}),
    (lambda p: p.write("loadavg", "0.1 0.1 0.1 1/31500 1\n"), {"host.pids": "critical"}),
    (lambda p: p.write("uptime", "120.5 100.0\n"), {"host.recent_reboot": "info"}),
])
def test_thresholds_turn_measurements_into_findings(fake_proc, setup, expected):
    setup(fake_proc)
    found = ids(collect(fake_proc))
    for rule_id, severity in expected.items():
        assert found.get(rule_id) == severity, found


def test_threshold_overrides_apply(fake_proc):
    fake_proc.meminfo(total_kb=1000000, available_kb=300000)  # 70 % used
    assert "host.memory" not in ids(collect(fake_proc))
    overridden = collect(fake_proc, thresholds={"host.memory": {"high": 60.0}})
    assert ids(overridden)["host.memory"] == "high"


def test_unreadable_parts_become_unknown_findings_and_the_rest_is_still_measured(fake_proc):
    os.unlink(os.path.join(fake_proc.root, "meminfo"))
    result = collect(fake_proc)
    assert ids(result)["host.check_incomplete@memory"] == "unknown"
    assert result["incomplete"][0]["check"] == "memory"
    assert "load" in result["facts"] and "tasks" in result["facts"]


def test_a_mount_that_does_not_answer_is_reported_not_waited_for(fake_proc, tmp_path, monkeypatch):
    fake_proc.mount(1, "8:1", str(tmp_path), "ext4")
    fake_proc.mount(2, "0:40", "/mnt/hung-nfs", "nfs4", "server:/export")
    real_statvfs = os.statvfs

    def statvfs(path):
        if path == "/mnt/hung-nfs":
            time.sleep(3)
        return real_statvfs(path)

    monkeypatch.setattr(host_facts.os, "statvfs", statvfs)
    began = time.monotonic()
    result = collect(fake_proc, mount_timeout=0.3)
    assert time.monotonic() - began < 2
    assert ids(result)["host.check_incomplete@mount /mnt/hung-nfs"] == "unknown"
    assert [m["mount_point"] for m in result["facts"]["mounts"]] == [str(tmp_path)]


def test_real_host_through_the_module_entry_point():
    rc, result = run_module("host_facts", {})
    assert rc == 0, result
    assert result["changed"] is False
    facts = result["facts"]
    assert facts["memory"]["total_mb"] > 0
    assert "/" in [m["mount_point"] for m in facts["mounts"]]
    assert facts["tasks"]["total"] > 0 and facts["file_handles"]["max"] > 0


@pytest.mark.parametrize("args, message", [
    ({"mount_timeout": 0}, "mount_timeout must be between 0.1 and 60 seconds, got 0.0."),
    ({"thresholds": {"host.disk": {"high": 1}}}, "thresholds names unknown rule 'host.disk'"),
    ({"proc_root": "/nonexistent"}, "does not look like a proc filesystem"),
    ({"bogus": 1}, "Unsupported parameters"),
])
def test_bad_arguments_fail_with_one_sentence(args, message):
    rc, result = run_module("host_facts", args)
    assert rc != 0
    assert isinstance(result, dict) and result["failed"] is True
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]
