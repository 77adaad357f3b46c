"""Every fix command of the catalog runs as printed: filled with real values of this machine, no placeholder
left, every value shell-quoted; the read-only ones exit 0 here. Commands that change state (ansible-playbook
remediation, GRANT) are checked for filled values only."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

from helpers import changes_state


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """Real values of this machine: a live process's pid, a real mount, a real log file, a listening port."""
    base = tmp_path_factory.mktemp("fix")
    log = base / "agent.log"
    log.write_text("[2026-11-27T03:00:00.000Z] [ERROR] [agent] CERT_HAS_EXPIRED anthropic-ratelimit-requests-remaining: 0\n")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    values = {
        "pid": proc.pid, "mount_point": "/", "cgroup": "/", "what": str(log), "file": str(log), "files": str(log),
        "command_path": sys.executable, "dns_host": "localhost", "tls_host": "localhost", "host": "localhost",
        "port": 1, "port_filter": "( sport = :1 )", "user": "agent", "pg_host": "127.0.0.1", "pg_port": 5432,
        "pg_user": "postgres", "pg_database": "postgres", "oldest_seconds": 300, "max_wait_seconds": 60, "threshold": 300,
        "application": "worker", "idle_caps": '{"pg_connections_idle_caps": [{"application": "worker", "max_idle": 2}]}',
        "role_timeouts": '{"pg_connections_role_timeouts": [{"role": "agent", "idle_in_transaction_session_timeout": "5min"}]}',
    }
    yield values
    proc.kill()
    proc.wait()


# No cluster runs here: the k8s rules' commands are filled with names of the recorded cluster and run against the
# stand-in kubectl that plays it back (tests/fixtures/k8s), which refuses any verb that would change a cluster.
K8S_FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "fixtures", "k8s")
K8S_VALUES = {"namespace": "agents", "pod": "worker-5c6d7f8b9-h7k2m", "container": "worker", "deployment": "api", "previous_revision": 6,
              "service": "api", "selector": "app=api", "ingress": "agents", "replicaset": "indexer-66b8f9d7c4", "statefulset": "db",
              "pvc": "data-db-0", "job": "nightly-report-28907640", "node": "node-a", "reason": "FailedMount", "what": "nodes"}


@pytest.fixture
def recorded_cluster(monkeypatch):
    monkeypatch.setenv("PATH", os.path.join(K8S_FIXTURES, "bin") + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("K8S_STUB_SCENARIO", os.path.join(K8S_FIXTURES, "recorded", "incident"))


@pytest.mark.parametrize("rule_id", sorted(r for r in RULES if (RULES[r].get("fix") or {}).get("command")))
def test_every_fix_command_is_filled_and_runs_as_printed(rule_id, machine, request):
    if rule_id.startswith("k8s."):
        request.getfixturevalue("recorded_cluster")
        machine = dict(machine, **K8S_VALUES)
    command = fm.make(rule_id, "high", machine)["fix"]["command"]
    assert command, "no alternative of %s could be filled from %s" % (rule_id, sorted(machine))
    assert not re.search(r"(?<!\$)\{[a-z_]+\}|<[a-z_]+>|\bHOST\b|\bAPP_ROLE\b", command), command
    if changes_state(command):
        return
    run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, "%s\n%s\n%s" % (command, run.stdout[-500:], run.stderr[-500:])


def test_values_are_shell_quoted_so_a_hostile_name_stays_one_argument(tmp_path):
    hostile = str(tmp_path / "x'; touch pwned; echo '")
    command = fm.make("log.check_incomplete", "unknown", {"what": hostile})["fix"]["command"]
    assert shlex.split(command)[2] == hostile
    subprocess.run(["sh", "-c", command], cwd=str(tmp_path), capture_output=True, check=False)
    assert not os.path.exists(tmp_path / "pwned")


def test_the_most_specific_alternative_whose_values_are_known_wins():
    assert fm.make("log.econnrefused", "high", {"port_filter": "( sport = :5432 )"})["fix"]["command"] == "ss -ltnp '( sport = :5432 )'"
    assert fm.make("log.econnrefused", "high", {})["fix"]["command"] == "ss -ltnp"
