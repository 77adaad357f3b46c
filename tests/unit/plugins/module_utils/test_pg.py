"""Connection-error classification on recorded server messages (PostgreSQL 15 from this machine's server,
PostgreSQL 16+ wordings as recorded from its source): no server is started here."""
import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import pg

RECORDED = [
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  sorry, too many clients already', "too_many_clients"),
    ("FATAL: remaining connection slots are reserved for non-replication superuser connections", "reserved_slots"),
    # PostgreSQL 16+ wordings
    ("FATAL: remaining connection slots are reserved for roles with the SUPERUSER attribute", "reserved_slots"),
    ('FATAL: remaining connection slots are reserved for roles with privileges of the "pg_use_reserved_connections" role',
     "reserved_slots"),
    ('FATAL:  password authentication failed for user "agent"', "auth"),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.5", user "agent", database "app", no encryption', "auth"),
    ('FATAL:  database "missing_db" does not exist', "database_missing"),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running on that host?', "refused"),
    ('connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: No such file or directory\n'
     '\tIs the server running locally and accepting connections on that socket?', "refused"),
    ('connection to server at "10.1.2.3", port 5432 failed: timeout expired', "timeout"),
    ('could not translate host name "db.internal" to address: Name or service not known', "dns"),
    ("FATAL:  the database system is shutting down", "shutting_down"),
    ("something else entirely", "other"),
]


@pytest.mark.parametrize("message, kind", RECORDED)
def test_recorded_connection_errors_are_classified(message, kind):
    assert pg.classify(message) == kind
    assert pg.PgError(message).kind == kind
    assert "\n" not in pg.PgError(message).message


@pytest.mark.parametrize("change, message", [
    ({"port": 0}, "port must be between 1 and 65535"),
    ({"connect_timeout": 301}, "connect_timeout must be between 1 and 300"),
    ({"statement_timeout_ms": 50}, "statement_timeout_ms must be between 100 and 600000"),
])
def test_validate_ranges(change, message):
    params = dict((k, v.get("default")) for k, v in pg.argument_spec().items())
    params.update(change)
    with pytest.raises(ValueError) as err:
        pg.validate(params)
    assert message in str(err.value)


def test_password_is_no_log_in_the_shared_spec():
    assert pg.argument_spec()["password"]["no_log"] is True
