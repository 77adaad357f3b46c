# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible.builtin.fetch into a private directory on the controller, never through a symbolic link."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible.plugins.action.fetch import ActionModule as FetchAction
from ansible_collections.agentops.runbooks.plugins.module_utils import safefile

VALID = frozenset(("src", "dest", "root", "fail_on_missing", "validate_checksum"))


def check_only(directory, root):
    """Check mode: refuse what open_dir would refuse among the existing directories below ``root``; create nothing."""
    relative = os.path.relpath(directory, root)
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        raise safefile.UnsafePathError("Refusing to use %s: it is not below %s." % (directory, root))
    path = root
    for name in relative.split(os.sep):
        path = os.path.join(path, name)
        if safefile.check(path, directory=True) is None:
            return


def prepare(dest, root, create):
    """Make (or, in check mode, check) the private directories down to ``dest`` and check ``dest`` itself."""
    directory = os.path.dirname(dest)
    if create:
        os.close(safefile.open_dir(directory, base=root))
    else:
        check_only(directory, root)
    safefile.check(dest)


class ActionModule(FetchAction):

    def run(self, tmp=None, task_vars=None):
        args = self._task.args
        unknown = sorted(set(args) - VALID)
        if unknown:
            return dict(failed=True, msg="fetch_private does not take %s; it takes %s." % (", ".join(unknown), ", ".join(sorted(VALID))))
        dest = args.get("dest")
        if not isinstance(dest, str) or not os.path.isabs(dest) or dest.endswith(os.sep):
            return dict(failed=True, msg="fetch_private needs dest, the absolute path of the file to write on the controller, got %r." % (dest,))
        dest = os.path.normpath(dest)
        root = args.get("root") or os.path.dirname(os.path.dirname(dest))
        if not isinstance(root, str) or not os.path.isabs(root):
            return dict(failed=True, msg="fetch_private needs root, an absolute directory above dest, got %r." % (root,))
        try:
            prepare(dest, os.path.normpath(root), create=not self._task.check_mode)
        except ValueError as exc:
            return dict(failed=True, msg=str(exc))
        except OSError as exc:
            return dict(failed=True, msg="Cannot prepare %s on the controller: %s." % (os.path.dirname(dest), exc.strerror or exc))
        fetch_args = dict((key, value) for key, value in args.items() if key in ("src", "fail_on_missing", "validate_checksum"))
        fetch_args.update(dest=dest, flat=True)
        self._task.args = fetch_args
        try:
            result = super(ActionModule, self).run(tmp, task_vars)
        finally:
            self._task.args = args
        if result.get("failed") or result.get("skipped") or not os.path.lexists(dest):
            return result
        try:
            fd = safefile.open_read(dest)
            try:
                if stat.S_IMODE(os.fstat(fd).st_mode) != safefile.FILE_MODE:
                    os.fchmod(fd, safefile.FILE_MODE)
                    result["changed"] = True
            finally:
                os.close(fd)
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        except OSError as exc:
            return dict(result, failed=True, msg="Cannot make %s private: %s." % (dest, exc.strerror or exc))
        return result
