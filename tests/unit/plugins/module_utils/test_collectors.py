"""The registry of signal families and the one-call runner (module_utils/collectors)."""
import os
import re
import sys
import time

import pytest
import yaml

from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident

from helpers import REPO


class Family(object):
    """A family written the way docs/Development.md says: name, title, enable, redacts, options, collect."""

    def __init__(self, name, behaviour="ok"):
        self.name, self.title, self.enable, self.redacts = name, "the %s family" % name, "set agentops_%s_url" % name, True
        self.options = dict(url=dict(type="str"), depth=dict(type="int", default=3))
        self.variables = dict(url=("%s_url" % name, "Where the %s is." % name), depth="%s_depth" % name)
        self.secrets, self.enabled_by, self.ranges = {}, ("%s_url" % name,), dict(depth=(0, 10))
        self.behaviour = behaviour

    def collect(self, module, params):
        if params["depth"] < 0:
            raise ValueError("depth must be at least 0, got %d." % params["depth"])
        if self.behaviour == "raise":
            raise KeyError("boom")
        if self.behaviour == "hang":
            time.sleep(30)
        return {"facts": {"url": params["url"], "key": bool(params["redaction_key"])},
                "findings": [fm.make("host.disk_space", "high", {"mount_point": "/"})], "incomplete": []}


@pytest.fixture
def registry(monkeypatch):
    """Add families to the registry the one way a new family is added: one entry in FAMILIES."""
    def add(*families):
        table = collectors.FAMILIES + tuple(families)
        monkeypatch.setattr(collectors, "FAMILIES", table)
        monkeypatch.setattr(collectors, "BY_NAME", dict((f.name, f) for f in table))
        monkeypatch.setattr(collectors, "NAMES", tuple(f.name for f in table))
    return add


def test_every_family_has_the_one_interface():
    assert collectors.NAMES == ("host", "process", "pg", "logs", "node", "spawn", "services", "endpoints", "k8s", "containers", "coordination")
    for family in collectors.FAMILIES:
        assert family.name and family.title and family.enable and isinstance(family.options, dict)
        assert isinstance(family.redacts, bool) and callable(family.collect)
        assert "thresholds" not in family.options and "redaction_key" not in family.options


def test_families_run_together_and_a_failure_stays_in_its_family(registry):
    registry(Family("okay"), Family("raises", "raise"), Family("hangs", "hang"), Family("refuses"))
    began = time.monotonic()
    results = collectors.run(None, ["okay", "raises", "hangs", "refuses"], {"okay": {"url": "x"}, "refuses": {"depth": -1}},
                             {"thresholds": {}, "redaction_key": "k"}, timeout=1)
    assert time.monotonic() - began < 5
    assert results["okay"]["status"] == "ok" and results["okay"]["facts"] == {"url": "x", "key": True}
    assert results["raises"] == dict(results["raises"], status="failed", error="KeyError: 'boom'")
    assert results["hangs"]["status"] == "failed" and results["hangs"]["error"].startswith("timed out after 1 s")
    assert results["refuses"]["error"] == "depth must be at least 0, got -1."


@pytest.mark.parametrize("options, sentence", [
    ({"nope": 1}, r"the okay check does not take nope; it takes depth, url\."),
    # ansible-core before 2.19 words the type as <class 'str'>
    ({"depth": "deep"}, r"the okay check: argument 'depth' is of type (str|<class 'str'>) and we were unable to convert to int"),
])
def test_options_a_family_does_not_take_fail_that_family_only(registry, options, sentence):
    registry(Family("okay"))
    results = collectors.run(None, ["okay", "host"], {"okay": options}, {"thresholds": {}}, timeout=30)
    assert results["okay"]["status"] == "failed" and re.match(sentence, results["okay"]["error"])
    assert results["host"]["status"] in ("ok", "partial")


def test_bad_thresholds_fail_every_family_asked_for():
    results = collectors.run(None, ["host"], {}, {"thresholds": {"host.nope": {"high": 1}}}, timeout=5)
    assert results["host"]["status"] == "failed" and "unknown rule 'host.nope'" in results["host"]["error"]


def test_a_new_family_reaches_the_report_with_no_other_change(registry):
    """What docs/Development.md promises: the registry entry alone puts a family in the host record and the report."""
    registry(Family("queue"))
    ran = {"families": collectors.run(None, ["host", "queue"], {"queue": {"url": "redis://x"}}, {"thresholds": {}}, timeout=30)}
    record = incident.diagnose_result(ran, "web-1", checks=["host", "queue"])
    assert record["checks"]["queue"]["status"] == "ok" and record["facts"]["queue"]["url"] == "redis://x"
    skipped = incident.diagnose_result({"families": {}}, "web-1", checks=[])
    assert skipped["checks"]["queue"] == {"status": "skipped"}
    report = incident.incident_report({"web-1": {"diagnose_result": skipped}}, ["web-1"], "DEV-1")
    assert "the queue family: not checked on web-1 (set agentops_queue_url)" in incident.report_markdown(report).splitlines()[3]


def test_a_new_family_gets_its_role_variables_from_the_registry_alone(registry):
    """The diagnose role's defaults, argument spec, default checks and variable ranges, and the options the diagnostics
    action passes, all follow a new registry entry with no hand edit (scripts/gen_docs.py writes the role's files)."""
    registry(Family("queue"))
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    try:
        import gen_docs
    finally:
        sys.path.pop(0)
    defaults = gen_docs.diagnose_defaults()
    assert "diagnose_queue_url" in defaults and "diagnose_queue_url:" not in defaults  # listed, resolved by the action
    assert "((agentops_queue_url is defined) | ternary(['queue'], []))" in defaults
    options = yaml.safe_load(gen_docs.diagnose_argument_specs())["argument_specs"]["main"]["options"]
    assert options["diagnose_checks"]["choices"][-1] == "queue"
    assert options["diagnose_queue_url"]["type"] == "str" and "Where the queue is" in options["diagnose_queue_url"]["description"][0]
    assert "From 0 to 10" in options["diagnose_queue_depth"]["description"][0]
    assert {"suffix": "queue_depth", "range": (0, 10)}.items() <= [e for e in collectors.role_variables() if e["family"] == "queue"][1].items()
    values = {"queue_url": "redis://q", "queue_depth": None, "process_patterns": ["node"]}
    families, secrets = collectors.from_variables(["process", "queue"], values.get)
    assert families["queue"] == {"url": "redis://q"} and families["process"] == {"patterns": ["node"]} and secrets == {}


def test_the_role_and_the_module_offer_exactly_the_registered_families():
    with open(os.path.join(REPO, "roles", "diagnose", "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)
    assert tuple(spec["argument_specs"]["main"]["options"]["diagnose_checks"]["choices"]) == collectors.NAMES
    from ansible_collections.agentops.runbooks.plugins.modules import diagnostics
    doc = yaml.safe_load(diagnostics.DOCUMENTATION)
    assert tuple(doc["options"]["checks"]["choices"]) == collectors.NAMES
    assert os.path.exists(os.path.join(REPO, "docs", "Development.md"))
