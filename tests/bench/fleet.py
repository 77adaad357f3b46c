"""The fleet benchmark (`run.py fleet`): diagnose.yml against a one-task ping playbook on 20 real SSH hosts.

Each host is a network namespace made for this run (agentops-bench-<token>-NN) with a veth pair to the root
namespace on its own /30 and an sshd of its own (throwaway host and client keys in the bench's temporary
directory). The namespaces share this machine's filesystem and process table, so every host reports the same
processes and mounts: the figure is the cost of the collection's code over SSH, not of 20 different machines.
Pipelining on, forks 10. Each run starts cold (its own ControlPath directory, closed after the run), as an
operator's first run in an incident does. Target: diagnose <= 1.5x ping, both measured in the same run.

sshd comes from openssh-server: if /usr/sbin/sshd is missing, the bench installs it (apt-get, as root) - the
test suite does not need it, so scripts/system_deps.sh does not list it.
Everything it makes is removed in `finally`: its sshd processes (by the pid files it wrote) and whatever else
runs inside its namespaces (their session processes), its veth pairs and its namespaces (only those named with
this run's token).
"""
import ipaddress
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time

HOSTS = 20
FORKS = 10
TARGET = 1.5
SSHD = "/usr/sbin/sshd"
PYTHON = "/usr/bin/python3"  # Debian's 3.11: what a root ssh session on these hosts runs (no pyenv shim)


def run_module():
    """run.py's REPO, BIN, RUNS and env(): imported here, not at the top, as run.py imports this file."""
    import run
    return run


def check(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        sys.exit("bench fleet: %s failed: %s" % (" ".join(argv), proc.stderr.strip()[-1000:]))
    return proc.stdout


def ensure_sshd():
    """Install openssh-server if sshd is missing (policy-rc.d on these machines keeps apt from starting it)."""
    if os.path.exists(SSHD):
        return
    print("bench fleet: installing openssh-server (sshd is missing)", flush=True)
    apt = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server"]
    if subprocess.run(install, env=apt, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=apt, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=apt, stdout=subprocess.DEVNULL, check=True)
    if not os.path.exists(SSHD):
        sys.exit("bench fleet: openssh-server installed but %s is still missing" % SSHD)


def taken_networks():
    """Every IPv4 network already on this machine's interfaces or routes (root namespace)."""
    taken = []
    for line in check(["ip", "-4", "-o", "addr", "show"]).splitlines():
        fields = line.split()
        if "inet" in fields:
            taken.append(ipaddress.ip_network(fields[fields.index("inet") + 1], strict=False))
    for line in check(["ip", "-4", "route", "show", "table", "all"]).splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("broadcast", "local", "unicast") and len(line.split()) > 1:
            first = line.split()[1]
        try:
            taken.append(ipaddress.ip_network(first if first != "default" else "0.0.0.0/32", strict=False))
        except ValueError:
            pass
    return taken


def pick_block():
    """A 10.X.0.0/16 with nothing of this machine in it (X random in 200..250, so concurrent runs rarely meet)."""
    taken = taken_networks()
    candidates = list(range(200, 251))
    random.shuffle(candidates)
    for second in candidates:
        block = ipaddress.ip_network("10.%d.0.0/16" % second)
        if not any(block.overlaps(net) for net in taken if net.prefixlen > 0):
            return second
    sys.exit("bench fleet: no free 10.X.0.0/16 (X in 200..250) for the namespaces")


def wait_for_ssh(address, deadline):
    """Until sshd at address:22 sends its banner (the first connections may be refused for ~1 s)."""
    while True:
        try:
            with socket.create_connection((address, 22), timeout=2) as conn:
                conn.settimeout(2)
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit("bench fleet: sshd at %s did not answer" % address)
        time.sleep(1.0)


class Fleet:
    """The namespaces, veth pairs and sshd processes of one run; `close` removes all of them."""

    def __init__(self, tmp):
        self.tmp = os.path.join(tmp, "fleet")
        os.makedirs(self.tmp)
        self.token = secrets.token_hex(4)
        self.namespaces = []  # made so far: (name, root-side veth)
        self.sshd = []  # (Popen, pid file)
        self.hosts = []  # (inventory name, address)

    def name(self, index):
        return "agentops-bench-%s-%02d" % (self.token, index)

    def keys(self):
        host_key = os.path.join(self.tmp, "ssh_host_ed25519_key")
        client_key = os.path.join(self.tmp, "id_ed25519")
        for path in (host_key, client_key):
            check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "agentops-bench-%s" % self.token, "-f", path])
        authorized = os.path.join(self.tmp, "authorized_keys")
        with open(client_key + ".pub") as source, open(authorized, "w") as target:
            target.write(source.read())
        os.chmod(authorized, 0o600)
        config = os.path.join(self.tmp, "sshd_config")
        with open(config, "w") as handle:
            handle.write("\n".join([
                "Port 22", "HostKey %s" % host_key, "AuthorizedKeysFile %s" % authorized,
                "PermitRootLogin prohibit-password", "PubkeyAuthentication yes", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "UseDNS no", "PrintMotd no",
                "MaxStartups 200", "MaxSessions 100", "LogLevel ERROR", "Subsystem sftp internal-sftp", ""]))
        return client_key, config

    def start(self):
        client_key, config = self.keys()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        second = pick_block()
        for index in range(1, HOSTS + 1):
            namespace = self.name(index)
            outer, inner = "ab%s%02dh" % (self.token, index), "ab%s%02dn" % (self.token, index)  # <= 15 characters
            subnet = ipaddress.ip_network("10.%d.%d.0/30" % (second, index))
            near, far = [str(address) for address in subnet.hosts()]
            check(["ip", "netns", "add", namespace])
            self.namespaces.append((namespace, None))
            check(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
            self.namespaces[-1] = (namespace, outer)
            check(["ip", "link", "set", inner, "netns", namespace])
            check(["ip", "addr", "add", "%s/30" % near, "dev", outer])
            check(["ip", "link", "set", outer, "up"])
            check(["ip", "netns", "exec", namespace, "ip", "addr", "add", "%s/30" % far, "dev", inner])
            check(["ip", "netns", "exec", namespace, "ip", "link", "set", inner, "up"])
            check(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
            pid_file = os.path.join(self.tmp, "sshd-%02d.pid" % index)
            log = open(os.path.join(self.tmp, "sshd-%02d.log" % index), "w")
            proc = subprocess.Popen(["ip", "netns", "exec", namespace, SSHD, "-D", "-e", "-f", config,
                                     "-o", "ListenAddress=%s" % far, "-o", "PidFile=%s" % pid_file],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            self.sshd.append((proc, pid_file))
            self.hosts.append(("fleet%02d" % index, far))
        deadline = time.monotonic() + 30
        for dummy, address in self.hosts:
            wait_for_ssh(address, deadline)
        inventory = os.path.join(self.tmp, "inventory.yml")
        host_vars = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": client_key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            "ansible_python_interpreter": PYTHON,
        }
        with open(inventory, "w") as handle:
            json.dump({"all": {"vars": host_vars, "hosts": dict((name, {"ansible_host": address}) for name, address in self.hosts)}},
                      handle, indent=1)
        return inventory

    def close(self):
        """Stop this run's sshd processes (pid files, then our own children), kill whatever else runs in its
        namespaces (ssh sessions left by ControlPersist), delete its veth pairs and namespaces."""
        pids = set()
        for proc, pid_file in self.sshd:
            try:
                with open(pid_file) as handle:
                    pids.add(int(handle.read().strip()))
            except (OSError, ValueError):
                pass
            pids.add(proc.pid)
        for namespace, dummy in self.namespaces:
            listed = subprocess.run(["ip", "netns", "pids", namespace], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, check=False).stdout
            pids.update(int(pid) for pid in listed.split() if pid.isdigit())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            if sig == signal.SIGTERM:
                time.sleep(0.3)
        for proc, dummy in self.sshd:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for namespace, outer in reversed(self.namespaces):
            if outer:
                subprocess.run(["ip", "link", "delete", outer], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            subprocess.run(["ip", "netns", "delete", namespace], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        left = [line.split()[0] for line in check(["ip", "netns", "list"]).splitlines() if self.token in line]
        if left:
            print("bench fleet: namespaces left behind: %s" % ", ".join(left), file=sys.stderr)


def close_masters(control_dir):
    """Close the ControlPersist masters of one run, so that the next run starts cold and none lingers."""
    if not os.path.isdir(control_dir):
        return
    for entry in os.listdir(control_dir):
        subprocess.run(["ssh", "-o", "ControlPath=%s" % os.path.join(control_dir, entry), "-O", "exit", "bench"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=10)


def bench_fleet(tmp):
    """diagnose.yml (host + process checks) vs a one-task ping playbook on 20 hosts over SSH (netns + sshd), pipelining on, forks 10.
    Runs: BENCH_FLEET_RUNS, else BENCH_RUNS (default 5), of each, interleaved; the medians are compared."""
    run = run_module()
    runs = int(os.environ.get("BENCH_FLEET_RUNS", run.RUNS))
    if os.geteuid() != 0:
        sys.exit("bench fleet: needs root (it makes network namespaces and veth pairs and runs sshd as root)")
    ensure_sshd()
    playbook = os.path.join(run.BIN, "ansible-playbook")
    ping = os.path.join(tmp, "fleet-ping.yml")
    with open(ping, "w") as handle:
        handle.write("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    fleet = Fleet(tmp)
    counter = [0]

    def timed(argv):
        counter[0] += 1
        control_dir = os.path.join(fleet.tmp, "cp-%d" % counter[0])
        environment = dict(run.env(), ANSIBLE_PIPELINING="True", ANSIBLE_FORKS=str(FORKS), ANSIBLE_SSH_CONTROL_PATH_DIR=control_dir,
                           ANSIBLE_HOST_KEY_CHECKING="False")
        began = time.monotonic()
        proc = subprocess.run(argv, cwd=run.REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        elapsed = time.monotonic() - began
        close_masters(control_dir)
        if proc.returncode != 0:
            sys.exit("bench fleet: %s failed:\n%s" % (" ".join(argv), proc.stdout[-3000:]))
        return elapsed, proc.stdout

    def terminated(signum, frame):
        sys.exit("bench fleet: terminated (signal %d); removing the namespaces" % signum)

    previous = signal.signal(signal.SIGTERM, terminated)  # `finally` must run when make or a CI job stops the bench
    try:
        began = time.monotonic()
        inventory = fleet.start()
        ready = time.monotonic() - began
        dummy, out = timed([playbook, "-i", inventory, ping])  # untimed: every host answers, caches are warm
        if "ok=1" not in out or out.count("ok=1") < HOSTS:
            sys.exit("bench fleet: the ping check did not reach every host:\n%s" % out[-3000:])
        pings, diagnoses = [], []
        for number in range(runs):
            pings.append(timed([playbook, "-i", inventory, ping])[0])
            diagnoses.append(timed([playbook, "-i", inventory, os.path.join(run.REPO, "playbooks", "diagnose.yml"),
                                    "-e", '{"agentops_checks": ["host", "process"]}',
                                    "-e", "agentops_report_dir=%s" % tmp, "-e", "agentops_incident_id=fleet-%d" % number])[0])
        with open(os.path.join(tmp, "fleet-%d" % (runs - 1), "report.json")) as handle:
            report = json.load(handle)["hosts"]
    finally:
        began_close = time.monotonic()
        fleet.close()
        closed = time.monotonic() - began_close
        signal.signal(signal.SIGTERM, previous)
    floor, diagnose = statistics.median(pings), statistics.median(diagnoses)
    families = {}
    for name, host in sorted(report.items()):
        for family, ms in (host.get("timings_ms") or {}).items():
            families.setdefault(family, []).append(ms or 0)
    total = sum(sum(values) for values in families.values()) or 1
    reported = sum(1 for host in report.values() if host.get("timings_ms"))
    print("diagnose.yml on %d hosts over SSH (netns + sshd, pipelining, forks %d): %.2f s; ping %.2f s; ratio %.2fx "
          "(target <= %.2fx) %s; families over the %d hosts of one report (median a host): %s"
          % (HOSTS, FORKS, diagnose, floor, diagnose / floor, TARGET, "OK" if diagnose <= TARGET * floor else "MISSED", reported,
             ", ".join("%s %d ms (%d%%)" % (family, statistics.median(values), 100 * sum(values) / total)
                       for family, values in sorted(families.items()))))
    print("  %d runs each (interleaved, each cold); ping %s s; diagnose %s s; 20 namespaces + sshd ready in %.1f s, removed in %.1f s"
          % (runs, " ".join("%.2f" % s for s in pings), " ".join("%.2f" % s for s in diagnoses), ready, closed))
