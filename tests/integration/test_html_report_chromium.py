"""report.html in a real browser: headless Chromium (Debian's, installed by scripts/system_deps.sh) renders the page, its
charts hold their data points, and nothing reaches the console (no script error, no Content-Security-Policy refusal).

A screenshot of each page is kept under tests/output/html_report/ (gitignored) as the test artifact. Chromium runs
with a profile, HOME and caches inside the test's tmp directory, with its background networking off.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

from helpers import COLLECTIONS_PATH, REPO
import report_samples as samples
from report_samples import Page

from ansible_collections.agentops.runbooks.plugins.action.write_report import write_report
from ansible_collections.agentops.runbooks.plugins.plugin_utils import documents, html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.path.join(REPO, "tests", "output", "html_report")
BIN = os.path.dirname(sys.executable)
# What Chromium prints on stderr for the page's console (--enable-logging=stderr): messages, uncaught errors, CSP refusals.
CONSOLE = re.compile(r":CONSOLE|Uncaught|Refused to|Content Security Policy|Content-Security-Policy")

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/system_deps.sh installs it)")


def chromium(tmp_path, page, *action):
    """Run headless Chromium on ``page`` (a file) with ``action`` (--dump-dom or --screenshot=...); (stdout, console lines)."""
    home = tmp_path / "chromium-home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               DBUS_SESSION_BUS_ADDRESS="disabled:")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=%s" % (home / "profile"),
               "--enable-logging=stderr", "--v=0", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
               "--window-size=1280,2000"] + list(action) + ["file://%s" % page]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout, [line for line in run.stderr.splitlines() if CONSOLE.search(line)]


def screenshot(tmp_path, page, name):
    """Render ``page`` to a PNG kept as tests/output/html_report/<name>.png; assert it is a real, non-trivial image."""
    shot = tmp_path / ("%s.png" % name)
    dummy, console = chromium(tmp_path, page, "--screenshot=%s" % shot)
    assert console == [], console
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    assert len(data) > 40000, "the screenshot is nearly empty: the page did not render"
    os.makedirs(ARTIFACTS, exist_ok=True)
    shutil.copyfile(str(shot), os.path.join(ARTIFACTS, "%s.png" % name))


def rendered(tmp_path, page):
    """The DOM after Chromium parsed and laid out the page; asserts the console stayed silent."""
    dom, console = chromium(tmp_path, page, "--dump-dom")
    assert console == [], console
    assert "<main>" in dom
    return Page(dom)


@needs_chromium
def test_the_report_renders_with_its_charts_and_a_silent_console(tmp_path):
    report = samples.full_report()
    paths = write_report(str(tmp_path / "incidents"), report, extra={"report.html": html_report.report_html(report)})
    assert stat.S_IMODE(os.stat(paths["html"]).st_mode) == 0o600
    dom = rendered(tmp_path, paths["html"])
    errors = sum(len(rows) for rows in report["error_rates"].values())
    assert len(dom.within("chart-errors", "circle", "point")) == errors == int(dom.by_id("chart-errors")["data-points"])
    assert len(dom.within("chart-errors", "polyline", "series")) == 3
    assert len(dom.within("chart-memory", "circle", "point")) == 16 and len(dom.within("chart-memory", "line", "fit")) == 2
    assert len(dom.within("chart-pg", "rect", "bar")) == 3
    assert [tag for tag, dummy, dummy in dom.elements].count("svg") >= 4
    text = "".join(dom.text)
    assert "Incident INC-42" in text and "Probable root cause" in text and "Connection slots nearly exhausted" in text
    screenshot(tmp_path, paths["html"], "report-full")


@needs_chromium
def test_a_script_in_the_logs_is_text_in_the_browser(tmp_path):
    report = samples.full_report()
    page = tmp_path / "report.html"
    page.write_text(html_report.report_html(report))
    dom = rendered(tmp_path, page)
    assert "script" not in [tag for tag, dummy, dummy in dom.elements]
    assert samples.XSS in "".join(dom.text)
    assert not any(name.startswith("on") for dummy, attrs, dummy in dom.elements for name in attrs)


@needs_chromium
def test_the_console_check_sees_a_script_the_policy_blocks(tmp_path):
    """The positive control: were the escaping to fail, the policy would block the script and the test would see it."""
    page = tmp_path / "broken.html"
    page.write_text(html_report.report_html(samples.full_report()).replace("<main>", "<main><script>console.log('injected')</script>", 1))
    dummy, console = chromium(tmp_path, page, "--dump-dom")
    assert console and any("Content Security Policy" in line for line in console), console
    assert not any("injected" in line for line in console if "CONSOLE" in line and "Security" not in line)


@needs_chromium
def test_todays_report_shape_renders_too(tmp_path):
    report = samples.without(samples.full_report(), "root_cause", "timeline", "error_rates", "memory_samples", "pg_connections")
    page = tmp_path / "report.html"
    page.write_text(html_report.report_html(report))
    dom = rendered(tmp_path, page)
    assert dom.by_id("chart-errors")["data-points"] == "0" and dom.by_id("chart-pg")["data-points"] == "0"
    screenshot(tmp_path, page, "report-without-series")


def playbook(variables):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_NOCOLOR="1",
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/diagnose.yml", "-i", "inventories/localhost.yml",
                           "-e", json.dumps(variables)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def seed_log(path, end, minutes=10, per_minute=12):
    """A seed-format log of ``minutes`` minutes before ``end``: two components, half of the api's entries errors, one
    of them carrying a script tag."""
    lines = []
    for minute in range(minutes):
        for index in range(per_minute):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end - (minutes - minute) * 60 + index * 4)) + ".000Z"
            if index % 2:
                lines += ["[%s] [ERROR] [agent:api] request failed: upstream returned 502 %s" % (stamp, samples.XSS if index == 1 else ""),
                          "  userId: user-%d" % (index % 5)]
            else:
                lines.append("[%s] [INFO] [agent:worker] request ok in 35ms" % stamp)
    path.write_text("\n".join(lines) + "\n")


@needs_chromium
def test_the_playbook_writes_all_five_files_and_its_page_renders(tmp_path):
    """playbooks/diagnose.yml on this machine, a log with errors: the incident directory holds the five files (0600)
    and report.html draws the error rates the report carries."""
    log = tmp_path / "agent.log"
    seed_log(log, time.time())
    variables = {"agentops_report_dir": str(tmp_path / "incidents"), "agentops_incident_id": "HTML-1", "agentops_log_paths": [str(log)],
                 "agentops_checks": ["logs"], "agentops_log_window": 86400,
                 "agentops_escalation": [{"contact": "Primary on-call", "method": "page", "severities": ["SEV-1", "SEV-2", "SEV-3"]}]}
    run = playbook(variables)
    assert run.returncode == 0, run.stdout[-3000:]
    directory = tmp_path / "incidents" / "HTML-1"
    names = ["postmortem.md", "report.html", "report.json", "report.md", "status-update.md"]
    assert sorted(os.listdir(str(directory))) == names
    assert all(stat.S_IMODE(os.stat(str(directory / name)).st_mode) == 0o600 for name in names)
    for line in ("HTML:   %s/report.html" % directory, "Postmortem draft: %s/postmortem.md" % directory,
                 "Status update: %s/status-update.md" % directory):
        assert line in run.stdout
    report = json.loads((directory / "report.json").read_text())
    assert report["severity"] in ("SEV-1", "SEV-2", "SEV-3")
    assert "Page now: Primary on-call (page)" in run.stdout
    status = (directory / "status-update.md").read_text()
    assert "- **Severity:** %s" % report["verdict"] in status and "- Primary on-call - page (level 1, from 0 min)" in status
    assert (directory / "postmortem.md").read_text().startswith("# Postmortem draft: incident HTML-1 (%s)" % report["verdict"])
    dom = rendered(tmp_path, directory / "report.html")
    points = sum(len(rows) for rows in (report.get("error_rates") or {}).values())
    assert len(dom.within("chart-errors", "circle", "point")) == points
    assert report["verdict"] in "".join(dom.text) and samples.XSS not in (directory / "report.html").read_text()
    screenshot(tmp_path, directory / "report.html", "report-playbook")


def test_the_documents_of_the_playbook_report_match_the_renderers(tmp_path):
    """The action writes exactly what the pure renderers return for its report (nothing else on the way)."""
    report = samples.full_report()
    extra = {"postmortem.md": documents.postmortem_markdown(report), "status-update.md": documents.status_update_markdown(report),
             "report.html": html_report.report_html(report)}
    paths = write_report(str(tmp_path / "incidents"), report, extra=extra)
    for key, name in (("postmortem", "postmortem.md"), ("status_update", "status-update.md"), ("html", "report.html")):
        with open(paths[key]) as handle:
            assert handle.read() == extra[name]


@pytest.mark.parametrize("levels, sentence", [
    ([{"contact": "Primary on-call", "severities": ["SEV-5"]}],
     "agentops_escalation[0] has severity 'SEV-5'; use SEV-1, SEV-2, SEV-3 or SEV-4."),
    ([{"contact": "Primary on-call", "severities": ["SEV-1"], "after_minute": 5}], "agentops_escalation[0] has no key 'after_minute'"),
])
def test_bad_escalation_levels_stop_the_play_with_one_sentence_and_nothing_written(tmp_path, levels, sentence):
    run = playbook({"agentops_report_dir": str(tmp_path / "incidents"), "agentops_incident_id": "ESC-1", "agentops_checks": ["host"],
                    "agentops_escalation": levels})
    assert run.returncode != 0
    assert sentence in run.stdout + run.stderr and "Traceback" not in run.stdout + run.stderr
    assert not (tmp_path / "incidents").exists()
