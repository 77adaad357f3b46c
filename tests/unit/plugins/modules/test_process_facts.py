import errno
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils.procfs import ProcFS, compile_patterns
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import process as process_facts

from helpers import REPO, run_module

FAULTS = os.path.join(REPO, "tests", "fixtures", "faults.py")
DEFAULT = ("node", "claude", "npx", "npm")


def collect(root, patterns=DEFAULT, **kwargs):
    return process_facts.ProcessCollector(ProcFS(root), compile_patterns(patterns), **kwargs).run()


def by_id(result):
    out = {}
    for item in result["findings"]:
        out.setdefault(item["id"], []).append(item)
    return out


@pytest.fixture
def table(fake_proc):
    fake_proc.process(1, comm="systemd", ppid=0, argv=["/sbin/init"])
    fake_proc.process(2, comm="kthreadd", ppid=0, argv=[], flags=0x00200000)
    fake_proc.process(100, comm="node", ppid=1, argv=["/usr/bin/node", "/srv/manager/server.js"], rss_pages=50000)
    fake_proc.process(200, comm="bash", ppid=100, argv=["bash", "-c", "run"])
    for pid in (201, 202, 203):
        fake_proc.process(pid, comm="claude", state="Z", ppid=200, argv=[])
    fake_proc.process(300, comm="node", ppid=1, argv=["node", "/usr/bin/npx", "claude", "--api-key", "sk-ant-abcdefghijklmnopqrstuvwx"])
    fake_proc.process(301, comm="node_exporter", ppid=1, argv=["/usr/bin/node_exporter"])
    fake_proc.process(400, comm="worker", ppid=100, argv=["worker"], fds=90, fd_limit=100)
    return fake_proc


def test_zombies_are_grouped_by_parent_with_the_chain_to_pid_1(table):
    result = collect(table.root)
    zombie = by_id(result)["proc.zombie"]
    assert len(zombie) == 1
    evidence = zombie[0]["evidence"]
    assert evidence["zombie_pids"] == [201, 202, 203] and evidence["ppid"] == 200
    assert [link["pid"] for link in evidence["parent_chain"]] == [200, 100, 1]
    assert zombie[0]["subject"] == "ppid 200" and "parent 200 (bash)" in zombie[0]["symptom"]
    assert zombie[0]["fix"]["playbook"] == "agentops.runbooks.reap_processes"
    assert result["facts"]["states"]["Z"] == 3


def test_orphans_are_agent_processes_under_pid_1_and_names_match_whole(table):
    result = collect(table.root)
    orphan = by_id(result)["proc.orphan"][0]
    # pid 100 (the service itself, under init) and 300 (npx via argv[1]) match; node_exporter does not.
    assert orphan["evidence"]["pids"] == "100,300"
    assert [o["pid"] for o in result["facts"]["orphans"]] == [100, 300]
    assert 301 not in [a["pid"] for a in result["facts"]["agents"]]


def test_command_lines_are_redacted_before_they_leave_the_host(table):
    result = collect(table.root)
    text = repr(result)
    assert "sk-ant-abcdefghijklmnopqrstuvwx" not in text
    assert "[REDACTED:anthropic_key#1]" in text


def test_no_orphans_when_pid_1_is_itself_the_agent(fake_proc):
    fake_proc.process(1, comm="node", ppid=0, argv=["node", "server.js"])
    fake_proc.process(7, comm="node", ppid=1, argv=["node", "worker.js"])
    result = collect(fake_proc.root)
    assert result["facts"]["orphans"] == [] and "proc.orphan" not in by_id(result)


def test_descriptor_pressure_uses_each_process_own_limit(table):
    result = collect(table.root)
    fd = by_id(result)["proc.fd_exhaustion"]
    assert [(f["evidence"]["pid"], f["severity"]) for f in fd] == [(400, "high")]
    assert result["facts"]["near_fd_limit"][0]["used_percent"] == 90.0


def test_kernel_threads_are_left_out_and_top_rss_is_ordered(table):
    result = collect(table.root, top_n=2)
    assert 2 not in [a["pid"] for a in result["facts"]["top_rss"]]
    assert result["facts"]["top_rss"][0]["pid"] == 100
    assert len(result["facts"]["top_rss"]) == 2


def test_processes_that_vanish_or_hide_are_counted_not_fatal(table, monkeypatch):
    os.makedirs(os.path.join(table.root, "999"))  # exited: directory without stat
    real = ProcFS.fds

    def fds(self, pid):
        if pid == 300:
            raise OSError(errno.EACCES, "Permission denied", "/proc/300/fd")
        return real(self, pid)

    monkeypatch.setattr(ProcFS, "fds", fds)
    result = collect(table.root)
    assert result["facts"]["vanished"] == 1 and result["facts"]["unreadable"] == 1
    assert by_id(result)["proc.limited_visibility"][0]["severity"] == "info"
    assert 300 in [o["pid"] for o in result["facts"]["orphans"]]


def test_unreadable_process_table_is_an_unknown_finding(tmp_path):
    result = collect(str(tmp_path / "missing"))
    assert [(f["id"], f["severity"]) for f in result["findings"]] == [("proc.check_incomplete", "unknown")]


@pytest.fixture
def real_faults(tmp_path):
    state = str(tmp_path / "faults.json")
    subprocess.run([sys.executable, FAULTS, "start", "--state", state, "--zombies", "3", "--orphans", "2",
                    "--orphan-name", "claude", "--lifetime", "120"], check=True, capture_output=True)
    import json
    with open(state) as handle:
        yield json.load(handle)
    subprocess.run([sys.executable, FAULTS, "stop", "--state", state], check=True)


def test_real_zombies_and_orphaned_node_processes_are_found(real_faults):
    rc, result = run_module("process_facts", {"include_table": True})
    assert rc == 0, result
    assert result["changed"] is False
    zombies = dict((f["evidence"]["ppid"], f) for f in result["findings"] if f["id"] == "proc.zombie")
    parent = real_faults["zombie_parents"][0]
    assert zombies[parent]["evidence"]["zombie_pids"] == sorted(real_faults["zombies"])
    orphan_pids = [o["pid"] for o in result["facts"]["orphans"]]
    for pid, ppid in real_faults["orphan_parents"].items():
        if ppid == 1:  # re-parented to PID 1 (not to a subreaper)
            assert int(pid) in orphan_pids
    table = dict((p["pid"], p) for p in result["facts"]["table"])
    assert table[os.getpid()]["fd_count"] >= 3 and table[os.getpid()]["fd_limit"]


def test_real_zombie_of_this_test_process(tmp_path):
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        deadline = time.time() + 5
        while time.time() < deadline and ProcFS().stat(child)["state"] != "Z":
            time.sleep(0.01)
        result = collect("/proc")
        zombie = [z for z in result["facts"]["zombies"] if z["pid"] == child]
        assert zombie and zombie[0]["ppid"] == os.getpid()
        assert zombie[0]["parent_chain"][0]["pid"] == os.getpid()
    finally:
        os.waitpid(child, 0)


@pytest.mark.parametrize("args, message", [
    ({"top_n": -1}, "top_n must be between 0 and 1000"),
    ({"patterns": ["("]}, "is not a valid regular expression"),
    ({"patterns": []}, "patterns must name at least one"),
    ({"thresholds": {"proc.zombie": {"extreme": 3}}}, "has no level 'extreme'"),
    ({"proc_root": "/nonexistent"}, "proc_root /nonexistent is not a directory"),
])
def test_bad_arguments_fail_with_one_sentence(args, message):
    rc, result = run_module("process_facts", args)
    assert rc != 0 and isinstance(result, dict), result
    assert message in result["msg"] and "Traceback" not in result["msg"]


def test_unprivileged_scan_of_the_real_proc_counts_what_it_cannot_read():
    """A forked child drops to nobody and scans the real /proc: root's descriptors are hidden from it."""
    import json
    import pwd
    if os.geteuid() != 0:
        result = collect("/proc")
    else:
        nobody = pwd.getpwnam("nobody")
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(read_fd)
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                os.write(write_fd, json.dumps(collect("/proc")).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        chunks = []
        while True:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_fd)
        os.waitpid(child, 0)
        result = json.loads(b"".join(chunks).decode())
    assert result["facts"]["unreadable"] >= 1  # at least PID 1 (root) is hidden
    visibility = [f for f in result["findings"] if f["id"] == "proc.limited_visibility"]
    assert visibility and visibility[0]["evidence"]["user"] != "root"
    pid1 = [p for p in result["facts"]["top_rss"] + result["facts"]["agents"] if p["pid"] == 1]
    assert result["facts"]["process_count"] > 1 and (not pid1 or pid1[0]["fd_count"] is None)


def test_deleted_files_still_open_are_found_with_their_size(tmp_path):
    path = tmp_path / "rotated.log"
    with open(path, "wb") as handle:
        handle.write(b"x" * (3 * 1024 * 1024))
        handle.flush()
        os.unlink(path)  # rotated away, still open here
        result = collect("/proc", thresholds={"proc.deleted_open_files": {"medium": 2.0}})
    mine = [p for p in result["facts"]["deleted_open_files"]["processes"] if p["pid"] == os.getpid()]
    assert mine and mine[0]["mb"] >= 3.0 and mine[0]["files"][0]["path"] == str(path)
    found = [f for f in result["findings"] if f["id"] == "proc.deleted_open_files"]
    assert found and found[0]["severity"] == "medium"
