"""plugins/plugin_utils/upload.py: settings, SigV4 (AWS's published examples), uploads through a fake transport."""
import datetime
import io
import json
import tarfile

import pytest

from ansible_collections.agentops.runbooks.plugins.plugin_utils import upload

ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE1", "AWS_SECRET_ACCESS_KEY": "secret-key-0123456789", "AWS_SESSION_TOKEN": "session-token-0123456789"}


@pytest.mark.parametrize("value, kind, expect", [
    ("https://h.example/r", "http", {"method": "PUT", "presigned": False}),
    ({"url": "https://h.example/r", "method": "post"}, "http", {"method": "POST"}),
    ("s3://bucket-1/some/prefix/", "s3", {"bucket": "bucket-1", "prefix": "some/prefix", "region": "us-east-1"}),
    ({"url": "s3://bucket-1", "endpoint_url": "http://127.0.0.1:9000/", "region": "eu-west-1"}, "s3",
     {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1", "prefix": ""}),
    ("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=x", "s3", {"presigned": True}),
])
def test_settings(value, kind, expect):
    conf, problems = upload.settings(value, environ=ENV)
    assert problems == [] and conf["kind"] == kind
    assert dict((k, conf[k]) for k in expect) == expect


@pytest.mark.parametrize("value, token, environ, sentence", [
    ({"url": "https://h/r", "method": "DELETE"}, "", ENV, "agentops_report_upload.method must be PUT or POST"),
    ({"url": "https://h/r", "delete_local": "maybe"}, "", ENV, "agentops_report_upload.delete_local must be true or false"),
    ({"url": "https://h/r", "retries": 99}, "", ENV, "agentops_report_upload.retries must be between 0 and 20"),
    ({"url": "https://h/r", "colour": 1}, "", ENV, "agentops_report_upload does not take colour"),
    ("ftp://h/r", "", ENV, "agentops_report_upload must be an https:// URL"),
    ("http://example.com/r", "", ENV, "agentops_report_upload is plain http to example.com: use https"),
    ("s3://bucket-1", "", {}, "s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ("s3://Bad_Bucket", "", ENV, "is not an S3 bucket name"),
    ({"url": "https://h/r", "kind": "s3"}, "", ENV, "must be a presigned URL"),
    (["https://h/r"], "", ENV, "must be a URL (https://..., s3://bucket/prefix) or a mapping, got list"),
])
def test_bad_settings_are_one_sentence(value, token, environ, sentence):
    dummy, problems = upload.settings(value, token, environ=environ)
    assert any(sentence in p for p in problems), problems


def test_nothing_configured():
    assert upload.settings("", environ=ENV) == (None, [])
    assert upload.settings({}, environ=ENV) == (None, [])


def test_http_to_loopback_is_allowed_with_a_token():
    assert upload.settings("http://127.0.0.1:8080/r", "tok-0123456789", environ=ENV)[1] == []


# AWS's examples for Signature Version 4 (Amazon S3 API reference, "Signature calculations for the Authorization header").
EXAMPLE_ENV = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
WHEN = datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc)


def test_sigv4_get_object_example():
    headers = upload.sign_v4("GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"}, upload.EMPTY_SHA256,
                             EXAMPLE_ENV[0], EXAMPLE_ENV[1], "us-east-1", now=WHEN)
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_sigv4_list_objects_example():
    headers = upload.sign_v4("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", {}, upload.EMPTY_SHA256,
                             EXAMPLE_ENV[0], EXAMPLE_ENV[1], "us-east-1", now=WHEN)
    assert headers["Authorization"].endswith("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


def test_sigv4_session_token_is_signed():
    headers = upload.sign_v4("PUT", "http://127.0.0.1:9000/b/k", {}, upload.EMPTY_SHA256, "A", "S", "us-east-1", session_token="T", now=WHEN)
    assert headers["x-amz-security-token"] == "T" and "x-amz-security-token" in headers["Authorization"]


def incident(tmp_path):
    directory = tmp_path / "INC-1"
    (directory / "bundles").mkdir(parents=True)
    for name, text in (("report.json", "{}"), ("report.md", "# r"), ("bundles/host-1.tar.gz", "gz"), (".report.json.lock", "")):
        (directory / name).write_text(text)
    (directory / "link.md").symlink_to(tmp_path / "elsewhere")
    return directory


class Fake(object):
    def __init__(self, answers=None):
        self.calls, self.answers = [], list(answers or [])

    def __call__(self, method, url, body, headers, timeout):
        self.calls.append((method, url, body, headers))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, int):
            return answer, {}, b""
        raise answer  # pylint: disable=raising-bad-type  # an exception the transport would raise


def test_files_of_skips_links_and_dot_files(tmp_path):
    assert upload.files_of(str(incident(tmp_path))) == ["bundles/host-1.tar.gz", "report.json", "report.md"]


def test_http_upload_with_a_token_and_retries(tmp_path):
    directory = incident(tmp_path)
    conf, dummy = upload.settings({"url": "https://u:pw-secret-1@up.example/base/"}, "tok-0123456789", environ=ENV)
    fake = Fake([503, 200, 200, 200])
    result = upload.upload(str(directory), "INC-1", conf, transport=fake, sleep=lambda s: None, environ=ENV)
    assert result["ok"] and result["uploaded"] == ["bundles/host-1.tar.gz", "report.json", "report.md"] and result["attempts"] == 4
    assert [c[1] for c in fake.calls][1:] == ["https://up.example/base/INC-1/bundles/host-1.tar.gz", "https://up.example/base/INC-1/report.json",
                                              "https://up.example/base/INC-1/report.md"]
    assert result["url"] == "https://up.example/base/INC-1/report.md" and result["target"] == "https://up.example/base/INC-1/"
    assert "tok-0123456789" not in json.dumps(result) and "pw-secret-1" not in json.dumps(result)


def test_a_failed_file_is_recorded_and_never_raises(tmp_path):
    directory = incident(tmp_path)
    conf, dummy = upload.settings({"url": "https://up.example/b", "retries": 0}, "tok-0123456789", environ=ENV)
    result = upload.upload(str(directory), "INC-1", conf, transport=Fake([200, 403, 200]), sleep=lambda s: None, environ=ENV)
    assert not result["ok"] and result["failed"][0]["name"] == "report.json" and result["failed"][0]["status"] == 403
    assert result["error"].startswith("1 of 3 file(s) not uploaded; report.json: HTTP 403")
    assert "FAILED" in upload.describe(result) and "local copy stays" in upload.describe(result)


def test_s3_upload_is_signed_and_path_style_on_an_endpoint(tmp_path):
    directory = incident(tmp_path)
    conf, dummy = upload.settings({"url": "s3://bucket-1/p", "endpoint_url": "http://127.0.0.1:9000"}, environ=ENV)
    fake = Fake()
    result = upload.upload(str(directory), "INC-1", conf, names=["report.md"], transport=fake, environ=ENV)
    assert result["ok"] and result["target"] == "s3://bucket-1/p/INC-1/"
    method, url, body, headers = fake.calls[0]
    assert (method, url, body) == ("PUT", "http://127.0.0.1:9000/bucket-1/p/INC-1/report.md", b"# r")
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE1/") and headers["x-amz-security-token"]
    assert ENV["AWS_SECRET_ACCESS_KEY"] not in json.dumps(result)


def test_s3_on_aws_is_virtual_hosted():
    conf, dummy = upload.settings("s3://bucket-1/p", environ=dict(ENV, AWS_REGION="eu-west-1"))
    assert upload.object_url(conf, "INC-1", "report.md") == "https://bucket-1.s3.eu-west-1.amazonaws.com/p/INC-1/report.md"


def test_presigned_url_gets_one_archive_and_its_signature_is_never_shown(tmp_path):
    directory = incident(tmp_path)
    url = "https://b.s3.amazonaws.com/drop/INC-1.tar.gz?X-Amz-Credential=AKID&X-Amz-Signature=deadbeefcafe0123"
    conf, dummy = upload.settings(url, environ={})
    fake = Fake()
    result = upload.upload(str(directory), "INC-1", conf, transport=fake, environ={})
    assert result["ok"] and result["url"] == "https://b.s3.amazonaws.com/drop/INC-1.tar.gz"
    assert fake.calls[0][1] == url and "Authorization" not in fake.calls[0][3]
    with tarfile.open(fileobj=io.BytesIO(fake.calls[0][2])) as tar:
        assert sorted(tar.getnames()) == ["INC-1/bundles/host-1.tar.gz", "INC-1/report.json", "INC-1/report.md"]
    assert "deadbeefcafe0123" not in json.dumps(result)


def test_delete_local_removes_what_was_uploaded_and_empty_directories(tmp_path):
    directory = incident(tmp_path)
    removed = upload.delete_local(str(directory), ["report.json", "bundles/host-1.tar.gz"])
    assert removed == ["report.json", "bundles/host-1.tar.gz"]
    assert sorted(p.name for p in directory.iterdir()) == [".report.json.lock", "link.md", "report.md"]


@pytest.mark.parametrize("body, names", [
    (b'["partial-1.json", "partial-2.json"]', ["partial-1.json", "partial-2.json"]),
    (b'<html><a href="../">up</a><a href="partial-1.json">p</a><a href="sub/">s</a></html>', ["partial-1.json"]),
])
def test_list_names_over_http(body, names):
    conf, dummy = upload.settings("https://up.example/b", environ=ENV)

    def transport(method, url, data, headers, timeout):
        assert url == "https://up.example/b/INC-1/partials/"
        return 200, {}, body
    assert upload.list_names(conf, "INC-1", "partials", transport=transport, environ=ENV) == names


def test_list_names_over_s3():
    conf, dummy = upload.settings({"url": "s3://bucket-1/p", "endpoint_url": "http://127.0.0.1:9000"}, environ=ENV)
    xml = (b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>'
           b'<Contents><Key>p/INC-1/partials/partial-a.json</Key></Contents><Contents><Key>p/INC-1/partials/partial-b.json</Key></Contents>'
           b'</ListBucketResult>')
    seen = []

    def transport(method, url, data, headers, timeout):
        seen.append(url)
        return 200, {}, xml
    assert upload.list_names(conf, "INC-1", "partials", transport=transport, environ=ENV) == ["partial-a.json", "partial-b.json"]
    assert seen == ["http://127.0.0.1:9000/bucket-1?list-type=2&prefix=p%2FINC-1%2Fpartials%2F"]
