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
    # kthreadd where it is visible (not inside a PID namespace, where PID 2 is an ordinary process)
    for pid in [p for p in proc.pids() if proc.stat(p)["comm"] == "kthreadd"]:
        assert procfs.is_kernel_thread(proc.stat(pid))


def test_pid_2_and_its_children_are_ordinary_processes_in_a_pid_namespace(fake_proc):
    """In a container PID 2 is often the agent itself: only PF_KTHREAD marks a kernel thread."""
    fake_proc.process(1, comm="tini", ppid=0, argv=["tini", "--", "node"])
    fake_proc.process(2, comm="node", ppid=1, argv=["node", "server.js"])
    fake_proc.process(3, comm="claude", ppid=2, argv=["claude"])
    fake_proc.process(4, comm="kworker/0:1", ppid=0, argv=[], flags=procfs.PF_KTHREAD)
    seen = sorted(pid for pid, _stat, _uid, _argv in procfs.ProcFS(fake_proc.root).processes())
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("comm, argv, pattern, expected", [
    ("node", ["node", "/usr/bin/npx", "claude"], "npx", True),  # the script an interpreter runs
    ("node", ["/usr/bin/node", "--max-old-space-size=4096", "/srv/agent/server.js"], "server.js", True),
    ("tail", ["tail", "-f", "/var/log/app/node"], "node", False),  # an argument, not the program
    ("less", ["less", "/srv/claude"], "claude", False),
    ("grep", ["grep", "node", "/etc/passwd"], "node", False),
    ("node", ["node", "-e", "claude"], "claude", False),  # inline code names no script
    ("bash", ["bash", "-c", "node"], "node", False),
    ("env", ["/usr/bin/env", "NODE_ENV=production", "node", "app.js"], "node", True),
    ("claude", ["claude", "--print", "node"], "node", False),  # claude is not an interpreter
    ("python3", ["python3", "/opt/tools/claude"], "claude", True),
    ("MainThread", ["claude"], "claude", True),  # argv[0]
    ("claude", [], "claude", True),  # comm
    ("node /srv/app.j", ["node /srv/app.js"], "node", True),  # retitled by pm2's fork mode (process.title)
    ("node /srv/app.j", ["node /srv/app.js"], "app.js", True),
    ("tail -f /var/lo", ["tail -f /var/log/node"], "node", False),  # still never an ordinary argument
])
def test_patterns_match_the_program_never_an_ordinary_argument(comm, argv, pattern, expected):
    assert procfs.is_agent(procfs.compile_patterns([pattern]), comm, argv) is expected


@pytest.mark.parametrize("cgroup, unit, container", [
    ("9:name=systemd:/system.slice/agent.service\n0::/\n", "agent.service", None),
    ("0::/system.slice/agent-worker.service\n", "agent-worker.service", None),
    ("0::/system.slice/run-r1234.scope\n", "run-r1234.scope", None),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/agent.service\n", "agent.service", None),
    ("0::/user.slice/user-1000.slice/session-3.scope\n", None, None),  # a login session: can hold real orphans
    ("9:name=systemd:/init.scope\n", None, None),
    ("9:name=systemd:/\n0::/\n", None, None),
    ("12:memory:/docker/0123456789abcdef\n0::/\n", None, "/docker/0123456789abcdef"),
    ("0::/docker/0123456789abcdef/system.slice/agent.service\n", "agent.service", "/docker/0123456789abcdef"),
    ("0::/system.slice/docker-0123456789abcdef.scope\n", "docker-0123456789abcdef.scope", "/system.slice/docker-0123456789abcdef.scope"),
    ("0::/machine.slice/libpod-0123456789abcdef.scope/container\n", "libpod-0123456789abcdef.scope",
     "/machine.slice/libpod-0123456789abcdef.scope"),
    ("0::/kubepods/burstable/pod1234/0123456789abcdef\n", None, "/kubepods/burstable/pod1234/0123456789abcdef"),
    ("0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-0123456789abcdef.scope\n", "cri-containerd-0123456789abcdef.scope",
     "/kubepods.slice/kubepods-burstable.slice/cri-containerd-0123456789abcdef.scope"),
    ("4:memory:/process_api/0e61\n0::/\n", None, None),
])
def test_systemd_unit_and_container_from_the_cgroup_file(cgroup, unit, container):
    paths = procfs.parse_cgroup(cgroup)
    assert procfs.systemd_unit(paths) == unit
    assert procfs.container_of(paths) == container


def _cgroup(fake_proc, pid, text, namespace=None):
    fake_proc.write("%d/cgroup" % pid, text)
    if namespace:
        os.makedirs(os.path.join(fake_proc.root, str(pid), "ns"), exist_ok=True)
        os.symlink(namespace, os.path.join(fake_proc.root, str(pid), "ns", "pid"))


OURS = "0::/docker/%s\n" % ("a" * 64)
OURS_UNIT = "0::/docker/%s/system.slice/agent.service\n" % ("a" * 64)
OTHER = "0::/docker/%s\n" % ("b" * 64)


def test_supervision_compares_with_the_readers_own_namespace_and_container(fake_proc):
    _cgroup(fake_proc, 42, OURS, "pid:[1]")  # the diagnosis itself runs in container aaaa
    for pid, comm, argv, cgroup, namespace in (
            (100, "node", ["node"], OURS, "pid:[1]"),  # same container, same namespace: judged normally
            (101, "node", ["node"], OTHER, "pid:[1]"),  # another container
            (102, "node", ["node"], OURS, "pid:[2]"),  # another PID namespace
            (103, "node", ["node"], OURS_UNIT, "pid:[1]"),
            (104, "PM2 v5.3.0: God", ["PM2 v5.3.0: God Daemon (/root/.pm2)"], OURS, "pid:[1]"),
            (105, "node", ["node", "/usr/lib/node_modules/pm2/lib/Daemon.js"], OURS, "pid:[1]")):
        fake_proc.process(pid, comm=comm, argv=argv)
        _cgroup(fake_proc, pid, cgroup, namespace)
    fake_proc.process(106, comm="node", argv=["node"])  # no cgroup file readable: nothing known owns it
    supervision = procfs.Supervision(procfs.ProcFS(fake_proc.root), own_pid=42)
    owners = dict((pid, supervision.owner(pid, procfs.ProcFS(fake_proc.root).stat(pid)["comm"],
                                          procfs.ProcFS(fake_proc.root).cmdline(pid))) for pid in range(100, 107))
    assert owners[100] is None
    assert owners[101] == ("container", "/docker/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    assert owners[102] == ("container", "PID namespace pid:[2]")
    assert owners[103] == ("systemd", "agent.service")
    assert owners[104][0] == "supervisor" and owners[105] == ("supervisor", "pm2")
    assert owners[106] is None
