"""Benchmarks printed by `make bench` (not tests: numbers with ratios, measured in one run).

1. diagnose.yml on localhost vs a one-task ansible.builtin.ping playbook (the floor).
   Target: diagnose <= 2x the floor.
2. process_facts run as Ansible runs it (own interpreter, JSON args) with the host as
   it is, then with 1,000 extra processes started here. Target: <= 0.3 s at 1,000.
   Then with 20 of those processes being node agents: process_facts with leak sampling
   (the default 3 s window, 4 samples) - the wall time over the window is the overhead.
4. log_scan on a generated 1 GB log (BENCH_LOG_MB to change) against `grep -c ERROR` on the same file
   in the same run: throughput ratio (target >= 0.5x grep) and peak RSS (target < 100 MB). It also prints the floor
   of any Python design (reading the file and one bytes.count pass, no parsing) as a ratio to grep.
3. The pg_connection_facts audit statement on a throwaway cluster, idle, then with 500
   open sessions. Target: < 100 ms for the query at 500 sessions.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".collections")
BIN = os.path.dirname(sys.executable)
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
EXTRA_PROCESSES = 1000


def env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                PYTHONPATH=COLLECTIONS)


def timed(argv, cwd=REPO):
    began = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.monotonic() - began
    if proc.returncode != 0:
        sys.exit("bench: %s failed:\n%s" % (" ".join(argv), proc.stdout[-2000:]))
    return elapsed, proc.stdout


def median_of(argv, runs=RUNS, cwd=REPO):
    return statistics.median(timed(argv, cwd)[0] for dummy in range(runs))


def module_run(args_file):
    elapsed, out = timed([sys.executable, "-m", "ansible_collections.agentops.runbooks.plugins.modules.process_facts", args_file])
    return elapsed, json.loads(out)


def bench_playbooks(tmp):
    inventory = os.path.join(REPO, "inventories", "localhost.yml")
    ping = os.path.join(tmp, "ping.yml")
    with open(ping, "w") as handle:
        handle.write("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    playbook = os.path.join(BIN, "ansible-playbook")
    floor = median_of([playbook, "-i", inventory, ping])
    diagnose = median_of([playbook, "-i", inventory, os.path.join(REPO, "playbooks", "diagnose.yml"),
                          "-e", "agentops_report_dir=%s" % tmp, "-e", "agentops_incident_id=bench"])
    print("diagnose.yml on localhost: %.2f s; ping floor %.2f s; ratio %.2fx (target <= 2.00x) %s"
          % (diagnose, floor, diagnose / floor, "OK" if diagnose <= 2 * floor else "MISSED"))


def bench_process_facts(tmp):
    args_file = os.path.join(tmp, "args.json")
    with open(args_file, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {}}, handle)
    base = statistics.median(module_run(args_file)[0] for dummy in range(RUNS))
    result = module_run(args_file)[1]
    base_count = result["facts"]["process_count"]
    children = []
    try:
        for dummy in range(EXTRA_PROCESSES):
            children.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
        samples = [module_run(args_file) for dummy in range(RUNS)]
        loaded = statistics.median(s[0] for s in samples)
        scan_ms = statistics.median(s[1]["facts"]["scan_ms"] for s in samples)
        count = samples[-1][1]["facts"]["process_count"]
        for dummy in range(20):
            children.append(subprocess.Popen(["node", "-e", "setTimeout(() => {}, 600000)"], stdin=subprocess.DEVNULL))
        time.sleep(1.0)
        leak_file = os.path.join(tmp, "leak.json")
        with open(leak_file, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": {"leak_window": 3.0}}, handle)
        leak_elapsed, leak_result = module_run(leak_file)
        window = leak_result["facts"]["memory"]["window_seconds"]
        sampled = len(leak_result["facts"]["memory"]["sampled"])
    finally:
        for child in children:
            child.send_signal(signal.SIGKILL)
        for child in children:
            child.wait()
    print("process_facts module run: %.3f s at %d processes (baseline); %.3f s at %d processes (+%d); "
          "ratio %.2fx; /proc scan %d ms; target <= 0.300 s %s"
          % (base, base_count, loaded, count, EXTRA_PROCESSES, loaded / base, scan_ms, "OK" if loaded <= 0.3 else "MISSED"))
    print("process_facts + leak sampling: %.2f s wall at %d processes, %d node agents sampled over a %.2f s window; "
          "overhead beyond the window %.3f s (%.2fx the no-leak run)"
          % (leak_elapsed, count + 20, sampled, window, leak_elapsed - window, (leak_elapsed - window) / loaded))


def bench_pg_audit(tmp):
    sys.path.insert(0, COLLECTIONS)
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import psycopg
    import pgcluster
    from ansible_collections.agentops.runbooks.plugins.module_utils import pg
    from ansible_collections.agentops.runbooks.plugins.module_utils.pg_activity import snapshot

    cluster_dir = os.path.join(tmp, "pg")
    info = pgcluster.start(cluster_dir, max_connections=600)
    params = dict((k, v.get("default")) for k, v in pg.argument_spec().items())
    params.update(host=info["host"], port=info["port"], user="postgres", password=info["password"], client="psycopg")
    sessions = []

    def query_ms(conn):
        samples = []
        for dummy in range(RUNS * 2):
            began = time.monotonic()
            snap = snapshot(conn)
            samples.append((time.monotonic() - began) * 1000)
        return statistics.median(samples), len(snap["sessions"])

    try:
        conn = pg.connect(params)
        idle_ms, idle_count = query_ms(conn)
        for index in range(500):
            sessions.append(psycopg.connect(host=info["socket_dir"], port=info["port"], user="postgres", dbname="postgres",
                                            application_name="bench-%d" % (index % 5), autocommit=True))
        loaded_ms, loaded_count = query_ms(conn)
        conn.close()
    finally:
        for session in sessions:
            session.close()
        pgcluster.stop(cluster_dir)
    verdict = "OK" if loaded_ms < 100 else "MISSED"
    print("pg_connection_facts audit query: %.1f ms at %d sessions (baseline); %.1f ms at %d sessions; ratio %.2fx; "
          "target < 100 ms %s" % (idle_ms, idle_count, loaded_ms, loaded_count, loaded_ms / idle_ms, verdict))


def write_log(path, megabytes):
    components = ["manager", "worker", "agent:code-review", "monitor", "ws-gateway"]
    messages = ["request completed in 35 ms status=200 path=/v1/tasks/8f3a", "heartbeat ok",
                "spawned child pid=4242 cmd=claude", "connect ECONNREFUSED 127.0.0.1:5432", "WebSocket closed: code=1006 reason="]
    levels = ["INFO"] * 85 + ["DEBUG"] * 10 + ["WARN"] * 3 + ["ERROR"] * 2
    block = []
    start = int(time.time()) - 3600
    for index in range(20000):
        level = levels[index % len(levels)]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + index // 10))
        message = messages[index % 5 if level != "INFO" else 1]
        block.append("[%s.%03dZ] [%s] [%s] %s\n" % (stamp, index % 1000, level, components[index % 5], message))
        if index % 7 == 0:
            block.append("  conversationId: conv-%d\n" % (index % 500))
    chunk = "".join(block).encode()
    with open(path, "wb") as handle:
        for dummy in range(max(1, megabytes * 1048576 // len(chunk))):
            handle.write(chunk)
    return os.path.getsize(path)


def bench_log_scan(tmp):
    megabytes = int(os.environ.get("BENCH_LOG_MB", "1024"))
    path = os.path.join(tmp, "agent.log")
    size = write_log(path, megabytes)
    began = time.monotonic()
    grep = subprocess.run(["grep", "-c", "ERROR", path], stdout=subprocess.PIPE, check=True)
    grep_seconds = time.monotonic() - began
    # The floor of any design that looks at every byte in Python: reading the file, and one C-level pass over it.
    began = time.monotonic()
    newlines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            newlines += block.count(b"\n")
    count_seconds = time.monotonic() - began
    args_file = os.path.join(tmp, "logscan.json")
    with open(args_file, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {"paths": [path], "since": 0, "max_bytes": size + 1, "timeout": 3600}}, handle)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ansible_collections.agentops.runbooks.plugins.modules.log_scan", args_file],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    rusage = os.wait4(proc.pid, 0)[2]
    scan_seconds = time.monotonic() - began
    result = json.loads(out)
    rss_mb = rusage.ru_maxrss / 1024.0
    mb = size / 1048576.0
    ratio = (mb / scan_seconds) / (mb / grep_seconds)
    print("log_scan: %.0f MB in %.1f s = %.0f MB/s (%d entries); grep -c ERROR: %.2f s = %.0f MB/s (%s matches); "
          "ratio %.3fx (target >= 0.5x) %s; peak RSS %.0f MB (target < 100 MB) %s"
          % (mb, scan_seconds, mb / scan_seconds, result["facts"]["entries"], grep_seconds, mb / grep_seconds,
             grep.stdout.decode().strip(), ratio, "OK" if ratio >= 0.5 else "MISSED", rss_mb, "OK" if rss_mb < 100 else "MISSED"))
    floor = (newlines, count_seconds, mb / count_seconds, grep_seconds / count_seconds, 100.0 * count_seconds / scan_seconds)
    print("log_scan floor: Python reading the file and counting its %d newlines (no parsing): %.2f s = %.0f MB/s = %.3fx grep; "
          "log_scan reaches %.0f%% of that floor" % floor)
    os.unlink(path)


def main():
    with tempfile.TemporaryDirectory(prefix="agentops-bench-") as tmp:
        bench_playbooks(tmp)
        bench_process_facts(tmp)
        bench_pg_audit(tmp)
        bench_log_scan(tmp)


if __name__ == "__main__":
    main()
