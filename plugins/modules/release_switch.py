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
author:
  - agentops.runbooks developers (@agentops)
options:
  path:
    description: The deploy directory holding C(releases/) and C(current).
    type: path
    required: true
  release:
    description: Release id to switch to, or V(previous) for the one before the live release.
    type: str
    default: previous
  keep:
    description: Releases to keep (0 keeps all).
    type: int
    default: 0
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
"""

RETURN = r"""
from_release:
  description: The release live before.
  returned: always
  type: str
to_release:
  description: The release live after (the target).
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

import os
import re
import shutil

from ansible.module_utils.basic import AnsibleModule

ID = re.compile(r"^[A-Za-z0-9._-]+$")


class ReleaseError(Exception):
    pass


def releases(path):
    directory = os.path.join(path, "releases")
    if not os.path.isdir(directory):
        raise ReleaseError("%s has no releases directory." % path)
    return sorted(name for name in os.listdir(directory)
                  if ID.match(name) and os.path.isdir(os.path.join(directory, name)) and not name.startswith("."))


def live(path):
    link = os.path.join(path, "current")
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
    """Create the new link beside current and rename it over current (atomic on POSIX)."""
    tmp = os.path.join(path, ".current.%d" % os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", target), tmp)
    os.rename(tmp, os.path.join(path, "current"))


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), release=dict(type="str", default="previous"),
                           keep=dict(type="int", default=0)),
        supports_check_mode=True,
    )
    path, wanted, keep = module.params["path"], module.params["release"], module.params["keep"]
    try:
        if keep < 0:
            raise ReleaseError("keep must be 0 (keep all) or more, got %d." % keep)
        if wanted != "previous" and not ID.match(wanted):
            raise ReleaseError("release %r may only hold letters, digits, '.', '_' and '-'." % wanted)
        available = releases(path)
        current = live(path)
        target = choose(available, current, wanted)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot read %s: %s." % (path, exc.strerror or exc))
    removed = to_remove(available, keep, set([target, current]))
    changed = target != current or bool(removed)
    if not module.check_mode:
        try:
            if target != current:
                switch(path, target)
            for name in removed:
                shutil.rmtree(os.path.join(path, "releases", name))
        except OSError as exc:
            module.fail_json(msg="Cannot switch %s/current to %s: %s." % (path, target, exc.strerror or exc))
    module.exit_json(changed=changed, from_release=current, to_release=target, releases=available, removed=removed,
                     diff={"before": "current -> releases/%s\n" % current, "after": "current -> releases/%s\n" % target})


if __name__ == "__main__":
    main()
