"""The coordination family on synthetic input: its options refused in one sentence, the read-only check of user SQL,
timestamps in every shape, RESP parsing, Redis server judgements from INFO, and heartbeats from a real HTTP server on
loopback. The real servers (Redis, PostgreSQL, RabbitMQ) are in tests/integration/test_coordination_real.py."""
import http.server
import json
import re
import threading
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors, coord_resp, coord_sql
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import coordination
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

FAMILY = coordination.CoordinationFamily()


def params(**raw):
    typed = collectors.validated(FAMILY, raw)
    typed["thresholds"] = {}
    typed["redaction_key"] = "k"
    return typed


def test_the_family_is_registered_with_its_public_variables():
    assert collectors.BY_NAME["coordination"] is not None and collectors.NAMES[-1] == "coordination"
    suffixes = dict((v["suffix"], v) for v in collectors.role_variables())
    for suffix in ("redis_url", "queue_keys", "queue_timestamp_field", "rabbitmq_api_url", "heartbeats", "heartbeat_max_age",
                   "stuck_task_query", "stuck_task_max_age", "redis_password", "rabbitmq_password"):
        assert suffix in suffixes, suffix
    assert suffixes["redis_password"]["secret"] and suffixes["rabbitmq_password"]["secret"]
    assert "coordination" in suffixes["pg_host"]["families"] and "pg" in suffixes["pg_host"]["families"]
    assert FAMILY.enabled_by == ("redis_url", "rabbitmq_api_url", "heartbeats", "stuck_task_query")
    assert FAMILY.options["heartbeat_max_age"]["default"] == 120


@pytest.mark.parametrize("raw, sentence", [
    ({"redis_url": "redis://:pw-123456@db:6379"}, "agentops_redis_url carries a password; give it in agentops_redis_password"),
    ({"redis_url": "http://db:6379"}, "agentops_redis_url must start with redis:// or rediss:// (TLS)"),
    ({"redis_url": "redis://db:6379/queues"}, "a Redis database is a number"),
    ({"rabbitmq_api_url": "http://u:p@mq:15672/"}, "agentops_rabbitmq_api_url carries credentials"),
    ({"queue_keys": ["q"]}, "queue_keys needs agentops_redis_url"),
    ({"redis_url": "redis://db", "queue_direction": "up"}, "queue_direction takes lpush"),
    ({"heartbeats": [{"redis_keys": "hb:*", "url": "http://x/"}]}, "heartbeats[1] must have exactly one of redis_keys, pg_query or url"),
    ({"heartbeats": ["hb:*"]}, "heartbeats[1] must be a mapping"),
    ({"heartbeats": [{"redis_keys": "hb:*"}]}, "heartbeats[1] uses redis_keys but agentops_redis_url is not set."),
    ({"heartbeats": [{"url": "http://token@x/"}]}, "heartbeats[1] url carries credentials"),
    ({"heartbeats": [{"pg_query": "DELETE FROM hb"}]}, "heartbeats[1] pg_query must be one read-only SELECT or WITH"),
    ({"stuck_task_query": "SELECT 1; SELECT 2"}, "agentops_stuck_task_query holds more than one statement"),
    ({"heartbeat_max_age": 0}, "heartbeat_max_age must be between 1 and 604800, got 0.0."),
    ({"sample_interval": 61}, "sample_interval must be between 0 and 60"),
    ({"timeout": 0.1}, "timeout must be between 0.5 and 60"),
])
def test_bad_options_are_one_sentence_naming_the_option(raw, sentence):
    with pytest.raises(ValueError) as caught:
        FAMILY.collect(None, params(**raw))
    assert sentence in str(caught.value)
    assert not re.search(r"\. [A-Z]", str(caught.value)) and str(caught.value).endswith(".")


@pytest.mark.parametrize("sql", [
    "SELECT id AS task, state, since FROM tasks",
    "  select id as task, state, since from tasks where note = 'insert; delete' ;  ",
    "WITH t AS (SELECT * FROM tasks) SELECT id AS task, state, updated_at AS since FROM t",
    "SELECT id AS task, \"update\" AS state, since FROM tasks -- a comment; DROP TABLE tasks",
    "SELECT $$ into $$ AS task, state, since FROM tasks",
])
def test_read_only_queries_pass(sql):
    assert coord_sql.read_only_query(sql, "q").rstrip().endswith(("tasks", "t", "tasks -- a comment; DROP TABLE tasks", "'insert; delete'"))


@pytest.mark.parametrize("sql, words", [
    ("", "q is empty"),
    ("DELETE FROM tasks", "it starts with 'DELETE', which is refused"),
    ("SELECT * INTO copy FROM tasks", "is not read-only (it uses INTO)"),
    ("SELECT nextval('s')", "is not read-only (it uses NEXTVAL)"),
    ("SELECT pg_advisory_lock(1)", "is not read-only (it uses PG_ADVISORY_LOCK)"),
    ("SELECT 1 FROM tasks FOR SHARE", "locks rows (FOR UPDATE/SHARE)"),
    ("SELECT 'open", "unterminated"),
    ("SELECT 1; SELECT 2", "more than one statement"),
])
def test_queries_that_may_write_are_refused(sql, words):
    with pytest.raises(ValueError) as caught:
        coord_sql.read_only_query(sql, "q")
    assert words in str(caught.value)


NOW = 1764000000.0


@pytest.mark.parametrize("value, expected", [
    (NOW, NOW), (str(int(NOW)), NOW), (NOW * 1000, NOW), (str(int(NOW * 1000)), NOW), (NOW * 1000000, NOW),
    ("2025-11-24T16:00:00Z", 1764000000.0), ("2025-11-24T16:00:00.500+00:00", 1764000000.5),
    ("2025-11-24 17:00:00+01:00", 1764000000.0), ("2025-11-24T16:00:00", 1764000000.0), (b"1764000000", NOW),
    (5, None), ("soon", None), (None, None), (True, None), ("", None),
])
def test_timestamps_in_every_shape(value, expected):
    assert coord_sql.epoch(value, NOW) == expected


def test_item_times_and_agent_names():
    assert coordination._item_time(b'{"timestamp": 1764000000, "id": 1}', "timestamp", NOW) == NOW
    assert coordination._item_time(b'{"enqueuedAt": "2025-11-24T16:00:00Z"}', "enqueuedAt", NOW) == NOW
    assert coordination._item_time(b'{"id": 1}', "timestamp", NOW) is None
    assert coordination._item_time(b"plain-task-id", "timestamp", NOW) is None
    assert coordination._agent_name("agent:heartbeat:*", "agent:heartbeat:planner") == "planner"
    assert coordination._agent_name("hb:*:alive", "hb:coder:alive") == "coder"
    assert coordination._agent_name("hb:?:*", "hb:a:b") == "hb:a:b"


class FakeSocket(object):
    def __init__(self, data):
        self.data = data

    def recv(self, size):
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def reply(data):
    client = coord_resp.Client.__new__(coord_resp.Client)
    client.sock, client.buffer, client.target = FakeSocket(data), b"", {"host": "h", "port": 1}
    return client._reply()


def test_resp_replies():
    assert reply(b"+PONG\r\n") == b"PONG"
    assert reply(b":42\r\n") == 42
    assert reply(b"$-1\r\n") is None
    assert reply(b"$5\r\nhello\r\n") == b"hello"
    assert reply(b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n") == [b"a", [1]]
    error = reply(b"-WRONGPASS invalid username-password pair\r\n")
    assert isinstance(error, coord_resp.RedisError) and error.message.startswith("WRONGPASS")
    assert coord_resp.encode(["LLEN", "q"]) == b"*2\r\n$4\r\nLLEN\r\n$1\r\nq\r\n"
    assert coord_resp.parse_info(b"# Memory\r\nused_memory:100\r\nmaxmemory_policy:noeviction\r\nratio:1.5\r\n") == {
        "used_memory": 100, "maxmemory_policy": "noeviction", "ratio": 1.5}


def test_the_client_sends_only_read_commands():
    client = coord_resp.Client.__new__(coord_resp.Client)
    client.deadline = coord_resp.Deadline(5)
    with pytest.raises(coord_resp.RedisError) as caught:
        client.call("DEL", "q")
    assert caught.value.kind == "protocol"


@pytest.mark.parametrize("info, rule, severity", [
    ({"used_memory": 96, "maxmemory": 100, "evicted_keys": 0, "maxmemory_policy": "noeviction"}, "coordination.redis_memory", "high"),
    ({"used_memory": 86, "maxmemory": 100, "evicted_keys": 0, "maxmemory_policy": "noeviction"}, "coordination.redis_memory", "medium"),
    ({"used_memory": 86, "maxmemory": 100, "evicted_keys": 4, "maxmemory_policy": "allkeys-lru"}, "coordination.redis_memory", "high"),
    ({"used_memory": 10, "maxmemory": 100, "evicted_keys": 4, "maxmemory_policy": "allkeys-lru"}, "coordination.redis_evictions", "high"),
    ({"used_memory": 10, "maxmemory": 0, "rejected_connections": 7, "connected_clients": 10000, "maxclients": 10000},
     "coordination.redis_rejected_connections", "medium"),
])
def test_server_judgements_from_info(info, rule, severity, strict_evidence):
    worker = coordination.Coordination(params(redis_url="redis://db.internal:6380/2"))
    worker.judge_server(info)
    assert [(f["id"], f["severity"]) for f in worker.findings] == [(rule, severity)]
    assert worker.findings[0]["fix"]["command"].startswith("redis-cli -h db.internal -p 6380 -n 2 INFO")


class Beats(http.server.BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def beats_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), Beats)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_heartbeats_from_a_url(beats_server, strict_evidence):
    now = time.time()
    Beats.body = json.dumps({"planner": now - 3, "coder": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 500)),
                             "reviewer": int((now - 10) * 1000)}).encode()
    url = "http://127.0.0.1:%d/heartbeats" % beats_server.server_port
    result = FAMILY.collect(None, params(heartbeats=[{"url": url}]))
    stale = [f for f in result["findings"] if f["id"] == "coordination.heartbeats_stale"][0]
    assert stale["evidence"]["stale_agents"] == ["coder"] and stale["subject"] == "URL " + url
    assert stale["fix"]["command"] == "curl -sS --max-time 10 %s; echo" % url
    Beats.body = json.dumps([{"agent": "a", "last_seen": now - 900}, {"agent": "b", "last_seen": now - 1000}]).encode()
    result = FAMILY.collect(None, params(heartbeats=[{"url": url, "name": "bus"}], heartbeat_max_age=60))
    assert [f["id"] for f in result["findings"]] == ["coordination.heartbeats_all_stale"]
    Beats.body = b"not json"
    result = FAMILY.collect(None, params(heartbeats=[{"url": url, "name": "bus"}]))
    assert result["incomplete"][0]["error"].startswith("http://127.0.0.1:%d/heartbeats did not answer JSON" % beats_server.server_port)


def test_every_rule_of_the_family_is_in_the_catalog_with_its_category():
    ids = [rule_id for rule_id in RULES if rule_id.startswith("coordination.")]
    assert len(ids) == 16
    for rule_id in ids:
        rule = RULES[rule_id]
        assert rule["category"] == "coordination" and rule["fix"]["summary"] and rule["fix"]["command"]
        assert "password" not in str(rule["fix"]["command"]).lower()
