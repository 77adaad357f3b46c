"""A real throwaway PostgreSQL cluster for the tests that need one (tests/pgcluster.py)."""
import os
import shutil
import sys
import tempfile
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pgcluster  # noqa: E402  pylint: disable=wrong-import-position

APP_PASSWORD = "agent-password-1"


@pytest.fixture(scope="session")
def pg_server():
    """12 max_connections, 3 reserved for superusers: 9 usable slots."""
    import psycopg
    directory = tempfile.mkdtemp(prefix="agentops-pg-")
    info = pgcluster.start(directory, max_connections=12)
    with psycopg.connect(host=info["host"], port=info["port"], user="postgres", password=info["password"],
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE ROLE agent LOGIN PASSWORD '%s'" % APP_PASSWORD)
        conn.execute("CREATE ROLE monitor LOGIN PASSWORD '%s'" % APP_PASSWORD)
        conn.execute("CREATE TABLE jobs (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO jobs SELECT g, 0 FROM generate_series(1, 10) AS g")
        conn.execute("GRANT SELECT, UPDATE ON jobs TO agent")
    info["app_password"] = APP_PASSWORD
    yield info
    pgcluster.stop(directory)
    shutil.rmtree(directory, ignore_errors=True)


class Sessions(object):
    """Real client sessions a test opens and the fixture closes."""

    def __init__(self, info):
        self.info = info
        self.conns = []
        self.threads = []

    def open(self, user="agent", application="manager", count=1, autocommit=True):
        import psycopg
        password = self.info["password"] if user == "postgres" else self.info["app_password"]
        opened = []
        for dummy in range(count):
            conn = psycopg.connect(host=self.info["host"], port=self.info["port"], user=user, password=password,
                                   dbname="postgres", application_name=application, autocommit=autocommit)
            self.conns.append(conn)
            opened.append(conn)
        return opened

    @staticmethod
    def pid(conn):
        return conn.info.backend_pid

    def in_background(self, conn, sql):
        """Run ``sql`` in a thread (it may block on a lock until its session is terminated)."""
        def run():
            try:
                conn.execute(sql)
            except Exception:  # terminated or cancelled: that is what the tests do to it
                pass
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def close(self):
        for conn in self.conns:
            try:
                conn.close()
            except Exception:  # already terminated by the test
                pass
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def sessions(pg_server):
    opened = Sessions(pg_server)
    yield opened
    opened.close()
