import json
import os
import stat

import pytest

from ansible_collections.agentops.runbooks.plugins.action import write_report as action
from ansible_collections.agentops.runbooks.plugins.plugin_utils import incident


def report(incident_id="INC-1"):
    return incident.incident_report({"h": {}}, ["h"], incident_id, generated_at="2026-11-25T03:00:00Z")


def test_writes_private_files_atomically(tmp_path):
    paths = action.write_report(str(tmp_path / "incidents"), report())
    assert stat.S_IMODE(os.stat(paths["directory"]).st_mode) == 0o700
    for key in ("json", "markdown"):
        assert stat.S_IMODE(os.stat(paths[key]).st_mode) == 0o600
    with open(paths["json"]) as handle:
        assert json.load(handle)["incident_id"] == "INC-1"
    assert os.listdir(paths["directory"]) == sorted(["report.json", "report.md"]) or set(os.listdir(paths["directory"])) == {"report.json", "report.md"}
    action.write_report(str(tmp_path / "incidents"), report())  # rewriting the same incident works
    assert set(os.listdir(paths["directory"])) == {"report.json", "report.md"}


@pytest.mark.parametrize("incident_id", ["../etc", "a/b", "..", "bad id", ""])
def test_rejects_ids_that_are_not_plain_names(tmp_path, incident_id):
    with pytest.raises(ValueError) as err:
        action.write_report(str(tmp_path), report(incident_id))
    assert "may only hold letters" in str(err.value)


def test_rejects_something_that_is_not_a_report(tmp_path):
    with pytest.raises(ValueError):
        action.write_report(str(tmp_path), {"incident_id": "x"})


def test_unwritable_directory_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        action.write_report(str(blocker / "incidents"), report())
