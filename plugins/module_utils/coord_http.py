# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JSON over HTTP with the standard library, for the coordination family: the RabbitMQ management API (``/api/queues``,
basic auth with the password given apart from the URL) and heartbeat URLs. GET only, every request bounded by a
timeout; errors raise :class:`HttpError` with one sentence and a ``kind`` (refused, timeout, auth, http, tls, json)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import ssl

try:
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote, unquote, urlsplit, urlunsplit
    from urllib.request import HTTPSHandler, HTTPRedirectHandler, Request, build_opener
except ImportError:  # pragma: no cover  # Python 2 targets are not supported
    raise

BODY_MAX = 32 * 1024 * 1024  # bytes of one answer read at most
QUEUE_COLUMNS = ("name", "vhost", "state", "messages", "messages_ready", "messages_unacknowledged", "consumers",
                 "consumer_utilisation", "idle_since", "messages_details", "messages_ready_details", "type")


class HttpError(Exception):
    def __init__(self, message, kind="http", status=None):
        super(HttpError, self).__init__(message)
        self.message = message
        self.kind = kind
        self.status = status


class _NoRedirect(HTTPRedirectHandler):
    """Never follow a redirect with credentials attached: a redirect is reported as the answer."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def check_url(url, where, user_allowed=False):
    """``url`` stripped; ValueError (one sentence naming ``where``) for a non-http(s) URL or one that carries a password
    (or, unless ``user_allowed``, any user information)."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError("%s is not a valid URL: %s." % (where, str(exc).rstrip(".")))
    if (parts.scheme or "").lower() not in ("http", "https"):
        raise ValueError("%s must be an http:// or https:// URL, got %r." % (where, (parts.scheme + "://") if parts.scheme else url))
    if parts.password is not None or ("@" in parts.netloc and not user_allowed):
        raise ValueError("%s carries credentials; list the URL without them%s." % (
            where, " (the password goes in agentops_rabbitmq_password)" if user_allowed else ""))
    if not parts.hostname:
        raise ValueError("%s names no host." % where)
    return url


def split_user(url):
    """``(url without user information, user or None)``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    user, _sep, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), unquote(user) or None


def get_json(url, timeout, user=None, password=None, ca_file=None):
    """GET ``url`` and return its JSON body; HttpError otherwise."""
    headers = {"Accept": "application/json", "User-Agent": "agentops.runbooks"}
    if user is not None or password is not None:
        token = base64.b64encode(("%s:%s" % (user or "", password or "")).encode("utf-8")).decode("ascii")
        headers["Authorization"] = "Basic " + token
    handlers = [_NoRedirect()]
    if url.lower().startswith("https:"):
        handlers.append(HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
    opener = build_opener(*handlers)
    where = shown(url)
    try:
        answer = opener.open(Request(url, headers=headers), timeout=timeout)
        try:
            body = answer.read(BODY_MAX + 1)
        finally:
            answer.close()
    except HTTPError as exc:
        status = exc.code
        kind = "auth" if status in (401, 403) else "http"
        raise HttpError("%s answered %s %s" % (where, status, exc.reason), kind, status)
    except URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.timeout) or "timed out" in str(reason):
            raise HttpError("no answer from %s within %s s" % (where, timeout), "timeout")
        if isinstance(reason, ssl.SSLError):
            raise HttpError("the TLS handshake with %s failed: %s" % (where, getattr(reason, "reason", None) or reason), "tls")
        raise HttpError("cannot connect to %s: %s" % (where, getattr(reason, "strerror", None) or reason), "refused")
    except socket.timeout:
        raise HttpError("no answer from %s within %s s" % (where, timeout), "timeout")
    except (OSError, ValueError) as exc:
        raise HttpError("the request to %s failed: %s" % (where, getattr(exc, "strerror", None) or exc), "refused")
    if len(body) > BODY_MAX:
        raise HttpError("%s answered more than %d bytes" % (where, BODY_MAX), "json")
    try:
        return json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise HttpError("%s did not answer JSON (%r...)" % (where, body[:60].decode("utf-8", "replace")), "json")


def shown(url):
    """The URL without user information or query, for messages and evidence."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def rabbitmq_queues(api_url, timeout, user, password, page_size=500, pages=4, ca_file=None):
    """The queues of every vhost the user may see, from ``<api_url>/api/queues`` (paginated, at most
    ``page_size * pages``): ``(queues, total)``."""
    base = api_url.rstrip("/")
    if not base.endswith("/api"):
        base += "/api"
    queues, total = [], None
    for page in range(1, pages + 1):
        url = "%s/queues?page=%d&page_size=%d&columns=%s" % (base, page, page_size, quote(",".join(QUEUE_COLUMNS), safe=","))
        answer = get_json(url, timeout, user, password, ca_file)
        if isinstance(answer, list):  # an API without pagination
            return answer, len(answer)
        if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
            raise HttpError("%s did not answer a list of queues" % shown(url), "json")
        queues.extend(answer["items"])
        total = answer.get("filtered_count", answer.get("total_count"))
        if page >= (answer.get("page_count") or 1):
            break
    return queues, total if total is not None else len(queues)
