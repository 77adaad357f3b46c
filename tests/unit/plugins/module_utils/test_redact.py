import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor

SECRETS = [
    ("anthropic_key", "ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("openai_key", "key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx in use", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("aws_access_key", "aws AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("github_token", "token ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("bearer", "curl -H 'Authorization: Bearer abc.def-ghi_jkl123'", "abc.def-ghi_jkl123"),
    ("jwt", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sflKxwRJSMeKKF2QT4fwpM", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sflKxwRJSMeKKF2QT4fwpM"),
    ("url_password", "DATABASE_URL=postgres://agent:s3cr3tPass@db:5432/app", "s3cr3tPass"),
    ("password", "node server.js --db-password=hunter22", "hunter22"),
    ("password", "node server.js --password hunter23", "hunter23"),
    ("password", "PGPASSWORD=hunter24 psql", "hunter24"),
]


@pytest.mark.parametrize("kind, text, secret", SECRETS)
def test_secret_never_survives(kind, text, secret):
    redactor = Redactor()
    out = redactor.text(text)
    assert secret not in out
    assert "[REDACTED:" in out
    assert redactor.total >= 1


def test_same_secret_same_placeholder_and_other_text_unchanged():
    redactor = Redactor()
    a = redactor.text("req 1 Authorization: Bearer tokenAAAA1111 ok")
    b = redactor.text("req 2 Authorization: Bearer tokenAAAA1111 ok")
    c = redactor.text("req 3 Authorization: Bearer tokenBBBB2222 ok")
    assert a.replace("req 1", "") == b.replace("req 2", "")
    assert a.split("Bearer ")[-1] != c.split("Bearer ")[-1] or "#2" in c
    plain = "GET /v1/messages 200 in 35ms node --max-old-space-size=4096 server.js"
    assert redactor.text(plain) == plain


def test_argv_joins_then_redacts():
    assert Redactor().argv(["claude", "--api-key", "sk-ant-xxxxxxxxxxxxxxxxxxxxxxxx"]) == "claude --api-key [REDACTED:anthropic_key#1]"


def test_bad_extra_pattern_is_one_sentence():
    with pytest.raises(ValueError) as err:
        Redactor(extra_patterns=["("])
    assert "not a valid regular expression" in str(err.value)
