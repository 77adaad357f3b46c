import os

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import procfs


@pytest.mark.parametrize("line, comm, state, ppid", [
    ("42 (node) S 1 42 42 0 -1 4194560 0 0 0 0 10 5 0 0 20 0 7 0 100 123 456 0", "node", "S", 1),
    # comm may contain spaces and ')': split at the last ')'
    ("43 (my ) (weird) Z 42 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0", "my ) (weird", "Z", 42),
])
def test_parse_stat_takes_comm_up_to_the_last_paren(line, comm, state, ppid):
    stat = procfs.parse_stat(line)
    assert (stat["comm"], stat["state"], stat["ppid"]) == (comm, state, ppid)


def test_parse_stat_rejects_a_truncated_line():
    with pytest.raises(ValueError):
        procfs.parse_stat("42 (node) S 1 42")


def test_parse_limits_reads_soft_hard_and_unlimited():
    text = ("Limit                     Soft Limit           Hard Limit           Units     \n"
            "Max cpu time              unlimited            unlimited            seconds   \n"
            "Max open files            1024                 524288               files     \n")
    limits = procfs.parse_limits(text)
    assert limits["Max open files"] == (1024, 524288)
    assert limits["Max cpu time"] == (None, None)


def test_mountinfo_unescapes_and_real_mounts_skip_pseudo_and_bind_duplicates(fake_proc):
    fake_proc.mount(1, "8:1", "/", "ext4")
    fake_proc.mount(2, "0:5", "/proc", "proc", "proc")
    fake_proc.mount(3, "8:1", "/srv/bind\\040dir", "ext4")  # a bind mount of the same device
    fake_proc.mount(4, "8:2", "/var/lib/postgresql", "xfs", "/dev/vdb")
    fake_proc.mount(5, "7:0", "/snap/core/1", "squashfs", "/dev/loop0")
    mounts = procfs.ProcFS(fake_proc.root).mountinfo()
    assert "/srv/bind dir" in [m["mount_point"] for m in mounts]
    real = procfs.real_mounts(mounts)
    assert [(m["mount_point"], m["fstype"]) for m in real] == [("/", "ext4"), ("/var/lib/postgresql", "xfs")]
    assert [m["mount_point"] for m in procfs.real_mounts(mounts, exclude_fstypes=["xfs"])] == ["/"]


def test_real_proc_reads_this_process():
    proc = procfs.ProcFS()
    me = os.getpid()
    assert me in proc.pids()
    stat = proc.stat(me)
    assert stat["ppid"] == os.getppid()
    assert stat["state"] in "RS"
    assert proc.fd_count(me) >= 3
    soft, _hard = proc.limits(me)["Max open files"]
    assert soft is None or soft >= proc.fd_count(me)
    assert not procfs.is_kernel_thread(stat)
    assert procfs.is_kernel_thread(proc.stat(2))  # kthreadd
