# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Probe endpoints from this host with the standard library only: DNS, TCP connect, TLS, HTTP and WebSocket.

``endpoint(entry, index)`` checks one entry of the ``endpoints`` option (a URL, or a dict ``{url, expect_status,
body_match, pid, name}``) and refuses a URL that carries credentials, naming it redacted. ``probe_all(targets,
timeout)`` probes them concurrently, one thread each, every probe within its own deadline: each step gets only the
time left, and a probe still running at the deadline (plus a little slack) has its sockets shut and is reported at
the step it was in, so one hanging endpoint cannot hold the family.

TLS: a first handshake verifies the chain against the system store (``ssl.create_default_context``) and the host
name; when it fails, a second one without the host name check tells a name mismatch from an untrusted chain, and a
third without verification reads the certificate (``getpeercert(True)``, parsed by :func:`parse_certificate`, a
minimal DER reader) for its expiry and names; the HTTP or WebSocket check then runs over that unverified connection
(the request carries no secret: URLs with credentials are refused), so a finding can also say whether the service
behind answers. WebSocket (RFC 6455): the upgrade is checked against
``Sec-WebSocket-Accept``, then a masked ping must be answered by a pong with the same payload before the deadline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import calendar
import copy
import errno
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import struct
import threading
import time

import http.client as httplib
from urllib.parse import parse_qsl, urlsplit

from ansible_collections.agentops.runbooks.plugins.module_utils import redact

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "postgres": 5432, "postgresql": 5432}
SCHEMES = ("http", "https", "ws", "wss", "tcp", "postgres", "postgresql")
ENTRY_KEYS = ("url", "expect_status", "body_match", "pid", "name")
SLACK = 0.5  # seconds past the deadline before a probe still running is abandoned
BODY_MAX = 65536
ADDRESSES_MAX = 8
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
USER_AGENT = "agentops.runbooks-probe"

# OpenSSL verify codes -> the codes Node.js clients print, so a finding matches the agent's own log lines.
VERIFY_CODES = {
    2: "UNABLE_TO_GET_ISSUER_CERT", 7: "CERT_SIGNATURE_FAILURE", 9: "CERT_NOT_YET_VALID", 10: "CERT_HAS_EXPIRED",
    18: "DEPTH_ZERO_SELF_SIGNED_CERT", 19: "SELF_SIGNED_CERT_IN_CHAIN", 20: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    21: "UNABLE_TO_VERIFY_LEAF_SIGNATURE", 23: "CERT_REVOKED", 26: "INVALID_PURPOSE", 62: "ERR_TLS_CERT_ALTNAME_INVALID",
}
EXPIRED = 10
HOSTNAME_MISMATCH = 62
# getaddrinfo errors -> Node's names (getaddrinfo ENOTFOUND host / EAI_AGAIN host).
GAI_CODES = {getattr(socket, "EAI_NONAME", -2): "ENOTFOUND", getattr(socket, "EAI_NODATA", -5): "ENOTFOUND",
             getattr(socket, "EAI_AGAIN", -3): "EAI_AGAIN", getattr(socket, "EAI_FAIL", -4): "EAI_FAIL"}


# ------------------------------------------------------------------ the option
def _shown(url, parts=None):
    """``url`` safe to show: user information and secret-looking query values replaced, then the redaction engine."""
    try:
        parts = parts or urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "[REDACTED]@" + netloc.rpartition("@")[2]
        query = "&".join("%s=%s" % (k, "[REDACTED]" if redact.key_kind(k) else v)
                         for k, v in parse_qsl(parts.query, keep_blank_values=True))
        url = "%s://%s%s%s" % (parts.scheme, netloc, parts.path, "?" + query if query else "")
    except ValueError:
        url = "(an unparsable URL)"
    return redact.Redactor().text(url)


def endpoint(entry, index):
    """One entry of the ``endpoints`` option as a target dict; ValueError with one sentence naming the option."""
    where = "endpoints entry %d" % index
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise ValueError("%s has unknown key(s) %s; an entry takes %s." % (where, ", ".join(unknown), ", ".join(ENTRY_KEYS)))
        url = entry.get("url")
    else:
        url, entry = entry, {}
    if not isinstance(url, str) or not url.strip():
        raise ValueError("%s must be a URL string or a dict with a url, got %r." % (where, type(url).__name__))
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ValueError("%s (%s) is not a valid URL: %s." % (where, _shown(url), str(exc).rstrip(".")))
    scheme = (parts.scheme or "").lower()
    if "@" in parts.netloc or any(redact.key_kind(k) for k, _v in parse_qsl(parts.query, keep_blank_values=True)) \
            or redact.Redactor().text(url) != url:
        raise ValueError("%s (%s) carries credentials (user information or a secret in the URL); list it without them."
                         % (where, _shown(url, parts)))
    if scheme not in SCHEMES:
        raise ValueError("%s (%s) has scheme %r; endpoints takes %s." % (where, _shown(url), scheme, ", ".join(s + "://" for s in SCHEMES)))
    if not host:
        raise ValueError("%s (%s) names no host." % (where, _shown(url)))
    port = port or DEFAULT_PORTS.get(scheme)
    if not port:
        raise ValueError("%s (%s) needs a port (tcp://host:port)." % (where, _shown(url)))
    target = {"url": url, "scheme": scheme, "host": host, "port": port,
              "path": (parts.path or "/") + ("?" + parts.query if parts.query else ""),
              "name": entry.get("name") or url, "expect_status": None, "body_match": None, "pid": None}
    web = scheme in ("http", "https")
    status = entry.get("expect_status")
    if status is not None:
        if isinstance(status, bool) or not isinstance(status, int) and not (isinstance(status, str) and status.isdigit()) \
                or not 100 <= int(status) <= 599 or not web:
            raise ValueError("%s: expect_status must be an HTTP status from 100 to 599 for an http(s) URL, got %r." % (where, status))
        target["expect_status"] = int(status)
    if entry.get("body_match") is not None:
        if not web or not isinstance(entry["body_match"], str):
            raise ValueError("%s: body_match must be a regular expression for an http(s) URL." % where)
        try:
            target["body_match"] = re.compile(entry["body_match"])
        except re.error as exc:
            raise ValueError("%s: body_match %r is not a valid regular expression: %s." % (where, entry["body_match"], exc))
    if entry.get("pid") is not None:
        pid = entry["pid"]
        if isinstance(pid, bool) or not (isinstance(pid, int) or isinstance(pid, str) and pid.isdigit()) or int(pid) < 1:
            raise ValueError("%s: pid must be a process id (a positive integer), got %r." % (where, pid))
        target["pid"] = int(pid)
    if not isinstance(target["name"], str):
        raise ValueError("%s: name must be a string." % where)
    return target


# ------------------------------------------------------------------ certificates
def _tlv(data, pos):
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(bytes(data[pos:pos + count]), "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _children(data, start, end):
    items = []
    while start < end:
        tag, value, stop = _tlv(data, start)
        items.append((tag, value, stop))
        start = stop
    return items


def _time(data, tag, start, end):
    text = bytes(data[start:end]).decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]Z
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    text = (text + "00")[:14] if len(text) == 12 else text[:14]
    return calendar.timegm(time.strptime(text, "%Y%m%d%H%M%S"))


_NAME_OIDS = {b"\x55\x04\x03": "CN", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU"}


def _name(data, start, end):
    parts = []
    for _tag, set_start, set_end in _children(data, start, end):
        for _tag2, seq_start, seq_end in _children(data, set_start, set_end):
            items = _children(data, seq_start, seq_end)
            if len(items) == 2 and items[0][0] == 0x06:
                label = _NAME_OIDS.get(bytes(data[items[0][1]:items[0][2]]))
                if label:
                    parts.append("%s=%s" % (label, bytes(data[items[1][1]:items[1][2]]).decode("utf-8", "replace")))
    return ", ".join(parts)


def parse_certificate(der):
    """The fields of an X.509 certificate the probe needs, from its DER bytes:
    {not_before, not_after (epoch seconds), subject, issuer ("CN=..., O=..."), dns_names, ip_addresses}."""
    data = bytearray(der)
    _tag, start, end = _tlv(data, 0)
    _tag, start, end = _tlv(data, start)
    items = _children(data, start, end)
    first = 1 if items and items[0][0] == 0xA0 else 0
    issuer, validity, subject = items[first + 2], items[first + 3], items[first + 4]
    times = _children(data, validity[1], validity[2])
    cert = {"not_before": _time(data, *times[0]), "not_after": _time(data, *times[1]),
            "subject": _name(data, subject[1], subject[2]), "issuer": _name(data, issuer[1], issuer[2]),
            "dns_names": [], "ip_addresses": []}
    for tag, ext_start, ext_end in items[first + 6:]:
        if tag != 0xA3:
            continue
        _tag, seq_start, seq_end = _tlv(data, ext_start)
        for _tag2, one_start, one_end in _children(data, seq_start, seq_end):
            parts = _children(data, one_start, one_end)
            if bytes(data[parts[0][1]:parts[0][2]]) != b"\x55\x1d\x11":  # subjectAltName
                continue
            _tag3, san_start, san_end = _tlv(data, parts[-1][1])
            for name_tag, value_start, value_end in _children(data, san_start, san_end):
                raw = bytes(data[value_start:value_end])
                if name_tag == 0x82:
                    cert["dns_names"].append(raw.decode("ascii", "replace"))
                elif name_tag == 0x87 and len(raw) in (4, 16):
                    cert["ip_addresses"].append(str(ipaddress.ip_address(raw)))
    return cert


def hostname_matches(cert, host):
    """RFC 6125 matching as browsers do: an IP against the IP names; a name against the DNS names (a wildcard only
    as the whole leftmost label), the subject CN only when there are no DNS names."""
    host = host.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return any(ipaddress.ip_address(ip) == address for ip in cert.get("ip_addresses") or ())
    names = cert.get("dns_names") or [p[3:] for p in (cert.get("subject") or "").split(", ") if p.startswith("CN=")]
    for name in names:
        name = name.rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:] and name.count(".") >= 2:
            return True
    return False


def cert_names(cert):
    return ", ".join((cert.get("dns_names") or []) + (cert.get("ip_addresses") or [])) or cert.get("subject") or "(none)"


# ------------------------------------------------------------------ probing
class Abandoned(Exception):
    """The probe ran out of its time."""


class Probe(object):
    """One endpoint probed within ``deadline`` (a ``time.monotonic()`` value); ``result`` fills in step by step."""

    def __init__(self, target, deadline, resolv=None):
        self.target = target
        self.deadline = deadline
        self.stage = "dns"
        self.sockets = []
        self.lock = threading.Lock()
        self.closed = False
        self.result = {"name": target["name"], "url": target["url"], "scheme": target["scheme"], "host": target["host"],
                       "port": target["port"], "dns": None, "address": None, "connect_ms": None, "connect_error": None,
                       "tls": None, "http": None, "ws": None, "error": None, "stage": None}
        if resolv is not None:
            self.result["resolv_conf"] = resolv

    # ------------------------------------------------------------ time
    def left(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Abandoned()
        return remaining

    def _own(self, sock):
        with self.lock:
            if self.closed:
                sock.close()
                raise Abandoned()
            self.sockets.append(sock)
        return sock

    def abort(self):
        """Shut every socket of the probe (called from another thread at the deadline): blocked reads return."""
        with self.lock:
            self.closed = True
            sockets = list(self.sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def close(self):
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    # ------------------------------------------------------------ steps
    def run(self):
        began = time.monotonic()
        try:
            addresses = self.resolve()
            if addresses:
                sock = self.connect(addresses)
                if sock is not None:
                    scheme = self.target["scheme"]
                    if scheme in ("https", "wss"):
                        sock = self.tls(sock)
                    if sock is not None and scheme in ("http", "https"):
                        self.http(sock)
                    elif sock is not None and scheme in ("ws", "wss"):
                        self.websocket(sock)
        except Abandoned:
            self.timed_out()
        except Exception as exc:  # pylint: disable=broad-except  # one endpoint's surprise is its own error
            self.result["error"] = "%s: %s" % (exc.__class__.__name__, _describe(exc))
        finally:
            self.close()
        self.result["ms"] = _ms(began)
        return self.result

    def timed_out(self):
        """Record the deadline at the step the probe had reached."""
        seconds = self.target.get("timeout")
        message = "no answer within %s s" % seconds
        self.result["stage"] = self.stage
        if self.stage == "dns":
            self.result["dns"] = dict(self.result["dns"] or {}, error=message, code="ETIMEOUT", addresses=[])
        elif self.stage == "connect":
            self.result["connect_error"] = message
            self.result["connect_kind"] = "timeout"
        elif self.stage == "tls":
            self.result["tls"] = dict(self.result["tls"] or {}, error="handshake: " + message, handshake=False)
        elif self.stage == "http":
            self.result["http"] = dict(self.result["http"] or {}, status=None, error=message, timeout=True)
        elif self.stage in ("ws", "pong"):
            self.result["ws"] = dict(self.result["ws"] or {}, error=message, timeout=True)

    def resolve(self):
        host, port = self.target["host"], self.target["port"]
        began = time.monotonic()
        box = {}

        def lookup():
            try:
                box["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except (socket.gaierror, OSError, UnicodeError) as exc:
                box["error"] = exc
        thread = threading.Thread(target=lookup, name="agentops-dns")
        thread.daemon = True
        thread.start()
        thread.join(self.left())
        if thread.is_alive():
            raise Abandoned()
        dns = {"addresses": [], "ms": _ms(began), "error": None, "code": None}
        self.result["dns"] = dns
        if "error" in box:
            exc = box["error"]
            dns["code"] = GAI_CODES.get(getattr(exc, "errno", None), "EAI_FAIL") if isinstance(exc, socket.gaierror) else "EAI_FAIL"
            dns["error"] = _describe(exc)
            return []
        seen = []
        for family, socktype, proto, _canon, sockaddr in box["infos"]:
            if (family, sockaddr) not in [(f, s) for f, _t, _p, s in seen]:
                seen.append((family, socktype, proto, sockaddr))
        dns["addresses"] = [s[3][0] for s in seen][:ADDRESSES_MAX]
        return seen[:ADDRESSES_MAX]

    def connect(self, addresses):
        """Connect to the addresses in order; the first that accepts wins."""
        self.stage = "connect"
        errors = []
        for family, socktype, proto, sockaddr in addresses:
            self.result["address"] = sockaddr[0]
            sock = self._own(socket.socket(family, socktype, proto))
            began = time.monotonic()
            try:
                sock.settimeout(self.left())
                sock.connect(sockaddr)
            except socket.timeout:
                errors.append(("timeout", "no answer to the connection attempt within %s s" % self.target.get("timeout")))
                break  # the deadline is spent
            except OSError as exc:
                if self.closed:
                    raise Abandoned()
                kind = "refused" if exc.errno == errno.ECONNREFUSED else \
                    "unreachable" if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL) else \
                    "timeout" if exc.errno == errno.ETIMEDOUT else "error"
                errors.append((kind, _describe(exc)))
                self.result["connect_ms"] = _ms(began)
                continue
            self.result["connect_ms"] = _ms(began)
            self.result["connect_error"] = None
            return sock
        kind, message = errors[0] if errors else ("error", "no address to connect to")
        self.result["connect_kind"] = kind
        self.result["connect_error"] = message
        if errors and errors[0][0] == "timeout":
            self.result["connect_ms"] = int((self.target.get("timeout") or 0) * 1000)
        return None

    def _handshake(self, context, raw_from):
        """A fresh TCP connection to the same address, wrapped by ``context``; returns the TLS socket."""
        if raw_from is None:
            address = self.result["address"]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            raw_from = self._own(socket.socket(family, socket.SOCK_STREAM))
            raw_from.settimeout(self.left())
            raw_from.connect((address, self.target["port"]))
        raw_from.settimeout(self.left())
        server_name = None if _is_ip(self.target["host"]) and not context.check_hostname else self.target["host"]
        wrapped = context.wrap_socket(raw_from, server_hostname=server_name)
        return self._own(wrapped)

    def tls(self, sock):
        """Verify, then tell a name mismatch from an untrusted chain, then read the certificate unverified."""
        self.stage = "tls"
        tls = {"verified": None, "hostname_ok": None, "protocol": None, "days_left": None, "not_after": None,
               "subject": None, "issuer": None, "names": None, "error": None, "code": None, "handshake": True}
        self.result["tls"] = tls
        began = time.monotonic()
        context = ssl.create_default_context()
        try:
            secure = self._handshake(context, sock)
        except ssl.SSLError as exc:
            code = getattr(exc, "verify_code", None)
            if not _verify_failure(exc):
                tls.update(handshake=False, error=_tls_error(exc))
                return None
            tls.update(code=VERIFY_CODES.get(code, "CERT_VERIFY_FAILED"), error=_tls_error(exc))
        except ssl.CertificateError as exc:  # Python 3.6 checks the name after the handshake
            tls.update(code=VERIFY_CODES[HOSTNAME_MISMATCH], error=_describe(exc))
        except socket.timeout:
            raise Abandoned()
        except OSError as exc:
            if self.closed:
                raise Abandoned()
            tls.update(handshake=False, error="handshake: %s" % _describe(exc))
            return None
        else:
            tls.update(verified=True, hostname_ok=True)
            self._certificate(secure, tls, began)
            return secure
        # Verification failed: is it only the name? A second handshake without the name check says.
        chain = ssl.create_default_context()
        chain.check_hostname = False
        try:
            secure = self._handshake(chain, None)
            tls.update(verified=True, hostname_ok=False)
            self._certificate(secure, tls, began)
            return secure
        except ssl.SSLError as exc:
            if not _verify_failure(exc):
                tls.update(handshake=False, error=_tls_error(exc))
                return None
            tls.update(verified=False, code=VERIFY_CODES.get(getattr(exc, "verify_code", None), tls["code"]), error=_tls_error(exc))
        except socket.timeout:
            raise Abandoned()
        except OSError as exc:
            if self.closed:
                raise Abandoned()
            tls.update(verified=False, error="%s; reconnecting: %s" % (tls["error"], _describe(exc)))
            return None
        # An untrusted chain: read the certificate without verification for its dates and names.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        try:
            secure = self._handshake(insecure, None)
        except socket.timeout:
            raise Abandoned()
        except (ssl.SSLError, OSError) as exc:
            if self.closed:
                raise Abandoned()
            tls.update(handshake=False, error=tls["error"] or _tls_error(exc))
            return None
        self._certificate(secure, tls, began)
        return secure

    def _certificate(self, secure, tls, began):
        tls["protocol"] = secure.version()
        tls["ms"] = _ms(began)
        der = secure.getpeercert(True)
        if not der:
            return
        try:
            cert = parse_certificate(der)
        except (ValueError, IndexError, UnicodeError) as exc:
            tls["cert_error"] = "the certificate could not be parsed: %s" % exc
            return
        now = time.time()
        tls.update(days_left=round((cert["not_after"] - now) / 86400.0, 1), expired=cert["not_after"] < now,
                   not_yet_valid=cert["not_before"] > now,
                   not_after=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cert["not_after"])),
                   subject=cert["subject"] or "(empty)", issuer=cert["issuer"] or "(empty)", names=cert_names(cert),
                   self_signed=cert["subject"] == cert["issuer"])
        if tls["hostname_ok"] is None:
            tls["hostname_ok"] = hostname_matches(cert, self.target["host"])

    def http(self, sock):
        self.stage = "http"
        target = self.target
        http = {"status": None, "reason": None, "ms": None, "error": None, "timeout": False}
        self.result["http"] = http
        conn = httplib.HTTPConnection(target["host"], target["port"], timeout=self.left())
        conn.default_port = DEFAULT_PORTS[target["scheme"]]  # the Host header leaves out the scheme's own port
        conn.sock = sock  # already connected (and wrapped in TLS): the connection uses it as it is
        began = time.monotonic()
        try:
            sock.settimeout(self.left())
            conn.request("GET", target["path"], headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"})
            response = conn.getresponse()
            if self.closed:  # shut at the deadline: what was read is cut short, not an answer
                raise Abandoned()
            http.update(status=response.status, reason=response.reason, ms=_ms(began))
            if target["body_match"] is not None:
                body = b""
                while len(body) < BODY_MAX:
                    self.left()  # each read waits at most the time left when the request was sent; this stops a trickle
                    chunk = response.read(min(8192, BODY_MAX - len(body)))
                    if not chunk:
                        break
                    body += chunk
                http["body_matched"] = bool(target["body_match"].search(body.decode("utf-8", "replace")))
        except socket.timeout:
            raise Abandoned()
        except (httplib.HTTPException, OSError) as exc:
            if self.closed:
                raise Abandoned()
            http["error"] = "%s%s" % ("no valid HTTP response: " if isinstance(exc, httplib.HTTPException) else "",
                                      _describe(exc) or exc.__class__.__name__)
            http["ms"] = _ms(began)

    def websocket(self, sock):
        self.stage = "ws"
        target = self.target
        ws = {"upgraded": False, "status": None, "pong_ms": None, "error": None, "timeout": False, "close_code": None}
        self.result["ws"] = ws
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        default = DEFAULT_PORTS[target["scheme"]]
        host = "[%s]" % target["host"] if ":" in target["host"] else target["host"]
        request = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (target["path"], host if target["port"] == default else "%s:%d" % (host, target["port"]), USER_AGENT, key))
        began = time.monotonic()
        try:
            sock.settimeout(self.left())
            sock.sendall(request.encode("latin-1"))
            head, rest = self._read_head(sock)
            ws["ms"] = _ms(began)
            lines = head.decode("latin-1").split("\r\n")
            status_line = lines[0].split(" ", 2)
            ws["status"] = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
            headers = dict((k.strip().lower(), v.strip()) for k, _s, v in (line.partition(":") for line in lines[1:]) if k)
            accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")
            if ws["status"] != 101:
                ws["error"] = "answered %s instead of 101 Switching Protocols" % " ".join(status_line[1:]).strip()
                return
            if headers.get("upgrade", "").lower() != "websocket" or headers.get("sec-websocket-accept") != accept:
                ws["error"] = "answered 101 without a valid Upgrade: websocket / Sec-WebSocket-Accept"
                return
            ws["upgraded"] = True
            self.stage = "pong"
            payload = os.urandom(8)
            sent = time.monotonic()
            sock.sendall(_frame(0x9, payload))
            while True:
                opcode, data, rest = self._read_frame(sock, rest)
                if opcode == 0xA and data == payload:
                    ws["pong_ms"] = _ms(sent)
                    break
                if opcode == 0x8:
                    ws["close_code"] = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    ws["error"] = "the server closed the connection (code %s) instead of answering the ping" % ws["close_code"]
                    return
            try:
                sock.sendall(_frame(0x8, struct.pack("!H", 1000)))
            except OSError:
                pass
        except socket.timeout:
            raise Abandoned()
        except EOFError:
            ws["error"] = "the server closed the connection%s" % (" before answering the ping" if ws["upgraded"] else " without answering")
        except OSError as exc:
            if self.closed:
                raise Abandoned()
            ws["error"] = _describe(exc)

    def _recv(self, sock):
        sock.settimeout(self.left())
        data = sock.recv(65536)
        if not data:
            raise EOFError()
        return data

    def _read_head(self, sock):
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > 16384:
                raise EOFError()
            buffer += self._recv(sock)
        head, _sep, rest = buffer.partition(b"\r\n\r\n")
        return head, rest

    def _read_frame(self, sock, buffer):
        """(opcode, payload, bytes left over) of the next frame."""
        def need(count):
            while len(buffer_box[0]) < count:
                buffer_box[0] += self._recv(sock)
        buffer_box = [buffer]
        need(2)
        first, second = bytearray(buffer_box[0][:2])
        length, offset = second & 0x7F, 2
        if length == 126:
            need(4)
            length, offset = struct.unpack("!H", buffer_box[0][2:4])[0], 4
        elif length == 127:
            need(10)
            length, offset = struct.unpack("!Q", buffer_box[0][2:10])[0], 10
        mask = None
        if second & 0x80:
            need(offset + 4)
            mask, offset = bytearray(buffer_box[0][offset:offset + 4]), offset + 4
        if length > 1 << 20:
            raise EOFError()  # not a frame we want to hold in memory
        need(offset + length)
        payload = bytearray(buffer_box[0][offset:offset + length])
        if mask:
            payload = bytearray(b ^ mask[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, bytes(payload), buffer_box[0][offset + length:]


def _frame(opcode, payload):
    """A final client frame (masked, as RFC 6455 requires of clients) with a payload under 126 bytes."""
    mask = bytearray(os.urandom(4))
    masked = bytes(bytearray(b ^ mask[i % 4] for i, b in enumerate(bytearray(payload))))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + bytes(mask) + masked


def _verify_failure(exc):
    return getattr(exc, "verify_code", None) is not None or "CERTIFICATE_VERIFY_FAILED" in str(getattr(exc, "reason", "")) \
        or "certificate verify failed" in str(exc)


def _tls_error(exc):
    message = getattr(exc, "verify_message", None)
    if message:
        return message
    reason = getattr(exc, "reason", None)
    return ("%s" % reason).replace("_", " ").lower() if reason else _describe(exc)


def _is_ip(host):
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _describe(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or exc.__class__.__name__


def _ms(began):
    return int((time.monotonic() - began) * 1000)


NAMESERVERS_MAX = 3  # glibc's MAXNS: the resolver never asks more


def dns_query(host, qid):
    """A DNS query (RFC 1035) for the A record of ``host``, recursion desired; ValueError for a name no DNS can carry."""
    labels = host.rstrip(".").split(".")
    if not host or any(not label or len(label) > 63 for label in labels):
        raise ValueError("%r is not a DNS name" % host)
    question = b"".join(struct.pack("!B", len(label)) + label.encode("ascii") for label in labels) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)


def ask_nameservers(host, nameservers, timeout):
    """Ask each nameserver (UDP port 53, at most NAMESERVERS_MAX, in order, as the resolver does) for ``host``, within
    ``timeout`` seconds in all: ``[{nameserver, state, ms, rcode}]`` with state ``answered`` (any reply, NXDOMAIN
    included: the nameserver works), ``refused`` (ICMP port unreachable: nothing listens on its port 53),
    ``timeout``, or ``error`` (with ``error``). Read-only: one query per nameserver, nothing else sent."""
    deadline = time.monotonic() + timeout
    answers = []
    for nameserver in nameservers[:NAMESERVERS_MAX]:
        began = time.monotonic()
        entry = {"nameserver": nameserver, "state": "timeout", "rcode": None, "ms": 0}
        answers.append(entry)
        left = deadline - began
        if left <= 0:
            entry["state"] = "not asked (no time left)"
            continue
        qid = struct.unpack("!H", os.urandom(2))[0]
        sock = None
        try:
            query = dns_query(host, qid)
            sock = socket.socket(socket.AF_INET6 if ":" in nameserver else socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(left)
            sock.connect((nameserver, 53))
            sock.send(query)
            while True:
                reply = sock.recv(4096)
                if len(reply) >= 4 and struct.unpack("!H", reply[:2])[0] == qid:
                    entry.update(state="answered", rcode=reply[3] & 0x0F)
                    break
        except socket.timeout:
            pass
        except ConnectionRefusedError:
            entry["state"] = "refused"
        except (OSError, ValueError, UnicodeError) as exc:
            entry.update(state="error", error=_describe(exc))
        finally:
            if sock is not None:
                sock.close()
        entry["ms"] = _ms(began)
    return answers


def probe_all(targets, timeout, resolv=None):
    """Probe every target concurrently, each within ``timeout`` seconds; returns their results in order.

    ``resolv`` maps a target index to the resolv.conf facts to attach. A probe still running at its deadline plus
    ``SLACK`` has its sockets shut and is reported at the step it had reached ("no answer within N s")."""
    deadline = time.monotonic() + timeout
    probes = []
    for index, target in enumerate(targets):
        target = dict(target, timeout=timeout)
        probe = Probe(target, deadline, (resolv or {}).get(index))
        box = {}
        thread = threading.Thread(target=lambda p=probe, b=box: b.update(result=p.run()), name="agentops-probe")
        thread.daemon = True
        thread.start()
        probes.append((probe, thread, box))
    results = []
    for probe, thread, box in probes:
        thread.join(max(0.0, deadline + SLACK - time.monotonic()))
        if thread.is_alive() or "result" not in box:
            probe.abort()
            thread.join(0.2)
        if "result" in box:
            results.append(box["result"])
            continue
        snapshot = Probe(probe.target, deadline)
        try:
            snapshot.result = copy.deepcopy(probe.result)
        except RuntimeError:  # changed while copied: the probe thread is still writing
            snapshot.result = dict(probe.result)
        snapshot.stage = probe.stage
        snapshot.timed_out()
        snapshot.result["ms"] = int((timeout + SLACK) * 1000)
        results.append(snapshot.result)
    return results
