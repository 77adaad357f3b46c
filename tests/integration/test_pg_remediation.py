"""pg_sessions and pg_role_timeouts against a real PostgreSQL cluster: exactly the targeted pids end,
guardrails hold, check mode signals nothing, a second run changes nothing."""
import time

import psycopg
import pytest

from helpers import run_module


def conn_args(info, **extra):
    args = dict(host=info["host"], port=info["port"], user="postgres", password=info["password"])
    args.update(extra)
    return args


def alive(info, pids):
    with psycopg.connect(host=info["host"], port=info["port"], user="postgres", password=info["password"],
                         dbname="postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)).fetchall()
    return set(r[0] for r in rows)


def idle_in_transaction(sessions, **kwargs):
    conn, = sessions.open(autocommit=False, **kwargs)
    conn.execute("SELECT 1")
    return conn


@pytest.fixture
def incident(pg_server, sessions):
    """A lock chain rooted in an idle-in-transaction worker, plus sessions that must survive."""
    holder, = sessions.open(application="worker", autocommit=False)
    holder.execute("UPDATE jobs SET v = v + 1 WHERE id = 2")
    waiter, = sessions.open(application="manager")
    sessions.in_background(waiter, "UPDATE jobs SET v = v + 1 WHERE id = 2")
    superuser = idle_in_transaction(sessions, user="postgres", application="admin")
    protected = idle_in_transaction(sessions, application="pg_dump")
    time.sleep(1.5)
    return {"holder": sessions.pid(holder), "waiter": sessions.pid(waiter), "superuser": sessions.pid(superuser),
            "protected": sessions.pid(protected)}


def test_check_mode_lists_exactly_the_targets_and_signals_nothing(pg_server, incident):
    rc, result = run_module("pg_sessions", conn_args(pg_server, terminate_idle_in_transaction_after=1,
                                                     terminate_blockers_after=1, allow_applications=["pg_dump"],
                                                     _ansible_check_mode=True))
    assert rc == 0, result
    assert result["changed"] is True and result["queries"] == []
    assert [(a["pid"], a["action"], a["done"]) for a in result["actions"]] == [(incident["holder"], "terminate", False)]
    reasons = result["actions"][0]["reasons"]
    assert any("root blocker of 1 session" in r for r in reasons) and any("idle in transaction for" in r for r in reasons)
    skipped = dict((s["pid"], s["why"]) for s in result["left_alone"])
    assert skipped[incident["superuser"]] == "superuser session"
    assert skipped[incident["protected"]] == "application 'pg_dump' is allow-listed"
    assert alive(pg_server, incident.values()) == set(incident.values())


def test_real_run_terminates_exactly_the_targets_then_has_nothing_to_do(pg_server, incident):
    args = conn_args(pg_server, terminate_idle_in_transaction_after=1, allow_applications=["pg_dump"])
    rc, result = run_module("pg_sessions", args)
    assert rc == 0, result
    assert result["changed"] is True
    assert [(a["pid"], a["done"]) for a in result["actions"]] == [(incident["holder"], True)]
    assert "pg_terminate_backend" in result["queries"][0]
    time.sleep(0.5)
    assert alive(pg_server, incident.values()) == {incident["waiter"], incident["superuser"], incident["protected"]}
    rc, again = run_module("pg_sessions", args)
    assert rc == 0 and again["changed"] is False and again["actions"] == []


def test_idle_cap_terminates_the_oldest_idle_sessions_first(pg_server, sessions):
    conns = []
    for dummy in range(4):
        conns += sessions.open(application="leaky-pool")
        time.sleep(0.3)
    oldest = [sessions.pid(c) for c in conns[:2]]
    rc, result = run_module("pg_sessions", conn_args(pg_server, idle_caps=[{"application": "leaky-pool", "max_idle": 2}]))
    assert rc == 0, result
    assert sorted(a["pid"] for a in result["actions"] if a["done"]) == sorted(oldest)
    assert alive(pg_server, [sessions.pid(c) for c in conns]) == set(sessions.pid(c) for c in conns[2:])


def test_cancel_keeps_the_session_and_ends_the_query(pg_server, sessions):
    runner, = sessions.open(application="reporter")
    sessions.in_background(runner, "SELECT pg_sleep(60)")
    time.sleep(1.5)
    rc, result = run_module("pg_sessions", conn_args(pg_server, cancel_active_after=1, deny_applications=["reporter"]))
    assert rc == 0, result
    assert [(a["pid"], a["action"], a["done"]) for a in result["actions"]] == [(sessions.pid(runner), "cancel", True)]
    time.sleep(0.5)
    assert alive(pg_server, [sessions.pid(runner)]) == {sessions.pid(runner)}


def test_max_terminations_and_deny_lists_bound_the_run(pg_server, sessions):
    targets = [sessions.pid(idle_in_transaction(sessions, application="batch")) for dummy in range(3)]
    other = sessions.pid(idle_in_transaction(sessions, application="web"))
    time.sleep(1.2)
    rc, result = run_module("pg_sessions", conn_args(pg_server, terminate_idle_in_transaction_after=1, max_terminations=1,
                                                     deny_applications=["batch"]))
    assert rc == 0, result
    done = [a["pid"] for a in result["actions"] if a["done"]]
    assert len(done) == 1 and done[0] in targets
    whys = dict((s["pid"], s["why"]) for s in result["left_alone"])
    assert whys[other] == "application 'web' is not in deny_applications"
    assert sum(1 for w in whys.values() if w == "over the limit of 1 terminations per run") == 2
    assert alive(pg_server, targets + [other]) == set(targets + [other]) - set(done)


@pytest.mark.parametrize("args, message", [
    ({}, "Nothing to do: set at least one of"),
    ({"terminate_idle_in_transaction_after": 0}, "must be at least 1 second"),
    ({"idle_caps": [{"application": "x", "max_idle": -1}]}, "must not be negative"),
])
def test_bad_arguments_fail_with_one_sentence(pg_server, args, message):
    rc, result = run_module("pg_sessions", conn_args(pg_server, **args))
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]


def test_role_timeouts_are_idempotent_with_check_mode(pg_server):
    args = conn_args(pg_server, role="agent", timeouts={"idle_in_transaction_session_timeout": "5min"})
    rc, check = run_module("pg_role_timeouts", dict(args, _ansible_check_mode=True))
    assert rc == 0 and check["changed"] is True and check["before"] == {}
    rc, applied = run_module("pg_role_timeouts", args)
    assert rc == 0 and applied["changed"] is True
    assert applied["queries"] == ['ALTER ROLE "agent" SET idle_in_transaction_session_timeout = \'5min\'']
    rc, again = run_module("pg_role_timeouts", args)
    assert rc == 0 and again["changed"] is False and again["before"] == {"idle_in_transaction_session_timeout": "5min"}
    with psycopg.connect(host=pg_server["host"], port=pg_server["port"], user="agent", password=pg_server["app_password"],
                         dbname="postgres") as conn:
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "5min"
    rc, reset = run_module("pg_role_timeouts", dict(args, timeouts={"idle_in_transaction_session_timeout": "default"}))
    assert rc == 0 and reset["changed"] is True and reset["after"] == {}


@pytest.mark.parametrize("timeouts, message", [
    ({"work_mem": "1GB"}, "timeouts may set"),
    ({"statement_timeout": "5 minutes; DROP TABLE jobs"}, "is not a number with an optional unit"),
])
def test_role_timeouts_reject_other_settings_and_bad_values(pg_server, timeouts, message):
    rc, result = run_module("pg_role_timeouts", conn_args(pg_server, role="agent", timeouts=timeouts))
    assert rc != 0 and message in result["msg"]


def test_database_level_timeouts(pg_server):
    args = conn_args(pg_server, in_database="postgres", timeouts={"lock_timeout": "10s"})
    rc, applied = run_module("pg_role_timeouts", args)
    assert rc == 0 and applied["queries"] == ['ALTER DATABASE "postgres" SET lock_timeout = \'10s\'']
    rc, again = run_module("pg_role_timeouts", args)
    assert rc == 0 and again["changed"] is False
    rc, reset = run_module("pg_role_timeouts", dict(args, timeouts={"lock_timeout": "default"}))
    assert rc == 0 and reset["queries"] == ['ALTER DATABASE "postgres" RESET lock_timeout']
    rc, missing = run_module("pg_role_timeouts", conn_args(pg_server, in_database="nope", timeouts={"lock_timeout": "1s"}))
    assert rc != 0 and missing["msg"] == "Database nope does not exist."


@pytest.mark.parametrize("flag", ["y", "dry", "1"])
def test_remediate_postgres_with_an_unclear_dry_run_flag_stops_and_terminates_nothing(pg_server, incident, tmp_path, flag):
    """`pg_connections_dry_run=y` used to read as false and terminate sessions; now it stops the play first."""
    import json
    import os
    import subprocess
    import sys
    from helpers import COLLECTIONS_PATH, REPO
    extra = {"agentops_pg_host": pg_server["host"], "agentops_pg_port": pg_server["port"], "agentops_pg_user": "postgres",
             "agentops_pg_password": pg_server["password"], "pg_connections_terminate_idle_in_transaction_after": 1}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH)
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/remediate_postgres.yml",
                          "-i", "inventories/localhost.yml", "-e", json.dumps(extra), "-e", "pg_connections_dry_run=%s" % flag],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-2000:]
    assert "pg_connections_dry_run" in output and "Traceback" not in output
    assert pg_server["password"] not in output
    assert alive(pg_server, [incident["holder"], incident["protected"]]) == {incident["holder"], incident["protected"]}
