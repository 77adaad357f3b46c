"""The coordination family against real servers: a redis-server the test starts on 127.0.0.1 (a queue of 5,000 tasks
from 20 minutes ago, heartbeats of three agents of which two are stale, a stream no group reads), the throwaway
PostgreSQL cluster (tasks stuck for an hour, read through agentops_stuck_task_query), and a real RabbitMQ with its
management API. Bad input (an unreachable Redis, a silent one, a wrong password, a query that writes, a query past its
timeout) is each one sentence, quickly, never a hang."""
import datetime
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.coordination import CoordinationFamily

from helpers import run_fix_commands

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
FAMILY = CoordinationFamily()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        out += b"$%d\r\n%s\r\n" % (len(arg), arg)
    return out


class Redis(object):
    """A real redis-server on 127.0.0.1 and a free port, in its own temp dir; ``load`` writes with redis-cli --pipe."""

    def __init__(self, directory, password=None, extra=()):
        self.port = free_port()
        self.password = password
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
                "--daemonize", "no"] + list(extra)
        if password:
            argv += ["--requirepass", password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for dummy in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def load(self, commands):
        env = dict(os.environ, REDISCLI_AUTH=self.password) if self.password else None
        data = b"".join(resp(*c) for c in commands)
        run = subprocess.run(["redis-cli", "-p", str(self.port), "--pipe"], input=data, capture_output=True, timeout=60, env=env, check=False)
        assert run.returncode == 0 and b"errors: 0" in run.stdout, run.stdout + run.stderr

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = Redis(str(tmp_path_factory.mktemp("redis")))
    now = time.time()
    # LPUSH producers: the oldest task is at the right end; 5,000 tasks enqueued from 20 minutes ago on.
    tasks = [json.dumps({"id": "t-%d" % i, "timestamp": now - 1200 + i * 0.01}) for i in range(5000)]
    commands = [("LPUSH", "agent:tasks") + tuple(tasks[i:i + 500]) for i in range(0, 5000, 500)]
    commands += [("SET", "agent:heartbeat:alpha", "%.3f" % (now - 5)),
                 ("SET", "agent:heartbeat:beta", datetime.datetime.fromtimestamp(now - 600, datetime.timezone.utc).isoformat()),
                 ("SET", "agent:heartbeat:gamma", str(int((now - 900) * 1000)))]
    commands += [("XADD", "agent:events", "*", "type", "task", "n", str(i)) for i in range(3)]
    commands += [("SET", "fleet:hb:a", str(int(now - 3600))), ("SET", "fleet:hb:b", str(int(now - 4000)))]
    commands += [("HSET", "agent:config", "a", "1")]
    server.load(commands)
    yield server
    server.stop()


def collect(options, timeout=120):
    began = time.monotonic()
    results = collectors.run(None, ["coordination"], {"coordination": options}, {"thresholds": {}, "redaction_key": "k"}, timeout)
    result = results["coordination"]
    result["seconds"] = time.monotonic() - began
    return result


def by_id(result):
    found = {}
    for finding in result.get("findings") or []:
        found.setdefault(finding["id"], []).append(finding)
    return found


def fix_commands_run(result):
    return run_fix_commands({"hosts": {"localhost": {"findings": result["findings"]}}})


def test_a_real_redis_with_a_backlog_stale_heartbeats_and_an_unread_stream(redis, strict_evidence):
    result = collect({"redis_url": redis.url, "queue_keys": ["agent:tasks", "agent:events", "agent:missing"],
                      "heartbeats": [{"redis_keys": "agent:heartbeat:*"}], "sample_interval": 0})
    assert result["status"] == "ok", result
    found = by_id(result)
    backlog = [f for f in found["coordination.queue_backlog"] if f["subject"] == "agent:tasks"][0]
    assert backlog["severity"] == "medium" and backlog["evidence"]["depth"] == 5000
    age = found["coordination.queue_oldest_age"][0]
    assert age["subject"] == "agent:tasks" and age["severity"] == "high" and 1195 <= age["evidence"]["oldest_age"] <= 1260
    stream = found["coordination.stream_no_consumers"][0]
    assert stream["subject"] == "agent:events" and stream["evidence"]["depth"] == 3 and "no consumer group" in stream["symptom"]
    stale = found["coordination.heartbeats_stale"][0]
    assert stale["evidence"]["agents"] == 3 and stale["evidence"]["stale_agents"] == ["gamma", "beta"]
    assert "gamma (9" in stale["symptom"] and "beta (6" in stale["symptom"] and "alpha" not in stale["symptom"]
    assert "coordination.heartbeats_all_stale" not in found
    queues = dict((q["key"], q) for q in result["facts"]["redis"]["queues"])
    assert queues["agent:missing"]["depth"] == 0 and not queues["agent:missing"]["exists"]
    assert result["facts"]["redis"]["server"]["redis_version"]
    assert fix_commands_run(result) == []
    assert "LLEN agent:tasks" in backlog["fix"]["command"] and "LINDEX agent:tasks -1" in age["fix"]["command"]


def test_every_heartbeat_stale_is_critical_and_the_bus_is_named(redis, strict_evidence):
    sources = [{"redis_keys": "fleet:hb:*", "name": "fleet"}, {"redis_keys": "nobody:hb:*"}]
    result = collect({"redis_url": redis.url, "heartbeats": sources})
    found = by_id(result)
    critical = found["coordination.heartbeats_all_stale"][0]
    assert critical["severity"] == "critical" and critical["subject"] == "fleet" and critical["evidence"]["agents"] == 2
    assert "not the agents" in critical["fix"]["summary"]
    assert found["coordination.heartbeats_missing"][0]["subject"] == "Redis keys nobody:hb:*"
    assert fix_commands_run(result) == []


def test_a_list_that_grows_with_no_blocked_consumer_then_with_one(redis, strict_evidence):
    stop = threading.Event()

    def produce():
        with socket.create_connection(("127.0.0.1", redis.port)) as sock:
            index = 0
            while not stop.is_set():
                sock.sendall(resp("LPUSH", "agent:growing", json.dumps({"timestamp": time.time(), "n": index})))
                sock.recv(64)
                index += 1
                time.sleep(0.05)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        result = collect({"redis_url": redis.url, "queue_keys": ["agent:growing"], "sample_interval": 1})
        found = by_id(result)
        grow = found["coordination.list_no_consumers"][0]
        assert grow["severity"] == "high" and grow["evidence"]["depth"] > grow["evidence"]["depth_before"]
        assert grow["evidence"]["blocked_clients"] == 0
        # A worker waiting in BLPOP (on its own queue) shows as a blocked client: no finding then.
        with socket.create_connection(("127.0.0.1", redis.port)) as waiter:
            waiter.sendall(resp("BLPOP", "agent:other", "30"))
            time.sleep(0.2)
            result = collect({"redis_url": redis.url, "queue_keys": ["agent:growing"], "sample_interval": 1})
        assert "coordination.list_no_consumers" not in by_id(result)
        assert result["facts"]["redis"]["server"]["blocked_clients"] == 1
    finally:
        stop.set()
        thread.join(5)


def test_a_key_of_another_type_is_an_incomplete_check_not_a_failure(redis):
    result = collect({"redis_url": redis.url, "queue_keys": ["agent:config", "agent:tasks"], "sample_interval": 0})
    assert result["status"] == "partial"
    assert result["incomplete"][0]["check"] == "queue key agent:config" and "it is a hash" in result["incomplete"][0]["error"]
    assert "coordination.queue_backlog" in by_id(result)


def test_memory_at_maxmemory_with_evictions(tmp_path, strict_evidence):
    server = Redis(str(tmp_path), extra=["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"])
    try:
        server.load([("SET", "fill:%d" % i, "x" * 2000) for i in range(3000)])
        result = collect({"redis_url": server.url})
        memory = by_id(result)["coordination.redis_memory"][0]
        assert memory["severity"] == "high" and memory["evidence"]["evicted_keys"] > 0 and memory["evidence"]["used_percent"] >= 85
        assert "allkeys-lru" in memory["symptom"]
        assert fix_commands_run(result) == []
    finally:
        server.stop()


# ------------------------------------------------------------------ bad input: one sentence, never a hang
def test_an_unreachable_redis_is_one_sentence_and_quick():
    port = free_port()
    result = collect({"redis_url": "redis://127.0.0.1:%d" % port, "queue_keys": ["q"], "heartbeats": [{"redis_keys": "hb:*"}]})
    assert result["status"] == "partial" and result["seconds"] < 5
    assert result["incomplete"][0]["error"].startswith("cannot connect to Redis at 127.0.0.1:%d" % port)
    assert len(by_id(result)["coordination.redis_unreachable"]) == 1  # once, though two checks needed it


def test_a_redis_that_accepts_and_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        result = collect({"redis_url": "redis://127.0.0.1:%d" % port, "timeout": 1})
    assert result["status"] == "partial" and result["seconds"] < 5
    assert "did not answer PING within 1.0 s" in result["incomplete"][0]["error"]


def test_a_wrong_password_is_one_sentence(tmp_path):
    server = Redis(str(tmp_path), password="right-password-123")
    try:
        result = collect({"redis_url": server.url, "redis_password": "wrong-password-456", "queue_keys": ["q"]})
        assert result["status"] == "partial", result
        error = result["incomplete"][0]["error"]
        assert "refused the password in agentops_redis_password" in error and "WRONGPASS" in error
        assert "wrong-password-456" not in json.dumps(result)
        assert by_id(result)["coordination.check_incomplete"][0]["severity"] == "unknown"
        ok = collect({"redis_url": server.url, "redis_password": "right-password-123", "queue_keys": ["q"]})
        assert ok["status"] == "ok", ok
    finally:
        server.stop()


def test_a_password_in_the_redis_url_is_refused():
    result = collect({"redis_url": "redis://:hunter2hunter2@127.0.0.1:6379/0"})
    assert result["status"] == "failed"
    assert result["error"] == ("agentops_redis_url carries a password; give it in agentops_redis_password (no_log) "
                               "and list the URL without it.")


# ------------------------------------------------------------------ PostgreSQL: stuck tasks and heartbeats
@pytest.fixture(scope="module")
def pg_tasks(pg_server):
    import psycopg
    with psycopg.connect(host=pg_server["host"], port=pg_server["port"], user="postgres", password=pg_server["password"],
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS coord_tasks, coord_heartbeats")
        conn.execute("CREATE TABLE coord_tasks (id text PRIMARY KEY, status text, started_at timestamptz)")
        conn.execute("INSERT INTO coord_tasks VALUES ('task-101', 'running', now() - interval '1 hour'), "
                     "('task-102', 'running', now() - interval '65 minutes'), ('task-103', 'running', now() - interval '1 minute'), "
                     "('task-104', 'done', now() - interval '2 hours')")
        conn.execute("CREATE TABLE coord_heartbeats (agent text, seen timestamptz)")
        conn.execute("INSERT INTO coord_heartbeats VALUES ('planner', now()), ('coder', now() - interval '10 minutes')")
        conn.execute("GRANT SELECT ON coord_tasks, coord_heartbeats TO agent")
    return dict(host=pg_server["host"], port=pg_server["port"], user="agent", password=pg_server["app_password"], database="postgres")


def test_stuck_tasks_through_the_users_read_only_query(pg_tasks, strict_evidence):
    query = "SELECT id AS task, status AS state, started_at AS since FROM coord_tasks ORDER BY id;"
    result = collect(dict(pg_tasks, stuck_task_query=query, stuck_task_max_age=1800,
                          heartbeats=[{"pg_query": "SELECT agent, seen AS last_seen FROM coord_heartbeats", "name": "pg heartbeats"}]))
    assert result["status"] == "ok", result
    found = by_id(result)
    stuck = found["coordination.stuck_tasks"][0]
    assert stuck["severity"] == "high" and stuck["evidence"]["task_ids"] == ["task-102", "task-101"]
    assert stuck["evidence"]["count"] == 2 and 3880 <= stuck["evidence"]["oldest_age"] <= 3960
    assert "task-102, task-101" in stuck["symptom"] and "running" in stuck["symptom"]
    assert result["facts"]["stuck_tasks"]["rows"] == 4
    stale = found["coordination.heartbeats_stale"][0]
    assert stale["subject"] == "pg heartbeats" and stale["evidence"]["stale_agents"] == ["coder"]
    assert fix_commands_run(result) == []


@pytest.mark.parametrize("query, words", [
    ("UPDATE coord_tasks SET status = 'done'", "it starts with 'UPDATE', which is refused"),
    ("WITH gone AS (DELETE FROM coord_tasks RETURNING *) SELECT id AS task, status AS state, started_at AS since FROM gone",
     "is not read-only (it uses DELETE)"),
    ("SELECT 1 AS task; DROP TABLE coord_tasks", "holds more than one statement"),
    ("SELECT pg_terminate_backend(pid) AS task FROM pg_stat_activity", "is not read-only (it uses PG_TERMINATE_BACKEND)"),
    ("SELECT id AS task FROM coord_tasks FOR UPDATE", "is not read-only (it uses UPDATE)"),
])
def test_a_query_that_is_not_read_only_is_refused_before_anything_runs(pg_tasks, query, words):
    result = collect(dict(pg_tasks, stuck_task_query=query))
    assert result["status"] == "failed" and result["ms"] == 0
    assert result["error"].startswith("agentops_stuck_task_query ") and words in result["error"], result["error"]


def test_the_server_refuses_a_write_the_check_cannot_see(pg_server, pg_tasks):
    # a function that writes, called from a plain SELECT: only the read-only transaction stops it
    import psycopg
    with psycopg.connect(host=pg_server["host"], port=pg_server["port"], user="postgres", password=pg_server["password"],
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION coord_sneaky() RETURNS text LANGUAGE sql AS "
                     "$$ UPDATE coord_tasks SET status = status; SELECT 'x' $$")
        conn.execute("GRANT UPDATE ON coord_tasks TO agent")
    result = collect(dict(pg_tasks, stuck_task_query="SELECT coord_sneaky() AS task, 'running' AS state, now() AS since"))
    assert result["status"] == "partial"
    error = result["incomplete"][0]["error"]
    assert error.startswith("agentops_stuck_task_query is not read-only: the server refused it") and "read-only transaction" in error


def test_a_query_past_its_timeout_is_cancelled_and_said_in_one_sentence(pg_tasks):
    query = "SELECT 'x' AS task, 'running' AS state, now() AS since FROM pg_sleep(5)"
    result = collect(dict(pg_tasks, stuck_task_query=query, statement_timeout_ms=300))
    assert result["status"] == "partial" and result["seconds"] < 3
    assert result["incomplete"][0]["error"] == ("agentops_stuck_task_query ran past its statement timeout (300 ms) and was "
                                                "cancelled")


def test_a_query_without_the_columns_is_one_sentence(pg_tasks):
    result = collect(dict(pg_tasks, stuck_task_query="SELECT id, status FROM coord_tasks"))
    assert result["incomplete"][0]["error"] == ("agentops_stuck_task_query must return the columns task, state and since; "
                                                "it returned id, status")


# ------------------------------------------------------------------ RabbitMQ through its real management API
class Rabbit(object):
    """A real RabbitMQ node (as the rabbitmq user, its own node name, ports and directories) with the management plugin."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="agentops-rmq-")
        os.chmod(self.dir, 0o755)
        self.port, self.api_port, dist = free_port(), free_port(), free_port()
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as handle:
            handle.write("[rabbitmq_management].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as handle:
            handle.write("listeners.tcp.default = 127.0.0.1:%d\nmanagement.tcp.port = %d\nmanagement.tcp.ip = 127.0.0.1\n"
                         "loopback_users = none\ncollect_statistics_interval = 500\n" % (self.port, self.api_port))
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", self.dir], check=True)
        env = {"HOME": self.dir, "PATH": os.environ["PATH"], "RABBITMQ_NODENAME": "agentops%d@localhost" % self.port,
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(dist),
               "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"), "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
               "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"), "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
               "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(self.dir, "plugins-expand")}
        self.proc = subprocess.Popen(["runuser", "-u", "rabbitmq", "--", "env"] + ["%s=%s" % kv for kv in env.items()] + [RABBIT],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.api = "http://127.0.0.1:%d/" % self.api_port
        for dummy in range(240):
            try:
                self.call("GET", "overview")
                return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError("rabbitmq-server did not start within 60 s")

    def call(self, method, path, body=None):
        request = urllib.request.Request(self.api + "api/" + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q=", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.read()

    def publish(self, queue, count):
        for index in range(count):
            self.call("POST", "exchanges/%2F/amq.default/publish",
                      {"properties": {}, "routing_key": queue, "payload": "task %d" % index, "payload_encoding": "string"})

    def stop(self):
        try:
            with open(os.path.join(self.dir, "pid")) as handle:
                os.kill(int(handle.read().strip()), 15)
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def rabbit():
    if not os.path.exists(RABBIT):
        pytest.fail("rabbitmq-server is not installed: run scripts/system_deps.sh")
    server = Rabbit()
    yield server
    server.stop()


def test_a_rabbitmq_queue_with_messages_and_no_consumer_and_one_that_grows(rabbit, strict_evidence):
    for queue in ("tasks.waiting", "tasks.growing", "tasks.empty"):
        rabbit.call("PUT", "queues/%2F/" + queue, {"durable": False})
    rabbit.publish("tasks.waiting", 3)
    for dummy in range(60):  # a new queue has no statistics until the broker's next emission (about 5 s)
        if b'"messages":3' in rabbit.call("GET", "queues/%2F/tasks.waiting?columns=messages"):
            break
        time.sleep(0.25)
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            rabbit.publish("tasks.growing", 1)
            time.sleep(0.1)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        result = collect({"rabbitmq_api_url": "http://guest@127.0.0.1:%d/" % rabbit.api_port, "rabbitmq_password": "guest",
                          "sample_interval": 6})
    finally:
        stop.set()
        thread.join(5)
    assert result["status"] == "ok", result
    found = by_id(result)
    idle = dict((f["subject"], f) for f in found["coordination.rabbitmq_no_consumers"])
    assert idle["//tasks.waiting"]["evidence"]["messages_ready"] == 3 and idle["//tasks.waiting"]["severity"] == "medium"
    assert "//tasks.empty" not in idle
    growing = found["coordination.rabbitmq_growing"][0]
    assert growing["subject"] == "//tasks.growing" and growing["evidence"]["messages"] > growing["evidence"]["messages_before"]
    assert growing["evidence"]["growth_per_minute"] >= 10
    facts = result["facts"]["rabbitmq"]
    assert facts["queue_count"] == 3 and set(q["name"] for q in facts["queues"]) == {"tasks.waiting", "tasks.growing", "tasks.empty"}
    assert "guest" not in json.dumps(result["facts"]) and "guest" not in json.dumps(result["findings"])
    assert fix_commands_run(result) == []


def test_rabbitmq_wrong_credentials_and_no_broker_are_one_sentence(rabbit):
    result = collect({"rabbitmq_api_url": rabbit.api, "rabbitmq_user": "guest", "rabbitmq_password": "not-the-password"})
    assert result["status"] == "partial"
    assert result["incomplete"][0]["error"].endswith("answered 401 Unauthorized: check agentops_rabbitmq_user and agentops_rabbitmq_password")
    port = free_port()
    result = collect({"rabbitmq_api_url": "http://127.0.0.1:%d/" % port, "rabbitmq_password": "x"})
    assert result["status"] == "partial" and result["seconds"] < 5
    assert by_id(result)["coordination.rabbitmq_unreachable"][0]["evidence"]["error"].startswith("cannot connect to http://127.0.0.1:%d/api/queues" % port)


def test_a_password_in_the_rabbitmq_url_is_refused():
    result = collect({"rabbitmq_api_url": "http://guest:guest@127.0.0.1:15672/"})
    assert result["status"] == "failed" and "agentops_rabbitmq_api_url carries credentials" in result["error"]
