"""The services family on synthetic and recorded input: its parsers (svc_parse), the collector with a fake command
runner and a synthetic /proc, its option checks, and its rules (every template key present in the evidence)."""
import os
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import procfs
from ansible_collections.agentops.runbooks.plugins.module_utils import svc_parse as sp
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import services
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

from helpers import REPO, FakeProc

FIXTURES = os.path.join(REPO, "tests", "fixtures", "services")
UNITS = ["agent-worker.service", "agent-api.service", "ghost.service"]
# pm2 6.0.9's own log (PM2_HOME/pm2.log) as it wrote it in a crash loop on this machine.
PM2_LOG = """2026-11-27T06:37:05: PM2 log: App [crashy:0] starting in -fork mode-
2026-11-27T06:37:05: PM2 log: App [crashy:0] online
2026-11-27T06:37:06: PM2 log: App [crashy:0] exited with code [1] via signal [SIGINT]
2026-11-27T06:37:06: PM2 log: App [crashy:0] starting in -fork mode-
2026-11-27T06:37:07: PM2 log: App [crashy:0] exited with code [1] via signal [SIGINT]
2026-11-27T06:37:08: PM2 log: App [other:1] exited with code [0] via signal [SIGINT]
"""


def recorded_show():
    with open(os.path.join(FIXTURES, "systemctl_show.txt")) as handle:
        return handle.read()


# ------------------------------------------------------------------ parsers
def test_recorded_systemctl_show_blocks_are_matched_to_the_units_asked():
    shown = sp.systemctl_show(recorded_show(), UNITS)
    assert sorted(shown) == sorted(UNITS)
    worker = sp.unit_state("agent-worker.service", shown["agent-worker.service"])
    assert worker["looping"] and worker["restarts"] == 17 and worker["restart_delay_seconds"] == pytest.approx(0.1)
    assert worker["last_run_seconds"] == pytest.approx(1.119, abs=0.001) and worker["exit_status"] == 1
    assert sp.cycle_estimate(worker) == 17  # one cycle of 1.2 s would allow 492 in 10 minutes; 17 were counted
    api = sp.unit_state("agent-api.service", shown["agent-api.service"])
    assert not api["looping"] and api["restarts"] == 0 and sp.cycle_estimate(api) is None
    assert sp.unit_state("ghost.service", shown["ghost.service"])["load_state"] == "not-found"


def test_recorded_systemctl_show_with_a_unit_left_out_matches_the_rest_by_id():
    text = recorded_show().split("\n\n", 1)[1]
    assert sorted(sp.systemctl_show(text, UNITS)) == ["agent-api.service", "ghost.service"]


@pytest.mark.parametrize("text, seconds", [("100ms", 0.1), ("5s", 5.0), ("1min 30s", 90.0), ("2h", 7200.0), ("250000", 0.25),
                                           ("infinity", None), ("", None), ("3 fortnights", None)])
def test_systemd_time_spans(text, seconds):
    assert sp.timespan(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_journal_short_unix_lines_keep_the_identifier():
    lines = sp.journal_lines("-- No entries --\n1795761647.61 web-1 systemd[1]: agent.service: Scheduled restart job, restart counter "
                             "is at 3.\n1795761647.7 web-1 node[4410]: Error: connect ECONNREFUSED 10.0.0.5:6379\n")
    assert lines == [(1795761647.61, "systemd[1]", "agent.service: Scheduled restart job, restart counter is at 3."),
                     (1795761647.7, "node[4410]", "Error: connect ECONNREFUSED 10.0.0.5:6379")]


def test_pm2_log_exits_per_app_within_the_window():
    lines = PM2_LOG.splitlines()
    exits = sp.pm2_exits(lines)
    assert len(exits[("crashy", "0")]) == 2 and len(exits[("other", "1")]) == 1
    last = exits[("crashy", "0")][-1]
    assert sp.pm2_exits(lines, now=last + 1, window=1.5) == {("crashy", "0"): [last], ("other", "1"): [last + 1]}


def test_pm2_jlist_gives_counters_and_never_the_environment():
    now = time.time()
    apps = sp.pm2_jlist('[PM2][WARN] something\n[{"name": "w", "pm_id": 3, "pid": 77, "pm2_env": {"status": "online", '
                        '"restart_time": 17, "unstable_restarts": 2, "created_at": %d, "pm_uptime": %d, "DATABASE_URL": '
                        '"postgres://u:secret@db/x", "env": {"API_KEY": "x"}, "pm_err_log_path": "/l/w-error.log"}}]'
                        % ((now - 25) * 1000, (now - 1) * 1000))
    app = sp.pm2_app(apps[0], now)
    assert app["restarts"] == 17 and app["unstable_restarts"] == 2 and app["status"] == "online" and app["pm_id"] == 3
    assert app["uptime_seconds"] == pytest.approx(1, abs=0.1) and app["err_log"] == "/l/w-error.log"
    assert "secret" not in repr(app) and "API_KEY" not in repr(app)
    with pytest.raises(ValueError):
        sp.pm2_jlist("[PM2] Spawning PM2 daemon")


@pytest.mark.parametrize("line, service, port, host", [
    ("Error: connect ECONNREFUSED 127.0.0.1:5432", "PostgreSQL", 5432, "127.0.0.1"),
    ("Error: connect ECONNREFUSED ::1:6379", "Redis", 6379, "::1"),
    ("connect ECONNREFUSED [::1]:5432 (pg pool)", "PostgreSQL", 5432, "::1"),
    ("ECONNREFUSED 10.0.0.9:7001", None, 7001, "10.0.0.9"),
])
def test_econnrefused_names_the_likely_dependency(line, service, port, host):
    dep = sp.dependency(line)
    assert (dep["service"], dep["port"], dep["host"]) == (service, port, host)
    assert ("%s:%d" % (host, port)) in dep["text"]


def test_no_dependency_without_econnrefused():
    assert sp.dependency("TypeError: x is not a function") is None and sp.dependency(None) is None


def test_the_last_error_skips_stack_frames_and_prefers_an_error_line():
    assert sp.last_error(["Error: connect ECONNREFUSED 127.0.0.1:5432",
                          "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)", "shutting down"]) == \
        "Error: connect ECONNREFUSED 127.0.0.1:5432"
    assert sp.last_error(["all fine", "still fine"]) == "still fine" and sp.last_error([]) is None


def test_the_tail_is_a_bounded_read_from_the_end(tmp_path):
    log = tmp_path / "big-error.log"
    with open(str(log), "w") as handle:
        for number in range(200000):
            handle.write("line %d\n" % number)
        handle.write("\n\nError: last one\n\n")
    lines = sp.tail_lines(str(log), max_bytes=4096, lines=3)
    assert lines == ["line 199998", "line 199999", "Error: last one"]
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    with pytest.raises(OSError):
        sp.tail_lines(str(fifo))


def test_docker_inspect_state():
    now = sp.parse_iso("2026-11-27T06:40:00Z")
    state = sp.container_state({"Id": "ab" * 32, "Name": "/w", "RestartCount": 4, "Created": "2026-11-27T06:36:00.5Z",
                                "State": {"Status": "restarting", "ExitCode": 1, "OOMKilled": True, "StartedAt": "2026-11-27T06:39:50Z",
                                          "FinishedAt": "2026-11-27T06:39:52.25Z"},
                                "HostConfig": {"RestartPolicy": {"Name": "always"}}}, now)
    assert state == dict(state, name="w", restarts=4, restart_policy="always", oom_killed=True, last_run_seconds=2.25,
                         created="2026-11-27T06:36:00Z")


@pytest.mark.parametrize("entries, units", [
    (["agent", "worker.service", "agent"], ["agent.service", "worker.service"]),
    ([{"pattern": "node", "unit": "agent"}, {"pattern": "claude", "command": ["/usr/bin/true"]}], ["agent.service"]),
    ([], []),
])
def test_services_take_unit_names_or_the_remediation_entries(entries, units):
    assert sp.service_units(entries) == units


@pytest.mark.parametrize("entries, sentence", [
    ([{"pattern": "node"}], "services entry 'node' needs a unit or a command."),
    (["--now"], "services entry '--now' is not a systemd unit name."),
    ([7], "services entries must be unit names or {pattern, unit, command} mappings, got 7."),
])
def test_bad_services_entries_are_one_sentence(entries, sentence):
    with pytest.raises(ValueError) as error:
        sp.service_units(entries)
    assert str(error.value) == sentence


# ------------------------------------------------------------------ the collector
class Runner(object):
    """A fake command runner: answers by program name from a table, records what was asked."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def __call__(self, argv, timeout, env=None, uid=None):
        self.asked.append(argv)
        answer = self.answers[os.path.basename(argv[0])]
        return answer(argv) if callable(answer) else answer


def collector(tmp_path, runner, units=(), monkeypatch=None, bins=(), pm2="auto", runtimes=()):
    proc = FakeProc(tmp_path / "proc")
    if monkeypatch is not None:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        for name in bins:
            path = bindir / name
            path.write_text("#!/bin/sh\nexit 99\n")
            path.chmod(0o755)
        monkeypatch.setattr(services, "SEARCH_DIRS", ())
        monkeypatch.setenv("PATH", str(bindir))
    return proc, services.ServicesCollector(procfs.ProcFS(proc.root), procfs.compile_patterns(["node"]), list(units), pm2, 5.0, {},
                                            runner=runner, runtimes=runtimes)


def test_recorded_systemctl_without_journalctl_estimates_restarts_from_the_unit_timing(tmp_path, monkeypatch):
    runner = Runner({"systemctl": (0, recorded_show(), "")})
    _proc, coll = collector(tmp_path, runner, UNITS, monkeypatch, bins=("systemctl",))
    result = coll.run()
    loop, = [f for f in result["findings"] if f["id"] == "services.crash_loop"]
    assert loop["evidence"]["rate_source"] == "unit timing" and loop["evidence"]["recent_restarts"] == 17
    assert loop["severity"] == "critical" and "a run of 1.119 s plus a restart delay of 0.1 s" in loop["symptom"]
    assert loop["evidence"]["last_error"] == "(no error line was read)" and loop["evidence"]["dependency_note"] == ""
    assert [f["id"] for f in result["findings"]] == ["services.crash_loop", "services.unknown_unit"]
    assert runner.asked[0][-4:] == ["--"] + UNITS


def test_a_failed_unit_that_hit_its_start_limit_is_down(tmp_path, monkeypatch):
    show = ("Restart=always\nRestartUSec=100ms\nNRestarts=5\nExecMainStatus=1\nResult=start-limit-hit\nId=agent.service\n"
            "LoadState=loaded\nActiveState=failed\nSubState=failed\n")
    _proc, coll = collector(tmp_path, Runner({"systemctl": (0, show, "")}), ["agent"], monkeypatch, bins=("systemctl",))
    down, = coll.run()["findings"]
    assert down["id"] == "services.down" and down["severity"] == "high"
    assert "systemd stopped restarting it (result start-limit-hit, exit status 1)" in down["symptom"]


@pytest.mark.parametrize("bins, answer, state, incomplete", [
    ((), None, "not present (no systemctl)", False),
    (("systemctl",), (1, "", "System has not been booted with systemd as init system (PID 1). Can't operate.\n"), "not running", False),
    (("systemctl",), (1, "", "Failed to connect to bus: Permission denied\n"), "answered", True),
])
def test_systemctl_absent_or_without_systemd_is_not_a_failure_but_an_error_is_incomplete(tmp_path, monkeypatch, bins, answer, state,
                                                                                         incomplete):
    _proc, coll = collector(tmp_path, Runner({"systemctl": answer}), ["agent"], monkeypatch, bins=bins)
    result = coll.run()
    assert result["facts"]["systemd"]["state"].startswith(state.replace("answered", "no units")) or incomplete
    assert bool(result["incomplete"]) == incomplete
    if incomplete:
        assert result["findings"][0]["id"] == "services.check_incomplete" and result["findings"][0]["severity"] == "unknown"
        assert "Permission denied" in result["incomplete"][0]["error"]


def test_units_come_from_the_agent_processes_cgroups(tmp_path, monkeypatch):
    runner = Runner({"systemctl": (0, "Id=agent-api.service\nLoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\n"
                                      "Result=success\n", "")})
    proc, coll = collector(tmp_path, runner, (), monkeypatch, bins=("systemctl",))
    proc.process(4242, comm="node", argv=["node", "/srv/api/server.js"])
    proc.write("4242/cgroup", "0::/system.slice/agent-api.service\n")
    proc.process(4243, comm="bash", argv=["bash"])
    proc.write("4243/cgroup", "0::/system.slice/other.service\n")
    result = coll.run()
    assert result["facts"]["systemd"]["units"][0]["source"] == "cgroup of pid 4242"
    assert runner.asked[0][-2:] == ["--", "agent-api.service"] and result["findings"] == []


def test_a_pm2_daemon_without_a_pm2_command_is_incomplete_and_none_is_never_started(tmp_path, monkeypatch):
    runner = Runner({})
    proc, coll = collector(tmp_path, runner, (), monkeypatch)
    proc.process(900, comm="PM2 v6.0.9: God", argv=["PM2 v6.0.9: God Daemon (/home/agent/.pm2)"])
    result = coll.run()
    assert result["facts"]["pm2"]["daemons"] == [{"pid": 900, "home": "/home/agent/.pm2", "user": "root"}]
    assert "no pm2 command was found" in result["incomplete"][0]["error"] and runner.asked == []


def test_a_cut_daemon_title_takes_pm2_home_from_its_environment(tmp_path, monkeypatch):
    proc, coll = collector(tmp_path, Runner({}), (), monkeypatch)
    proc.process(901, comm="PM2 v6.0.9: God", argv=["PM2 v6.0.9: God Daemon (/tmp/pytest-of-root/pyt"])
    proc.write("901/environ", "HOME=/root\0PM2_HOME=/tmp/pytest-of-root/pytest-9/pm2\0")
    assert coll.run()["facts"]["pm2"]["daemons"][0]["home"] == "/tmp/pytest-of-root/pytest-9/pm2"


def test_recorded_docker_that_times_out_is_incomplete_not_healthy(tmp_path, monkeypatch):
    def hang(argv):
        raise OSError(0, "docker did not answer within 5.0 s")
    _proc, coll = collector(tmp_path, Runner({"docker": hang}), (), monkeypatch, bins=("docker",), runtimes=("docker", "podman"))
    result = coll.run()
    docker = os.path.join(str(tmp_path), "bin", "docker")
    assert result["incomplete"] == [{"check": "docker ps (%s)" % docker, "error": "docker did not answer within 5.0 s"}]
    assert result["facts"]["containers"]["docker"] == {"state": "failed to answer"}
    assert result["facts"]["containers"]["podman"] == {"state": "not present"}


def test_a_docker_without_its_client_is_read_through_its_api_socket(tmp_path, monkeypatch):
    """The same way to Docker as the containers family (ctr_engine.reach): no docker command, but the Engine API on a
    unix socket (a stand-in server here, answering with the recorded docker inspect) - the restart loop is found."""
    import json
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler

    with open(os.path.join(FIXTURES, "docker_inspect.json")) as handle:
        text = handle.read()
    now = time.time()
    for seconds in set(int(n) for n in __import__("re").findall(r"@NOW-(\d+)@", text)):
        text = text.replace("@NOW-%d@" % seconds, time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(now - seconds)))
    items = json.loads(text)
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            if self.path == "/containers/json?all=1":
                body = [{"Id": item["Id"], "Names": [item["Name"]]} for item in items]
            else:
                body = [item for item in items if self.path == "/containers/%s/json" % item["Id"]][0]
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

        def address_string(self):
            return "unix"

    sock = str(tmp_path / "docker.sock")
    server = socketserver.ThreadingUnixStreamServer(sock, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("DOCKER_HOST", "unix://" + sock)
        _proc, coll = collector(tmp_path, Runner({}), (), monkeypatch, runtimes=("docker",))
        result = coll.run()
    finally:
        server.shutdown()
        server.server_close()
    assert result["facts"]["containers"]["docker"]["state"] == "answered (api unix://%s)" % sock
    assert result["facts"]["containers"]["docker"]["listed"] == len(items) and asked[0] == "/containers/json?all=1"
    loop, = [f for f in result["findings"] if f["id"] == "services.crash_loop"]
    assert loop["subject"] == "docker agent-worker" and loop["evidence"]["restarts"] == 9
    assert result["incomplete"] == []


def test_real_run_command_kills_what_runs_past_its_time():
    began = time.monotonic()
    with pytest.raises(OSError) as error:
        services.run_command(["sleep", "30"], 0.5)
    assert time.monotonic() - began < 5 and "did not answer within 0.5 s" in str(error.value)
    assert services.run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], 5) == (3, "out\n", "err\n")


# ------------------------------------------------------------------ the family
def family_run(options):
    return collectors.run(None, ["services"], {"services": options}, {"thresholds": {}, "redaction_key": "k"}, timeout=60)["services"]


@pytest.mark.parametrize("options, sentence", [
    ({"command_timeout": 0.5}, "command_timeout must be between 1 and 120 seconds, got 0.5."),
    ({"runtimes": ["lxc"]}, "runtimes takes docker and podman, got lxc."),
    ({"pm2": "bin/pm2"}, "pm2 must be auto or an absolute path, got 'bin/pm2'."),
    ({"patterns": []}, "patterns must name at least one process pattern."),
    ({"services": [{"pattern": "node"}]}, "services entry 'node' needs a unit or a command."),
])
def test_options_out_of_range_fail_the_family_with_one_sentence(options, sentence):
    result = family_run(options)
    assert result["status"] == "failed" and result["error"] == sentence


def test_the_family_is_registered_with_its_registry_attributes():
    family = collectors.BY_NAME["services"]
    assert family.redacts and family.enabled_by is None and family.secrets == {}
    assert family.variables["patterns"] == "process_patterns" and family.variables["services"] == "services"
    assert set(family.variables) <= set(family.options) and set(family.ranges) <= set(family.options)
    assert family.options["patterns"]["default"] == ["node", "claude", "npx", "npm"]


def test_every_template_key_of_the_rules_is_in_the_evidence_the_collector_emits(tmp_path, monkeypatch):
    show = recorded_show() + "\n\nRestart=always\nNRestarts=2\nResult=exit-code\nId=gone.service\nLoadState=loaded\nActiveState=failed\n" \
        "SubState=failed\n"
    journal = "%f web-1 node[1]: Error: connect ECONNREFUSED 127.0.0.1:5432\n" % time.time() + "".join(
        "%f web-1 systemd[1]: agent-worker.service: Scheduled restart job, restart counter is at %d.\n" % (time.time() - n, n)
        for n in range(6))
    runner = Runner({"systemctl": (0, show, ""), "journalctl": (0, journal, "")})
    _proc, coll = collector(tmp_path, runner, UNITS + ["gone.service"], monkeypatch, bins=("systemctl", "journalctl"))
    coll._incomplete("pm2 jlist", "boom")  # pylint: disable=protected-access
    found = coll.run()["findings"]
    assert set(f["id"] for f in found) == set(r for r in RULES if r.startswith("services."))
    for finding in found:
        rule = RULES[finding["id"]]
        for template in (rule["symptom"], rule["diagnosis"]):
            missing = [name for name in fm.template_fields(template) if name not in finding["evidence"]]
            assert missing == [], (finding["id"], missing)
        assert "{" not in finding["symptom"] + finding["diagnosis"]
        if rule["thresholds"]:
            assert all(key in finding["evidence"] for key in ("count", "first_seen", "last_seen"))
