"""Verify what process_reaper did to the faults prepare created, and what it left alone."""
import json
import os

STATE = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "faults.json")


def faults(host):
    return json.loads(host.file(STATE).content_string)


def stat(host, pid):
    """(state, ppid, start time) of pid, or None when it no longer exists."""
    out = host.run("cat /proc/%d/stat" % pid)
    if out.rc != 0:
        return None
    fields = out.stdout.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def alive(host, pid, started):
    info = stat(host, pid)
    return info is not None and info[0] != "Z" and info[2] == started


def test_sloppy_parent_reaped_its_zombies_after_sigchld_and_still_runs(host):
    state = faults(host)
    parent = state["sloppy_parents"][0]
    assert alive(host, parent, state["started"][str(parent)])
    for pid in state["sloppy_zombies"]:
        info = stat(host, pid)
        assert info is None or info[1] != parent


def test_stubborn_parent_was_restarted_with_its_command(host):
    state = faults(host)
    parent = state["zombie_parents"][0]
    assert not alive(host, parent, state["started"][str(parent)])
    for pid in state["zombies"]:
        info = stat(host, pid)
        assert info is None or info[1] != parent  # no longer that parent's zombies


def test_orphaned_agents_are_gone(host):
    state = faults(host)
    for pid in state["orphans"]:
        assert not alive(host, pid, state["started"][str(pid)])


def test_the_bystander_survived(host):
    state = faults(host)
    pid = state["bystanders"][0]
    assert alive(host, pid, state["started"][str(pid)])
