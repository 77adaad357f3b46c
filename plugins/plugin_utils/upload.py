# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report outlives the job: upload an incident directory to an HTTP(S) endpoint or an S3-compatible bucket.

Standard library only (urllib; S3 requests signed with AWS Signature Version 4 by hand). ``agentops_report_upload`` is
a URL string or a mapping (:func:`settings`):

* ``https://host/path`` - **http**: each file is sent (``PUT``, or ``POST`` with ``method: POST``) to
  ``<url>/<incident id>/<file>``, with ``Authorization: Bearer <agentops_report_upload_token>`` when a token is set;
* ``s3://bucket/prefix`` - **s3** with credentials from the controller's environment (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, optional ``AWS_SESSION_TOKEN``; region ``AWS_REGION``/``AWS_DEFAULT_REGION``, default
  ``us-east-1``; an S3-compatible endpoint from ``endpoint_url`` or ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``):
  each file is ``PUT`` to the key ``<prefix>/<incident id>/<file>``;
* an ``https://`` URL that is an S3 **presigned** PUT URL (it holds ``X-Amz-Signature``): one object can be written
  there, so the incident directory is sent as one ``.tar.gz`` archive.

The mapping form: ``{url, kind (http|s3), method (PUT|POST), bucket, prefix, region, endpoint_url, delete_local,
allow_http, deadline, timeout, retries}``. Requests retry 429, 5xx and connection errors with backoff within one
deadline (notify.Sender, the one retry loop). :func:`upload` never raises: its result ``{kind, target, ok, files,
uploaded, failed, attempts, error, url, seconds, deleted_local}`` never holds a secret (the token, the credentials,
the presigned URL's signature). The local files are removed only when ``delete_local`` is true and every file was
sent (:func:`delete_local`).

The same layout is read back for the aggregation of sliced runs (:func:`list_names`, :func:`fetch`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import hmac
import io
import json
import os
import random
import re
import tarfile
import time
import urllib.parse

from ansible_collections.agentops.runbooks.plugins.module_utils import safefile
from ansible_collections.agentops.runbooks.plugins.plugin_utils import notify

KINDS = ("http", "s3")
METHODS = ("PUT", "POST")
DEFAULTS = {"deadline": 120.0, "timeout": 30.0, "retries": 4}
RANGES = {"deadline": (1, 3600), "timeout": (1, 600), "retries": (0, 20)}
KEYS = ("url", "kind", "method", "bucket", "prefix", "region", "endpoint_url", "delete_local", "allow_http", "deadline", "timeout", "retries")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_FILES = 1000
MAX_DEPTH = 4
MAX_READ = 256 * 1024 * 1024  # bytes of a partial result read back
CONTENT_TYPES = {".json": "application/json", ".md": "text/markdown; charset=utf-8", ".html": "text/html; charset=utf-8",
                 ".gz": "application/gzip", ".tgz": "application/gzip", ".txt": "text/plain; charset=utf-8"}
NAME = "agentops_report_upload"


def _presigned(url):
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return "X-Amz-Signature" in query or "Signature" in query


def _environ_region(environ):
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def settings(value, token="", environ=None):
    """``(conf, problems)`` from ``agentops_report_upload`` (a URL string or a mapping) and the token; ``conf`` is None
    when nothing is configured (an empty string or mapping). Problems are sentences without a secret."""
    environ = os.environ if environ is None else environ
    if value in (None, "", {}):
        return None, []
    if isinstance(value, str):
        value = {"url": value.strip()}
    if not isinstance(value, dict):
        return None, ["%s must be a URL (https://..., s3://bucket/prefix) or a mapping, got %s." % (NAME, type(value).__name__)]
    problems = []
    unknown = sorted(str(k) for k in value if k not in KEYS)
    if unknown:
        problems.append("%s does not take %s; it takes %s." % (NAME, ", ".join(unknown), ", ".join(KEYS)))
    conf = {"url": str(value.get("url") or "").strip(), "token": token if isinstance(token, str) else "", "presigned": False}
    if token not in (None, "") and not isinstance(token, str):
        problems.append("agentops_report_upload_token must be a string.")
    from ansible_collections.agentops.runbooks.plugins.plugin_utils import variables  # the one reading of a boolean

    for key in ("delete_local", "allow_http"):
        raw = value.get(key, False)
        conf[key] = variables.flag(raw)
        if conf[key] is None:
            problems.append("%s.%s must be true or false, got %r." % (NAME, key, raw))
            conf[key] = False
    for key, default in DEFAULTS.items():
        raw = value.get(key, default)
        try:
            if isinstance(raw, bool):
                raise ValueError
            number = int(raw) if key == "retries" else float(raw)
        except (TypeError, ValueError):
            problems.append("%s.%s must be a number, got %r." % (NAME, key, raw))
            number = default
        low, high = RANGES[key]
        if not low <= number <= high:
            problems.append("%s.%s must be between %s and %s, got %s." % (NAME, key, low, high, number))
            number = default
        conf[key] = number
    method = str(value.get("method") or "PUT").upper()
    if method not in METHODS:
        problems.append("%s.method must be PUT or POST, got %r." % (NAME, value.get("method")))
        method = "PUT"
    conf["method"] = method
    url = conf["url"]
    scheme = urllib.parse.urlsplit(url).scheme if url else ""
    kind = str(value.get("kind") or ("s3" if scheme == "s3" or value.get("bucket") or (url and _presigned(url)) else "http")).lower()
    if kind not in KINDS:
        problems.append("%s.kind must be http or s3, got %r." % (NAME, value.get("kind")))
        kind = "http"
    conf["kind"] = kind
    conf["region"] = str(value.get("region") or _environ_region(environ))
    conf["endpoint_url"] = str(value.get("endpoint_url") or (environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or "")
                               if kind == "s3" else "").strip().rstrip("/")
    conf["bucket"], conf["prefix"] = str(value.get("bucket") or ""), str(value.get("prefix") or "")
    if kind == "s3" and scheme == "s3":
        parts = urllib.parse.urlsplit(url)
        conf["bucket"] = conf["bucket"] or parts.netloc
        conf["prefix"] = conf["prefix"] or parts.path
    conf["prefix"] = conf["prefix"].strip("/")
    if kind == "http" or (kind == "s3" and url and scheme != "s3"):
        if kind == "s3":
            conf["presigned"] = True
        if not url:
            problems.append("%s needs a url." % NAME)
        else:
            problem = notify._url_problem(url, conf["allow_http"], shown=NAME, secret=conf["presigned"])  # pylint: disable=protected-access
            if problem:
                problems.append(problem.replace("agentops_notify_allow_http", NAME + ".allow_http"))
        if kind == "s3" and url and not _presigned(url):
            problems.append("%s: an https:// URL for s3 must be a presigned URL (with X-Amz-Signature); otherwise use s3://bucket/prefix." % NAME)
    else:
        if not conf["bucket"]:
            problems.append("%s: s3 needs a bucket (s3://bucket/prefix, or bucket:)." % NAME)
        elif not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", conf["bucket"]):
            problems.append("%s: %r is not an S3 bucket name." % (NAME, conf["bucket"]))
        if not (environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")):
            problems.append("%s: s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the controller's environment "
                            "(or a presigned URL)." % NAME)
        if conf["endpoint_url"]:
            problem = notify._url_problem(  # pylint: disable=protected-access
                conf["endpoint_url"], conf["allow_http"], shown=NAME + ".endpoint_url", secret=False)
            if problem:
                problems.append(problem.replace("agentops_notify_allow_http", NAME + ".allow_http"))
        if conf["method"] != "PUT":
            problems.append("%s: s3 takes PUT only." % NAME)
    if conf["kind"] == "http" and conf["token"] and urllib.parse.urlsplit(url).scheme == "http" and not conf["allow_http"] and url:
        host = urllib.parse.urlsplit(url).hostname or ""
        if not notify._loopback(host):  # pylint: disable=protected-access
            problems.append("%s: the token would travel in clear over http to %s; use https." % (NAME, host))
    return conf, problems


def secrets(conf, environ=None):
    """What must never appear in a result or a report: the token, the credentials, a presigned URL's query."""
    environ = os.environ if environ is None else environ
    out = set()
    if conf:
        if conf.get("token"):
            out.add(conf["token"])
        parts = urllib.parse.urlsplit(conf.get("url") or "")
        if parts.password:
            out.add(parts.password)
        if conf.get("presigned") and parts.query:
            out.add(parts.query)
            out.update(v for dummy, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 8)
        if conf.get("kind") == "s3" and not conf.get("presigned"):
            out.update(environ.get(k) or "" for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    return sorted((s for s in out if len(s) >= 6), key=len, reverse=True)


def shown_url(url):
    """``url`` without credentials, query or fragment (what a result and a link may hold)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _quote(text):
    return urllib.parse.quote(text, safe="/-_.~")


def _s3_base(conf):
    """(base URL with the bucket, path-style?) of an S3 bucket: the endpoint's path style for S3-compatible servers,
    virtual-hosted style on AWS."""
    if conf["endpoint_url"]:
        return "%s/%s" % (conf["endpoint_url"], conf["bucket"])
    if "." in conf["bucket"]:
        return "https://s3.%s.amazonaws.com/%s" % (conf["region"], conf["bucket"])
    return "https://%s.s3.%s.amazonaws.com" % (conf["bucket"], conf["region"])


def key(conf, incident_id, name):
    """The object key (s3) or the path under the URL (http) of ``name`` of the incident."""
    return "/".join(p for p in (conf.get("prefix") if conf["kind"] == "s3" else "", str(incident_id), name) if p)


def object_url(conf, incident_id, name):
    """Where ``name`` (a path relative to the incident directory) goes."""
    if conf["kind"] == "s3":
        return "%s/%s" % (_s3_base(conf), _quote(key(conf, incident_id, name)))
    parts = urllib.parse.urlsplit(conf["url"])
    path = parts.path.rstrip("/") + "/" + _quote(key(conf, incident_id, name))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def location(conf, incident_id):
    """The incident's place, without a secret: ``s3://bucket/prefix/INC-1/`` or ``https://host/path/INC-1/``."""
    if conf["presigned"]:
        return shown_url(conf["url"])
    if conf["kind"] == "s3":
        return "s3://%s/%s/" % (conf["bucket"], key(conf, incident_id, ""))
    return shown_url(object_url(conf, incident_id, "")).rstrip("/") + "/"


# ------------------------------------------------------------------ AWS Signature Version 4
def _hmac(key_bytes, text):
    return hmac.new(key_bytes, text.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(method, url, headers, payload_hash, access_key, secret_key, region, session_token=None, service="s3", now=None):
    """``headers`` plus ``x-amz-date``, ``x-amz-content-sha256`` (and ``x-amz-security-token``) and the SigV4
    ``Authorization`` of a request to ``url`` (already percent-encoded); ``now`` a UTC datetime (tests)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    out = dict(headers)
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    if session_token:
        out["x-amz-security-token"] = session_token
    signed = dict((k.lower().strip(), " ".join(str(v).split())) for k, v in out.items())
    signed["host"] = parts.netloc.rpartition("@")[2]
    names = sorted(signed)
    query = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                     for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    canonical = "\n".join([method, parts.path or "/", query, "".join("%s:%s\n" % (n, signed[n]) for n in names), ";".join(names), payload_hash])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key_bytes = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode("utf-8"), day), region), service), "aws4_request")
    signature = hmac.new(key_bytes, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (access_key, scope, ";".join(names), signature)
    return out


def _headers(conf, method, url, body, content_type, agent, environ):
    headers = {"User-Agent": agent}
    if content_type:
        headers["Content-Type"] = content_type
    if conf["kind"] == "http":
        if conf["token"]:
            headers["Authorization"] = "Bearer " + conf["token"]
        parts = urllib.parse.urlsplit(url)
        if parts.username:
            headers["Authorization"] = notify._basic(  # pylint: disable=protected-access
                urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        return headers
    if conf["presigned"]:
        return headers
    return sign_v4(method, url, headers, hashlib.sha256(body or b"").hexdigest(), environ["AWS_ACCESS_KEY_ID"],
                   environ["AWS_SECRET_ACCESS_KEY"], conf["region"], environ.get("AWS_SESSION_TOKEN"))


def _plain(url):
    """The URL urllib is given: credentials out of the netloc (they go in a header)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))


# ------------------------------------------------------------------ local files
def files_of(directory):
    """Relative paths of the regular files under the incident ``directory`` (bundles in sub-directories too), sorted;
    never through a symbolic link; dot files (locks, temporary files) left out."""
    out = []
    base = os.path.abspath(directory)
    for root, dirs, files in os.walk(base, followlinks=False):
        depth = os.path.relpath(root, base).count(os.sep) + (0 if root == base else 1)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)) and depth < MAX_DEPTH)
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.startswith(".") or os.path.islink(path) or not os.path.isfile(path):
                continue
            out.append(os.path.relpath(path, base).replace(os.sep, "/"))
    return sorted(out)[:MAX_FILES]


def _read(directory, name):
    fd = safefile.open_read(os.path.join(directory, name))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _archive(directory, names, incident_id):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in names:
            data = _read(directory, name)
            info = tarfile.TarInfo("%s/%s" % (incident_id, name))
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def delete_local(directory, names):
    """Remove the uploaded ``names`` under ``directory``, then the directories left empty; return what was removed."""
    removed = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            if not os.path.islink(path) and os.path.isfile(path):
                os.unlink(path)
                removed.append(name)
        except OSError:
            continue
    for root, dummy, dummy2 in sorted(os.walk(directory, topdown=False), key=lambda item: -len(item[0])):
        try:
            if not os.listdir(root) or all(n.startswith(".") and n.endswith(".lock") for n in os.listdir(root)):
                for leftover in os.listdir(root):
                    os.unlink(os.path.join(root, leftover))
                os.rmdir(root)
        except OSError:
            continue
    return removed


# ------------------------------------------------------------------ upload
def _sender(conf, transport, clock, sleep, deadline_at):
    return notify.Sender(transport, deadline_at, conf["timeout"], conf["retries"], clock, sleep, random.Random())


def _agent(version):
    return "agentops.runbooks/%s" % (version or "dev")


def upload(directory, incident_id, conf, names=None, version=None, transport=None, clock=time.monotonic, sleep=time.sleep,
           environ=None):
    """Send the files ``names`` (default: every file, :func:`files_of`) of the incident ``directory`` as ``conf``
    says; return the result (see the module docstring). Never raises."""
    environ = os.environ if environ is None else environ
    started = clock()
    result = {"kind": conf.get("kind") if conf else None, "target": None, "ok": False, "files": 0, "uploaded": [], "failed": [],
              "attempts": 0, "error": None, "url": None, "seconds": 0.0, "deleted_local": False}
    hidden = secrets(conf, environ)
    try:
        result["target"] = location(conf, incident_id)
        names = files_of(directory) if names is None else list(names)
        result["files"] = len(names)
        if not names:
            result["error"] = "nothing to upload under %s" % directory
            return notify.scrub(result, hidden)
        transport = transport or notify.urllib_transport()
        deadline_at = clock() + conf["deadline"]
        agent = _agent(version)
        if conf["presigned"]:
            body = _archive(directory, names, incident_id)
            sender = _sender(conf, transport, clock, sleep, deadline_at)
            try:
                sender.send("PUT", conf["url"], body, _headers(conf, "PUT", conf["url"], body, "application/gzip", agent, environ))
                result["uploaded"] = list(names)
            except notify.DeliveryError as exc:
                result["failed"] = [{"name": "%s.tar.gz" % incident_id, "status": exc.status, "error": str(exc)}]
            result["attempts"] = sender.attempts
            result["url"] = shown_url(conf["url"])
        else:
            for name in names:
                url = object_url(conf, incident_id, name)
                sender = _sender(conf, transport, clock, sleep, deadline_at)
                try:
                    body = _read(directory, name)
                    content_type = CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
                    plain = _plain(url)
                    sender.send(conf["method"], plain, body, _headers(conf, conf["method"], plain, body, content_type, agent, environ))
                    result["uploaded"].append(name)
                except notify.DeliveryError as exc:
                    result["failed"].append({"name": name, "status": exc.status, "error": str(exc)})
                except (OSError, ValueError) as exc:
                    result["failed"].append({"name": name, "status": None, "error": "cannot read it: %s" % exc})
                result["attempts"] += sender.attempts
            main = "report.html" if "report.html" in result["uploaded"] else next(
                (n for n in ("report.md", "report.json") if n in result["uploaded"]), None)
            result["url"] = shown_url(object_url(conf, incident_id, main)) if main else location(conf, incident_id)
        result["ok"] = not result["failed"] and len(result["uploaded"]) == len(names)
        if result["failed"]:
            first = result["failed"][0]
            result["error"] = "%d of %d file(s) not uploaded; %s: %s" % (len(result["failed"]), len(names), first["name"], first["error"])
    except Exception as exc:  # pylint: disable=broad-except  # an upload never fails the diagnosis
        result.update(ok=False, error="internal error: %s: %s" % (type(exc).__name__, exc))
    result["seconds"] = round(clock() - started, 3)
    return notify.scrub(result, hidden)


def describe(result):
    """One line for a result: ``s3://bucket/inc/INC-1/: 6 file(s) uploaded (6 attempts) - https://...``."""
    if not result:
        return "nothing"
    if result.get("ok"):
        text = "%s: %d file(s) uploaded (%d attempt%s)" % (result.get("target"), len(result.get("uploaded") or []), result.get("attempts") or 0,
                                                           "" if result.get("attempts") == 1 else "s")
        if result.get("url"):
            text += " - %s" % result["url"]
        if result.get("deleted_local"):
            text += "; local copy deleted"
        return text
    return "%s: FAILED - %s (%d attempts); the local copy stays" % (result.get("target") or "upload", result.get("error"), result.get("attempts") or 0)


# ------------------------------------------------------------------ reading back (aggregation)
def reading_transport(max_body=MAX_READ):
    """notify.urllib_transport (system CAs, no redirects, an HTTP error returned), reading whole files up to
    ``max_body`` bytes instead of a sink's short answer."""
    return notify.urllib_transport(max_body=max_body)


def _get(conf, url, transport, environ, deadline):
    clock = time.monotonic
    sender = _sender(conf, transport or reading_transport(), clock, time.sleep, clock() + deadline)
    dummy, dummy2, body = sender.send("GET", _plain(url), None, _headers(conf, "GET", _plain(url), b"", None, _agent(None), environ))
    return body


def list_names(conf, incident_id, folder, transport=None, environ=None, deadline=None):
    """Names of the files in ``folder`` of the incident at the upload place: S3 ListObjectsV2, or over HTTP a JSON
    list or an index page (autoindex) of ``<url>/<incident id>/<folder>/``. Raises notify.DeliveryError or ValueError."""
    environ = os.environ if environ is None else environ
    deadline = deadline or conf["deadline"]
    if conf["presigned"]:
        raise ValueError("a presigned URL can only be written: read partial results with s3://bucket/prefix and credentials.")
    if conf["kind"] == "s3":
        prefix = key(conf, incident_id, folder).rstrip("/") + "/"
        names, token = [], None
        for dummy in range(50):
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            url = "%s?%s" % (_s3_base(conf), "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="-_.~")) for k, v in sorted(query.items())))
            if not conf["endpoint_url"] and "." not in conf["bucket"]:
                url = url.replace(_s3_base(conf) + "?", _s3_base(conf) + "/?")
            from xml.etree import ElementTree  # pylint: disable=import-outside-toplevel  # only when reading a listing back
            tree = ElementTree.fromstring(_get(conf, url, transport, environ, deadline))
            space = tree.tag.partition("}")[0] + "}" if tree.tag.startswith("{") else ""
            names += [item.findtext(space + "Key")[len(prefix):] for item in tree.iter(space + "Contents")]
            token = tree.findtext(space + "NextContinuationToken")
            if (tree.findtext(space + "IsTruncated") or "false").lower() != "true" or not token:
                break
        return sorted(n for n in names if n and "/" not in n)
    url = object_url(conf, incident_id, folder.rstrip("/") + "/")
    body = _get(conf, url, transport, environ, deadline).decode("utf-8", "replace")
    try:
        listed = json.loads(body)
    except ValueError:
        listed = [urllib.parse.unquote(h) for h in re.findall(r'href="([^"?#]+)"', body)]
    return sorted(set(n.rstrip("/").rpartition("/")[2] for n in listed if isinstance(n, str) and n and not n.endswith("/")))


def fetch(conf, incident_id, name, transport=None, environ=None, deadline=None):
    """The bytes of ``name`` of the incident at the upload place. Raises notify.DeliveryError."""
    environ = os.environ if environ is None else environ
    return _get(conf, object_url(conf, incident_id, name), transport, environ, deadline or conf["deadline"])
