# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one redaction engine: command lines in process facts, query texts, log
lines in reports and bundles, and whole module results pass through
:class:`Redactor` before they leave a host.

* ``text(s)`` redacts a string (a log line, a query, a message; newlines allowed);
* ``argv(list)`` redacts a command line given as a list (a secret flag's value is
  redacted whole even when it holds spaces) and returns one string;
* ``data(obj)`` redacts every string of a JSON-like structure, and the whole value of
  any key that names a secret (``password``, ``apiKey``, ``set-cookie`` ...);
* ``lines(iterable)`` / ``stream()`` redact a stream of lines, where a PEM private key
  block spans lines: everything from BEGIN to END is replaced.

The same secret always gets the same placeholder within one ``Redactor``
(``[REDACTED:bearer#1]``), whichever rule found it, so correlation across lines
survives while the secret does not. Counts per kind are kept for manifests.

Rules are data (:data:`RULES`), like gitleaks' rules: each lists keywords, and a
text that contains none of a rule's keywords never runs that rule's regex; a line
without any keyword costs one ``lower()`` and one search of a trie of all keywords.
Callers redact the whole text first and cut afterwards (:func:`truncate`), never the
reverse: a cut can leave half a secret that no rule recognises.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import re

from ansible_collections.agentops.runbooks.plugins.module_utils.keywords import Keywords

PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+#(?:\d+|[0-9a-f]{8})\]")
SCHEMES = frozenset(("bearer", "basic", "token", "digest", "negotiate", "apikey", "bot"))

# ------------------------------------------------------------------ key names
# A key names a secret when its last word (split at _ - . and camelCase) is, or ends
# with, one of these; "key" alone only after a qualifier (api key, access key ...).
_EXACT = {
    "password": "password", "passwd": "password", "pwd": "password", "pass": "password", "passphrase": "password",
    "secret": "secret", "token": "token", "auth": "auth", "authorization": "auth", "credential": "credential",
    "credentials": "credential", "creds": "credential", "cookie": "session", "cookies": "session", "session": "session",
    "jsessionid": "session", "phpsessid": "session", "sessid": "session", "dsn": "dsn", "sig": "signature",
    "signature": "signature", "apikey": "api_key", "accesskey": "api_key", "privatekey": "private_key",
    "secretkey": "api_key", "accountkey": "api_key", "masterkey": "api_key",
}
_ENDINGS = (("password", "password"), ("passwd", "password"), ("pwd", "password"), ("passphrase", "password"),
            ("secret", "secret"), ("token", "token"), ("apikey", "api_key"), ("accesskey", "api_key"),
            ("secretkey", "api_key"), ("privatekey", "private_key"), ("credentials", "credential"),
            ("credential", "credential"), ("cookie", "session"), ("auth", "auth"))
_KEY_QUALIFIERS = frozenset(("api", "access", "private", "secret", "account", "client", "signing", "encryption", "master",
                             "app", "auth", "service", "subscription", "license", "shared", "storage", "consumer",
                             "webhook", "hmac", "sas", "session", "admin", "write", "deploy", "ingest", "routing", "integration"))
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_KIND_CACHE = {}


def key_kind(key):
    """The kind of secret a key, option or header name names (``db_password`` -> ``password``), or None.

    ``max_tokens``, ``tokenizer``, ``passwordless``, ``author``, ``session_count``, ``sessionId``,
    ``password_file`` and ``--auth-method`` name no secret: only the last word counts."""
    kind = _KIND_CACHE.get(key, False)
    if kind is not False:
        return kind
    words = [w.lower() for w in _WORDS.findall(key)]
    while words and words[-1].isdigit():
        words.pop()  # API_KEY_2, password2
    kind = None
    if words:
        last = words[-1]
        kind = _EXACT.get(last)
        if kind is None and last == "key":
            kind = ("private_key" if words[-2] == "private" else "api_key") if len(words) > 1 and words[-2] in _KEY_QUALIFIERS else None
        if kind is None and len(last) > 4:
            kind = next((k for ending, k in _ENDINGS if last.endswith(ending)), None)
    if len(_KIND_CACHE) < 4096:
        _KIND_CACHE[key] = kind
    return kind


_NOT_A_VALUE = re.compile(r"^(?:true|false|null|none|nil|undefined|redacted|hidden|masked|omitted|filtered|\*+|x{3,}|\?|"
                          r"\$\d+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|%\(?\w*\)?s|\{\{.*\}\}|<[^<>]*>)$", re.I)


def is_value(value):
    """False for what stands in for a secret rather than being one: empty, booleans, ``***``,
    ``${DB_PASSWORD}``, ``$1``/``?`` bind parameters, ``<hidden>`` and placeholders already made."""
    value = value.strip()
    if not value or _NOT_A_VALUE.match(value) or value.lower() in SCHEMES:
        return False
    return bool(PLACEHOLDER.sub("", value).strip().strip("'\""))


def secretish(value):
    """A bare word after ``key:`` in prose (``token: expired``) is not taken for a secret; one with a digit,
    a symbol or 12+ letters is."""
    if len(value) >= 12:
        return True
    return len(value) >= 4 and not value.isalpha()


def _only_placeholders(value):
    """True when a captured value is already redacted (``Bearer [REDACTED:jwt#1]``)."""
    if "[REDACTED:" not in value:
        return False
    rest = re.sub(r"\\[nrt]|[\"']", " ", PLACEHOLDER.sub(" ", value)).split()
    return all(word.lower().rstrip(":=") in SCHEMES or word.lower() in ("pass:", "env:") for word in rest)


# ------------------------------------------------------------------ programs
# Short flags that mean a password only for some programs (``-p`` is a port for psql and ssh).
_PROGRAM_FLAGS = (
    ("-p", re.compile(r"(?:^|[\s/])(?:mysql\w*|mariadb\w*|sshpass)(?=\s|$)|(?:^|\s)(?:docker|podman|nerdctl|helm|oras|buildah|skopeo)"
                      r"(?:\s+\S+)*?\s+login(?=\s|$)")),
    ("-a", re.compile(r"(?:^|[\s/])redis-cli(?=\s|$)")),
    ("-u", re.compile(r"(?:^|[\s/])(?:curl|wget|http|https|xh)(?=\s|$)")),
    ("--user", re.compile(r"(?:^|[\s/])(?:curl|wget|http|https|xh)(?=\s|$)")),
    ("--proxy-user", re.compile(r"(?:^|[\s/])curl(?=\s|$)")),
)
_USERPASS_FLAGS = frozenset(("-u", "--user", "--proxy-user"))


def program_flag(flag, before):
    """The kind of secret ``flag`` takes given the command text ``before`` it, or None."""
    for name, program in _PROGRAM_FLAGS:
        if name == flag and program.search(before[-400:]):
            return "basic_auth" if flag in _USERPASS_FLAGS else "password"
    return None


# ------------------------------------------------------------------ rules
class Rule(object):
    """One shape of secret: ``words`` (lower case) or ``marks`` (case-sensitive) must occur in a text for
    ``pattern`` to run; ``group`` holds the secret; ``check(match, text)`` returns the kind, or None to keep
    the match (a false positive)."""

    __slots__ = ("kind", "words", "marks", "pattern", "group", "check", "keyed", "array")

    def __init__(self, kind, pattern, words=(), marks=(), group=0, check=None, keyed=False, array=False):
        self.kind, self.pattern, self.group, self.check = kind, pattern, group, check
        self.words, self.marks = tuple(words), tuple(marks)
        self.keyed = keyed  # the secret is the value of a name: stand-ins such as ${VAR} or *** are kept
        self.array = array  # the value is a JSON array of strings: one placeholder per element


def _url_check(match, text):
    # http://localhost:8080/@scope/pkg: a port, not a password
    return None if re.match(r"^\d{1,5}(?:/|$)", match.group(1)) else "url_password"


def _basic_check(match, text):
    token = match.group(1)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return "basic_auth" if ":" in decoded else None


def _bearer_check(match, text):
    return "bearer" if secretish(match.group(1)) and not match.group(1).isalpha() or len(match.group(1)) >= 20 else None


def _program_check(match, text):
    flag = match.group("flag")
    kind = program_flag(flag, text[:match.start()])
    if kind is None or (flag in _USERPASS_FLAGS and re.match(r"^\d+$", match.group("value"))):
        return None
    return kind


def _key_check(match, text):
    """key=value, key: value, "key": "value", --key value: the key must name a secret."""
    key = match.group("key")
    kind = key_kind(key)
    if kind is None:
        return None
    value = match.group("value")
    if value is None:
        value = match.group("bare")
    if kind == "password" and key.lower().endswith("pwd") and value.startswith("/"):
        return None  # PWD=/srv/app is the shell's working directory
    groups = match.groupdict()
    if groups.get("sep", "=").strip() == ":" and not groups.get("quote"):
        line_start = text.rfind("\n", 0, match.start()) + 1
        lead = text[line_start:match.start()].rstrip()
        if lead and lead[-1] not in "{,(" and not secretish(value):
            return None  # "invalid token: expected ..." is prose
    return kind


def _header_check(match, text):
    return "auth" if match.group("name").lower().endswith("authorization") else ("session" if "cookie" in match.group("name").lower() else "api_key")


_KEY = r"(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99})"
_QUOTED = r"(?P<quote>[\"'])(?P<value>(?:\\.|(?!(?P=quote))[^\\\n])*)(?P=quote)"
_KV_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "creds", "session", "cookie", "dsn", "sig",
             "sessid")
_KEY_HEADERS = ("x-api-key", "api-key", "x-auth-token", "x-access-token", "x-amz-security-token", "private-token", "x-goog-api-key",
                "ocp-apim-subscription-key")
_AWS_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA", "A3T")

RULES = [
    # A PEM private key, BEGIN to END (across lines and inside JSON strings with \n escapes); without END, to the end.
    Rule("private_key", re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[A-Z0-9 ]{0,40}-----(?:\\n)?|.*)", re.S),
         marks=("PRIVATE KEY",)),
    Rule("anthropic_key", re.compile(r"(?<![A-Za-z0-9_\-])sk-ant-[A-Za-z0-9_\-]{16,}"), words=("sk-ant-",)),
    Rule("openai_key", re.compile(r"(?<![A-Za-z0-9_\-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"), words=("sk-",)),
    Rule("aws_access_key", re.compile(r"(?<![A-Z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"),
         marks=_AWS_PREFIXES),
    Rule("github_token", re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
         words=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    Rule("gitlab_token", re.compile(r"(?<![A-Za-z0-9_\-])(?:gl(?:pat|dt|rt|ptt|cbt|ft|imt|agent|oas|soat|ffct|wt)-[A-Za-z0-9_\-]{20,}"
                                    r"|GR1348941[A-Za-z0-9_\-]{20,})"),
         words=("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "glimt-", "glagent-", "gloas-", "glsoat-", "glffct-",
                "glwt-", "gr1348941")),
    Rule("slack_token", re.compile(r"(?<![A-Za-z0-9_\-])(?:xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,})"),
         words=("xox", "xapp-")),
    Rule("slack_webhook", re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9+/_\-]{20,})"), group=1,
         words=("hooks.slack.com",)),
    Rule("stripe_key", re.compile(r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})"),
         words=("k_live_", "k_test_", "whsec_")),
    Rule("google_api_key", re.compile(r"(?<![A-Za-z0-9_\-])AIza[A-Za-z0-9_\-]{35}(?![A-Za-z0-9_\-])"), marks=("AIza",)),
    Rule("npm_token", re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"), words=("npm_",)),
    Rule("pypi_token", re.compile(r"(?<![A-Za-z0-9_\-])pypi-AgE[A-Za-z0-9_\-]{50,}"), marks=("pypi-AgE",)),
    Rule("sendgrid_key", re.compile(r"(?<![A-Za-z0-9_\-])SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}(?![A-Za-z0-9_\-])"), marks=("SG.",)),
    Rule("twilio_key", re.compile(r"(?<![A-Za-z0-9])SK[0-9a-fA-F]{32}(?![A-Za-z0-9])"), marks=("SK",)),
    Rule("jwt", re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), marks=("eyJ",)),
    # Passwords in URLs and DSNs: user:password@host, the password may hold / @ and %-escapes (the last @ ends it).
    Rule("url_password", re.compile(r"(?i)\b[a-z][a-z0-9+.\-]{0,30}://[^\s:/@'\"<>]*:([^\s'\"<>]+)@(?=[A-Za-z0-9.\-\[\]:%_]*(?:[/?#\s'\",;)\]}>]|$))"),
         group=1, words=("://",), check=_url_check),
    Rule("aws_secret_key", re.compile(r"(?i)\baws[A-Za-z0-9_.\- ]{0,20}?(?:secret|key)[A-Za-z0-9_.\- ]{0,20}?[\"']?\s*[:=]\s*[\"']?"
                                      r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"), group=1, words=("aws",)),
    Rule("azure_storage_key", re.compile(r"(?i)\bAccountKey=([A-Za-z0-9+/=]{20,})"), group=1, words=("accountkey=",)),
    Rule("bearer", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=\-]{8,})"), group=1, words=("bearer",), check=_bearer_check),
    Rule("basic_auth", re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])"), group=1, words=("basic",), check=_basic_check),
    # -p for mysql/sshpass/docker login, -a for redis-cli, -u user:password for curl and wget; openssl's pass:...
    Rule("password", re.compile(r"(?<!\S)(?P<flag>-p|-a)(?:[ \t]+|(?=[^\s\-]))(?P<value>[^\s'\"\-][^\s'\"]*|'[^'\n]*'|\"[^\"\n]*\")"),
         group="value", words=("mysql", "mariadb", "sshpass", "login", "redis-cli"), check=_program_check, keyed=True),
    Rule("basic_auth", re.compile(r"(?<!\S)(?P<flag>-u|--user|--proxy-user)(?:[ \t]+|=)['\"]?[^\s:'\"]*:(?P<value>[^\s'\"]+)"),
         group="value", words=("curl", "wget", "http", "xh"), check=_program_check, keyed=True),
    Rule("password", re.compile(r"(?<![A-Za-z0-9_])pass:(\S+)"), group=1, words=("pass:",)),
    # SQL: ALTER ROLE x PASSWORD '...', CREATE USER ... IDENTIFIED BY '...' (to the end when a cut left it open).
    Rule("password", re.compile(r"(?i)\b(?:password|identified\s+by)\s+E?'((?:[^']|'')*)(?:'|$)"), group=1,
         words=("password", "identified")),
    # HTTP headers as text (a dump, curl -H): Authorization is a scheme and a credential (Digest and AWS4 run to the
    # end), a cookie header runs to the end of the line, a quote or the next flag, a key header is one word.
    Rule("header", re.compile(r"(?i)(?<![A-Za-z0-9_\-])(?P<name>(?:proxy-)?authorization)[ \t]*:[ \t]*(?P<value>(?:digest|aws4-hmac-sha256)"
                              r"[ \t][^\r\n'\"]*[^\s'\"]|(?:[A-Za-z][A-Za-z0-9_\-]*[ \t]+)?[^\s'\"]+)"),
         group="value", words=("authorization",), check=_header_check, keyed=True),
    Rule("header", re.compile(r"(?i)(?<![A-Za-z0-9_\-])(?P<name>set-cookie|cookie)[ \t]*:[ \t]*"
                              r"(?P<value>(?:(?![ \t]-{1,2}[A-Za-z])[^\r\n'\"])*[^\s'\"])"),
         group="value", words=("cookie",), check=_header_check, keyed=True),
    Rule("header", re.compile(r"(?i)(?<![A-Za-z0-9_\-])(?P<name>%s)[ \t]*:[ \t]*(?P<value>[^\s'\"]+)" % "|".join(re.escape(h) for h in _KEY_HEADERS)),
         group="value", words=("api-key", "-token"), check=_header_check, keyed=True),
    # "key": "value" and 'key': 'value' (JSON, Python and JS dicts) at any depth, string arrays too.
    Rule("secret", re.compile(r"(?P<kq>[\"'])(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,99})(?P=kq)[ \t]*[:=][ \t]*"
                              r"\[(?P<value>[ \t]*\"(?:\\.|[^\"\\\n])*\"(?:[ \t]*,[ \t]*\"(?:\\.|[^\"\\\n])*\")*)[ \t]*\]"),
         group="value", words=_KV_WORDS, check=_key_check, keyed=True, array=True),
    Rule("secret", re.compile(r"(?P<kq>[\"'])(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,99})(?P=kq)[ \t]*(?P<sep>[:=])[ \t]*(?:" + _QUOTED
                              + r"|(?P<bare>[^\s,}\]\"'\[{]+))"), group="value", words=_KV_WORDS, check=_key_check, keyed=True),
    # The same inside a JSON string: \"password\":\"...\" (the value ends at a \" whose backslash is not escaped).
    Rule("secret", re.compile(r"\\\"(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,99})\\\"[ \t]*(?P<sep>:)[ \t]*(?:\\\"(?P<value>.*?)(?<!\\)\\\""
                              r"|(?P<bare>[^\s,}\]\\\"]+))"), group="value", words=_KV_WORDS, check=_key_check, keyed=True),
    # key=value, key: value, --key=value (values may be quoted; a bare value ends at space , ; & or a quote).
    Rule("secret", re.compile(r"(?<![A-Za-z0-9_.\-\"'\\])-{0,2}" + _KEY + r"(?P<sep>[ \t]*(?:=>|[=:])[ \t]*)(?:" + _QUOTED
                              + r"|(?P<bare>[^\s\"'&,;]+))"), group="value", words=_KV_WORDS, check=_key_check, keyed=True),
    # --key value and -key value
    Rule("secret", re.compile(r"(?<!\S)-{1,2}" + _KEY + r"[ \t]+(?:" + _QUOTED + r"|(?P<bare>[^\s\"'\-][^\s]*))"),
         group="value", words=_KV_WORDS, check=_key_check, keyed=True),
]
_STRING = re.compile(r"\"((?:\\.|[^\"\\\n])*)\"")  # one element of a JSON string array

_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}-----")
_PEM_BODY = re.compile(r"^\s*(?:[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9+/]{1,}={1,2}|Proc-Type:.*|DEK-Info:.*)\s*$")
_PEM_SPACE = re.compile(r"\\r|\\n|\s")
_PEM_LINE = re.compile(r"^(?![\[{])" + _PEM_BODY.pattern[1:], re.M)  # a line _PEM_BODY matches, searched in a block
_NOT_PEM_BODY = frozenset("[{")  # a line that starts with one of these is never key material (a log entry): no regex
PEM_MAX_LINES = 400  # a block without END ends here (an 8192-bit RSA key has about 100 lines)


def _pem_key(block):
    """What identifies a key block whatever its layout: a file's lines or a JSON string's \\n escapes."""
    return _PEM_SPACE.sub("", block)


class Redactor(object):
    """Redact text, argv, structures and line streams.

    ``key`` (bytes or text, a random value per diagnosis run) makes placeholders keyed fingerprints
    (``[REDACTED:openai_key#3f9c1a2b]``, the first 8 hex digits of an HMAC-SHA256 of the secret), so the same secret
    gets the same placeholder in every module result and on every host of one run, and nobody without the key can
    test a guess against it. Without a key placeholders are numbered per Redactor (``#1``, ``#2``).
    """

    def __init__(self, extra_patterns=None, key=None):
        self.key = key.encode("utf-8") if isinstance(key, str) else key
        self.rules = list(RULES)
        self.custom = []
        for index, pattern in enumerate(extra_patterns or ()):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError("extra redaction pattern %d (%r) is not a valid regular expression: %s." % (index + 1, pattern, exc))
            self.custom.append(Rule("custom", compiled, group=1 if compiled.groups else 0))
        self._placeholders = {}
        self._numbers = {}
        self.counts = {}
        words, marks = {}, {}
        for index, rule in enumerate(self.rules):
            for word in rule.words:
                words.setdefault(word, []).append(index)
            for mark in rule.marks:
                marks.setdefault(mark, []).append(index)
        self._words = Keywords(words)  # keyword (lower case) -> indexes of its rules
        self._marks = Keywords(marks)  # mark (case as written) -> indexes of its rules

    # ------------------------------------------------------------ placeholders
    def _placeholder(self, kind, secret):
        """The placeholder of ``secret``: one per secret in this Redactor, named after the first rule that found it."""
        placeholder = self._placeholders.get(secret)
        if placeholder is None and self.key:
            digest = hmac.new(self.key, secret.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:8]
            placeholder = self._placeholders[secret] = "[REDACTED:%s#%s]" % (kind, digest)
        elif placeholder is None:
            number = self._numbers.get(kind, 0) + 1
            self._numbers[kind] = number
            placeholder = self._placeholders[secret] = "[REDACTED:%s#%d]" % (kind, number)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return placeholder

    @property
    def total(self):
        return sum(self.counts.values())

    # ------------------------------------------------------------ text
    def _selected(self, value):
        """Indexes of the rules whose keywords occur in ``value`` (the cheap prefilter), in table order."""
        chosen = self._words.present(value.lower())
        chosen.update(self._marks.present(value))
        return sorted(chosen) if chosen else ()

    def clean(self, value):
        """True when ``text(value)`` is ``value`` itself with nothing counted: no rule's keyword occurs in the string
        and there are no extra patterns. What is clean stays clean, so callers may remember it."""
        return not self.custom and not self._selected(value)

    def text(self, value):
        """Return ``value`` with every secret replaced."""
        if not value or not isinstance(value, str):
            return value
        for index in self._selected(value):
            value = self._sub(self.rules[index], value)
        for rule in self.custom:
            value = self._sub(rule, value)
        return value

    def block(self, value):
        """``text`` of every line of ``value``, joined: the same result, with the keyword prefilter run over the whole
        block (a literal search per anchor character) so that lines without any keyword are copied without a regex of
        their own; only the lines a keyword marks go through ``text``."""
        if value and not value.endswith("\n"):  # a last line without its newline: as if it had one
            return self.block(value + "\n")[:-1]
        if self.custom or not value.isascii():  # lower() keeps every position only for ASCII
            return "".join(self.text(line) + "\n" for line in value.split("\n")[:-1])
        starts = self._words.line_starts(value.lower())
        starts.update(self._marks.line_starts(value))
        if not starts:
            return value
        out, at = [], 0
        for start in sorted(starts):
            end = value.find("\n", start)
            out.append(value[at:start])
            out.append(self.text(value[start:end]))
            at = end
        out.append(value[at:])
        return "".join(out)

    def _sub(self, rule, value):
        def replace(match):
            group = rule.group
            if group == "value" and match.group("value") is None:
                group = "bare"
            secret = match.group(group)
            whole = match.group(0)
            if not secret:
                return whole
            kind = rule.kind if rule.check is None else rule.check(match, value)
            if kind is None:
                return whole
            if rule.keyed:
                if not is_value(secret) or _only_placeholders(secret):
                    return whole
            elif secret.startswith("[REDACTED:"):
                return whole
            start = match.start(group) - match.start(0)
            end = match.end(group) - match.start(0)
            if rule.array:
                replaced = _STRING.sub(lambda m: '"%s"' % (self._placeholder(kind, m.group(1)) if is_value(m.group(1)) else m.group(1)),
                                       secret)
            else:
                replaced = self._placeholder(kind, _pem_key(secret) if kind == "private_key" else secret)
            return whole[:start] + replaced + whole[end:]
        return rule.pattern.sub(replace, value)

    # ------------------------------------------------------------ argv
    def argv(self, args):
        """Redact a command line given as a list; returns one string.

        The value after a flag that names a secret (``--password``, ``--api-key``; ``-p`` of mysql,
        sshpass and ``docker login``; ``-a`` of redis-cli; the password of ``curl -u user:password``) is
        redacted whole, spaces included, as is the value of a ``--key=value`` or ``KEY=value`` argument;
        every other argument is redacted as text on its own, so a header value ends with its argument."""
        out = []
        pending = None
        for index, arg in enumerate(args):
            if pending is not None:
                kind, flag = pending
                pending = None
                if flag in _USERPASS_FLAGS:
                    user, sep, password = arg.partition(":")
                    if sep and password and not password.isdigit():
                        out.append(user + sep + self._placeholder(kind, password))
                        continue
                elif not arg.startswith("-") and is_value(arg):
                    out.append(self._whole(kind, arg))
                    continue
            if arg.startswith("-") and "=" not in arg:
                kind = key_kind(arg) or program_flag(arg, " ".join(args[:index]))
                if kind is not None:
                    pending = (kind, arg)
                elif arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--") and program_flag("-p", " ".join(args[:index])):
                    out.append("-p" + self._placeholder("password", arg[2:]))  # mysql -pSECRET
                    continue
            elif "=" in arg and (" " in arg or "\t" in arg):
                key, dummy, value = arg.partition("=")
                kind = key_kind(key.lstrip("-")) if re.match(r"^-{0,2}[A-Za-z0-9_][A-Za-z0-9_.\-]*$", key) else None
                if kind is not None and is_value(value):
                    out.append(key + "=" + self._whole(kind, value))
                    continue
            out.append(self.text(arg))
        return " ".join(out)

    def _whole(self, kind, value):
        """``value`` replaced whole, named by a token rule when one recognises all of it (``sk-ant-...``)."""
        text = self.text(value)
        if text != value and _only_placeholders(text):
            return text
        return self._placeholder(kind, value)

    # ------------------------------------------------------------ structures
    def data(self, value, keep=()):
        """A copy of a JSON-like structure with every string redacted, every dict key too, and the whole
        string value of a key that names a secret replaced (``{"password": "x"}``, ``{"set-cookie": [...]}``).
        Numbers and booleans are kept: counts such as ``{"password": 3}`` are not secrets. ``keep`` lists keys
        of the caller's own schema that look like secret names but are not (log_scan's ``signature``)."""
        return self._data(value, None, frozenset(keep))

    def _data(self, value, key, keep):
        if isinstance(value, str):
            kind = key_kind(key) if key and key not in keep else None
            if kind is None or not is_value(value) or _only_placeholders(value):
                return self.text(value)
            return self._whole(kind, value)
        if isinstance(value, dict):
            return dict((self.text(k) if isinstance(k, str) else k, self._data(v, k if isinstance(k, str) else None, keep))
                        for k, v in value.items())
        if isinstance(value, (list, tuple, set, frozenset)):
            return type(value)(self._data(item, key, keep) for item in value)
        return value

    # ------------------------------------------------------------ line streams
    def stream(self):
        """A :class:`LineStream` over this Redactor (one per file or journal)."""
        return LineStream(self)

    def lines(self, lines):
        """Redact an iterable of lines (without newlines) as a stream: a PEM private key block spanning lines is
        replaced from BEGIN to END by one line with its placeholder. Yields the lines to write."""
        stream = LineStream(self)
        for line in lines:
            yield from stream.feed(line)
        yield from stream.close()


class LineStream(object):
    """Line-by-line redaction that remembers whether it is inside a PEM private key block.

    ``feed(line)`` returns the lines to write now (none while inside a block), ``close()`` the rest.
    A block's lines become one line, ``<text before BEGIN>[REDACTED:private_key#n]<text after END>``.
    Lines that look like key material (base64 only) are held back until the next other line, so a
    block whose BEGIN line was cut away (a file read from an offset) is still replaced when its END
    line comes. A block without END ends after PEM_MAX_LINES lines or at the end of the stream."""

    def __init__(self, redactor):
        self.redactor = redactor
        self.prefix = None  # text before BEGIN while inside a block
        self.block = []  # the block's text, whitespace removed
        self.count = 0
        self.held = []  # base64-only lines outside a block

    def feed(self, line):
        if self.prefix is not None:
            return self._inside(line)
        if "-----" in line:
            begin = _PEM_BEGIN.search(line)
            if begin is not None:
                out = self._release()
                tail = line[begin.start():]
                if _PEM_END.search(tail, len(begin.group(0))):
                    return out + [self.redactor.text(line)]  # the whole block is on this line
                self.prefix = self.redactor.text(line[:begin.start()])
                self.block, self.count = [_pem_key(tail)], 1
                return out
            if self.held and _PEM_END.search(line) and "PRIVATE KEY" in line:
                end = _PEM_END.search(line)
                block = "".join(_pem_key(held) for held in self.held) + _pem_key(line[:end.end()])
                self.held = []
                return [self.redactor._placeholder("private_key", block) + self.redactor.text(line[end.end():])]
        if line[:1] not in _NOT_PEM_BODY and _PEM_BODY.match(line) and len(self.held) < PEM_MAX_LINES:
            self.held.append(line)
            return []
        if self.held:
            return self._release() + [self.redactor.text(line)]
        return [self.redactor.text(line)]

    def feed_block(self, text):
        """``feed`` of every line of ``text`` (whole lines, each with its newline), as one string of the lines to
        write (each with its newline): a block without PEM material outside a key block is redacted at once
        (Redactor.block), anything else line by line."""
        if self.prefix is None and not self.held and "-----" not in text and _PEM_LINE.search(text) is None:
            return self.redactor.block(text)
        out = []
        for line in text.split("\n")[:-1]:
            out.extend(self.feed(line))
        return "".join(line + "\n" for line in out)

    def _inside(self, line):
        end = _PEM_END.search(line)
        if end is None:
            self.count += 1
            if len(self.block) < PEM_MAX_LINES:
                self.block.append(_pem_key(line))
            if self.count < PEM_MAX_LINES:
                return []
            return [self._finish("")]
        self.block.append(_pem_key(line[:end.end()]))
        return [self._finish(self.redactor.text(line[end.end():]))]

    def _finish(self, suffix):
        placeholder = self.redactor._placeholder("private_key", "".join(self.block))
        line = self.prefix + placeholder + suffix
        self.prefix, self.block, self.count = None, [], 0
        return line

    def _release(self):
        held, self.held = self.held, []
        return [self.redactor.text(line) for line in held]

    def close(self):
        if self.prefix is not None:
            return [self._finish("")]
        return self._release()


def truncate(text, limit, suffix="..."):
    """Cut already redacted ``text`` to at most ``limit`` characters (plus ``suffix`` when cut), never inside a
    placeholder. Redact first, then truncate: a cut before redaction can leave half a secret no rule knows."""
    if text is None or len(text) <= limit:
        return text
    start = text.rfind("[REDACTED:", 0, limit + 10)
    if 0 <= start < limit and text.find("]", start) >= limit:
        limit = start  # a placeholder would be cut: cut before it
    return text[:limit] + suffix
