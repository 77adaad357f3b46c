"""The containers family on real Podman containers (scripts/podman_setup.sh: podman + runc, a busybox image built
locally, storage under .cache/podman): one killed by its memory limit, one in a restart loop, one writing to a
read-only mount, one whose PID 1 is sleep without an init, one whose user cannot write its mount, one failing its
health check; the same containers through Podman's Engine API socket; and the docker path on recorded output
(tests/fixtures/containers, named "recorded"). Every container is named with this run's token and removed at the end.
Run inside a PID namespace of its own (scripts/pidns.py)."""
import atexit
import copy
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from helpers import REPO, run_fix_commands, run_module
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.containers import ContainersCollector
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

FIXTURES = os.path.join(REPO, "tests", "fixtures", "containers")
IMAGE = "localhost/agentops-test:1"


# podman's monitor (conmon) leaves an empty "oom" file in its working directory when a container is OOM-killed: run
# podman from a private temporary directory so that nothing lands in the checkout.
WORKDIR = tempfile.mkdtemp(prefix="agentops-podman-cwd-")
atexit.register(shutil.rmtree, WORKDIR, True)


def podman(*args, check=True, timeout=60):
    proc = subprocess.run(["podman"] + list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=WORKDIR)
    if check and proc.returncode != 0:
        raise AssertionError("podman %s: %s" % (" ".join(args), proc.stderr))
    return proc.stdout


def logs(name):
    proc = subprocess.run(["podman", "logs", name], capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout + proc.stderr


def inspect(name):
    return json.loads(podman("inspect", name))[0]


def wait_for(what, test, within=30.0):
    end = time.monotonic() + within
    while time.monotonic() < end:
        if test():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s" % what)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    setup = subprocess.run([os.path.join(REPO, "scripts", "podman_setup.sh")], capture_output=True, text=True, timeout=600, check=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    env = dict(line.split("=", 1) for line in setup.stdout.splitlines() if line.startswith("CONTAINERS_"))
    token = uuid.uuid4().hex[:8]
    names = dict((kind, "ctr-%s-%s" % (token, kind)) for kind in ("oom", "loop", "ro", "sleep", "init", "perm", "health"))
    ro_dir = tmp_path_factory.mktemp("ro-data")
    perm_dir = tmp_path_factory.mktemp("root-owned")
    os.chmod(str(perm_dir), 0o755)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        try:
            base = ["run", "-d", "--network", "none"]
            podman(*base + ["--name", names["oom"], "--memory", "16m", "--memory-swap", "16m", IMAGE, "sh", "-c", "sleep 1; tail /dev/zero"])
            podman(*base + ["--name", names["loop"], "--restart", "always", IMAGE, "sh", "-c",
                            "echo 'Error: connect ECONNREFUSED 127.0.0.1:5432' >&2; sleep 0.3; exit 3"])
            podman(*base + ["--name", names["ro"], "-v", "%s:/data:ro" % ro_dir, "-w", "/data", IMAGE, "sh", "-c",
                            "while true; do touch /data/out.txt; sleep 0.5; done"])
            podman(*base + ["--name", names["sleep"], IMAGE, "sleep", "600"])
            podman(*base + ["--name", names["init"], "--init", IMAGE, "sleep", "600"])
            podman(*base + ["--name", names["perm"], "--user", "1000:1000", "-v", "%s:/state" % perm_dir, "-w", "/state", IMAGE, "sh", "-c",
                            "while true; do touch /state/state.json; sleep 0.5; done"])
            podman(*base + ["--name", names["health"], "--health-cmd", "echo probe failed: upstream answered 503; exit 1",
                            "--health-retries", "1", "--health-interval", "0", IMAGE, "sleep", "600"])
            wait_for("the OOM kill", lambda: inspect(names["oom"])["State"]["Status"] == "exited")
            wait_for("three restarts", lambda: inspect(names["loop"])["RestartCount"] >= 3)
            wait_for("EROFS in the log", lambda: "Read-only file system" in logs(names["ro"]))
            wait_for("EACCES in the log", lambda: "Permission denied" in logs(names["perm"]))
            podman("healthcheck", "run", names["health"], check=False)  # the test's own probe run; the diagnosis never runs one
            wait_for("unhealthy", lambda: (inspect(names["health"])["State"].get("Health") or {}).get("Status") == "unhealthy")
            yield {"names": names, "token": token, "env": env, "ro_dir": str(ro_dir), "perm_dir": str(perm_dir)}
        finally:
            podman("rm", "-f", "-t", "0", *names.values(), check=False)


def snapshot(lab):
    """What the diagnosis must not change: the test's containers, their state, start times, and the mounts' content."""
    state = {}
    for kind, name in lab["names"].items():
        item = inspect(name)
        if kind != "loop":
            state[name] = (item["Id"], item["State"]["Status"], item["State"]["StartedAt"], item["RestartCount"])
    return state, sorted(os.listdir(lab["ro_dir"])), sorted(os.listdir(lab["perm_dir"]))


@pytest.fixture(scope="module")
def diagnosed(lab):
    before = snapshot(lab)
    rc, result = run_module("diagnostics", {"checks": ["containers"], "redaction_key": "containers-test-key",
                                            "families": {"containers": {"patterns": ["^ctr-%s-" % lab["token"]]}}}, timeout=120)
    assert rc == 0, result
    return result["families"]["containers"], before


def found(family, rule, name):
    hits = [f for f in family["findings"] if f["id"] == rule and f["subject"] == "podman %s" % name]
    assert hits, "%s for %s not in %s" % (rule, name, [(f["id"], f["subject"]) for f in family["findings"]])
    return hits[0]


def fixes_run(findings):
    return run_fix_commands({"hosts": {"localhost": {"findings": findings}}})


def test_podman_answers_and_docker_is_not_running_or_absent(diagnosed, lab):
    family, _before = diagnosed
    assert family["status"] == "ok", family.get("incomplete")
    runtimes = family["facts"]["runtimes"]
    assert runtimes["podman"].startswith("answered (cli ")
    assert runtimes["docker"] in ("not present", "not running (its daemon or socket does not answer)")
    names = sorted(c["name"] for c in family["facts"]["containers"])
    assert names == sorted(lab["names"].values())


def test_memory_limit_oom_kill_137(diagnosed, lab):
    family, _before = diagnosed
    finding = found(family, "containers.oom_killed", lab["names"]["oom"])
    evidence = finding["evidence"]
    assert finding["severity"] == "high"
    assert evidence["exit_code"] == 137 and evidence["memory_limit_mb"] == 16.0
    # Podman 4.3 with conmon on these hybrid cgroups does not set State.OOMKilled: the kernel's memcg kill in the
    # container's cgroup is the evidence (the docker test below covers the runtime's own flag).
    if inspect(lab["names"]["oom"])["State"]["OOMKilled"]:
        assert evidence["oom_source"] == "podman inspect (State.OOMKilled)"
    else:
        assert evidence["oom_source"].startswith("the kernel log: 'Memory cgroup out of memory: Killed process ")
        assert "(tail)' in its cgroup; podman did not set State.OOMKilled" in evidence["oom_source"]
    assert not [f for f in family["findings"] if f["id"] == "containers.killed_by_signal" and f["subject"].endswith(lab["names"]["oom"])]
    fact = [c for c in family["facts"]["containers"] if c["name"] == lab["names"]["oom"]][0]
    assert fact["oom_killed"] is True and fact["exit_code"] == 137 and fact["limits"]["memory_bytes"] == 16 * 1024 * 1024
    assert finding["fix"]["command"] == "podman inspect %s" % lab["names"]["oom"]
    assert fixes_run([finding]) == []


def test_restart_loop(diagnosed, lab):
    family, _before = diagnosed
    finding = found(family, "containers.restart_loop", lab["names"]["loop"])
    evidence = finding["evidence"]
    assert evidence["restart_policy"] == "always" and evidence["restarts"] >= 3 and evidence["recent_restarts"] >= 3
    assert finding["severity"] in ("medium", "high", "critical")
    assert "ECONNREFUSED 127.0.0.1:5432" in evidence["last_error"]
    assert finding["fix"]["command"] == "podman logs --tail 50 {0}; podman inspect {0}".format(lab["names"]["loop"])
    assert fixes_run([finding]) == []


def test_write_to_read_only_mount(diagnosed, lab):
    family, _before = diagnosed
    finding = found(family, "containers.readonly_write", lab["names"]["ro"])
    evidence = finding["evidence"]
    assert evidence["destination"] == "/data" and evidence["source"] == lab["ro_dir"]
    assert "working directory (/data)" in evidence["how"] and evidence["erofs_in_logs"] >= 1
    assert evidence["last_erofs"] == "touch: /data/out.txt: Read-only file system"
    fact = [c for c in family["facts"]["containers"] if c["name"] == lab["names"]["ro"]][0]
    assert fact["mounts"][0]["readonly"] is True
    assert fixes_run([finding]) == []


def test_pid1_sleep_without_init(diagnosed, lab):
    family, _before = diagnosed
    finding = found(family, "containers.no_init", lab["names"]["sleep"])
    evidence = finding["evidence"]
    assert evidence["pid1_program"] == "sleep" and evidence["pid1_cmd"] == "sleep 600"
    assert evidence["zombies"] == 0 and finding["severity"] == "low"
    assert "no SIGTERM handler" in evidence["sigterm"]
    assert not [f for f in family["findings"] if f["id"] == "containers.no_init" and f["subject"].endswith(lab["names"]["init"])]
    init = [c for c in family["facts"]["containers"] if c["name"] == lab["names"]["init"]][0]
    assert init["init"] is True and init["pid1"]["is_init"] is True
    assert fixes_run([finding]) == []


def test_mount_owner_vs_container_user_eacces(diagnosed, lab):
    family, _before = diagnosed
    finding = found(family, "containers.mount_permission", lab["names"]["perm"])
    evidence = finding["evidence"]
    assert (evidence["owner_uid"], evidence["uid"], evidence["mode"]) == (0, 1000, "0755")
    assert evidence["denied_in_logs"] >= 1 and finding["severity"] == "high"  # the floor: the writes fail in its logs
    assert "Permission denied" in evidence["last_denied"]
    assert fixes_run([finding]) == []


def test_unhealthy_with_last_probe_output(diagnosed, lab):
    family, _before = diagnosed
    finding = found(family, "containers.unhealthy", lab["names"]["health"])
    assert finding["evidence"]["last_probe_output"] == "probe failed: upstream answered 503"
    assert finding["evidence"]["last_probe_exit_code"] == 1
    assert fixes_run([finding]) == []


def test_environment_never_returned_and_diagnosis_changes_nothing(diagnosed, lab):
    family, before = diagnosed
    text = json.dumps(family)
    assert "PATH=/bin" not in text and "CreateCommand" not in text
    sleep = [c for c in family["facts"]["containers"] if c["name"] == lab["names"]["sleep"]][0]
    assert "PATH" in sleep["env_keys"]
    assert snapshot(lab) == before


def test_engine_api_socket_of_podman(lab, tmp_path, strict_evidence):
    """No client on PATH: the same containers through Podman's Docker-compatible API on a unix socket."""
    sock = str(tmp_path / "api.sock")
    service = subprocess.Popen(["podman", "system", "service", "--time", "0", "unix://" + sock], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for("the API socket", lambda: os.path.exists(sock), within=15)
        collector = ContainersCollector(procfs.ProcFS("/proc"), procfs.CgroupFS("/sys/fs/cgroup"), patterns=[__import__("re").compile(
            "^ctr-%s-(oom|loop|ro)$" % lab["token"])], runtimes=["podman"], redactor=Redactor(), find=lambda name: None,
            environ={"CONTAINER_HOST": "unix://" + sock})
        result = collector.run()
    finally:
        service.terminate()
        service.wait(timeout=30)
    assert result["facts"]["runtimes"]["podman"] == "answered (api unix://%s)" % sock
    ids = set((f["id"], f["subject"]) for f in result["findings"])
    assert ("containers.oom_killed", "podman %s" % lab["names"]["oom"]) in ids
    assert ("containers.restart_loop", "podman %s" % lab["names"]["loop"]) in ids
    assert ("containers.readonly_write", "podman %s" % lab["names"]["ro"]) in ids
    assert result["incomplete"] == []


# ------------------------------------------------------------------ docker, recorded
def recorded(edit=None):
    with open(os.path.join(FIXTURES, "docker_inspect_oom_restarts.json")) as handle:
        items = json.load(handle)
    with open(os.path.join(FIXTURES, "docker_image_inspect.json")) as handle:
        images = json.load(handle)
    with open(os.path.join(FIXTURES, "docker_logs_tail.txt")) as handle:
        logs = handle.read()
    items, images = copy.deepcopy(items), copy.deepcopy(images)
    if edit:
        edit(items[0], images[0])
    calls = []

    def runner(argv, timeout, env=None, uid=None):
        calls.append(argv)
        verb = argv[1:3]
        if verb[0] == "ps":
            return 0, "%s %s\n" % (items[0]["Id"], items[0]["Name"].lstrip("/")), ""
        if verb == ["inspect", "--type"]:
            return 0, json.dumps(items), ""
        if verb == ["image", "inspect"]:
            return 0, json.dumps(images), ""
        if verb[0] == "logs":
            return 0, logs, ""
        raise AssertionError(argv)

    created = items[0]["Created"]
    from ansible_collections.agentops.runbooks.plugins.module_utils import svc_parse
    collector = ContainersCollector(procfs.ProcFS("/proc"), procfs.CgroupFS("/sys/fs/cgroup"), runtimes=["docker"], redactor=Redactor(),
                                    runner=runner, find=lambda name: "/usr/bin/docker" if name == "docker" else None, environ={},
                                    kmsg=lambda: [], clock=lambda: svc_parse.parse_iso(created) + 120)
    return collector.run(), calls


def test_recorded_docker_exit_137_without_oomkilled_is_sigkill(strict_evidence):
    result, calls = recorded()
    ids = dict((f["id"], f) for f in result["findings"])
    killed = ids["containers.killed_by_signal"]
    assert killed["evidence"]["signal"] == "SIGKILL" and killed["evidence"]["exit_code"] == 137
    assert "Nothing recorded an OOM kill" in killed["evidence"]["why"]
    assert "JavaScript heap out of memory" in killed["evidence"]["last_error"]
    assert killed["fix"]["command"] == "docker logs --tail 50 agent-api; docker inspect agent-api"
    loop = ids["containers.restart_loop"]
    assert loop["evidence"]["restart_policy"] == "on-failure" and loop["evidence"]["restarts"] == 3 and loop["severity"] == "medium"
    assert "containers.oom_killed" not in ids
    assert result["facts"]["runtimes"]["docker"] == "answered (cli /usr/bin/docker)"
    assert "sk-live-abc123secret" not in json.dumps(result)
    assert all(argv[1] in ("ps", "inspect", "image", "logs") for argv in calls)  # read-only verbs only


def test_recorded_docker_oomkilled_flag(strict_evidence):
    def oom(item, _image):
        item["State"]["OOMKilled"] = True
    result, _calls = recorded(oom)
    ids = dict((f["id"], f) for f in result["findings"])
    finding = ids["containers.oom_killed"]
    assert finding["evidence"]["oom_source"] == "docker inspect (State.OOMKilled)"
    assert finding["evidence"]["memory_limit_mb"] == 16.0 and finding["fix"]["command"] == "docker inspect agent-api"
    assert "containers.killed_by_signal" not in ids


def test_recorded_docker_image_for_another_architecture(strict_evidence):
    def arm(_item, image):
        image["Architecture"] = "arm64"
    result, _calls = recorded(arm)
    finding = [f for f in result["findings"] if f["id"] == "containers.arch_mismatch"][0]
    assert (finding["evidence"]["image_architecture"], finding["evidence"]["host_architecture"]) == ("arm64", "amd64")
    assert finding["severity"] == "high" and finding["evidence"]["exec_format_error"] == 0
