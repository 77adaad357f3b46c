# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Listening TCP sockets and who owns them, this host's own addresses, and resolv.conf.

* ``listeners(proc)`` reads ``net/tcp`` and ``net/tcp6`` (state ``0A``, LISTEN) and finds the process holding each
  socket inode in ``PID/fd`` (``socket:[inode]``), stopping as soon as every listener has an owner;
* ``listener_for(listeners, host, port)`` answers "ECONNREFUSED 127.0.0.1:5432: does anything listen there now,
  and which process?" from those facts alone (pure: the controller can call it);
* ``local_addresses(proc)`` lists this host's addresses (``net/fib_trie`` LOCAL entries and ``net/if_inet6``);
* ``parse_resolv_conf(text)`` gives nameservers, search domains and ndots.

Everything reads through :class:`procfs.ProcFS` (the one /proc reader's root and file access); the parsing of these
network files lives here because only the endpoints family needs it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket
import struct

from ansible_collections.agentops.runbooks.plugins.module_utils import procfs

LISTEN = "0A"
LISTENERS_MAX = 500  # listeners kept in the facts (a host with more is unusual; the count is kept too)


def parse_net_tcp(text, ipv6=False):
    """The listening sockets of one ``/proc/net/tcp`` (or ``tcp6``) file: [{address, port, inode, uid}]."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        address, _sep, port = fields[1].partition(":")
        try:
            found.append({"address": _address(address, ipv6), "port": int(port, 16), "inode": int(fields[9]),
                          "uid": int(fields[7])})
        except (ValueError, struct.error, OSError):
            continue
    return found


def _address(text, ipv6):
    """The kernel prints each 32-bit word of the address in host byte order."""
    if not ipv6:
        return socket.inet_ntop(socket.AF_INET, struct.pack("=I", int(text, 16)))
    raw = b"".join(struct.pack("=I", int(text[i:i + 8], 16)) for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, raw)


def socket_owners(proc, inodes, counts=None):
    """{inode: [pid, ...]} for the socket ``inodes``, reading ``PID/fd`` links in ascending pid order.

    Stops once every inode has an owner (the first owner found is the lowest pid, usually the parent of a
    pre-fork server). Processes whose descriptors cannot be read are counted in ``counts["unreadable"]``
    (permission) or ``counts["vanished"]`` (exited meanwhile), and skipped."""
    counts = {} if counts is None else counts
    wanted = set(inodes)
    owners = {}
    counts.setdefault("processes", 0)
    for pid in proc.pids():
        if wanted and wanted.issubset(owners):
            break
        directory = proc.path(pid, "fd")
        try:
            names = os.listdir(directory)
        except OSError as exc:
            key = "vanished" if exc.errno in procfs.GONE else "unreadable"
            counts[key] = counts.get(key, 0) + 1
            continue
        counts["processes"] += 1
        for name in names:
            try:
                target = os.readlink(os.path.join(directory, name))
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                try:
                    inode = int(target[8:-1])
                except ValueError:
                    continue
                if inode in wanted and pid not in owners.setdefault(inode, []):
                    owners[inode].append(pid)
    return owners


def _program(proc, pid):
    try:
        return proc.read(pid, "comm").strip() or None
    except OSError:
        return None


def listeners(proc, counts=None):
    """Every listening TCP socket of this network namespace with its owner:
    [{address, port, pid, pids, program, user}] sorted by port then address (``pid`` None when no readable
    process holds it: another PID namespace, or a permission the caller lacks - see ``counts``).

    Raises OSError when neither ``net/tcp`` nor ``net/tcp6`` can be read."""
    sockets = []
    errors = []
    for name, ipv6 in (("tcp", False), ("tcp6", True)):
        try:
            sockets.extend(parse_net_tcp(proc.read("net", name), ipv6))
        except OSError as exc:
            errors.append(exc)
    if len(errors) == 2:
        raise errors[0]
    owners = socket_owners(proc, [s["inode"] for s in sockets if s["inode"]], counts)
    result = []
    seen = set()
    for entry in sorted(sockets, key=lambda s: (s["port"], s["address"])):
        key = (entry["address"], entry["port"], entry["inode"])
        if key in seen:
            continue
        seen.add(key)
        pids = owners.get(entry["inode"]) or []
        result.append({"address": entry["address"], "port": entry["port"], "pid": pids[0] if pids else None,
                       "pids": pids[:10], "program": _program(proc, pids[0]) if pids else None,
                       "user": procfs.username(entry["uid"])})
    return result


def local_addresses(proc):
    """This host's own addresses (as strings) from ``net/fib_trie`` (``/32 host LOCAL``) and ``net/if_inet6``;
    the loopback addresses always. Files that cannot be read add nothing."""
    found = set(("127.0.0.1", "::1"))
    try:
        last = None
        for line in proc.read("net", "fib_trie").splitlines():
            text = line.strip()
            if text.startswith("|-- "):
                last = text[4:].strip()
            elif text.startswith("/32 host LOCAL") and last:
                found.add(last)
    except OSError:
        pass
    try:
        for line in proc.read("net", "if_inet6").splitlines():
            fields = line.split()
            if fields and len(fields[0]) == 32:
                found.add(str(ipaddress.ip_address(bytes(bytearray.fromhex(fields[0])))))
    except (OSError, ValueError):
        pass
    return sorted(found)


def _ip(text):
    """``text`` as an address (IPv4-mapped IPv6 as IPv4), or None when it is not one."""
    try:
        value = ipaddress.ip_address(str(text).strip("[]").split("%", maxsplit=1)[0])
    except ValueError:
        return None
    if value.version == 6 and value.ipv4_mapped is not None:
        return value.ipv4_mapped
    return value


def listener_for(listeners, host, port, local_addresses=None):
    """The listeners that would take a TCP connection to ``host``:``port`` on this host.

    ``listeners`` are the family's facts (``[{address, port, pid, program}]``); ``host`` an address or
    ``localhost``. Returns the matching listeners (``[]``: nothing listens there now), or None when ``host`` is
    not known to be an address of this host (a name, or an address not in ``local_addresses`` and not
    listened on exactly): then the answer is on that host, not here. A wildcard listener (``0.0.0.0``, ``::``)
    takes the host's every address of its family, and ``::`` IPv4 too (Linux's default dual stack)."""
    try:
        port = int(port)
    except (TypeError, ValueError):
        return None
    if str(host).strip("[]").lower() in ("localhost", "localhost.", "ip6-localhost"):
        targets = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    else:
        target = _ip(host)
        if target is None:
            return None
        targets = [target]
    local = set(_ip(a) for a in (local_addresses or ()))
    on_port = [entry for entry in listeners or () if entry.get("port") == port]
    matches = []
    known = False
    for target in targets:
        if target.is_loopback or target in local:
            known = True
        for entry in on_port:
            address = _ip(entry.get("address"))
            if address is None:
                continue
            if address == target:
                known = True
                matches.append(entry)
            elif address.is_unspecified and (address.version == target.version or address.version == 6):
                matches.append(entry)
    if not known:
        return None
    unique = []
    for entry in matches:
        if entry not in unique:
            unique.append(entry)
    return unique


def parse_resolv_conf(text):
    """resolv.conf(5): {nameservers, search, ndots}; ``domain`` counts as the search list when there is none,
    ndots defaults to 1. The last ``search``/``domain`` line wins, as in glibc."""
    nameservers, search, ndots = [], [], 1
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:7]
        elif fields[0] == "options":
            for option in fields[1:]:
                if option.startswith("ndots:"):
                    try:
                        ndots = max(0, min(15, int(option[6:])))
                    except ValueError:
                        pass
    return {"nameservers": nameservers, "search": search, "ndots": ndots}
