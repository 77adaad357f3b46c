#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: release_switch
short_description: Point an ansistrano-style C(current) link at another release, atomically
version_added: 0.1.0
description:
  - "Layout: C(<path>/releases/<id>/) holds each release, C(<path>/current) is a symbolic link to the live one and
    C(<path>/shared/) what releases share. The live release is whatever C(current) points to (never a guess from
    modification times)."
  - Switches C(current) to O(release) - a release id, or V(previous) for the release before the live one in id order.
    The new link is created beside C(current) and renamed over it, so C(current) always exists and always points at
    a complete release.
  - Keeps at most O(keep) releases, deleting the oldest; never the live release, the target, or the release that was
    live before the switch.
  - C(current) must be a symbolic link (or missing). A C(current) that is a regular file or a directory is refused
    with one sentence and left as it is, never replaced.
  - With O(state=absent), takes the live release out of service by removing the C(current) link (used when a first
    release fails its health gate and there is no release to go back to).
author:
  - agentops.runbooks developers (@agentops)
options:
  path:
    description: The deploy directory holding C(releases/) and C(current).
    type: path
    required: true
  release:
    description: Release id to switch to, or V(previous) for the one before the live release. Ignored with O(state=absent).
    type: str
    default: previous
  keep:
    description: Releases to keep (0 keeps all; at most 1000).
    type: int
    default: 0
  state:
    description:
      - V(present) points C(current) at O(release).
      - V(absent) removes the C(current) link so that no release is live (C(to_release) is then null).
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports the switch and the releases it would delete without touching anything.
  diff_mode:
    support: full
    description: Shows the link target before and after.
"""

EXAMPLES = r"""
- name: Roll back to the release before the live one
  agentops.runbooks.release_switch:
    path: /srv/agent
  register: switch

- name: Roll forward to a named release, keeping five
  agentops.runbooks.release_switch:
    path: /srv/agent
    release: "20261125T031500Z"
    keep: 5

- name: Take the live release out of service (nothing is live afterwards)
  agentops.runbooks.release_switch:
    path: /srv/agent
    state: absent
"""

RETURN = r"""
from_release:
  description: The release live before (null when there was no C(current) link).
  returned: always
  type: str
to_release:
  description: The release live after (the target; null with O(state=absent)).
  returned: always
  type: str
releases:
  description: Release ids found, in order.
  returned: always
  type: list
  elements: str
removed:
  description: Releases deleted by O(keep) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import binascii
import errno
import os
import re
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

ID = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_KEEP = 1000


class ReleaseError(Exception):
    pass


def releases(path):
    directory = os.path.join(path, "releases")
    if not os.path.isdir(directory):
        raise ReleaseError("%s has no releases directory." % path)
    return sorted(name for name in os.listdir(directory)
                  if ID.match(name) and os.path.isdir(os.path.join(directory, name)) and not name.startswith("."))


def check_current(path):
    """Refuse a current that exists and is not a symbolic link (we never replace a file or a directory)."""
    link = os.path.join(path, "current")
    try:
        mode = os.lstat(link).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    if not stat.S_ISLNK(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a symbolic link"
        raise ReleaseError("%s is %s, not a symbolic link to a release, so it is left as it is; move it aside to let "
                           "release_switch manage it." % (link, kind))


def live(path):
    link = os.path.join(path, "current")
    check_current(path)
    if not os.path.islink(link):
        return None
    target = os.path.normpath(os.path.join(path, os.readlink(link)))
    if os.path.dirname(target) != os.path.normpath(os.path.join(path, "releases")):
        raise ReleaseError("%s points outside %s/releases (%s)." % (link, path, target))
    return os.path.basename(target)


def choose(available, current, wanted):
    if wanted == "previous":
        if current is None:
            raise ReleaseError("There is no live release (no current link), so there is no previous one; name a release.")
        if current not in available:
            raise ReleaseError("The live release %s is not in releases/." % current)
        index = available.index(current)
        if index == 0:
            raise ReleaseError("The live release %s is the oldest; there is nothing to roll back to." % current)
        return available[index - 1]
    if wanted not in available:
        raise ReleaseError("Release %s does not exist; releases: %s." % (wanted, ", ".join(available) or "none"))
    return wanted


def to_remove(available, keep, protected):
    if not keep or len(available) <= keep:
        return []
    excess = len(available) - keep
    return [name for name in available if name not in protected][:excess]


def switch(path, target):
    """Create the new link beside current under a fresh name and rename it over current (atomic on POSIX)."""
    while True:
        tmp = os.path.join(path, ".current.%d.%s" % (os.getpid(), binascii.hexlify(os.urandom(4)).decode("ascii")))
        try:
            os.symlink(os.path.join("releases", target), tmp)  # fails on any existing name, never follows one
            break
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    try:
        check_current(path)  # still a link (or missing) right before the rename
        os.rename(tmp, os.path.join(path, "current"))
    except BaseException:
        os.unlink(tmp)
        raise


def unlink_current(path):
    check_current(path)
    os.unlink(os.path.join(path, "current"))


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), release=dict(type="str", default="previous"),
                           keep=dict(type="int", default=0), state=dict(type="str", default="present", choices=["present", "absent"])),
        supports_check_mode=True,
    )
    path, wanted, keep, state = module.params["path"], module.params["release"], module.params["keep"], module.params["state"]
    try:
        if not path or not os.path.isabs(path):
            raise ReleaseError("path must be the absolute deploy directory, got %r." % path)
        if not 0 <= keep <= MAX_KEEP:
            raise ReleaseError("keep must be between 0 (keep all) and %d, got %d." % (MAX_KEEP, keep))
        if state == "present" and wanted != "previous" and (not ID.match(wanted) or wanted in (".", "..")):
            raise ReleaseError("release %r may only hold letters, digits, '.', '_' and '-'." % wanted)
        available = releases(path)
        current = live(path)
        target = choose(available, current, wanted) if state == "present" else None
    except ReleaseError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot read %s: %s." % (path, exc.strerror or exc))
    removed = to_remove(available, keep, set([target, current])) if state == "present" else []
    changed = target != current or bool(removed)
    if not module.check_mode:
        try:
            if target is None and current is not None:
                unlink_current(path)
            elif target is not None and target != current:
                switch(path, target)
            for name in removed:
                shutil.rmtree(os.path.join(path, "releases", name))
        except ReleaseError as exc:
            module.fail_json(msg=str(exc))
        except OSError as exc:
            action = "switch %s/current to %s" % (path, target) if target else "remove %s/current" % path
            module.fail_json(msg="Cannot %s: %s." % (action, exc.strerror or exc))
    module.exit_json(changed=changed, from_release=current, to_release=target, releases=available, removed=removed,
                     diff={"before": describe(current), "after": describe(target)})


def describe(release):
    return "current -> releases/%s\n" % release if release else "no current link\n"


if __name__ == "__main__":
    main()
