# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the containers and services families read Docker and Podman: their command-line client's JSON (``ps``,
``inspect``, ``image inspect``, ``logs --tail``) or, when no client is installed, the Engine API over the unix socket
(the Docker-compatible endpoints, which Podman's service serves too). Read-only GETs and argv lists, each bounded by a
timeout; ``OSError`` for anything that did not answer. ``reach()`` picks the way and lists the containers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import socket

try:
    from http.client import HTTPConnection
    from urllib.parse import quote
except ImportError:  # pragma: no cover  # Python 2 targets are not supported by this family
    HTTPConnection = object
    quote = None

from ansible_collections.agentops.runbooks.plugins.module_utils import ctr_inspect as ci
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm

ID = re.compile(r"^[0-9a-f]{12,64}$")
# What a client prints when its daemon or socket is simply not there (not running, not a failure).
NOT_ANSWERING = re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running|unable to connect to Podman|"
                           r"no such file or directory.*(?:docker|podman)\.sock", re.I)
REFUSED = (ConnectionRefusedError, FileNotFoundError)
SOCKETS = {"docker": ("DOCKER_HOST", ("/var/run/docker.sock", "/run/docker.sock")),
           "podman": ("CONTAINER_HOST", ("/run/podman/podman.sock", "/var/run/podman/podman.sock"))}
BODY_MAX = 32 * 1024 * 1024


def podman_has_state(environ=None):
    """True when podman has storage to read (its own configuration, a remote socket, or a storage directory). The podman
    client creates its storage on first use, so a diagnosis asks it only then: diagnosis never changes a host."""
    environ = os.environ if environ is None else environ
    if environ.get("CONTAINERS_STORAGE_CONF") or environ.get("CONTAINER_HOST"):
        return True
    home = environ.get("HOME") or os.path.expanduser("~")
    data = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return any(os.path.isdir(path) for path in ("/var/lib/containers/storage", os.path.join(data, "containers", "storage")))


def check_runtimes(runtimes):
    """ValueError with one sentence when ``runtimes`` names something other than docker and podman."""
    bad = [r for r in runtimes if r not in SOCKETS]
    if bad:
        raise ValueError("runtimes takes docker and podman, got %s." % ", ".join(bad))


def reach(runtime, find, runner, timeout, incomplete, environ=None):
    """(engine, state, listed containers) of one runtime: its client (``find(runtime)``, run by ``runner(argv,
    timeout)``), else its API socket, else ``(None, "not present", None)``. A daemon that is not running is a state,
    not a failure; a runtime that fails to answer is also told to ``incomplete(check, error)``."""
    environ = os.environ if environ is None else environ
    binary = find(runtime)
    if binary and runtime == "podman" and not podman_has_state(environ):
        # Diagnosis never changes a host: the podman client creates its storage on first use, so a podman that has
        # never stored anything is not asked (it has no containers).
        return None, "present, never used (no container storage)", None
    if binary:
        engine = Cli(runtime, binary, runner, timeout)
    else:
        path = socket_path(runtime, environ)
        if not path:
            return None, "not present", None
        engine = Api(runtime, path, timeout)
    try:
        listed = engine.list()
    except REFUSED as exc:
        return None, "not running (%s does not answer: %s)" % (engine.where, fm.describe(exc)), None
    except OSError as exc:
        if NOT_ANSWERING.search(str(exc)):
            return None, "not running (its daemon or socket does not answer)", None
        incomplete("%s ps (%s)" % (runtime, engine.where), fm.describe(exc))
        return None, "failed to answer", None
    except ValueError as exc:
        incomplete("%s ps (%s)" % (runtime, engine.where), str(exc))
        return None, "failed to answer", None
    return engine, "answered (%s %s)" % (engine.kind, engine.where), listed


def socket_path(runtime, environ=None):
    """The unix socket of a runtime's Engine API (from DOCKER_HOST / CONTAINER_HOST when unix://, else the usual
    places), or None when none exists."""
    environ = os.environ if environ is None else environ
    variable, places = SOCKETS[runtime]
    given = environ.get(variable) or ""
    candidates = [given[len("unix://"):]] if given.startswith("unix://") else []
    if runtime == "podman" and environ.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(environ["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
    candidates += list(places)
    for path in candidates:
        if path and os.path.exists(path):
            return path
    return None


def _json_list(text, what):
    text = (text or "").strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError("%s printed something that is not JSON" % what)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("%s printed JSON that is not a list" % what)
    return [item for item in value if isinstance(item, dict)]


class Cli(object):
    """A runtime through its client: ``runner(argv, timeout)`` -> (rc, stdout, stderr)."""

    kind = "cli"

    def __init__(self, runtime, binary, runner, timeout):
        self.runtime = runtime
        self.binary = binary
        self.runner = runner
        self.timeout = timeout
        self.where = binary

    def _run(self, args):
        return self.runner([self.binary] + args, self.timeout)

    def list(self):
        """[(full id, name)] of every container, running or not."""
        rc, out, err = self._run(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"])
        if rc != 0:
            raise OSError(0, (err or out).strip() or "%s ps exited with %d" % (self.runtime, rc))
        found = []
        for line in out.splitlines():
            ident, _sep, name = line.strip().partition(" ")
            if ID.match(ident):
                found.append((ident, name.split(",")[0].strip().lstrip("/")))
        return found

    def inspect(self, ids):
        rc, out, err = self._run(["inspect", "--type", "container"] + list(ids))
        if rc != 0 and not out.strip().startswith("["):
            raise OSError(0, (err or out).strip() or "%s inspect exited with %d" % (self.runtime, rc))
        return _json_list(out, "%s inspect" % self.runtime)

    def images(self, ids):
        """{image id: inspect} of the given images (one call); images removed meanwhile are left out."""
        rc, out, err = self._run(["image", "inspect"] + list(ids))
        if rc != 0 and not out.strip().startswith("["):
            raise OSError(0, (err or out).strip() or "%s image inspect exited with %d" % (self.runtime, rc))
        items = _json_list(out, "%s image inspect" % self.runtime)
        found = {}
        for item in items:
            ident = str(item.get("Id") or "")
            found[ident] = item
            found[ident.split(":", 1)[-1]] = item
        return found

    def logs(self, ident, tail):
        rc, out, err = self._run(["logs", "--tail", str(tail), ident])
        if rc != 0:
            raise OSError(0, (err or out).strip() or "%s logs exited with %d" % (self.runtime, rc))
        return out + ("\n" if out and err else "") + err


class _UnixConnection(HTTPConnection):
    def __init__(self, path, timeout):
        HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Api(object):
    """A runtime through the Engine API on its unix socket (GET only)."""

    kind = "api"

    def __init__(self, runtime, path, timeout):
        self.runtime = runtime
        self.path = path
        self.timeout = timeout
        self.where = "unix://%s" % path

    def get(self, url, raw=False):
        connection = _UnixConnection(self.path, self.timeout)
        try:
            connection.request("GET", url, headers={"Host": "localhost", "Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(BODY_MAX)
        except socket.timeout:
            raise OSError(0, "%s did not answer within %s s" % (self.where, self.timeout))
        finally:
            connection.close()
        if response.status == 404:
            return None
        if response.status >= 400:
            message = body.decode("utf-8", "replace").strip()
            try:
                message = json.loads(message).get("message") or message
            except (ValueError, AttributeError):
                pass
            raise OSError(0, "%s %s answered %d: %s" % (self.where, url, response.status, message[:200]))
        if raw:
            return body
        try:
            return json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            raise ValueError("%s %s answered something that is not JSON" % (self.where, url))

    def list(self):
        found = []
        for item in self.get("/containers/json?all=1") or []:
            ident = str(item.get("Id") or "")
            names = item.get("Names") or [""]
            if ID.match(ident):
                found.append((ident, str(names[0]).lstrip("/")))
        return found

    def inspect(self, ids):
        items = []
        for ident in ids:
            item = self.get("/containers/%s/json" % quote(ident, safe=""))
            if isinstance(item, dict):
                items.append(item)
        return items

    def images(self, ids):
        found = {}
        for ident in ids:
            item = self.get("/images/%s/json" % quote(ident, safe=""))
            if isinstance(item, dict):
                found[ident] = item
        return found

    def logs(self, ident, tail):
        raw = self.get("/containers/%s/logs?stdout=1&stderr=1&tail=%d" % (quote(ident, safe=""), int(tail)), raw=True)
        return ci.demux_logs(raw or b"")
