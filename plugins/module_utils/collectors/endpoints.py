# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The endpoints family: the URLs in ``endpoints`` probed from this host (DNS, TCP, TLS, HTTP, WebSocket), and the
listening TCP sockets with the process that owns each one.

It always runs: listening sockets are cheap to read and answer "ECONNREFUSED host:port - does anything listen there
now, and which process?" (``net_sockets.listener_for``, which the controller can call on these facts).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import threading

from ansible_collections.agentops.runbooks.plugins.module_utils.collectors import check_ranges
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.module_utils import net_probe, net_sockets, procfs
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

ENDPOINTS_MAX = 50
HOST_RESOLV_CONF = "/etc/resolv.conf"


def _connect_text(host, port):
    return "[%s]:%s" % (host, port) if ":" in host else "%s:%s" % (host, port)


def _http_url(url):
    """ws://... as http://... (and wss as https), for tools that do not speak WebSocket URLs."""
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.lower().startswith(ws):
            return http + url[len(ws):]
    return url


class EndpointsCollector(object):
    def __init__(self, proc, targets, timeout, thresholds=None, resolv_conf=HOST_RESOLV_CONF):
        self.proc = proc
        self.targets = targets
        self.timeout = timeout
        self.thresholds = thresholds or {}
        self.resolv_conf = resolv_conf
        self.findings = []
        self.incomplete = []
        self.local = set()
        self.listeners = []

    # ------------------------------------------------------------ helpers
    def _incomplete(self, what, error):
        self.incomplete.append({"check": what, "error": error})
        self.findings.append(fm.make("endpoints.check_incomplete", "unknown", {"what": what, "error": error}, subject=what))

    def _add(self, rule_id, severity, evidence, subject):
        self.findings.append(fm.make(rule_id, severity, evidence, subject=subject))

    def _graded(self, rule_id, value, evidence, subject):
        found = fm.graded(rule_id, value, evidence, self.thresholds, subject=subject)
        if found:
            self.findings.append(found)

    # ------------------------------------------------------------ run
    def run(self):
        scan = {}
        thread = threading.Thread(target=self._scan_listeners, args=(scan,), name="agentops-listeners")
        thread.daemon = True
        thread.start()
        host_resolv = self._resolv(self.resolv_conf, None)
        resolv = {}
        for index, target in enumerate(self.targets):
            if target["pid"] is not None:
                resolv[index] = self._resolv(self.proc.path(target["pid"], "root", "etc", "resolv.conf"), target["pid"])
        results = net_probe.probe_all(self.targets, self.timeout, resolv) if self.targets else []
        for index, (target, result) in enumerate(zip(self.targets, results)):
            if target["pid"] is not None:
                self.ask_nameservers(target["pid"], result, resolv.get(index), host_resolv)
        thread.join()
        facts = {"listeners": self.listeners[:net_sockets.LISTENERS_MAX], "listener_count": len(self.listeners),
                 "local_addresses": sorted(self.local), "resolv_conf": host_resolv, "listener_scan": scan.get("counts"),
                 "probe_timeout": self.timeout, "endpoints": results}
        for index, (target, result) in enumerate(zip(self.targets, results)):
            self.judge(target, result, resolv.get(index) or host_resolv)
        return {"facts": facts, "findings": fm.ordered(self.findings), "incomplete": self.incomplete}

    def _scan_listeners(self, box):
        counts = {}
        try:
            self.listeners = net_sockets.listeners(self.proc, counts)
        except OSError as exc:
            box["error"] = fm.describe(exc)
            self._incomplete("listening sockets (net/tcp, net/tcp6)", box["error"])
        self.local = set(net_sockets.local_addresses(self.proc))
        box["counts"] = counts
        orphaned = [entry for entry in self.listeners if entry["pid"] is None]
        if counts.get("unreadable") and orphaned:
            self._incomplete("listening socket owners", "the descriptors of %d process(es) could not be read as %s, so %d listening "
                             "socket(s) have no known owner" % (counts["unreadable"], procfs.username(os.geteuid()), len(orphaned)))

    def _resolv(self, path, pid):
        """resolv.conf facts {path, nameservers, search, ndots}; None when the file does not exist."""
        try:
            with open(path, "rb") as handle:
                parsed = net_sockets.parse_resolv_conf(handle.read(65536).decode("utf-8", "replace"))
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or pid is not None:
                self._incomplete("resolv.conf of %s" % ("pid %d" % pid if pid else "this host"), fm.describe(exc))
            return None
        return dict(parsed, path=path)

    def ask_nameservers(self, pid, result, resolv, host_resolv):
        """The probe resolves with this host's resolver; a process with nameservers of its own (a container's
        resolv.conf) has them asked directly, when it shares this network namespace (elsewhere its nameserver
        addresses may mean other hosts): ``result["nameservers_asked"]``."""
        if not resolv or not resolv.get("nameservers") or net_probe._is_ip(result["host"]):
            return
        if resolv["nameservers"] == (host_resolv or {}).get("nameservers"):
            return  # the same nameservers the host lookup used
        try:
            same = os.stat(self.proc.path(pid, "ns", "net")).st_ino == os.stat(self.proc.path("self", "ns", "net")).st_ino
        except OSError:
            same = False
        if not same:
            result["nameservers_asked"] = "not asked: pid %d is in another network namespace (or it cannot be read)" % pid
            return
        result["nameservers_asked"] = net_probe.ask_nameservers(result["host"], resolv["nameservers"], min(self.timeout, 3.0))

    # ------------------------------------------------------------ findings
    def judge(self, target, result, resolv):
        name = result["name"]
        base = {"name": name, "url": result["url"], "host": result["host"], "port": result["port"],
                "timeout_s": self.timeout}
        dns = result.get("dns") or {}
        asked = result.get("nameservers_asked")
        dead = isinstance(asked, list) and asked and not any(a["state"] == "answered" for a in asked)
        if dns.get("error") or dead:
            code, error, ms = dns.get("code") or "EAI_FAIL", dns.get("error"), dns.get("ms", 0)
            how = "this host's resolver (getaddrinfo)"
            if dead:  # the process's own nameservers are down: its lookups fail whatever this host's resolver says
                code, ms = "EAI_AGAIN", sum(a["ms"] for a in asked)
                error = "no nameserver answers - %s" % "; ".join(_nameserver_state(a, self.timeout) for a in asked)
                how = "the nameservers of pid %d's resolv.conf, asked directly" % target["pid"]
            self._add("endpoints.dns_failure", "high", dict(
                base, dns_host=result["host"], code=code, error=error, ms=ms, resolved_with=how,
                nameservers=", ".join((resolv or {}).get("nameservers") or []) or "none (the resolver tries 127.0.0.1)",
                resolv_conf=(resolv or {}).get("path") or self.resolv_conf), name)
        self.ndots(base, result, resolv)
        if result.get("connect_error"):
            self.unreachable(base, result)
        tls = result.get("tls")
        if tls:
            self.tls(base, result, tls)
        http = result.get("http")
        if http:
            self.http(base, target, result, http)
        ws = result.get("ws")
        if ws:
            self.websocket(base, result, ws)
        if result.get("error"):
            self._incomplete("the probe of %s" % name, result["error"])

    def ndots(self, base, result, resolv):
        host = result["host"]
        if not resolv or net_probe._is_ip(host) or host.endswith("."):
            return
        dots, ndots, search = host.count("."), resolv.get("ndots", 1), resolv.get("search") or []
        if ndots >= 2 and dots < ndots and search:
            self._add("endpoints.dns_ndots", "low", dict(
                base, dns_host=host, dots=dots, ndots=ndots, search=" ".join(search), search_count=len(search),
                resolv_conf=resolv["path"]), base["name"])

    def is_local(self, address):
        ip = net_sockets._ip(address)
        return ip is not None and (ip.is_loopback or ip.is_unspecified or str(ip) in self.local)

    def unreachable(self, base, result):
        address, port = result.get("address") or result["host"], result["port"]
        evidence = dict(base, address=address, kind=result.get("connect_kind") or "error", error=result["connect_error"],
                        ms=result.get("connect_ms") or 0, dport_filter="( dport = :%s )" % port, local=False)
        if result.get("address") and self.is_local(address):
            evidence["local"] = True
            evidence["port_filter"] = "( sport = :%s )" % port
            found = net_sockets.listener_for(self.listeners, address, port, self.local) or []
            same_port = [entry for entry in self.listeners if entry["port"] == port and entry not in found]
            if found:
                owner = found[0]
                evidence.update(listener_pid=owner["pid"], listener_program=owner["program"])
                evidence["listening"] = ("Yet %s listens on %s now: it may have just (re)started, or a firewall rejects "
                                         "the connection." % (_who(owner), _connect_text(owner["address"], port)))
            elif same_port:
                owner = same_port[0]
                evidence.update(listener_pid=owner["pid"], listener_program=owner["program"])
                evidence["listening"] = ("Port %s is listened on only at %s, by %s: not at %s." % (
                    port, ", ".join(sorted(set(e["address"] for e in same_port))), _who(owner), address))
            else:
                evidence["listening"] = "Nothing on this host listens on port %s now." % port
        else:
            evidence["listening"] = "%s is not an address of this host: check the service where it runs." % address
        self._add("endpoints.unreachable", "high", evidence, base["name"])

    def tls(self, base, result, tls):
        host, port = result["host"], result["port"]
        evidence = dict(base, tls_host=host, tls_connect=_connect_text(host, port), subject=tls.get("subject") or "(unknown)",
                        issuer=tls.get("issuer") or "(unknown)", not_after=tls.get("not_after") or "(unknown)")
        if not tls.get("handshake", True):
            self._add("endpoints.tls_handshake", "high", dict(evidence, error=tls.get("error") or "no answer"), base["name"])
            return
        days = tls.get("days_left")
        if tls.get("expired"):
            self._add("endpoints.tls_expired", "critical", dict(evidence, days_left=days, days_ago=abs(days or 0)), base["name"])
        elif days is not None:
            self._graded("endpoints.tls_expiring", days, dict(evidence, days_left=days), base["name"])
        if tls.get("verified") is False and tls.get("code") != net_probe.VERIFY_CODES[net_probe.EXPIRED]:
            self._add("endpoints.tls_untrusted", "high", dict(evidence, code=tls.get("code") or "CERT_VERIFY_FAILED",
                                                              error=tls.get("error") or "verification failed"), base["name"])
        if tls.get("hostname_ok") is False:
            self._add("endpoints.tls_hostname", "high", dict(evidence, names=tls.get("names") or "(none)",
                                                             code=net_probe.VERIFY_CODES[net_probe.HOSTNAME_MISMATCH]), base["name"])

    def http(self, base, target, result, http):
        if http.get("timeout"):
            self._add("endpoints.http_timeout", "high", dict(base, connect_ms=result.get("connect_ms") or 0), base["name"])
            return
        if http.get("error"):
            self._add("endpoints.http_failed", "high", dict(base, error=http["error"]), base["name"])
            return
        status = http.get("status")
        expected = target.get("expect_status")
        evidence = dict(base, status=status, reason=http.get("reason") or "", ms=http.get("ms") or 0,
                        expected=expected if expected else "a status below 400")
        if expected and status != expected:
            self._add("endpoints.http_status", "high", evidence, base["name"])
        elif not expected and status >= 400:
            self._add("endpoints.http_status", "high" if status >= 500 else "medium", evidence, base["name"])
        if http.get("body_matched") is False:
            self._add("endpoints.http_body", "high", dict(base, status=status, body_match=target["body_match"].pattern), base["name"])
        self._graded("endpoints.http_slow", http.get("ms") or 0, dict(base, status=status, ms=http.get("ms") or 0), base["name"])

    def websocket(self, base, result, ws):
        if not ws.get("upgraded"):
            error = ws.get("error") or "no answer"
            if ws.get("timeout"):
                error = "no answer to the upgrade request within %s s" % self.timeout
            self._add("endpoints.ws_upgrade_refused", "high", dict(base, error=error, status=ws.get("status"),
                                                                   http_url=_http_url(result["url"])), base["name"])
            return
        if ws.get("pong_ms") is None:
            evidence = dict(base, dport_filter="( dport = :%s )" % result["port"], error=ws.get("error") or "",
                            closed_note="" if ws.get("timeout") or not ws.get("error") else " (%s)" % ws["error"])
            if result.get("address") and self.is_local(result["address"]):
                evidence["port_filter"] = "( sport = :%s )" % result["port"]
            self._add("endpoints.ws_no_pong", "high", evidence, base["name"])


def _nameserver_state(asked, timeout):
    state = asked["state"]
    if state == "refused":
        return "%s: refused, nothing listens on its port 53" % asked["nameserver"]
    if state == "timeout":
        return "%s: no answer within %s s" % (asked["nameserver"], min(timeout, 3.0))
    return "%s: %s" % (asked["nameserver"], asked.get("error") or state)


def _who(listener):
    if listener.get("pid"):
        return "pid %s (%s)" % (listener["pid"], listener.get("program") or "?")
    return "a process this user cannot see (socket owned by %s)" % (listener.get("user") or "another user")


class EndpointsFamily(object):
    """URLs probed from the host (DNS, TCP, TLS, HTTP, WebSocket) and the host's listening sockets with their owners."""

    name = "endpoints"
    title = "endpoints and sockets"
    enable = "add endpoints to agentops_checks (and list URLs to probe in agentops_endpoints)"
    redacts = True
    options = dict(
        endpoints=dict(type="list", elements="raw", default=[]),
        probe_timeout=dict(type="float", default=5.0),
        proc_root=dict(type="path", default="/proc"),
    )
    variables = {"endpoints": "endpoints", "probe_timeout": "probe_timeout"}
    secrets = {}
    enabled_by = None
    ranges = {"probe_timeout": [0.5, 60]}

    def collect(self, module, params):
        check_ranges(self, params, "seconds")
        entries = params["endpoints"] or []
        if len(entries) > ENDPOINTS_MAX:
            raise ValueError("endpoints lists %d entries; at most %d are probed in one run." % (len(entries), ENDPOINTS_MAX))
        targets = []
        for index, entry in enumerate(entries):
            target = net_probe.endpoint(entry, index + 1)
            target["index"] = index
            targets.append(target)
        if not os.path.isdir(os.path.join(params["proc_root"], "net")):
            raise ValueError("proc_root %s does not look like a proc filesystem (no net directory)." % params["proc_root"])
        redactor = Redactor(key=params.get("redaction_key"))
        collector = EndpointsCollector(procfs.ProcFS(params["proc_root"]), targets, params["probe_timeout"], params["thresholds"])
        return redactor.data(collector.run())
