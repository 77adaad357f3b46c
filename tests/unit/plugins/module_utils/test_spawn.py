"""The spawn family on synthetic input: the exec model (shebangs, ELF headers, permissions, ACLs, mounts, limits)
table by table, and collect() on a synthetic /proc whose processes have their own root, PATH, cwd and credentials."""
import json
import os
import struct

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import rules
from ansible_collections.agentops.runbooks.plugins.module_utils import spawn_exec as sx
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.spawn import SpawnCollector, SpawnFamily

from helpers import FakeProc

NOBODY = 65534


def elf(machine=62, interpreter=None, klass=2, big_endian=False):
    """A minimal ELF header (and a PT_INTERP program header when ``interpreter`` is given)."""
    e = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([klass, 2 if big_endian else 1, 1, 0]) + b"\0" * 8
    count = 1 if interpreter else 0
    if klass == 2:
        head = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, machine, 1, 0x400000, 64, 0, 0, 64, 56, count, 64, 0, 0)
        if not interpreter:
            return head
        raw = interpreter.encode() + b"\0"
        return head + struct.pack(e + "IIQQQQQQ", 3, 4, 120, 0, 0, len(raw), len(raw), 1) + raw
    head = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, machine, 1, 0x8048000, 52, 0, 0, 52, 32, count, 40, 0, 0)
    if not interpreter:
        return head
    raw = interpreter.encode() + b"\0"
    return head + struct.pack(e + "IIIIIIII", 3, 84, 0, 0, len(raw), len(raw), 4, 1) + raw


class Stat(object):
    def __init__(self, mode, uid=0, gid=0):
        self.st_mode, self.st_uid, self.st_gid = mode, uid, gid


FILE, DIR = 0o100000, 0o040000


# ------------------------------------------------------------------ the exec model, table by table
@pytest.mark.parametrize("header, expected", [
    (b"#!/usr/bin/env node\n", ("/usr/bin/env", "node")),
    (b"#!/usr/bin/env node\r\nrest", ("/usr/bin/env", "node\r")),
    (b"#!/usr/bin/node\r\n", ("/usr/bin/node\r", None)),
    (b"#! \t/bin/sh  -e  \n", ("/bin/sh", "-e")),
    (b"#!/usr/bin/env -S node --max-old-space-size=512\n", ("/usr/bin/env", "-S node --max-old-space-size=512")),
    (b"#!\n", None),
    (b"echo hi\n", None),
])
def test_shebang_lines_split_as_the_kernel_splits_them(header, expected):
    assert sx.parse_shebang(header) == expected


@pytest.mark.parametrize("argument, program", [
    ("node", "node"), ("node\r", "node\r"), ("-S node --flag", "node"), ("-Snode --flag", "node"),
    ("-S NODE_ENV=production node", "node"), ("-i", None), (None, None),
])
def test_the_program_env_runs(argument, program):
    assert sx.env_target(argument) == program


def test_credentials_are_the_fs_ids_groups_and_effective_capabilities():
    creds = sx.parse_status("Name:\tnode\nUid:\t1000\t1001\t1002\t1003\nGid:\t50\t51\t52\t53\nGroups:\t4 27 100 \n"
                            "CapEff:\t0000000000000004\n")
    assert (creds.uid, creds.gid, sorted(creds.groups)) == (1003, 53, [4, 27, 100])
    assert creds.has(sx.CAP_DAC_OVERRIDE) is False and creds.has(sx.CAP_DAC_READ_SEARCH) is True
    assert sx.parse_status("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n").has(sx.CAP_DAC_OVERRIDE)  # no CapEff line: root
    with pytest.raises(ValueError):
        sx.parse_status("Name:\tnode\n")


ROOT = sx.Creds(0, 0, cap_eff=(1 << 41) - 1)
ROOT_NO_CAPS = sx.Creds(0, 0, cap_eff=0)
USER = sx.Creds(1000, 1000, groups=[27], cap_eff=0)


def ACL(*entries):  # pylint: disable=invalid-name
    return list(entries)


@pytest.mark.parametrize("st, creds, want, acl, expected", [
    (Stat(FILE | 0o755, uid=0), USER, 1, None, True),  # other x
    (Stat(FILE | 0o644, uid=0), USER, 1, None, False),
    (Stat(FILE | 0o075, uid=1000), USER, 1, None, False),  # the owner class decides, though other has x
    (Stat(FILE | 0o705, uid=0, gid=27), USER, 1, None, False),  # supplementary group 27: the group class decides
    (Stat(FILE | 0o750, uid=0, gid=27), USER, 1, None, True),
    (Stat(FILE | 0o644, uid=0), ROOT, 1, None, False),  # root needs one execute bit
    (Stat(FILE | 0o100, uid=5), ROOT, 1, None, True),
    (Stat(FILE | 0o000, uid=5), ROOT, 4, None, True),  # reads are overridable
    (Stat(DIR | 0o700, uid=5), ROOT, 1, None, True),  # and so is searching a directory
    (Stat(DIR | 0o700, uid=5), ROOT_NO_CAPS, 1, None, False),  # uid 0 without capabilities is an ordinary user
    (Stat(DIR | 0o700, uid=5), sx.Creds(1000, 1000, cap_eff=1 << sx.CAP_DAC_READ_SEARCH), 1, None, True),
    (Stat(FILE | 0o750, uid=0, gid=0), USER, 1, ACL((1, 7, 0), (2, 5, 1000), (4, 5, 0), (0x10, 5, 0), (0x20, 0, 0)), True),
    (Stat(FILE | 0o740, uid=0, gid=0), USER, 1, ACL((1, 7, 0), (2, 5, 1000), (4, 5, 0), (0x10, 4, 0), (0x20, 0, 0)), False),
    (Stat(FILE | 0o750, uid=0, gid=0), USER, 1, ACL((1, 7, 0), (4, 5, 0), (8, 5, 27), (0x10, 5, 0), (0x20, 0, 0)), True),
    (Stat(FILE | 0o705, uid=0, gid=27), USER, 1, ACL((1, 7, 0), (4, 0, 0), (0x10, 7, 0), (0x20, 5, 0)), False),
    (Stat(FILE | 0o705, uid=0, gid=0), USER, 1, ACL((1, 7, 0), (4, 0, 0), (0x10, 7, 0), (0x20, 5, 0)), True),
])
def test_permission_as_the_process_credentials(st, creds, want, acl, expected):
    assert sx.allowed(st, creds, want, acl) is expected


def test_acl_values_are_parsed_from_their_xattr_layout():
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in [(1, 7, 0xFFFFFFFF), (2, 5, 1000), (0x10, 5, 0xFFFFFFFF)])
    assert sx.parse_acl(raw) == [(1, 7, 0xFFFFFFFF), (2, 5, 1000), (0x10, 5, 0xFFFFFFFF)]
    assert sx.parse_acl(b"\x01\0\0\0") is None and sx.parse_acl(raw[:-1]) is None


@pytest.mark.parametrize("data, machine, klass, interpreter", [
    (elf(62, "/lib64/ld-linux-x86-64.so.2"), 62, 64, "/lib64/ld-linux-x86-64.so.2"),
    (elf(183), 183, 64, None),
    (elf(3, "/lib/ld-linux.so.2", klass=1), 3, 32, "/lib/ld-linux.so.2"),
    (elf(22, "/lib/ld64.so.1", big_endian=True), 22, 64, "/lib/ld64.so.1"),
])
def test_elf_headers(data, machine, klass, interpreter):
    info = sx.parse_elf(lambda offset, size: data[offset:offset + size], data[:256])
    assert (info["machine"], info["class"], info["interpreter"]) == (machine, klass, interpreter)


def test_not_an_elf():
    assert sx.parse_elf(lambda o, s: b"", b"#!/bin/sh\n") is None


@pytest.mark.parametrize("stack, limit", [
    (8 * 1024 * 1024, 2 * 1024 * 1024), (None, 6 * 1024 * 1024), (64 * 1024 * 1024, 6 * 1024 * 1024),
    (256 * 1024, 131072),
])
def test_the_argument_limit_follows_the_stack_rlimit(stack, limit):
    assert sx.arg_limit(stack) == limit


def test_the_mount_holding_a_path_is_the_longest_and_the_last_mounted():
    mounts = [{"mount_point": "/", "options": "rw"}, {"mount_point": "/tmp", "options": "rw,noexec"},
              {"mount_point": "/tmp", "options": "rw"}, {"mount_point": "/tmpx", "options": "ro"}]
    assert sx.mount_of(mounts, "/tmp/a/b") is mounts[2]
    assert sx.mount_of(mounts, "/tmpfile") is mounts[0]
    assert sx.mount_of(mounts, "/tmpx") is mounts[3]


@pytest.mark.parametrize("text, found", [
    ("C:\\Users\\agent\\work", "C:\\Users\\agent\\work"),
    ("--config=D:\\agent\\config.json", "D:\\agent\\config.json"),
    ("\\\\fileserver\\share\\prompts", "\\\\fileserver\\share\\prompts"),
    ("src\\tools\\index.js", "src\\tools\\index.js"),
    ("/srv/app/C:\\tmp", "C:\\tmp"),
    ("/usr/lib/node_modules/npm/bin/npm-cli.js", None),
    ("http://127.0.0.1:8080/health", None),
    ("\\d+\\s*", None),
    ("--regex=[a-z]:\\\\", None),
])
def test_windows_style_paths(text, found):
    assert sx.windows_path(text) == found


# ------------------------------------------------------------------ a synthetic host
def put(root, rel, content=b"", mode=0o755):
    path = os.path.join(root, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


STATUS = "Name:\tnode\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\nGroups:\t\nCapEff:\t{cap}\n"
LIMITS = ("Limit                     Soft Limit           Hard Limit           Units     \n"
          "Max stack size            {stack:<20} unlimited            bytes     \n")
MOUNTS = ("21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
          "30 21 0:40 / /scratch rw,nosuid,nodev,noexec,relatime shared:2 - tmpfs tmpfs rw\n")
PATH = "/usr/local/bin:/usr/bin:/scratch:/private"


@pytest.fixture
def host(tmp_path):
    """Agents in a root of their own: absolute symlinks there must resolve inside it, never on this machine."""
    proc = FakeProc(tmp_path / "proc")
    root = str(tmp_path / "rootfs")
    put(root, "/usr/bin/env", elf(62))
    put(root, "/usr/bin/node", elf(62))
    put(root, "/usr/bin/plain", b"#!/bin/sh\necho\n", 0o644)
    put(root, "/usr/bin/crlf", b"#!/usr/bin/env node\r\nconsole.log(1)\r\n")
    put(root, "/usr/bin/foreign", elf(183))
    put(root, "/usr/bin/musl", elf(62, "/lib/ld-musl-x86_64.so.1"))
    put(root, "/usr/bin/pyscript", b"#!/usr/bin/env python9\nprint(1)\n")
    put(root, "/opt/real/tool", b"#!/usr/bin/node\n")
    os.makedirs(os.path.join(root, "usr/local/bin"))
    os.symlink("/opt/real/tool", os.path.join(root, "usr/local/bin/linked"))  # absolute: inside the agents' root
    put(root, "/scratch/tmpcli", b"#!/usr/bin/node\n")
    put(root, "/private/secretcli", b"#!/usr/bin/node\n")
    os.chmod(os.path.join(root, "private"), 0o700)
    os.makedirs(os.path.join(root, "srv/app"))
    put(root, "/srv/app/C:\\Users\\agent\\out.json", b"", 0o644)
    put(root, "/srv/app/dev-disk-by\\x2duuid.mount", b"", 0o644)  # systemd's escaping is not a Windows path
    secret = "sk-ant-api03-" + "Q" * 40
    for pid, uid, uid_map, argv in ((101, NOBODY, "0 0 4294967295", ["node", "server.js"]),
                                    (102, NOBODY, "0 1000 1", ["node", "-e", "x\\y\\z.js", "--out=C:\\tmp\\a.txt"]),
                                    (103, 0, "0 0 4294967295", ["node", "worker.js"])):
        proc.process(pid, comm="node", argv=argv)
        proc.write("%d/status" % pid, STATUS.format(uid=uid, cap="0000000000000000" if uid else "000001ffffffffff"))
        proc.write("%d/environ" % pid, "PATH=%s\0ANTHROPIC_API_KEY=%s\0HOME=/srv\0" % (PATH, secret))
        proc.write("%d/mountinfo" % pid, MOUNTS)
        proc.write("%d/limits" % pid, LIMITS.format(stack=8388608))
        proc.write("%d/uid_map" % pid, "%s\n" % uid_map)
        proc.write("%d/gid_map" % pid, "0 0 4294967295\n")
        os.symlink(root, os.path.join(proc.root, str(pid), "root"))
        os.symlink("/srv/app" if pid != 103 else "/srv/old-release (deleted)", os.path.join(proc.root, str(pid), "cwd"))
    # /proc/PID/cwd is a magic link into the process's root; here it points into the synthetic root instead.
    os.unlink(os.path.join(proc.root, "101", "cwd"))
    os.symlink(os.path.join(root, "srv/app"), os.path.join(proc.root, "101", "cwd"))
    os.unlink(os.path.join(proc.root, "102", "cwd"))
    os.symlink(os.path.join(root, "srv/app"), os.path.join(proc.root, "102", "cwd"))
    proc.process(104, comm="node", argv=["node", "broken.js"])
    proc.write("104/status", STATUS.format(uid=0, cap="000001ffffffffff"))
    os.makedirs(os.path.join(proc.root, "104", "environ"))  # unreadable: EISDIR
    proc.process(105, comm="python3", argv=["python3", "-m", "http.server"])  # not an agent
    return {"proc": proc, "root": root, "secret": secret}


COMMANDS = ("ghost", "plain", "tmpcli", "secretcli", "crlf", "foreign", "musl", "pyscript", "linked", "node")


def synthetic(host, prompt_bytes=100000, commands=COMMANDS, handlers=()):
    collector = SpawnCollector(procfs.ProcFS(host["proc"].root), procfs.compile_patterns(["node"]), commands, prompt_bytes,
                               host_machine="x86_64", handlers=list(handlers))
    return collector.run()


def test_every_kind_of_failure_on_a_synthetic_host(host):
    result = synthetic(host)
    by_id = {}
    for finding in result["findings"]:
        by_id.setdefault(finding["id"], []).append(finding)
    assert sorted(by_id) == sorted(r for r in rules.RULES if r.startswith("spawn.") and r != "spawn.e2big_risk")
    evidence = dict((f["evidence"].get("command", f["id"]), f["evidence"]) for fs in by_id.values() for f in fs
                    if f["evidence"].get("pids") != "101,102" or f["evidence"].get("command") != "ghost")
    assert [f["evidence"]["command"] for f in by_id["spawn.command_not_found"]] == ["ghost"]  # one per (command, PATH)
    assert evidence["ghost"]["pids"] == "103" and evidence["ghost"]["path"] == PATH
    assert evidence["ghost"]["searched"] == PATH.split(":") and evidence["ghost"]["error"] == "spawn ghost ENOENT"
    # For the non-root agents the search passes /private, which they cannot search: like execvp, EACCES, not ENOENT.
    denied = [f["evidence"] for f in by_id["spawn.dir_not_searchable"] if f["evidence"]["command"] == "ghost"]
    assert [(e["pids"], e["count"], e["denied"], e["error"]) for e in denied] == [("101,102", 2, "/private", "spawn ghost EACCES")]
    assert evidence["plain"]["mode"] == "0644" and evidence["plain"]["command_path"] == "/usr/bin/plain"
    assert evidence["tmpcli"]["mount_point"] == "/scratch" and "noexec" in evidence["tmpcli"]["mount_options"]
    assert evidence["secretcli"]["denied"] == "/private" and evidence["secretcli"]["pids"] == "101,102"  # not root's 103
    assert evidence["crlf"]["shebang"] == "#!/usr/bin/env node\\r"
    assert evidence["foreign"]["elf_machine"] == "ARM aarch64" and evidence["foreign"]["host_machine"] == "x86_64"
    assert evidence["musl"]["interpreter"] == "/lib/ld-musl-x86_64.so.1"
    assert evidence["pyscript"]["program"] == "python9" and "env exits 127" in evidence["pyscript"]["reason"]
    agents = dict((a["pid"], a) for a in result["facts"]["agents"])
    assert agents[101]["commands"]["linked"] == "/opt/real/tool"  # resolved inside the agent's root
    assert agents[101]["commands"]["node"] == "/usr/bin/node" and agents[103]["commands"]["secretcli"] == "/private/secretcli"
    assert by_id["spawn.cwd_deleted"][0]["evidence"]["cwd"] == "/srv/old-release"
    windows = dict((f["evidence"]["pid"], f["evidence"]) for f in by_id["spawn.windows_path"])
    assert windows[101]["examples"] == [{"where": "file names in its working directory", "path": "C:\\Users\\agent\\out.json"}]
    assert {e["path"] for e in windows[102]["examples"]} == {"C:\\tmp\\a.txt", "C:\\Users\\agent\\out.json"}  # not the -e code
    incomplete = by_id["spawn.check_incomplete"][0]
    assert incomplete["severity"] == "unknown" and incomplete["evidence"]["what"].endswith("/104/environ")
    assert result["incomplete"][0]["check"].startswith("environ of ")
    assert sorted(agents) == [101, 102, 103] and result["facts"]["agent_count"] == 4
    assert "pid 102" in result["facts"]["einval_cause"] and "0 1000 1" in result["facts"]["einval_cause"]


def test_templates_only_use_evidence_the_findings_carry(host):
    host["proc"].write("102/environ", "PATH=%s\0%s" % (PATH, "".join("BLOB_%d=%s\0" % (i, "x" * 99990) for i in range(12))))
    result = synthetic(host)
    seen = set()
    for finding in result["findings"]:
        rule = rules.RULES[finding["id"]]
        seen.add(finding["id"])
        fields = set(fm.template_fields(rule["symptom"])) | set(fm.template_fields(rule["diagnosis"]))
        assert fields <= set(finding["evidence"]), (finding["id"], fields - set(finding["evidence"]))
        command = rule["fix"]["command"]
        first = command[0] if isinstance(command, list) else command
        assert set(fm.template_fields(first)) <= set(finding["evidence"]), finding["id"]
        assert finding["fix"]["command"] and "{" not in finding["fix"]["command"].replace("${", "")
    assert seen == set(r for r in rules.RULES if r.startswith("spawn."))


def test_the_environment_is_never_returned_only_path_and_sizes(host):
    family = SpawnFamily()
    params = collectors.validated(family, {"proc_root": host["proc"].root, "commands": ["node"]})
    params["thresholds"] = {}
    params["redaction_key"] = "k"
    text = json.dumps(family.collect(None, params))
    assert host["secret"] not in text and "ANTHROPIC_API_KEY" not in text and "HOME=" not in text
    with open(os.path.join(host["proc"].root, "101", "environ"), "rb") as handle:
        size = len(handle.read())
    agent = [a for a in json.loads(text)["facts"]["agents"] if a["pid"] == 101][0]
    assert (agent["env_bytes"], agent["env_count"], agent["path"]) == (size, 3, PATH)


def test_a_path_holding_a_credential_is_redacted(host):
    proc = host["proc"]
    proc.write("101/environ", "PATH=/usr/bin:https://deploy:hunter2secret@example.com/bin\0")
    family = SpawnFamily()
    params = collectors.validated(family, {"proc_root": proc.root, "commands": ["ghost"]})
    params.update(thresholds={}, redaction_key=None)
    text = json.dumps(family.collect(None, params))
    assert "hunter2secret" not in text and "[REDACTED:" in text


@pytest.mark.parametrize("env_bytes, prompt_bytes, severity, over", [
    (0, 100000, None, False), (1000000, 100000, "low", False), (1600000, 100000, "medium", False), (0, 140000, "medium", True),
])
def test_e2big_risk_is_graded_on_the_share_of_the_limit(host, env_bytes, prompt_bytes, severity, over):
    blobs = "".join("BLOB_%d=%s\0" % (i, "x" * 99990) for i in range(env_bytes // 100000))
    host["proc"].write("101/environ", "PATH=/usr/bin\0" + blobs)
    result = synthetic(host, prompt_bytes=prompt_bytes, commands=["node"])
    found = [f for f in result["findings"] if f["id"] == "spawn.e2big_risk" and f["evidence"]["pid"] == 101]
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    if found:
        evidence = found[0]["evidence"]
        assert evidence["arg_limit"] == 2097152 and evidence["prompt_over_max_arg_strlen"] is over
        assert evidence["env_bytes"] == len("PATH=/usr/bin") + 1 + len(blobs)
        assert evidence["arg_bytes"] == evidence["env_bytes"] + len("node") + 1 + prompt_bytes + 1 + 8 * (evidence["env_count"] + 2)


def test_a_binfmt_misc_emulator_makes_a_foreign_elf_runnable(host, tmp_path):
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")
    (binfmt / "qemu-aarch64").write_text(
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n"
        "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n")
    handlers = sx.binfmt_handlers(str(binfmt))
    assert [h[0] for h in handlers] == ["qemu-aarch64"]
    result = synthetic(host, commands=["foreign"], handlers=handlers)
    assert not [f for f in result["findings"] if f["id"] == "spawn.exec_format"]
    assert result["facts"]["agents"][0]["commands"]["foreign"] == "/usr/bin/foreign"


@pytest.mark.parametrize("options, sentence", [
    ({"prompt_bytes": -1}, "prompt_bytes must be between 0 and 16777216, got -1."),
    ({"prompt_bytes": 16777217}, "prompt_bytes must be between 0 and 16777216, got 16777217."),
    ({"commands": []}, "commands must name at least one command."),
    ({"commands": ["claude", " npx"]}, "commands entry ' npx' is not a command name or path."),
    ({"patterns": ["("]}, "patterns entry '(' is not a valid regular expression"),
    ({"patterns": []}, "patterns must name at least one process pattern."),
    ({"proc_root": "/nonexistent-agentops"}, "proc_root /nonexistent-agentops is not a directory."),
])
def test_options_out_of_range_are_one_sentence(options, sentence):
    family = SpawnFamily()
    params = collectors.validated(family, options)
    params["thresholds"] = {}
    with pytest.raises(ValueError) as caught:
        family.collect(None, params)
    assert str(caught.value).startswith(sentence)


def test_the_family_is_registered_with_its_role_attributes():
    family = collectors.BY_NAME["spawn"]
    assert isinstance(family, SpawnFamily) and family.redacts is True and family.enabled_by is None
    assert dict((k, v[0]) for k, v in family.variables.items()) == {
        "commands": "spawn_commands", "patterns": "process_patterns", "prompt_bytes": "spawn_prompt_bytes"}
    assert "process_patterns" in [e["suffix"] for e in collectors.role_variables()]  # shared with the process family: same spec
    assert family.secrets == {} and family.ranges == {"prompt_bytes": [0, 16777216]}
    assert set(family.variables) <= set(family.options) and set(family.ranges) <= set(family.options)
    assert family.options["patterns"]["default"] == collectors.BY_NAME["process"].options["patterns"]["default"]
    assert family.options["commands"]["default"] == ["claude", "npx", "npm", "node", "git", "sh"]
