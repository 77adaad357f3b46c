"""pg_connection_facts against a real PostgreSQL cluster (tests/pgcluster.py): saturation, too many clients,
idle in transaction, lock chains, hidden sessions, both clients, unreachable servers."""
import time

import pytest

from helpers import run_module

SUPER = "postgres"


def audit(info, user=SUPER, password=None, client="auto", **extra):
    args = dict(host=info["host"], port=info["port"], user=user, client=client,
                password=password or (info["password"] if user == SUPER else info["app_password"]))
    args.update(extra)
    rc, result = run_module("pg_connection_facts", args)
    assert rc == 0, result
    assert result["changed"] is False
    return result


def by_id(result):
    out = {}
    for item in result["findings"]:
        out.setdefault(item["id"], []).append(item)
    return out


@pytest.mark.parametrize("client", ["psycopg", "psql"])
def test_healthy_server_through_each_client(pg_server, client):
    result = audit(pg_server, client=client)
    facts = result["facts"]
    assert facts["reachable"] and facts["client"] == client
    assert facts["slots"]["max_connections"] == 12 and facts["slots"]["usable"] == 9
    assert facts["timeouts"]["statement_timeout"] == "0"  # the server's value, not the audit's own bound
    assert "pg.saturation" not in by_id(result)
    missing = by_id(result)["pg.missing_timeouts"][0]
    assert missing["severity"] == "low"
    assert "pg_connections_role_timeouts" in missing["fix"]["command"] and "idle_in_transaction_session_timeout" in missing["fix"]["command"]


def test_too_many_clients_is_reproduced_and_diagnosed(pg_server, sessions):
    # The application takes every usable slot (9 = 12 - 3 reserved for superusers).
    sessions.open(user="agent", application="manager", count=9)
    # The audit still gets in through a reserved superuser slot and names the hog.
    result = audit(pg_server)
    found = by_id(result)
    assert found["pg.saturation"][0]["severity"] == "critical"
    assert found["pg.saturation"][0]["evidence"]["in_use"] == 10  # 9 + the audit itself
    hog = found["pg.pool_hog"][0]
    assert hog["evidence"]["application"] == "manager" and hog["evidence"]["count"] == 9 and hog["severity"] == "high"
    assert "9 usable slots" in hog["diagnosis"]
    # the printed remediation caps exactly this application's idle sessions (one quoted -e argument)
    assert "-e '{\"pg_connections_idle_caps\": [{\"application\": \"manager\", \"max_idle\": 2}]}'" in hog["fix"]["command"]
    # A non-superuser now only finds the reserved slots: the PostgreSQL 15 wording.
    refused = by_id(audit(pg_server, user="agent"))["pg.too_many_clients"][0]
    assert refused["severity"] == "critical" and refused["evidence"]["kind"] == "reserved_slots"
    assert "reserved for non-replication superuser connections" in refused["symptom"]
    # Fill the reserved slots too: now even the superuser audit is refused.
    sessions.open(user=SUPER, application="psql", count=3)
    result = audit(pg_server)
    assert result["facts"]["reachable"] is False
    refused = by_id(result)["pg.too_many_clients"][0]
    assert refused["evidence"]["kind"] == "too_many_clients"
    assert "too many clients" in refused["symptom"]


def test_idle_in_transaction_and_lock_chain(pg_server, sessions):
    holder, = sessions.open(application="worker", autocommit=False)
    holder.execute("UPDATE jobs SET v = v + 1 WHERE id = 1")  # opens a transaction, then goes quiet
    waiter, = sessions.open(application="manager")
    sessions.in_background(waiter, "UPDATE jobs SET v = v + 1 WHERE id = 1")
    time.sleep(2.2)
    result = audit(pg_server, thresholds={"pg.idle_in_transaction": {"medium": 1}, "pg.lock_chain": {"medium": 1}})
    found = by_id(result)
    idle = found["pg.idle_in_transaction"][0]
    assert idle["evidence"]["oldest_pid"] == sessions.pid(holder)
    assert idle["evidence"]["blocking_pids"] == [sessions.pid(holder)]
    assert idle["severity"] == "high"  # it blocks another session
    assert idle["evidence"]["oldest_seconds"] >= 2
    chain = found["pg.lock_chain"][0]
    assert chain["evidence"]["root_pid"] == sessions.pid(holder)
    assert chain["evidence"]["blocked_pids"] == [sessions.pid(waiter)]
    assert chain["evidence"]["root_state"] == "idle in transaction"
    assert result["facts"]["lock_chains"][0]["root_application"] == "worker"


def test_hidden_sessions_are_unknown_not_healthy(pg_server, sessions):
    holder, = sessions.open(user=SUPER, application="admin", autocommit=False)
    holder.execute("SELECT 1")
    result = audit(pg_server, user="monitor")
    assert result["facts"]["privileged"] is False and result["facts"]["hidden_sessions"] >= 1
    hidden = by_id(result)["pg.limited_privileges"][0]
    assert hidden["severity"] == "unknown" and hidden["evidence"]["user"] == "monitor"


@pytest.mark.parametrize("change, kind", [
    ({"port": 1}, "refused"),
    ({"password": "wrong-password"}, "auth"),
    ({"database": "missing_db"}, "database_missing"),
])
def test_unreachable_server_is_a_classified_finding_not_a_failure(pg_server, change, kind):
    args = dict(host=pg_server["host"], port=pg_server["port"], user=SUPER, password=pg_server["password"])
    args.update(change)
    rc, result = run_module("pg_connection_facts", args)
    assert rc == 0, result
    finding = result["findings"][0]
    assert finding["id"] == "pg.unreachable" and finding["severity"] == "critical"
    assert finding["evidence"]["kind"] == kind
    assert pg_server["password"] not in repr(result)


@pytest.mark.parametrize("args, message", [
    ({"port": 70000}, "port must be between 1 and 65535"),
    ({"connect_timeout": 0}, "connect_timeout must be between 1 and 300"),
    ({"client": "psycopg2"}, "No PostgreSQL client found on this host for client=psycopg2"),
    ({"thresholds": {"pg.saturation": {"extreme": 1}}}, "has no level 'extreme'"),
])
def test_bad_arguments_fail_with_one_sentence(pg_server, args, message):
    base = dict(host=pg_server["host"], port=pg_server["port"], user=SUPER, password=pg_server["password"])
    base.update(args)
    rc, result = run_module("pg_connection_facts", base)
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]
    assert pg_server["password"] not in repr(result)


def test_a_real_deadlock_is_counted(pg_server, sessions):
    first, second = sessions.open(application="deadlock-a", autocommit=False) + sessions.open(application="deadlock-b", autocommit=False)
    first.execute("UPDATE jobs SET v = v + 1 WHERE id = 5")
    second.execute("UPDATE jobs SET v = v + 1 WHERE id = 6")
    sessions.in_background(first, "UPDATE jobs SET v = v + 1 WHERE id = 6")
    time.sleep(0.3)
    sessions.in_background(second, "UPDATE jobs SET v = v + 1 WHERE id = 5")  # deadlock_timeout is 200ms here
    for thread in sessions.threads:
        thread.join(10)
    first.rollback()
    second.rollback()  # statistics are flushed when the transactions end (rate-limited on PostgreSQL 15+)
    deadline = time.time() + 20
    found = None
    while time.time() < deadline and not found:
        found = by_id(audit(pg_server)).get("pg.deadlocks")
        time.sleep(0.5)
    assert found, "pg_stat_database.deadlocks never counted the deadlock"
    assert found[0]["evidence"]["database"] == "postgres" and found[0]["evidence"]["deadlocks"] >= 1


def test_a_long_running_query_is_reported(pg_server, sessions):
    runner, = sessions.open(application="reporter")
    sessions.in_background(runner, "SELECT pg_sleep(30)")
    time.sleep(2.2)
    result = audit(pg_server, thresholds={"pg.long_query": {"medium": 2}})
    long_query = by_id(result)["pg.long_query"][0]
    assert long_query["evidence"]["pid"] == sessions.pid(runner)
    assert long_query["evidence"]["longest_seconds"] >= 2 and "pg_sleep" in long_query["evidence"]["query"]
    with psycopg_connect(pg_server) as conn:
        conn.execute("SELECT pg_cancel_backend(%s)", (sessions.pid(runner),))


def psycopg_connect(info):
    import psycopg
    return psycopg.connect(host=info["host"], port=info["port"], user="postgres", password=info["password"],
                           dbname="postgres", autocommit=True)
