"""collect_logs.yml on this machine: private bundles on the host and the controller, never through a link."""
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from helpers import COLLECTIONS_PATH, REPO

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position

INCIDENT = "INC-LOGS"


@pytest.fixture
def setup(tmp_path):
    expected = log_corpus.write(str(tmp_path / "logs"))
    variables = {"agentops_incident_id": INCIDENT, "agentops_report_dir": str(tmp_path / "incidents"),
                 "agentops_log_paths": [str(tmp_path / "logs" / "*.log"), str(tmp_path / "logs" / "*.gz")],
                 "log_collection_dest": str(tmp_path / "bundles"), "log_collection_min_free_mb": 0}
    return tmp_path, variables, expected


def collect(variables, *argv):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/collect_logs.yml",
                           "-i", "inventories/localhost.yml", "-e", json.dumps(variables)] + list(argv),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def failure_message(run):
    lines = [line for line in run.stdout.splitlines() if line.startswith("fatal: ")]
    assert lines, run.stdout[-3000:]
    return json.loads(lines[-1].split(" => ", 1)[1])["msg"]


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_bundle_is_private_on_host_and_controller_and_a_second_run_changes_nothing(setup):
    tmp_path, variables, expected = setup
    run = collect(variables)
    assert run.returncode == 0, run.stdout[-3000:]
    fetched = tmp_path / "incidents" / INCIDENT / "bundles" / "localhost.tar.gz"
    assert mode(fetched) == 0o600 and mode(tmp_path / "bundles" / (INCIDENT + ".tar.gz")) == 0o600
    for directory in (tmp_path / "incidents", tmp_path / "incidents" / INCIDENT, fetched.parent, tmp_path / "bundles"):
        assert mode(directory) == 0o700
    assert sorted(os.listdir(fetched.parent)) == ["localhost.tar.gz"]
    with tarfile.open(str(fetched), "r:gz") as archive:
        blob = b"".join(archive.extractfile(m).read() for m in archive.getmembers() if m.isfile())
    assert all(secret.encode() not in blob for secret in expected["secrets"].values())
    again = collect(variables)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]


def test_a_symlinked_incident_directory_on_the_controller_is_refused(setup):
    tmp_path, variables, dummy = setup
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (tmp_path / "incidents").mkdir()
    os.symlink(str(elsewhere), str(tmp_path / "incidents" / INCIDENT))
    run = collect(variables)
    assert run.returncode != 0
    assert failure_message(run) == ("Refusing to use %s: it is a symbolic link, and private files are never written "
                                    "through one." % (tmp_path / "incidents" / INCIDENT))
    assert os.listdir(str(elsewhere)) == [] and mode(elsewhere) == 0o755


def test_a_symlink_where_the_fetched_bundle_goes_is_refused_and_its_target_untouched(setup):
    tmp_path, variables, dummy = setup
    bundles = tmp_path / "incidents" / INCIDENT / "bundles"
    bundles.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(str(victim), str(bundles / "localhost.tar.gz"))
    run = collect(variables)
    assert run.returncode != 0 and "localhost.tar.gz: it is a symbolic link" in failure_message(run)
    assert victim.read_text() == "precious"


def test_a_symlinked_bundle_directory_on_the_host_is_refused(setup):
    tmp_path, variables, dummy = setup
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.symlink(str(elsewhere), str(tmp_path / "bundles"))
    run = collect(variables)
    assert run.returncode != 0 and failure_message(run) == (
        "Refusing to use %s: it is a symbolic link, and private files are never written through one." % (tmp_path / "bundles"))
    assert os.listdir(str(elsewhere)) == [] and not (tmp_path / "incidents").exists()


@pytest.mark.parametrize("extra, message", [
    ({"log_collection_since": -1}, "log_collection_since must be between 0 and 316224000, got -1."),
    ({"agentops_log_window": 10 ** 12}, "agentops_log_window must be between 0 and 316224000, got 1000000000000."),
    ({"log_collection_max_file_bytes": 0}, "log_collection_max_file_bytes must be between 1024 and 17179869184, got 0."),
    ({"log_collection_max_total_bytes": 10 ** 15}, "log_collection_max_total_bytes must be between 1024 and 17179869184"),
    ({"log_collection_min_free_mb": -1}, "log_collection_min_free_mb must be between 0 and 1073741824, got -1."),
    # a type error is caught first by the role's argument spec, in Ansible's words (still naming the variable)
    ({"log_collection_fetch": "maybe"}, "argument 'log_collection_fetch' is of type str and we were unable to convert to bool"),
    ({"log_collection_extra_patterns": ["("]}, "log_collection_extra_patterns entry '(' is not a valid regular expression"),
    ({"log_collection_dest": "relative"}, 'log_collection_dest must be an absolute directory on the hosts'),
    ({"agentops_incident_id": "../etc"}, "agentops_incident_id may only hold letters, digits, '.', '_' and '-', got \"../etc\""),
    ({"agentops_report_dir": ""}, "agentops_report_dir must name the incident reports' directory on the controller"),
])
def test_bad_variables_are_one_sentence_naming_the_variable_before_anything_is_done(setup, extra, message):
    tmp_path, variables, dummy = setup
    variables.update(extra)
    run = collect(variables)
    assert run.returncode != 0
    assert message in failure_message(run) and "Traceback" not in run.stdout + run.stderr
    assert not (tmp_path / "bundles").exists() and not (tmp_path / "incidents").exists()


def test_check_mode_writes_nothing_anywhere(setup):
    tmp_path, variables, dummy = setup
    run = collect(variables, "--check")
    assert run.returncode == 0, run.stdout[-3000:]
    assert not (tmp_path / "bundles").exists() and not (tmp_path / "incidents").exists()
