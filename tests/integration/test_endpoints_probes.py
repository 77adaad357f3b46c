"""The endpoints family against real servers the tests start on loopback (port 0), real certificates made with the
openssl CLI, and the real /proc: each test asserts the finding, its evidence, and that its fix command runs as printed.

Run inside a PID namespace of its own (scripts/pidns.py --unshare): the listener owners are the tests' own processes.
"""
import datetime
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils.net_probe import SLACK
from ansible_collections.agentops.runbooks.plugins.module_utils.net_sockets import listener_for

from helpers import REPO, run_fix_commands, run_module

SERVER = os.path.join(REPO, "tests", "fixtures", "endpoints", "server.py")
NODE = "/usr/bin/node"

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="the openssl CLI makes the test certificates")


# ------------------------------------------------------------------ servers and certificates
class Servers(object):
    def __init__(self):
        self.procs = []

    def start(self, argv):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(proc)
        line = proc.stdout.readline()
        assert line.strip().isdigit(), "server %s did not start" % argv
        return proc, int(line)

    def python(self, mode, *extra):
        return self.start([sys.executable, SERVER, mode] + list(extra))

    def stop(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def servers():
    made = Servers()
    yield made
    made.stop()


def _when(days):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)).strftime("%Y%m%d%H%M%SZ")


def _openssl(*args, cwd):
    run = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    return run


CA_CNF = """[ca]
default_ca = CA_default
[CA_default]
dir = .
database = ./index.txt
new_certs_dir = .
serial = ./serial
default_md = sha256
policy = policy_any
unique_subject = no
[policy_any]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @names
[names]
%s
"""


class PKI(object):
    """A test CA (openssl req -x509) and leaves it signs with chosen dates (openssl ca -startdate/-enddate: this
    OpenSSL 3.0 has no -not_before/-not_after, and there is no faketime)."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.serial = 0
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.pem", "-days", "30", "-subj", "/CN=agentops test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as handle:
            handle.write("1000\n")
        self.ca = os.path.join(self.dir, "ca.pem")

    def leaf(self, name, names=("DNS:localhost", "IP:127.0.0.1"), start=-1, end=30):
        sans = "\n".join("%s.%d = %s" % (n.split(":")[0].replace("IP", "IP"), i + 1, n.split(":", 1)[1]) for i, n in enumerate(names))
        with open(os.path.join(self.dir, name + ".cnf"), "w") as handle:
            handle.write(CA_CNF % sans)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
                 "-out", name + ".csr", "-subj", "/CN=%s" % name, cwd=self.dir)
        _openssl("ca", "-batch", "-config", name + ".cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-extensions", "leaf",
                 "-startdate", _when(start), "-enddate", _when(end), "-notext", "-in", name + ".csr", "-out", name + ".pem",
                 cwd=self.dir)
        return os.path.join(self.dir, name + ".pem"), os.path.join(self.dir, name + ".key")

    def self_signed(self, name):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", name + ".key", "-out", name + ".pem",
                 "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=self.dir)
        return os.path.join(self.dir, name + ".pem"), os.path.join(self.dir, name + ".key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def trust(monkeypatch, pki):
    """This run's "system store" is the test CA: OpenSSL's default verify paths honour SSL_CERT_FILE (the same
    variable an operator sets for a private CA), and the openssl CLI in the fix commands sees it too."""
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


# ------------------------------------------------------------------ running the family
def diagnose(endpoints, probe_timeout=3.0):
    began = time.monotonic()
    result = collectors.run(None, ["endpoints"], {"endpoints": {"endpoints": endpoints, "probe_timeout": probe_timeout}},
                            {"thresholds": {}, "redaction_key": "test-key"}, timeout=60)["endpoints"]
    result["elapsed"] = time.monotonic() - began
    assert result["status"] in ("ok", "partial"), result
    return result


def found(result, rule_id, subject=None):
    hits = [f for f in result["findings"] if f["id"] == rule_id and (subject is None or f["subject"] == subject)]
    assert hits, "no %s in %s" % (rule_id, [(f["id"], f["subject"]) for f in result["findings"]])
    return hits[0]


def ids(result, subject):
    return sorted(f["id"] for f in result["findings"] if f["subject"] == subject)


def probe(result, name):
    return [e for e in result["facts"]["endpoints"] if e["name"] == name][0]


def fix_commands_run(result):
    assert run_fix_commands({"hosts": {"localhost": result}}) == []


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ------------------------------------------------------------------ HTTP
def test_http_500_from_a_real_node_server_is_a_finding_and_its_listener_is_that_process(servers):
    script = ("require('http').createServer((q, s) => { s.writeHead(500, 'Internal Server Error'); s.end('down'); })"
              ".listen(0, '127.0.0.1', function () { console.log(this.address().port); });")
    node, port = servers.start([NODE, "-e", script])
    result = diagnose([{"url": "http://127.0.0.1:%d/health" % port, "name": "agent health"}])
    finding = found(result, "endpoints.http_status", "agent health")
    assert finding["severity"] == "high"
    assert finding["evidence"]["status"] == 500 and finding["evidence"]["expected"] == "a status below 400"
    assert "answered 500 Internal Server Error" in finding["symptom"]
    assert probe(result, "agent health")["http"]["status"] == 500
    listeners = [entry for entry in result["facts"]["listeners"] if entry["port"] == port]
    assert listeners == [dict(listeners[0], address="127.0.0.1", pid=node.pid, program="node")]
    # The question the controller asks about "connect ECONNREFUSED 127.0.0.1:<port>" in a log, from these facts.
    assert [entry["pid"] for entry in listener_for(result["facts"]["listeners"], "127.0.0.1", port)] == [node.pid]
    fix_commands_run(result)


def test_an_expected_status_and_a_body_match_are_checked(servers):
    _proc, port = servers.python("status:200")
    url = "http://127.0.0.1:%d/ready" % port
    result = diagnose([{"url": url, "name": "wants 204", "expect_status": 204},
                       {"url": url, "name": "wants ok", "body_match": "\"status\": *\"ok\""},
                       {"url": url, "name": "healthy", "body_match": "^status 200$"}])
    assert found(result, "endpoints.http_status", "wants 204")["evidence"]["expected"] == 204
    assert found(result, "endpoints.http_body", "wants ok")["evidence"]["body_match"] == "\"status\": *\"ok\""
    assert ids(result, "healthy") == [] and probe(result, "healthy")["http"]["body_matched"] is True
    fix_commands_run(result)


def test_a_server_that_accepts_and_never_answers_ends_within_the_deadline(servers):
    _proc, hang = servers.python("hang")
    _proc2, trickle = servers.python("trickle")
    result = diagnose([{"url": "http://127.0.0.1:%d/" % hang, "name": "hangs"},
                       {"url": "http://127.0.0.1:%d/" % trickle, "name": "trickles"}], probe_timeout=1.0)
    assert result["elapsed"] < 1.0 + SLACK + 1.0, result["elapsed"]
    for name in ("hangs", "trickles"):
        finding = found(result, "endpoints.http_timeout", name)
        assert finding["evidence"]["timeout_s"] == 1.0 and "sent no response within 1.0 s" in finding["symptom"]
        assert probe(result, name)["http"]["timeout"] is True and probe(result, name)["connect_ms"] is not None
    fix_commands_run(result)


# ------------------------------------------------------------------ TCP and listeners
def test_a_closed_port_is_refused_and_nothing_listens_there():
    port = free_port()
    result = diagnose(["tcp://127.0.0.1:%d" % port])
    finding = found(result, "endpoints.unreachable")
    assert finding["evidence"]["kind"] == "refused" and finding["evidence"]["local"] is True
    assert finding["evidence"]["listening"] == "Nothing on this host listens on port %d now." % port
    assert finding["fix"]["command"] == "ss -ltnp '( sport = :%d )'" % port
    assert listener_for(result["facts"]["listeners"], "127.0.0.1", port) == []
    fix_commands_run(result)


def test_a_service_listening_on_another_address_is_named_with_its_pid(servers):
    proc, port = servers.python("status:200", "--bind", "127.0.0.2")
    result = diagnose(["postgres://127.0.0.1:%d/app" % port])
    finding = found(result, "endpoints.unreachable")
    assert finding["evidence"]["listener_pid"] == proc.pid
    assert "listened on only at 127.0.0.2, by pid %d (python" % proc.pid in finding["evidence"]["listening"]
    assert listener_for(result["facts"]["listeners"], "127.0.0.1", port) == []
    assert [e["pid"] for e in listener_for(result["facts"]["listeners"], "127.0.0.2", port)] == [proc.pid]
    fix_commands_run(result)


# ------------------------------------------------------------------ TLS
def test_a_self_signed_certificate_is_untrusted_and_the_service_behind_still_answers(servers, pki):
    cert, key = pki.self_signed("selfsigned")
    _proc, port = servers.python("status:200", "--cert", cert, "--key", key)
    result = diagnose([{"url": "https://127.0.0.1:%d/health" % port, "name": "self-signed"}])
    finding = found(result, "endpoints.tls_untrusted", "self-signed")
    assert finding["evidence"]["code"] == "DEPTH_ZERO_SELF_SIGNED_CERT" and "self-signed" in finding["evidence"]["error"]
    tls = probe(result, "self-signed")["tls"]
    assert tls["verified"] is False and tls["hostname_ok"] is True and tls["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert 0 < tls["days_left"] <= 1.0 and tls["self_signed"] is True
    assert probe(result, "self-signed")["http"]["status"] == 200
    assert ids(result, "self-signed") == ["endpoints.tls_expiring", "endpoints.tls_untrusted"]
    fix_commands_run(result)


def test_an_expired_certificate_from_a_trusted_ca_is_expired_not_untrusted(servers, pki, trust):
    cert, key = pki.leaf("expired", start=-30, end=-2)
    _proc, port = servers.python("status:200", "--cert", cert, "--key", key)
    result = diagnose([{"url": "https://localhost:%d/" % port, "name": "expired"}])
    finding = found(result, "endpoints.tls_expired", "expired")
    assert finding["severity"] == "critical" and 2.0 <= finding["evidence"]["days_ago"] < 2.1
    assert finding["evidence"]["issuer"] == "CN=agentops test CA"
    assert probe(result, "expired")["tls"]["code"] == "CERT_HAS_EXPIRED"
    assert ids(result, "expired") == ["endpoints.tls_expired"]
    fix_commands_run(result)


def test_an_expired_certificate_from_an_unknown_ca_is_both(servers, pki):
    cert, key = pki.leaf("expired-unknown", start=-30, end=-1)
    _proc, port = servers.python("status:200", "--cert", cert, "--key", key)
    result = diagnose([{"url": "https://127.0.0.1:%d/" % port, "name": "expired"}])
    assert ids(result, "expired") == ["endpoints.tls_expired", "endpoints.tls_untrusted"]
    assert found(result, "endpoints.tls_untrusted")["evidence"]["code"] == "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
    fix_commands_run(result)


def test_a_certificate_that_expires_in_two_days_is_graded_high(servers, pki, trust):
    cert, key = pki.leaf("expiring", end=2)
    _proc, port = servers.python("status:200", "--cert", cert, "--key", key)
    result = diagnose([{"url": "https://localhost:%d/" % port, "name": "expiring"}])
    finding = found(result, "endpoints.tls_expiring", "expiring")
    assert finding["severity"] == "high" and finding["evidence"]["threshold"] == 3
    assert probe(result, "expiring")["tls"]["verified"] is True
    assert ids(result, "expiring") == ["endpoints.tls_expiring"]
    fix_commands_run(result)


def test_a_certificate_for_another_name_is_a_hostname_finding(servers, pki, trust):
    cert, key = pki.leaf("other", names=("DNS:other.example",))
    _proc, port = servers.python("status:200", "--cert", cert, "--key", key)
    result = diagnose([{"url": "https://127.0.0.1:%d/" % port, "name": "other"}])
    finding = found(result, "endpoints.tls_hostname", "other")
    assert finding["evidence"]["names"] == "other.example" and finding["evidence"]["code"] == "ERR_TLS_CERT_ALTNAME_INVALID"
    tls = probe(result, "other")["tls"]
    assert tls["verified"] is True and tls["hostname_ok"] is False
    assert ids(result, "other") == ["endpoints.tls_hostname"]
    fix_commands_run(result)


def test_plain_http_behind_an_https_url_fails_the_handshake(servers):
    script = ("require('http').createServer((q, s) => s.end('ok'))"
              ".listen(0, '127.0.0.1', function () { console.log(this.address().port); });")
    _proc, port = servers.start([NODE, "-e", script])
    result = diagnose([{"url": "https://127.0.0.1:%d/" % port, "name": "plain"}])
    finding = found(result, "endpoints.tls_handshake", "plain")
    assert "wrong version number" in finding["evidence"]["error"]
    fix_commands_run(result)


def test_a_trusted_valid_certificate_gives_no_finding(servers, pki, trust):
    cert, key = pki.leaf("good")
    _proc, port = servers.python("status:204", "--cert", cert, "--key", key)
    result = diagnose([{"url": "https://localhost:%d/" % port, "name": "good"}])
    assert ids(result, "good") == []
    tls = probe(result, "good")["tls"]
    assert tls["verified"] is True and tls["hostname_ok"] is True and 29 < tls["days_left"] <= 30


# ------------------------------------------------------------------ WebSocket
def test_a_websocket_that_pongs_passes_and_one_that_never_pongs_is_a_finding(servers, pki):
    _p1, pong = servers.python("ws-pong")
    _p2, silent = servers.python("ws-nopong")
    _p3, refuse = servers.python("ws-refuse")
    result = diagnose([{"url": "ws://127.0.0.1:%d/socket" % pong, "name": "pongs"},
                       {"url": "ws://127.0.0.1:%d/socket" % silent, "name": "silent"},
                       {"url": "ws://127.0.0.1:%d/socket" % refuse, "name": "refuses"}], probe_timeout=1.5)
    assert result["elapsed"] < 1.5 + SLACK + 1.0
    assert ids(result, "pongs") == []
    ws = probe(result, "pongs")["ws"]
    assert ws["upgraded"] is True and ws["pong_ms"] is not None and ws["pong_ms"] < 1500
    finding = found(result, "endpoints.ws_no_pong", "silent")
    assert finding["evidence"]["timeout_s"] == 1.5 and finding["evidence"]["closed_note"] == ""
    assert probe(result, "silent")["ws"]["upgraded"] is True and probe(result, "silent")["ws"]["pong_ms"] is None
    refused = found(result, "endpoints.ws_upgrade_refused", "refuses")
    assert refused["evidence"]["status"] == 400 and "400 Bad Request" in refused["evidence"]["error"]
    assert refused["evidence"]["http_url"] == "http://127.0.0.1:%d/socket" % refuse
    fix_commands_run(result)


def test_a_websocket_over_tls_that_pongs(servers, pki, trust):
    cert, key = pki.leaf("wss")
    _proc, port = servers.python("ws-pong", "--cert", cert, "--key", key)
    result = diagnose(["wss://localhost:%d/" % port])
    assert result["findings"] == []
    assert probe(result, "wss://localhost:%d/" % port)["ws"]["pong_ms"] is not None


# ------------------------------------------------------------------ the module, as Ansible runs it
def test_the_diagnostics_module_runs_the_family_and_refuses_credentials_without_echoing_them(servers):
    _proc, port = servers.python("status:503")
    rc, out = run_module("diagnostics", {"checks": ["endpoints"], "redaction_key": "a-run-key-4f9c", "families": {"endpoints": {
        "endpoints": ["http://127.0.0.1:%d/health" % port], "probe_timeout": 2}}})
    assert rc == 0, out
    record = out["families"]["endpoints"]
    assert record["status"] == "ok"
    assert [f["id"] for f in record["findings"]] == ["endpoints.http_status"]
    assert run_fix_commands({"hosts": {"localhost": record}}) == []

    secret = "hunter2-Sup3r-secret"
    rc, out = run_module("diagnostics", {"checks": ["endpoints"], "families": {"endpoints": {
        "endpoints": ["https://admin:%s@api.example.com/v1" % secret, "https://api.example.com/v1?access_token=%s" % secret]}}})
    # The family's result never holds it (the module's echo of its own arguments, "invocation", is the module's
    # business: families is not no_log).
    assert secret not in str(out["families"])
    record = out["families"]["endpoints"]
    assert record["status"] == "failed"
    assert record["error"] == ("endpoints entry 1 (https://[REDACTED]@api.example.com/v1) carries credentials (user information "
                               "or a secret in the URL); list it without them.")
