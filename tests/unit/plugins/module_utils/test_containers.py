"""The containers family's pure parts: inspect parsing, exit codes and signals, resolv.conf, write permissions, the
Engine API log stream, fdinfo flags; the family's input checks, and "not present" when no runtime exists."""
import os

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import ctr_engine as ce
from ansible_collections.agentops.runbooks.plugins.module_utils import ctr_inspect as ci
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.containers import ContainersCollector, ContainersFamily


def test_exit_codes_name_their_signal():
    assert ci.exit_reason(137, False) == (9, "killed by SIGKILL (signal 9)")
    assert ci.exit_reason(139, False) == (11, "killed by SIGSEGV (signal 11)")
    assert ci.exit_reason(137, True)[1].startswith("OOM-killed")
    assert ci.exit_reason(1, False) == (None, "exited with code 1")
    assert ci.exit_reason(127, False)[1] == "exit 127: the command was not found"


def test_host_architecture_names_like_images():
    assert ci.host_architecture("x86_64") == "amd64"
    assert ci.host_architecture("aarch64") == "arm64"


def test_resolv_conf():
    resolv = ci.parse_resolv("# generated\nnameserver 127.0.0.53\nsearch svc.cluster.local cluster.local\noptions ndots:5 edns0\n")
    assert resolv == {"nameservers": ["127.0.0.53"], "search": ["svc.cluster.local", "cluster.local"], "ndots": 5,
                      "options": ["ndots:5", "edns0"]}


def test_write_permission_by_owner_group_other():
    assert not ci.can_write(0o755, 0, 0, 1000, {1000})
    assert ci.can_write(0o755, 1000, 1000, 1000, {1000})
    assert ci.can_write(0o775, 0, 1000, 1000, {1000})
    assert ci.can_write(0o700, 5, 5, 0, set())


def test_paths_under_mounts():
    mounts = [{"destination": "/data"}, {"destination": "/data/cache"}]
    assert ci.under("/data/x", "/data") and not ci.under("/database", "/data")
    assert ci.mount_for("/data/cache/a", mounts)["destination"] == "/data/cache"
    assert ci.mount_for("/etc/x", mounts) is None
    assert ci.paths_in("touch: /data/out.txt: Read-only file system") == ["/data/out.txt"]
    assert ci.paths_in("Error: EROFS: read-only file system, open '/app/.cache/x.json'") == ["/app/.cache/x.json"]


def test_user_lookup_through_the_image_passwd():
    passwd = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
    assert ci.user_spec("node") == ("node", None) and ci.user_spec("") == ("0", None) and ci.user_spec("1000:50") == ("1000", "50")
    assert ci.passwd_lookup(passwd, "node") == (1000, 1000)
    assert ci.passwd_lookup(passwd, "nobody") is None


def test_engine_api_log_frames():
    raw = b"\x01\x00\x00\x00\x00\x00\x00\x03ok\n" + b"\x02\x00\x00\x00\x00\x00\x00\x05boom\n"
    assert ci.demux_logs(raw) == "ok\nboom\n"
    assert ci.demux_logs(b"plain tty text\n") == "plain tty text\n"


def test_fdinfo_and_sigcgt():
    assert ci.fd_writes("pos:\t0\nflags:\t0100001\nmnt_id:\t30\n")
    assert ci.fd_writes("flags:\t02\n")
    assert not ci.fd_writes("pos:\t0\nflags:\t0100000\n")
    assert 15 in ci.sigcgt("SigCgt:\t0000000000004000\n")
    assert 15 not in ci.sigcgt("SigCgt:\t0000000000000000\n")


def test_inspect_never_keeps_environment_values():
    config = {"Env": ["API_TOKEN=sk-live-1", "PATH=/bin"], "User": "node", "WorkingDir": "/app", "Cmd": ["node", "server.js"]}
    item = {"Id": "a" * 64, "Name": "/api", "Config": config,
            "State": {"Status": "running", "Running": True, "Pid": 42, "Health": {"Status": "unhealthy", "FailingStreak": 3,
                                                                                  "Log": [{"ExitCode": 1, "Output": "down\n"}]}},
            "HostConfig": {"Memory": 268435456, "NanoCpus": 500000000, "PidsLimit": 100, "Init": True, "NetworkMode": "bridge"},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}},
            "Mounts": [{"Type": "bind", "Source": "/srv/data", "Destination": "/app/data", "RW": False, "Mode": "ro"}]}
    box = ci.container(item, 0)
    assert box["env_keys"] == ["API_TOKEN", "PATH"] and "sk-live-1" not in repr(box)
    assert box["limits"] == {"memory_bytes": 268435456, "cpus": 0.5, "pids": 100}
    assert box["ports"] == ["127.0.0.1:18080->8080/tcp"] and box["init"] is True
    assert box["health"]["status"] == "unhealthy" and box["health"]["last_output"] == "down"
    assert box["mounts"][0]["rw"] is False and box["mounts"][0]["options"] == ["ro"]


def test_socket_lookup_from_the_environment(tmp_path):
    sock = tmp_path / "docker.sock"
    sock.write_text("")
    assert ce.socket_path("docker", {"DOCKER_HOST": "unix://%s" % sock}) == str(sock)
    assert ce.socket_path("docker", {"DOCKER_HOST": "tcp://10.0.0.1:2375"}) in (None, "/var/run/docker.sock", "/run/docker.sock")


def test_no_runtime_is_not_present_and_healthy():
    collector = ContainersCollector(procfs.ProcFS("/proc"), procfs.CgroupFS("/sys/fs/cgroup"), find=lambda name: None, environ={})
    result = collector.run()
    assert result["facts"]["runtimes"] == {"docker": "not present", "podman": "not present"}
    assert result["findings"] == [] and result["incomplete"] == []


def test_a_podman_that_never_stored_anything_is_not_asked(tmp_path, monkeypatch):
    """Diagnosis changes nothing: the podman client creates its storage on first use, so without storage it is not run."""
    calls = []
    monkeypatch.setattr(os.path, "isdir", lambda path, real=os.path.isdir: False if "containers/storage" in str(path) else real(path))
    collector = ContainersCollector(procfs.ProcFS("/proc"), procfs.CgroupFS("/sys/fs/cgroup"), runtimes=["podman"],
                                    find=lambda name: "/usr/bin/" + name, runner=lambda *a, **k: calls.append(a) or (0, "[]", ""),
                                    environ={"HOME": str(tmp_path)})
    result = collector.run()
    assert result["facts"]["runtimes"] == {"podman": "present, never used (no container storage)"} and calls == []


def test_family_refuses_bad_options():
    family = ContainersFamily()
    for raw, words in (({"runtimes": ["lxc"]}, "runtimes takes docker and podman"), ({"patterns": ["("]}, "patterns has an invalid"),
                       ({"command_timeout": 0.1}, "command_timeout must be between")):
        params = collectors.validated(family, raw)
        params["thresholds"] = {}
        with pytest.raises(ValueError, match=words):
            family.collect(None, params)


def test_registry_shares_suffixes_with_services():
    entries = dict((v["suffix"], v) for v in collectors.role_variables())
    assert {"services", "containers"} <= set(entries["container_runtimes"]["families"])
    assert {"services", "containers"} <= set(entries["command_timeout"]["families"])
    assert entries["container_patterns"]["spec"]["default"] == []
