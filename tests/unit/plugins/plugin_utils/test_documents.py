"""postmortem.md, status-update.md and the escalation block (plugins/plugin_utils/documents.py)."""
import re

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import documents, incident

import report_samples as samples

CONTACTS = ["On-call engineer", "Engineering manager", "VP engineering", "Customer support / status page"]


def tiny(severity="SEV-2", first_seen="2026-11-25T03:00:00Z", generated_at="2026-11-25T03:20:00Z", **finding):
    """A report with one host and one finding first seen at ``first_seen``."""
    item = dict(fm.make("log.econnrefused", "high", {"count": 3, "first_seen": first_seen, "last_seen": generated_at}), **finding)
    return {"incident_id": "INC-1", "severity": severity, "generated_at": generated_at, "severity_reason": "because",
            "hosts": {"h": {"status": "ok", "findings": [item]}}, "recent_window_seconds": 900}


# ---------------------------------------------------------------------------------------------------- escalation
def test_the_default_levels_are_the_seeds_four():
    levels = documents.check_escalation(None)
    assert [level["contact"] for level in levels] == CONTACTS
    assert [level["level"] for level in levels] == [1, 2, 3, 4]
    assert all(set(level) == set(documents.ESCALATION_KEYS) for level in levels)
    levels[0]["severities"].append("SEV-4")  # a copy: the defaults stay as they are
    assert "SEV-4" not in documents.DEFAULT_ESCALATION[0]["severities"]


@pytest.mark.parametrize("severity, minutes, paged, later", [
    ("SEV-1", 0, ["On-call engineer"], ["Engineering manager", "Customer support / status page", "VP engineering"]),
    ("SEV-1", 17, ["On-call engineer", "Engineering manager", "Customer support / status page"], ["VP engineering"]),
    ("SEV-1", 45, CONTACTS, []),
    ("SEV-2", 45, ["On-call engineer", "Engineering manager", "Customer support / status page"], []),
    ("SEV-2", 14, ["On-call engineer"], ["Engineering manager", "Customer support / status page"]),
    ("SEV-3", 600, ["On-call engineer"], []),
    ("SEV-4", 600, [], []),
])
def test_who_is_paged_now_depends_on_severity_and_elapsed_time(severity, minutes, paged, later):
    report = tiny(severity, first_seen=documents.iso(documents.parse_time("2026-11-25T03:20:00Z") - minutes * 60))
    esc = documents.escalation(report)
    assert esc["elapsed_minutes"] == minutes
    assert [level["contact"] for level in esc["page_now"]] == paged
    assert [level["contact"] for level in esc["later"]] == later
    assert all(level["in_minutes"] == level["after_minutes"] - minutes for level in esc["later"])


def test_custom_levels_are_normalized_and_used():
    levels = documents.check_escalation([
        {"contact": "Alice (primary)", "severities": "sev1"},
        {"contact": "DB team", "method": "Slack #db", "after_minutes": "5", "severities": [2, "SEV-1"], "level": "db"},
    ])
    assert levels == [
        {"level": 1, "contact": "Alice (primary)", "method": "page", "after_minutes": 0, "severities": ["SEV-1"]},
        {"level": "db", "contact": "DB team", "method": "Slack #db", "after_minutes": 5, "severities": ["SEV-1", "SEV-2"]},
    ]
    assert documents.check_escalation(levels) == levels  # idempotent
    esc = documents.escalation(tiny("SEV-2", first_seen="2026-11-25T03:16:00Z"), levels)
    assert esc["page_now"] == [] and [(level["contact"], level["in_minutes"]) for level in esc["later"]] == [("DB team", 1)]
    assert "**Page now:** nobody - no escalation level covers SEV-2." in documents.escalation_lines(esc)


def test_an_empty_list_pages_nobody_and_says_so():
    esc = documents.escalation(tiny("SEV-1"), [])
    assert esc["page_now"] == [] and esc["later"] == []
    assert "no escalation levels are configured" in "\n".join(documents.escalation_lines(esc))


@pytest.mark.parametrize("levels, sentence", [
    ("on-call", "agentops_escalation must be a list of escalation levels"),
    ({"contact": "x"}, "agentops_escalation must be a list of escalation levels"),
    (["x"], "agentops_escalation[0] must be a mapping with contact, method, after_minutes and severities"),
    ([{"severities": ["SEV-1"]}], "agentops_escalation[0] needs contact"),
    ([{"contact": " ", "severities": ["SEV-1"]}], "agentops_escalation[0] needs contact"),
    ([{"contact": "a", "severities": ["SEV-1"]}, {"contact": "b"}], "agentops_escalation[1] needs severities"),
    ([{"contact": "a", "severities": []}], "agentops_escalation[0] needs severities"),
    ([{"contact": "a", "severities": ["SEV-5"]}], "agentops_escalation[0] has severity 'SEV-5'; use SEV-1, SEV-2, SEV-3 or SEV-4."),
    ([{"contact": "a", "severities": ["critical"]}], "has severity 'critical'"),
    ([{"contact": "a", "severities": ["SEV-1"], "after_minutes": -1}], "agentops_escalation[0]: after_minutes must be between 0 and 10080, got -1."),
    ([{"contact": "a", "severities": ["SEV-1"], "after_minutes": "soon"}], "after_minutes must be a number of minutes between 0 and 10080"),
    ([{"contact": "a", "severities": ["SEV-1"], "after_minutes": True}], "after_minutes must be a number"),
    ([{"contact": "a", "severities": ["SEV-1"], "after_minute": 5}],
     "agentops_escalation[0] has no key 'after_minute'; its keys are level, contact, method, after_minutes, severities."),
    ([{"contact": "a", "severities": ["SEV-1"], "method": ""}], "method must be text"),
    ([{"contact": "a", "severities": ["SEV-1"], "level": None}], "level must be a number or a short name"),
])
def test_bad_escalation_levels_are_one_sentence(levels, sentence):
    with pytest.raises(ValueError) as err:
        documents.check_escalation(levels)
    assert sentence in str(err.value)
    assert "\n" not in str(err.value)


def test_the_sentence_names_the_variable_the_user_set():
    with pytest.raises(ValueError) as err:
        documents.check_escalation([{}], name="incident_report_escalation")
    assert str(err.value).startswith("incident_report_escalation[0] needs contact")


# ------------------------------------------------------------------------------------------------------- started
def test_started_is_the_earliest_first_seen_of_findings_that_count_now():
    report = tiny()
    old = fm.make("log.enospc", "high", {"count": 1, "first_seen": "2026-11-24T01:00:00Z", "last_seen": "2026-11-24T01:00:00Z"})
    contradicted = dict(fm.make("log.emfile", "info", {"count": 1, "first_seen": "2026-11-25T01:00:00Z"}), contradicted_by="fds ok")
    report["hosts"]["h"]["findings"] += [dict(old, historical=True), contradicted]
    start = documents.started(report)
    assert start["time"] == "2026-11-25T03:00:00Z"
    assert start["source"] == "first seen of log.econnrefused on h"


def test_started_falls_back_to_the_timeline_then_to_the_diagnosis():
    report = tiny(first_seen=None)
    report["timeline"] = [
        {"time": "2026-11-25T02:00:00Z", "host": "h", "kind": "oom_kill", "what": "long ago", "rule": None, "value": 1, "component": None},
        {"time": "2026-11-25T03:07:00Z", "host": "h", "kind": "process_start", "what": "agent started", "rule": None, "value": None,
         "component": None},
        {"time": "2026-11-25T03:08:00Z", "host": "h", "kind": "error_rate", "what": "no errors", "rule": None, "value": 0, "component": "api"},
        {"time": "2026-11-25T03:09:00Z", "host": "h", "kind": "restart", "what": "agent restarted", "rule": None, "value": 2,
         "component": "api"},
    ]
    start = documents.started(report)
    assert (start["time"], start["source"]) == ("2026-11-25T03:09:00Z", "first event of the timeline: agent restarted")
    report["timeline"] = report["timeline"][:3]
    start = documents.started(report)
    assert start["time"] == "2026-11-25T03:20:00Z" and start["source"].startswith("the diagnosis")
    assert documents.escalation(report)["elapsed_minutes"] == 0


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T03:00:00Z", 1795575600.0),
    ("2026-11-25T03:00:00.250Z", 1795575600.25),
    ("2026-11-25 04:00:00+01:00", 1795575600.0),
    ("2026-11-25T03:00:00", 1795575600.0),
    ("(no timestamp)", None),
    ("", None),
    (None, None),
    (1795575600, None),
])
def test_parse_time(text, expected):
    assert documents.parse_time(text) == expected


# ---------------------------------------------------------------------------------------------------- postmortem
SECTIONS = ["# Postmortem draft: incident INC-42", "## Summary", "## Impact", "## Timeline (UTC)", "## Root cause", "## Contributing factors",
            "## What went well", "## What went poorly", "## Where we got lucky", "## Action items", "## Escalation", "## References"]


def positions(text, parts):
    return [text.index(part) for part in parts]


def test_the_postmortem_has_the_templates_sections_in_order():
    text = documents.postmortem_markdown(samples.full_report())
    assert positions(text, SECTIONS) == sorted(positions(text, SECTIONS))
    # What went well / poorly are prompts for people, not filled in by the machine.
    well = text[text.index("## What went well"):text.index("## Where we got lucky")]
    assert well.count("_Prompt:") == 2


def test_the_postmortem_is_filled_from_the_report():
    text = documents.postmortem_markdown(samples.full_report())
    assert "- **Severity:** SEV-1 - " in text
    assert "- **Started:** 2026-11-25T03:02:10Z (first seen of log.pg_connections on web-1); diagnosed 2026-11-25T03:20:00Z." in text
    assert "- **Probable root cause:** Connection slots nearly exhausted on db-1 (`pg.saturation`), explaining 3 finding(s)." in text
    assert "Error rate: 62.5% of 240 log entries in the last 15 min were errors on web-1 (worst: api 80.0% of 100)." in text
    assert "Affected users: 37 distinct user(s) and 12 conversation(s) with errors in the logs" in text
    assert "- Duration: 17 min so far" in text
    chain = re.findall(r"^(\d)\. \*\*(.+?)\*\* on (\S+) \(`(\S+)`", text, re.M)
    assert chain == [("1", "Connection slots nearly exhausted", "db-1", "pg.saturation"),
                     ("2", "PostgreSQL refused connections: slots exhausted", "web-1", "log.pg_connections"),
                     ("3", "Connections refused", "web-1", "log.econnrefused")]
    assert "1. Why did requests fail? Because the API could not reach manager (ECONNREFUSED)." in text
    assert "Alternative 1: `pg.pool_hog` on db-1." in text
    assert "- Not explained by the root cause: High error rate in the logs on web-1 (`log.error_rate`)." in text
    assert "| 2026-11-25T03:12:30Z | web-1 | manager restarted by pm2 (restart 4) |" in text
    assert "**Page now:**\n- On-call engineer - " in text and "- VP engineering - phone call in 12 min (level 3, at 30 min)" in text


def test_action_items_start_with_the_root_causes_fix_and_hold_every_distinct_fix_once():
    report = samples.full_report()
    items = documents.action_items(report)
    assert items[0]["priority"] == "P1" and items[0]["rules"][0] == "pg.saturation" and items[0]["hosts"] == ["db-1"]
    assert [item["priority"] for item in items] == sorted(item["priority"] for item in items)
    commands = [item["command"] for item in items if item["command"]]
    assert len(commands) == len(set(commands))
    assert any(item["action"].startswith("Let the diagnosis see it: nothing checked: host unreachable") for item in items)
    text = documents.postmortem_markdown(report)
    section = text[text.index("## Action items"):text.index("## Escalation")]
    assert re.search(r"^1\. \*\*P1\*\* Terminate idle-in-transaction sessions and cap the pool \(`pg.saturation` on db-1\) - owner: _\?_, status: open$",
                     section, re.M)
    assert "   ```sh\n   ansible-playbook agentops.runbooks.remediate_postgres --limit db-1" in section
    assert "_Prompt: a change that prevents a recurrence" in section


def test_one_fix_on_several_hosts_is_one_action_item():
    hostvars = dict((name, {"diagnose_result": {"status": "ok", "checks": {}, "facts": {}, "findings": [
        fm.make("host.disk_space", "high", {"mount_point": "/var", "used_percent": 91, "available_mb": 900, "size_mb": 10000,
                                            "fstype": "ext4"})]}}) for name in ("a", "b", "c"))
    report = incident.incident_report(hostvars, ["a", "b", "c"], "INC-2", generated_at=samples.GENERATED_AT)
    items = [item for item in documents.action_items(report) if "host.disk_space" in item["rules"]]
    assert len(items) == 1 and items[0]["hosts"] == ["a", "b", "c"]


def test_the_postmortem_of_todays_report_shape_without_the_new_keys():
    report = samples.without(samples.full_report(), "root_cause", "timeline", "error_rates", "memory_samples", "pg_connections")
    text = documents.postmortem_markdown(report)
    assert "- **Probable root cause:** not determined by the diagnosis; see Contributing factors." in text
    assert "The diagnosis did not link the findings into a chain." in text
    # the timeline falls back to the findings' first and last occurrences and the diagnosis
    assert "| 2026-11-25T03:02:10Z | web-1 | log.pg_connections first seen: PostgreSQL refused connections: slots exhausted |" in text
    assert "| 2026-11-25T03:20:00Z | - | Diagnosis: SEV-1 - " in text
    factors = text[text.index("## Contributing factors"):text.index("## What went well")]
    assert "- [critical] Connection slots nearly exhausted on db-1 (`pg.saturation`)" in factors
    assert documents.action_items(report)[0]["priority"] == "P1"


def test_the_postmortem_of_the_real_report_with_its_root_cause():
    """base_report is built by the real incident_report, with whatever root cause and timeline it computes now."""
    report = samples.base_report()
    text = documents.postmortem_markdown(report)
    assert positions(text, SECTIONS) == sorted(positions(text, SECTIONS))
    cause = report.get("root_cause")
    if cause:
        first = cause["chain"][0]
        assert "- **Probable root cause:** %s on %s (`%s`)" % (first["title"], first["host"], first["rule"]) in text
        assert documents.action_items(report)[0]["rules"][0] == cause["first_fix"]["rule"]


def test_no_problem_no_fix():
    report = incident.incident_report({"h": {"diagnose_result": {"status": "ok", "findings": [], "facts": {}, "checks": {}}}}, ["h"], "OK-1",
                                      generated_at=samples.GENERATED_AT)
    text = documents.postmortem_markdown(report)
    assert "- **First fix:** none: the diagnosis found no problem to fix." in text
    status = documents.status_update_markdown(report)
    assert "- **Status:** Monitoring - " in status and "- **Next update:** when the status changes (SEV-4 has no scheduled updates)." in status
    assert "**Page now:** nobody - no escalation level covers SEV-4." in status


# ------------------------------------------------------------------------------------------------ hostile input
def rendered(markdown_text):
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").render(markdown_text)


@pytest.mark.parametrize("render", [documents.postmortem_markdown, documents.status_update_markdown])
@pytest.mark.parametrize("make", [samples.full_report, samples.base_report])
def test_text_from_the_logs_cannot_inject_html_links_or_table_cells(render, make):
    text = render(make())
    assert "<script" not in text and "<img" not in text and "</svg" not in text
    page = rendered(text)
    assert "<script" not in page and "<img" not in page and 'href="javascript' not in page
    assert not re.search(r"<a\s", page), "no link may come from the report"
    for row in re.findall(r"^\|.*\|$", text, re.M):  # every table row keeps its column count
        assert len(re.split(r"(?<!\\)\|", row)) == 5, row


def test_the_hostile_text_is_still_readable_when_rendered():
    page = rendered(documents.postmortem_markdown(samples.full_report()))
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in page


def test_a_command_with_backticks_keeps_its_code_block():
    assert documents.fenced("echo ```x```") == ["````sh", "echo ```x```", "````"]
    assert documents.code("a`b") == "``a`b``"
    assert documents.code("`x") == "`` `x ``"


# --------------------------------------------------------------------------------------------------- status update
def test_the_status_update_has_every_field():
    text = documents.status_update_markdown(samples.full_report())
    fields = re.findall(r"^- \*\*(.+?):\*\*", text, re.M)
    assert fields == ["Severity", "Status", "Started", "Affected", "Current impact", "Actions taken", "Next steps", "Next update"]
    assert "- **Status:** Identified - the probable root cause is known; the first fix is below." in text
    assert "- **Started:** 2026-11-25T03:02:10Z (first seen of log.pg_connections on web-1); 17 min before this update." in text
    assert "- **Affected:** 3 of 3 host(s) (db-1, web-1, web-2); 37 user(s), 12 conversation(s) with errors." in text
    assert "62.5% of the log entries of the last 15 min were errors" in text
    assert "2026-11-25T03:15:00Z: release 2026.11.24 switched to 2026.11.25" in text
    assert "- **Next update:** 2026-11-25T03:50:00Z (in 30 min, the SEV-1 cadence)." in text
    assert "## Escalation" in text and "- Engineering manager - phone call (level 2, from 15 min)" in text


def test_the_status_update_quotes_no_log_text():
    text = documents.status_update_markdown(samples.full_report())
    for secret_ish in ("ECONNREFUSED 10.0.0.7", "sorry, too many clients", "alert(", "/var/log/agents"):
        assert secret_ish not in text


@pytest.mark.parametrize("report, expected", [
    (samples.full_report(), "Identified"),
    (samples.without(samples.full_report(), "root_cause"), "Investigating"),
])
def test_status(report, expected):
    assert documents.status(report)[0] == expected


def test_renderers_survive_a_minimal_report_and_a_time_that_is_not_iso():
    report = incident.incident_report({"h": {}}, ["h"], "INC-RACE", generated_at="run-001")
    for render in (documents.postmortem_markdown, documents.status_update_markdown):
        text = render(report)
        assert text.endswith("\n") and "INC-RACE" in text
    assert documents.escalation(report)["elapsed_minutes"] == 0


@pytest.mark.parametrize("text, expected", [
    ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
    ("a | b [c](d) `e` \\", "a \\| b \\[c\\](d) \\`e\\` \\\\"),
    ("AT&T &amp; &#60;", "AT&T &amp;amp; &amp;#60;"),
    ("two\nlines\tand  spaces", "two lines and spaces"),
    ("x" * 400, "x" * 297 + "..."),
])
def test_md_escapes_what_markdown_would_interpret(text, expected):
    assert documents.md(text) == expected
