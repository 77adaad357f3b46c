# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the endpoints family: one part of the rules catalog (merged into ``rules.RULES``, same format)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("endpoints", "Endpoints and sockets")

# What the certificate a server presents looks like, from this host (read-only; exits 0 whatever it finds).
_CERT = ("openssl s_client -connect {tls_connect} -servername {tls_host} </dev/null 2>/dev/null | openssl x509 -noout %s"
         " || echo no certificate could be read from {tls_connect}")
_CERT_443 = ("openssl s_client -connect {tls_host}:443 -servername {tls_host} </dev/null 2>/dev/null | openssl x509 -noout %s"
             " || echo no certificate could be read from {tls_host}:443")
_CURL = "curl -sS -i --max-time 5 {url} 2>&1 | head -n 20"

RULES = {
    "endpoints.unreachable": {
        "category": "endpoints",
        "title": "An endpoint refuses or drops connections",
        "symptom": "{name}: connecting to {address} port {port} failed ({kind}: {error}) after {ms} ms. {listening}",
        "diagnosis": (
            "refused: nothing accepts on that address and port - the service is down or restarting, listens on another "
            "port or only on another address (127.0.0.1 versus the LAN address), or a firewall rejects; clients log "
            "'connect ECONNREFUSED host:port'. timeout: packets are dropped (firewall, security group, a host that is "
            "down) or the listen backlog is full; clients log ETIMEDOUT (Node 20+: from internalConnectMultiple). "
            "unreachable: no route to that address."
        ),
        "fix": {
            "summary": ("Where the service should run, check that it is up and which address and port it listens on (the "
                        "listeners in this host's facts say which process holds each port); from here, check the route."),
            "command": ["ss -ltnp {port_filter}", "ip route get {address} 2>&1; ss -tan {dport_filter}", "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.dns_failure": {
        "category": "endpoints",
        "title": "An endpoint's name does not resolve",
        "symptom": "{name}: {dns_host} does not resolve: getaddrinfo {code} ({error}) after {ms} ms; nameservers {nameservers} ({resolv_conf}).",
        "diagnosis": (
            "ENOTFOUND: the resolver answered that the name does not exist (a typo, a deleted record, a search domain "
            "that does not apply here). EAI_AGAIN: the resolver failed or timed out - a nameserver that is down or "
            "unreachable, or overloaded by lookups (in Kubernetes, ndots:5 turns one lookup of an external name into "
            "up to ten queries). ETIMEOUT: no answer at all within the probe's time. Clients log 'getaddrinfo "
            "ENOTFOUND host' or 'getaddrinfo EAI_AGAIN host'."
        ),
        "fix": {
            "summary": "Resolve the name from this host with the same resolver configuration and check the nameservers it names.",
            "command": ["cat {resolv_conf}; getent ahosts {dns_host} || echo {dns_host} does not resolve here",
                        "cat /etc/resolv.conf; getent ahosts {dns_host} || echo {dns_host} does not resolve here",
                        "cat /etc/resolv.conf"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.dns_ndots": {
        "category": "endpoints",
        "title": "Lookups of an endpoint's name try every search domain first",
        "symptom": ("{name}: {dns_host} has {dots} dot(s), fewer than ndots:{ndots} in {resolv_conf}, so each lookup first "
                    "tries its {search_count} search domain(s) ({search})."),
        "diagnosis": (
            "With options ndots:N, a name with fewer than N dots is looked up with each search domain appended before "
            "it is tried as it is: for an external name that is several failed queries (A and AAAA each) per "
            "connection. Kubernetes pods get ndots:5; the extra queries add latency and load the cluster DNS until "
            "lookups fail with EAI_AGAIN."
        ),
        "fix": {
            "summary": ("Use the fully qualified name with a trailing dot (api.example.com.) in the client's configuration, "
                        "or lower ndots (Kubernetes: the pod's dnsConfig options ndots: 2)."),
            "command": ["grep -E '^(search|domain|options)' {resolv_conf} || cat {resolv_conf}", "cat /etc/resolv.conf"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.tls_expired": {
        "category": "endpoints",
        "title": "An endpoint's TLS certificate has expired",
        "symptom": "{name}: the certificate of {tls_connect} expired {days_ago} day(s) ago ({not_after}); subject {subject}, issuer {issuer}.",
        "diagnosis": (
            "Every verifying client refuses the connection: Node.js fails with CERT_HAS_EXPIRED ('certificate has "
            "expired'). Usually the renewal (certbot, cert-manager, the load balancer's certificate) failed, or it "
            "succeeded but the server was never reloaded and still serves the old certificate."
        ),
        "fix": {
            "summary": ("Renew the certificate and reload the server that presents it; compare the dates served with the "
                        "file on disk. Never set NODE_TLS_REJECT_UNAUTHORIZED=0 to work around it."),
            "command": [_CERT % "-dates -subject -issuer", _CERT_443 % "-dates -subject -issuer"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.tls_expiring": {
        "category": "endpoints",
        "title": "An endpoint's TLS certificate expires soon",
        "symptom": "{name}: the certificate of {tls_connect} expires in {days_left} day(s) ({not_after}); issuer {issuer}.",
        "diagnosis": (
            "Automatic renewal normally happens 30 days before expiry (certbot, cert-manager): a certificate this close "
            "to its end points at a renewal that keeps failing or a server that was not reloaded after renewal."
        ),
        "fix": {
            "summary": "Check the renewal job's log, renew now, and reload the server that presents the certificate.",
            "command": [_CERT % "-dates -subject -issuer", _CERT_443 % "-dates -subject -issuer"],
            "playbook": None,
        },
        "thresholds": {"low": 30, "medium": 14, "high": 3},
        "direction": "below",
    },
    "endpoints.tls_untrusted": {
        "category": "endpoints",
        "title": "An endpoint's certificate chain is not trusted",
        "symptom": ("{name}: the certificate chain of {tls_connect} does not verify against this host's trust store "
                    "({code}: {error}); subject {subject}, issuer {issuer}."),
        "diagnosis": (
            "DEPTH_ZERO_SELF_SIGNED_CERT: the server presents a self-signed certificate. "
            "UNABLE_TO_GET_ISSUER_CERT_LOCALLY or SELF_SIGNED_CERT_IN_CHAIN: a private CA this host does not trust. "
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE: the server omits its intermediate certificate (browsers often fetch it, "
            "Node.js never does). Node reads NODE_EXTRA_CA_CERTS only at start (and ignores it for setuid binaries)."
        ),
        "fix": {
            "summary": ("Serve the full chain (leaf + intermediates) on the server, or add the private CA to the system "
                        "store or NODE_EXTRA_CA_CERTS and restart the client. Never set NODE_TLS_REJECT_UNAUTHORIZED=0."),
            "command": ["openssl s_client -connect {tls_connect} -servername {tls_host} -showcerts </dev/null 2>&1"
                        " | grep -E 'verify|depth|s:|i:' || echo no TLS answer from {tls_connect}",
                        _CERT_443 % "-subject -issuer"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.tls_hostname": {
        "category": "endpoints",
        "title": "An endpoint's certificate does not name the host",
        "symptom": "{name}: the certificate of {tls_connect} does not name {tls_host}; it names {names}.",
        "diagnosis": (
            "Verifying clients refuse the connection (Node.js: ERR_TLS_CERT_ALTNAME_INVALID, \"Hostname/IP does not "
            "match certificate's altnames\"): the client uses a name or IP address the certificate does not list in "
            "its subjectAltName, or the server presents another site's (or a default) certificate because the SNI "
            "name is not configured."
        ),
        "fix": {
            "summary": "Connect by a name the certificate lists, or reissue the certificate with this name in its subjectAltName.",
            "command": [_CERT % "-subject -ext subjectAltName", _CERT_443 % "-subject -ext subjectAltName"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.tls_handshake": {
        "category": "endpoints",
        "title": "The TLS handshake with an endpoint fails",
        "symptom": "{name}: the TLS handshake with {tls_connect} failed: {error}.",
        "diagnosis": (
            "'wrong version number': the port speaks plain HTTP (or another protocol), not TLS. 'unsupported protocol' "
            "or 'no shared cipher': the server offers only TLS 1.0/1.1 or ciphers this client refuses. 'certificate "
            "required' or 'handshake failure': the server wants a client certificate. A reset or EOF: a proxy or "
            "firewall in between ends the connection."
        ),
        "fix": {
            "summary": "See what the server answers on that port and fix the scheme, the port or the server's TLS settings.",
            "command": ["openssl s_client -connect {tls_connect} -servername {tls_host} -brief </dev/null 2>&1 | head -n 20",
                        "openssl s_client -connect {tls_host}:443 -servername {tls_host} -brief </dev/null 2>&1 | head -n 20"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.http_status": {
        "category": "endpoints",
        "title": "An HTTP endpoint answers with an error status",
        "symptom": "{name}: GET {url} answered {status} {reason} in {ms} ms; expected {expected}.",
        "diagnosis": (
            "5xx: the service (or the proxy in front of it: 502 bad gateway, 503 no healthy upstream, 504 upstream "
            "timeout) fails: a dependency it checks is down (database pool exhausted, an API rate-limited) or it is "
            "starting or stopping. 4xx: the path, the method or the credentials the check needs are wrong - set "
            "expect_status when an endpoint legitimately answers 401 or 404."
        ),
        "fix": {
            "summary": "Read the answer and the service's log at that time; for a proxy's 502/503/504 check the upstream it names.",
            "command": [_CURL, "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.http_timeout": {
        "category": "endpoints",
        "title": "An HTTP endpoint accepts connections but does not answer",
        "symptom": "{name}: {url} accepted the connection in {connect_ms} ms but sent no response within {timeout_s} s.",
        "diagnosis": (
            "The listener is alive but the request is stuck: the event loop is blocked (a synchronous loop, a huge "
            "JSON.parse, garbage collection under memory pressure), or the handler waits on a dependency without a "
            "timeout (node-postgres pg.Pool waits forever by default when all clients are taken, connectionTimeoutMillis "
            "0). Clients see UND_ERR_HEADERS_TIMEOUT (fetch) or their own timeout."
        ),
        "fix": {
            "summary": "Check the service's CPU, event-loop lag and its database pool (the pg findings); restart only after capturing evidence.",
            "command": [_CURL, "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.http_failed": {
        "category": "endpoints",
        "title": "An HTTP endpoint closes the connection without a valid answer",
        "symptom": "{name}: {url} failed: {error}.",
        "diagnosis": (
            "The server reset or closed the connection before answering, or answered something that is not HTTP: a "
            "process crashing per request, a proxy whose upstream died mid-request, a keep-alive race, or a port that "
            "speaks another protocol (TLS, PostgreSQL). Clients log ECONNRESET, 'socket hang up' or UND_ERR_SOCKET."
        ),
        "fix": {
            "summary": "Look at what answers on that port and at the service's log for crashes at that time.",
            "command": [_CURL, "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.http_body": {
        "category": "endpoints",
        "title": "An HTTP endpoint's answer does not say it is healthy",
        "symptom": "{name}: {url} answered {status} but its body does not match {body_match}.",
        "diagnosis": (
            "The health endpoint answers, but not with what a healthy instance says: it reports a dependency down or "
            "degraded, or another service (a default page, a proxy's error page) answers on that address."
        ),
        "fix": {
            "summary": "Read the body: a health endpoint usually names the dependency that fails.",
            "command": [_CURL, "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.http_slow": {
        "category": "endpoints",
        "title": "An HTTP endpoint answers slowly",
        "symptom": "{name}: {url} took {ms} ms to answer ({status}).",
        "diagnosis": (
            "Time to the response headers, after the connection: a slow handler, a slow dependency or a saturated "
            "event loop. Health checks with short timeouts (load balancers, Kubernetes probes) start failing before "
            "users notice."
        ),
        "fix": {
            "summary": "Compare with the service's CPU, memory and dependencies (database, LLM API rate limits) at the same time.",
            "command": [_CURL, "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {"low": 1000, "medium": 3000},
    },
    "endpoints.ws_upgrade_refused": {
        "category": "endpoints",
        "title": "A WebSocket endpoint does not upgrade",
        "symptom": "{name}: {url} did not upgrade to a WebSocket: {error}.",
        "diagnosis": (
            "A proxy in front does not pass the upgrade (nginx needs proxy_http_version 1.1 and proxy_set_header "
            "Upgrade $http_upgrade / Connection \"upgrade\"), the path is wrong (404), the server wants credentials "
            "or an Origin it accepts (401/403), or the service behind is down (502/503)."
        ),
        "fix": {
            "summary": "Send the upgrade request by hand and compare the answer with and without the proxy.",
            "command": ["curl -sS -i --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13'"
                        " -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' {http_url} 2>&1 | head -n 20", "ss -ltnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.ws_no_pong": {
        "category": "endpoints",
        "title": "A WebSocket endpoint does not answer pings",
        "symptom": "{name}: {url} upgraded but sent no pong to a ping within {timeout_s} s{closed_note}.",
        "diagnosis": (
            "RFC 6455 requires a pong for every ping: a server that does not answer has a blocked event loop or a "
            "stuck connection handler, or a proxy in between holds the frames. Clients with heartbeats then declare "
            "the connection dead and reconnect (close 1006 on their side); without heartbeats, proxy idle timeouts "
            "(nginx proxy_read_timeout and AWS ALB: 60 s) cut it silently."
        ),
        "fix": {
            "summary": "Check the server's event loop (CPU, the process's state) and its WebSocket connections; restart it after capturing evidence.",
            "command": ["ss -tnpi {port_filter}", "ss -tni {dport_filter}", "ss -tnp"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "endpoints.check_incomplete": {
        "category": "endpoints",
        "title": "An endpoint or socket check could not run",
        "symptom": "Could not read {what}: {error}",
        "diagnosis": (
            "This part was not checked, so the report cannot say it is healthy: usually the descriptors of other "
            "users' processes (which process owns a listening socket) or another process's resolv.conf need root."
        ),
        "fix": {
            "summary": "Run the diagnosis with privileges (become).",
            "command": "ansible-playbook agentops.runbooks.diagnose --become",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
}
