# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The signal families and the one table of them (the model is ansible-core's fact collectors).

A family is a class with ``name``, ``title`` (how a report names it), ``enable`` (how to turn it on when it did
not run), ``redacts`` (it returns text that may hold secrets, so it takes the run's ``redaction_key``),
``options`` (an argument spec of its own options) and one method, ``collect(module, params)``, which validates
its options (``ValueError`` with one sentence) and returns ``{"facts", "findings", "incomplete"}``. ``params``
holds its options plus the validated ``thresholds`` and, for families that redact, ``redaction_key``.

``REGISTRY`` is the registry (``FAMILIES``, ``BY_NAME`` and ``NAMES`` are its views): the ``diagnostics`` module,
the per-family wrapper modules (``host_facts``, ``process_facts``, ``pg_connection_facts``, ``log_scan``), the diagnose
role's checks and variables and the report's sections all come from it. A family's module is imported only when the
family runs (or when ``FAMILIES``/``BY_NAME`` are read, on the controller). ``run`` runs the families of one host in
one call, each in its own thread with its own time limit: a family that raises, times out or refuses its input is recorded as failed for that family only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm


# The registry: each family's name and the one function that imports its class. A family's module (and what it
# imports: the log scanner, the probes, the container and Kubernetes readers) is loaded only when that family runs, so
# a host checked for host and process does not import, compile and pay for the others. The imports sit inside the
# functions so that Ansible still ships every family's code with the module (AnsiballZ follows them statically).
def _host():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.host import HostFamily
    return HostFamily()


def _process():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.process import ProcessFamily
    return ProcessFamily()


def _pg():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.pg import PgFamily
    return PgFamily()


def _logs():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.logs import LogsFamily
    return LogsFamily()


def _node():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.node import NodeFamily
    return NodeFamily()


def _spawn():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.spawn import SpawnFamily
    return SpawnFamily()


def _services():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.services import ServicesFamily
    return ServicesFamily()


def _endpoints():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.endpoints import EndpointsFamily
    return EndpointsFamily()


def _k8s():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.k8s import K8sFamily
    return K8sFamily()


def _containers():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.containers import ContainersFamily
    return ContainersFamily()


def _coordination():
    from ansible_collections.agentops.runbooks.plugins.module_utils.collectors.coordination import CoordinationFamily
    return CoordinationFamily()


REGISTRY = (("host", _host), ("process", _process), ("pg", _pg), ("logs", _logs), ("node", _node), ("spawn", _spawn),
            ("services", _services), ("endpoints", _endpoints), ("k8s", _k8s), ("containers", _containers),
            ("coordination", _coordination))
NAMES = tuple(name for name, dummy in REGISTRY)
_LOADERS = dict(REGISTRY)
_LOADED = {}


def family(name):
    """The family called ``name`` (its module imported on first use); KeyError for an unknown name."""
    table = globals().get("BY_NAME")  # every family loaded (on the controller), or a test's own table
    if table is not None:
        return table[name]
    if name not in _LOADED:
        _LOADED[name] = _LOADERS[name]()
    return _LOADED[name]


class Described(object):
    """A family as its metadata describes it (no ``collect``): what the controller needs to know of every family -
    names, titles, variables, ranges - without importing (and, on the controller, compiling) eleven modules."""

    def __init__(self, data):
        self.__dict__.update(data)
        self.enabled_by = tuple(data["enabled_by"]) if data.get("enabled_by") is not None else None
        self.ranges = dict((option, tuple(bounds)) for option, bounds in (data.get("ranges") or {}).items())


_DESCRIBED = {}


def metadata():
    """Every family's metadata, JSON-serializable, in registry order (loads every family)."""
    out = []
    for family in _families():
        out.append({"name": family.name, "title": family.title, "enable": family.enable, "redacts": family.redacts,
                    "options": family.options,
                    "variables": dict((o, list(_entry(v))) for o, v in (getattr(family, "variables", {}) or {}).items()),
                    "secrets": dict((o, list(_entry(v))) for o, v in (getattr(family, "secrets", {}) or {}).items()),
                    "enabled_by": list(family.enabled_by) if getattr(family, "enabled_by", None) is not None else None,
                    "ranges": dict((o, list(b)) for o, b in (getattr(family, "ranges", {}) or {}).items())})
    return out


def use_metadata(items):
    """Describe the families from ``metadata()`` output (kept by the controller between runs) instead of loading them."""
    described = [Described(item) for item in items]
    if tuple(d.name for d in described) == NAMES:
        _DESCRIBED["families"] = tuple(described)


def _families():
    """Every family, in registry order: the loaded ones (or a test's own table), else their kept description, else
    all of them loaded now."""
    if "FAMILIES" in globals():
        return globals()["FAMILIES"]
    if "families" in _DESCRIBED:
        return _DESCRIBED["families"]
    return __getattr__("FAMILIES")


def view(name):
    """The family called ``name`` as far as the controller needs it (its description when kept); KeyError if unknown."""
    if "FAMILIES" not in globals() and "families" in _DESCRIBED:
        for item in _DESCRIBED["families"]:
            if item.name == name:
                return item
        raise KeyError(name)
    return globals()["family"](name)


def __getattr__(attribute):
    """``FAMILIES`` and ``BY_NAME`` (every family, in registry order) are loaded the first time they are read."""
    if attribute in ("FAMILIES", "BY_NAME"):
        families = tuple(family(name) for name in NAMES)
        globals()["FAMILIES"] = families
        globals()["BY_NAME"] = dict((f.name, f) for f in families)
        return globals()[attribute]
    raise AttributeError("module %r has no attribute %r" % (__name__, attribute))


COMMON = dict(thresholds=dict(type="dict", default={}), redaction_key=dict(type="str", no_log=True))


def _entry(value):
    """``(suffix, description)`` of one entry of a family's ``variables`` or ``secrets`` (a bare suffix has no description)."""
    return (value, "") if isinstance(value, str) else tuple(value)


def role_variables():
    """The public variables the families take, in registry order: ``[{suffix, family, option, spec, description, secret,
    range}]``, one per suffix. The diagnose role exposes each as ``diagnose_<suffix>`` defaulting to ``agentops_<suffix>``
    and the option's default; a suffix that two families share (``process_patterns``) must have the same type and default."""
    found = {}
    for family in _families():
        for secret, table in ((False, getattr(family, "variables", {})), (True, getattr(family, "secrets", {}))):
            for option, value in table.items():
                suffix, description = _entry(value)
                spec = family.options[option]
                entry = found.get(suffix)
                if entry is not None:
                    if (entry["spec"].get("type"), entry["spec"].get("default")) != (spec.get("type"), spec.get("default")):
                        raise ValueError("agentops_%s means different things to the %s and %s families" % (suffix, entry["family"], family.name))
                    entry["families"].append(family.name)
                    continue
                found[suffix] = {"suffix": suffix, "family": family.name, "families": [family.name], "option": option, "spec": spec,
                                 "description": description, "secret": secret,
                                 "range": (getattr(family, "ranges", {}) or {}).get(option)}
    return list(found.values())


def default_checks():
    """``(always, conditional)``: the families every diagnosis runs, and ``[(family, [suffixes])]`` of those that run
    when one of their ``agentops_<suffix>`` variables is set."""
    always = [f.name for f in _families() if getattr(f, "enabled_by", None) is None]
    conditional = [(f.name, list(f.enabled_by)) for f in _families() if getattr(f, "enabled_by", None) is not None]
    return always, conditional


def from_variables(checks, value_of):
    """The ``families`` and ``secrets`` arguments of the diagnostics module for ``checks``, from the role's variables:
    ``value_of(suffix)`` returns the value of ``diagnose_<suffix>`` (or ``None`` when unset, so the option keeps its
    default)."""
    options, secrets = {}, {}
    for name in checks:
        try:
            family = view(name)
        except KeyError:
            continue
        for secret, table, into in ((False, getattr(family, "variables", {}), options), (True, getattr(family, "secrets", {}), secrets)):
            for option, value in table.items():
                given = value_of(_entry(value)[0])
                if given is not None:
                    into.setdefault(name, {})[option] = given
    return options, secrets


def wrapper_spec(family):
    """The argument spec of a family's own module: its options, the thresholds and (if it redacts) the run's key."""
    spec = dict(family.options, thresholds=COMMON["thresholds"])
    if family.redacts:
        spec["redaction_key"] = COMMON["redaction_key"]
    return spec


def describe(exc):
    """One sentence for an exception raised inside a family."""
    if isinstance(exc, ValueError):
        return str(exc)
    return "%s: %s" % (exc.__class__.__name__, fm.describe(exc))


def collect_one(family, module, params):
    """Run ``family`` with already typed ``params`` (its options, thresholds, redaction_key); raises ValueError."""
    params = dict(params)
    params["thresholds"] = fm.validate_thresholds(params.get("thresholds") or {})
    return family.collect(module, params)


def check_ranges(family, params, unit=""):
    """ValueError with one sentence for the first option of ``family.ranges`` whose value in ``params`` is missing or
    outside its bounds (``unit``, e.g. "seconds", follows the bounds). The same ranges check the public variables on
    the controller (role_variables), so the module and the role refuse the same values."""
    for option, (low, high) in family.ranges.items():
        value = params.get(option)
        if value is None or not low <= value <= high:
            raise ValueError("%s must be between %s and %s%s, got %s." % (option, low, high, " " + unit if unit else "", value))


def run_wrapper(name):
    """The whole of a family's own module (host_facts, process_facts, pg_connection_facts, log_scan): its arguments
    (wrapper_spec), its family's collect with them, its result or one sentence."""
    from ansible.module_utils.basic import AnsibleModule  # pylint: disable=import-outside-toplevel  # only a module needs it
    wrapped = family(name)
    module = AnsibleModule(argument_spec=wrapper_spec(wrapped), supports_check_mode=True)
    try:
        result = collect_one(wrapped, module, module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


def validated(family, raw):
    """``raw`` options of ``family`` typed and defaulted by its argument spec; ValueError with the first problem."""
    result = ArgumentSpecValidator(family.options).validate(dict(raw or {}))
    for error in result.errors:
        if isinstance(error, UnsupportedError):
            raise ValueError("the %s check does not take %s; it takes %s." % (
                family.name, ", ".join(sorted(set(raw or {}) - set(family.options))), ", ".join(sorted(family.options))))
        raise ValueError("the %s check: %s." % (family.name, str(error.msg).rstrip(".")))
    return result.validated_parameters


def _work(family, module, params, box):
    """Run one family, leaving its result (or its one-sentence error) and its run time in ``box``."""
    began = time.monotonic()
    try:
        box["result"] = family.collect(module, params)
    except Exception as exc:  # pylint: disable=broad-except  # recorded as this family's failure
        box["error"] = describe(exc)
    box["ms"] = int((time.monotonic() - began) * 1000)


def run(module, checks, options, common, timeout):
    """Run the families named in ``checks`` for one host, concurrently, each at most ``timeout`` seconds.

    ``options`` maps a family name to its raw options; ``common`` holds ``thresholds`` and ``redaction_key``.
    Returns ``{name: {status, facts, findings, incomplete, ms[, error]}}``: ``ok`` or ``partial`` (something
    could not be read), or ``failed`` with one sentence (bad input, an exception, or the time limit). A family
    that times out is left running in a daemon thread and its result ignored; the module exits regardless.
    """
    results = {}
    threads = []
    try:
        thresholds = fm.validate_thresholds(common.get("thresholds") or {})
    except ValueError as exc:
        return dict((name, {"status": "failed", "error": str(exc), "ms": 0}) for name in checks)

    for name in checks:
        family = globals()["family"](name)
        try:
            params = validated(family, options.get(name))
        except ValueError as exc:
            results[name] = {"status": "failed", "error": str(exc), "ms": 0}
            continue
        params["thresholds"] = thresholds
        if family.redacts:
            params["redaction_key"] = common.get("redaction_key")
        box = {}
        thread = threading.Thread(target=_work, args=(family, module, params, box), name="agentops-%s" % name)
        thread.daemon = True
        thread.start()
        threads.append((name, thread, box))

    deadline = time.monotonic() + timeout
    for name, thread, box in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            results[name] = {"status": "failed", "error": "timed out after %s s (agentops_check_timeout)" % timeout,
                             "ms": int(timeout * 1000)}
        elif "error" in box:
            results[name] = {"status": "failed", "error": box["error"], "ms": box["ms"]}
        else:
            result = box["result"]
            results[name] = {"status": "partial" if result.get("incomplete") else "ok", "facts": result.get("facts") or {},
                             "findings": result.get("findings") or [], "incomplete": result.get("incomplete") or [],
                             "ms": box["ms"]}
    return results
