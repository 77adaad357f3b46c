# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure parsers of the services family: ``systemctl show`` blocks, ``journalctl -o short-unix`` lines, ``pm2 jlist``,
pm2's own log (``pm2.log``), ``docker``/``podman inspect``, the bounded tail of a log file and the last error in it.

No I/O here except :func:`tail_lines` (a bounded read from the end of one regular file); the collector runs the
commands and hands their output to these functions, so tests can feed recorded output.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import os
import re
import stat
import time

from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import PORT_SERVICES

# What ``systemctl show -p`` asks for (NRestarts needs systemd 235 or later; older ones simply omit it).
SYSTEMD_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "Result", "NRestarts", "Restart", "RestartUSec",
                      "ExecMainStatus", "ExecMainCode", "ExecMainPID", "MainPID", "ExecMainStartTimestamp",
                      "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic", "ActiveEnterTimestamp",
                      "ActiveEnterTimestampMonotonic")
# A unit name as systemd spells it (letters, digits, ":-_.\@"); never an option.
UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$")
UNIT_SUFFIXES = (".service", ".socket", ".target", ".scope", ".timer", ".mount", ".path", ".slice", ".device", ".swap")
RESTART_SCHEDULED = "Scheduled restart job"

ERRORISH = re.compile(r"(?:\berror\b|(?-i:\bE[A-Z]{3,}\b)|\bfatal\b|\bFATAL\b|exception|\bpanic\b|Traceback|failed|"
                      r"Unhandled|refused|denied|cannot|can't|unable)", re.I)
STACK_FRAME = re.compile(r"^\s*at\s")
ECONNREFUSED = re.compile(r"ECONNREFUSED\s+\[?(?P<host>[0-9A-Za-z_.:-]*)\]?:(?P<port>\d{1,5})\b")
PM2_EXIT = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(?P<zone>Z|[+-]\d{2}:?\d{2})?: PM2 log: "
                      r"App \[(?P<name>.*):(?P<id>\d+)\] exited with code \[(?P<code>[^\]]*)\]")
TIMESPAN_UNIT = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0,
                 "h": 3600.0, "hr": 3600.0, "d": 86400.0}


def unit_name(name):
    """A unit name as systemctl knows it (``agent`` -> ``agent.service``); ValueError for what is not one."""
    name = str(name or "").strip()
    if not name or not UNIT_NAME.match(name):
        raise ValueError("services entry %r is not a systemd unit name." % name)
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


def service_units(entries):
    """The unit names of the ``services`` option: plain names, or the remediation roles' entries
    ``{pattern, unit, command}`` (agentops_services), whose ``unit`` is taken; entries with only a command have none."""
    units = []
    for entry in entries or []:
        if isinstance(entry, dict):
            if not entry.get("unit") and not entry.get("command"):
                raise ValueError("services entry %r needs a unit or a command." % (entry.get("pattern") or entry,))
            if not entry.get("unit"):
                continue
            name = unit_name(entry["unit"])
        elif isinstance(entry, str):
            name = unit_name(entry)
        else:
            raise ValueError("services entries must be unit names or {pattern, unit, command} mappings, got %r." % (entry,))
        if name not in units:
            units.append(name)
    return units


# ------------------------------------------------------------------ systemd
def systemctl_show(text, units):
    """``systemctl show`` output for ``units`` (blocks separated by blank lines, in the order asked) as {unit: props}."""
    blocks = []
    current = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    out = {}
    if len(blocks) == len(units):
        for unit, block in zip(units, blocks):
            out[unit] = block
        return out
    for block in blocks:  # a unit systemctl skipped: match the rest by Id
        if block.get("Id") in units:
            out[block["Id"]] = block
    return out


def timespan(text):
    """Seconds of a systemd time span (``100ms``, ``1min 30s``, ``5s``, ``infinity``), or None."""
    text = (text or "").strip()
    if not text or text == "infinity":
        return None
    if text.isdigit():
        return int(text) / 1e6  # RestartUSec in microseconds (systemctl show --value on some versions)
    total = 0.0
    found = False
    for number, unit in re.findall(r"([\d.]+)\s*([a-z]+)", text):
        if unit not in TIMESPAN_UNIT:
            return None
        total += float(number) * TIMESPAN_UNIT[unit]
        found = True
    return total if found else None


def _int(value, default=0):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def unit_state(unit, props):
    """The facts of one unit from its ``systemctl show`` properties."""
    start = _int(props.get("ExecMainStartTimestampMonotonic"))
    exit_ = _int(props.get("ExecMainExitTimestampMonotonic"))
    run = round((exit_ - start) / 1e6, 3) if start and exit_ > start else None
    sub = props.get("SubState", "")
    result = props.get("Result", "")
    restarts = _int(props.get("NRestarts"), None) if "NRestarts" in props else None
    return {
        "unit": unit, "load_state": props.get("LoadState"), "active_state": props.get("ActiveState"), "sub_state": sub,
        "result": result, "restarts": restarts, "restart": props.get("Restart"),
        "restart_delay_seconds": timespan(props.get("RestartUSec")), "exit_status": _int(props.get("ExecMainStatus"), None),
        "main_pid": _int(props.get("MainPID"), None), "started": props.get("ExecMainStartTimestamp") or None,
        "last_run_seconds": run,
        # A unit waiting to be started again, or whose last run failed while systemd restarted it, is crash-looping.
        "looping": sub in ("auto-restart", "auto-restart-queued") or bool(restarts and result not in ("", "success")),
    }


def cycle_estimate(state):
    """Restarts in 10 minutes estimated from one cycle (last run time plus the restart delay), at most the unit's
    restart counter; None when the unit is not looping or the cycle is unknown."""
    if not state["looping"] or not state["restarts"]:
        return None
    cycle = (state["last_run_seconds"] or 0.0) + (state["restart_delay_seconds"] or 0.0)
    if cycle <= 0:
        return None
    return min(state["restarts"], int(600 / max(cycle, 0.1)))


def journal_lines(text):
    """``journalctl -o short-unix`` output as [(epoch seconds, identifier, message)] (``-- No entries --`` skipped)."""
    out = []
    for line in text.splitlines():
        stamp, _sep, rest = line.partition(" ")
        try:
            when = float(stamp)
        except ValueError:
            continue
        _host, _sep, rest = rest.partition(" ")
        ident, sep, message = rest.partition(": ")
        out.append((when, ident if sep else "", message if sep else rest))
    return out


# ------------------------------------------------------------------ pm2
def pm2_jlist(text):
    """``pm2 jlist`` output as a list of apps (the JSON list, even after a warning line pm2 may print first)."""
    text = text.strip()
    found = re.search(r"^\[\s*(?:\{|\]|$)", text, re.M)
    if not found:
        raise ValueError("pm2 jlist printed no JSON list")
    start = found.start()
    try:
        data = json.loads(text[start:])
    except ValueError:
        data = json.loads(text[start:text.rfind("]") + 1])
    if not isinstance(data, list):
        raise ValueError("pm2 jlist printed %s, not a list" % type(data).__name__)
    return data


def pm2_app(item, now):
    """The facts of one pm2 app (never its environment, which pm2 jlist also prints)."""
    env = item.get("pm2_env") or {}
    created = env.get("created_at")
    started = env.get("pm_uptime")
    created = created / 1000.0 if isinstance(created, (int, float)) and created > 0 else None
    started = started / 1000.0 if isinstance(started, (int, float)) and started > 0 else None
    return {
        "name": str(item.get("name") or env.get("name") or "?"), "pm_id": item.get("pm_id", env.get("pm_id")),
        "pid": item.get("pid") or None, "status": env.get("status"), "restarts": _int(env.get("restart_time")),
        "unstable_restarts": _int(env.get("unstable_restarts")), "exit_code": env.get("exit_code"),
        "created": iso(created), "created_epoch": created, "uptime_seconds": round(now - started, 1) if started and env.get("status") == "online" else None,
        "started_epoch": started,
        "err_log": env.get("pm_err_log_path") if isinstance(env.get("pm_err_log_path"), str) else None,
        "script": env.get("pm_exec_path") if isinstance(env.get("pm_exec_path"), str) else None,
    }


def pm2_exits(lines, now=None, window=600):
    """Exits per app from pm2's own log lines: {(name, id): [epoch seconds]} (of the last ``window`` s when ``now``)."""
    exits = {}
    for line in lines:
        match = PM2_EXIT.match(line)
        if not match:
            continue
        when = _log_time(match.group("stamp"), match.group("zone"))
        if when is None or (now is not None and when < now - window):
            continue
        exits.setdefault((match.group("name"), match.group("id")), []).append(when)
    return exits


def _log_time(stamp, zone):
    """pm2 writes its log in the daemon's local time (``2026-11-27T06:37:06``), with a zone only when configured."""
    try:
        parsed = time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    if not zone:
        return time.mktime(parsed)
    seconds = calendar.timegm(parsed)
    if zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        seconds += sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
    return seconds


# ------------------------------------------------------------------ containers
def container_state(item, now):
    """The facts of one container from ``docker inspect`` / ``podman inspect`` (the same shape for these fields)."""
    state = item.get("State") or {}
    policy = ((item.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    created = parse_iso(item.get("Created"))
    started = parse_iso(state.get("StartedAt"))
    finished = parse_iso(state.get("FinishedAt"))
    name = str(item.get("Name") or item.get("Id", "?")[:12]).lstrip("/")
    return {
        "name": name, "id": str(item.get("Id", ""))[:12], "status": state.get("Status"), "restarts": _int(item.get("RestartCount")),
        "exit_code": state.get("ExitCode"), "oom_killed": bool(state.get("OOMKilled")), "restart_policy": policy,
        "created": iso(created), "created_epoch": created,
        "last_run_seconds": round(finished - started, 3) if started and finished and finished > started else None,
        "uptime_seconds": round(now - started, 1) if started and state.get("Status") == "running" else None,
        "error": state.get("Error") or None,
    }


ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?")


def parse_iso(text):
    """Epoch seconds of an RFC 3339 time with nanoseconds (``2026-11-27T06:37:05.123456789Z``); None for zero times."""
    match = ISO.match(str(text or ""))
    if not match or match.group(1) == "0001":
        return None
    seconds = calendar.timegm(tuple(int(match.group(i)) for i in range(1, 7)) + (0, 0, 0))
    if match.group(7):
        seconds += float("0." + match.group(7)[:6])
    zone = match.group(8)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        seconds += sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


# ------------------------------------------------------------------ last error
def tail_lines(path, max_bytes=65536, lines=20):
    """The last ``lines`` non-empty lines of a regular file, reading at most ``max_bytes`` from its end (never the
    whole file, never a FIFO or device). Raises OSError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file", path)
        offset = max(0, info.st_size - max_bytes)
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        left = info.st_size - offset
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    text = b"".join(chunks).decode("utf-8", "replace")
    found = text.splitlines()
    if offset and found:
        found = found[1:]  # the first line was cut by the bounded read
    return [line.rstrip() for line in found if line.strip()][-lines:]


def last_error(lines):
    """The last line that reads like an error (else the last line), or None."""
    for line in reversed(lines):
        if ERRORISH.search(line) and RESTART_SCHEDULED not in line and not STACK_FRAME.match(line):
            return line.strip()
    return lines[-1].strip() if lines else None


def dependency(line):
    """From ``ECONNREFUSED host:port`` in a line: {host, port, service, text} of the dependency it likely is, or None."""
    match = ECONNREFUSED.search(line or "")
    if not match:
        return None
    port = match.group("port")
    service = PORT_SERVICES.get(port)
    address = "%s:%s" % (match.group("host") or "localhost", port)
    what = service or "the service on port %s" % port
    return {"host": match.group("host") or "localhost", "port": int(port), "service": service,
            "text": "%s at %s refused the connection: it is likely down or not listening there" % (what, address)}
