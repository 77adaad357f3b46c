"""Supervised is not orphaned, the program is not its arguments, and a real kill shows as changed.

Everything here runs inside a PID namespace of its own (scripts/pidns.py --unshare): the scenarios use the broad
`node` pattern and send real signals, and must never see or touch a process that another job runs on this machine.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers import REPO

PIDNS = os.path.join(REPO, "scripts", "pidns.py")
SCENARIO = os.path.join(REPO, "tests", "fixtures", "supervision.py")


def in_pidns(tmp_path, *args):
    out = str(tmp_path / "result.json")
    run = subprocess.run([sys.executable, PIDNS, "--unshare", "--", sys.executable, SCENARIO] + list(args[:1])
                         + ["--out", out] + list(args[1:]), capture_output=True, text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(out) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    result = in_pidns(tmp_path_factory.mktemp("supervision"), "scenario")
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def test_the_fixture_is_what_it_claims(scenario):
    assert set(scenario["ppids"].values()) == {1}, "every fixture process must have PID 1 as its parent"
    assert "system.slice/%s" % scenario["unit"] in scenario["supervised_cgroup"]


def test_a_node_service_in_a_systemd_cgroup_is_supervised_not_orphaned(scenario):
    rc, result = scenario["process_facts"]
    assert rc == 0, result
    facts = result["facts"]
    orphans = [o["pid"] for o in facts["orphans"]]
    assert scenario["supervised"] not in orphans
    supervised = [s for s in facts["supervised"] if s["pid"] == scenario["supervised"]]
    assert supervised and supervised[0]["supervisor"] == "systemd" and supervised[0]["owner"] == scenario["unit"]
    finding = [f for f in result["findings"] if f["id"] == "proc.orphan"][0]
    assert finding["evidence"]["pids"] == str(scenario["control"])


def test_tail_of_a_file_named_node_is_not_a_node_process(scenario):
    rc, result = scenario["process_facts"]
    assert scenario["tail"] not in [a["pid"] for a in result["facts"]["agents"]]
    assert scenario["tail"] not in [o["pid"] for o in result["facts"]["orphans"]]


def test_the_reaper_ends_the_real_orphan_and_never_signals_the_others(scenario):
    rc, check = scenario["reap_check"]
    assert rc == 0 and [o["pid"] for o in check["orphans"]] == [scenario["control"]] and check["signalled"] == []
    rc, result = scenario["reap"]
    assert rc == 0, result
    assert result["changed"] is True
    assert result["signalled"] == [{"pid": scenario["control"], "name": "node", "signal": "SIGTERM"}]
    assert [o["pid"] for o in result["orphans"] if o["gone"]] == [scenario["control"]]
    why = dict((item["pid"], item["why"]) for item in result["left_alone"])
    assert why[scenario["supervised"]] == "supervised by systemd %s, not an orphan" % scenario["unit"]
    assert "skipped" not in result, "a top-level 'skipped' key reads as a skipped task in Ansible"
    alive = scenario["alive_after"]
    assert alive[str(scenario["supervised"])] and alive[str(scenario["tail"])] and not alive[str(scenario["control"])]


def test_a_real_kill_shows_as_changed_in_the_play_recap(tmp_path):
    extra = {"process_reaper_dry_run": False, "process_reaper_zombies": False, "process_reaper_patterns": ["claude"],
             "process_reaper_min_age": 0, "process_reaper_allowed_users": ["root"], "process_reaper_grace": 1}
    result = in_pidns(tmp_path, "playbook", "--", "-i", "inventories/localhost.yml", "-e", json.dumps(extra))
    assert result["rc"] == 0, result["stdout"][-3000:]
    recap = result["stdout"].split("PLAY RECAP")[1]
    assert "changed=1" in recap, recap
    assert not result["alive_after"]


@pytest.mark.parametrize("value", ["y", "n", "dry", "1", "on"])
def test_a_dry_run_flag_that_is_not_true_or_false_stops_before_anything_is_signalled(tmp_path, value):
    extra = {"process_reaper_zombies": False, "process_reaper_patterns": ["claude"], "process_reaper_min_age": 0,
             "process_reaper_allowed_users": ["root"], "process_reaper_grace": 1}
    result = in_pidns(tmp_path, "playbook", "--", "-i", "inventories/localhost.yml", "-e", json.dumps(extra),
                      "-e", "process_reaper_dry_run=%s" % value)
    assert result["rc"] != 0
    assert result["alive_after"], "the orphan was signalled although the dry-run flag was not a clear false"
    output = result["stdout"] + result["stderr"]
    assert "Traceback" not in output
    assert "process_reaper_dry_run" in output and ("must be true or false" in output or "not a valid boolean" in output)
