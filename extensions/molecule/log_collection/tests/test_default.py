"""Verify the bundle fetched next to the incident report."""
import hashlib
import io
import json
import os
import sys
import tarfile

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
FETCHED = os.path.join(EPHEMERAL, "incidents", "molecule-logs", "bundles", "instance.tar.gz")
sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tests", "fixtures"))
import log_corpus  # noqa: E402  pylint: disable=wrong-import-position


def members(host):
    data = host.file(FETCHED).content
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return dict((m.name, archive.extractfile(m).read()) for m in archive.getmembers() if m.isfile())


def test_fetched_bundle_is_private(host):
    assert host.file(FETCHED).mode == 0o600
    assert host.file(os.path.dirname(FETCHED)).mode == 0o700


def test_manifest_checksums_match(host):
    files = members(host)
    manifest = json.loads(files["molecule-logs/manifest.json"])
    assert len(manifest["files"]) >= 4
    for entry in manifest["files"]:
        assert hashlib.sha256(files["molecule-logs/" + entry["name"]]).hexdigest() == entry["sha256"]


def test_no_secret_in_the_bundle(host):
    blob = b"".join(members(host).values())
    for name, secret in log_corpus.SECRETS.items():
        assert secret.encode() not in blob, name
