import subprocess
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import memory

from helpers import run_module

AGENT = {"pid": 50, "name": "node", "argv": ["node", "server.js"], "rss_mb": 2.0}


@pytest.mark.parametrize("points, slope, share", [
    ([(0, 100.0), (1, 101.0), (2, 102.0), (3, 103.0)], 60.0, 1.0),
    ([(0, 100.0), (1, 100.0), (2, 100.0)], 0.0, 0.0),
    ([(0, 100.0), (30, 90.0), (60, 80.0)], -20.0, 0.0),
    ([(0, 100.0)], 0.0, 0.0),
])
def test_slope_and_rising_share(points, slope, share):
    assert memory.slope_per_minute(points) == pytest.approx(slope)
    assert memory.rising(points) == share


def cgroup_tree(root, version, current, maximum, oom_kill=0, pids=(10, 100)):
    if version == 2:
        base = root / "svc.slice"
        base.mkdir(parents=True)
        (root / "cgroup.controllers").write_text("memory pids\n")
        (base / "memory.current").write_text("%d\n" % current)
        (base / "memory.max").write_text("%s\n" % maximum)
        (base / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill %d\n" % oom_kill)
        (base / "pids.current").write_text("%d\n" % pids[0])
        (base / "pids.max").write_text("%s\n" % pids[1])
        return "0::/svc.slice\n"
    base = root / "memory" / "docker" / "abc"
    base.mkdir(parents=True)
    (base / "memory.usage_in_bytes").write_text("%d\n" % current)
    (base / "memory.limit_in_bytes").write_text("%s\n" % maximum)
    (base / "memory.failcnt").write_text("0\n")
    (base / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill %d\n" % oom_kill)
    return "4:memory:/docker/abc\n0::/\n"


@pytest.mark.parametrize("version, current, maximum, oom_kill, pids, expected", [
    (2, 980 * 2 ** 20, 1000 * 2 ** 20, 0, (10, 100), {"proc.cgroup_memory": "critical"}),
    (2, 100 * 2 ** 20, 1000 * 2 ** 20, 3, (10, 100), {"proc.cgroup_memory": "high"}),   # an OOM kill happened
    (2, 100 * 2 ** 20, "max", 0, (96, 100), {"proc.pids_limit": "critical"}),
    (2, 100 * 2 ** 20, 1000 * 2 ** 20, 0, (10, "max"), {}),
    (1, 950 * 2 ** 20, 1000 * 2 ** 20, 0, None, {"proc.cgroup_memory": "high"}),
    (1, 10 * 2 ** 20, 9223372036854771712, 1, None, {}),  # v1 "no limit" is a huge number
])
def test_cgroup_accounting_v1_and_v2(fake_proc, tmp_path, version, current, maximum, oom_kill, pids, expected):
    fake_proc.process(50, comm="node", ppid=1, argv=["node", "server.js"])
    fake_proc.write("50/cgroup", cgroup_tree(tmp_path / "cg", version, current, maximum, oom_kill, pids or (1, 1)))
    fake_proc.write("50/statm", "1000 500 0 0 0 0 0\n")
    collector = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(str(tmp_path / "cg")), window=0)
    result = collector.run([AGENT])
    found = dict((f["id"], f["severity"]) for f in result["findings"])
    assert found == expected
    assert result["facts"]["cgroups"][0]["memory"]["version"] == version


def test_recorded_oom_kill_lines_become_a_finding(fake_proc):
    records = [
        (100.0, "node invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
        (100.1, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/agent.service,"
                "task_memcg=/system.slice/agent.service,task=node,pid=4242,uid=1000"),
        (100.2, "Memory cgroup out of memory: Killed process 4242 (node) total-vm:1706048kB, anon-rss:524288kB, file-rss:0kB"),
        (200.0, "Out of memory: Killed process 5151 (claude) total-vm:900000kB, anon-rss:800000kB, file-rss:0kB"),
    ]
    collector = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root),
                                       window=0, kernel_log=lambda: records)
    result = collector.run([])
    kills = result["facts"]["oom_kills"]
    assert [(k["pid"], k["comm"], k["memcg"]) for k in kills] == [(4242, "node", True), (5151, "claude", False)]
    assert kills[0]["cgroup"] == "/system.slice/agent.service" and kills[0]["when"] == "2025-11-24T16:01:40Z"
    oom = [f for f in result["findings"] if f["id"] == "proc.oom_kill"][0]
    assert oom["severity"] == "high" and "(host out of memory)" in oom["symptom"]


def test_unreadable_kernel_log_is_unknown_not_absent(fake_proc):
    def denied():
        raise PermissionError(13, "Operation not permitted", "/dev/kmsg")
    result = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root),
                                    window=0, kernel_log=denied).run([])
    assert [(f["id"], f["severity"]) for f in result["findings"]] == [("proc.check_incomplete", "unknown")]


LEAK_MB_PER_SECOND = 8
LEAKER = """
const keep = [];
setInterval(() => { if (keep.length < 300) keep.push(Buffer.alloc(%d * 1024 * 1024 / 10, 1)); }, 100);
setTimeout(() => process.exit(0), 30000);
""" % LEAK_MB_PER_SECOND
STEADY = "const keep = Buffer.alloc(20 * 1024 * 1024, 1); setTimeout(() => process.exit(0), 30000);"


@pytest.fixture
def node_processes():
    started = []

    def start(script, *flags):
        proc = subprocess.Popen(["node"] + list(flags) + ["-e", script], stdin=subprocess.DEVNULL)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_real_leaking_node_process_is_measured_at_its_known_rate(node_processes):
    leaker = node_processes(LEAKER, "--max-old-space-size=4096")
    steady = node_processes(STEADY)
    time.sleep(1.0)
    rc, result = run_module("process_facts", {"leak_window": 3.0, "leak_samples": 7, "kernel_log": False})
    assert rc == 0, result
    sampled = dict((s["pid"], s) for s in result["facts"]["memory"]["sampled"])
    expected = LEAK_MB_PER_SECOND * 60
    assert sampled[leaker.pid]["slope_mb_per_min"] == pytest.approx(expected, rel=0.3)
    assert abs(sampled[steady.pid]["slope_mb_per_min"]) < 5
    assert sampled[leaker.pid]["limit_source"] in ("--max-old-space-size",) or sampled[leaker.pid]["limit_source"].startswith("cgroup")
    leaks = [f for f in result["findings"] if f["id"] == "proc.memory_leak"]
    assert [f["evidence"]["pid"] for f in leaks] == [leaker.pid]
    assert leaks[0]["severity"] == "critical"
    assert result["facts"]["memory"]["window_seconds"] >= 2.9


def test_no_agent_process_means_no_waiting(fake_proc):
    began = time.monotonic()
    result = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root), window=30).run([])
    assert time.monotonic() - began < 1 and result["facts"]["sampled"] == []


@pytest.mark.parametrize("args, message", [
    ({"leak_window": 700}, "leak_window must be between 0 and 600"),
    ({"leak_samples": 2}, "leak_samples must be between 3 and 100"),
    ({"leak_max_processes": 0}, "leak_max_processes must be between 1 and 1000"),
])
def test_bad_leak_arguments_fail_with_one_sentence(args, message):
    rc, result = run_module("process_facts", args)
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]
