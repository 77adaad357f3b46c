# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the coordination family: one part of the rules catalog (merged into ``rules.RULES``, same format)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("coordination", "Agent coordination (queues, heartbeats, stuck tasks)")

# redis-cli as printed: the TLS flag only for rediss:// (its value is "--tls"), never a password (REDISCLI_AUTH).
_CLI = "redis-cli {redis_tls} -h {redis_host} -p {redis_port} -n {redis_db} "
_CLI_PLAIN = "redis-cli -h {redis_host} -p {redis_port} -n {redis_db} "
_AUTH = " When the server needs a password, export REDISCLI_AUTH first (never put it on the command line)."
_WORKERS = "ps -eo pid,ppid,etimes,stat,args --sort=-etimes | grep -E '[c]laude|[n]ode|[p]ython' | head -n 20"
_QUEUE_API = "curl -sS --max-time 10 --netrc-optional {queue_api_url}; echo"
# Without the server's address (a report written elsewhere): the connections to Redis's default port on this host.
_REDIS_SS = "ss -tn '( dport = :6379 or sport = :6379 )' | head -n 20"

RULES = {
    "coordination.queue_backlog": {
        "category": "coordination",
        "title": "A task queue holds a backlog",
        "symptom": "{key} ({kind}) on Redis {redis} holds {depth} item(s){age_note}{growth_note}.",
        "diagnosis": (
            "Producers enqueue faster than the agents take work: the consumers are down, stuck (a hung CLI child, a "
            "blocked event loop), fewer than usual, or each task got slower (rate-limited LLM calls, a slow database). "
            "For a stream the depth is the consumer group's lag (entries not yet delivered), or its length when no group "
            "reads it."
        ),
        "fix": {
            "summary": ("Check that the consumers run and take work (their processes, their logs, blocked clients on Redis); "
                        "scale them out or fix what slows each task, then watch the depth fall." + _AUTH),
            "command": [_CLI + "{len_command} {key}", _CLI_PLAIN + "{len_command} {key}", _REDIS_SS],
            "playbook": None,
        },
        "thresholds": {"medium": 1000, "high": 10000},
    },
    "coordination.queue_oldest_age": {
        "category": "coordination",
        "title": "The oldest task in a queue has waited too long",
        "symptom": "The oldest item of {key} ({kind}) on Redis {redis} was queued {oldest_age} s ago ({oldest_at}); {depth} item(s) wait.",
        "diagnosis": (
            "Work waits longer than any agent should take to pick it up: nothing consumes this queue, the consumers take "
            "from another key (a renamed queue, another Redis database), or they fail each task and push it back. The "
            "age comes from the item's timestamp field ({timestamp_source}); for a stream from the entry id."
        ),
        "fix": {
            "summary": ("Look at the oldest item and at who should consume it; an old item at the head with the rest "
                        "moving means a poison task." + _AUTH),
            "command": [_CLI + "LINDEX {key} {list_index}", _CLI_PLAIN + "LINDEX {key} {list_index}",
                        _CLI + "XRANGE {key} {stream_start} + COUNT 1", _CLI_PLAIN + "XRANGE {key} {stream_start} + COUNT 1",
                        _CLI + "ZRANGE {zset_key} 0 0 WITHSCORES", _CLI_PLAIN + "ZRANGE {zset_key} 0 0 WITHSCORES", _REDIS_SS],
            "playbook": None,
        },
        "thresholds": {"medium": 300, "high": 900, "critical": 3600},
    },
    "coordination.list_no_consumers": {
        "category": "coordination",
        "title": "A queue list grows and no consumer waits on it",
        "symptom": ("{key} on Redis {redis} grew from {depth_before} to {depth} item(s) in {interval} s and no client of the "
                    "server is blocked in BLPOP/BRPOP/BLMOVE ({blocked_clients} blocked of {connected_clients} connected)."),
        "diagnosis": (
            "Workers waiting for tasks sit in a blocking pop, so a healthy idle pool shows as blocked clients: none while "
            "the list grows means the consumers are gone (crashed, not restarted, pointed at another Redis) or all busy "
            "on tasks that do not finish."
        ),
        "fix": {
            "summary": "Find the consumer processes and their connections to Redis; restart them once their state is captured." + _AUTH,
            "command": [_CLI + "CLIENT LIST", _CLI_PLAIN + "CLIENT LIST", _REDIS_SS],
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.stream_no_consumers": {
        "category": "coordination",
        "title": "A stream with entries that no consumer group reads",
        "symptom": "{key} (stream) on Redis {redis} holds {depth} entr(ies) and {reason}.",
        "diagnosis": (
            "Consumers of a stream read through a consumer group (XREADGROUP): without a group, or with groups that have "
            "no consumers, entries pile up undelivered. A worker that reads with plain XREAD is not visible here."
        ),
        "fix": {
            "summary": "Check that the workers create and join the group they read from (XGROUP CREATE ... MKSTREAM) and are running." + _AUTH,
            "command": [_CLI + "XINFO GROUPS {key}", _CLI_PLAIN + "XINFO GROUPS {key}", _REDIS_SS],
            "playbook": None,
        },
        "severity": "medium",
        "thresholds": {},
    },
    "coordination.redis_memory": {
        "category": "coordination",
        "title": "Redis is near its maxmemory",
        "symptom": ("Redis {redis} uses {used_human} of maxmemory {maxmemory_human} ({used_percent}%), policy "
                    "{maxmemory_policy}; {evicted_keys} key(s) evicted since it started."),
        "diagnosis": (
            "At maxmemory Redis evicts keys (allkeys-*/volatile-* policies: queued tasks and heartbeats can vanish "
            "silently) or, with noeviction, refuses writes with 'OOM command not allowed when used memory > "
            "'maxmemory''. A queue backlog is the usual cause on a coordination Redis."
        ),
        "fix": {
            "summary": "Drain the backlog (see the queue findings), raise maxmemory, and use noeviction for a Redis that holds queues." + _AUTH,
            "command": [_CLI + "INFO memory", _CLI_PLAIN + "INFO memory", _REDIS_SS],
            "playbook": None,
        },
        "floors": [{"name": "when_evicting", "when": "evicting", "severity": "high",
                    "because": "keys are being evicted"}],
        "thresholds": {"medium": 85, "high": 95},
    },
    "coordination.redis_evictions": {
        "category": "coordination",
        "title": "Redis has evicted keys",
        "symptom": "Redis {redis} evicted {evicted_keys} key(s) since it started (policy {maxmemory_policy}, maxmemory {maxmemory_human}).",
        "diagnosis": (
            "Evicted keys are gone: on a Redis that holds queues, heartbeats or locks, tasks are lost and agents look "
            "dead. The memory may have dropped since, but it reached maxmemory at least once."
        ),
        "fix": {
            "summary": "Give the coordination Redis its own instance with noeviction and enough maxmemory." + _AUTH,
            "command": [_CLI + "INFO stats", _CLI_PLAIN + "INFO stats", _REDIS_SS],
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.redis_rejected_connections": {
        "category": "coordination",
        "title": "Redis has rejected connections",
        "symptom": ("Redis {redis} rejected {rejected_connections} connection(s) since it started; {connected_clients} of maxclients "
                    "{maxclients} are connected."),
        "diagnosis": (
            "At maxclients Redis answers new connections with 'ERR max number of clients reached': agents that open a "
            "connection per task, or leak them, lock the others out of the queue."
        ),
        "fix": {
            "summary": "See which clients hold the connections and fix the leak (a pool per process); raise maxclients only after." + _AUTH,
            "command": [_CLI + "INFO clients", _CLI_PLAIN + "INFO clients", _REDIS_SS],
            "playbook": None,
        },
        "severity": "medium",
        "thresholds": {},
    },
    "coordination.redis_unreachable": {
        "category": "coordination",
        "title": "The coordination Redis cannot be reached",
        "symptom": "Redis {redis}: {error}.",
        "diagnosis": (
            "Nothing listens there (the server is down or restarting), a firewall drops the connection, or TLS is "
            "expected (rediss://) and not used. While it is unreachable no agent can take or report work."
        ),
        "fix": {
            "summary": "Check the Redis server's process and its log on its host, and the route from here.",
            "command": ["ss -tn dst {redis_host}", "ss -tn"],
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.rabbitmq_no_consumers": {
        "category": "coordination",
        "title": "A RabbitMQ queue holds messages and has no consumer",
        "symptom": "Queue {queue} (vhost {vhost}) holds {messages_ready} ready message(s) ({messages_unacknowledged} unacknowledged) and has no consumer.",
        "diagnosis": (
            "No worker is subscribed: they crashed, lost their channel (a consumer timeout, a connection blocked by a "
            "memory or disk alarm) or subscribe to another queue or vhost. Messages wait until a consumer comes back "
            "or their TTL drops them."
        ),
        "fix": {
            "summary": ("Find why the workers are not subscribed (their logs, the broker's connections page); put the "
                        "management API user in ~/.netrc to read the queue with the command."),
            "command": [_QUEUE_API, _WORKERS],
            "playbook": None,
        },
        "thresholds": {"medium": 1, "high": 100},
    },
    "coordination.rabbitmq_growing": {
        "category": "coordination",
        "title": "A RabbitMQ queue grows",
        "symptom": ("Queue {queue} (vhost {vhost}) grew from {messages_before} to {messages} message(s) in {interval} s "
                    "({growth_per_minute}/min) with {consumers} consumer(s)."),
        "diagnosis": (
            "Messages arrive faster than they are acknowledged: too few consumers, consumers slowed by their own "
            "dependencies, or a prefetch so small that round trips dominate. Unacknowledged messages growing with "
            "consumers attached point at workers that take messages and never finish them."
        ),
        "fix": {
            "summary": "Compare publish and ack rates in the management API; add consumers or fix what slows them.",
            "command": [_QUEUE_API, _WORKERS],
            "playbook": None,
        },
        "thresholds": {"medium": 10, "high": 600},
    },
    "coordination.rabbitmq_unreachable": {
        "category": "coordination",
        "title": "The RabbitMQ management API cannot be reached",
        "symptom": "RabbitMQ management API {api}: {error}.",
        "diagnosis": (
            "The broker is down, the management plugin is not enabled (rabbitmq-plugins enable rabbitmq_management), "
            "or it listens on another port or address (15672 by default)."
        ),
        "fix": {
            "summary": "Check the broker's process and whether the management listener answers.",
            "command": ["curl -sS -i --max-time 10 {api} 2>&1 | head -n 5", "ss -tln '( sport = :15672 )'"],
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.heartbeats_stale": {
        "category": "coordination",
        "title": "Agents have stopped sending heartbeats",
        "symptom": "{stale} of {agents} agent(s) of {source} last sent a heartbeat more than {max_age} s ago: {stale_list}.",
        "diagnosis": (
            "These agents are down, hung (a blocked event loop stops the heartbeat timer too) or cut off from the bus, "
            "while the others still report: the coordinator is fine, these agents are not."
        ),
        "fix": {
            "summary": "Check those agents' processes and logs; restart the ones that are hung after capturing their state.",
            "command": [_CLI + "--scan --pattern {pattern}", _CLI_PLAIN + "--scan --pattern {pattern}",
                        "curl -sS --max-time 10 {url}; echo", _WORKERS],
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.heartbeats_all_stale": {
        "category": "coordination",
        "title": "Every agent's heartbeat is stale",
        "symptom": "All {agents} agent(s) of {source} last sent a heartbeat more than {max_age} s ago (the newest {newest_age} s ago).",
        "diagnosis": (
            "Agents do not all fail at once: when every heartbeat stops together, the coordinator or the bus that "
            "carries the heartbeats is down or partitioned (Redis, the database, the network), or the clock of the "
            "host writing them jumped."
        ),
        "fix": {
            "summary": "Check the coordinator and the bus first (their processes, Redis or the database, the network), not the agents.",
            "command": [_CLI + "--scan --pattern {pattern}", _CLI_PLAIN + "--scan --pattern {pattern}",
                        "curl -sS --max-time 10 {url}; echo", _WORKERS],
            "playbook": None,
        },
        "severity": "critical",
        "thresholds": {},
    },
    "coordination.heartbeats_missing": {
        "category": "coordination",
        "title": "No heartbeat found",
        "symptom": "{source} holds no heartbeat of any agent.",
        "diagnosis": (
            "No agent has written a heartbeat there: all of them are down, heartbeats expired (keys with a TTL vanish "
            "when agents stop), or the pattern, query or URL does not match where the agents write."
        ),
        "fix": {
            "summary": "Check that the agents run and where they write heartbeats; compare with the source configured here.",
            "command": [_CLI + "--scan --pattern {pattern}", _CLI_PLAIN + "--scan --pattern {pattern}",
                        "curl -sS --max-time 10 {url}; echo", _WORKERS],
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.stuck_tasks": {
        "category": "coordination",
        "title": "Tasks stuck in a running state",
        "symptom": ("{count} task(s) have been {states} for more than {max_age} s; the oldest, {oldest_task}, since "
                    "{oldest_since} ({oldest_age} s): {task_list}."),
        "diagnosis": (
            "The agent that claimed each task died or hung without releasing it, and nothing requeues claims that "
            "outlive their lease: the tasks will never finish and whoever waits on them waits forever."
        ),
        "fix": {
            "summary": ("Check whether the agents holding them still run (hung CLI children, proc.* findings); requeue "
                        "the tasks whose agent is gone, and add a lease timeout that requeues them."),
            "command": _WORKERS,
            "playbook": None,
        },
        "severity": "high",
        "thresholds": {},
    },
    "coordination.check_incomplete": {
        "category": "coordination",
        "title": "A coordination check could not run",
        "symptom": "Could not check {what}: {error}.",
        "diagnosis": (
            "This part was not checked, so the report cannot say it is healthy: a wrong password, a query the server "
            "refused or cancelled, a key of an unexpected type, or the time budget spent."
        ),
        "fix": {
            "summary": "Fix the setting the error names (agentops_redis_password, agentops_stuck_task_query, ...) and run the diagnosis again.",
            "command": "ansible-playbook agentops.runbooks.diagnose",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
}
