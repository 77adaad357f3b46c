# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Public variable names: which ones the collection defines, and which of the user's look like a typo.

A name "the collection defines" is one that its roles or playbooks mention anywhere (defaults, argument
specs, tasks, registered results): the files are the one source, so a new variable needs no second list.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import glob
import os
import re

from ansible.errors import AnsibleError
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm

PREFIXES = ("agentops_", "process_reaper_", "pg_connections_", "log_collection_", "deploy_rollback_",
            "diagnose_", "incident_report_", "service_restart_")
NAME = re.compile(r"(?<![\w.])((?:%s)\w+)" % "|".join(PREFIXES))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_KNOWN = {}


def known_names(root=ROOT):
    """Every public-looking variable name mentioned in the collection's roles and playbooks."""
    if root not in _KNOWN:
        names = set()
        files = glob.glob(os.path.join(root, "roles", "*", "*", "*.yml")) + glob.glob(os.path.join(root, "playbooks", "*.yml"))
        for path in files:
            with open(path) as handle:
                names.update(NAME.findall(handle.read()))
        _KNOWN[root] = frozenset(names)
    return _KNOWN[root]


# Read once when an action plugin imports this module, in ansible-playbook's main process: every worker forked after
# that (one per host and task) has the names already.
known_names()


def unknown_variables(names, known=None):
    """[{name, suggestion}] for each of ``names`` that has a collection prefix but that the collection does not
    define; ``suggestion`` is the closest known name or None."""
    known = known_names() if known is None else known
    out = []
    for name in sorted(set(names)):
        if not name.startswith(PREFIXES) or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        out.append({"name": name, "suggestion": close[0] if close else None})
    return out


def warning(item):
    """One sentence for an unknown variable."""
    hint = " (did you mean %s?)" % item["suggestion"] if item.get("suggestion") else ""
    return "%s is not a variable of agentops.runbooks%s; it has no effect." % (item["name"], hint)


FLAG_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def flag(value):
    """True or False for a clear boolean (a bool, or the words true/false/yes/no); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return FLAG_WORDS.get(value.strip().lower())
    return None


def problems(value_of, flags, ranges, thresholds, patterns, public, defined):
    """One sentence per variable that is not what it must be.

    ``value_of(name)`` gives a variable's (templated) value; ``public`` maps a role variable to the
    collection-wide name that feeds it, which the sentence names when the user set that one.
    """
    def named(name):
        alias = public.get(name)
        if alias is None:  # diagnose_top_n is fed by agentops_top_n
            prefix = next((p for p in PREFIXES if name.startswith(p)), None)
            alias = "agentops_" + name[len(prefix):] if prefix and prefix != "agentops_" else None
        return alias if alias and alias in defined else name

    out = []
    for name in flags:
        raw = value_of(name)
        if flag(raw) is None:
            out.append("%s must be true or false, got %r; nothing was done." % (named(name), raw))
    for name, bounds in sorted(ranges.items()):
        raw = value_of(name)
        if raw is None:
            continue
        low, high = bounds
        try:
            if isinstance(raw, bool):
                raise ValueError()
            number = float(raw)
        except (TypeError, ValueError):
            out.append("%s must be a number between %s and %s, got %r." % (named(name), low, high, raw))
            continue
        if not low <= number <= high:
            out.append("%s must be between %s and %s, got %s." % (named(name), low, high, raw))
    if thresholds:
        try:
            fm.validate_thresholds(value_of(thresholds) or {})
        except (ValueError, AttributeError) as exc:
            out.append("%s: %s" % (named(thresholds), exc))
    for name in patterns:
        raw = value_of(name)
        items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        for item in items:
            try:
                re.compile(str(item))
            except re.error as exc:
                out.append("%s entry %r is not a valid regular expression: %s." % (named(name), item, exc))
    return out


def unrendered(name, exc):
    """One sentence for a variable whose value Ansible could not render (its first line: no origin block)."""
    first = (str(exc).strip().splitlines() or ["no reason given"])[0].rstrip(".")
    return "%s could not be rendered: %s." % (name, first)


def first_and_more(problems):
    """One message of several problems: the first sentence, then how many more and which."""
    more = " (and %d more: %s)" % (len(problems) - 1, " ".join(problems[1:])) if len(problems) > 1 else ""
    return problems[0] + more


def with_families(task_vars, ranges, patterns):
    """``ranges`` and ``patterns`` (variable names) with the signal families' variables: the ranges their registry
    entries give, as ``diagnose_<suffix>``. Those variables have no role default (the diagnostics action reads
    ``diagnose_<suffix>``, else ``agentops_<suffix>``), so each name becomes whichever of the two the user set."""
    from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
    entries = collectors.role_variables()
    suffixes = set(entry["suffix"] for entry in entries)

    def effective(name):
        if name.startswith("diagnose_") and name[len("diagnose_"):] in suffixes and name not in task_vars:
            return "agentops_" + name[len("diagnose_"):]
        return name
    ranges = dict(ranges or {})
    for entry in entries:
        if entry["range"] is not None:
            ranges.setdefault("diagnose_" + entry["suffix"], list(entry["range"]))
    return dict((effective(name), bounds) for name, bounds in ranges.items()), [effective(name) for name in patterns or []]


def check(task_vars, template, flags=(), ranges=None, thresholds=None, patterns=(), public=None):
    """What an action plugin checks before anything is done: ``(unknown, warnings, problems)`` - the misspelled
    collection variables the task sees, one warning sentence each, and one sentence per variable that is not what it
    must be (see problems). ``template`` renders a variable's raw value."""
    unknown = unknown_variables(task_vars)

    def value_of(name):
        if name not in task_vars:
            return None
        try:
            return template(task_vars[name])
        except AnsibleError as exc:  # an undefined variable inside the value: refused, naming the variable
            raise ValueError(unrendered(name, exc))
    found = problems(value_of, flags or [], ranges or {}, thresholds, patterns or [], public or {}, set(task_vars))
    return unknown, [warning(item) for item in unknown], found
