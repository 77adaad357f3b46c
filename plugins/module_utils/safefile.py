# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private files and directories that are never reached through a symbolic link.

The one place for writing reports, bundles and evidence, on the controller (action plugins) and on hosts (modules):

* ``open_dir(path, base)`` walks to ``path`` with directory descriptors. Every directory below ``base`` (default: the
  parent of ``path``) is created with mode 0700 when missing, opened with ``O_NOFOLLOW`` and must be a real directory
  owned by the effective user; ``path`` itself is chmod 0700. ``base`` and its ancestors are taken as they are, so an
  operator may still make the reports directory itself a link.
* ``atomic_file(directory, name)`` writes a temporary file opened ``O_CREAT|O_EXCL|O_NOFOLLOW`` (mode 0600) in the
  directory, fsyncs it and renames it over ``name``; ``write_private`` is the one-call form.
* ``check(path)`` inspects a path without following it or changing anything (check mode), ``open_read`` opens a file
  that must be a regular file of ours, ``make_tempdir`` makes a fresh private directory, ``locked`` takes an exclusive
  ``flock`` on a directory so that several files written under it come from one run.

Refusals raise ``UnsafePathError`` (a ``ValueError``) with one sentence; other failures are ``OSError``. The callers'
top level turns them into ``fail_json`` (or a failed action result).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import contextlib
import errno
import fcntl
import os
import stat

DIR_MODE = 0o700
FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# O_PATH opens a directory we may only traverse (mode 0711); fall back to O_RDONLY where it does not exist.
_WALK = getattr(os, "O_PATH", os.O_RDONLY) | _DIRECTORY | _CLOEXEC


class UnsafePathError(ValueError):
    """A path we refuse to use: a symbolic link, the wrong kind of file, or owned by another user."""


def _refusal(path, st, want_dir):
    """The one-sentence reason to refuse ``path`` (its lstat ``st``), or None when it is fine."""
    if stat.S_ISLNK(st.st_mode):
        return "Refusing to use %s: it is a symbolic link, and private files are never written through one." % path
    if want_dir and not stat.S_ISDIR(st.st_mode):
        return "Refusing to use %s: it exists and is not a directory." % path
    if not want_dir and not stat.S_ISREG(st.st_mode):
        return "Refusing to use %s: it exists and is not a regular file." % path
    if st.st_uid != os.geteuid():
        return "Refusing to use %s: it is owned by uid %d, not by uid %d that runs this." % (path, st.st_uid, os.geteuid())
    return None


def check(path, directory=False):
    """lstat ``path`` and return it, or None when it does not exist; never follows it, changes nothing.

    Raises UnsafePathError when ``path`` is a symbolic link, not a directory (``directory``) or not a regular file,
    or owned by another user.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    reason = _refusal(path, st, directory)
    if reason:
        raise UnsafePathError(reason)
    return st


def _open_strict(parent_fd, name, shown, create, mode):
    """Open (creating when missing) the directory ``name`` under ``parent_fd``; refuse links and others' directories."""
    if create:
        try:
            os.mkdir(name, mode, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    try:
        fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a link or a file: say which
            reason = _refusal(shown, os.stat(name, dir_fd=parent_fd, follow_symlinks=False), True)
            if reason:
                raise UnsafePathError(reason)
        raise
    try:
        reason = _refusal(shown, os.fstat(fd), True)
        if reason:
            raise UnsafePathError(reason)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(path, base=None, create=True, mode=DIR_MODE):
    """Return an ``O_RDONLY`` descriptor of the private directory ``path`` (the caller closes it).

    Directories below ``base`` (default: the parent of ``path``) are created with ``mode`` when missing, never
    followed when they are links, must belong to the effective user, and are chmod ``mode``; so are the missing
    directories above them that this call creates. ``base`` must be an ancestor of ``path``.
    """
    path = os.path.abspath(path)
    base = os.path.dirname(path) if base is None else os.path.abspath(base)
    if path == base or path == os.path.dirname(path):
        raise UnsafePathError("Refusing to use %s as a private directory: name a directory below %s." % (path, base))
    prefix = base.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        raise UnsafePathError("Refusing to use %s: it is not below %s." % (path, base))
    trusted = base
    while not os.path.lexists(trusted):  # what is missing above base is ours to create, so it is walked strictly too
        trusted = os.path.dirname(trusted)
    fd = os.open(trusted, _WALK)  # the trusted part, links and all
    shown = trusted
    try:
        for name in path[len(trusted.rstrip(os.sep) + os.sep):].split(os.sep):
            shown = os.path.join(shown, name)
            child = _open_strict(fd, name, shown, create, mode)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_dir(path, base=None, mode=DIR_MODE):
    """Make sure ``path`` is a private directory as ``open_dir`` describes; return its absolute path."""
    os.close(open_dir(path, base=base, mode=mode))
    return os.path.abspath(path)


@contextlib.contextmanager
def _directory_fd(directory):
    """Yield a descriptor for ``directory``: an int is used as it is; a path goes through ``open_dir``."""
    if isinstance(directory, int):
        yield directory
        return
    fd = open_dir(directory)
    try:
        yield fd
    finally:
        os.close(fd)


def _temp_name(name):
    return ".%s.%s.tmp" % (name, binascii.hexlify(os.urandom(6)).decode("ascii"))


def open_excl(dir_fd, name, mode=FILE_MODE):
    """Create ``name`` in ``dir_fd`` with ``O_CREAT|O_EXCL|O_NOFOLLOW``, mode ``mode``; return a write descriptor."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)  # exactly mode, whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_target(dir_fd, name, shown):
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    reason = _refusal(shown, st, False)
    if reason:
        raise UnsafePathError(reason)


@contextlib.contextmanager
def atomic_file(directory, name, mode=FILE_MODE, where=None):
    """Yield a binary file; on success it is fsynced and renamed over ``directory/name``, else removed.

    ``directory`` is a descriptor or a path (made private with ``open_dir``); ``where`` is the directory's path for
    messages when it is a descriptor. An existing ``name`` that is a link, not a regular file or another user's is
    refused before anything is written.
    """
    if not name or os.sep in name or name in (".", ".."):
        raise UnsafePathError("Refusing to write %r: a file name without %s is needed." % (name, os.sep))
    with _directory_fd(directory) as dir_fd:
        shown = os.path.join(where or ("" if isinstance(directory, int) else os.path.abspath(directory)), name)
        _check_target(dir_fd, name, shown)
        for attempt in range(100):
            tmp = _temp_name(name)
            try:
                fd = open_excl(dir_fd, tmp, mode)
                break
            except OSError as exc:
                if exc.errno != errno.EEXIST or attempt == 99:
                    raise
        try:
            with os.fdopen(fd, "wb") as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            _check_target(dir_fd, name, shown)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise


def write_private(directory, name, data, mode=FILE_MODE, where=None):
    """Atomically replace ``directory/name`` with ``data`` (str is UTF-8 encoded), mode 0600 from the start."""
    with atomic_file(directory, name, mode, where) as stream:
        stream.write(data.encode("utf-8") if not isinstance(data, bytes) else data)


def open_read(path):
    """Open the existing regular file ``path`` for reading without following a link; it must be ours."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check(path)  # raises the refusal
        raise
    try:
        reason = _refusal(path, os.fstat(fd), False)
        if reason:
            raise UnsafePathError(reason)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_tempdir(dir_fd, prefix=".tmp-", mode=DIR_MODE):
    """Create a fresh directory with a random name under ``dir_fd`` (mode 0700); return its name."""
    for attempt in range(100):
        name = "%s%s" % (prefix, binascii.hexlify(os.urandom(6)).decode("ascii"))
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.EEXIST or attempt == 99:
                raise
            continue
        os.close(_open_strict(dir_fd, name, name, False, mode))
        return name


@contextlib.contextmanager
def locked(dir_fd):
    """Hold an exclusive ``flock`` on the directory ``dir_fd`` (blocking) for the ``with`` block."""
    fcntl.flock(dir_fd, fcntl.LOCK_EX)
    try:
        yield dir_fd
    finally:
        fcntl.flock(dir_fd, fcntl.LOCK_UN)
