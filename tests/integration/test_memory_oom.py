"""A real memory-cgroup OOM kill: a 64 MB cgroup, a process that allocates past it, a node agent in the
same cgroup that survives. process_facts must find the kill in the kernel log and the cgroup's count."""
import os
import subprocess
import sys
import time
import uuid

import pytest

from helpers import run_module

ROOT = "/sys/fs/cgroup"
# The hog names itself (comm) with a per-run token: the kernel logs global pids, which differ from the pids this
# test sees when it runs in a PID namespace of its own, so the kill is recognised by that name.
HOG_NAME = "oomhog-%s" % uuid.uuid4().hex[:6]
HOG = ("import time; open('/proc/self/comm', 'w').write(%r); time.sleep(0.5); "
       "blocks = [bytearray(16 * 1024 * 1024) for _ in range(32)]; time.sleep(5)" % HOG_NAME)


def memory_cgroup():
    """(path, version) of a new child memory cgroup this test may use, or skip."""
    if os.geteuid() != 0:
        pytest.skip("creating a memory cgroup needs root")
    name = "agentops-test-%s" % uuid.uuid4().hex[:8]
    unified = ROOT if os.path.exists(os.path.join(ROOT, "cgroup.controllers")) else os.path.join(ROOT, "unified")
    try:
        with open(os.path.join(unified, "cgroup.subtree_control")) as handle:
            v2_memory = "memory" in handle.read().split()
    except OSError:
        v2_memory = False
    if v2_memory:
        path = os.path.join(unified, name)
        os.mkdir(path)
        with open(os.path.join(path, "memory.max"), "w") as handle:
            handle.write(str(64 * 1024 * 1024))
        with open(os.path.join(path, "memory.swap.max"), "w") as handle:
            handle.write("0")
        return path, 2
    if os.path.isdir(os.path.join(ROOT, "memory")):
        path = os.path.join(ROOT, "memory", name)
        os.mkdir(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as handle:
            handle.write(str(64 * 1024 * 1024))
        return path, 1
    pytest.skip("no writable memory controller")


def enter(path, pid):
    with open(os.path.join(path, "cgroup.procs"), "w") as handle:
        handle.write(str(pid))


def test_a_real_memory_cgroup_oom_kill_is_found():
    path, version = memory_cgroup()
    survivor = hog = None
    try:
        survivor = subprocess.Popen(["node", "-e", "setTimeout(() => {}, 30000)"], stdin=subprocess.DEVNULL)
        enter(path, survivor.pid)
        hog = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        enter(path, hog.pid)
        assert hog.wait(30) == -9, "the kernel did not OOM-kill the hog"
        time.sleep(0.2)
        rc, result = run_module("process_facts", {"leak_window": 0})
        assert rc == 0, result
        kills = [k for k in result["facts"]["memory"]["oom_kills"] if k["comm"] == HOG_NAME]
        assert kills and kills[0]["memcg"] is True
        cgroup = "/" + os.path.basename(path)
        accounting = [c for c in result["facts"]["memory"]["cgroups"] if c["cgroup"] == cgroup]
        assert accounting and accounting[0]["memory"]["oom_kill"] >= 1 and accounting[0]["memory"]["version"] == version
        found = dict((f["id"], f) for f in result["findings"])
        assert found["proc.oom_kill"]["severity"] == "high"
        assert found["proc.cgroup_memory"]["evidence"]["cgroup"] == cgroup
    finally:
        for proc in (survivor, hog):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
        time.sleep(0.2)
        os.rmdir(path)
