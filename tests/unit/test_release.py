"""Release hygiene: one version everywhere, a changelog that has it, Markdown without Ansible doc markup, ansible-doc
for every filter, and the action group of the PostgreSQL modules."""
import glob
import inspect
import json
import os
import re
import subprocess

import pytest
import yaml

from ansible_collections.agentops.runbooks.plugins.filter.incident import FilterModule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
# C(), O(), M(), I(), V(), P(), B(), U(), L(), E(), RV() as ansible-doc writes them: in Markdown they show as such.
MARKUP = re.compile(r"(?<![\w.])(?:RV|[CMIOVPBULE])\([^()\s][^()]*\)")


def load(path):
    with open(os.path.join(ROOT, path)) as handle:
        return yaml.safe_load(handle)


def read(path):
    with open(os.path.join(ROOT, path)) as handle:
        return handle.read()


VERSION = load("galaxy.yml")["version"]


def test_the_report_names_the_galaxy_version():
    assert load("roles/incident_report/vars/main.yml")["__incident_report_version"] == VERSION


def test_the_changelog_has_released_the_galaxy_version():
    releases = load("changelogs/changelog.yaml")["releases"]
    newest = max(releases, key=lambda v: tuple(int(part) for part in v.split(".")))
    assert newest == VERSION, "run `bash scripts/changelog.sh release` after changing galaxy.yml's version"
    assert re.search(r"^v%s\n=+$" % re.escape(VERSION), read("CHANGELOG.rst"), re.M), "CHANGELOG.rst is not generated"


def test_fragments_are_antsibull_changelog_fragments():
    sections = set(s for s, dummy in load("changelogs/config.yaml")["sections"]) | {"release_summary", "trivial"}
    for path in glob.glob(os.path.join(ROOT, "changelogs", "fragments", "*.y*ml")):
        with open(path) as handle:
            fragment = yaml.safe_load(handle)
        assert isinstance(fragment, dict) and set(fragment) <= sections, path


@pytest.mark.parametrize("path, pattern", [
    ("README.md", r"agentops-runbooks-([0-9.]+)\.tar\.gz"),
    ("execution-environment.yml", r"runbooks-ee:([0-9.]+)"),
    ("awx/agentops-runbooks.json", r"runbooks-ee:([0-9.]+)"),
])
def test_every_mention_of_the_version_agrees(path, pattern):
    found = re.findall(pattern, read(path))
    assert found and set(found) == {VERSION}, (path, found)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "roles", "*", "README.md"))
                                        + glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")]))
def test_markdown_has_no_ansible_doc_markup(path):
    with open(path) as handle:
        left = [(number, line) for number, line in enumerate(handle, 1) if MARKUP.search(line)]
    assert not left, "%s: ansible-doc markup left (scripts/gen_docs.py converts it): %s" % (path, left[:3])


def test_markup_pattern():
    assert MARKUP.search("set C(agentops_pg_host) or O(host=x)") and MARKUP.search("see M(agentops.runbooks.pg_sessions)")
    assert not MARKUP.search("SEV-1 (critical) and func(x), ERROR(foo) or `C (x)`")


def ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(BIN, "ansible-doc")] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)


def test_ansible_doc_documents_every_filter():
    names = sorted("agentops.runbooks." + name for name in FilterModule().filters())
    out = ansible_doc("-t", "filter", "--json", *names)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    docs = json.loads(out.stdout)
    assert sorted(docs) == names
    filters = FilterModule().filters()
    for name, doc in docs.items():
        short = name.rsplit(".", 1)[1]
        documentation = doc["doc"]
        assert documentation["name"] == short and documentation["short_description"], name
        assert doc["examples"] and doc["return"], name
        # The options are the function's parameters, the first one being the piped input.
        parameters = list(inspect.signature(filters[short]).parameters)
        assert sorted(documentation["options"]) == sorted(["_input"] + parameters[1:]), name


def test_postgres_action_group_lists_the_postgresql_modules():
    group = load("meta/runtime.yml")["action_groups"]["postgres"]
    modules = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "pg_*.py")))
    assert sorted(group) == modules
