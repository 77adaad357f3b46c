"""The spawn family on real things: real Node 20 processes with a narrowed PATH and cwd, real files, a real noexec
tmpfs in a private mount namespace, a real non-root uid, a real user namespace. Each finding is checked against what
Node itself does when it spawns the same command with the same environment, cwd and credentials, and its fix command
runs as printed.

Run in a PID namespace of its own (scripts/pidns.py --unshare); every agent process has a per-test unique argv[0] and
the family is given only that pattern, so nothing else on the machine is looked at.
"""
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import tempfile
import time
import uuid

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import spawn_exec as sx

from helpers import run_fix_commands, run_module

NODE = "/usr/bin/node"
IDLE = "setInterval(() => {}, 1000)"
NOBODY = 65534
# Spawns what the agent would, with the agent's environment, cwd and credentials, and says what Node saw.
SPAWN_JS = (
    "const o = JSON.parse(process.argv[1]);"
    "const opts = o.uid === undefined ? {} : {uid: o.uid};"
    "const r = require('child_process').spawnSync(o.cmd, o.prompt ? ['x'.repeat(o.prompt)] : [], opts);"
    "console.log(JSON.stringify({code: r.error ? r.error.code : null, status: r.status, stderr: String(r.stderr || '')}));"
)

pytestmark = pytest.mark.skipif(not os.path.exists(NODE) or os.geteuid() != 0, reason="needs root and Node at /usr/bin/node")


class Agents(object):
    """Real node processes a test starts (argv[0] = a unique name) and the fixture ends."""

    def __init__(self):
        self.procs = []

    def start(self, path, cwd, setup="", wrap=(), user=False, env=None, args=()):
        name = "spawn-agent-%s" % uuid.uuid4().hex[:10]
        environment = dict(env or {}, PATH=path)
        script = "set -e; %s exec -a \"$0\" %s -e \"$1\" -- \"${@:2}\"" % (setup, NODE)
        argv = list(wrap) + (["/usr/bin/setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"] if user else [])
        argv += ["/bin/bash", "-c", script, name, IDLE] + list(args)
        proc = subprocess.Popen(argv, env=environment, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        self.procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
                    if handle.read().split(b"\0")[0] == name.encode() and os.readlink("/proc/%d/exe" % proc.pid) == NODE:
                        return {"pid": proc.pid, "name": name, "env": environment, "cwd": str(cwd), "wrap": list(wrap), "user": user}
            except OSError:
                pass
            if proc.poll() is not None:
                raise AssertionError("agent did not start: %s" % proc.stderr.read().decode())
            time.sleep(0.05)
        raise AssertionError("agent %s did not exec node in time" % name)

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            proc.stderr.close()


@pytest.fixture
def agents():
    made = Agents()
    yield made
    made.stop()


@pytest.fixture
def world():
    """A directory every user can search (tmp_path's parents are 0700 root, which a non-root agent cannot pass)."""
    base = tempfile.mkdtemp(prefix="agentops-spawn-")
    os.chmod(base, 0o755)
    yield base
    subprocess.run(["umount", "-R", "-q", base], capture_output=True, check=False)
    shutil.rmtree(base, ignore_errors=True)


def node_spawn(agent, command, prompt=0, uid=None, enter=()):
    """What Node does when it spawns ``command`` as ``agent`` would (same env, cwd, uid; ``enter`` = nsenter args)."""
    options = {"cmd": command, "prompt": prompt}
    if uid is not None:
        options["uid"] = uid
    argv = list(enter) + (["/usr/bin/setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
                          if agent["user"] else []) + [NODE, "-e", SPAWN_JS, json.dumps(options)]
    run = subprocess.run(argv, env=agent["env"], cwd=agent["cwd"], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def diagnose(started, commands, **options):
    family = collectors.BY_NAME["spawn"]
    params = collectors.validated(family, dict(options, patterns=[re.escape(a["name"]) for a in started], commands=commands))
    return collectors.collect_one(family, None, params)


def only(result, rule_id):
    found = [f for f in result["findings"] if f["id"] == rule_id]
    assert len(found) == 1, json.dumps(result["findings"], indent=1)
    return found[0]


def fixes_run(result):
    assert run_fix_commands({"hosts": {"localhost": {"findings": result["findings"]}}}) == []


def write(path, content, mode):
    with open(path, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


def bindir(world, name="bin"):
    path = os.path.join(world, name)
    os.makedirs(path)
    os.chmod(path, 0o755)
    return path


# ------------------------------------------------------------------ ENOENT
def test_a_command_missing_from_a_narrowed_path_is_one_finding_for_every_process_on_that_path(agents, world):
    bin_ = bindir(world)
    path = "%s:/usr/bin:/bin" % bin_
    first = agents.start(path, world)
    second = agents.start(path, world)
    missing = "claude-%s" % uuid.uuid4().hex[:6]
    result = diagnose([first, second], [missing, "node", "sh"])
    assert node_spawn(first, missing)["code"] == "ENOENT"
    finding = only(result, "spawn.command_not_found")
    evidence = finding["evidence"]
    assert finding["severity"] == "medium" and evidence["count"] == 2
    assert evidence["pids"] == "%d,%d" % (first["pid"], second["pid"]) or evidence["pids"] == "%d,%d" % (second["pid"], first["pid"])
    assert evidence["path"] == path and evidence["searched"] == [bin_, "/usr/bin", "/bin"]
    assert evidence["error"] == "spawn %s ENOENT" % missing and path in finding["symptom"]
    facts = dict((a["pid"], a) for a in result["facts"]["agents"])
    assert facts[first["pid"]]["commands"]["node"] == NODE and facts[first["pid"]]["path"] == path
    assert all(set(a) >= {"env_bytes", "env_count"} and "env" not in a for a in result["facts"]["agents"])
    assert result["incomplete"] == []
    fixes_run(result)


def test_the_process_own_path_decides_not_the_diagnosing_user_path(agents, world):
    """A process started without PATH searches /usr/bin:/bin, whatever PATH the diagnosis runs with."""
    tools = bindir(world, "tools")
    write(os.path.join(tools, "agentcli"), b"#!/bin/sh\necho ok\n", 0o755)
    narrowed = agents.start(tools, world)
    result = diagnose([narrowed], ["agentcli", "git"])
    assert node_spawn(narrowed, "agentcli")["status"] == 0 and node_spawn(narrowed, "git")["code"] == "ENOENT"
    assert [a["commands"]["agentcli"] for a in result["facts"]["agents"]] == [os.path.join(tools, "agentcli")]
    finding = only(result, "spawn.command_not_found")
    assert finding["evidence"]["command"] == "git" and finding["evidence"]["path"] == tools


@pytest.mark.parametrize("shebang, error", [
    (b"#!/usr/bin/env node\r\n", {"code": None, "status": 127}),  # env runs, looks for 'node\r'
    (b"#!/usr/bin/node\r\n", {"code": "ENOENT", "status": None}),  # the kernel looks for '/usr/bin/node\r'
])
def test_a_crlf_shebang_is_found_with_its_carriage_return(agents, world, shebang, error):
    bin_ = bindir(world)
    tool = write(os.path.join(bin_, "agentcli"), shebang + b"console.log('hi')\r\n", 0o755)
    agent = agents.start("%s:/usr/bin:/bin" % bin_, world)
    real = node_spawn(agent, "agentcli")
    assert {"code": real["code"], "status": real["status"]} == error
    result = diagnose([agent], ["agentcli", "node"])
    finding = only(result, "spawn.shebang_crlf")
    evidence = finding["evidence"]
    assert finding["severity"] == "high" and evidence["command_path"] == tool
    assert evidence["shebang"] == shebang.decode().rstrip("\n").replace("\r", "\\r")
    assert "carriage return" in evidence["reason"]
    fixes_run(result)
    shown = subprocess.run(["sh", "-c", finding["fix"]["command"]], capture_output=True, text=True, check=True).stdout
    assert "\\r" in shown  # od -c shows the carriage return


def test_a_missing_shebang_interpreter_and_a_missing_elf_loader_are_enoent_with_the_reason(agents, world):
    bin_ = bindir(world)
    write(os.path.join(bin_, "pytool"), b"#!/opt/agentops-nowhere/bin/python9\nprint(1)\n", 0o755)
    loader = b"/lib/ld-musl-x86_64.so.1\0"
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    program_header = struct.pack("<IIQQQQQQ", 3, 4, 120, 0, 0, len(loader), len(loader), 1)
    write(os.path.join(bin_, "muslcli"), header + program_header + loader, 0o755)
    agent = agents.start("%s:/usr/bin:/bin" % bin_, world)
    assert node_spawn(agent, "pytool")["code"] == "ENOENT" and node_spawn(agent, "muslcli")["code"] == "ENOENT"
    result = diagnose([agent], ["pytool", "muslcli"])
    found = dict((f["evidence"]["command"], f) for f in result["findings"] if f["id"] == "spawn.interpreter_missing")
    assert found["pytool"]["evidence"]["interpreter"] == "/opt/agentops-nowhere/bin/python9"
    assert found["muslcli"]["evidence"]["interpreter"] == "/lib/ld-musl-x86_64.so.1"
    assert "dynamic loader" in found["muslcli"]["evidence"]["reason"]
    assert found["pytool"]["evidence"]["error"] == "spawn pytool ENOENT"
    fixes_run(result)


# ------------------------------------------------------------------ EACCES
def test_a_script_without_the_execute_bit_is_eacces_with_its_path_and_mode(agents, world):
    bin_ = bindir(world)
    tool = write(os.path.join(bin_, "agentcli"), b"#!/bin/sh\necho ok\n", 0o644)
    agent = agents.start("%s:/usr/bin:/bin" % bin_, world)
    assert node_spawn(agent, "agentcli")["code"] == "EACCES"
    result = diagnose([agent], ["agentcli"])
    finding = only(result, "spawn.not_executable")
    evidence = finding["evidence"]
    assert evidence["command_path"] == tool and evidence["mode"] == "0644" and evidence["error"] == "spawn agentcli EACCES"
    assert "not executable for uid 0" in evidence["reason"]
    fixes_run(result)


def test_a_non_root_agent_cannot_pass_a_0700_directory_where_root_can(agents, world):
    private = os.path.join(world, "private")
    os.makedirs(private)
    os.chmod(private, 0o700)
    tool = write(os.path.join(private, "agentcli"), b"#!/bin/sh\necho ok\n", 0o755)
    path = "%s:/usr/bin:/bin" % private
    nobody = agents.start(path, world, user=True)
    root = agents.start(path, world)
    assert node_spawn(nobody, "agentcli")["code"] == "EACCES" and node_spawn(root, "agentcli")["status"] == 0
    result = diagnose([nobody, root], ["agentcli"])
    finding = only(result, "spawn.dir_not_searchable")
    evidence = finding["evidence"]
    assert evidence["pids"] == str(nobody["pid"]) and evidence["uid"] == NOBODY and evidence["runs_as"] == "uid 65534 gid 65534"
    assert evidence["denied"] == private and evidence["mode"] == "0700" and evidence["command_path"] == tool
    by_pid = dict((a["pid"], a["commands"]["agentcli"]) for a in result["facts"]["agents"])
    assert by_pid == {nobody["pid"]: "dir_not_searchable", root["pid"]: tool}
    fixes_run(result)


def test_a_script_on_a_noexec_mount_of_the_process_own_mount_namespace(agents, world):
    mount_dir = os.path.join(world, "scratch")
    os.makedirs(mount_dir)
    source = write(os.path.join(world, "agentcli.src"), b"#!/bin/sh\necho ok\n", 0o755)
    setup = "/usr/bin/mount -t tmpfs -o noexec,size=1m tmpfs %s; /bin/cp -p %s %s/agentcli;" % (
        shlex.quote(mount_dir), shlex.quote(source), shlex.quote(mount_dir))
    agent = agents.start("%s:/usr/bin:/bin" % mount_dir, world, setup=setup, wrap=["/usr/bin/unshare", "--mount", "--propagation", "private"])
    assert not os.path.exists(os.path.join(mount_dir, "agentcli"))  # only that process's namespace has the mount
    assert node_spawn(agent, "agentcli", enter=["/usr/bin/nsenter", "-t", str(agent["pid"]), "-m", "--"])["code"] == "EACCES"
    result = diagnose([agent], ["agentcli"])
    finding = only(result, "spawn.noexec_mount")
    evidence = finding["evidence"]
    assert evidence["mount_point"] == mount_dir and "noexec" in evidence["mount_options"].split(",")
    assert evidence["command_path"] == os.path.join(mount_dir, "agentcli") and evidence["fstype"] == "tmpfs"
    fixes_run(result)
    shown = subprocess.run(["sh", "-c", finding["fix"]["command"]], capture_output=True, text=True, check=True).stdout
    assert "noexec" in shown  # nsenter shows the process's own mount


# ------------------------------------------------------------------ exec format, cwd, E2BIG, EINVAL, Windows paths
def test_an_elf_for_another_architecture_is_an_exec_format_error(agents, world):
    bin_ = bindir(world)
    foreign = {"x86_64": 183}.get(os.uname()[4], 62)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 + struct.pack("<HHIQQQIHHHHHH", 2, foreign, 1, 0x400000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    tool = write(os.path.join(bin_, "armcli"), header, 0o755)
    agent = agents.start("%s:/usr/bin:/bin" % bin_, world)
    real = node_spawn(agent, "armcli")
    assert real["code"] is None and real["status"] in (126, 127)  # ENOEXEC, then /bin/sh fails on it
    handlers = sx.binfmt_handlers("/proc/sys/fs/binfmt_misc")
    if sx.emulated_by(handlers, header):
        pytest.skip("a binfmt_misc emulator on this machine runs %s binaries" % sx.machine_name(foreign))
    result = diagnose([agent], ["armcli"])
    finding = only(result, "spawn.exec_format")
    evidence = finding["evidence"]
    assert evidence["command_path"] == tool and evidence["elf_machine"] == sx.machine_name(foreign)
    assert evidence["host_machine"] == os.uname()[4]
    fixes_run(result)


def test_a_deleted_working_directory(agents, world):
    release = os.path.join(world, "release-1")
    os.makedirs(release)
    agent = agents.start("/usr/bin:/bin", release)
    os.rmdir(release)
    real = subprocess.run(["/usr/bin/nsenter", "-t", str(agent["pid"]), "-w", "--", "/usr/bin/git", "status"], capture_output=True, text=True, check=False)
    assert real.returncode != 0 and "current working directory" in real.stderr
    result = diagnose([agent], ["sh"])
    finding = only(result, "spawn.cwd_deleted")
    assert finding["evidence"]["cwd"] == release and finding["evidence"]["pid"] == agent["pid"]
    fixes_run(result)


def test_environment_plus_prompt_near_the_argument_limit_is_an_e2big_risk(agents, world):
    small = agents.start("/usr/bin:/bin", world)
    with open("/proc/%d/limits" % small["pid"]) as handle:
        stack = [line for line in handle if line.startswith("Max stack size")][0].split()[3]
    limit = sx.arg_limit(None if stack == "unlimited" else int(stack))
    count = (limit - 60000) // 100010
    big_env = dict(("BLOB_%02d" % i, "x" * 100000) for i in range(count))
    big = agents.start("/usr/bin:/bin", world, env=big_env)
    assert node_spawn(big, "true", prompt=100000)["code"] == "E2BIG"
    assert node_spawn(small, "true", prompt=100000)["status"] == 0
    result = diagnose([small, big], ["true"], prompt_bytes=100000)
    finding = only(result, "spawn.e2big_risk")
    evidence = finding["evidence"]
    with open("/proc/%d/environ" % big["pid"], "rb") as handle:
        assert evidence["env_bytes"] == len(handle.read())
    assert evidence["pid"] == big["pid"] and evidence["arg_limit"] == limit and evidence["used_percent"] > 100
    assert finding["severity"] == "medium" and evidence["env_count"] >= count
    fixes_run(result)
    over = diagnose([small], ["true"], prompt_bytes=200000)
    assert only(over, "spawn.e2big_risk")["evidence"]["prompt_over_max_arg_strlen"] is True
    assert node_spawn(small, "true", prompt=200000)["code"] == "E2BIG"  # one argument over MAX_ARG_STRLEN


def test_einval_cause_names_the_user_namespace_that_maps_only_root(agents, world):
    mapped = agents.start("/usr/bin:/bin", world, wrap=["/usr/bin/unshare", "--user", "--map-root-user"])
    plain = agents.start("/usr/bin:/bin", world)
    real = node_spawn(mapped, "true", uid=1000, enter=["/usr/bin/nsenter", "-t", str(mapped["pid"]), "-U", "--"])
    assert real["code"] == "EINVAL"
    facts = diagnose([mapped, plain], ["true"])["facts"]
    assert facts["einval"]["windows_cmd_cause_applies"] is False
    assert [u["pid"] for u in facts["einval"]["user_namespaces"]] == [mapped["pid"], mapped["pid"]]
    assert "does not apply" in facts["einval_cause"] and "agent pid %d" % mapped["pid"] in facts["einval_cause"]
    assert "only 0 0 1" in facts["einval_cause"]
    alone = diagnose([plain], ["true"])["facts"]
    assert alone["einval"]["user_namespaces"] == [] and "full uid/gid range" in alone["einval_cause"]


def test_windows_style_paths_in_cwd_argv_and_file_names(agents, world):
    cwd = os.path.join(world, "C:\\agent-work")
    os.makedirs(cwd)
    open(os.path.join(cwd, "C:\\Users\\agent\\out.json"), "w").close()
    open(os.path.join(cwd, "notes.txt"), "w").close()
    agent = agents.start("/usr/bin:/bin", cwd, args=["--config=C:\\agent\\config.json"])
    elsewhere = os.path.join(world, "clean")
    os.makedirs(elsewhere)
    clean = agents.start("/usr/bin:/bin", elsewhere, args=["--config=/etc/agent/config.json"])
    result = diagnose([agent, clean], ["sh"])
    finding = only(result, "spawn.windows_path")
    evidence = finding["evidence"]
    assert evidence["pid"] == agent["pid"] and evidence["count"] == 3
    assert evidence["where"] == "working directory, command line, file names in its working directory"
    assert {e["path"] for e in evidence["examples"]} == {cwd, "C:\\agent\\config.json", "C:\\Users\\agent\\out.json"}
    fixes_run(result)


def test_the_diagnostics_module_runs_the_family_in_one_call(agents, world):
    bin_ = bindir(world)
    write(os.path.join(bin_, "agentcli"), b"#!/bin/sh\necho ok\n", 0o600)
    agent = agents.start("%s:/usr/bin:/bin" % bin_, world)
    rc, out = run_module("diagnostics", {"checks": ["spawn"], "families": {"spawn": {
        "patterns": [re.escape(agent["name"])], "commands": ["agentcli", "sh"]}}})
    assert rc == 0, out
    family = out["families"]["spawn"]
    assert family["status"] == "ok", family
    assert [f["id"] for f in family["findings"]] == ["spawn.not_executable"]
    rc, out = run_module("diagnostics", {"checks": ["spawn"], "families": {"spawn": {"prompt_bytes": -1}}})
    assert out["families"]["spawn"] == dict(out["families"]["spawn"], status="failed",
                                            error="prompt_bytes must be between 0 and 16777216, got -1.")


def test_the_owner_class_decides_even_when_other_would_allow_more(world):
    """Ground truth for the permission model (path_resolution(7)): a directory owned by the process's uid with mode
    0077 cannot be searched by it, although 'other' has x."""
    private = os.path.join(world, "owned")
    os.makedirs(private)
    tool = write(os.path.join(private, "agentcli"), b"#!/bin/sh\necho ok\n", 0o755)
    os.chown(private, NOBODY, NOBODY)
    os.chmod(private, 0o077)
    nobody = sx.Creds(NOBODY, NOBODY, cap_eff=0)
    assert not sx.allowed(os.stat(private), nobody, 1)
    assert sx.allowed(os.stat(private), sx.Creds(1000, 1000, cap_eff=0), 1)
    real = subprocess.run(["/usr/bin/setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", tool],
                          capture_output=True, text=True, check=False)
    # Upstream kernels refuse the execve (setpriv exits 126); this machine's patched kernel lets the execve through
    # and /bin/sh then fails to open the script (exit 2). Either way it cannot run, with "Permission denied".
    assert real.returncode in (126, 2) and "Permission denied" in real.stderr
    resolver = sx.Resolver("/", world, private, nobody, [])
    assert resolver.resolve("agentcli")["status"] == "dir_not_searchable"
