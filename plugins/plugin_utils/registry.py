# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The signal families' metadata on the controller, kept between runs.

The controller needs every family's name, title, variables and ranges (to check variables, to pass options, to say
what was not checked), not their code. Importing all eleven family modules costs ~130 ms on the controller in every
run, because Ansible's collection loader compiles module_utils from source each time. ``prime`` loads the families
once, keeps ``collectors.metadata()`` as JSON under ``<ANSIBLE_HOME>/agentops/registry/<key>.json`` (the same key as
the kept payload: any changed module_util is another key), and later runs describe the families from that file.
A test that adds a family to the registry (``collectors.FAMILIES``) is always seen as it is: the file is not read then.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.plugin_utils import payload_cache


def prime(ansible_home, ansible_version):
    """Describe the families from the kept metadata, or load them and keep it; never raises (the families load)."""
    if "FAMILIES" in vars(collectors) or not payload_cache.enabled():
        return "loaded"
    try:
        store = payload_cache._private_dir(os.path.join(ansible_home, "agentops", "registry"))  # pylint: disable=protected-access
        path = os.path.join(store, payload_cache.key(ansible_version, "registry") + ".json")
        if os.path.exists(path) and not os.path.islink(path):
            with open(path) as handle:
                collectors.use_metadata(json.load(handle))
            return "kept"
        data = json.dumps(collectors.metadata(), sort_keys=True)
        temporary = "%s.%d.tmp" % (path, os.getpid())
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
        os.rename(temporary, path)
        return "written"
    except (OSError, ValueError, TypeError) as exc:
        return "not kept: %s" % exc


def prime_here():
    """``prime`` with this controller's ANSIBLE_HOME and ansible-core version."""
    from ansible import constants as C
    from ansible.module_utils.ansible_release import __version__
    return prime(os.path.expanduser(getattr(C, "ANSIBLE_HOME", None) or "~/.ansible"), __version__)
