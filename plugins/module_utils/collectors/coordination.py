# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The coordination family: what sits between the agents - task queues (Redis lists, streams and sorted sets, RabbitMQ
queues), agents' heartbeats and tasks stuck in a running state.

Redis is spoken over a socket (``coord_resp``, RESP2, TLS for ``rediss://``), RabbitMQ through its management API
(``coord_http``), PostgreSQL through the one connector (``pg.connect``) with the user's query checked up front and run
in a read-only transaction with a statement timeout (``coord_sql``). Queue depths are sampled twice,
``sample_interval`` seconds apart, to see growth. Every network call is bounded by ``timeout`` and by the family's
``deadline``; a source that cannot be read is an incomplete check with one sentence, and the others still report.
Read-only: only read commands are sent (the RESP client refuses any other).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote  # noqa

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import coord_http, coord_resp, coord_sql, pg
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

QUEUE_KEYS_MAX = 100
HEARTBEAT_SOURCES_MAX = 20
ROWS_MAX = 10000  # rows read of a user query
LISTED_MAX = 20  # agents or task ids named in a finding's text
FACTS_MAX = 50  # queues, agents or tasks kept in the facts
RUNNING_STATES = ["running", "in_progress", "processing", "started", "claimed", "assigned", "active"]
SOURCE_KINDS = ("redis_keys", "pg_query", "url")
HEARTBEAT_FIELDS = ("last_seen", "lastSeen", "timestamp", "ts", "time", "updated_at", "at")
BLOCKING = "BLPOP/BRPOP/BLMOVE"


def _human(size):
    size = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0


def _stream_ms(entry_id):
    try:
        return int(coord_resp.text(entry_id).split("-", 1)[0]) / 1000.0
    except (ValueError, AttributeError):
        return None


def _item_time(raw, field, now):
    """The epoch seconds an item carries: ``field`` of a JSON object (or a bare timestamp); None without one."""
    value = coord_resp.text(raw)
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return coord_sql.epoch(value, now)
    if isinstance(data, dict):
        for name in (field,) + HEARTBEAT_FIELDS if field else HEARTBEAT_FIELDS:
            if name in data:
                return coord_sql.epoch(data[name], now)
        return None
    return coord_sql.epoch(data, now) if isinstance(data, (int, float, str)) else None


def _agent_name(pattern, key):
    """What the ``*`` of a heartbeat key pattern matched (``agent:heartbeat:*`` -> the agent); the key otherwise."""
    if pattern.count("*") == 1 and not any(c in pattern for c in "?[\\"):
        prefix, suffix = pattern.split("*")
        if key.startswith(prefix) and key.endswith(suffix) and len(key) >= len(prefix) + len(suffix):
            return key[len(prefix):len(key) - len(suffix)] or key
    return key


class Coordination(object):
    def __init__(self, params, module=None):
        self.params = params
        self.module = module
        self.thresholds = params["thresholds"]
        self.timeout = params["timeout"]
        self.deadline = coord_resp.Deadline(params["deadline"])
        self.findings = []
        self.incomplete = []
        self.redis = None
        self.redis_error = None  # the connection error, once: later Redis checks report it without trying again
        self.redis_target = coord_resp.parse_url(params["redis_url"], "agentops_redis_url") if params.get("redis_url") else None
        self.now = time.time()

    # ------------------------------------------------------------ helpers
    def _incomplete(self, what, error, finding=True):
        error = str(error).rstrip(".")
        self.incomplete.append({"check": what, "error": error})
        if finding:
            self.findings.append(fm.make("coordination.check_incomplete", "unknown", {"what": what, "error": error},
                                         subject=what, overrides=self.thresholds))

    def _make(self, rule_id, evidence, subject):
        self.findings.append(fm.make(rule_id, None, evidence, subject=subject, overrides=self.thresholds))

    def _graded(self, rule_id, value, evidence, subject):
        found = fm.graded(rule_id, value, evidence, self.thresholds, subject=subject)
        if found:
            self.findings.append(found)
        return found

    def _redis_base(self):
        target = self.redis_target
        return {"redis": coord_resp.shown(target), "redis_host": target["host"], "redis_port": target["port"],
                "redis_db": target["db"], "redis_tls": "--tls" if target["tls"] else None}

    # ------------------------------------------------------------ run
    def run(self):
        facts = {"sample_interval": self.params["sample_interval"]}
        started = time.monotonic()
        redis_facts = self.redis_first() if self.redis_target else None
        rabbit_first = self.rabbit_sample() if self.params.get("rabbitmq_api_url") else None
        if self.params["heartbeats"]:
            facts["heartbeats"] = [self.heartbeat(index, source) for index, source in enumerate(self.params["heartbeats"])]
        if self.params.get("stuck_task_query"):
            facts["stuck_tasks"] = self.stuck_tasks()
        wants_second = (redis_facts and redis_facts.get("queues")) or (rabbit_first and "error" not in rabbit_first)
        if wants_second and self.params["sample_interval"] > 0:
            wait = self.params["sample_interval"] - (time.monotonic() - started)
            if wait > 0 and self.deadline.left() > wait + self.timeout:
                time.sleep(wait)
        if redis_facts is not None:
            facts["redis"] = self.redis_second(redis_facts, round(time.monotonic() - started, 1))
        if rabbit_first is not None:
            facts["rabbitmq"] = self.rabbit_judge(rabbit_first)
        if self.redis is not None:
            self.redis.close()
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    # ------------------------------------------------------------ Redis
    def _connect_redis(self):
        if self.redis_error is not None:
            raise coord_resp.RedisError(self.redis_error.message, "down")
        if self.redis is None:
            self.redis = coord_resp.Client(self.redis_target, self.params.get("redis_password"), self.timeout, self.deadline,
                                           self.params.get("redis_ca_file"))
        return self.redis

    def _redis_failed(self, what, exc):
        """A Redis error: unreachable is a finding of its own; a refused password or command an incomplete check."""
        if exc.kind == "down":
            self._incomplete(what, exc.message, finding=False)
            return
        if exc.kind in ("refused", "timeout", "tls") and self.redis is None:
            self.redis_error = exc
            self._make("coordination.redis_unreachable", dict(self._redis_base(), error=exc.message), self._redis_base()["redis"])
            self._incomplete(what, exc.message, finding=False)
        else:
            self._incomplete(what, exc.message)
        if exc.kind in ("refused", "timeout", "protocol") and self.redis is not None:
            self.redis.close()
            self.redis = None

    def redis_first(self):
        target = self.redis_target
        out = {"target": coord_resp.shown(target), "db": target["db"], "tls": target["tls"], "reachable": False}
        try:
            client = self._connect_redis()
            client.call("PING")
            info = coord_resp.parse_info(client.call("INFO"))
        except coord_resp.RedisError as exc:
            self._redis_failed("Redis at %s (agentops_redis_url)" % out["target"], exc)
            out["error"] = exc.message
            return out
        out["reachable"] = True
        out["server"] = dict((k, info.get(k)) for k in (
            "redis_version", "uptime_in_seconds", "connected_clients", "blocked_clients", "maxclients", "used_memory", "maxmemory",
            "maxmemory_policy", "evicted_keys", "rejected_connections", "role"))
        self.judge_server(info)
        queues = []
        for key in self.params["queue_keys"]:
            if self.redis is None:
                break
            try:
                queues.append(self.queue(key))
            except coord_resp.RedisError as exc:
                self._redis_failed("queue key %s" % key, exc)
        out["queues"] = queues
        return out

    def judge_server(self, info):
        base = self._redis_base()
        used, maxmemory = info.get("used_memory") or 0, info.get("maxmemory") or 0
        evicted = info.get("evicted_keys") or 0
        memory = dict(base, used_human=_human(used), maxmemory_human=_human(maxmemory) if maxmemory else "0 (no limit)",
                      maxmemory_policy=info.get("maxmemory_policy") or "(unknown)", evicted_keys=evicted, evicting=evicted > 0,
                      used_memory=used, maxmemory=maxmemory)
        graded = None
        if maxmemory:
            memory["used_percent"] = round(100.0 * used / maxmemory, 1)
            graded = self._graded("coordination.redis_memory", memory["used_percent"], memory, base["redis"])
        if evicted and not graded:
            self._make("coordination.redis_evictions", memory, base["redis"])
        if info.get("rejected_connections"):
            self._make("coordination.redis_rejected_connections", dict(
                base, rejected_connections=info["rejected_connections"], connected_clients=info.get("connected_clients"),
                maxclients=info.get("maxclients") or "(unknown)"), base["redis"])

    def _depth(self, key, kind):
        client = self.redis
        if kind == "list":
            return client.call("LLEN", key)
        if kind == "zset":
            return client.call("ZCARD", key)
        if kind == "stream":
            return client.call("XLEN", key)
        return 0

    def queue(self, key):
        client = self.redis
        kind = coord_resp.text(client.call("TYPE", key))
        entry = {"key": key, "kind": kind, "exists": kind != "none", "depth": 0, "oldest_age": None}
        if kind == "none":
            entry["kind"] = "missing (an empty queue)"
            return entry
        if kind not in ("list", "stream", "zset"):
            self._incomplete("queue key %s" % key, "it is a %s; queue_keys takes lists, streams and sorted sets" % kind)
            entry["unsupported"] = True
            return entry
        field = self.params["queue_timestamp_field"]
        oldest = None
        if kind == "list":
            entry["depth"] = client.call("LLEN", key)
            index = -1 if self.params["queue_direction"] == "lpush" else 0
            entry["peek"] = {"list_index": index}
            if entry["depth"]:
                oldest = _item_time(client.call("LINDEX", key, index), field, self.now)
            entry["timestamp_source"] = "field %r" % field
        elif kind == "zset":
            entry["depth"] = client.call("ZCARD", key)
            entry["peek"] = {"zset_key": key}
            if entry["depth"]:
                first = client.call("ZRANGE", key, 0, 0, "WITHSCORES") or []
                if first:
                    oldest = _item_time(first[0], field, self.now)
                    if oldest is None and len(first) > 1:
                        oldest = coord_sql.epoch(coord_resp.text(first[1]), self.now)
            entry["timestamp_source"] = "field %r, or the score when it is a timestamp" % field
        else:
            oldest = self.stream(key, entry)
            entry["timestamp_source"] = "the stream entry id"
        if oldest is not None and entry["depth"]:
            entry["oldest_age"] = max(0, int(self.now - oldest))
            entry["oldest_at"] = coord_sql.iso(oldest)
        entry["len_command"] = {"list": "LLEN", "zset": "ZCARD", "stream": "XLEN"}[kind]
        return entry

    def stream(self, key, entry):
        client = self.redis
        length = client.call("XLEN", key)
        entry["length"] = length
        try:
            groups = [coord_resp.pairs(g) for g in client.call("XINFO", "GROUPS", key) or []]
        except coord_resp.RedisError as exc:
            if exc.kind != "server":
                raise
            groups = []
        entry["groups"] = [{"name": coord_resp.text(g.get("name")), "consumers": g.get("consumers"), "pending": g.get("pending"),
                            "lag": g.get("lag"), "last_delivered_id": coord_resp.text(g.get("last-delivered-id"))} for g in groups]
        entry["peek"] = {"stream_start": "-"}
        start = "-"
        if groups:
            lags = [g.get("lag") for g in groups]
            entry["depth"] = max(lags) if all(isinstance(lag, int) for lag in lags) else length
            behind = min(groups, key=lambda g: _stream_ms(g.get("last-delivered-id")) or 0)
            last = coord_resp.text(behind.get("last-delivered-id"))
            if last and last != "0-0":
                start = "(" + last
                entry["peek"] = {"stream_start": start}
        else:
            entry["depth"] = length
        if not entry["depth"]:
            return None
        try:
            first = client.call("XRANGE", key, start, "+", "COUNT", 1) or []
        except coord_resp.RedisError as exc:
            if exc.kind != "server":
                raise
            first = client.call("XRANGE", key, "-", "+", "COUNT", 1) or []
        return _stream_ms(first[0][0]) if first else None

    def redis_second(self, out, interval):
        queues = out.get("queues") or []
        blocked = connected = None
        if self.redis is not None and queues:
            try:
                for entry in queues:
                    if entry["exists"] and not entry.get("unsupported"):
                        entry["depth_before"] = entry["depth"] if entry["kind"] != "stream" else entry.get("length")
                        after = self._depth(entry["key"], entry["kind"])
                        entry["growth"] = after - entry["depth_before"]
                        if entry["kind"] == "list":
                            entry["depth"] = after
                clients = coord_resp.parse_info(self.redis.call("INFO", "clients"))
                blocked, connected = clients.get("blocked_clients"), clients.get("connected_clients")
                out["server"].update(blocked_clients=blocked, connected_clients=connected)
            except coord_resp.RedisError as exc:
                self._redis_failed("the second sample of the queue keys", exc)
        for entry in queues:
            if entry["exists"] and not entry.get("unsupported"):
                self.judge_queue(entry, interval, blocked, connected)
        return out

    def judge_queue(self, entry, interval, blocked, connected):
        key = entry["key"]
        growth = entry.get("growth")
        age = entry.get("oldest_age")
        evidence = dict(self._redis_base(), key=key, kind=entry["kind"], depth=entry["depth"], oldest_age=age,
                        len_command=entry["len_command"],
                        timestamp_source=entry["timestamp_source"], growth=growth, interval=interval,
                        age_note="; the oldest was queued %d s ago" % age if age is not None else "",
                        growth_note=(", %+d in %s s" % (growth, interval)) if growth else "")
        self._graded("coordination.queue_backlog", entry["depth"], evidence, key)
        if age is not None:
            self._graded("coordination.queue_oldest_age", age, dict(evidence, oldest_at=entry["oldest_at"], **entry["peek"]), key)
        if entry["kind"] == "list" and growth and growth > 0 and blocked == 0:
            self._make("coordination.list_no_consumers", dict(evidence, depth_before=entry["depth_before"], blocked_clients=blocked,
                                                              connected_clients=connected), key)
        if entry["kind"] == "stream" and entry["depth"]:
            groups = entry.get("groups") or []
            if not groups:
                reason = "no consumer group reads it"
            elif not any(g.get("consumers") for g in groups):
                reason = "its consumer group(s) %s have no consumer" % ", ".join(str(g["name"]) for g in groups)
            else:
                reason = None
            if reason:
                self._make("coordination.stream_no_consumers", dict(evidence, reason=reason, groups=len(groups)), key)

    # ------------------------------------------------------------ RabbitMQ
    def _rabbit_auth(self):
        url, user = coord_http.split_user(self.params["rabbitmq_api_url"])
        user = user or self.params.get("rabbitmq_user")
        password = self.params.get("rabbitmq_password")
        if password is not None and user is None:
            user = "guest"
        return url, user, password

    def rabbit_sample(self):
        url, user, password = self._rabbit_auth()
        try:
            queues, total = coord_http.rabbitmq_queues(url, self.deadline.bound(self.timeout), user, password,
                                                       ca_file=self.params.get("rabbitmq_ca_file"))
        except coord_http.HttpError as exc:
            api = coord_http.shown(url)
            if exc.kind in ("refused", "timeout", "tls"):
                self._make("coordination.rabbitmq_unreachable", {"api": api, "error": exc.message}, api)
                self._incomplete("RabbitMQ queues (agentops_rabbitmq_api_url)", exc.message, finding=False)
            else:
                hint = ": check agentops_rabbitmq_user and agentops_rabbitmq_password" if exc.kind == "auth" else ""
                self._incomplete("RabbitMQ queues (agentops_rabbitmq_api_url)", exc.message + hint)
            return {"error": exc.message}
        return {"url": url, "queues": queues, "total": total, "at": time.monotonic()}

    def rabbit_judge(self, first):
        if "error" in first:
            return {"api": coord_http.shown(self.params["rabbitmq_api_url"]), "error": first["error"]}
        second = self.rabbit_sample() if self.params["sample_interval"] > 0 else first
        if "error" in second:
            second = first
        interval = round(second["at"] - first["at"], 1)
        api = coord_http.shown(first["url"])
        before = dict(((q.get("vhost"), q.get("name")), q) for q in first["queues"])
        queues, no_stats = [], []
        for queue in second["queues"]:
            name, vhost = queue.get("name"), queue.get("vhost")
            if "messages_ready" not in queue and "messages" not in queue:
                no_stats.append("%s/%s" % (vhost, name))  # the broker has not published statistics of it yet (new queue)
                continue
            ready, unacked = queue.get("messages_ready") or 0, queue.get("messages_unacknowledged") or 0
            messages = queue.get("messages")
            messages = ready + unacked if messages is None else messages
            consumers = queue.get("consumers") or 0
            old = before.get((vhost, name))
            messages_before = None
            if old is not None and second is not first:
                messages_before = old.get("messages")
                if messages_before is None:
                    messages_before = (old.get("messages_ready") or 0) + (old.get("messages_unacknowledged") or 0)
            fact = {"name": name, "vhost": vhost, "messages": messages, "messages_ready": ready, "messages_unacknowledged": unacked,
                    "consumers": consumers, "state": queue.get("state"), "messages_before": messages_before,
                    "rate": (queue.get("messages_details") or {}).get("rate")}
            queues.append(fact)
            evidence = {"queue": name, "vhost": vhost, "api": api, "messages": messages, "messages_ready": ready,
                        "messages_unacknowledged": unacked, "consumers": consumers,
                        "queue_api_url": "%s/queues/%s/%s" % (api.rstrip("/").rsplit("/api", 1)[0] + "/api", quote(vhost or "/", safe=""),
                                                              quote(name or "", safe=""))}
            subject = "%s/%s" % (vhost, name)
            if ready and not consumers:
                self._graded("coordination.rabbitmq_no_consumers", ready, evidence, subject)
            if messages_before is not None and messages > messages_before and interval > 0:
                per_minute = round((messages - messages_before) * 60.0 / interval, 1)
                self._graded("coordination.rabbitmq_growing", per_minute, dict(
                    evidence, messages_before=messages_before, interval=interval, growth_per_minute=per_minute), subject)
        queues.sort(key=lambda q: -(q["messages"] or 0))
        if no_stats:
            self._incomplete("RabbitMQ queue statistics", "the management API has no statistics yet for %d queue(s) (%s); they appear "
                             "within its collect_statistics_interval" % (len(no_stats), ", ".join(no_stats[:5])), finding=False)
        return {"api": api, "queue_count": second["total"], "queues": queues[:FACTS_MAX], "without_statistics": no_stats[:FACTS_MAX],
                "messages": sum(q["messages"] or 0 for q in queues), "consumers": sum(q["consumers"] for q in queues)}

    # ------------------------------------------------------------ heartbeats
    def heartbeat(self, index, source):
        kind = [k for k in SOURCE_KINDS if source.get(k)][0]
        label = {"redis_keys": "Redis keys", "pg_query": "heartbeat query", "url": "URL"}[kind]
        name = source.get("name") or "%s %s" % (label, source[kind] if kind != "pg_query" else "#%d" % (index + 1))
        out = {"source": name, "kind": kind}
        extra = {}
        what = "heartbeats of %s" % name
        try:
            if kind == "redis_keys":
                seen, unreadable, complete = self.heartbeats_redis(source["redis_keys"])
                extra = dict(self._redis_base(), pattern=source["redis_keys"])
                out["complete"] = complete
            elif kind == "url":
                seen, unreadable = self.heartbeats_url(source["url"])
                extra = {"url": coord_http.shown(source["url"])}
            else:
                seen, unreadable = self.heartbeats_pg(source["pg_query"])
        except coord_resp.RedisError as exc:
            self._redis_failed(what, exc)
            out["error"] = exc.message
            return out
        except coord_http.HttpError as exc:
            self._incomplete(what, exc.message)
            out["error"] = exc.message
            return out
        except pg.PgError as exc:
            self._incomplete(what, _pg_sentence(exc, "the pg_query of heartbeats[%d]" % (index + 1), self.params))
            out["error"] = exc.message
            return out
        max_age = self.params["heartbeat_max_age"]
        ages = sorted(((agent, max(0, int(self.now - at))) for agent, at in seen.items()), key=lambda pair: -pair[1])
        stale = [(agent, age) for agent, age in ages if age > max_age]
        out.update(agents=len(ages), stale=len(stale), unreadable=unreadable[:FACTS_MAX],
                   ages=dict(ages[:FACTS_MAX]), stale_agents=[agent for agent, dummy in stale][:FACTS_MAX])
        evidence = dict(extra, source=name, agents=len(ages), stale=len(stale), max_age=max_age,
                        stale_agents=[agent for agent, dummy in stale][:FACTS_MAX],
                        stale_list=", ".join("%s (%d s)" % pair for pair in stale[:LISTED_MAX]) + (
                            " and %d more" % (len(stale) - LISTED_MAX) if len(stale) > LISTED_MAX else ""))
        if unreadable:
            self._incomplete(what, "%d heartbeat value(s) are not timestamps (%s)" % (
                len(unreadable), ", ".join(str(u) for u in unreadable[:5])))
        if not ages:
            if not unreadable:
                self._make("coordination.heartbeats_missing", evidence, name)
        elif len(stale) == len(ages):
            self._make("coordination.heartbeats_all_stale", dict(evidence, newest_age=ages[-1][1]), name)
        elif stale:
            self._make("coordination.heartbeats_stale", evidence, name)
        return out

    def heartbeats_redis(self, pattern):
        client = self._connect_redis()
        keys, complete = coord_resp.scan(client, pattern, self.params["heartbeat_keys_max"])
        if not complete:
            self._incomplete("heartbeats %s" % pattern, "more than %d keys match; only the first %d were read (heartbeat_keys_max)" % (
                self.params["heartbeat_keys_max"], self.params["heartbeat_keys_max"]), finding=False)
        seen, unreadable = {}, []
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            values = client.call("MGET", *batch)
            for key, value in zip(batch, values):
                agent = _agent_name(pattern, coord_resp.text(key))
                at = _item_time(value, self.params["queue_timestamp_field"], self.now) if value is not None else None
                if at is None:
                    unreadable.append(agent)
                else:
                    seen[agent] = at
        return seen, unreadable, complete

    def heartbeats_url(self, url):
        data = coord_http.get_json(url, self.deadline.bound(self.timeout))
        if isinstance(data, dict) and isinstance(data.get("agents"), (dict, list)):
            data = data["agents"]
        rows = data.items() if isinstance(data, dict) else (
            ((row.get("agent"), row.get("last_seen")) for row in data if isinstance(row, dict)) if isinstance(data, list) else None)
        if rows is None:
            raise coord_http.HttpError("%s answered JSON that is neither {agent: last_seen} nor a list of {agent, last_seen}"
                                       % coord_http.shown(url), "json")
        return self._timestamps(rows)

    def _timestamps(self, rows):
        seen, unreadable = {}, []
        for agent, value in rows:
            if agent is None:
                continue
            at = coord_sql.epoch(value, self.now)
            if at is None and isinstance(value, dict):
                at = next((coord_sql.epoch(value[f], self.now) for f in HEARTBEAT_FIELDS if f in value), None)
            if at is None:
                unreadable.append(str(agent))
            else:
                seen[str(agent)] = at
        return seen, unreadable

    def _pg_rows(self, sql):
        runner = pg.module_runner(self.module) if self.module is not None else None
        find = (lambda: self.module.get_bin_path("psql")) if self.module is not None else None
        try:
            conn = pg.connect(self.params, runner=runner, find_psql=find)
        except pg.PgClientMissing as exc:
            raise pg.PgError(str(exc), kind="client")
        try:
            return coord_sql.run_read_only(conn, sql, self.params["statement_timeout_ms"], ROWS_MAX)
        finally:
            conn.close()

    def heartbeats_pg(self, sql):
        rows = self._pg_rows(sql)
        if rows and not all(k in rows[0] for k in ("agent", "last_seen")):
            raise pg.PgError("the query returned columns %s, not agent and last_seen" % ", ".join(sorted(rows[0])), kind="columns")
        return self._timestamps((row.get("agent"), row.get("last_seen")) for row in rows)

    # ------------------------------------------------------------ stuck tasks
    def stuck_tasks(self):
        what = "stuck tasks (agentops_stuck_task_query)"
        try:
            rows = self._pg_rows(self.params["stuck_task_query"])
        except pg.PgError as exc:
            self._incomplete(what, _pg_sentence(exc, "agentops_stuck_task_query", self.params))
            return {"error": exc.message}
        if rows and not all(k in rows[0] for k in ("task", "state", "since")):
            error = "agentops_stuck_task_query must return the columns task, state and since; it returned %s" % ", ".join(sorted(rows[0]))
            self._incomplete(what, error)
            return {"error": error}
        running = set(s.lower() for s in self.params["stuck_task_states"])
        max_age = self.params["stuck_task_max_age"]
        stuck, unreadable = [], []
        for row in rows:
            if str(row.get("state") or "").lower() not in running:
                continue
            since = coord_sql.epoch(row.get("since"), self.now)
            if since is None:
                unreadable.append(str(row.get("task")))
                continue
            age = max(0, int(self.now - since))
            if age > max_age:
                stuck.append({"task": row.get("task"), "state": row.get("state"), "since": coord_sql.iso(since), "age": age})
        stuck.sort(key=lambda t: -t["age"])
        out = {"rows": len(rows), "rows_max": ROWS_MAX, "stuck": len(stuck), "tasks": stuck[:FACTS_MAX]}
        if unreadable:
            self._incomplete(what, "%d row(s) have a since that is not a timestamp (tasks %s)" % (len(unreadable), ", ".join(unreadable[:5])))
        if stuck:
            oldest = stuck[0]
            ids = [t["task"] for t in stuck]
            states = sorted(set(str(t["state"]) for t in stuck))
            self._make("coordination.stuck_tasks", {
                "count": len(stuck), "states": "/".join(states), "max_age": max_age, "oldest_task": oldest["task"],
                "oldest_since": oldest["since"], "oldest_age": oldest["age"], "task_ids": ids[:FACTS_MAX],
                "task_list": ", ".join(str(i) for i in ids[:LISTED_MAX]) + (
                    " and %d more" % (len(ids) - LISTED_MAX) if len(ids) > LISTED_MAX else "")}, "stuck tasks")
        return out


def _pg_sentence(exc, where, params):
    message = exc.message
    if "statement timeout" in message:
        return "%s ran past its statement timeout (%d ms) and was cancelled" % (where, params["statement_timeout_ms"])
    if "read-only transaction" in message:
        return "%s is not read-only: the server refused it (%s)" % (where, message)
    if exc.kind == "client":
        return message
    if exc.kind == "query":
        return "%s failed: %s" % (where, message)
    return "cannot connect to PostgreSQL for %s: %s" % (where, message)


def _validate(params):
    """Checks the argument spec cannot express; ValueError with one sentence naming the option."""
    check_ranges(CoordinationFamily, params)
    if params.get("redis_url"):
        coord_resp.parse_url(params["redis_url"], "agentops_redis_url")
    if params.get("rabbitmq_api_url"):
        coord_http.check_url(params["rabbitmq_api_url"], "agentops_rabbitmq_api_url", user_allowed=True)
    if params["queue_direction"] not in ("lpush", "rpush"):
        raise ValueError("queue_direction takes lpush (producers LPUSH, the oldest item is at the right end) or rpush, got %r."
                         % params["queue_direction"])
    keys = params["queue_keys"]
    if len(keys) > QUEUE_KEYS_MAX:
        raise ValueError("queue_keys lists %d keys; at most %d are read in one run." % (len(keys), QUEUE_KEYS_MAX))
    if keys and not params.get("redis_url"):
        raise ValueError("queue_keys needs agentops_redis_url (the Redis that holds them).")
    if any(not isinstance(k, str) or not k for k in keys):
        raise ValueError("queue_keys takes non-empty key names.")
    sources = params["heartbeats"]
    if len(sources) > HEARTBEAT_SOURCES_MAX:
        raise ValueError("heartbeats lists %d sources; at most %d are read in one run." % (len(sources), HEARTBEAT_SOURCES_MAX))
    for index, source in enumerate(sources):
        where = "heartbeats[%d]" % (index + 1)
        if not isinstance(source, dict):
            raise ValueError("%s must be a mapping with one of redis_keys, pg_query or url, got %r." % (where, source))
        unknown = sorted(set(source) - set(SOURCE_KINDS + ("name",)))
        given = [k for k in SOURCE_KINDS if source.get(k)]
        if unknown or len(given) != 1:
            raise ValueError("%s must have exactly one of redis_keys, pg_query or url (and optionally name), got %s."
                             % (where, ", ".join(sorted(source)) or "nothing"))
        if not all(isinstance(source[k], str) for k in given):
            raise ValueError("%s: %s must be a string." % (where, given[0]))
        if given[0] == "redis_keys" and not params.get("redis_url"):
            raise ValueError("%s uses redis_keys but agentops_redis_url is not set." % where)
        if given[0] == "url":
            source["url"] = coord_http.check_url(source["url"], "%s url" % where)
        if given[0] == "pg_query":
            source["pg_query"] = coord_sql.read_only_query(source["pg_query"], "%s pg_query" % where)
    if params.get("stuck_task_query"):
        params["stuck_task_query"] = coord_sql.read_only_query(params["stuck_task_query"], "agentops_stuck_task_query")
    if not params["stuck_task_states"]:
        raise ValueError("stuck_task_states must name at least one running state.")
    if params.get("stuck_task_query") or any(s.get("pg_query") for s in sources):
        pg.validate(params)


class CoordinationFamily(object):
    """Task queues (Redis, RabbitMQ), agents' heartbeats and stuck tasks."""

    name = "coordination"
    title = "agent coordination"
    enable = "set agentops_redis_url, agentops_rabbitmq_api_url, agentops_heartbeats or agentops_stuck_task_query"
    redacts = True
    options = dict(
        pg.argument_spec(),
        redis_url=dict(type="str"),
        redis_password=dict(type="str", no_log=True),
        redis_ca_file=dict(type="path"),
        queue_keys=dict(type="list", elements="str", default=[]),
        queue_timestamp_field=dict(type="str", default="timestamp"),
        queue_direction=dict(type="str", default="lpush"),
        rabbitmq_api_url=dict(type="str"),
        rabbitmq_user=dict(type="str"),
        rabbitmq_password=dict(type="str", no_log=True),
        rabbitmq_ca_file=dict(type="path"),
        heartbeats=dict(type="list", elements="raw", default=[]),
        heartbeat_max_age=dict(type="float", default=120.0),
        heartbeat_keys_max=dict(type="int", default=10000),
        stuck_task_query=dict(type="str"),
        stuck_task_max_age=dict(type="float", default=1800.0),
        stuck_task_states=dict(type="list", elements="str", default=list(RUNNING_STATES)),
        sample_interval=dict(type="float", default=5.0),
        timeout=dict(type="float", default=5.0),
        deadline=dict(type="float", default=60.0),
    )
    variables = dict(
        redis_url=("redis_url", "redis:// or rediss:// (TLS) URL of the Redis that holds the agents' queues and heartbeats, without a password."),
        redis_ca_file=("redis_ca_file", "CA bundle to verify a rediss:// server with (the system store by default)."),
        queue_keys=("queue_keys", "Redis keys of task queues (lists, streams, sorted sets) whose depth and oldest item are checked."),
        queue_timestamp_field=("queue_timestamp_field", "Field of a queued JSON item that holds its enqueue time (epoch seconds, ms or ISO 8601)."),
        queue_direction=("queue_direction", "lpush when producers LPUSH (the oldest item is at the right end of a list), rpush otherwise."),
        rabbitmq_api_url=("rabbitmq_api_url", "URL of the RabbitMQ management API (http://host:15672/), optionally with a user, never a password."),
        rabbitmq_user=("rabbitmq_user", "Management API user (when the URL names none)."),
        rabbitmq_ca_file=("rabbitmq_ca_file", "CA bundle to verify an https management API with."),
        heartbeats=("heartbeats", "Heartbeat sources, each a mapping with one of redis_keys (a key pattern, the agent is what * matched), "
                                  "pg_query (returning agent, last_seen) or url (JSON {agent: last_seen}), and an optional name."),
        heartbeat_max_age=("heartbeat_max_age", "Seconds after which an agent's last heartbeat is stale."),
        heartbeat_keys_max=("heartbeat_keys_max", "Heartbeat keys read at most per pattern (SCAN, never KEYS)."),
        stuck_task_query=("stuck_task_query", "A read-only SELECT returning task, state and since; run in a read-only transaction with a statement timeout."),
        stuck_task_max_age=("stuck_task_max_age", "Seconds a task may stay in a running state before it counts as stuck."),
        stuck_task_states=("stuck_task_states", "States of agentops_stuck_task_query's rows that mean running."),
        sample_interval=("queue_sample_interval", "Seconds between the two samples of queue depths that show growth (0: one sample)."),
        timeout=("coordination_timeout", "Seconds each Redis, HTTP or PostgreSQL call may take."),
        deadline=("coordination_deadline", "Seconds the whole coordination check may take."),
        statement_timeout_ms=("coordination_query_timeout_ms", "Statement timeout of the heartbeat and stuck-task queries, in ms."),
        host=("pg_host", "PostgreSQL host or socket directory to audit."),
        port=("pg_port", "PostgreSQL port."),
        user=("pg_user", "Role the audit connects as; give it pg_monitor to see every session."),
        database=("pg_database", "Database to connect to."),
        sslmode=("pg_sslmode", "libpq sslmode."),
    )
    secrets = dict(
        redis_password=("redis_password", "Password of the Redis in agentops_redis_url (AUTH; with a user in the URL, ACL AUTH)."),
        rabbitmq_password=("rabbitmq_password", "Password of the RabbitMQ management API user."),
        password=("pg_password", "The audit role's password."),
    )
    enabled_by = ("redis_url", "rabbitmq_api_url", "heartbeats", "stuck_task_query")
    ranges = dict(heartbeat_max_age=[1, 604800], heartbeat_keys_max=[1, 100000], stuck_task_max_age=[1, 2592000],
                  sample_interval=[0, 60], timeout=[0.5, 60], deadline=[5, 3600], port=[1, 65535],
                  statement_timeout_ms=[100, 600000])

    def collect(self, module, params):
        params = dict(params)
        params["heartbeats"] = [dict(s) if isinstance(s, dict) else s for s in params["heartbeats"] or []]
        _validate(params)
        redactor = Redactor(key=params.get("redaction_key"))
        return redactor.data(Coordination(params, module).run())
