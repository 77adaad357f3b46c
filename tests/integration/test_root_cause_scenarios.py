"""The probable root cause on real scenarios, through the real playbook (playbooks/diagnose.yml on this machine).

1. PostgreSQL saturated by one application: a throwaway cluster (tests/pgcluster.py) whose 9 usable slots the
   application "manager" holds, plus a log in which manager says "sorry, too many clients already" and its caller
   (the gateway) then logs ECONNREFUSED.
2. Memory leak -> OOM kill -> restart -> WebSocket 1006: a real leaking Node app under a real pm2 (scripts/npm_tools.sh)
   whose daemon runs in a memory cgroup the test makes; the kernel OOM-kills the app, pm2 restarts it, and the
   monitor's log (written by the test) shows the dropped WebSockets (code 1006).
3. Disk full -> ENOSPC -> crash loop: a small ext4 filesystem on a loop device, mounted in this test's own mount
   namespace and filled by the test; a real Node app under pm2 fails to write there, logs ENOSPC and exits; pm2
   restarts it.

Run inside a PID (and mount) namespace of its own (scripts/pidns.py --unshare); each scenario acts only on what it made.
Each prints the first 20 lines of its report.md.
"""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from helpers import COLLECTIONS_PATH, REPO

BIN = os.path.dirname(sys.executable)
MB = 1024 * 1024


def stamp(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".000Z"


def diagnose(tmp_path, incident, variables, extra_env=None):
    """Run diagnose.yml on localhost with ``variables``; return (report, report.md)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
                         % sys.executable)
    variables = dict({"agentops_report_dir": str(tmp_path / "incidents"), "agentops_incident_id": incident}, **variables)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_NOCOLOR="1", **(extra_env or {}))
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    run = subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/diagnose.yml", "-i", str(inventory), "-e", json.dumps(variables)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    directory = tmp_path / "incidents" / incident
    report = json.loads((directory / "report.json").read_text())
    markdown = (directory / "report.md").read_text()
    print("\n----- first 20 lines of report.md (%s) -----\n%s" % (incident, "\n".join(markdown.splitlines()[:20])))
    return report, markdown


def chain_of(report):
    assert report["root_cause"], "no root cause: %s" % json.dumps(report["summary"]["by_rule"])
    return [step["rule"] for step in report["root_cause"]["chain"]]


def section(markdown, title):
    start = markdown.index("## %s" % title)
    return markdown[start:markdown.index("\n## ", start + 3)]


def explained_rules(report):
    return set(f["id"] for r in report["hosts"].values() for f in r["findings"] if f.get("explained_by"))


@pytest.fixture(scope="module")
def pm2_bin():
    run = subprocess.run(["bash", os.path.join(REPO, "scripts", "npm_tools.sh")], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    path = os.path.join(run.stdout.strip().splitlines()[-1], "pm2")
    assert os.path.isfile(path)
    return path


class Pm2(object):
    """A pm2 daemon of this test's own (PM2_HOME under tmp_path), killed at the end."""

    def __init__(self, binary, home):
        self.binary, self.home = binary, str(home)
        self.env = dict(os.environ, PM2_HOME=self.home)

    def run(self, *args, preexec_fn=None):
        return subprocess.run([self.binary] + list(args), env=self.env, capture_output=True, text=True, timeout=120, check=True,
                              preexec_fn=preexec_fn)  # pylint: disable=subprocess-popen-preexec-fn

    def restarts(self, name):
        out = self.run("jlist").stdout
        apps = [a for a in json.loads(out[out.index("["):]) if a["name"] == name]
        return apps[0]["pm2_env"]["restart_time"] if apps else 0

    def wait_restarts(self, name, count, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.restarts(name) >= count:
                return
            time.sleep(0.5)
        pytest.fail("pm2 did not restart %s %d times within %d s" % (name, count, timeout))

    def wait_running(self, name, ready, timeout=60):
        """Until the running instance of ``name`` (its pid) passes ``ready(pid)``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("jlist").stdout
            apps = [a for a in json.loads(out[out.index("["):]) if a["name"] == name]
            if apps and apps[0]["pm2_env"].get("status") == "online" and apps[0].get("pid") and ready(apps[0]["pid"]):
                return
            time.sleep(0.3)
        pytest.fail("no instance of %s became ready within %d s" % (name, timeout))

    def kill(self):
        subprocess.run([self.binary, "kill"], env=self.env, capture_output=True, timeout=60, check=False)


@pytest.fixture
def pm2(pm2_bin, tmp_path):
    home = tmp_path / "pm2"
    home.mkdir()
    daemon = Pm2(pm2_bin, home)
    yield daemon
    daemon.kill()


# ------------------------------------------------------------------ 1. PostgreSQL saturated by one application
def test_postgres_saturated_by_one_application_is_the_root_of_its_log_errors_and_its_callers_refusals(tmp_path, pg_server, sessions):
    sessions.open(user="agent", application="manager", count=9)  # every usable slot (9 of 12, 3 reserved)
    now = time.time()
    lines = ["[%s] [INFO] [gateway] request ok in 12ms" % stamp(now - 600 + n) for n in range(0, 600, 2)]
    lines += ["[%s] [ERROR] [manager] error: sorry, too many clients already" % stamp(now - 300 + 10 * n) for n in range(12)]
    lines += ["[%s] [ERROR] [gateway] request failed: connect ECONNREFUSED 127.0.0.1:3000" % stamp(now - 240 + 10 * n) for n in range(12)]
    log = tmp_path / "app.log"
    log.write_text("\n".join(sorted(lines, key=lambda line: line[1:25])) + "\n")
    report, markdown = diagnose(tmp_path, "RC-PG", {
        "agentops_checks": ["pg", "logs"], "agentops_log_paths": [str(log)], "agentops_log_window": 3600,
        "agentops_pg_host": pg_server["host"], "agentops_pg_port": pg_server["port"], "agentops_pg_user": "postgres",
        "agentops_pg_password": pg_server["password"]})
    chain = chain_of(report)
    assert chain[:3] == ["pg.pool_hog", "pg.saturation", "log.pg_connections"], chain
    assert "log.econnrefused" in explained_rules(report)
    cause = report["root_cause"]
    assert cause["chain"][0]["evidence_line"].startswith("Application 'manager' holds 9 of 9 usable slots")
    assert cause["first_fix"]["rule"] == "pg.pool_hog" and cause["first_fix"]["playbook"] == "agentops.runbooks.remediate_postgres"
    lines = markdown.splitlines()
    assert lines[4].startswith("- **First fix:** ") and lines[4].endswith("(`pg.pool_hog` on localhost, the probable root cause)")
    text = section(markdown, "Probable root cause")
    assert "**`pg.pool_hog` on localhost: One application holds most connections**" in text
    assert text.index("`pg.saturation`") < text.index("`log.pg_connections`")
    assert "**5 whys (draft, to confirm):**" in text
    assert pg_server["password"] not in markdown
    timeline = report["timeline"]
    assert any(e["kind"] == "first_seen" and e["rule"] == "log.pg_connections" for e in timeline)
    assert timeline[-1]["kind"] == "diagnosis"
    assert {"application": "manager", "state": "idle", "count": 9} in report["pg_connections"]["localhost"]


# ------------------------------------------------------------------ 2. leak -> OOM kill -> restart -> WebSocket 1006
LEAK_JS = """
const fs = require('fs');
// MB allocated every 100 ms, read once at start: fast while the test wants OOM kills, slow while it diagnoses
const rate = Number(fs.readFileSync(process.env.RATE_FILE, 'utf8')) || 1;
fs.appendFileSync(process.env.RATE_FILE + '.seen', process.pid + ' ' + rate + '\\n');
const keep = [];
setInterval(() => { keep.push(Buffer.alloc(Math.round(rate * 1024 * 1024), 1)); }, 100);
"""


def memory_cgroup(limit_mb):
    """(path, limit file) of a new memory cgroup of this test, or skip."""
    if os.geteuid() != 0:
        pytest.skip("a memory cgroup needs root")
    name = "agentops-rc-%s" % uuid.uuid4().hex[:8]
    root = "/sys/fs/cgroup"
    unified = root if os.path.exists(os.path.join(root, "cgroup.controllers")) else os.path.join(root, "unified")
    try:
        with open(os.path.join(unified, "cgroup.subtree_control")) as handle:
            v2 = "memory" in handle.read().split()
    except OSError:
        v2 = False
    if v2:
        path, limits = os.path.join(unified, name), {"memory.max": limit_mb * MB, "memory.swap.max": 0}
    elif os.path.isdir(os.path.join(root, "memory")):
        path, limits = os.path.join(root, "memory", name), {"memory.limit_in_bytes": limit_mb * MB}
    else:
        pytest.skip("no writable memory controller")
    os.mkdir(path)
    for key, value in limits.items():
        with open(os.path.join(path, key), "w") as handle:
            handle.write(str(value))
    return path


def test_memory_leak_oom_kill_and_restarts_are_one_chain_up_to_the_monitors_websocket_1006(tmp_path, pm2):
    cgroup = memory_cgroup(320)
    try:
        script, rate = tmp_path / "leaky.js", tmp_path / "rate"
        script.write_text(LEAK_JS)
        rate.write_text("5")  # 50 MB/s: the kernel kills it within seconds of each start
        name = "leaky-%s" % uuid.uuid4().hex[:6]

        def enter():  # pm2's daemon, forked from this child, stays in the cgroup, and so does every app it starts
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as handle:
                handle.write(str(os.getpid()))
        pm2.env["RATE_FILE"] = str(rate)
        pm2.run("start", str(script), "--name", name, "--restart-delay", "300", preexec_fn=enter)
        began = time.time()
        pm2.wait_restarts(name, 6)
        rate.write_text("0.3")  # 3 MB/s from the next start on: a clear leak that lives through the diagnosis (over a minute)
        seen = tmp_path / "rate.seen"

        def slow(pid):  # the instance running now read the slow rate when it started
            return "%d 0.3" % pid in seen.read_text().splitlines()
        pm2.wait_running(name, slow)
        time.sleep(2)
        now = time.time()
        monitor = tmp_path / "monitor.log"
        monitor.write_text("".join("[%s] [WARN] [monitor] WebSocket closed: code=1006 reason=\n" % stamp(began + (now - began) * n / 8.0)
                                   for n in range(1, 9)))
        report, markdown = diagnose(tmp_path, "RC-OOM", {
            "agentops_checks": ["host", "process", "services", "logs"], "agentops_log_paths": [str(monitor)], "agentops_log_window": 3600,
            "agentops_pm2": pm2.binary, "agentops_leak_window": 6, "agentops_leak_min_age": 0,
            # pm2 titles a fork-mode app "node <script path>": its argv[0]'s basename is the script's
            "agentops_process_patterns": ["node", "leaky.*"]})
    finally:
        pm2.kill()
        for dummy in range(50):
            try:
                os.rmdir(cgroup)
                break
            except OSError:
                time.sleep(0.2)
    chain = chain_of(report)
    # the leak fills the cgroup (proc.cgroup_memory, a step of the chain when the path goes through it), the kernel kills
    assert [rule for rule in chain if rule != "proc.cgroup_memory"][:3] == ["proc.memory_leak", "proc.oom_kill", "services.crash_loop"], chain
    assert chain[-1] == "log.ws_abnormal_close" or "log.ws_abnormal_close" in explained_rules(report)
    assert {"proc.cgroup_memory", "proc.oom_kill", "services.crash_loop", "log.ws_abnormal_close"} <= explained_rules(report)
    leak = report["root_cause"]["chain"][0]
    assert leak["first_seen"] is None and "grew" in leak["evidence_line"]
    text = section(markdown, "Probable root cause")
    assert "**`proc.memory_leak` on localhost: Agent process memory keeps growing**" in text
    kinds = set(e["kind"] for e in report["timeline"])
    assert {"oom_kill", "restart", "first_seen", "diagnosis"} <= kinds, kinds
    assert any(key.startswith("localhost ") and len(series["samples_mb"]) >= 4 for key, series in report["memory_samples"].items())


# ------------------------------------------------------------------ 3. disk full -> ENOSPC -> crash loop
WRITER_JS = """
const fs = require('fs');
// Runs past pm2's min_uptime (1 s) so that each restart counts as a stable one, then fails to write and exits.
setTimeout(() => {
  try {
    fs.writeFileSync(process.env.TARGET + '/state-' + Date.now() + '.json', Buffer.alloc(256 * 1024, 1));
  } catch (err) {
    fs.appendFileSync(process.env.APP_LOG, '[' + new Date().toISOString() + '] [ERROR] [writer] saving state failed: ' + err.message + '\\n');
    process.exit(1);
  }
}, 1200);
"""


def fill(directory):
    """Fill the filesystem of ``directory`` to the last block (as root, the blocks reserved for root too)."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (MB, 4096, 512):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
        try:
            os.fsync(fd)
        except OSError:
            pass
    finally:
        os.close(fd)


def test_a_full_disk_is_the_root_of_enospc_and_the_crash_loop(tmp_path, pm2):
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    image, mount_point = tmp_path / "small.img", tmp_path / "data"
    mount_point.mkdir()
    with open(str(image), "wb") as handle:
        handle.truncate(8 * MB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True, timeout=60)
    # pidns.py's unshare --mount-proc gave this test a mount namespace of its own: the mount is seen only here
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, capture_output=True, timeout=30)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], check=True, capture_output=True, timeout=60)
    try:
        fill(str(mount_point))
        app_log = tmp_path / "writer.log"
        app_log.write_text("")
        script = tmp_path / "writer.js"
        script.write_text(WRITER_JS)
        name = "writer-%s" % uuid.uuid4().hex[:6]
        pm2.env.update(TARGET=str(mount_point), APP_LOG=str(app_log))
        pm2.run("start", str(script), "--name", name, "--restart-delay", "200")
        pm2.wait_restarts(name, 6)
        report, markdown = diagnose(tmp_path, "RC-DISK", {
            "agentops_checks": ["host", "process", "services", "logs"], "agentops_log_paths": [str(app_log)], "agentops_log_window": 3600,
            "agentops_pm2": pm2.binary, "agentops_leak_window": 0})
    finally:
        pm2.kill()
        subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=60, check=False)
    chain = chain_of(report)
    assert chain == ["host.disk_space", "log.enospc", "services.crash_loop"], chain
    disk = report["root_cause"]["chain"][0]
    assert disk["evidence_line"].startswith("%s (ext4) is 100.0%% full" % mount_point)
    assert report["root_cause"]["first_fix"]["command"].startswith("du -xh --max-depth=2 %s" % mount_point)
    lines = markdown.splitlines()
    assert lines[4].startswith("- **First fix:** `du -xh --max-depth=2 %s" % mount_point)
    text = section(markdown, "Probable root cause")
    assert "**`host.disk_space` on localhost: Filesystem nearly full**" in text
    assert "1. [CRITICAL] `host.disk_space` on localhost: %s (ext4) is 100.0%% full" % mount_point in text
    host = section(markdown + "\n## end", "localhost")
    assert "**Explained by the root cause:**" in host and "`log.enospc`" in host and "### 1. [CRITICAL] `host.disk_space`" in host
    assert "`log.enospc`:" not in host  # listed once, not in full
