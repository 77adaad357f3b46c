"""Benchmarks printed by `make bench` (not tests: numbers with ratios, measured in one run).

1. diagnose.yml on localhost (host + process checks) vs a one-task ansible.builtin.ping playbook (the floor).
   Target: diagnose <= 1.3x the floor; it also prints each family's share of the diagnostics call, the run with the
   default checks (every family that needs no setting), and the physical floor of shipping the collection's code:
   the same module running no family.
2. process_facts run as Ansible runs it (own interpreter, JSON args) with the host as
   it is, then with 1,000 extra processes started here. Target: <= 0.3 s at 1,000.
   Then with 20 of those processes being node agents: process_facts with leak sampling
   (the default 3 s window, 4 samples) - the wall time over the window is the overhead.
3. The pg_connection_facts audit statement on a throwaway cluster, idle, then with 500
   open sessions. Target: < 100 ms for the query at 500 sessions.
4. diagnose.yml vs a one-task ping playbook on 20 hosts over real SSH (hosts in network namespaces with their own
   sshd, tests/bench/fleet.py), pipelining on, forks 10. Target: diagnose <= 1.5x ping.
5. log_scan (its scan loop: logscan.scan_file) on a generated 1 GB seed-format log (80% INFO, 12% DEBUG, 5% WARN,
   3% ERROR with metadata lines, 5,000 users, 20,000 conversations) and on a 1 GB pino log (BENCH_LOG_MB to change),
   against the shell pipelines that answer the same three questions (errors per minute, top signatures, affected
   users; target: log_scan >= 1.0x their total time) and `grep -c ERROR` (the physical reference), peak RSS of the
   scanning process (target < 100 MB), the reference path (read_chunks + feed_lines) on the first 64 MB, and the physical
   floor of any pure-Python scan (bytes.count + one finditer per block; then also counting every entry per level and
   component with one findall + Counter per block for the seed format, one json.loads per block for JSON lines).
6. log_bundle's redacted copy (Collector.write_log) of the same seed log in MB/s against a plain copy.

`run.py log` runs only 5 and 6 (with BENCH_LOG_MB=64 in seconds); `run.py` or `make bench` runs everything.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from fleet import bench_fleet  # noqa: F401  pylint: disable=unused-import  # run by name from BENCHES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".collections")
BIN = os.path.dirname(sys.executable)
RUNS = int(os.environ.get("BENCH_RUNS", "7"))  # medians of 7: one run of a busy machine moves a median of 5 too far
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
    # Interleaved (ping, diagnose, ping, diagnose, ...), each the median of its runs: a change in the machine's load
    # during the bench weighs on both sides of the ratio alike. Before each run (untimed) the file system is synced,
    # so that the writing back of one run's files (the report) is not timed in the next.
    pings, diagnoses = [], []
    for dummy in range(RUNS):
        os.sync()
        pings.append(timed([playbook, "-i", inventory, ping])[0])
        os.sync()
        diagnoses.append(timed([playbook, "-i", inventory, os.path.join(REPO, "playbooks", "diagnose.yml"),
                                "-e", '{"agentops_checks": ["host", "process"]}', "-e", "agentops_report_dir=%s" % tmp,
                                "-e", "agentops_incident_id=bench"])[0])
    floor, diagnose = statistics.median(pings), statistics.median(diagnoses)
    every = median_of([playbook, "-i", inventory, os.path.join(REPO, "playbooks", "diagnose.yml"),
                       "-e", "agentops_report_dir=%s" % tmp, "-e", "agentops_incident_id=bench-default"])
    with open(os.path.join(tmp, "bench", "report.json")) as handle:
        timings = json.load(handle)["hosts"]["localhost"].get("timings_ms") or {}
    total = sum(ms for ms in timings.values() if ms) or 1
    # The floor of shipping the collection's code: the same module with no family to run (its AnsiballZ payload is
    # built on the controller, sent, unpacked and imported on the host, exactly as for the real call).
    empty = os.path.join(tmp, "empty.yml")
    with open(empty, "w") as handle:
        handle.write("- hosts: all\n  gather_facts: false\n  tasks:\n    - agentops.runbooks.diagnostics:\n        checks: []\n")
    payload = median_of([playbook, "-i", inventory, empty])
    print("diagnose.yml on localhost: %.2f s; ping floor %.2f s; ratio %.2fx (target <= 1.30x) %s; the one diagnostics "
          "call's families: %s" % (diagnose, floor, diagnose / floor, "OK" if diagnose <= 1.3 * floor else "MISSED",
                                   ", ".join("%s %d ms (%d%%)" % (name, ms, 100 * ms / total) for name, ms in sorted(timings.items()))))
    with open(os.path.join(tmp, "bench-default", "report.json")) as handle:
        default_timings = json.load(handle)["hosts"]["localhost"].get("timings_ms") or {}
    print("  with the default checks (%s): %.2f s = %.2fx ping; families: %s" % (
        ", ".join(sorted(default_timings)), every, every / floor,
        ", ".join("%s %d ms" % (name, ms) for name, ms in sorted(default_timings.items()) if ms is not None)))
    print("  the diagnostics module running no family (the cost of the collection's code: built, sent, imported): %.2f s = %.2fx ping;"
          " the families, the variable check and the report add %.2f s" % (payload, payload / floor, diagnose - payload))


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


LOG_MB = float(os.environ.get("BENCH_LOG_MB", "1024"))
# The shell pipelines that answer log_scan's three questions (errors per minute, top signatures, affected users).
PIPELINES = {
    "seed": [("errors per minute", "grep -F '] [ERROR] [' {f} | cut -c2-17 | sort | uniq -c"),
             ("top signatures", "grep -F -e '] [ERROR] [' -e '] [WARN] [' {f} | cut -d']' -f4- | sed -E 's/[0-9]+/N/g' | sort | uniq -c"
                                " | sort -rn | head"),
             ("affected users", "grep -A3 -F '] [ERROR] [' {f} | grep userId | sort -u | wc -l")],
    "pino": [("errors per minute", "grep -F '\"level\":50,' {f} | awk -F'\"time\":' '{{print int(substr($2, 1, 13) / 60000)}}' | sort | uniq -c"),
             ("top signatures", "grep -F -e '\"level\":50,' -e '\"level\":40,' {f} | grep -o '\"msg\":\"[^\"]*\"' | sed -E 's/[0-9]+/N/g'"
                                " | sort | uniq -c | sort -rn | head"),
             ("affected users", "grep -F '\"level\":50,' {f} | grep -o '\"userId\":\"[^\"]*\"' | sort -u | wc -l")],
}


def fixtures():
    sys.path.insert(0, COLLECTIONS)
    sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
    import log_corpus
    return log_corpus


def shell(command):
    return shell_cpu(command)[:2]


def shell_cpu(command):
    """(wall seconds, stdout, CPU seconds of every process of the pipeline: user + system, from the children's rusage)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    elapsed = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):  # grep -c finds nothing: 1
        sys.exit("bench: %s failed: %s" % (command, proc.stderr.decode()[-500:]))
    return elapsed, proc.stdout.decode(), (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def child(argv, cpu=None):
    """Run this file with ``argv`` in a child interpreter: (seconds, its JSON output, peak RSS in MB from wait4); with a
    list ``cpu``, its CPU seconds (user + system) are appended to it."""
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)] + argv, env=env(), stdout=subprocess.PIPE)
    out = proc.stdout.read()
    status, rusage = os.wait4(proc.pid, 0)[1:]
    if status:
        sys.exit("bench: %s failed" % " ".join(argv))
    if cpu is not None:
        cpu.append(rusage.ru_utime + rusage.ru_stime)
    return time.monotonic() - began, json.loads(out), rusage.ru_maxrss / 1024.0


def scan_child(path, reference_mb=None):
    """log_scan's scan of one file (scan_file, or read_chunks and feed_lines on the first ``reference_mb`` MB), as JSON."""
    from ansible_collections.agentops.runbooks.plugins.module_utils import logscan
    from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor
    scanner = logscan.Scanner(Redactor(key=os.urandom(16).hex()), bucket=60, top_n=10)
    report = {}
    began = time.monotonic()
    if reference_mb is None:
        logscan.scan_file(scanner, path, os.path.getsize(path) + 1, 65536, report)
    else:
        report["bytes"] = 0
        for number, data in logscan.read_blocks(path, 1 << 40, 65536, {}):
            scanner.feed_lines(logscan.lines_of(data, 65536, report), path, number)
            report["bytes"] += len(data)
            if report["bytes"] >= reference_mb * 1048576:
                break
        scanner.close()
    result = scanner.result()
    rates = scanner.error_rates(time.time(), 900)
    elapsed = time.monotonic() - began
    print(json.dumps({"seconds": elapsed, "entries": result["entries"], "errors": result["by_level"].get("error", 0),
                      "signatures": len(result["top_signatures"]), "users": result["affected"]["users"],
                      "buckets": len(result["buckets"]), "rates": bool(rates), "bytes": report.get("bytes")}))


# The physical floor of a pure-Python scan: what any scanner written in Python pays before it looks at one entry.
FLOOR_PATTERNS = {"seed": rb"\] \[(?:WARN|ERROR|FATAL)\] \[", "pino": rb'"level":(?:40|50|60)[,}]'}
# ... and a lower bound of counting every entry per level and component: one findall and a Counter per block (the
# minute of each entry not even split out).
SEED_GROUP = rb"\] \[([A-Za-z]+\] \[[^\]\n]*)\] "


def floor_child(path, kind):
    """The floors of a pure-Python scan of ``path``, as JSON: (1) per 1 MiB block, bytes.count of the lines and one
    finditer for the warn-and-above entries, nothing else; (2) that plus, for the seed format, counting every entry per
    (level, component) with one findall and a Counter per block; for JSON lines, one json.loads of the block (what
    telling a JSON line from another line costs at the least)."""
    import collections
    import re
    marker, group = re.compile(FLOOR_PATTERNS[kind]), re.compile(SEED_GROUP)
    out = {}
    for name in ("count_finditer", "count_finditer_grouped"):
        began, lines, serious, keys = time.monotonic(), 0, 0, collections.Counter()
        with open(path, "rb") as handle:
            carry = b""
            while True:
                block = handle.read(1 << 20)
                if not block:
                    break
                lines += block.count(b"\n")
                for dummy in marker.finditer(block):
                    serious += 1
                if name == "count_finditer_grouped" and kind == "seed":
                    keys.update(group.findall(block))
                elif name == "count_finditer_grouped":
                    end = block.rfind(b"\n")
                    whole, carry = carry + block[:end], block[end + 1:]
                    keys["lines"] += len(json.loads(b"[" + whole.replace(b"\n", b",") + b"]"))
        out[name] = time.monotonic() - began
        out[name + "_found"] = [lines, serious, sum(keys.values())]
    print(json.dumps(out))


def bundle_child(path, target):
    """log_bundle's redacted copy of one file (Collector.write_log), as JSON."""
    from ansible_collections.agentops.runbooks.plugins.modules.log_bundle import Collector
    from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor
    entry = {}
    began = time.monotonic()
    Collector({"since": 0, "max_file_bytes": 16 << 30, "max_total_bytes": 16 << 30}, Redactor(key=os.urandom(16).hex())).write_log(path, target, entry)
    print(json.dumps(dict(entry, seconds=time.monotonic() - began)))


def bench_log_scan(tmp):
    """5. log_scan on a generated seed-format log and a pino log of BENCH_LOG_MB MB each (default 1024): throughput against
    `grep -c ERROR` (the physical reference) and against the shell pipelines that answer the same three questions
    (target: log_scan >= 1.0x their total time), peak RSS of the scanning process (target < 100 MB)."""
    log_corpus = fixtures()
    for kind in ("seed", "pino"):
        path = os.path.join(tmp, "agent-%s.log" % kind)
        began = time.monotonic()
        size = log_corpus.write_generated(path, kind, LOG_MB)
        made = time.monotonic() - began
        mb = size / 1048576.0
        shell("cat %s > /dev/null" % path)  # everything from the page cache, for every contender
        grep_seconds, grep_out = shell("grep -c ERROR %s" % path)
        runs = [(name, shell_cpu(command.format(f=path))) for name, command in PIPELINES[kind]]
        steps = [(name, run[0]) for name, run in runs]
        pipeline = sum(seconds for dummy, seconds in steps)
        pipeline_cpu = sum(run[2] for dummy, run in runs)
        scan_cpu = []
        wall, out, rss = child(["scan", path], scan_cpu)
        scan = out["seconds"]
        reference_mb = min(64.0, mb)
        ref_wall, ref, dummy = child(["scan", path, str(reference_mb)])
        ratio = pipeline / scan
        dummy, floor, dummy = child(["floor", path, kind])
        print("log_scan %s: %.0f MB (generated in %.0f s): %.1f s = %.0f MB/s (%d entries, %d errors, %d signatures, %d users, %d buckets); "
              "process %.1f s, peak RSS %.0f MB (target < 100 MB) %s"
              % (kind, mb, made, scan, mb / scan, out["entries"], out["errors"], out["signatures"], out["users"], out["buckets"],
                 wall, rss, "OK" if rss < 100 else "MISSED"))
        print("  shell pipeline: %s = %.2f s total = %.0f MB/s; log_scan / pipeline %.2fx (target >= 1.00x) %s"
              % (", ".join("%s %.2f s" % step for step in steps), pipeline, mb / pipeline, ratio, "OK" if ratio >= 1 else "MISSED"))
        print("  CPU: the pipelines' processes %.2f CPU-s (%.1f cores busy on average, %d here); log_scan %.2f CPU-s on one core by "
              "design (a diagnosis must not take a struggling host's cores); CPU ratio %.2fx"
              % (pipeline_cpu, pipeline_cpu / pipeline, os.cpu_count() or 1, scan_cpu[0], pipeline_cpu / scan_cpu[0]))
        print("  grep -c ERROR: %.2f s = %.0f MB/s (%s matches): log_scan at %.3fx grep; reference path (read_chunks + feed_lines) "
              "%.0f MB/s on the first %.0f MB: fast path %.1fx the reference"
              % (grep_seconds, mb / grep_seconds, grep_out.strip(), grep_seconds / scan, (ref["bytes"] or 0) / 1048576.0 / ref["seconds"],
                 reference_mb, (mb / scan) / ((ref["bytes"] or 1) / 1048576.0 / ref["seconds"])))
        bare, grouped = floor["count_finditer"], floor["count_finditer_grouped"]
        print("  physical floor of a pure-Python scan: bytes.count + one finditer per block %.2f s = %.0f MB/s (pipeline / floor %.2fx); "
              "+ %s %.2f s = %.0f MB/s (pipeline / floor %.2fx); log_scan at %.2fx that floor"
              % (bare, mb / bare, pipeline / bare, "counting every entry per level and component (findall + Counter per block)" if kind == "seed"
                 else "one json.loads per block", grouped, mb / grouped, pipeline / grouped, grouped / scan))
        if kind == "seed":
            bench_log_bundle(tmp, path, mb)
        os.unlink(path)


def bench_log_bundle(tmp, path, mb):
    """6. log_bundle's redacted copy of the seed log (Collector.write_log, since 0) in MB/s against a plain copy."""
    target = os.path.join(tmp, "bundle.log")
    began = time.monotonic()
    with open(path, "rb") as source, open(target, "wb") as out:
        while True:
            block = source.read(1 << 20)
            if not block:
                break
            out.write(block)
    copy = time.monotonic() - began
    os.unlink(target)
    wall, out, rss = child(["bundle", path, target])
    os.unlink(target)
    print("log_bundle (redacted copy): %.0f MB in %.1f s = %.1f MB/s, %d redactions, peak RSS %.0f MB; plain copy %.2f s = %.0f MB/s; "
          "ratio %.3fx" % (mb, out["seconds"], mb / out["seconds"], out.get("redactions", 0), rss, copy, mb / copy, copy / out["seconds"]))


BENCHES = {"playbooks": "bench_playbooks", "process": "bench_process_facts", "pg": "bench_pg_audit", "log": "bench_log_scan", "fleet": "bench_fleet"}


def main(names):
    """Every benchmark, or those named (playbooks, process, pg, fleet, log): `tests/bench/run.py log` with BENCH_LOG_MB=64 is quick."""
    with tempfile.TemporaryDirectory(prefix="agentops-bench-") as tmp:
        for name in names or list(BENCHES):
            globals()[BENCHES[name]](tmp)


if __name__ == "__main__":
    if sys.argv[1:2] == ["scan"]:
        sys.path.insert(0, COLLECTIONS)
        scan_child(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else None)
    elif sys.argv[1:2] == ["floor"]:
        floor_child(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["bundle"]:
        sys.path.insert(0, COLLECTIONS)
        bundle_child(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1:])
