"""The reap_processes playbook's leak response path, end to end against a real leaking node process."""
import json
import os
import subprocess
import sys
import time

from helpers import COLLECTIONS_PATH, REPO

LEAKER = ("process.title = 'leaky-agent'; const keep = []; "
          "setInterval(() => { if (keep.length < 200) keep.push(Buffer.alloc(1024 * 1024, 1)); }, 50); "
          "setTimeout(() => process.exit(0), 60000);")


def test_leak_response_captures_evidence_and_restarts_once(tmp_path):
    marker = tmp_path / "restarted"
    proc = subprocess.Popen(["node", "-e", LEAKER], cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.8)
        extra = {
            "process_reaper_dry_run": False, "process_reaper_zombies": False, "process_reaper_orphans": False,
            "process_reaper_leak_response": True, "process_reaper_leak_window": 2, "process_reaper_leak_min_growth": 100,
            "process_reaper_leak_min_age": 0,
            "process_reaper_patterns": ["leaky-agent"], "process_reaper_evidence_dir": str(tmp_path / "evidence"),
            "process_reaper_leak_restart": True,
            "process_reaper_services": [{"pattern": "leaky-agent", "command": ["touch", str(marker)]}],
        }
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH)
        run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/reap_processes.yml",
                              "-e", json.dumps(extra)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 0, run.stdout[-3000:]
        assert marker.exists(), "the service's restart command did not run"
        evidence = os.listdir(tmp_path / "evidence")
        assert any(name.startswith("%d-" % proc.pid) for name in evidence)
        assert "does not run with --heapsnapshot-signal" in run.stdout
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
