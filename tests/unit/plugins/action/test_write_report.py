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


def test_a_symlinked_incident_directory_is_refused_and_nothing_is_written_through_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (tmp_path / "incidents").mkdir()
    os.symlink(str(elsewhere), str(tmp_path / "incidents" / "INC-1"))
    with pytest.raises(ValueError) as err:
        action.write_report(str(tmp_path / "incidents"), report())
    message = str(err.value)
    assert message == "Refusing to use %s: it is a symbolic link, and private files are never written through one." % (
        tmp_path / "incidents" / "INC-1")
    assert os.listdir(str(elsewhere)) == [] and stat.S_IMODE(os.stat(str(elsewhere)).st_mode) == 0o755


def test_a_symlinked_report_file_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "incidents" / "INC-1"
    target.mkdir(parents=True)
    os.symlink(str(victim), str(target / "report.md"))
    with pytest.raises(ValueError) as err:
        action.write_report(str(tmp_path / "incidents"), report())
    assert "report.md: it is a symbolic link" in str(err.value)
    assert victim.read_text() == "precious" and sorted(os.listdir(str(target))) == ["report.md"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_an_incident_directory_owned_by_another_user_is_refused(tmp_path):
    target = tmp_path / "incidents" / "INC-1"
    target.mkdir(parents=True)
    os.chown(str(target), 65534, 65534)
    with pytest.raises(ValueError) as err:
        action.write_report(str(tmp_path / "incidents"), report())
    assert "it is owned by uid 65534" in str(err.value) and os.listdir(str(target)) == []


def test_the_action_turns_a_refusal_into_one_sentence(tmp_path):
    """Through ActionModule.run, as the incident_report role calls it."""
    from unittest import mock
    (tmp_path / "incidents").mkdir()
    os.symlink(str(tmp_path), str(tmp_path / "incidents" / "INC-1"))
    task = mock.MagicMock()
    task.args = {"dir": str(tmp_path / "incidents"), "report": report()}
    task.async_val = 0
    plugin = action.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    result = plugin.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"] == "Refusing to use %s: it is a symbolic link, and private files are never written through one." % (
        tmp_path / "incidents" / "INC-1")
    assert os.listdir(str(tmp_path)) == ["incidents"]


def _writer(args):
    directory, marker, barrier = args
    barrier.wait()
    action.write_report(directory, report_with_marker(marker))


def report_with_marker(marker):
    return incident.incident_report({"h": {}}, ["h"], "INC-RACE", generated_at="run-%03d" % marker)


@pytest.mark.parametrize("runner", ["threads", "processes"])
def test_200_concurrent_runs_with_one_incident_id_never_leave_a_mixed_pair(tmp_path, runner):
    import multiprocessing
    import threading
    from concurrent.futures import ThreadPoolExecutor
    directory = str(tmp_path / "incidents")
    runs = 200
    if runner == "threads":
        barrier = threading.Barrier(runs)
        with ThreadPoolExecutor(max_workers=runs) as pool:
            list(pool.map(_writer, [(directory, marker, barrier) for marker in range(runs)]))
    else:
        context = multiprocessing.get_context("fork")
        barrier = context.Barrier(runs)
        procs = [context.Process(target=_writer, args=((directory, marker, barrier),)) for marker in range(runs)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
        assert [proc.exitcode for proc in procs] == [0] * runs
    target = os.path.join(directory, "INC-RACE")
    with open(os.path.join(target, "report.json")) as handle:
        marker = json.load(handle)["generated_at"]
    with open(os.path.join(target, "report.md")) as handle:
        markdown = handle.read()
    assert "Generated %s by" % marker in markdown
    assert sorted(os.listdir(target)) == ["report.json", "report.md"]  # no temporary file or directory left behind
    for name in ("report.json", "report.md"):
        assert stat.S_IMODE(os.stat(os.path.join(target, name)).st_mode) == 0o600


# ------------------------------------------------------------------ the documents the incident_report action adds
DOCUMENTS = {"postmortem.md": "# Postmortem\n", "status-update.md": "# Status\n", "report.html": "<!DOCTYPE html>\n"}


def test_extra_documents_are_written_with_the_same_guarantees(tmp_path):
    paths = action.write_report(str(tmp_path / "incidents"), report(), extra=DOCUMENTS)
    assert sorted(os.listdir(paths["directory"])) == ["postmortem.md", "report.html", "report.json", "report.md", "status-update.md"]
    for key, name in (("postmortem", "postmortem.md"), ("status_update", "status-update.md"), ("html", "report.html")):
        assert paths[key] == os.path.join(paths["directory"], name)
        assert stat.S_IMODE(os.stat(paths[key]).st_mode) == 0o600
        with open(paths[key]) as handle:
            assert handle.read() == DOCUMENTS[name]
    assert stat.S_IMODE(os.stat(paths["directory"]).st_mode) == 0o700


@pytest.mark.parametrize("extra, sentence", [
    ({"notes.txt": "x"}, "write_report does not write notes.txt; besides report.json and report.md it writes only postmortem.md, "
                         "report.html, status-update.md."),
    ({"../postmortem.md": "x"}, "write_report does not write ../postmortem.md"),
    ({"report.json": "{}"}, "write_report does not write report.json"),
    ({"postmortem.md": b"bytes"}, "the text of postmortem.md must be a string, got bytes."),
    (["postmortem.md"], "extra must map file names to their text, got list."),
])
def test_unknown_or_bad_extra_files_are_refused_before_anything_is_written(tmp_path, extra, sentence):
    with pytest.raises(ValueError) as err:
        action.write_report(str(tmp_path / "incidents"), report(), extra=extra)
    assert sentence in str(err.value)
    assert not (tmp_path / "incidents").exists()


def test_a_symlinked_document_is_refused_and_nothing_is_replaced(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "incidents" / "INC-1"
    target.mkdir(parents=True)
    os.symlink(str(victim), str(target / "report.html"))
    with pytest.raises(ValueError) as err:
        action.write_report(str(tmp_path / "incidents"), report(), extra=DOCUMENTS)
    assert "report.html: it is a symbolic link" in str(err.value)
    assert victim.read_text() == "precious" and sorted(os.listdir(str(target))) == ["report.html"]


def test_stale_temporary_documents_are_cleared(tmp_path):
    target = tmp_path / "incidents" / "INC-1"
    target.mkdir(parents=True)
    for name in (".report.html.0123456789ab.tmp", ".postmortem.md.0123456789ab.tmp", ".status-update.md.0123456789ab.tmp"):
        (target / name).write_text("left by a killed run")
    (target / ".keep.0123456789ab.tmp").write_text("not ours")
    action.write_report(str(tmp_path / "incidents"), report(), extra=DOCUMENTS)
    assert sorted(os.listdir(str(target))) == [
        ".keep.0123456789ab.tmp", "postmortem.md", "report.html", "report.json", "report.md", "status-update.md"]


def _documents_writer(args):
    directory, marker, barrier = args
    barrier.wait()
    action.write_report(directory, report_with_marker(marker), extra=dict((name, "run-%03d\n" % marker) for name in DOCUMENTS))


def test_concurrent_runs_leave_all_five_files_from_one_run(tmp_path):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    directory = str(tmp_path / "incidents")
    runs = 60
    barrier = threading.Barrier(runs)
    with ThreadPoolExecutor(max_workers=runs) as pool:
        list(pool.map(_documents_writer, [(directory, marker, barrier) for marker in range(runs)]))
    target = os.path.join(directory, "INC-RACE")
    with open(os.path.join(target, "report.json")) as handle:
        marker = json.load(handle)["generated_at"]
    for name in DOCUMENTS:
        with open(os.path.join(target, name)) as handle:
            assert handle.read() == marker + "\n", name
    assert len(os.listdir(target)) == 5
