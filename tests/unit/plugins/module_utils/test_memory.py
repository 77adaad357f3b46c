import os
import re
import subprocess
import time
import uuid

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


@pytest.mark.parametrize("points, fit", [
    ([(0, 100.0), (1, 101.0), (2, 102.0), (3, 103.0)], 1.0),
    ([(0, 100.0), (1, 100.0), (2, 100.0), (3, 100.0)], 0.0),    # nothing to explain
    ([(0, 100.0), (1, 160.0), (2, 160.0), (3, 160.0)], 0.6),    # a jump then flat
    ([(0, 100.0), (1, 101.0)], 0.0),                            # two points: any line fits, no evidence
    ([(0, 100.0), (1, 90.0), (2, 80.0)], 1.0),                  # a clean line down is still a clean line
])
def test_r_squared(points, fit):
    assert memory.r_squared(points) == pytest.approx(fit)


@pytest.mark.parametrize("fit, samples, seconds, expected", [
    (0.99, 4, 3.0, 0.17),      # process_facts' defaults: a perfect line, weak evidence
    (0.99, 4, 60.0, 0.33),     # a minute, but only 4 samples
    (0.99, 7, 30.0, 0.43),
    (1.0, 12, 60.0, 1.0),      # a minute of 12 samples: the fit itself
    (0.9, 24, 600.0, 0.9),     # more never exceeds the fit
    (1.0, 6, 0.0, 0.25),
])
def test_confidence_rule(fit, samples, seconds, expected):
    assert memory.confidence(fit, samples, seconds, memory.FIT_DEFAULTS) == expected


def test_the_catalog_criteria_cover_every_default():
    criteria = memory.leak_criteria()
    assert set(memory.FIT_DEFAULTS) <= set(criteria)
    assert all(isinstance(criteria[key], (int, float)) for key in memory.FIT_DEFAULTS)


def series(values, step):
    return [(index * step, float(value)) for index, value in enumerate(values)]


def line(start, mb_per_min, samples, window, jitter=()):
    step = window / (samples - 1.0)
    jitter = list(jitter) or [0.0]
    return [(i * step, start + mb_per_min * i * step / 60.0 + jitter[i % len(jitter)]) for i in range(samples)]


OLD = 3600
NOISE = [0.0, 0.9, -0.8, 0.4, -1.0, 1.0, -0.3, 0.6, -0.7, 0.2, -0.5, 0.8]
# (case, points, age_seconds, heap limit MB or None, expected severity or None, expected verdict)
LEAK_CASES = [
    ("steady 120 MB/min, 12 samples over 55 s", line(300, 120, 12, 55, [0.0, 0.3, -0.2]), OLD, 2048, "critical", "leak"),
    ("steady 120 MB/min at process_facts' defaults", line(300, 120, 4, 3), OLD, 4096, "critical", "leak"),
    ("steady 40 MB/min over a minute", line(500, 40, 12, 60, [0.0, 0.5, -0.5]), OLD, None, "high", "leak"),
    ("steady 10 MB/min over a minute", line(500, 10, 12, 60), OLD, None, "medium", "leak"),
    ("warm-up +60 MB then flat, 4 samples in 3 s", series([150, 210, 210, 210], 1.0), OLD, 4096, None, "not_sustained"),
    ("warm-up +60 MB then flat, 12 samples", series([150] + [210] * 11, 5.0), OLD, 4096, None, "not_sustained"),
    ("warm-up jump mid-window then flat", series([150, 150, 210, 210], 1.0), OLD, None, None, "not_sustained"),
    ("flat worker with +-1 MB noise", series([200 + n for n in NOISE], 5.0), OLD, None, None, "within_noise"),
    ("flat worker drifting 0.5 MB in 3 s (the '10 MB/min leak')", series([200.0, 200.2, 200.3, 200.5], 1.0), OLD, None,
     None, "within_noise"),
    ("GC sawtooth", series([300, 310, 320] * 4 + [300], 5.0), OLD, None, None, "within_noise"),
    ("GC sawtooth ending high", series([300, 310, 320] * 3 + [300, 310, 325], 5.0), OLD, None, None, "poor_fit"),
    ("a slow climb under GC sawtooth", series([300 + 1.5 * i + (0, 8, 16)[i % 3] for i in range(12)], 5.0), OLD, None,
     None, "poor_fit"),
    ("shrinking", line(400, -60, 12, 55), OLD, None, None, "within_noise"),
    ("young process, steady 120 MB/min", line(300, 120, 12, 55), 30, 2048, None, "warming_up"),
    ("3 samples are too few", line(300, 120, 3, 3), OLD, None, None, "too_few_samples"),
    ("a clean line below the lowest threshold", line(200, 3, 12, 60), OLD, None, None, "below_threshold"),
    ("10 MB in 3 s of a 2 GB process is within its noise", line(2000, 200, 4, 3), OLD, None, None, "within_noise"),
    ("age unknown counts as old", line(300, 120, 4, 3), None, None, "critical", "leak"),
]


@pytest.mark.parametrize("case, points, age, heap, severity, verdict", LEAK_CASES, ids=[c[0] for c in LEAK_CASES])
def test_a_leak_needs_sustained_growth(fake_proc, case, points, age, heap, severity, verdict):
    argv = ["node"] + (["--max-old-space-size=%d" % heap] if heap else []) + ["server.js"]
    agent = {"pid": 50, "name": "node", "argv": argv, "rss_mb": points[0][1], "age_seconds": age}
    collector = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root), min_age=120)
    entry = collector.leak(agent, points, points[-1][0])
    assert entry["verdict"] == verdict, entry
    assert entry["samples"] == len(points) and 0.0 <= entry["r_squared"] <= 1.0
    assert entry["growth_mb"] == pytest.approx(points[-1][1] - points[0][1], abs=0.01)
    found = [f for f in collector.findings if f["id"] == "proc.memory_leak"]
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    if not found:
        assert "minutes_to_limit" not in entry and "confidence" not in entry
        return
    leak = found[0]
    assert leak["evidence"]["r_squared"] == entry["r_squared"] >= 0.95
    for key in ("slope_mb_per_min", "samples", "growth_mb", "age_seconds", "rising_share"):
        assert leak["evidence"][key] == entry[key]
    assert 0.0 < leak["confidence"] <= round(leak["evidence"]["r_squared"], 2)
    assert leak["confidence"] == memory.confidence(entry["r_squared"], len(points), points[-1][0] - points[0][0])
    if heap:
        assert leak["evidence"]["minutes_to_limit"] == entry["minutes_to_limit"] > 0
        assert "--max-old-space-size" in leak["symptom"]
    else:
        assert leak["evidence"]["minutes_to_limit"] is None


@pytest.mark.parametrize("points", [series([150, 210, 210, 210], 1.0), series([150] + [210] * 11, 5.0)])
def test_a_warm_up_jump_fails_both_the_rising_share_and_the_fit(points):
    """Either criterion alone keeps a warm-up from being a leak, even in an old process."""
    measures = memory.judge(points, OLD, 120, memory.FIT_DEFAULTS)
    assert measures["rising_share"] < memory.FIT_DEFAULTS["min_rising"]
    assert measures["r_squared"] < memory.FIT_DEFAULTS["min_r_squared"]
    assert measures["growth_mb"] == 60.0 and measures["slope_mb_per_min"] > 5  # the slope alone would grade it


def test_a_minute_of_samples_is_trusted_more_than_three_seconds(fake_proc):
    collector = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root))
    agent = {"pid": 50, "name": "node", "argv": ["node"], "rss_mb": 300.0, "age_seconds": OLD}
    collector.leak(agent, line(300, 120, 4, 3), 3.0)
    collector.leak(agent, line(300, 120, 12, 60), 60.0)
    short, long_ = [f["confidence"] for f in collector.findings]
    assert short < 0.3 < 0.9 < long_


def test_the_slope_grades_and_a_near_limit_escalates(fake_proc):
    """10 MB/min grades medium; the last sample (510 MB) leaves 50 MB of heap headroom, 5 minutes away:
    inside critical_within_minutes."""
    collector = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root))
    agent = {"pid": 50, "name": "node", "argv": ["node", "--max-old-space-size=560", "x.js"], "rss_mb": 500.0,
             "age_seconds": OLD}
    entry = collector.leak(agent, line(500, 10, 12, 60), 60.0)
    leak = collector.findings[0]
    assert entry["minutes_to_limit"] == 5.0 and memory.leak_criteria()["critical_within_minutes"] > 5
    assert leak["severity"] == "critical" and leak["evidence"]["threshold"] == 5.0
    assert leak["evidence"]["escalated_because"].startswith("limit within")


def test_young_processes_are_listed_as_warming_up(fake_proc):
    fake_proc.process(50, comm="node", argv=["node", "server.js"])
    fake_proc.write("50/statm", "1000 500 0 0 0 0 0\n")
    agents = [dict(AGENT, age_seconds=5), dict(AGENT, pid=51, age_seconds=None)]
    fake_proc.process(51, comm="node", argv=["node", "server.js"])
    fake_proc.write("51/statm", "1000 500 0 0 0 0 0\n")
    result = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root), window=0.03,
                                    samples=4, min_age=120).run(agents)
    assert result["facts"]["warming_up"] == [{"pid": 50, "name": "node", "age_seconds": 5}]
    verdicts = dict((s["pid"], s["verdict"]) for s in result["facts"]["sampled"])
    assert verdicts == {50: "warming_up", 51: "within_noise"}
    assert result["findings"] == [] and result["facts"]["leak_criteria"]["min_age_seconds"] == 120


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
TITLED = "process.title = %r;\n"
LEAKER = """
const keep = [];
setInterval(() => { if (keep.length < 300) keep.push(Buffer.alloc(%d * 1024 * 1024 / 10, 1)); }, 100);
setTimeout(() => process.exit(0), 30000);
""" % LEAK_MB_PER_SECOND
STEADY = "const keep = Buffer.alloc(20 * 1024 * 1024, 1); setTimeout(() => process.exit(0), 30000);"


@pytest.fixture
def node_processes():
    """Start node scripts under a per-run unique process title (comm and argv[0]; 15 characters at most),
    so that a pattern matches only the processes this test started."""
    started = []
    run = "aomem-%s" % uuid.uuid4().hex[:8]

    def start(script, tag, env=None):
        title = run + tag
        proc = subprocess.Popen(["node", "-e", TITLED % title + script], stdin=subprocess.DEVNULL,
                                env=dict(os.environ, **(env or {})))
        started.append(proc)
        return proc
    start.pattern = re.escape(run) + "[a-z]"
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_real_leaking_node_process_is_measured_at_its_known_rate(node_processes):
    leaker = node_processes(LEAKER, "l", env={"NODE_OPTIONS": "--max-old-space-size=4096"})
    steady = node_processes(STEADY, "s")
    time.sleep(1.0)
    args = {"leak_window": 3.0, "leak_samples": 7, "kernel_log": False, "patterns": [node_processes.pattern],
            "leak_min_age": 0}  # both started a second ago
    rc, result = run_module("process_facts", args)
    assert rc == 0, result
    sampled = dict((s["pid"], s) for s in result["facts"]["memory"]["sampled"])
    assert sorted(sampled) == sorted([leaker.pid, steady.pid])
    expected = LEAK_MB_PER_SECOND * 60
    assert sampled[leaker.pid]["slope_mb_per_min"] == pytest.approx(expected, rel=0.3)
    assert abs(sampled[steady.pid]["slope_mb_per_min"]) < 5
    assert sampled[leaker.pid]["limit_source"] in ("--max-old-space-size",) or sampled[leaker.pid]["limit_source"].startswith("cgroup")
    leaks = [f for f in result["findings"] if f["id"] == "proc.memory_leak"]
    assert [f["evidence"]["pid"] for f in leaks] == [leaker.pid]
    assert leaks[0]["severity"] == "critical" and leaks[0]["evidence"]["r_squared"] >= 0.95
    assert 0 < leaks[0]["confidence"] <= 1 and leaks[0]["evidence"]["minutes_to_limit"] > 0
    assert result["facts"]["memory"]["window_seconds"] >= 2.9


def test_no_agent_process_means_no_waiting(fake_proc):
    began = time.monotonic()
    result = memory.MemoryCollector(procfs.ProcFS(fake_proc.root), procfs.CgroupFS(fake_proc.root), window=30).run([])
    assert time.monotonic() - began < 1 and result["facts"]["sampled"] == []


@pytest.mark.parametrize("args, message", [
    ({"leak_window": 700}, "leak_window must be between 0 and 600"),
    ({"leak_samples": 3}, "leak_samples must be between 4 and 100"),
    ({"leak_min_age": -1}, "leak_min_age must be between 0 and 86400"),
    ({"leak_max_processes": 0}, "leak_max_processes must be between 1 and 1000"),
])
def test_bad_leak_arguments_fail_with_one_sentence(args, message):
    rc, result = run_module("process_facts", args)
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]
