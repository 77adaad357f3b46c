# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a running Node.js process is, read from the host: the pure parts of the node family.

- the version of the binary a process runs, from ``/proc/PID/exe`` run with ``--version`` (``run_version``): the
  binary is opened through that link (so a binary deleted or replaced on disk, or one inside a container's mount
  namespace, is still the one that runs) and executed from the open descriptor, never as root (as ``nobody`` when
  the diagnosis is root), with an empty environment and a time limit;
- the Node options a process was started with: its command line up to the script, then ``NODE_OPTIONS``
  (``node_options``, ``flag_set``), from which the global ``fetch`` / ``WebSocket`` (``features``) and the heap limit;
- V8's default heap limit for a version and the memory it sizes from (``default_heap_mb``), and whether that Node
  reads the memory cgroup's limit at all (``reads_cgroup_limit``);
- ``/proc/PID/status`` lines the family needs (``parse_status``): ``NSpid`` (PID 1 of its namespace) and the
  signal masks (``signal_in_mask``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import sys

# Names of a Node.js binary (the basename of /proc/PID/exe): node, nodejs, node20, node-22, nodejs18.
NODE_BINARY = re.compile(r"^node(?:js)?(?:[-_.]?v?\d+(?:\.\d+)*)?$")
VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\S*$")
DELETED = " (deleted)"
NOBODY = 65534
VERSION_OUTPUT_MAX = 200

# Node options that take the next argument as their value (so that value is not the script).
VALUED = frozenset(("-e", "--eval", "-p", "--print", "-r", "--require", "--import", "--loader", "--experimental-loader",
                    "-C", "--conditions", "--input-type", "--title", "--env-file", "--max-old-space-size",
                    "--stack-size", "--inspect-port", "--debug-port", "--icu-data-dir", "--openssl-config",
                    "--redirect-warnings", "--diagnostic-dir", "--report-dir", "--report-directory", "--secure-heap",
                    "--tls-cipher-list", "--unhandled-rejections", "--dns-result-order", "--heapsnapshot-signal",
                    "--experimental-policy", "--policy-integrity", "--watch-path"))

SIGTERM = 15
SIGCHLD = 17


def binary_name(exe):
    """The basename of an exe link's target without the kernel's ``" (deleted)"`` suffix."""
    path = exe[:-len(DELETED)] if exe.endswith(DELETED) else exe
    return os.path.basename(path)


def is_node_binary(exe):
    return bool(NODE_BINARY.match(binary_name(exe)))


def parse_version(text):
    """``(major, minor, patch)`` from ``node --version`` output (``v20.20.2``); ValueError otherwise."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    match = VERSION.match(line)
    if not match:
        raise ValueError("not a Node.js version: %r" % line[:60])
    return tuple(int(part) for part in match.groups())


def version_string(version):
    return "v%d.%d.%d" % tuple(version)


# ------------------------------------------------------------------ options
def node_options(argv):
    """The options given to node on its command line: ``argv[1:]`` up to the script (or ``--``), values included.
    An argv rewritten by ``process.title`` (one string with spaces) has no options."""
    options = []
    pending = False
    for arg in argv[1:]:
        if pending:
            options.append(arg)
            pending = False
            continue
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            break  # the script (or stdin); what follows are the script's own arguments
        options.append(arg)
        if "=" not in arg and arg in VALUED:
            pending = True
    return options


def env_options(node_options_value):
    """``NODE_OPTIONS`` split into options (Node splits it on spaces; quotes are kept simple here)."""
    return [part.strip("\"'") for part in (node_options_value or "").split()]


def _canonical(flag):
    """``--no_experimental_fetch`` -> ``--no-experimental-fetch`` (Node accepts ``_`` for ``-`` in option names)."""
    name, sep, value = flag.partition("=")
    return "--" + name.lstrip("-").replace("_", "-") + sep + value if name.startswith("--") else flag


def flag_set(argv, node_options_value):
    """The boolean flags in force: NODE_OPTIONS first, then the command line (which wins: Node applies it last)."""
    flags = {}
    for source, options in (("NODE_OPTIONS", env_options(node_options_value)), ("command line", node_options(argv))):
        for option in options:
            option = _canonical(option)
            if option.startswith("--no-"):
                flags[option[5:]] = (False, source)
            elif option.startswith("--") and "=" not in option:
                flags[option[2:]] = (True, source)
    return flags


def features(version, flags):
    """{fetch, websocket}: each ``{"available": bool, "why": sentence}`` for a Node ``version`` and its ``flags``.

    Global fetch is on by default from 18.0.0 and behind ``--experimental-fetch`` in 16.15+/17.5+; global WebSocket
    is on by default from 22.0.0 and behind ``--experimental-websocket`` in 20.10+/21; each is turned off by its
    ``--no-experimental-*`` flag."""
    out = {}
    for name, flag, default_from, flagged_from in (("fetch", "experimental-fetch", (18, 0, 0), ((16, 15, 0), (17, 5, 0))),
                                                   ("websocket", "experimental-websocket", (22, 0, 0), ((20, 10, 0), (21, 0, 0)))):
        value = flags.get(flag)
        label = "v%d.%d.%d" % tuple(version)
        if version >= default_from:
            if value is not None and value[0] is False:
                out[name] = {"available": False, "why": "turned off by --no-%s (%s)" % (flag, value[1])}
            else:
                out[name] = {"available": True, "why": "on by default from Node %d" % default_from[0]}
        elif value is not None and value[0] and any(version >= low and version[0] == low[0] for low in flagged_from):
            out[name] = {"available": True, "why": "turned on by --%s (%s)" % (flag, value[1])}
        else:
            out[name] = {"available": False, "why": "Node %s is older than %d.0.0, where it is on by default" % (label, default_from[0])}
    return out


# ------------------------------------------------------------------ heap
def heap_flag_mb(argv, node_options_value, heap_limit_mb):
    """(megabytes, source) of ``--max-old-space-size`` (command line first, then NODE_OPTIONS), or (None, None).
    ``heap_limit_mb`` is procfs.node_heap_limit_mb (the one parser of that flag), given only the options."""
    value = heap_limit_mb(node_options(argv), {})
    if value:
        return value, "--max-old-space-size on the command line"
    value = heap_limit_mb([], {"NODE_OPTIONS": node_options_value or ""})
    if value:
        return value, "--max-old-space-size in NODE_OPTIONS"
    return None, None


def reads_cgroup_limit(version, cgroup_version, in_container):
    """Whether this Node sizes its default heap from the memory cgroup's limit (else from the host's memory).

    Before 12 the default is fixed. From 12 Node asks libuv for the constrained memory; libuv before 1.45 (Node before
    20.3.0) reads only cgroup v1, and only the memory controller's root, which is the container's own cgroup inside a
    container and the host's (no limit) for a systemd unit; libuv 1.45 (Node 20.3.0) reads the process's own cgroup,
    v1 or v2."""
    if version < (12, 0, 0):
        return False
    if version >= (20, 3, 0):
        return True
    return cgroup_version == 1 and bool(in_container)


def default_heap_mb(version, memory_mb):
    """V8's default old-space limit (MB) for a 64-bit Node ``version`` sizing from ``memory_mb``.

    Before Node 12: V8's fixed 1400 MB. From 12 (measured with Node 16.20.2 and 20.20.2, heap_size_limit less the
    young generation, under memory cgroups of 128 MB to 20 GB): half the memory, at least 256 MB, at most 2048 MB
    below 16 GB and 4096 MB from 16 GB (Node 12 and 13: at most 2048 MB)."""
    if version < (12, 0, 0) or not memory_mb:
        return 1400
    if memory_mb >= 16384 and version >= (14, 0, 0):
        return 4096
    return int(min(2048, max(256, memory_mb // 2)))


# ------------------------------------------------------------------ status
def parse_status(text):
    """The ``/proc/PID/status`` fields the family reads: ``nspid`` (list of ints), ``sigcgt``, ``sigign``, ``sigblk`` (ints)."""
    out = {"nspid": [], "sigcgt": 0, "sigign": 0, "sigblk": 0}
    for line in text.splitlines():
        key, _sep, value = line.partition(":")
        key = key.strip()
        if key == "NSpid":
            out["nspid"] = [int(part) for part in value.split() if part.isdigit()]
        elif key in ("SigCgt", "SigIgn", "SigBlk"):
            out[key.lower()] = int(value.strip() or "0", 16)
    return out


def signal_in_mask(mask, signal):
    return bool(mask >> (signal - 1) & 1)


def sigterm_handling(status, node):
    """How PID 1 answers SIGTERM, as far as the signal masks tell: ``ignored``, ``default`` (no handler: PID 1 of a
    namespace drops it) or ``caught``. For Node, ``caught`` says nothing about the code: Node always installs its own
    SIGTERM handler, which re-raises the signal with the default action (dropped by PID 1) unless the code listens."""
    if signal_in_mask(status["sigign"], SIGTERM):
        return "ignored"
    if signal_in_mask(status["sigcgt"], SIGTERM):
        return "caught by Node's own handler (a listener in the code cannot be seen from /proc)" if node else "caught"
    return "default"


# ------------------------------------------------------------------ running --version
def _drop_privileges():
    """subprocess.Popen keyword arguments that run the child as nobody when we are root (Python 3.9+)."""
    if os.geteuid() != 0 or sys.version_info < (3, 9):
        return {}, "uid %d" % os.geteuid()
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}, "nobody"


def run_version(path, timeout, cache=None):
    """Run the binary at ``path`` (``/proc/PID/exe`` or a file) with ``--version``, once per binary (``cache`` is keyed
    by the binary's device and inode): ``{"version", "output", "ran_as"}`` or ``{"error", "ran_as"}``. Raises OSError
    when the binary cannot be opened (the process exited, or the link is not ours to read)."""
    cache = {} if cache is None else cache
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        if key not in cache:
            cache[key] = _version_of(fd, timeout)
        return dict(cache[key], binary="%d:%d" % key)
    finally:
        os.close(fd)


def _version_of(fd, timeout):
    privileges, ran_as = _drop_privileges()
    try:
        run = subprocess.run(["/proc/self/fd/%d" % fd, "--version"], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd="/",
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, check=False, **privileges)
    except subprocess.TimeoutExpired:
        return {"error": "--version did not answer within %s s" % timeout, "ran_as": ran_as}
    except (OSError, subprocess.SubprocessError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {"error": "--version could not run as %s: %s" % (ran_as, reason), "ran_as": ran_as}
    output = run.stdout.decode("utf-8", "replace")[:VERSION_OUTPUT_MAX].strip()
    if run.returncode != 0:
        lines = (run.stderr.decode("utf-8", "replace")[:VERSION_OUTPUT_MAX].strip() or output).splitlines()
        return {"error": "--version exited %d as %s%s" % (run.returncode, ran_as, ": " + lines[0] if lines else ""), "ran_as": ran_as}
    try:
        version = parse_version(output)
    except ValueError as exc:
        return {"error": str(exc), "ran_as": ran_as}
    return {"version": version, "output": output, "ran_as": ran_as}
