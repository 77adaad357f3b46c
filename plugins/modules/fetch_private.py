#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: fetch_private
short_description: Fetch a file from the host into a private directory on the controller, never through a symbolic link
version_added: 0.1.0
description:
  - M(ansible.builtin.fetch) with C(flat=true) to O(dest), after making sure nothing on the controller is reached
    through a symbolic link. Every directory below O(root) down to O(dest)'s directory is created with mode 0700 when
    missing and must be a real directory owned by the user running Ansible (a link, a file or another user's
    directory there is refused with one sentence). An existing O(dest) must be a regular file of that user.
  - The fetched file is made mode 0600. Like M(ansible.builtin.fetch), a file whose checksum already matches is not
    copied again, so a second run changes nothing.
  - Runs on the controller as an action plugin (the file is read on the host as M(ansible.builtin.fetch) reads it,
    with C(become) where the play uses it).
author:
  - agentops.runbooks developers (@agentops)
options:
  src:
    description: The file on the host.
    type: str
    required: true
  dest:
    description: Absolute path of the file to write on the controller.
    type: path
    required: true
  root:
    description:
      - An absolute directory above O(dest), taken as it is (it may be a symbolic link, for example the reports
        directory an operator chose). Every directory below it is checked and created privately.
      - Defaults to the parent of O(dest)'s directory, so that only O(dest)'s own directory is checked.
    type: path
  fail_on_missing:
    description: Fail when O(src) does not exist on the host (as in M(ansible.builtin.fetch)).
    type: bool
    default: true
  validate_checksum:
    description: Verify that the copy's checksum matches the host's file (as in M(ansible.builtin.fetch)).
    type: bool
    default: true
attributes:
  action:
    support: full
    description: Implemented as an action plugin that runs on the controller.
  check_mode:
    support: partial
    description: Checks the controller's directories and O(dest) without creating anything, then skips the copy
      (M(ansible.builtin.fetch) does not support check mode).
  diff_mode:
    support: none
    description: The file is copied, not diffed.
seealso:
  - module: ansible.builtin.fetch
"""

EXAMPLES = r"""
- name: Fetch the bundle next to the incident report
  agentops.runbooks.fetch_private:
    src: /var/tmp/agentops-bundles/INC-1234.tar.gz
    dest: /srv/incidents/INC-1234/bundles/web-1.tar.gz
    root: /srv/incidents
"""

RETURN = r"""
dest:
  description: Path of the copy on the controller.
  returned: success
  type: str
checksum:
  description: sha1 checksum of the copy.
  returned: success
  type: str
"""
