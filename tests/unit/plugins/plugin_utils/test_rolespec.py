"""A role's argument spec checked by its action plugin (the playbooks import the roles with rolespec_validate: false):
the same verdict as Ansible's own validation task, on the role's real meta/argument_specs.yml."""
import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.agentops.runbooks.plugins.plugin_utils import rolespec
from helpers import REPO


class Role(object):
    def __init__(self, name):
        self._role_path = os.path.join(REPO, "roles", name)


class Task(object):
    def __init__(self, role):
        self._role = role


class Templar(object):
    """Renders nothing: the values given are the values checked (what a template would have rendered to)."""

    def template(self, value):
        return value


def test_the_roles_spec_is_read_from_its_file():
    options = rolespec.role_options(Task(Role("diagnose")))
    assert options["diagnose_checks"]["type"] == "list"
    assert "incident_report_recent_window" in rolespec.role_options(Task(Role("incident_report")))


def test_outside_a_role_or_without_a_spec_nothing_is_checked(tmp_path):
    assert rolespec.role_options(Task(None)) is None
    assert rolespec.problems(Task(None), {"diagnose_checks": ["cpu"]}, Templar()) == []
    bare = Role("diagnose")
    bare._role_path = str(tmp_path)
    assert rolespec.problems(Task(bare), {"diagnose_checks": ["cpu"]}, Templar()) == []


def test_a_bad_choice_and_a_bad_type_are_refused_as_ansible_refuses_them():
    task = Task(Role("diagnose"))
    found = rolespec.problems(task, {"diagnose_checks": ["host", "cpu"], "diagnose_check_timeout": "soon", "unrelated": 1}, Templar())
    assert len(found) == 2
    assert any("diagnose_checks" in line and "cpu" in line for line in found)
    assert any("diagnose_check_timeout" in line for line in found)
    # the same sentences as Ansible's validate_argument_spec, which uses the same validator on the same spec
    expected = ArgumentSpecValidator(rolespec.role_options(task)).validate(
        {"diagnose_checks": ["host", "cpu"], "diagnose_check_timeout": "soon"}).error_messages
    assert sorted(found) == sorted(expected)
    result = rolespec.refusal({"changed": False}, found, "diagnose")
    assert result["failed"] and result["agentops_refused"] and result["argument_errors"] == found
    assert result["msg"].startswith("The diagnose role's variables are not valid: ") and "(and 1 more: " in result["msg"]


def test_good_values_pass():
    assert rolespec.problems(Task(Role("diagnose")), {"diagnose_checks": ["host", "process"], "diagnose_check_timeout": 30}, Templar()) == []
