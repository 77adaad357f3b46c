"""Verify that pg_connections ended exactly the root blocker and nothing else."""
import json
import os

import psycopg

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]


def state():
    with open(os.path.join(EPHEMERAL, "pg_faults.json")) as handle:
        return json.load(handle)


def query(sql, *params):
    info = state()["cluster"]
    with psycopg.connect(host=info["host"], port=info["port"], user="postgres", password=info["password"],
                         dbname="postgres", autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def alive():
    backends = state()["backends"]
    rows = query("SELECT application_name FROM pg_stat_activity WHERE pid = ANY(%s)", list(backends.values()))
    return set(r[0] for r in rows)


def test_the_root_blocker_was_terminated_and_nothing_else(host):
    assert host.file(os.path.join(EPHEMERAL, "pg_faults.json")).exists
    assert alive() == {"manager", "admin", "pg_dump"}


def test_the_blocked_writer_went_through_and_the_blocker_rolled_back(host):
    assert host.file(os.path.join(EPHEMERAL, "pg_faults.json")).exists
    # worker's uncommitted +1 rolled back; manager's +1, unblocked, committed.
    assert query("SELECT v FROM jobs WHERE id = 1") == [(1,)]
    assert query("SELECT cardinality(pg_blocking_pids(%s))", state()["backends"]["manager"]) == [(0,)]


def test_the_role_timeout_was_set(host):
    assert host.file(os.path.join(EPHEMERAL, "pg_faults.json")).exists
    rows = query("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'agent'")
    assert rows == [(["idle_in_transaction_session_timeout=5min"],)]
