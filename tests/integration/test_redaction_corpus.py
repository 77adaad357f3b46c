"""Redaction that holds everywhere (issue 11), end to end on this machine: PostgreSQL query texts of real sessions
through pg_connection_facts and pg_sessions (pg_stat_activity, cut by the server, and pg_stat_statements), then
diagnose.yml and collect_logs.yml at -vvv over the corpus of tests/fixtures/secrets_corpus.py: no piece of a
planted secret in the playbook output, set_stats, the report files or the fetched bundle; the look-alikes intact."""
import json
import re
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid

import pytest

from helpers import COLLECTIONS_PATH, REPO, run_module

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
sys.path.insert(0, os.path.join(REPO, "tests"))
import pgcluster  # noqa: E402  pylint: disable=wrong-import-position
import secrets_corpus  # noqa: E402  pylint: disable=wrong-import-position

LOG_OUTPUTS = ("seed", "pino", "winston", "plain", "gzip", "gcp_file")
QUERY_SIZE = 400  # track_activity_query_size: the server keeps 399 bytes of each query


@pytest.fixture(scope="module")
def corpus():
    return secrets_corpus.Corpus()


@pytest.fixture(scope="module")
def cluster():
    """A cluster of its own: pg_stat_statements loaded, query texts cut by the server at QUERY_SIZE bytes."""
    import psycopg
    directory = tempfile.mkdtemp(prefix="agentops-redact-pg-")
    info = pgcluster.start(directory, max_connections=30, extra=[
        "-c shared_preload_libraries=pg_stat_statements", "-c track_activity_query_size=%d" % QUERY_SIZE])
    info["role"] = "redact_probe_%s" % uuid.uuid4().hex[:8]
    info["role_password"] = "probe-%s" % uuid.uuid4().hex
    with psycopg.connect(host=info["host"], port=info["port"], user="postgres", password=info["password"], dbname="postgres",
                         autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (info["role"], info["role_password"]))
    yield info
    pgcluster.stop(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def secret_sessions(cluster, corpus):
    """Sessions of the probe role that leave secrets in their query texts: idle in transaction, or still running.
    One query has its secret where the server cuts the text; one statement has its secret where we cut it (300)."""
    import psycopg

    def connect(autocommit):
        return psycopg.connect(host=cluster["host"], port=cluster["port"], user=cluster["role"], password=cluster["role_password"],
                               dbname="postgres", application_name="agent-worker", autocommit=autocommit)

    conns, threads = [], []
    queries = corpus.queries(cluster["role"]) + [(corpus.straddling_query(cluster["role"], at=QUERY_SIZE - 1), "idle_tx")]
    try:
        for sql, kind in queries:
            conn = connect(kind != "idle_tx")
            conns.append(conn)
            if kind == "idle_tx":
                conn.execute(sql)  # the transaction stays open: the session is idle in transaction with this query
            else:
                thread = threading.Thread(target=_quietly, args=(conn, sql), daemon=True)
                thread.start()
                threads.append(thread)
        with connect(True) as done:  # a finished statement: only pg_stat_statements remembers it
            done.execute(corpus.straddling_query(cluster["role"], at=300, select="SELECT 1, 2"))
        yield queries
    finally:
        import psycopg as driver
        with driver.connect(host=cluster["host"], port=cluster["port"], user="postgres", password=cluster["password"],
                            dbname="postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (cluster["role"],))
        for conn in conns:
            try:
                conn.close()
            except Exception:  # terminated above
                pass
        for thread in threads:
            thread.join(5)


def _quietly(conn, sql):
    try:
        conn.execute(sql)
    except Exception:  # terminated at the end of the test
        pass


def audit(cluster, client="psycopg"):
    rc, result = run_module("pg_connection_facts", {"host": cluster["host"], "port": cluster["port"], "user": "postgres",
                                                    "password": cluster["password"], "client": client, "top_n": 100,
                                                    "thresholds": {"pg.long_query": {"medium": 1}}})
    assert rc == 0, result
    return result


@pytest.mark.parametrize("client", ["psycopg", "psql"])
def test_query_texts_leave_no_secret_through_pg_connection_facts(cluster, corpus, secret_sessions, client):
    result = audit(cluster, client)
    assert result["facts"]["reachable"], result["facts"]
    text = json.dumps(result)
    assert corpus.leaks(text, ["sql"]) == []
    assert cluster["role_password"] not in text  # CREATE ROLE ... PASSWORD, remembered by pg_stat_statements
    idle = [s["query"] for s in result["facts"]["idle_in_transaction"]]
    assert len(idle) == len([q for q in secret_sessions if q[1] == "idle_tx"])
    assert any(q.startswith("ALTER ROLE %s PASSWORD '[REDACTED:password#" % cluster["role"]) for q in idle), idle
    assert any(q.startswith("SELECT 1 /* Authorization: ") and "[REDACTED:" in q for q in idle), idle
    cut = [q for q in idle if q.startswith("SELECT 1 /* xxxxxxxxxx */")]
    assert len(cut) == 1 and cut[0].endswith("...") and "sk-ant" not in cut[0]  # the server's cut, its partial word dropped
    active = [s["query"] for s in result["facts"]["longest_active"]]
    assert any(q.startswith("SELECT pg_sleep(60) /* password=[REDACTED:password#") for q in active), active
    statements = [s["query"] for s in result["facts"]["statements"]]
    assert any(q.startswith("ALTER ROLE %s PASSWORD '[REDACTED:" % cluster["role"]) for q in statements), statements
    cut = [q for q in statements if q.startswith("SELECT $1, $2 /* xxxxxxxxxx */")]
    assert len(cut) == 1 and len(cut[0]) <= 303 and cut[0].endswith("...") and "sk-ant" not in cut[0]  # redacted, then cut at 300


def test_query_texts_leave_no_secret_through_pg_sessions_in_check_mode(cluster, corpus, secret_sessions):
    rc, result = run_module("pg_sessions", {"host": cluster["host"], "port": cluster["port"], "user": "postgres",
                                            "password": cluster["password"], "terminate_idle_in_transaction_after": 1,
                                            "cancel_active_after": 1, "_ansible_check_mode": True, "_ansible_diff": True})
    assert rc == 0, result
    assert result["changed"] is True and len(result["actions"]) == len(secret_sessions)
    assert all(not a["done"] for a in result["actions"])
    assert corpus.leaks(json.dumps(result), ["sql"]) == []
    assert sum("[REDACTED:" in a["query"] for a in result["actions"]) >= len(secret_sessions) - 1


# ------------------------------------------------------------------ playbooks at -vvv
def playbook(name, variables, *argv):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_NOCOLOR="1", ANSIBLE_SHOW_CUSTOM_STATS="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/%s" % name, "-vvv",
                           "-i", "inventories/localhost.yml", "-e", json.dumps(variables)] + list(argv),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def read_tree(root):
    texts = {}
    for folder, dummy, names in os.walk(str(root)):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".tar.gz"):
                with tarfile.open(path, "r:gz") as archive:
                    for member in archive.getmembers():
                        if member.isfile():
                            texts["%s!%s" % (path, member.name)] = archive.extractfile(member).read().decode("utf-8", "replace")
            else:
                with open(path, "rb") as handle:
                    texts[path] = handle.read().decode("utf-8", "replace")
    return texts


@pytest.mark.skipif(not secrets_corpus._which("node"), reason="needs node to start processes with a chosen argv")
def test_diagnose_and_collect_logs_at_vvv_leave_no_secret_anywhere(tmp_path, cluster, corpus, secret_sessions):
    logs = tmp_path / "logs"
    corpus.write_logs(str(logs))
    token = "agentops-redact-%s" % uuid.uuid4().hex[:12]
    incident = "RED-E2E"
    reports = tmp_path / "incidents"
    variables = {"agentops_report_dir": str(reports), "agentops_incident_id": incident,
                 "agentops_log_paths": [str(logs / "*.log"), str(logs / "*.gz")], "agentops_process_patterns": [token],
                 "agentops_pg_host": cluster["host"], "agentops_pg_port": cluster["port"], "agentops_pg_user": "postgres",
                 "agentops_pg_password": cluster["password"], "agentops_leak_window": 0,
                 "log_collection_dest": str(tmp_path / "bundles"), "log_collection_min_free_mb": 0,
                 "log_collection_max_total_bytes": 16 << 20}
    procs = secrets_corpus.start_agents(corpus, token, str(tmp_path))
    try:
        diagnose = playbook("diagnose.yml", variables)
    finally:
        secrets_corpus.stop_agents(procs)
    assert diagnose.returncode == 0, diagnose.stdout[-3000:] + diagnose.stderr[-3000:]
    collect = playbook("collect_logs.yml", variables)
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-3000:]

    every = LOG_OUTPUTS + ("argv", "sql")
    outputs = {"diagnose stdout": diagnose.stdout, "diagnose stderr": diagnose.stderr, "collect_logs stdout": collect.stdout,
               "collect_logs stderr": collect.stderr}
    outputs.update(read_tree(reports / incident))
    names = sorted(os.path.basename(name) for name in outputs)
    assert "report.json" in names and "report.md" in names
    assert any(name.endswith("manifest.json") for name in names), names  # the fetched bundle was opened
    assert "CUSTOM STATS:" in diagnose.stdout  # set_stats printed
    for name, text in sorted(outputs.items()):
        assert corpus.leaks(text, every) == [], name
    assert cluster["password"] not in diagnose.stdout + collect.stdout
    # the look-alikes: all of them in the bundle's logs, the command-line ones in the -vvv results of process_facts
    bundle = "\n".join(text for name, text in outputs.items() if "!" in name)
    assert corpus.missing(bundle, LOG_OUTPUTS) == []
    assert [look for look in corpus.lookalikes["argv"] if look not in diagnose.stdout] == []
    report = json.loads(outputs[str(reports / incident / "report.json")])
    assert report["hosts"]["localhost"]["checks"]["logs"]["status"] == "ok"


def test_one_secret_keeps_one_placeholder_across_modules_of_a_report(tmp_path):
    """The diagnose role passes one random key per run: a key in an agent's argv and in a log line is one placeholder."""
    secret = "sk-ant-api03-" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    token = "agentops-keyed-%s" % uuid.uuid4().hex[:10]
    log = tmp_path / "agent.log"
    log.write_text("[%s] [ERROR] [agent:worker] request failed with key %s\n"
                   % (time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), secret))
    agent = subprocess.Popen([token, "-e", "setTimeout(() => {}, 60000)", "--", "--api-key", secret],
                             executable=secrets_corpus._which("node"))
    try:
        time.sleep(0.5)
        run = playbook("diagnose.yml", {"agentops_report_dir": str(tmp_path), "agentops_incident_id": "KEYED-1",
                                        "agentops_log_paths": [str(log)], "agentops_process_patterns": [token],
                                        "agentops_leak_window": 0})
    finally:
        agent.kill()
        agent.wait()
    assert run.returncode == 0, run.stdout[-3000:]
    text = (tmp_path / "KEYED-1" / "report.json").read_text()
    assert secret not in text and secret not in run.stdout
    report = json.loads(text)
    facts = report["hosts"]["localhost"]["facts"]
    in_argv = set(re.findall(r"\[REDACTED:[a-z_]+#[0-9a-f]{8}\]", json.dumps(facts["process"]["agents"])))
    in_logs = set(re.findall(r"\[REDACTED:[a-z_]+#[0-9a-f]{8}\]", json.dumps(facts["logs"])))
    assert len(in_argv) == 1 and in_argv == in_logs, (in_argv, in_logs)
