"""The redaction engine, table-driven: every shape a secret scanner keys on, the look-alikes that must survive,
argv, structures, line streams with PEM blocks, truncation after redaction, and the keyword prefilter."""
import base64
import json
import re
import textwrap
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import redact
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor, key_kind, truncate

# Test values are assembled from pieces so that no literal token sits in this file.
R40 = "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3A"
HEX32 = "0123456789abcdef0123456789abcdef"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0In0" + ".sflKxwRJSMeKKF2QT4fwpM"
PEM_BODY = base64.b64encode(bytes(range(256)) * 3).decode()
PEM = "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----" % "\n".join(textwrap.wrap(PEM_BODY, 64))

# (kind of placeholder, text, the secret that must go)
SECRETS = [
    ("anthropic_key", "ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("openai_key", "key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx in use", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("aws_access_key", "aws AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "temporary ASIA" + "Y34FZKBOKMUTVV7A role", "ASIAY34FZKBOKMUTVV7A"),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("api_key", '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}', "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github_token", "token ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("github_token", "oauth gho_" + R40[:36], "gho_" + R40[:36]),
    ("github_token", "app ghs_" + R40[:36] + " expired", "ghs_" + R40[:36]),
    ("github_token", "fine github_pat_11ABCDEFG0123456789_" + R40, "github_pat_11ABCDEFG0123456789_" + R40),
    ("gitlab_token", "GITLAB glpat-" + R40[:20], "glpat-" + R40[:20]),
    ("gitlab_token", "runner glrt-" + R40[:20], "glrt-" + R40[:20]),
    ("gitlab_token", "deploy gldt-" + R40[:24], "gldt-" + R40[:24]),
    ("slack_token", "SLACK_BOT=xoxb-" + "123456789012-1234567890123-" + R40[:24], "xoxb-123456789012-1234567890123-" + R40[:24]),
    ("slack_token", "user xoxp-" + "1234-5678-" + R40[:20], "xoxp-1234-5678-" + R40[:20]),
    ("slack_token", "socket xapp-1-A0" + "123456789-1234567890123-" + HEX32, "xapp-1-A0123456789-1234567890123-" + HEX32),
    ("slack_webhook", "post https://hooks.slack.com/services/T0" + "1234567/B0123456789/" + R40[:24] + " ok",
     "T01234567/B0123456789/" + R40[:24]),
    ("stripe_key", "charge with sk_live_" + R40[:24], "sk_live_" + R40[:24]),
    ("stripe_key", "restricted rk_live_" + R40[:24], "rk_live_" + R40[:24]),
    ("stripe_key", "test sk_test_" + R40[:24], "sk_test_" + R40[:24]),
    ("google_api_key", "maps AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("npm_token", "//registry.npmjs.org/:_authToken=npm_" + R40[:36], "npm_" + R40[:36]),
    ("pypi_token", "TWINE pypi-AgEIcHlwaS5vcmc" + R40 + R40[:20], "pypi-AgEIcHlwaS5vcmc" + R40 + R40[:20]),
    ("sendgrid_key", "mail SG." + R40[:22] + "." + R40 + "abc", "SG." + R40[:22] + "." + R40 + "abc"),
    ("twilio_key", "sms SK" + HEX32, "SK" + HEX32),
    ("azure_storage_key", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + R40 + "Zm9v+/==;EndpointSuffix=core.windows.net",
     R40 + "Zm9v+/=="),
    ("jwt", "jwt " + JWT, JWT),
    ("bearer", "curl -H 'Authorization: Bearer abc.def-ghi_jkl123'", "abc.def-ghi_jkl123"),
    ("basic_auth", "Authorization: Basic " + base64.b64encode(b"admin:hunter2x").decode(), base64.b64encode(b"admin:hunter2x").decode()),
    ("auth", "Authorization: Token tok3n-v4lue-123", "tok3n-v4lue-123"),
    ("session", "Cookie: sid=abc123def; theme=dark", "abc123def"),
    ("auth", "Authorization: Token tok3n-v4lue-456 status=401", "tok3n-v4lue-456"),
    ("bearer", "req Authorization: Bearer tokenAAAA1111 ok", "tokenAAAA1111"),
    ("session", "Set-Cookie: session=abc123def456; Path=/; HttpOnly", "abc123def456"),
    ("api_key", "x-api-key: 0f1e2d3c4b5a", "0f1e2d3c4b5a"),
    ("url_password", "DATABASE_URL=postgres://agent:s3cr3tPass@db:5432/app", "s3cr3tPass"),
    ("url_password", "postgres://agent:pa/ss@wo%40rd@db:5432/app", "pa/ss@wo%40rd"),
    ("url_password", "redis://:r3dis%2Fpw@cache:6379/0", "r3dis%2Fpw"),
    ("url_password", "mongodb+srv://svc:M0ng0pw@cluster0.example.net/agent", "M0ng0pw"),
    ("password", "node server.js --db-password=hunter22", "hunter22"),
    ("password", "node server.js --password hunter23", "hunter23"),
    ("password", "PGPASSWORD=hunter24 psql", "hunter24"),
    ("password", "host=db user=app password='two words 9x' dbname=app", "two words 9x"),
    ("password", "Server=db;Database=app;User Id=sa;Password=Pa55w0rd!;", "Pa55w0rd!"),
    ("password", "  password: meta-secret-7", "meta-secret-7"),
    ("password", "login password: hunter25 from 10.0.0.5", "hunter25"),
    ("password", "ALTER ROLE agent PASSWORD 'it''s 7 secret'", "it''s 7 secret"),
    ("password", "CREATE USER app IDENTIFIED BY 'Or4cle'", "Or4cle"),
    ("password", "ALTER ROLE agent PASSWORD 'cut by the ser", "cut by the ser"),
    ("password", "mysql -u root -pMyS3cret agentdb", "MyS3cret"),
    ("password", "sshpass -p Ssh9ass ssh deploy@host", "Ssh9ass"),
    ("password", "docker login -u bob -p D0cker! registry.example.com", "D0cker!"),
    ("password", "redis-cli -h cache -a R3dis!pw ping", "R3dis!pw"),
    ("password", "openssl enc -aes-256-cbc -pass pass:Op3nSSLpw -in x", "Op3nSSLpw"),
    ("password", "{ password: 'js-inspect-9', user: 'x' }", "js-inspect-9"),
    ("password", '{"user": "bob", "password": "json-value-9"}', "json-value-9"),
    ("password", '{"msg": "body {\\"password\\":\\"escaped-9\\"}"}', "escaped-9"),
    ("password", "{'password': 'py-repr-9'}", "py-repr-9"),
    ("password", '{"password": 123456789}', "123456789"),
    ("basic_auth", "curl -u bob:Curl9pw https://api.example.com", "Curl9pw"),
    ("api_key", "STRIPE_API_KEY_2=abcdef123456", "abcdef123456"),
    ("api_key", '{"apiKey": "camel-9-key"}', "camel-9-key"),
    ("api_key", '{"headers": {"x-api-key": "hdr-9-key"}}', "hdr-9-key"),
    ("secret", "client_secret=cl13nt-s3cret", "cl13nt-s3cret"),
    ("secret", '{"clientSecret": "cs-9-value"}', "cs-9-value"),
    ("token", "?access_token=at-9-value&page=2", "at-9-value"),
    ("token", '{"refresh_token": "rt-9-value"}', "rt-9-value"),
    ("token", "--token tk-9-value", "tk-9-value"),
    ("credential", "credentials=cred-9-value", "cred-9-value"),
    ("session", "session=sess-9-value", "sess-9-value"),
    ("session", '{"headers": {"cookie": "a=1; b=2"}}', "a=1; b=2"),
    ("auth", '{"req": {"headers": {"authorization": "Digest username=x, response=abc"}}}', "Digest username=x, response=abc"),
    ("auth", '{"proxy-authorization": "Negotiate YIIabc123"}', "Negotiate YIIabc123"),
    ("dsn", "SENTRY_DSN=https://abc123@o1.ingest.sentry.io/42", "abc123@o1.ingest.sentry.io/42"),
    ("signature", "https://x.blob.core.windows.net/c/b?sv=2022&sig=AbC%2Bdef123", "AbC%2Bdef123"),
    ("private_key", "key " + PEM, PEM_BODY[:64]),
    ("private_key", json.dumps({"private_key": PEM + "\n", "type": "service_account"}), PEM_BODY[64:128]),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "b3BlbnNzaC1rZXktdjEAAAAA"),
    ("session", '{"set-cookie": ["a=1; Path=/", "b=2"]}', "a=1; Path=/"),
]


@pytest.mark.parametrize("kind, text, secret", SECRETS, ids=["%s-%d" % (s[0], i) for i, s in enumerate(SECRETS)])
def test_secret_never_survives(kind, text, secret):
    redactor = Redactor()
    out = redactor.text(text)
    assert secret not in out
    assert "[REDACTED:%s#1]" % kind in out, out
    assert redactor.total >= 1


# Look-alikes: none of these is a secret; each must come out unchanged.
LOOKALIKES = [
    "conversationId: conv-7f3a9c",
    "requestId=6f1c2e9a-3b4d-4e5f-8a7b-9c0d1e2f3a4b",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    '{"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}',
    "[2025-12-24T14:35:22.123Z] [ERROR] [agent:code-review] spawn claude ENOENT",
    "/srv/agent/releases/20251224143522Z/dist/server.js",
    "tokenizer=cl100k_base",
    "passwordless=true",
    "author=jane.doe",
    "session_count=3",
    "max_tokens=4096 input_tokens=1200 output_tokens=350",
    "pk_live_51HabcDEFghiJKLmnoPQR",
    "--auth-method oidc",
    "sessionId: sess-20251224-0042",
    "password_min_length=12 password_file=/run/secrets/db",
    "--password-file /run/secrets/db_password",
    "docker login --password-stdin registry.example.com",
    "PWD=/srv/agent OLDPWD=/srv",
    "password=${DB_PASSWORD} token=*** secret=$1 pass=?",
    "invalid token: expected string, got undefined",
    "Authorization header missing on /v1/messages",
    "basic configuration loaded, bearer authentication enabled",
    "https://registry.npmjs.org/@anthropic-ai/claude-code",
    "http://localhost:8080/@scope/pkg",
    "git@github.com:agentops/runbooks.git",
    "ssh deploy@10.0.0.5 -p 22",
    "psql -h db -p 5432 -U agent",
    "docker run -u 1000:1000 -p 8080:80 image",
    "Cache-Control: no-cache",
    "content-type: application/json",
    "retry-after: 30",
    "key=user:42 sort_key=ts primary_key=id",
    "public_key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq8d9g2kX0vYcN1wQ7mJ4tR5sL6pU3zA8bF2eD1cG0h",
    "private_key_id=6525198abdb60f45c0508b6d67d6dc15063194cb",
    "AC" + HEX32,
    "secretName: agent-db-credentials",
    "auth_enabled=true token_count=1532",
    "rotate ghp_ tokens monthly; task-runner-01 disk-usage",
    "jane.doe@example.com",
    "-----BEGIN CERTIFICATE-----",
    "GET /v1/messages 200 in 35ms node --max-old-space-size=4096 server.js",
    "node -p 'process.versions' -e 'x'",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalike_survives_unchanged(text):
    redactor = Redactor()
    assert redactor.text(text) == text
    assert redactor.argv(text.split()) == " ".join(text.split())
    assert redactor.total == 0


# argv as a list: (argv, must not survive, must survive)
ARGV = [
    (["claude", "--api-key", "sk-ant-xxxxxxxxxxxxxxxxxxxxxxxx"], ["xxxxxxxxxxxxxxxx"], ["claude --api-key [REDACTED:anthropic_key#1]"]),
    (["node", "app.js", "--password", "correct horse battery"], ["correct", "horse", "battery"], ["--password [REDACTED:password#1]"]),
    (["node", "app.js", "--db-password=two words"], ["two", "words"], ["--db-password=[REDACTED:password#1]"]),
    (["env", "DB_PASSWORD=a b c", "node"], ["a b c"], ["DB_PASSWORD=[REDACTED:password#1] node"]),
    (["sshpass", "-p", "my pw 7", "ssh", "host"], ["my pw 7"], ["sshpass -p [REDACTED:password#1] ssh host"]),
    (["mysql", "-u", "root", "-pS3cr3t!", "db"], ["S3cr3t!"], ["-p[REDACTED:password#1] db"]),
    (["docker", "login", "-u", "bob", "-p", "D0ck3r", "reg.io"], ["D0ck3r"], ["-u bob -p [REDACTED:password#1] reg.io"]),
    (["redis-cli", "-a", "R3d1s", "ping"], ["R3d1s"], ["-a [REDACTED:password#1] ping"]),
    (["curl", "-u", "bob:pa55 word", "-H", "Authorization: Bearer abcDEF123456", "https://api.example.com/v1"],
     ["pa55", "abcDEF123456"], ["-u bob:[REDACTED:basic_auth#1] -H Authorization: Bearer [REDACTED:bearer#1] https://api.example.com/v1"]),
    (["psql", "-h", "db", "-p", "5432"], [], ["psql -h db -p 5432"]),
    (["ssh", "-p", "22", "host"], [], ["ssh -p 22 host"]),
    (["node", "--auth-method", "oidc", "--session-count", "3"], [], ["--auth-method oidc --session-count 3"]),
    (["node", "--password-file", "/run/secrets/pw"], [], ["--password-file /run/secrets/pw"]),
    (["node", "--token", "--verbose"], [], ["--token --verbose"]),
]


@pytest.mark.parametrize("argv, gone, kept", ARGV)
def test_argv_redacts_flag_values_whole(argv, gone, kept):
    out = Redactor().argv(argv)
    for secret in gone:
        assert secret not in out, out
    for text in kept:
        assert text in out, out


def test_same_secret_same_placeholder_whichever_rule_finds_it():
    redactor = Redactor()
    a = redactor.text("req 1 Authorization: Bearer tokenAAAA1111 ok")
    b = redactor.text("req 2 Authorization: Bearer tokenAAAA1111 ok")
    c = redactor.text("req 3 Authorization: Bearer tokenBBBB2222 ok")
    assert a.replace("req 1", "") == b.replace("req 2", "")
    assert "[REDACTED:bearer#2]" in c
    same = [redactor.text("password=Hunter2xyz"), redactor.text("postgres://u:Hunter2xyz@db/app"),
            redactor.argv(["x", "--password", "Hunter2xyz"]), redactor.data({"password": "Hunter2xyz"})["password"]]
    placeholders = set(re.findall(r"\[REDACTED:[^\]]+\]", " ".join(same)))
    assert len(placeholders) == 1, same
    plain = "GET /v1/messages 200 in 35ms node --max-old-space-size=4096 server.js"
    assert redactor.text(plain) == plain


def test_redaction_is_idempotent():
    redactor = Redactor()
    once = redactor.text("password=abc123 Authorization: Bearer " + JWT + " sk-ant-api03-" + R40)
    total = redactor.total
    assert Redactor().text(once) == once and redactor.text(once) == once and redactor.total == total


def test_data_redacts_every_string_and_every_secret_key_keeps_numbers():
    redactor = Redactor()
    out = redactor.data({
        "facts": {"cmd": "node app --token tk-1-secret", "redactions": {"password": 3, "url_password": 1},
                  "nested": [{"headers": {"authorization": "Bearer abcdefgh12345", "set-cookie": ["s=1", "t=2"]}}],
                  "dsn": "postgres://u:pw9@db/app", "sessionId": "sess-1", "ok": True, "tags": ("a", "b")},
        "findings": [{"evidence": {"client_secret": "cs-value", "password": "", "max_tokens": "4096"}}],
        "sk-ant-api03-%s" % R40: "a key as a dict key",
    })
    text = json.dumps(out)
    for secret in ("tk-1-secret", "abcdefgh12345", "pw9", "cs-value", R40, "s=1", "t=2"):
        assert secret not in text
    assert out["facts"]["redactions"] == {"password": 3, "url_password": 1}
    assert out["facts"]["sessionId"] == "sess-1" and out["facts"]["ok"] is True and out["facts"]["tags"] == ("a", "b")
    assert out["findings"][0]["evidence"]["password"] == "" and out["findings"][0]["evidence"]["max_tokens"] == "4096"
    assert out["facts"]["nested"][0]["headers"]["set-cookie"][0].startswith("[REDACTED:session#")
    assert out["facts"]["nested"][0]["headers"]["authorization"] == "Bearer [REDACTED:bearer#1]"


# ------------------------------------------------------------------ line streams and PEM blocks
def stream(lines):
    redactor = Redactor()
    return list(redactor.lines(lines)), redactor


def test_a_pem_block_across_lines_becomes_one_placeholder_line():
    lines = ["[t] [ERROR] [x] loading key " + PEM.split("\n", maxsplit=1)[0]] + PEM.split("\n")[1:] + ["[t] [INFO] [x] after"]
    out, redactor = stream(lines)
    assert out == ["[t] [ERROR] [x] loading key [REDACTED:private_key#1]", "[t] [INFO] [x] after"]
    assert redactor.counts == {"private_key": 1}


def test_the_same_key_in_a_file_and_in_json_gets_one_placeholder():
    redactor = Redactor()
    in_file = list(redactor.lines(PEM.split("\n")))
    in_json = redactor.text(json.dumps({"private_key": PEM + "\n"}))
    assert in_file == ["[REDACTED:private_key#1]"] and "[REDACTED:private_key#1]" in in_json


def test_a_block_whose_begin_was_cut_away_is_still_replaced():
    body = PEM.split("\n")[1:]  # a file read from an offset: the BEGIN line is gone
    out, dummy = stream(["tail of an entry"] + body[5:] + ["[t] [INFO] [x] after"])
    assert out == ["tail of an entry", "[REDACTED:private_key#1]", "[t] [INFO] [x] after"]


def test_a_block_without_end_is_replaced_to_the_end_of_the_stream_or_the_cap():
    out, dummy = stream(PEM.split("\n")[:4])
    assert out == ["[REDACTED:private_key#1]"]
    lines = PEM.split("\n")[:2] + ["filler line %d" % n for n in range(redact.PEM_MAX_LINES + 5)]
    out, dummy = stream(lines)
    assert out[0] == "[REDACTED:private_key#1]" and out[1:] == lines[redact.PEM_MAX_LINES:]
    assert not any(PEM_BODY[:64] in line for line in out)


def test_certificates_and_base64_lines_survive():
    cert = ["-----BEGIN CERTIFICATE-----"] + textwrap.wrap(PEM_BODY, 64) + ["-----END CERTIFICATE-----", "next"]
    out, redactor = stream(cert)
    assert out == cert and redactor.total == 0


# ------------------------------------------------------------------ truncation after redaction
def test_redact_then_truncate_never_leaves_half_a_secret_or_half_a_placeholder():
    secret = "sk-ant-api03-" + R40
    text = "x" * 280 + " " + secret + " tail"
    assert secret[:12] in text[:300]  # the old order (cut, then redact) would leave this
    out = truncate(Redactor().text(text), 300)
    assert "sk-ant" not in out and out.endswith("...")
    assert truncate("a" * 295 + "[REDACTED:password#1]", 300) == "a" * 295 + "..."
    assert truncate("short", 300) == "short"


# ------------------------------------------------------------------ key names
@pytest.mark.parametrize("key, kind", [
    ("password", "password"), ("DB_PASSWORD", "password"), ("PGPASSWORD", "password"), ("dbPassword", "password"),
    ("MYSQL_PWD", "password"), ("passphrase", "password"), ("api_key", "api_key"), ("apiKey", "api_key"),
    ("X-Api-Key", "api_key"), ("AWS_SECRET_ACCESS_KEY", "api_key"), ("AccountKey", "api_key"), ("private_key", "private_key"),
    ("client_secret", "secret"), ("jwtSecret", "secret"), ("access_token", "token"), ("idToken", "token"), ("_authToken", "token"),
    ("credentials", "credential"), ("set-cookie", "session"), ("session", "session"), ("authorization", "auth"),
    ("proxy-authorization", "auth"), ("oauth", "auth"), ("SENTRY_DSN", "dsn"), ("sig", "signature"),
    ("tokenizer", None), ("max_tokens", None), ("passwordless", None), ("author", None), ("session_count", None),
    ("sessionId", None), ("password_file", None), ("--auth-method", None), ("key", None), ("primary_key", None),
    ("public_key", None), ("private_key_id", None), ("secretName", None), ("token_count", None), ("sessions", None),
])
def test_key_kind(key, kind):
    assert key_kind(key) == kind


# ------------------------------------------------------------------ the prefilter and the cost
def test_every_rule_has_keywords_and_a_clean_line_runs_no_rule():
    assert all(rule.words or rule.marks for rule in redact.RULES)
    redactor = Redactor()
    for line in ("[2025-12-24T14:35:22.123Z] [INFO] [manager] heartbeat ok seq=42", '{"level":30,"msg":"request completed","ms":35}'):
        assert redactor._selected(line) == ()


def test_each_rule_runs_only_when_one_of_its_keywords_is_there():
    """gitleaks' design: for every example above, the rules that ran are those whose keywords occur."""
    redactor = Redactor()
    for dummy, text, dummy in SECRETS:
        low = text.lower()
        for index in redactor._selected(text):
            rule = redactor.rules[index]
            assert any(w in low for w in rule.words) or any(m in text for m in rule.marks)


def test_the_prefilter_finds_every_keyword_and_every_line_that_holds_one():
    """_selected (the trie searched from each place a keyword starts) and block's line search (a literal search per
    anchor character) against their definition, on texts made of keywords, their pieces, overlaps and other lines."""
    import random
    rnd = random.Random(5)
    redactor = Redactor()
    words = sorted(set(word for rule in redactor.rules for word in rule.words))
    marks = sorted(set(mark for rule in redactor.rules for mark in rule.marks))
    keywords = words + marks + [word.upper() for word in words] + [mark.lower() for mark in marks]
    pieces = keywords + [word[:cut] for word in keywords for cut in range(1, len(word))] + \
        [word[cut:] for word in keywords for cut in range(1, len(word))] + [" ", "x", "\n", "=", "tokenkey", "AKIAKIA"]
    seen = set()
    for dummy in range(4000):
        text = "".join(rnd.choice(pieces) for dummy in range(rnd.randrange(1, 12)))
        low = text.lower()
        expected = sorted(index for index, rule in enumerate(redactor.rules)
                          if any(word in low for word in rule.words) or any(mark in text for mark in rule.marks))
        assert list(redactor._selected(text)) == expected, text
        starts, at = set(), 0
        for line in text.split("\n"):
            if any(word in line.lower() for word in words) or any(mark in line for mark in marks):
                starts.add(at)
            at += len(line) + 1
        assert redactor._words.line_starts(low) | redactor._marks.line_starts(text) == starts, text
        seen.add(len(expected) > 3)
    assert seen == set((True, False))


def test_a_text_dense_with_keywords_costs_no_more_than_a_test_per_keyword():
    """Past a few places where keywords start, present() tests each keyword once instead of searching from each place."""
    from ansible_collections.agentops.runbooks.plugins.module_utils import keywords

    class Counted(object):
        def __init__(self, pattern):
            self.pattern, self.calls = pattern, 0

        def search(self, text, pos=0):
            self.calls += 1
            return self.pattern.search(text, pos)

    redactor = Redactor()
    for text in ("key" * 100000, "tokentoken " * 30000, "aws " * 50000, "token key"):
        counted = redactor._words.trie = Counted(redactor._words.trie)
        expected = sorted(index for index, rule in enumerate(redactor.rules) if any(word in text for word in rule.words))
        assert list(redactor._selected(text)) == expected
        assert counted.calls <= keywords.STARTS_BEFORE_TESTS + 1
        redactor._words.trie = counted.pattern


@pytest.mark.parametrize("value", ["password=hunter2", "a\npassword=hunter2", "\u00e9 password=hunter2", "x\n\u00e9 token: abcdefgh12345678"])
def test_block_of_text_without_a_final_newline_redacts_its_last_line_whole(value):
    redactor = Redactor()
    assert redactor.block(value) == redactor.block(value + "\n")[:-1] == "\n".join(Redactor().text(line) for line in value.split("\n"))
    assert "hunter2" not in redactor.block(value) and "12345678" not in redactor.block(value)


@pytest.mark.parametrize("text", [
    "key " + "A" * 65000, "token=" + "a" * 65000, "https://u:" + "b" * 65000, "x://" + "a:" * 30000,
    '"password": "' + "a\\" * 30000, "password=x " * 6000, "token: " * 9000, '\\"password\\":\\"' + "a" * 60000,
    "authorization: " + "a " * 30000, "-----BEGIN PRIVATE KEY-----" + "A" * 65000, "--password " * 6000, "aws " * 15000,
    "-p " * 20000 + "mysql", "http://a:" + "@" * 60000,
])
def test_no_pattern_backtracks_badly_on_a_long_line(text):
    began = time.monotonic()
    Redactor().text(text)
    assert time.monotonic() - began < 1.0


def test_bad_extra_pattern_is_one_sentence():
    with pytest.raises(ValueError) as err:
        Redactor(extra_patterns=["("])
    assert "not a valid regular expression" in str(err.value)


def test_extra_patterns_run_after_the_rules():
    redactor = Redactor(extra_patterns=[r"customer-(\d{6})"])
    assert redactor.text("customer-123456 password=abc12") == "customer-[REDACTED:custom#1] password=[REDACTED:password#1]"


def test_a_run_key_gives_one_placeholder_per_secret_across_redactors():
    secret = "ghp_" + "Ab1" * 12
    first = Redactor(key="run-key-1").text("token %s" % secret)
    again = Redactor(key="run-key-1").argv(["gh", "--token", secret])
    other = Redactor(key="run-key-2").text("token %s" % secret)
    placeholder = first.split()[-1]
    assert re.match(r"^\[REDACTED:[a-z_]+#[0-9a-f]{8}\]$", placeholder) and secret not in first
    assert again.endswith(placeholder)
    assert other.split()[-1] != placeholder  # without the run's key a placeholder cannot be matched to a guess
