"""The node family on synthetic input: version rules, flags, EOL, heap model, /proc/PID/status, and collect() over a
synthetic /proc tree whose /proc/PID/exe links point at stand-in executables (recorded `node --version` output)."""
import datetime
import json
import os
import pathlib
import shutil
import stat
import tempfile
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import node_runtime as nr
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import rules_node
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import node as node_family
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

TODAY = datetime.date(2026, 11, 27)


# ------------------------------------------------------------------ pure parts
@pytest.mark.parametrize("text, version", [("v20.20.2\n", (20, 20, 2)), ("v16.20.2", (16, 20, 2)), ("v22.0.0-nightly2024", (22, 0, 0))])
def test_parse_version(text, version):
    assert nr.parse_version(text) == version


@pytest.mark.parametrize("text", ["", "ls (GNU coreutils) 9.1", "20.1.0", "1.0.33 (Claude Code)"])
def test_parse_version_refuses_what_is_not_node(text):
    with pytest.raises(ValueError):
        nr.parse_version(text)


@pytest.mark.parametrize("argv, options", [
    (["node", "--no-experimental-fetch", "app.js", "--max-old-space-size=99"], ["--no-experimental-fetch"]),
    (["node", "-r", "dotenv/config", "--max-old-space-size", "512", "server.js"], ["-r", "dotenv/config", "--max-old-space-size", "512"]),
    (["node", "-e", "code()", "--no-warnings"], ["-e", "code()", "--no-warnings"]),
    (["node", "--", "--not-an-option.js"], []),
    (["npm start"], []),
    (["/usr/bin/node", "/usr/local/bin/claude", "--print"], []),
])
def test_node_options_stop_at_the_script(argv, options):
    assert nr.node_options(argv) == options


@pytest.mark.parametrize("version, argv, node_options, fetch, websocket", [
    ((16, 20, 2), ["node", "app.js"], "", False, False),
    ((16, 20, 2), ["node", "--experimental-fetch", "app.js"], "", True, False),
    ((16, 14, 0), ["node", "--experimental-fetch", "app.js"], "", False, False),
    ((17, 9, 1), ["node", "app.js"], "--experimental-fetch", True, False),
    ((18, 0, 0), ["node", "app.js"], "", True, False),
    ((20, 20, 2), ["node", "--no-experimental-fetch", "app.js"], "", False, False),
    ((20, 20, 2), ["node", "app.js"], "--no_experimental_fetch", False, False),
    ((20, 20, 2), ["node", "--experimental-fetch", "app.js"], "--no-experimental-fetch", True, False),  # command line wins
    ((20, 10, 0), ["node", "--experimental-websocket", "app.js"], "", True, True),
    ((20, 9, 0), ["node", "--experimental-websocket", "app.js"], "", True, False),
    ((22, 0, 0), ["node", "app.js"], "", True, True),
    ((22, 4, 0), ["node", "app.js"], "--no-experimental-websocket", True, False),
    ((20, 20, 2), ["node", "app.js", "--no-experimental-fetch"], "", True, False),  # a script argument, not a node option
])
def test_features_by_version_and_flags(version, argv, node_options, fetch, websocket):
    found = nr.features(version, nr.flag_set(argv, node_options))
    assert (found["fetch"]["available"], found["websocket"]["available"]) == (fetch, websocket), found


def test_heap_flag_from_the_command_line_first_then_node_options():
    assert nr.heap_flag_mb(["node", "--max-old-space-size=2048", "a.js"], "--max-old-space-size=512", procfs.node_heap_limit_mb) == (
        2048, "--max-old-space-size on the command line")
    assert nr.heap_flag_mb(["node", "a.js"], "--max_old_space_size=512", procfs.node_heap_limit_mb) == (
        512, "--max-old-space-size in NODE_OPTIONS")
    assert nr.heap_flag_mb(["node", "a.js", "--max-old-space-size=9"], "", procfs.node_heap_limit_mb) == (None, None)


@pytest.mark.parametrize("version, memory_mb, heap_mb", [
    ((10, 24, 1), 256, 1400), ((20, 20, 2), 128, 256), ((20, 20, 2), 1024, 512), ((20, 20, 2), 4096, 2048),
    ((20, 20, 2), 8192, 2048), ((20, 20, 2), 24105, 4096), ((16, 20, 2), 24105, 4096), ((12, 22, 0), 32768, 2048),
])
def test_default_heap_model(version, memory_mb, heap_mb):
    """Measured here (heap_size_limit less the young generation) with Node 20.20.2 under memory cgroups of 128 MB to
    20 GB and Node 16.20.2 on 24 GB; before Node 12 V8's fixed 1400 MB."""
    assert nr.default_heap_mb(version, memory_mb) == heap_mb


@pytest.mark.parametrize("version, cgroup_version, in_container, reads", [
    ((20, 3, 0), 2, None, True), ((20, 2, 0), 2, "/docker/abc", False), ((18, 19, 0), 1, "/docker/abcdef123456", True),
    ((18, 19, 0), 1, None, False), ((16, 20, 2), 2, "/kubepods/x", False), ((10, 0, 0), 1, "/docker/abc", False),
])
def test_which_node_reads_the_cgroup_limit(version, cgroup_version, in_container, reads):
    assert nr.reads_cgroup_limit(version, cgroup_version, in_container) is reads


def test_status_fields_and_sigterm_recorded_from_real_node_processes():
    """SigCgt 0000000100004602 was read from real Node 20 processes, with and without process.on('SIGTERM'): the same."""
    status = nr.parse_status("Name:\tnode\nNSpid:\t15881\t1\nSigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\n"
                             "SigCgt:\t0000000100004602\n")
    assert status["nspid"] == [15881, 1]
    assert nr.signal_in_mask(status["sigcgt"], nr.SIGTERM) and not nr.signal_in_mask(status["sigign"], nr.SIGTERM)
    assert nr.sigterm_handling(status, node=True).startswith("caught by Node's own handler")
    assert nr.sigterm_handling(dict(status, sigcgt=0), node=False) == "default"
    assert nr.sigterm_handling(dict(status, sigign=1 << 14), node=False) == "ignored"


def test_eol_table_is_dated_and_graded():
    assert rules_node.NODE_EOL_AS_OF and rules_node.NODE_EOL[16] == "2023-09-11" and rules_node.NODE_EOL[20] == "2026-04-30"
    assert node_family.eol_status((16, 20, 2), TODAY)["status"] == "end-of-life"
    assert node_family.eol_status((24, 1, 0), TODAY) == {"major": 24, "eol_date": "2028-04-30", "days_past_eol": -520,
                                                         "days_to_eol": 520, "status": "supported"}
    assert node_family.eol_status((99, 0, 0), TODAY)["status"] == "not in the table"
    assert fm.grade("node.eol", node_family.eol_status((16, 20, 2), TODAY)["days_past_eol"]) == "high"
    assert fm.grade("node.eol", node_family.eol_status((20, 20, 2), datetime.date(2026, 5, 1))["days_past_eol"]) == "medium"
    assert fm.grade("node.eol_soon", 30) == "low" and fm.grade("node.eol_soon", 200) is None
    assert node_family.supported_lines(TODAY) == "22 (to 2027-04-30), 24 (to 2028-04-30), 26 (to 2029-04-30)"


# ------------------------------------------------------------------ synthetic /proc
def executable(path, text):
    with open(str(path), "w") as handle:
        handle.write(text)
    os.chmod(str(path), stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return str(path)


class Tree(object):
    """A FakeProc with what the node family reads: exe links, environ, status and cgroup, plus a cgroup tree."""

    def __init__(self, fake_proc, tmp_path):
        self.fake = fake_proc
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.cgroup_root = tmp_path / "cgroup"
        self.cgroup_root.mkdir()
        self.tmp = tmp_path

    def binary(self, name, output, rc=0, sleep=0):
        """A stand-in executable that answers --version with ``output`` (a recorded `node --version`)."""
        directory = self.bin / ("%s-%d" % (name, len(os.listdir(str(self.bin)))))
        directory.mkdir()
        return executable(directory / name, "#!/bin/sh\n%secho '%s'\nexit %d\n" % ("sleep %s\n" % sleep if sleep else "", output, rc))

    def process(self, pid, exe, argv, comm="node", environ=None, nspid=None, sigcgt="0000000100004602", sigign="0000000001001000",
                cgroup="0::/\n", state="S", ppid=1):
        self.fake.process(pid, comm=comm, argv=argv, state=state, ppid=ppid)
        base = os.path.join(self.fake.root, str(pid))
        if exe:
            os.symlink(exe, os.path.join(base, "exe"))
        self.fake.write(os.path.join(str(pid), "environ"), "".join("%s=%s\0" % item for item in (environ or {}).items()))
        self.fake.write(os.path.join(str(pid), "status"), "Name:\t%s\nNSpid:\t%s\nSigBlk:\t0000000000000000\nSigIgn:\t%s\nSigCgt:\t%s\n"
                        % (comm, "\t".join(str(n) for n in (nspid or [pid])), sigign, sigcgt))
        self.fake.write(os.path.join(str(pid), "cgroup"), cgroup)

    def cgroup_v2(self, path, max_bytes):
        """A cgroup v2 directory (synthetic: this machine's unified hierarchy has no memory controller)."""
        open(str(self.cgroup_root / "cgroup.controllers"), "w").write("memory pids\n")
        directory = self.cgroup_root / path.strip("/")
        directory.mkdir(parents=True, exist_ok=True)
        for name, value in (("memory.current", "104857600"), ("memory.max", str(max_bytes)), ("memory.events", "oom 0\noom_kill 0\n")):
            open(str(directory / name), "w").write(value + "\n")

    def collect(self, **options):
        params = dict(patterns=["node", "claude", "npx", "npm"], proc_root=self.fake.root, cgroup_root=str(self.cgroup_root),
                      version_timeout=2.0, thresholds={}, redaction_key="k")
        params.update(options)
        return collectors.BY_NAME["node"].collect(None, params)


@pytest.fixture
def tree(fake_proc, tmp_path):
    return Tree(fake_proc, tmp_path)


def by_id(result, pid=None):
    return dict((f["id"], f) for f in result["findings"] if pid is None or f["evidence"].get("pid") == pid)


def assert_templates_filled(result):
    """Every evidence key a template of the rule uses is present, so nothing prints a {placeholder}."""
    for finding in result["findings"]:
        rule = RULES[finding["id"]]
        for template in (rule["symptom"], rule["diagnosis"]):
            missing = [name for name in fm.template_fields(template) if name not in finding["evidence"]]
            assert not missing, (finding["id"], missing)
        assert finding["fix"]["command"] and "{" not in finding["fix"]["command"].replace("{print", ""), finding


def test_recorded_version_v16_20_2_gives_no_fetch_and_end_of_life(tree):
    """`node --version` of a real Node 16 prints v16.20.2 (recorded); the stand-in prints that line."""
    old = tree.binary("node", "v16.20.2")
    tree.process(4100, old, ["node", "/srv/agent/server.js"])
    result = tree.collect()
    found = by_id(result, 4100)
    assert found["node.fetch_unavailable"]["severity"] == "medium"
    assert found["node.fetch_unavailable"]["evidence"]["version"] == "v16.20.2"
    assert found["node.fetch_unavailable"]["evidence"]["exe"] == old
    assert "older than 18.0.0" in found["node.fetch_unavailable"]["symptom"]
    assert found["node.eol"]["severity"] == "high" and found["node.eol"]["evidence"]["eol_date"] == "2023-09-11"
    assert found["node.websocket_unavailable"]["severity"] == "info"
    entry = result["facts"]["node_processes"][0]
    assert entry["read"][:3] == ["/proc/4100/cmdline", "/proc/4100/exe (--version as %s)" % ("nobody" if os.geteuid() == 0 else "uid %d" % os.geteuid()),
                                 "/proc/4100/environ (NODE_OPTIONS only)"]
    assert result["incomplete"] == []
    assert_templates_filled(result)


def test_version_runs_once_per_binary(tree):
    shared = tempfile.mkdtemp(prefix="agentops-node-")  # the stand-in runs as nobody: a directory it can write to
    os.chmod(shared, 0o777)
    counter = pathlib.Path(shared) / "runs"
    binary = executable(tree.bin / "node", "#!/bin/sh\necho run >> %s\necho v24.11.1\n" % counter)
    for pid in (4200, 4201, 4202):
        tree.process(pid, binary, ["node", "worker.js"])
    result = tree.collect()
    assert counter.read_text().count("run") == 1
    shutil.rmtree(shared)
    assert [b["pids"] for b in result["facts"]["binaries"]] == [[4200, 4201, 4202]]
    assert [e["version"] for e in result["facts"]["node_processes"]] == ["v24.11.1"] * 3
    assert not [f for f in result["findings"] if f["id"] in ("node.eol", "node.fetch_unavailable")]


def test_a_version_that_fails_or_hangs_is_incomplete_for_that_binary_only(tree):
    broken = tree.binary("node", "Segmentation fault", rc=139)
    hung = tree.binary("node", "v20.1.0", sleep=5)
    good = tree.binary("node", "v22.12.0")
    tree.process(4301, broken, ["node", "a.js"])
    tree.process(4302, broken, ["node", "b.js"])
    tree.process(4303, hung, ["node", "c.js"])
    tree.process(4304, good, ["node", "d.js"])
    began = time.monotonic()
    result = tree.collect(version_timeout=0.5)
    assert time.monotonic() - began < 4
    unknown = [f for f in result["findings"] if f["id"] == "node.check_incomplete"]
    assert sorted(f["evidence"]["pid"] for f in unknown) == [4301, 4303]  # one per binary, not per process
    errors = sorted(i["error"] for i in result["incomplete"])
    assert errors[0].startswith("--version did not answer within 0.5 s") and errors[1].startswith("--version exited 139")
    versions = dict((e["pid"], e["version"]) for e in result["facts"]["node_processes"])
    assert versions == {4301: None, 4302: None, 4303: None, 4304: "v22.12.0"}
    assert all(f["severity"] == "unknown" for f in unknown)
    assert_templates_filled(result)


def test_a_native_agent_binary_is_never_run(tree, tmp_path):
    marker = tmp_path / "ran"
    claude = executable(tree.bin / "claude", "#!/bin/sh\ntouch %s\necho '2.0.1 (Claude Code)'\n" % marker)
    tree.process(4400, claude, ["claude", "--print"], comm="claude")
    result = tree.collect()
    assert not marker.exists()
    assert result["facts"]["other_processes"][0]["exe"] == claude and result["facts"]["node_processes"] == []
    assert result["findings"] == []


def test_fetch_turned_off_in_node_options_and_the_environment_is_never_returned(tree):
    binary = tree.binary("node", "v20.20.2")
    tree.process(4500, binary, ["node", "--api-key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "server.js"],
                 environ={"NODE_OPTIONS": "--no-experimental-fetch --max-old-space-size=300",
                          "ANTHROPIC_API_KEY": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789", "HOME": "/home/agent"})
    result = tree.collect()
    found = by_id(result, 4500)["node.fetch_unavailable"]
    assert found["evidence"]["why"] == "turned off by --no-experimental-fetch (NODE_OPTIONS)"
    text = json.dumps(result)
    assert "sk-ant-api03" not in text and "ANTHROPIC_API_KEY" not in text and "/home/agent" not in text
    assert "sk_live_4eC39HqLyjWDarjtT1zdp7dc" not in text
    assert result["facts"]["node_processes"][0]["heap"]["flag_mb"] == 300


def test_deleted_binary_synthetic_link(tree):
    """The kernel shows a replaced binary as '<path> (deleted)'; here a file named so stands in for the running copy."""
    running = executable(tree.bin / "node (deleted)", "#!/bin/sh\necho v18.20.4\n")
    tree.process(4600, running, ["node", "app.js"])
    result = tree.collect()
    found = by_id(result, 4600)["node.binary_replaced"]
    assert found["severity"] == "medium" and found["evidence"]["version"] == "v18.20.4"
    assert found["evidence"]["on_disk"] == "no file at that path"
    assert found["evidence"]["exe"] == running


def test_heap_flag_over_a_parent_cgroup_limit_synthetic_cgroup_v2(tree):
    """Synthetic cgroup v2 tree: the pod's limit (256 MB) is below the container's (1 GB) and below the 512 MB heap."""
    tree.cgroup_v2("/kubepods/pod1", 256 * 1024 * 1024)
    tree.cgroup_v2("/kubepods/pod1/cri-containerd-0123456789abcdef", 1024 * 1024 * 1024)
    binary = tree.binary("node", "v22.12.0")
    tree.process(4700, binary, ["node", "--max-old-space-size=512", "server.js"], cgroup="0::/kubepods/pod1/cri-containerd-0123456789abcdef\n")
    result = tree.collect()
    found = by_id(result, 4700)["node.heap_over_cgroup_limit"]
    assert found["severity"] == "high"
    evidence = found["evidence"]
    assert (evidence["heap_limit_mb"], evidence["cgroup"], evidence["cgroup_limit_mb"], evidence["heap_percent"]) == (
        512, "/kubepods/pod1", 256, 200.0)
    assert evidence["heap_source"] == "--max-old-space-size on the command line"
    assert_templates_filled(result)


@pytest.mark.parametrize("version, limit_mb, host_kb, expected", [
    ("v16.20.2", 512, 24 * 1024 * 1024, "high"),   # Node 16 does not read cgroup v2: sizes from the host's 24 GB
    ("v22.12.0", 512, 24 * 1024 * 1024, None),     # Node 22 reads it: 256 MB of 512 MB
    ("v22.12.0", 256, 24 * 1024 * 1024, "high"),   # ... but never less than 256 MB
])
def test_default_heap_against_a_synthetic_cgroup_v2_limit(tree, version, limit_mb, host_kb, expected):
    tree.fake.meminfo(total_kb=host_kb, available_kb=host_kb // 2)
    tree.cgroup_v2("/system.slice/agent.service", limit_mb * 1024 * 1024)
    tree.process(4800, tree.binary("node", version), ["node", "server.js"], cgroup="0::/system.slice/agent.service\n")
    found = by_id(tree.collect(), 4800).get("node.heap_over_cgroup_limit")
    assert (found["severity"] if found else None) == expected
    if found:
        assert found["evidence"]["heap_source"].startswith("V8's default for Node %s" % version)


def test_pid1_without_a_handler_and_its_zombies_synthetic_status(tree):
    """A native agent (not Node) at PID 1 of its namespace with no SIGTERM handler: certain to drop SIGTERM."""
    agent = executable(tree.bin / "claude", "#!/bin/sh\nexit 0\n")
    tree.process(4900, agent, ["claude"], comm="claude", nspid=[4900, 1], sigcgt="0000000000000000")
    for pid in (4901, 4902, 4903):
        tree.process(pid, None, [], comm="sh", state="Z", ppid=4900)
    result = tree.collect()
    found = by_id(result, 4900)
    assert found["node.pid1_without_init"]["severity"] == "high"
    assert found["node.pid1_without_init"]["evidence"]["sigterm"] == "default"
    assert found["node.pid1_without_init"]["evidence"]["nspid"] == "4900 1"
    assert found["node.pid1_zombies"]["evidence"]["count"] == 3 and found["node.pid1_zombies"]["severity"] == "low"
    assert found["node.pid1_zombies"]["evidence"]["zombie_pids"] == "4901,4902,4903"
    assert_templates_filled(result)


def test_an_unreadable_exe_is_incomplete_not_healthy(tree):
    tree.process(5000, None, ["node", "app.js"])  # no exe link: as if /proc/PID/exe could not be read
    os.symlink("/nonexistent-%d/node" % os.getpid(), os.path.join(tree.fake.root, "5000", "exe"))
    result = tree.collect()
    assert [f["id"] for f in result["findings"]] == ["node.check_incomplete"]
    assert result["incomplete"][0]["check"] == "the binary of pid 5000 (/nonexistent-%d/node)" % os.getpid()
    assert result["findings"][0]["fix"]["command"] == "ls -l /proc/5000/exe"


@pytest.mark.parametrize("options, sentence", [
    ({"version_timeout": 0}, "version_timeout must be between 0.1 and 60 seconds, got 0."),
    ({"patterns": []}, "patterns must name at least one process pattern."),
    ({"patterns": ["("]}, "patterns entry '(' is not a valid regular expression"),
    ({"proc_root": "/nonexistent-proc"}, "proc_root /nonexistent-proc is not a directory."),
])
def test_bad_options_are_one_sentence(tree, options, sentence):
    with pytest.raises(ValueError) as raised:
        tree.collect(**options)
    assert str(raised.value).startswith(sentence)


def test_family_registry_attributes():
    family = collectors.BY_NAME["node"]
    assert family.enable == "add node to agentops_checks" and family.redacts and family.enabled_by is None
    assert family.variables["patterns"][0] == "process_patterns" and family.variables["version_timeout"][0] == "node_version_timeout"
    assert family.ranges == {"version_timeout": (0.1, 60)}
    suffixes = dict((v["suffix"], v) for v in collectors.role_variables())
    assert "node" in suffixes["process_patterns"]["families"] and suffixes["node_version_timeout"]["range"] == (0.1, 60)
    for rule_id, rule in RULES.items():
        if rule["category"] == "node":
            assert rule["fix"]["summary"] and "{" not in rule["fix"]["summary"], rule_id
