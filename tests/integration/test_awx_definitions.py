"""awx/agentops-runbooks.json (what `awx import` reads) against the collection it drives, and execution-environment.yml
through a real `ansible-builder create`.

Surveys: every question names a variable of the template's roles (a role option in meta/argument_specs.yml, or the
collection-wide agentops_* name that feeds one in defaults/main.yml) with an AWX type that fits the option's type; an
optional question's default is the role's own default (so that launching without answering changes nothing), and its
min/max lie within the range the role checks. The variables a job needs are asked: every dry-run flag, and every
option the role requires (in the survey, or, for a list of mappings that a survey cannot express, in the template's
extra variables prompted at launch). The JSON keeps awx export's shape (natural keys that resolve in the file)."""
import json
import os
import re
import shutil
import subprocess
import sys

import jinja2
import jinja2.nativetypes
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX_FILE = os.path.join(ROOT, "awx", "agentops-runbooks.json")
BIN = os.path.dirname(sys.executable)
# awxkit's EXPORTABLE_RESOURCES (awxkit/api/pages/api.py): the top-level keys `awx import` reads.
EXPORTABLE = {"users", "organizations", "teams", "credential_types", "credentials", "notification_templates", "projects",
              "inventory", "inventory_sources", "job_templates", "workflow_job_templates", "execution_environments",
              "applications", "schedules"}
SURVEY_TYPES = {"text": {"str", "path"}, "textarea": {"str", "path"}, "password": {"str"}, "integer": {"int"},
                "float": {"float"}, "multiplechoice": {"str", "bool"}, "multiselect": {"list"}}
UNSET = object()  # a role default that is no value: none, omit, or "now"
RANGE_WORDS = re.compile(r"(?:[Ff]rom )?(-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)\b")
REQUIRED_WITH = re.compile(r"required with C\((\w+)=([\w.-]+)\)")


def load_awx():
    with open(AWX_FILE) as handle:
        return json.load(handle)


def yaml_file(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        return yaml.safe_load(handle)


def playbook_roles(playbook):
    """The collection roles a playbook runs (roles: and include_role/import_role tasks)."""
    names = []
    for play in yaml_file(playbook):
        for role in play.get("roles", []):
            names.append(role["role"] if isinstance(role, dict) else role)
        for task in play.get("tasks", []) + play.get("pre_tasks", []) + play.get("post_tasks", []):
            for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
                if key in task:
                    names.append(task[key]["name"])
    roles = []
    for name in names:
        assert name.startswith("agentops.runbooks."), name
        if name.split(".")[-1] not in roles:
            roles.append(name.split(".")[-1])
    return roles


def role_ranges(role):
    """{variable: (low, high)} from the check_variables tasks of a role (the ranges it enforces)."""
    ranges = {}
    tasks_dir = os.path.join(ROOT, "roles", role, "tasks")
    for name in sorted(os.listdir(tasks_dir)):
        for task in yaml_file("roles", role, "tasks", name) or []:
            spec = task.get("agentops.runbooks.check_variables") or {}
            if isinstance(spec.get("ranges"), dict):
                ranges.update({key: tuple(value) for key, value in spec["ranges"].items()})
    ranges.update(registry_defaults(role)[1])
    return ranges


def registry_defaults(role):
    """The diagnose role's signal-family variables have no entry in defaults/main.yml: the diagnostics action reads
    diagnose_<name>, else agentops_<name>, else the family option's default (plugins/module_utils/collectors). Their
    defaults, in the same {{ agentops_x | default(d) }} form, and ranges, from that registry."""
    if role != "diagnose":
        return {}, {}
    from ansible_collections.agentops.runbooks.plugins.module_utils import collectors
    raw, ranges = {}, {}
    for entry in collectors.role_variables():
        default = entry["spec"].get("default")
        raw["diagnose_" + entry["suffix"]] = "{{ agentops_%s | default(%s) }}" % (entry["suffix"], json.dumps(default) if default is not None else "none")
        if entry["range"] is not None:
            ranges["diagnose_" + entry["suffix"]] = tuple(entry["range"])
    return raw, ranges


def effective_defaults(role, extra_vars):
    """A role's defaults as a play would see them with only ``extra_vars`` set: {{ agentops_x | default(d) }} is d."""
    raw = dict(yaml_file("roles", role, "defaults", "main.yml") or {}, **registry_defaults(role)[0])
    env = jinja2.nativetypes.NativeEnvironment(undefined=jinja2.Undefined)
    env.globals["now"] = lambda **kwargs: UNSET

    def render(value, context):
        if not isinstance(value, str) or "{{" not in value:
            return value
        try:
            out = env.from_string(value).render(context)
        except Exception:  # pylint: disable=broad-except
            return UNSET  # an Ansible-only filter: a computed default no survey can equal
        return UNSET if out is None or isinstance(out, jinja2.Undefined) else out

    values = dict(raw)
    for dummy in range(3):  # defaults that name other defaults (deploy_rollback_dry_run names the kind)
        values = {key: render(value, dict(raw, **dict(values, **extra_vars))) for key, value in raw.items()}
    values.update({key: value for key, value in extra_vars.items() if key in raw})
    return raw, values


class Template(object):
    def __init__(self, data):
        self.data = data
        self.name = data["name"]
        self.extra_vars = yaml.safe_load(data["extra_vars"] or "") or {}
        self.roles = playbook_roles(data["playbook"])
        self.spec = data["related"]["survey_spec"]["spec"]
        self.options, self.defaults, self.raw, self.ranges = {}, {}, {}, {}
        for role in self.roles:
            options = yaml_file("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
            raw, defaults = effective_defaults(role, self.extra_vars)
            self.options.update(options)
            self.defaults.update(defaults)
            self.raw.update(raw)
            self.ranges.update(role_ranges(role))
            for name, option in options.items():
                text = " ".join(option["description"]) if isinstance(option["description"], list) else option["description"]
                found = RANGE_WORDS.search(text)
                if found and name not in self.ranges:
                    self.ranges[name] = (float(found.group(1)), float(found.group(2)))

    def targets(self, variable):
        """The role options a survey variable sets: itself, or those its collection-wide name feeds."""
        if variable in self.options:
            return [variable]
        feeds = re.compile(r"^\{\{\s*%s\s*\|\s*default\(" % re.escape(variable))
        return [name for name, value in self.raw.items() if isinstance(value, str) and feeds.match(value) and name in self.options]

    def value_range(self, variable, target):
        return self.ranges.get(variable) or self.ranges.get(target)


def templates():
    return [Template(data) for data in load_awx()["job_templates"]]


def template_ids():
    return [data["name"] for data in load_awx()["job_templates"]]


def test_the_file_is_an_awx_export():
    data = load_awx()
    assert set(data) <= EXPORTABLE, set(data) - EXPORTABLE
    # The place for the incident workflow (Diagnose -> Collect logs -> approval -> remediation).
    assert "workflow_job_templates" in data
    keys = []
    for resource, assets in data.items():
        for asset in assets:
            key = asset["natural_key"]
            assert key["name"] == asset["name"], asset["name"]
            assert key not in keys, "two %s named %s" % (key["type"], key["name"])
            keys.append(key)

    def resolves(ref):
        return ref is None or ref in keys

    for asset in data.get("execution_environments", []) + data.get("projects", []):
        assert resolves(asset.get("organization")), asset["name"]
    for project in data.get("projects", []):
        assert resolves(project.get("default_environment")), project["name"]
        assert project["scm_type"] == "git" and project["scm_url"].endswith(".git")
    version = yaml_file("galaxy.yml")["version"]
    for ee in data.get("execution_environments", []):
        assert ee["image"].endswith(":" + version), "the image built from execution-environment.yml for this version"
    for jt in data["job_templates"]:
        assert jt["natural_key"] == {"organization": jt["project"]["organization"], "name": jt["name"], "type": "job_template"}
        assert resolves(jt["project"]) and resolves(jt["execution_environment"]), jt["name"]
        assert os.path.isfile(os.path.join(ROOT, jt["playbook"])), jt["playbook"]
        assert jt["survey_enabled"] and jt["ask_inventory_on_launch"] and jt["ask_credential_on_launch"], jt["name"]
        assert isinstance(yaml.safe_load(jt["extra_vars"]) or {}, dict), jt["name"]
    for wf in data["workflow_job_templates"]:
        for node in wf.get("related", {}).get("workflow_nodes", []):
            assert resolves(node["unified_job_template"]), node


def test_a_template_per_job():
    names = {jt["name"]: jt["playbook"] for jt in load_awx()["job_templates"]}
    want = {
        "agentops.runbooks Diagnose": "playbooks/diagnose.yml",
        "agentops.runbooks Remediate PostgreSQL": "playbooks/remediate_postgres.yml",
        "agentops.runbooks Reap processes": "playbooks/reap_processes.yml",
        "agentops.runbooks Collect logs": "playbooks/collect_logs.yml",
        "agentops.runbooks Rollback": "playbooks/rollback.yml",
    }
    if os.path.isfile(os.path.join(ROOT, "playbooks", "aggregate_report.yml")):  # AWX job slicing, then the merge (issue 16)
        want["agentops.runbooks Diagnose slice"] = "playbooks/diagnose.yml"
        want["agentops.runbooks Aggregate report"] = "playbooks/aggregate_report.yml"
    if os.path.isfile(os.path.join(ROOT, "playbooks", "restart_service.yml")):
        want["agentops.runbooks Restart service"] = "playbooks/restart_service.yml"
    kinds = yaml_file("roles", "deploy_rollback", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    if "kubernetes" in kinds.get("deploy_rollback_kind", {}).get("choices", []):
        want["agentops.runbooks Rollback Kubernetes"] = "playbooks/rollback.yml"
    assert names == want
    kinds = {jt["name"]: (yaml.safe_load(jt["extra_vars"]) or {}).get("deploy_rollback_kind")
             for jt in load_awx()["job_templates"] if jt["playbook"] == "playbooks/rollback.yml"}
    assert sorted(kinds.values()) == sorted(["release", "kubernetes"][:len(kinds)])


def awx_element_errors(element, value):
    """AWX's own check of one answer (awx/main/models/mixins.py, _survey_element_validation), for the defaults."""
    kind, low, high = element["type"], element.get("min"), element.get("max")
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return ["not a string"]
        return ["too short"] * (low not in ("", None) and len(value) < int(low)) + ["too long"] * (high not in ("", None) and len(value) > int(high))
    if kind in ("integer", "float"):
        if type(value) not in ((int,) if kind == "integer" else (int, float)):  # pylint: disable=unidiomatic-typecheck
            return ["not a number of its type"]
        return ["too small"] * (low not in ("", None) and value < float(low)) + ["too large"] * (high not in ("", None) and value > float(high))
    if kind == "multiplechoice":
        return [] if value in element["choices"] else ["not a choice"]
    return ["unchecked type"]


@pytest.mark.parametrize("template", templates(), ids=template_ids())
def test_every_survey_variable_is_a_role_variable_of_its_type_and_default(template):
    variables = [element["variable"] for element in template.spec]
    assert len(variables) == len(set(variables)), "a variable asked twice"
    for element in template.spec:
        variable, kind = element["variable"], element["type"]
        assert element["question_name"] and re.match(r"^[a-z_][a-z0-9_]*$", variable), element
        assert variable not in template.extra_vars, "%s is both asked and fixed" % variable
        targets = template.targets(variable)
        assert targets, "%s is not a variable of %s (their argument specs and defaults)" % (variable, ", ".join(template.roles))
        for target in targets:
            option = template.options[target]
            where = "%s -> %s" % (variable, target) if target != variable else variable
            assert option["type"] in SURVEY_TYPES[kind], "%s: a %s question for a %s option" % (where, kind, option["type"])
            assert (kind == "password") == bool(option.get("no_log")), "%s: secrets and only secrets are password questions" % where
            if kind == "multiplechoice":
                allowed = ["true", "false"] if option["type"] == "bool" else option.get("choices")
                assert allowed and set(element["choices"]) <= set(allowed), "%s: choices %s" % (where, element["choices"])
            low_high = template.value_range(variable, target)
            if low_high and kind in ("integer", "float"):
                assert element.get("min") is not None and element.get("max") is not None, "%s: min and max" % where
                assert low_high[0] <= element["min"] <= element["max"] <= low_high[1], "%s: within %s" % (where, low_high)
            default = template.defaults.get(target, UNSET)
            if element["required"]:
                continue  # the user gives it; a default there is only a suggestion (checked below like an answer)
            assert "default" in element, "%s: an optional question needs the role's default (AWX passes the default)" % where
            assert default is not UNSET, "%s: the role has no default to offer; ask it as a required question" % where
            answer = element["default"]
            if option["type"] == "bool":
                answer = {"true": True, "false": False}[answer]
            assert answer == default and type(answer) in ((bool,) if option["type"] == "bool" else (type(default), int, float)), \
                "%s: survey default %r, role default %r" % (where, element["default"], default)
        if "default" in element:
            assert not awx_element_errors(element, element["default"]), (variable, awx_element_errors(element, element["default"]))


@pytest.mark.parametrize("template", templates(), ids=template_ids())
def test_every_variable_a_job_needs_is_asked(template):
    asked = {element["variable"]: element for element in template.spec}
    covered = {target: variable for variable in asked for target in template.targets(variable)}
    needed = []
    for name, option in template.options.items():
        text = " ".join(option["description"]) if isinstance(option["description"], list) else option["description"]
        when = REQUIRED_WITH.search(text)
        if name.endswith("_dry_run") or option.get("required") or "(required)" in text or (
                when and str(template.defaults.get(when.group(1))) == when.group(2)):
            needed.append(name)
    for name in needed:
        option = template.options[name]
        if option["type"] in ("list", "dict", "raw") and option.get("elements", "dict") in ("dict", "raw"):
            # A survey cannot give a list of mappings: the template carries it, prompted at launch.
            assert name in template.extra_vars and template.data["ask_variables_on_launch"], name
            continue
        assert name in covered, "%s: %s is needed but not asked" % (template.name, name)
        element = asked[covered[name]]
        assert element["required"], "%s: %s must be a required question" % (template.name, covered[name])
    for name in [n for n in template.options if n.endswith("_dry_run")]:
        element = asked[covered[name]]
        assert element["type"] == "multiplechoice" and element["choices"] == ["true", "false"], name
        assert element["default"] == str(template.defaults[name]).lower(), "%s: the role's own dry-run default" % name


def test_playbook_roles_are_what_the_templates_drive():
    assert playbook_roles("playbooks/diagnose.yml") == ["diagnose", "incident_report"]
    assert playbook_roles("playbooks/rollback.yml") == ["deploy_rollback"]


def run(argv, **kwargs):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    assert out.returncode == 0, "%s: %s%s" % (" ".join(argv), out.stdout, out.stderr)
    return out


def eda_bin():
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "eda_setup.sh")], capture_output=True, text=True,
                         timeout=900, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_execution_environment_builds_a_context_with_the_collection_and_its_dependencies(tmp_path):
    """ansible-builder create writes the build context (no image: that needs a registry); the collection's own
    meta/execution-environment.yml gives an EE that installs it psycopg and the PostgreSQL client (introspect)."""
    bindir = eda_bin()
    for name in ("execution-environment.yml", "bindep.txt", "requirements-ee.txt"):
        shutil.copy(os.path.join(ROOT, name), str(tmp_path / name))
    version = yaml_file("galaxy.yml")["version"]
    # Not this checkout's ansible.cfg: its collections path holds the collection already (ansible-galaxy would skip it).
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "build"), ROOT],
        env=env, cwd=str(tmp_path))
    tarball = tmp_path / "build" / ("agentops-runbooks-%s.tar.gz" % version)
    assert tarball.is_file()

    out = subprocess.run([os.path.join(bindir, "ansible-builder"), "create", "-f", "execution-environment.yml",
                          "-c", "context", "--output-filename", "Containerfile", "-v", "3"],
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No matches" not in out.stdout + out.stderr
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile and 'PYCMD="/usr/bin/python3.11"' in containerfile
    assert "ansible-core>=2.19,<2.20" in containerfile
    assert (context / "_build" / "collections" / tarball.name).read_bytes() == tarball.read_bytes()
    assert (context / "_build" / "requirements.txt").read_text() == (tmp_path / "requirements-ee.txt").read_text()
    assert (context / "_build" / "bindep.txt").read_text() == (tmp_path / "bindep.txt").read_text()
    install = [line for line in containerfile.splitlines() if "ansible-galaxy collection install" in line]
    assert len(install) == 1 and "/usr/share/ansible/collections" in install[0]

    # The Containerfile's install step, here: the tarball installs offline, with its metadata.
    collections = tmp_path / "collections"
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "--force", "--collections-path",
         str(collections), str(tarball)], env=env, cwd=str(tmp_path))
    installed = collections / "ansible_collections" / "agentops" / "runbooks"
    for name in ("meta/execution-environment.yml", "bindep.txt", "requirements-ee.txt", "playbooks/diagnose.yml",
                 "extensions/eda/rulebooks/agent_incidents.yml"):
        assert (installed / name).is_file(), name
    # What ansible-builder's introspection (in the builder stage) finds in the installed collection.
    out = run([os.path.join(bindir, "python"), str(context / "_build" / "scripts" / "introspect.py"), "introspect", str(collections)])
    found = yaml.safe_load(out.stdout)
    assert any(line.startswith("psycopg[binary]") and "agentops.runbooks" in line for line in found["python"]), out.stdout
    assert any(line.startswith("postgresql-client [platform:dpkg]") for line in found["system"]), out.stdout
    # bindep.txt resolves on this (dpkg) platform to the Debian names.
    out = subprocess.run([os.path.join(bindir, "bindep"), "--list_all", "newline", "-f", str(tmp_path / "bindep.txt")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert sorted(out.stdout.split()) == ["openssh-client", "postgresql-client"], out.stdout + out.stderr
