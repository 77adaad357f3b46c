"""AWX job slicing, reproduced: 12 local hosts split into 3 slices the way a sliced job template splits its inventory
(each slice a --limit of contiguous hosts), each slice run as a partial diagnosis (agentops_report_partial), the partial
results aggregated by playbooks/aggregate_report.yml - from the report directory and from the upload endpoint the slices
sent them to - and the one report compared with a single run over the 12 hosts: same hosts, same finding ids and
severities per host, same incident severity."""
import json
import os
import subprocess
import sys

from helpers import REPO, COLLECTIONS_PATH
from upload_server import UploadServer

BIN = os.path.dirname(sys.executable)
HOSTS = ["host-%02d" % n for n in range(1, 13)]
SLICES = 3
# The load average of a machine shared with other jobs moves between runs: out of the comparison's way.
STEADY = {"host.load": {"medium": 500, "high": 1000, "critical": 2000}}


def env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
                PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")


def command(inventory, playbook, *args):
    return [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), "-f", "12", os.path.join(REPO, "playbooks", playbook),
            "-e", json.dumps({"agentops_checks": ["host", "process"], "agentops_thresholds": STEADY}), "-e", "agentops_leak_window=0"] + list(args)


def run(argv):
    proc = subprocess.run(argv, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def slices(hosts, count):
    """Contiguous groups of (nearly) equal size, in inventory order."""
    size, extra = divmod(len(hosts), count)
    out, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        out.append(hosts[start:end])
        start = end
    return out


def shape(report):
    """What must match: the hosts, each host's status and finding ids with severities, the severity. Low and info findings
    are left out: on a machine shared with other jobs they describe its moment (a short-lived zombie, proc.zombie; a
    process that exited while it was read, proc.limited_visibility) and differ between two runs a few seconds apart;
    they never change the severity."""
    hosts = {}
    for name, record in report["hosts"].items():
        hosts[name] = (record["status"], sorted((f["id"], f["severity"]) for f in record["findings"] if f["severity"] not in ("low", "info")))
    return {"severity": report["severity"], "hosts": hosts, "host_counts": report["summary"]["hosts"]}


def test_sliced_runs_aggregate_to_the_report_of_one_run(tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[fleet]\n" + "".join("%s ansible_connection=local ansible_python_interpreter=%s\n" % (h, sys.executable)
                                               for h in HOSTS))
    single_dir, sliced_dir, served = tmp_path / "single", tmp_path / "sliced", tmp_path / "served"
    served.mkdir()
    run(command(inventory, "diagnose.yml", "-e", "agentops_incident_id=ONE-RUN", "-e", "agentops_report_dir=%s" % single_dir))
    single = json.loads((single_dir / "ONE-RUN" / "report.json").read_text())

    groups = slices(HOSTS, SLICES)
    assert [len(g) for g in groups] == [4, 4, 4] and sum(groups, []) == HOSTS
    with UploadServer(served, token="slice-token-0123456789") as server:
        upload = json.dumps({"agentops_report_upload": server.url + "/incidents", "agentops_report_upload_token": "slice-token-0123456789"})
        procs = [subprocess.Popen(command(inventory, "diagnose.yml", "--limit", ":".join(group), "-e", "agentops_report_partial=true",
                                          "-e", "agentops_incident_id=SLICED-1", "-e", "agentops_report_dir=%s" % sliced_dir, "-e", upload),
                                  cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for group in groups]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]  # the slices run at once, as AWX runs them
        for proc, out in zip(procs, outputs):
            assert proc.returncode == 0, out[-4000:]
            assert "Partial result of 4 host(s), not classified" in out and "Uploaded: " in out, out[-3000:]
            assert "slice-token-0123456789" not in out
        # No slice classified anything: partial results only, one per slice, private.
        incident = sliced_dir / "SLICED-1"
        assert not (incident / "report.json").exists()
        partials = sorted((incident / "partials").iterdir())
        assert len(partials) == SLICES and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in partials)
        assert sorted(sum((list(json.loads(p.read_text())["hosts"]) for p in partials), [])) == HOSTS
        assert len(list((served / "incidents" / "SLICED-1" / "partials").iterdir())) == SLICES

        # Aggregated from the directory, and from the upload endpoint (the AWX way: slices share no disk).
        out = run(command(inventory, "aggregate_report.yml", "-e", "agentops_incident_id=SLICED-1",
                          "-e", "agentops_report_dir=%s" % sliced_dir, "-e", "agentops_report_partials_from=%s" % sliced_dir)).stdout
        from_dir = json.loads((incident / "report.json").read_text())
        assert "%s: %s" % (from_dir["verdict"], from_dir["severity_reason"]) in out
        remote_dir = tmp_path / "aggregated"
        run(command(inventory, "aggregate_report.yml", "-e", "agentops_incident_id=SLICED-1", "-e", "agentops_report_dir=%s" % remote_dir,
                    "-e", upload))  # partials_from defaults to the upload place
        from_url = json.loads((remote_dir / "SLICED-1" / "report.json").read_text())

    assert sorted(single["hosts"]) == HOSTS
    want = shape(single)
    for report in (from_dir, from_url):
        assert "localhost" not in report["hosts"]
        assert report["aggregated"]["partials"] == SLICES
        got = shape(report)
        assert got["severity"] == want["severity"] and got["host_counts"] == want["host_counts"]
        differ = sorted(h for h in got["hosts"] if want["hosts"].get(h) != got["hosts"][h])
        assert differ == [], dict((h, (got["hosts"][h], want["hosts"].get(h))) for h in differ)
        assert dict(report["summary"]["by_severity"], info=0, low=0) == dict(single["summary"]["by_severity"], info=0, low=0)
        assert "slice-token-0123456789" not in json.dumps(report)
    # The aggregate was uploaded too (agentops_report_upload was set for it), report.json with its upload result.
    uploaded = json.loads((served / "incidents" / "SLICED-1" / "report.json").read_text())
    assert uploaded["upload"]["ok"] is True and uploaded["severity"] == single["severity"]


def test_aggregation_without_partials_is_one_sentence(tmp_path):
    proc = subprocess.run(command(tmp_path / "none.ini", "aggregate_report.yml", "-e", "agentops_incident_id=NOTHING-1",
                                  "-e", "agentops_report_partials_from=%s" % tmp_path),
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "Cannot aggregate incident NOTHING-1: no partial results under %s/NOTHING-1/partials." % tmp_path in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_partial_run_needs_the_incident_id(tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("host-01 ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    proc = subprocess.run(command(inventory, "diagnose.yml", "-e", "agentops_report_partial=true", "-e", "agentops_report_dir=%s" % tmp_path),
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "agentops_report_partial needs agentops_incident_id: every slice and the aggregation must name the same incident." in proc.stdout
    assert not list(tmp_path.glob("*/partials"))
