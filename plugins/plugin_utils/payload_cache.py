# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep the diagnostics module's built payload from one run to the next.

Before Ansible runs a module it builds its payload (AnsiballZ): it parses the module and every module_util it
imports, recursively, and zips them. For the diagnostics module - every signal family, the rules catalog, the
redaction engine, ~500 KB of source - that costs about 0.3 s on the controller, in every run, because Ansible
keeps the built payload only in the run's own temporary directory (``<local_tmp>/ansiballz_cache``).

``restore`` copies a payload kept by an earlier run into that directory before the module runs, so Ansible finds
it there and builds nothing; ``keep`` copies a freshly built one out after the run. A kept payload is used only when
its key matches: the sha256 of the ansible-core version, the controller's Python, the module compression setting,
and the bytes of the module and of every file under the collection's ``plugins/module_utils``. Anything else - a
changed file, another ansible-core - is another key, so a stale payload is never used.

The store is ``<ANSIBLE_HOME>/agentops/ansiballz/<key>/`` (0700 directories, 0600 files, written to a temporary
file and renamed, never through a symbolic link, only if owned by this user). Every failure leaves Ansible's normal
path untouched: nothing is kept or restored, the module is built as usual. ``AGENTOPS_PAYLOAD_CACHE=0`` turns it off.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import stat
import sys

PREFIX = "ansible_collections.agentops.runbooks.plugins.modules.diagnostics-"
_PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def enabled(environ=None):
    return (os.environ if environ is None else environ).get("AGENTOPS_PAYLOAD_CACHE", "1") not in ("0", "false", "no", "off")


def key(ansible_version, compression, plugins=_PLUGINS):
    """The cache key of the diagnostics payload built from the sources under ``plugins``."""
    digest = hashlib.sha256()
    for part in (ansible_version, sys.version, str(compression)):
        digest.update(part.encode("utf-8") + b"\0")
    files = [os.path.join(plugins, "modules", "diagnostics.py")]
    for root, dirs, names in os.walk(os.path.join(plugins, "module_utils")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files += [os.path.join(root, name) for name in sorted(names) if name.endswith(".py")]
    for path in files:
        digest.update(os.path.relpath(path, plugins).encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
        digest.update(b"\0")
    return digest.hexdigest()[:40]


def _private_dir(path):
    """Create ``path`` (and its parents) as 0700 directories of this user; refuse a symbolic link or another owner."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OSError("%s is not a directory of this user" % path)
    return path


def _copy(source, target_dir, name):
    """Copy ``source`` to ``target_dir/name`` through a temporary file and a rename (readers never see half a file)."""
    temporary = os.path.join(target_dir, ".%s.%d.tmp" % (name, os.getpid()))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with open(source, "rb") as reader:
        data = reader.read()
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as writer:
            writer.write(data)
        os.rename(temporary, os.path.join(target_dir, name))
    except Exception:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _payloads(directory):
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(PREFIX) and not n.endswith((".lock", ".tmp")))


def restore(store, lookup):
    """Copy the payloads kept in ``store`` into Ansible's ``lookup`` directory; returns how many were restored."""
    restored = 0
    names = _payloads(store)
    if not names:
        return 0
    _private_dir(lookup)
    for name in names:
        if not os.path.exists(os.path.join(lookup, name)):
            source = os.path.join(store, name)
            if os.path.islink(source) or os.lstat(source).st_uid != os.geteuid():
                continue
            _copy(source, lookup, name)
            restored += 1
    return restored


def keep(lookup, store, keep_keys=3):
    """Copy the payloads Ansible built into ``lookup`` to ``store`` (once); returns how many were kept. Only the
    ``keep_keys`` newest keys stay beside it (older checkouts' payloads are removed)."""
    kept = 0
    names = [n for n in _payloads(lookup) if n not in _payloads(store)]
    if not names:
        return 0
    _private_dir(store)
    for name in names:
        _copy(os.path.join(lookup, name), store, name)
        kept += 1
    _prune(os.path.dirname(store), keep_keys)
    return kept


def _prune(parent, keep_keys):
    entries = []
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        if not os.path.islink(path) and os.path.isdir(path):
            entries.append((os.lstat(path).st_mtime, path))
    for dummy, path in sorted(entries, reverse=True)[keep_keys:]:
        for name in _payloads(path):
            os.unlink(os.path.join(path, name))
        try:
            os.rmdir(path)
        except OSError:
            pass
