"""The endpoints family on synthetic input: /proc/net/tcp parsing, socket owners, listener_for, resolv.conf,
the endpoints option (credentials refused, never echoed), certificates parsed from DER, and the rules' templates."""
import os
import socket
import string
import subprocess
import shutil

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import net_probe, net_sockets, procfs
from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.endpoints import EndpointsCollector, EndpointsFamily
from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES

# In the kernel's format (proc(5)): the first IPv4 line and both headers as recorded on this machine (Linux, x86_64),
# the other lines written to match: listeners on 0.0.0.0:2024, 127.0.0.1:5432, [::]:3000 and [::1]:8080, one connection.
NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1115 1 000000008e212c33 100 0 0 10 0
   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 4242 1 0000000000000000 100 0 0 10 0
   2: 0100007F:8312 0100007F:B657 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000002e28ab9
"""
NET_TCP6 = (
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt"
    "   uid  timeout inode\n"
    "   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000"
    "  1000        0 777 1 0000000000000000 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000"
    "  1000        0 778 1 0000000000000000 100 0 0 10 0\n")


def little_endian():
    return socket.htonl(1) != 1


pytestmark = pytest.mark.skipif(not little_endian(), reason="the recorded /proc/net/tcp lines come from a little-endian host")


def fake_net(fake_proc, owners=None, unreadable=()):
    fake_proc.write("net/tcp", NET_TCP)
    fake_proc.write("net/tcp6", NET_TCP6)
    fake_proc.write("net/fib_trie", "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.1.2.3\n        /32 host LOCAL\n"
                                    "     |-- 10.1.2.255\n        /32 link BROADCAST\n")
    fake_proc.write("net/if_inet6", "fd000000000000000000000000000002 04 40 00 82     eth0\n")
    for pid, (comm, inodes) in (owners or {}).items():
        fake_proc.process(pid, comm=comm, fds=0)
        fake_proc.write("%d/comm" % pid, comm + "\n")
        for number, inode in enumerate(inodes):
            os.symlink("socket:[%d]" % inode, os.path.join(fake_proc.root, str(pid), "fd", str(number + 3)))
    for pid in unreadable:
        fake_proc.process(pid, comm="secret", fds=0)
        shutil.rmtree(os.path.join(fake_proc.root, str(pid), "fd"))
        fake_proc.write("%d/fd" % pid, "")  # not a directory: reading it fails as a permission would
    return fake_proc


# ------------------------------------------------------------------ sockets
def test_listening_sockets_are_parsed_from_recorded_net_tcp_lines():
    assert net_sockets.parse_net_tcp(NET_TCP) == [
        {"address": "0.0.0.0", "port": 2024, "inode": 1115, "uid": 0},
        {"address": "127.0.0.1", "port": 5432, "inode": 4242, "uid": 105}]
    assert net_sockets.parse_net_tcp(NET_TCP6, ipv6=True) == [
        {"address": "::", "port": 3000, "inode": 777, "uid": 1000},
        {"address": "::1", "port": 8080, "inode": 778, "uid": 1000}]


def test_each_listener_gets_the_lowest_pid_holding_its_inode(fake_proc):
    fake_net(fake_proc, {300: ("postgres", [4242]), 400: ("node", [777, 1115]), 401: ("node", [777])})
    counts = {}
    found = net_sockets.listeners(procfs.ProcFS(fake_proc.root), counts)
    by_port = dict((entry["port"], entry) for entry in found)
    assert by_port[5432] == {"address": "127.0.0.1", "port": 5432, "pid": 300, "pids": [300], "program": "postgres",
                             "user": procfs.username(105)}
    assert by_port[3000]["pid"] == 400 and by_port[2024]["program"] == "node"
    assert by_port[8080]["pid"] is None and by_port[8080]["program"] is None
    assert counts == {"processes": 3}


def test_unreadable_descriptors_make_the_owner_check_incomplete_not_healthy(fake_proc):
    fake_net(fake_proc, {300: ("postgres", [4242])}, unreadable=(500,))
    result = EndpointsCollector(procfs.ProcFS(fake_proc.root), [], 1.0, resolv_conf=str(fake_proc.root) + "/none").run()
    assert [i["check"] for i in result["incomplete"]] == ["listening socket owners"]
    assert "the descriptors of 1 process(es) could not be read" in result["incomplete"][0]["error"]
    assert [f["id"] for f in result["findings"]] == ["endpoints.check_incomplete"]
    assert result["facts"]["listener_count"] == 4 and "10.1.2.3" in result["facts"]["local_addresses"]
    assert "fd00::2" in result["facts"]["local_addresses"] and "10.1.2.255" not in result["facts"]["local_addresses"]


LISTENERS = [
    {"address": "127.0.0.1", "port": 5432, "pid": 300, "program": "postgres"},
    {"address": "0.0.0.0", "port": 2024, "pid": 400, "program": "node"},
    {"address": "::", "port": 3000, "pid": 401, "program": "node"},
    {"address": "10.1.2.3", "port": 6379, "pid": 500, "program": "redis-server"},
]


@pytest.mark.parametrize("host, port, local, pids", [
    ("127.0.0.1", 5432, None, [300]),           # exactly there
    ("localhost", "5432", None, [300]),          # the name, a port from a log line as text
    ("127.0.0.1", 5433, None, []),               # nothing listens there now
    ("::1", 5432, None, []),                     # postgres only on IPv4 loopback
    ("127.0.0.1", 2024, None, [400]),            # 0.0.0.0 takes loopback
    ("127.0.0.1", 3000, None, [401]),            # :: takes IPv4 too (dual stack)
    ("::ffff:127.0.0.1", 2024, None, [400]),     # IPv4-mapped
    ("10.1.2.3", 2024, ["10.1.2.3"], [400]),     # a local address, wildcard listener
    ("10.1.2.3", 6379, None, [500]),             # listened on exactly: local for sure
    ("10.9.9.9", 2024, ["10.1.2.3"], None),      # another host: cannot tell from here
    ("db.internal", 5432, None, None),           # a name: resolve it first
    ("[::1]", 3000, None, [401]),
])
def test_listener_for_answers_does_anything_listen_there_and_which_process(host, port, local, pids):
    answer = net_sockets.listener_for(LISTENERS, host, port, local)
    assert (None if answer is None else [entry["pid"] for entry in answer]) == pids


def test_resolv_conf_gives_nameservers_search_and_ndots():
    text = ("# kubelet\nnameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
            "options ndots:5 timeout:2\n")
    assert net_sockets.parse_resolv_conf(text) == {
        "nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"], "ndots": 5}
    assert net_sockets.parse_resolv_conf("domain example.com\n") == {"nameservers": [], "search": ["example.com"], "ndots": 1}


# ------------------------------------------------------------------ the option
SECRET = "s3cr3t-Passw0rd-value"


@pytest.mark.parametrize("url", [
    "https://admin:%s@api.example.com/v1" % SECRET,
    "https://%s@api.example.com/v1" % SECRET,
    "https://api.example.com/v1?token=%s" % SECRET,
    "wss://api.example.com/socket?api_key=%s&room=1" % SECRET,
    "postgres://app:%s@db:5432/app" % SECRET,
    "https://hooks.slack.com/services/T0000000/B0000000/%s" % ("x" * 24),
])
def test_a_url_with_credentials_is_refused_in_one_sentence_that_never_holds_the_secret(url):
    with pytest.raises(ValueError) as info:
        net_probe.endpoint(url, 3)
    message = str(info.value)
    assert message.startswith("endpoints entry 3 (") and "carries credentials" in message
    assert SECRET not in message and "x" * 24 not in message


@pytest.mark.parametrize("entry, sentence", [
    ("ftp://example.com/", "endpoints entry 1 (ftp://example.com/) has scheme 'ftp'"),
    ("tcp://db.internal", "endpoints entry 1 (tcp://db.internal) needs a port"),
    ("https://example.com:99999/", "endpoints entry 1 (https://example.com:99999/) is not a valid URL"),
    ({"url": "http://x", "expect_status": 700}, "endpoints entry 1: expect_status must be an HTTP status"),
    ({"url": "tcp://x:1", "body_match": "ok"}, "endpoints entry 1: body_match must be a regular expression for an http(s) URL"),
    ({"url": "http://x", "body_match": "("}, "endpoints entry 1: body_match '(' is not a valid regular expression"),
    ({"url": "http://x", "pid": -4}, "endpoints entry 1: pid must be a process id"),
    ({"url": "http://x", "header": "y"}, "endpoints entry 1 has unknown key(s) header"),
    (42, "endpoints entry 1 must be a URL string or a dict with a url"),
])
def test_an_entry_that_cannot_be_probed_is_refused_with_one_sentence(entry, sentence):
    with pytest.raises(ValueError) as info:
        net_probe.endpoint(entry, 1)
    assert str(info.value).startswith(sentence)


def test_entries_get_default_ports_and_paths():
    assert [(t["scheme"], t["host"], t["port"], t["path"]) for t in (
        net_probe.endpoint("https://API.example.com", 1), net_probe.endpoint("ws://[::1]:8080/socket?room=1", 2),
        net_probe.endpoint("postgresql://db.internal/app", 3), net_probe.endpoint({"url": "http://h/health", "pid": "12"}, 4))] == [
        ("https", "api.example.com", 443, "/"), ("ws", "::1", 8080, "/socket?room=1"),
        ("postgresql", "db.internal", 5432, "/app"), ("http", "h", 80, "/health")]


def test_the_family_refuses_bad_options_through_the_registry():
    results = collectors.run(None, ["endpoints"], {"endpoints": {"probe_timeout": 120}}, {"thresholds": {}}, timeout=10)
    assert results["endpoints"]["error"] == "probe_timeout must be between 0.5 and 60 seconds, got 120.0."
    results = collectors.run(None, ["endpoints"], {"endpoints": {"endpoints": ["http://x"] * 51}}, {"thresholds": {}}, timeout=10)
    assert results["endpoints"]["error"] == "endpoints lists 51 entries; at most 50 are probed in one run."


def test_the_family_declares_its_registry_attributes():
    family = collectors.BY_NAME["endpoints"]
    assert isinstance(family, EndpointsFamily) and family.redacts is True and family.enabled_by is None
    assert family.variables == {"endpoints": "endpoints", "probe_timeout": "probe_timeout"} and family.secrets == {}
    assert family.ranges == {"probe_timeout": [0.5, 60]} and set(family.variables) <= set(family.options)
    assert family.options["endpoints"]["default"] == []


# ------------------------------------------------------------------ certificates
@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("the openssl CLI makes the test certificate")
    directory = str(tmp_path_factory.mktemp("cert"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", "k.pem", "-out", "c.pem", "-days", "10", "-subj", "/CN=api.example.com/O=Example",
                    "-addext", "subjectAltName=DNS:api.example.com,DNS:*.svc.example.com,IP:10.0.0.7"],
                   cwd=directory, check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", "c.pem", "-outform", "DER"], cwd=directory, check=True,
                         capture_output=True).stdout
    dates = subprocess.run(["openssl", "x509", "-in", "c.pem", "-noout", "-enddate"], cwd=directory, check=True,
                           capture_output=True, text=True).stdout
    return der, dates.strip().split("=", 1)[1]


def test_a_certificate_is_read_from_its_der_bytes(certificate):
    import ssl
    der, end = certificate
    cert = net_probe.parse_certificate(der)
    assert cert["not_after"] == ssl.cert_time_to_seconds(end)
    assert cert["subject"] == "CN=api.example.com, O=Example" and cert["issuer"] == cert["subject"]
    assert cert["dns_names"] == ["api.example.com", "*.svc.example.com"] and cert["ip_addresses"] == ["10.0.0.7"]


@pytest.mark.parametrize("host, ok", [
    ("api.example.com", True), ("API.example.com.", True), ("db.svc.example.com", True), ("a.b.svc.example.com", False),
    ("svc.example.com", False), ("10.0.0.7", True), ("10.0.0.8", False), ("example.com", False),
])
def test_host_names_match_as_clients_match_them(certificate, host, ok):
    assert net_probe.hostname_matches(net_probe.parse_certificate(certificate[0]), host) is ok


def test_garbage_is_not_a_certificate():
    with pytest.raises((ValueError, IndexError)):
        net_probe.parse_certificate(b"\x30\x82\xff\xff\x00")


# ------------------------------------------------------------------ findings from results
def result(**parts):
    base = {"name": "api", "url": "https://api.example.com/health", "scheme": "https", "host": "api.example.com", "port": 443,
            "dns": {"addresses": ["203.0.113.5"], "ms": 3, "error": None, "code": None}, "address": "203.0.113.5",
            "connect_ms": 12, "connect_error": None, "tls": None, "http": None, "ws": None, "error": None}
    base.update(parts)
    return base


TLS_OK = {"verified": True, "hostname_ok": True, "protocol": "TLSv1.3", "days_left": 80.0, "expired": False,
          "not_after": "2027-01-01T00:00:00Z", "subject": "CN=api", "issuer": "CN=CA", "names": "api.example.com", "handshake": True}

CASES = [
    ("dns ENOTFOUND", result(dns={"addresses": [], "ms": 2, "error": "Name or service not known", "code": "ENOTFOUND"}),
     {}, ["endpoints.dns_failure"]),
    ("refused, remote", result(connect_error="Connection refused", connect_kind="refused"), {}, ["endpoints.unreachable"]),
    ("expiring in 10 days", result(tls=dict(TLS_OK, days_left=10.0)), {}, ["endpoints.tls_expiring"]),
    ("hostname", result(tls=dict(TLS_OK, hostname_ok=False, names="other.example")), {}, ["endpoints.tls_hostname"]),
    ("expired + untrusted", result(tls=dict(TLS_OK, verified=False, expired=True, days_left=-3.2, code="UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
                                            error="unable to get local issuer certificate")), {},
     ["endpoints.tls_expired", "endpoints.tls_untrusted"]),
    ("handshake", result(tls={"handshake": False, "error": "wrong version number"}), {}, ["endpoints.tls_handshake"]),
    ("http 503", result(tls=TLS_OK, http={"status": 503, "reason": "Service Unavailable", "ms": 40, "error": None, "timeout": False}),
     {}, ["endpoints.http_status"]),
    ("http 404 is medium", result(http={"status": 404, "reason": "Not Found", "ms": 4, "error": None, "timeout": False}), {},
     ["endpoints.http_status"]),
    ("401 expected", result(http={"status": 401, "reason": "Unauthorized", "ms": 4, "error": None, "timeout": False}),
     {"expect_status": 401}, []),
    ("slow", result(http={"status": 200, "reason": "OK", "ms": 3500, "error": None, "timeout": False}), {}, ["endpoints.http_slow"]),
    ("reset", result(http={"status": None, "error": "Connection reset by peer", "timeout": False}), {}, ["endpoints.http_failed"]),
    ("ws closed instead of pong", result(url="wss://api.example.com/ws", ws={"upgraded": True, "pong_ms": None, "timeout": False,
                                                                             "error": "the server closed the connection (code 1011)"}),
     {}, ["endpoints.ws_no_pong"]),
    ("ws refused", result(url="wss://api.example.com/ws", ws={"upgraded": False, "status": 426, "error": "answered 426 Upgrade Required"}),
     {}, ["endpoints.ws_upgrade_refused"]),
    ("a probe's own error", result(error="RuntimeError: boom"), {}, ["endpoints.check_incomplete"]),
]


@pytest.mark.parametrize("label, probe, target, expected", CASES, ids=[c[0] for c in CASES])
def test_probe_results_become_findings_whose_templates_are_all_filled(label, probe, target, expected):
    collector = EndpointsCollector(None, [], 5.0)
    target = dict({"expect_status": None, "body_match": None}, **target)
    collector.judge(target, probe, {"path": "/etc/resolv.conf", "nameservers": ["10.0.0.2"], "search": [], "ndots": 1})
    assert sorted(f["id"] for f in collector.findings) == expected
    for finding in collector.findings:
        rule = RULES[finding["id"]]
        for field in ("symptom", "diagnosis"):
            names = fm.template_fields(rule[field])
            assert set(names) <= set(finding["evidence"]), (finding["id"], field, set(names) - set(finding["evidence"]))
        assert finding["fix"]["command"] and "{" not in finding["fix"]["command"].replace("${", "")


def test_severities_follow_the_status_and_the_days_left():
    collector = EndpointsCollector(None, [], 5.0)
    target = {"expect_status": None, "body_match": None}
    collector.judge(target, result(http={"status": 404, "reason": "Not Found", "ms": 4, "error": None, "timeout": False}), None)
    collector.judge(target, result(name="b", tls=dict(TLS_OK, days_left=2.5)), None)
    collector.judge(target, result(name="c", tls=dict(TLS_OK, days_left=-1.0, expired=True, verified=False, code="CERT_HAS_EXPIRED")), None)
    assert sorted((f["subject"], f["id"], f["severity"]) for f in collector.findings) == [
        ("api", "endpoints.http_status", "medium"), ("b", "endpoints.tls_expiring", "high"), ("c", "endpoints.tls_expired", "critical")]


def test_a_pid_with_ndots_5_and_search_domains_is_told_it_costs_queries(fake_proc):
    fake_net(fake_proc)
    fake_proc.process(321, comm="node")
    fake_proc.write("321/root/etc/resolv.conf", "nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5\n")
    targets = [net_probe.endpoint({"url": "tcp://localhost:1", "pid": 321, "name": "from the pod"}, 1)]
    result = EndpointsCollector(procfs.ProcFS(fake_proc.root), targets, 2.0).run()
    finding = [f for f in result["findings"] if f["id"] == "endpoints.dns_ndots"][0]
    assert finding["evidence"]["ndots"] == 5 and finding["evidence"]["search_count"] == 2
    assert finding["evidence"]["resolv_conf"] == os.path.join(fake_proc.root, "321", "root", "etc", "resolv.conf")
    assert result["facts"]["endpoints"][0]["resolv_conf"]["search"] == ["ns.svc.cluster.local", "svc.cluster.local"]


def test_every_rule_of_the_family_is_in_the_catalog_with_its_category():
    ours = sorted(r for r in RULES if r.startswith("endpoints."))
    assert len(ours) == 16
    for rule_id in ours:
        rule = RULES[rule_id]
        assert rule["category"] == "endpoints" and rule["fix"]["summary"] and "thresholds" in rule
        for name in fm.template_fields(rule["symptom"]) + fm.template_fields(rule["diagnosis"]):
            assert set(name) <= set(string.ascii_lowercase + "_"), (rule_id, name)


def test_a_resolver_that_never_answers_cannot_hold_the_probe_past_its_deadline(monkeypatch):
    import time
    real = socket.getaddrinfo

    def stuck(host, *args, **kwargs):
        if host == "stuck.example":
            time.sleep(5)
        return real(host, *args, **kwargs)
    monkeypatch.setattr(net_probe.socket, "getaddrinfo", stuck)
    began = time.monotonic()
    results = net_probe.probe_all([net_probe.endpoint("https://stuck.example/", 1), net_probe.endpoint("tcp://127.0.0.1:1", 2)], 0.5)
    assert time.monotonic() - began < 0.5 + net_probe.SLACK + 0.3
    assert results[0]["dns"]["code"] == "ETIMEOUT" and results[0]["dns"]["error"] == "no answer within 0.5 s"
    assert results[1]["connect_kind"] == "refused"
    collector = EndpointsCollector(None, [], 0.5)
    collector.judge({"expect_status": None, "body_match": None}, results[0], None)
    assert [f["id"] for f in collector.findings] == ["endpoints.dns_failure"]
    assert "getaddrinfo ETIMEOUT (no answer within 0.5 s)" in collector.findings[0]["symptom"]
