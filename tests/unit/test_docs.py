"""Docs generated from code must match it; commands and playbooks the docs name must exist."""
import os
import re
import subprocess
import sys

import yaml

from helpers import REPO

from ansible_collections.agentops.runbooks.plugins.module_utils.rules import RULES, anchor


def test_generated_docs_are_current():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "gen_docs.py"), "--check"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_rule_has_an_anchor_in_the_catalog_page():
    with open(os.path.join(REPO, "docs", "Production-Debugging-Playbooks.md")) as handle:
        page = handle.read()
    for rule_id in RULES:
        assert '<a id="%s"></a>' % anchor(rule_id) in page


def test_fix_playbooks_exist():
    for rule_id, rule in RULES.items():
        playbook = (rule.get("fix") or {}).get("playbook")
        if playbook:
            name = playbook.split(".")[-1]
            assert os.path.exists(os.path.join(REPO, "playbooks", name + ".yml")), (rule_id, playbook)


def test_every_role_has_argument_specs_and_a_scenario():
    for role in os.listdir(os.path.join(REPO, "roles")):
        with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")) as handle:
            assert yaml.safe_load(handle)["argument_specs"]["main"]["options"]
        assert any(role in name for name in os.listdir(os.path.join(REPO, "extensions", "molecule"))), role


def test_public_agentops_variables_are_documented_in_the_readme():
    """Every public agentops_* name is in the README's table, or (a signal family's option, a role's own setting such
    as a notification sink) in the generated docs/Signal-Families.md or role READMEs that the README points to."""
    with open(os.path.join(REPO, "README.md")) as handle:
        readme = handle.read()
    with open(os.path.join(REPO, "docs", "Signal-Families.md")) as handle:
        readme += handle.read()
    assert "docs/Signal-Families.md" in readme
    for role in os.listdir(os.path.join(REPO, "roles")):  # generated from argument_specs, linked from the README
        with open(os.path.join(REPO, "roles", role, "README.md")) as handle:
            readme += handle.read()
    names = set()
    for role in os.listdir(os.path.join(REPO, "roles")):
        path = os.path.join(REPO, "roles", role, "defaults", "main.yml")
        if os.path.exists(path):
            with open(path) as handle:
                names.update(re.findall(r"\b(agentops_[a-z0-9_]*[a-z0-9])\b", handle.read()))
    missing = sorted(name for name in names if "`%s`" % name not in readme)
    assert not missing, missing
