# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A minimal Redis client on the standard library (RESP2 over a socket, TLS for ``rediss://``): the read-only commands
the coordination family needs, each bounded by a socket timeout and by the caller's deadline.

``parse_url`` refuses a URL that carries a password (it goes in ``agentops_redis_password``, never in a URL that may be
logged). Errors raise :class:`RedisError` with one sentence and a ``kind`` (refused, timeout, auth, tls, protocol,
server) that the family turns into a finding or an incomplete check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import ssl
import time

try:
    from urllib.parse import urlsplit, unquote
except ImportError:  # pragma: no cover  # Python 2 targets are not supported
    from urlparse import urlsplit  # noqa
    from urllib import unquote  # noqa

DEFAULT_PORT = 6379
REPLY_MAX = 64 * 1024 * 1024  # bytes of one bulk reply read at most
# Commands this client may send: all read-only (AUTH and PING only prove the connection).
READ_ONLY = frozenset(("AUTH", "PING", "INFO", "TYPE", "LLEN", "LINDEX", "LRANGE", "XLEN", "XINFO", "XRANGE", "ZCARD",
                       "ZRANGE", "SCAN", "MGET", "SELECT", "HELLO", "CLIENT"))


class RedisError(Exception):
    """A connection, authentication or command error: ``message`` is one sentence, ``kind`` classifies it."""

    def __init__(self, message, kind="server"):
        super(RedisError, self).__init__(message)
        self.message = message
        self.kind = kind


class Deadline(object):
    """The family's overall time budget: ``left()`` seconds remain; ``bound(t)`` is ``t`` cut to what remains."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return self.left() <= 0

    def bound(self, timeout):
        return max(0.05, min(timeout, self.left()))


def parse_url(url, where="redis_url"):
    """``{host, port, db, tls, user}`` of a ``redis://`` or ``rediss://`` URL; ValueError (one sentence) otherwise."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError("%s is not a valid Redis URL: %s." % (where, str(exc).rstrip(".")))
    scheme = (parts.scheme or "").lower()
    if scheme not in ("redis", "rediss"):
        raise ValueError("%s must start with redis:// or rediss:// (TLS), got %r." % (where, scheme + "://" if scheme else url))
    if parts.password is not None:
        raise ValueError("%s carries a password; give it in agentops_redis_password (no_log) and list the URL without it." % where)
    if not parts.hostname:
        raise ValueError("%s names no host." % where)
    db = 0
    path = (parts.path or "").strip("/")
    if path:
        if not path.isdigit():
            raise ValueError("%s names database %r; a Redis database is a number (redis://host:6379/0)." % (where, path))
        db = int(path)
    return {"host": parts.hostname, "port": port or DEFAULT_PORT, "db": db, "tls": scheme == "rediss",
            "user": unquote(parts.username) if parts.username else None}


def shown(target):
    """host:port of a parsed URL, for messages and evidence (never a secret)."""
    host = target["host"]
    return "%s:%s" % ("[%s]" % host if ":" in host else host, target["port"])


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if not isinstance(arg, bytes):
            arg = str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Client(object):
    """One connection. ``call(*args)`` sends a command and returns its reply (bytes, int, list, None); an error reply
    raises RedisError(kind="server"), or kind="auth" for NOAUTH/WRONGPASS."""

    def __init__(self, target, password=None, timeout=5.0, deadline=None, ca_file=None):
        self.target = target
        self.timeout = timeout
        self.deadline = deadline or Deadline(timeout * 4)
        self.sock = None
        self.buffer = b""
        where = shown(target)
        try:
            sock = socket.create_connection((target["host"], target["port"]), timeout=self.deadline.bound(timeout))
        except socket.timeout:
            raise RedisError("no connection to Redis at %s within %s s" % (where, round(self.deadline.bound(timeout), 1)), "timeout")
        except (OSError, socket.error) as exc:
            raise RedisError("cannot connect to Redis at %s: %s" % (where, exc.strerror or exc), "refused")
        if target.get("tls"):
            try:
                context = ssl.create_default_context(cafile=ca_file)
                sock = context.wrap_socket(sock, server_hostname=target["host"])
            except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                sock.close()
                raise RedisError("the TLS handshake with Redis at %s failed: %s" % (where, getattr(exc, "reason", None) or exc), "tls")
        self.sock = sock
        try:
            if password is not None:
                args = ["AUTH", target["user"], password] if target.get("user") else ["AUTH", password]
                try:
                    self.call(*args)
                except RedisError as exc:
                    if exc.kind == "server":
                        exc.kind = "auth"
                    exc.message = "Redis at %s refused the password in agentops_redis_password: %s" % (where, exc.message)
                    raise
            if target.get("db"):
                self.call("SELECT", target["db"])
        except RedisError:
            self.close()
            raise

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def call(self, *args):
        name = str(args[0]).upper()
        if name not in READ_ONLY:
            raise RedisError("%s is not a read-only command this client sends" % name, "protocol")
        if self.deadline.expired():
            raise RedisError("the coordination check's time budget (%s s) is spent" % self.deadline.seconds, "timeout")
        self.sock.settimeout(self.deadline.bound(self.timeout))
        try:
            self.sock.sendall(encode(args))
            reply = self._reply()
        except socket.timeout:
            self.close()
            raise RedisError("Redis at %s did not answer %s within %s s" % (shown(self.target), name, self.timeout), "timeout")
        except (OSError, socket.error) as exc:
            self.close()
            raise RedisError("the connection to Redis at %s broke during %s: %s" % (shown(self.target), name, exc.strerror or exc),
                             "refused")
        if isinstance(reply, RedisError):
            text = reply.message
            if text.startswith(("NOAUTH", "WRONGPASS", "ERR invalid password", "ERR AUTH")) or "without any password configured" in text:
                reply.kind = "auth"
            raise reply
        return reply

    # ------------------------------------------------------------ RESP2 parsing
    def _fill(self, size):
        while len(self.buffer) < size:
            chunk = self.sock.recv(max(65536, size - len(self.buffer)))
            if not chunk:
                raise OSError(0, "the server closed the connection")
            self.buffer += chunk

    def _line(self):
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                return line
            if len(self.buffer) > 1024 * 1024:
                raise RedisError("Redis at %s sent a line longer than 1 MiB" % shown(self.target), "protocol")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError(0, "the server closed the connection")
            self.buffer += chunk

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"), "server")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            if size > REPLY_MAX:
                raise RedisError("Redis at %s sent a reply of %d bytes (more than %d)" % (shown(self.target), size, REPLY_MAX), "protocol")
            self._fill(size + 2)
            data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
            return data
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            items = [self._reply() for dummy in range(count)]
            for item in items:
                if isinstance(item, RedisError):
                    return item
            return items
        raise RedisError("Redis at %s answered something that is not RESP (%r)" % (shown(self.target), line[:40]), "protocol")


def text(value):
    """bytes -> str (replacement for bad UTF-8); other values unchanged."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def parse_info(raw):
    """INFO's text as ``{field: value}`` (numbers as int or float)."""
    out = {}
    for line in text(raw or b"").splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def pairs(reply):
    """A flat RESP array of field, value, field, value ... as a dict of str keys."""
    reply = reply or []
    return dict((text(reply[i]), reply[i + 1]) for i in range(0, len(reply) - 1, 2))


def scan(client, pattern, limit, count=500):
    """Keys matching ``pattern`` (SCAN ... MATCH, so the server is never blocked): at most ``limit``; returns
    ``(keys, complete)``."""
    keys, seen, cursor = [], set(), b"0"
    while True:
        cursor, batch = client.call("SCAN", cursor, "MATCH", pattern, "COUNT", count)
        for key in batch or []:
            if key not in seen:
                seen.add(key)
                keys.append(key)
                if len(keys) >= limit:
                    return keys, False
        if cursor in (b"0", 0, "0"):
            return keys, True
