"""The report outlives the job: diagnose.yml uploads the incident directory to a local HTTP endpoint (bearer token,
retries, a run that deletes its local copy afterwards, an endpoint that is down) and to a local S3-compatible server
(moto in server mode, from .cache/venv-moto: SigV4 with credentials from the environment, and a presigned URL)."""
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

from helpers import REPO, COLLECTIONS_PATH
from upload_server import UploadServer
from ansible_collections.agentops.runbooks.plugins.plugin_utils import upload

BIN = os.path.dirname(sys.executable)
TOKEN = "upload-token-5f1c2e9a7b"
DOCUMENTS = ["postmortem.md", "report.html", "report.json", "report.md", "status-update.md"]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDAGENTOPSTEST", "AWS_SECRET_ACCESS_KEY": "agentops-test-secret-key-0123456789", "AWS_REGION": "us-east-1"}


def env(**extra):
    out = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        out.pop(name, None)
    out.update(extra)
    return out


def diagnose(report_dir, incident_id, variables, environ=None):
    argv = [os.path.join(BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "diagnose.yml"), "-i", os.path.join(REPO, "inventories", "localhost.yml"),
            "-e", json.dumps(dict({"agentops_checks": ["host"], "agentops_report_dir": str(report_dir), "agentops_incident_id": incident_id}, **variables))]
    proc = subprocess.run(argv, cwd=REPO, env=environ or env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def everything_under(path):
    text = ""
    for root, dummy, files in os.walk(str(path)):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                text += handle.read().decode("utf-8", "replace")
    return text


def test_upload_over_http_with_a_token_then_the_local_copy_is_deleted(tmp_path):
    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    with UploadServer(served, token=TOKEN, fail_first=2) as server:  # two 503s first: retried within the deadline
        out = diagnose(local, "UP-1", {"agentops_report_upload": {"url": server.url + "/reports", "delete_local": True},
                                       "agentops_report_upload_token": TOKEN})
    assert not (local / "UP-1").exists(), "delete_local after a full upload"
    remote = served / "reports" / "UP-1"
    assert sorted(os.listdir(str(remote))) == DOCUMENTS
    report = json.loads((remote / "report.json").read_text())
    assert report["upload"]["ok"] is True and sorted(report["upload"]["uploaded"]) == DOCUMENTS
    assert report["upload"]["url"] == server.url + "/reports/UP-1/report.html"
    assert report["upload"]["attempts"] == len(DOCUMENTS) + 2  # + the two 503s (report.json was sent again, with this result)
    assert [r["path"] for r in server.requests].count("/reports/UP-1/report.json") == 2
    assert "Uploaded: %s/reports/UP-1/: 5 file(s) uploaded" % server.url in out and "local copy deleted" in out
    assert {r["method"] for r in server.requests} == {"PUT"}
    assert all(r["authorization"] == "Bearer " + TOKEN for r in server.requests)
    assert {r["content_type"] for r in server.requests if r["path"].endswith(".json")} == {"application/json"}
    assert TOKEN not in out and TOKEN not in everything_under(served)


def test_a_failed_upload_never_fails_the_diagnosis_and_the_local_copy_stays(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    out = diagnose(tmp_path, "DOWN-1", {"agentops_report_upload": {"url": "http://127.0.0.1:%d/x" % port, "method": "POST", "delete_local": True,
                                                                   "deadline": 3, "retries": 2},
                                        "agentops_report_upload_token": TOKEN})
    assert time.monotonic() - started < 120
    assert sorted(os.listdir(str(tmp_path / "DOWN-1"))) == DOCUMENTS
    report = json.loads((tmp_path / "DOWN-1" / "report.json").read_text())
    assert report["upload"]["ok"] is False and report["upload"]["deleted_local"] is False
    assert "connection failed" in report["upload"]["error"]
    assert "Uploaded: http://127.0.0.1:%d/x/DOWN-1/: FAILED" % port in out and "the local copy stays" in out
    assert TOKEN not in out and TOKEN not in everything_under(tmp_path)


def test_bad_upload_settings_stop_the_play_in_one_sentence(tmp_path):
    argv = [os.path.join(BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "diagnose.yml"), "-i", os.path.join(REPO, "inventories", "localhost.yml"),
            "-e", json.dumps({"agentops_checks": ["host"], "agentops_report_dir": str(tmp_path),
                              "agentops_report_upload": {"url": "http://example.com/reports"}, "agentops_report_upload_token": TOKEN})]
    proc = subprocess.run(argv, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "agentops_report_upload is plain http to example.com: use https" in proc.stdout
    assert TOKEN not in proc.stdout and not os.listdir(str(tmp_path))


# ------------------------------------------------------------------ S3-compatible (moto server)
@pytest.fixture(scope="module")
def moto():
    """moto_server on 127.0.0.1 (its own venv, made by scripts/moto_setup.sh), stopped afterwards."""
    setup = subprocess.run(["bash", os.path.join(REPO, "scripts", "moto_setup.sh")], capture_output=True, text=True, timeout=900, check=False)
    assert setup.returncode == 0, setup.stderr
    bindir = setup.stdout.strip().splitlines()[-1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([os.path.join(bindir, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        for dummy in range(100):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield {"url": url, "bin": bindir}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_request(conf, method, url, body=b""):
    import hashlib
    headers = upload.sign_v4(method, url, {}, hashlib.sha256(body).hexdigest(), CREDENTIALS["AWS_ACCESS_KEY_ID"],
                             CREDENTIALS["AWS_SECRET_ACCESS_KEY"], "us-east-1")
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def test_upload_to_an_s3_compatible_bucket_with_credentials_from_the_environment(tmp_path, moto):
    bucket = "agentops-%d" % os.getpid()
    conf, problems = upload.settings({"url": "s3://%s/incidents" % bucket, "endpoint_url": moto["url"]}, environ=CREDENTIALS)
    assert not problems
    s3_request(conf, "PUT", "%s/%s" % (moto["url"], bucket))
    out = diagnose(tmp_path, "S3-1", {"agentops_report_upload": {"url": "s3://%s/incidents" % bucket, "endpoint_url": moto["url"],
                                                                 "delete_local": True}},
                   environ=env(**CREDENTIALS))
    assert "Uploaded: s3://%s/incidents/S3-1/: 5 file(s) uploaded" % bucket in out
    assert not (tmp_path / "S3-1").exists()
    assert upload.list_names(conf, "S3-1", "", environ=CREDENTIALS) == DOCUMENTS
    report = json.loads(upload.fetch(conf, "S3-1", "report.json", environ=CREDENTIALS))
    assert report["upload"]["ok"] is True and report["upload"]["url"] == "%s/%s/incidents/S3-1/report.html" % (moto["url"], bucket)
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in out + json.dumps(report)


def test_upload_to_a_presigned_url_sends_one_archive(tmp_path, moto):
    bucket = "agentops-presigned-%d" % os.getpid()
    conf, dummy = upload.settings({"url": "s3://%s" % bucket, "endpoint_url": moto["url"]}, environ=CREDENTIALS)
    s3_request(conf, "PUT", "%s/%s" % (moto["url"], bucket))
    presign = ("import boto3, botocore.config, sys; c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', "
               "aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3], config=botocore.config.Config(signature_version='s3v4')); "
               "print(c.generate_presigned_url('put_object', Params={'Bucket': sys.argv[4], "
               "'Key': 'drop/PRE-1.tar.gz'}, ExpiresIn=600))")
    url = subprocess.run([os.path.join(moto["bin"], "python"), "-c", presign, moto["url"], CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          CREDENTIALS["AWS_SECRET_ACCESS_KEY"], bucket], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert "X-Amz-Signature=" in url
    signature = url.rpartition("X-Amz-Signature=")[2]
    out = diagnose(tmp_path, "PRE-1", {"agentops_report_upload": url})
    assert "Uploaded: %s/%s/drop/PRE-1.tar.gz: 5 file(s) uploaded" % (moto["url"], bucket) in out
    assert signature not in out and signature not in everything_under(tmp_path)
    report = json.loads((tmp_path / "PRE-1" / "report.json").read_text())
    assert report["upload"]["ok"] is True and report["upload"]["url"] == "%s/%s/drop/PRE-1.tar.gz" % (moto["url"], bucket)
    archive = s3_request(conf, "GET", "%s/%s/drop/PRE-1.tar.gz" % (moto["url"], bucket))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert sorted(tar.getnames()) == ["PRE-1/" + name for name in DOCUMENTS]
