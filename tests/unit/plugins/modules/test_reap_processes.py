"""reap_processes against real processes this test starts (tests/fixtures/faults.py)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO, alive, run_module

FAULTS = os.path.join(REPO, "tests", "fixtures", "faults.py")


@pytest.fixture
def faults(tmp_path):
    state = str(tmp_path / "faults.json")

    def start(*args):
        subprocess.run([sys.executable, FAULTS, "start", "--state", state, "--lifetime", "120"] + list(args),
                       check=True, capture_output=True)
        with open(state) as handle:
            return json.load(handle)
    yield start
    subprocess.run([sys.executable, FAULTS, "stop", "--state", state], check=True)


def args(**extra):
    base = {"patterns": ["claude"], "min_age": 0, "allowed_users": ["root"], "grace": 1, "zombie_wait": 0.3}
    base.update(extra)
    return base


def test_check_mode_lists_and_signals_nothing(faults):
    state = faults("--orphans", "2", "--sloppy-zombies", "3")
    rc, result = run_module("reap_processes", args(_ansible_check_mode=True))
    assert rc == 0, result
    assert result["changed"] is True
    assert sorted(o["pid"] for o in result["orphans"]) == sorted(state["orphans"])
    assert all(not o["gone"] for o in result["orphans"])
    sloppy = [z for z in result["zombies"] if z["ppid"] == state["sloppy_parents"][0]][0]
    assert sloppy["signals"] == 0 and sloppy["remaining_pids"] == sorted(state["sloppy_zombies"])
    assert all(alive(pid) for pid in state["orphans"])
    assert all(not alive(pid) and os.path.exists("/proc/%d" % pid) for pid in state["sloppy_zombies"])  # still zombies


def test_real_run_ends_orphans_reaps_sloppy_zombies_then_has_nothing_to_do(faults):
    state = faults("--orphans", "2", "--sloppy-zombies", "3", "--bystander")
    rc, result = run_module("reap_processes", args())
    assert rc == 0 and result["changed"] is True, result
    assert sorted(o["pid"] for o in result["orphans"] if o["gone"]) == sorted(state["orphans"])
    sloppy = [z for z in result["zombies"] if z["ppid"] == state["sloppy_parents"][0]][0]
    assert sloppy["reaped_pids"] == sorted(state["sloppy_zombies"]) and sloppy["signals"] == 2
    assert alive(state["sloppy_parents"][0]) and alive(state["bystanders"][0])
    rc, again = run_module("reap_processes", args())
    assert rc == 0 and again["changed"] is False and again["orphans"] == []


def test_guardrails_root_by_default_min_age_and_the_limit(faults):
    state = faults("--orphans", "3")
    rc, result = run_module("reap_processes", args(allowed_users=[], _ansible_check_mode=True))
    assert result["orphans"] == []
    assert set(s["why"] for s in result["left_alone"] if s.get("name") == "claude") == {"user root is not in allowed_users"}
    rc, result = run_module("reap_processes", args(min_age=3600, _ansible_check_mode=True))
    assert result["orphans"] == [] and all("younger than min_age" in s["why"] for s in result["left_alone"] if s.get("name") == "claude")
    rc, result = run_module("reap_processes", args(max_processes=1))
    assert len([o for o in result["orphans"] if o["gone"]]) == 1
    assert sum(1 for s in result["left_alone"] if s["why"] == "over the limit of 1 processes per run") == 2
    assert sum(1 for pid in state["orphans"] if alive(pid)) == 2


def test_zombies_of_pid_1_are_never_signalled(faults):
    # The fixture's own intermediate processes end as zombies of PID 1 when PID 1 reaps lazily (as here);
    # wherever they exist they must be skipped, never signalled.
    faults("--orphans", "1")
    rc, result = run_module("reap_processes", args(orphans=False))
    assert rc == 0
    for item in result["zombies"]:
        if item["ppid"] == 1:
            assert item["signals"] == 0
            assert any(s["pid"] == 1 for s in result["left_alone"])


def test_sigkill_after_the_grace_period_for_a_process_that_ignores_sigterm(tmp_path):
    script = "process.on('SIGTERM', () => {}); process.title = 'claude'; setTimeout(() => {}, 120000);"
    launcher = subprocess.Popen(["setsid", "sh", "-c", "node -e \"$0\" & echo $!", script], stdout=subprocess.PIPE, text=True)
    pid = int(launcher.stdout.readline())
    launcher.wait()
    try:
        time.sleep(0.5)
        rc, result = run_module("reap_processes", args(zombies=False, grace=1))
        mine = [o for o in result["orphans"] if o["pid"] == pid]
        assert mine and mine[0]["action"] == "kill" and mine[0]["gone"] is True
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("extra, message", [
    ({"grace": 301}, "grace must be between 0 and 300"),
    ({"patterns": []}, "patterns must name at least one"),
    ({"services": [{"pattern": "x"}]}, "needs a unit or a command"),
    ({"patterns": ["("]}, "is not a valid regular expression"),
])
def test_bad_arguments_fail_with_one_sentence(extra, message):
    rc, result = run_module("reap_processes", args(**extra))
    assert rc != 0 and message in result["msg"] and "Traceback" not in result["msg"]
