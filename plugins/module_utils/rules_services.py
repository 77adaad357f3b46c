# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the services family: one part of the rules catalog (merged into ``rules.RULES``, same format)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("services", "Services and crash loops")

# Read-only looks at a service, most specific first: pm2 (its describe and error log), then the error log alone, a
# systemd unit (its journal, then its restart counters), a container (its last output and state), then any host.
_LOOK = [
    "PM2_HOME={pm2_home} {pm2} describe {name}; PM2_HOME={pm2_home} {pm2} logs {name} --err --lines 30 --nostream",
    "tail -n 30 {err_log}",
    "journalctl -u {unit} -n 50 --no-pager; systemctl show -p NRestarts,ActiveState,SubState,Result,ExecMainStatus {unit}",
    "{runtime} logs --tail 50 {container}; {runtime} inspect {container}",
    "ps -eo pid,ppid,etimes,args --sort=etimes | head -n 20",
]

RULES = {
    "services.crash_loop": {
        "category": "services",
        "title": "A service is crash-looping under its supervisor",
        "symptom": "{service} ({supervisor}) restarted {rate}; now {status}. Last error: {last_error}",
        "diagnosis": (
            "The process exits soon after each start and its supervisor keeps starting it again, so the service is "
            "down most of the time and every restart drops its connections and in-flight requests.{dependency_note} "
            "A crash loop is a symptom: the cause is in the last error (a dependency that refuses connections, a "
            "missing setting or file, a bad release), not in the supervisor. Restarting it again changes nothing."
        ),
        "fix": {
            "summary": ("Read the service's last errors and fix what they name (start the dependency, restore the setting, "
                        "roll back the release); stop the loop while you do so if each start does harm."),
            "command": _LOOK,
            "playbook": "agentops.runbooks.rollback",
        },
        # Restarts in the last 10 minutes (pm2's own log or counters, the unit's journal or timing, container counts).
        "thresholds": {"medium": 3, "high": 5, "critical": 15},
    },
    "services.down": {
        "category": "services",
        "title": "A supervised service is down and not being restarted",
        "symptom": "{service} ({supervisor}) is {status}: {why}; it restarted {rate}. Last error: {last_error}",
        "diagnosis": (
            "The supervisor gave up on the service (pm2 status errored after too many unstable restarts, a systemd "
            "unit failed or hit its start limit, a container exited despite its restart policy) or is waiting to "
            "start it again: nothing serves its requests now.{dependency_note}"
        ),
        "fix": {
            "summary": "Fix the cause its last errors name, then start it again through its supervisor.",
            "command": _LOOK,
            "playbook": None,
        },
        "thresholds": {},
    },
    "services.unknown_unit": {
        "category": "services",
        "title": "A unit named in agentops_services does not exist",
        "symptom": "systemd knows no unit {unit}.",
        "diagnosis": (
            "agentops_services names a unit that is not installed on this host (a typo, a renamed service, or the "
            "wrong host group), so its restarts were not checked and a restart playbook would fail."
        ),
        "fix": {
            "summary": "Correct the unit name in agentops_services from the units this host has.",
            "command": "systemctl list-unit-files --type=service --no-pager",
            "playbook": None,
        },
        "thresholds": {},
    },
    "services.check_incomplete": {
        "category": "services",
        "title": "A supervisor could not be read",
        "symptom": "Could not read {what}: {error}",
        "diagnosis": (
            "The restarts of the services behind it are unknown, not zero: a crash loop there would not show in "
            "this report. Usual causes: a client that runs as another user, a daemon that did not answer in time, "
            "or a pm2 installed where the diagnosis does not look (set agentops_pm2)."
        ),
        "fix": {
            "summary": "Run the diagnosis with become, or point agentops_pm2 at the pm2 command; check the client by hand.",
            "command": "ansible-playbook agentops.runbooks.diagnose --become",
            "playbook": "agentops.runbooks.diagnose",
        },
        "thresholds": {},
    },
}
