"""Helpers shared by the tests: where the collection is, synthetic /proc trees, running a module as Ansible does."""
import json
import os
import sys


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LAYOUT = os.path.dirname(os.path.dirname(os.path.dirname(REPO)))
if os.path.basename(os.path.dirname(os.path.dirname(REPO))) == "ansible_collections":
    COLLECTIONS_PATH = _LAYOUT  # running inside an installed ansible_collections/agentops/runbooks
else:
    COLLECTIONS_PATH = os.path.join(REPO, ".collections")
sys.path.insert(0, COLLECTIONS_PATH)


class FakeProc(object):
    """A synthetic /proc tree in a tmp dir: enough of proc(5) for our parsers."""

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(os.path.join(self.root, "sys", "fs"))
        os.makedirs(os.path.join(self.root, "sys", "kernel"))
        os.makedirs(os.path.join(self.root, "self"))
        self.write("loadavg", "0.50 0.40 0.30 2/180 12345\n")
        self.write("uptime", "86400.00 170000.00\n")
        self.write("cpuinfo", "processor\t: 0\n\nprocessor\t: 1\n\n")
        self.write("stat", "cpu  1 2 3 4\nbtime 1764000000\n")
        self.meminfo(total_kb=8 * 1024 * 1024, available_kb=6 * 1024 * 1024)
        self.write("sys/fs/file-nr", "1024\t0\t100000\n")
        self.write("sys/kernel/pid_max", "32768\n")
        self.write("self/mountinfo", "")

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)

    def meminfo(self, total_kb, available_kb, swap_total_kb=0, swap_free_kb=0):
        self.write("meminfo", "MemTotal: %d kB\nMemFree: 1000 kB\nMemAvailable: %d kB\nSwapTotal: %d kB\nSwapFree: %d kB\n"
                   % (total_kb, available_kb, swap_total_kb, swap_free_kb))

    def mount(self, mount_id, device, mount_point, fstype, source="/dev/vda1"):
        path = os.path.join(self.root, "self", "mountinfo")
        with open(path, "a") as handle:
            handle.write("%d 1 %s / %s rw,relatime shared:1 - %s %s rw\n" % (mount_id, device, mount_point, fstype, source))

    def process(self, pid, comm="node", state="S", ppid=1, argv=None, threads=1, rss_pages=1000, starttime=100,
                fds=3, fd_limit=1024, flags=0):
        base = str(pid)
        fields = [state, ppid, pid, pid, 0, -1, flags] + [0] * 4 + [10, 5, 0, 0, 20, 0, threads, 0, starttime, 123456, rss_pages]
        fields += [0] * 20
        self.write(os.path.join(base, "stat"), "%d (%s) %s\n" % (pid, comm, " ".join(str(f) for f in fields)))
        self.write(os.path.join(base, "cmdline"), "\0".join(argv if argv is not None else [comm]) + ("\0" if argv != [] else ""))
        limit = "unlimited" if fd_limit is None else str(fd_limit)
        self.write(os.path.join(base, "limits"),
                   "Limit                     Soft Limit           Hard Limit           Units     \n"
                   "Max open files            %-20s %-20s files     \n" % (limit, limit))
        fd_dir = os.path.join(self.root, base, "fd")
        os.makedirs(fd_dir, exist_ok=True)
        for number in range(fds):
            open(os.path.join(fd_dir, str(number)), "w").close()


def run_module(module, args, timeout=60):
    """Run a module as Ansible would (its own process, JSON args file); return (rc, parsed JSON or raw text)."""
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_PATH)
    try:
        proc = subprocess.run([sys.executable, "-m", "ansible_collections.agentops.runbooks.plugins.modules." + module, handle.name],
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
    finally:
        os.unlink(handle.name)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, proc.stdout + proc.stderr


def changes_state(command):
    """Fix commands that change something (remediation playbooks, GRANT): checked for filled values, never run."""
    return command.startswith(("ansible-playbook ", "ansible ")) or "GRANT " in command


def run_fix_commands(report, timeout=60):
    """Run every read-only fix command of a report as printed (sh -c); return [(command, rc, output)] of those that
    failed or still hold a placeholder. The commands of a report must run on the host they were written for."""
    import re
    import subprocess
    bad = []
    for record in report["hosts"].values():
        for finding in record.get("findings") or []:
            command = (finding.get("fix") or {}).get("command")
            if not command:
                continue
            if re.search(r"(?<!\$)\{[a-z_]+\}|\bHOST\b|<[a-z_]+>", command):
                bad.append((command, None, "placeholder left"))
                continue
            if changes_state(command):
                continue
            run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False)
            if run.returncode != 0:
                bad.append((command, run.returncode, (run.stdout + run.stderr)[-300:]))
    return bad


def alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
