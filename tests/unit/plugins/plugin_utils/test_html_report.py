"""report.html (plugins/plugin_utils/html_report.py): self-contained, scriptless, escaped, with charts from the data."""
import base64
import hashlib
import html
import math
import re
import time

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import html_report, incident

import report_samples as samples
from report_samples import Page

NEW_KEYS = ("root_cause", "timeline", "error_rates", "memory_samples", "pg_connections")


@pytest.fixture(scope="module")
def full():
    return Page(html_report.report_html(samples.full_report()))


@pytest.mark.parametrize("make", [samples.full_report, samples.base_report, lambda: samples.without(samples.full_report(), *NEW_KEYS)])
def test_the_page_is_self_contained_and_has_no_script(make):
    text = html_report.report_html(make())
    page = Page(text)
    tags = set(tag for tag, dummy, dummy in page.elements)
    assert not tags & {"script", "iframe", "object", "embed", "link", "img", "frame", "base", "form", "input", "audio", "video", "use",
                       "image", "foreignobject"}
    for tag, attrs, dummy in page.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "srcset", "xlink:href", "action", "formaction", "background", "style"), (tag, name)
            if name == "href":
                assert value.startswith("#"), value
    ids = set(attrs["id"] for dummy, attrs, dummy in page.elements if attrs.get("id"))
    for dummy, attrs, dummy in page.elements:
        if attrs.get("href"):
            assert attrs["href"][1:] in ids, "a link to a missing anchor: %s" % attrs["href"]
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text


def test_the_content_security_policy_forbids_scripts_and_every_fetch(full):
    meta = [attrs for tag, attrs, dummy in full.elements if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"]
    assert len(meta) == 1
    policy = dict((part.split()[0], part.split()[1:]) for part in meta[0]["content"].split(";") if part.strip())
    assert policy["default-src"] == ["'none'"] and policy["script-src"] == ["'none'"]
    for directive in ("img-src", "font-src", "connect-src", "object-src", "base-uri", "form-action", "frame-src"):
        assert policy[directive] == ["'none'"], directive
    # the one style sheet is allowed by its hash, nothing else (no 'unsafe-inline')
    digest = base64.b64encode(hashlib.sha256("".join(full.style).encode("utf-8")).digest()).decode("ascii")
    assert policy["style-src"] == ["'sha256-%s'" % digest]
    assert "frame-ancestors" not in policy and "sandbox" not in policy  # ignored in a meta tag: a console error


def test_text_from_the_logs_renders_as_text():
    text = html_report.report_html(samples.full_report())
    page = Page(text)
    shown = "".join(page.text)
    assert samples.XSS in shown and samples.HOSTILE_COMPONENT in shown and samples.HOSTILE_APP in shown
    assert samples.XSS not in text and "<script>" not in text and "</svg><script>" not in text
    assert html.escape(samples.XSS, quote=True) in text
    # attribute values are escaped too (the component is an attribute of its series)
    groups = page.within("chart-errors", "g", "series-group")
    assert samples.HOSTILE_COMPONENT in [g["data-component"] for g in groups]


def test_the_sections_come_in_order(full):
    order = [attrs.get("id") for tag, attrs, dummy in full.elements if tag in ("header", "section")]
    assert order == ["verdict", "summary", "root-cause", "escalation", "timeline", "charts", "hosts", "not-checked"]


def test_the_root_cause_chain_links_to_its_findings(full):
    chain = [attrs["href"] for attrs in full.within("root-cause", "a")][:3]
    assert chain == ["#f-db-1-0", "#f-web-1-%d" % next(i for i, f in enumerate(samples.full_report()["hosts"]["web-1"]["findings"])
                                                       if f["id"] == "log.pg_connections"), chain[2]]
    assert "open" in full.by_id("f-db-1-0")  # a chain step is shown unfolded


def test_errors_chart_draws_every_minute_of_every_component(full):
    report = samples.full_report()
    expected = sum(len(rows) for rows in report["error_rates"].values())
    figure = full.by_id("chart-errors")
    assert int(figure["data-points"]) == expected == len(full.within("chart-errors", "circle", "point"))
    assert int(figure["data-series"]) == 3 == len(full.within("chart-errors", "polyline", "series"))
    assert full.within("chart-errors", "line", "x-axis") and full.within("chart-errors", "line", "y-axis")
    ticks = full.within("chart-errors", "text", "tick")
    assert len(ticks) >= 6


def test_errors_chart_scales_the_points(full):
    """The minute with 60 errors (the maximum) is at the top of the y axis' highest tick (60), zero on the x axis."""
    circles = full.within("chart-errors", "circle", "point")
    ys = sorted(float(c["cy"]) for c in circles)
    axis = full.within("chart-errors", "line", "x-axis")[0]
    assert ys[-1] == pytest.approx(float(axis["y1"]))  # a minute with 0 errors sits on the x axis
    assert ys[0] == pytest.approx(16.0)  # 60 errors: the top of the plot (the highest tick is 60)


def test_memory_charts_draw_the_samples_and_the_fitted_line(full):
    group = full.by_id("chart-memory")
    assert int(group["data-charts"]) == 2 and int(group["data-points"]) == 16
    assert len(full.within("chart-memory-0", "circle", "point")) == 12
    fit = full.within("chart-memory-0", "line", "fit")
    assert len(fit) == 1
    # the leak rises: the fitted line's end is higher on the page (smaller y) than its start
    assert float(fit[0]["y2"]) < float(fit[0]["y1"])
    assert len(full.within("chart-memory-1", "circle", "point")) == 4


def test_fitted_line_is_the_least_squares_line():
    times, intercept, slope = html_report.fitted_line([100.0, 120.0, 140.0, 160.0], 30.0)
    assert times == [0.0, 10.0, 20.0, 30.0]
    assert (intercept, slope) == (pytest.approx(100.0), pytest.approx(2.0))
    # the collector's slope (MB/min) wins; the line still goes through the samples' centre
    dummy, intercept, slope = html_report.fitted_line([100.0, 120.0, 140.0, 160.0], 30.0, slope_per_min=60.0)
    assert slope == pytest.approx(1.0) and intercept + slope * 15 == pytest.approx(130.0)


def test_pg_chart_has_one_bar_per_application_and_state(full):
    figure = full.by_id("chart-pg")
    bars = full.within("chart-pg", "rect", "bar")
    assert int(figure["data-points"]) == 3 == len(bars)
    assert int(figure["data-rows"]) == 3  # manager, api and one with no sessions
    assert sorted(int(b["data-count"]) for b in bars) == [1, 1, 7]
    labels = full.within("chart-pg", "text", "bar-label")
    assert len(labels) == 3


def test_every_coordinate_is_a_finite_number(full):
    for tag, attrs, dummy in full.elements:
        for name in ("cx", "cy", "x", "y", "x1", "x2", "y1", "y2", "width", "height", "r"):
            if name in attrs and tag in ("circle", "line", "rect", "text"):
                assert math.isfinite(float(attrs[name])), (tag, name, attrs[name])
        if tag == "polyline":
            for pair in attrs["points"].split():
                assert all(math.isfinite(float(v)) for v in pair.split(","))


def test_without_the_new_keys_each_section_says_what_would_fill_it():
    report = samples.without(samples.full_report(), *NEW_KEYS)
    page = Page(html_report.report_html(report))
    shown = "".join(page.text)
    for chart in ("chart-errors", "chart-memory", "chart-pg"):
        assert page.by_id(chart)["data-points"] == "0"
    assert "No data: the report has no error rates (scan timestamped logs: set agentops_log_paths)." in shown
    assert "No data: PostgreSQL was not audited (set agentops_pg_host)." in shown
    assert "The diagnosis did not link the findings into a chain." in shown
    rows = page.within("timeline", "tr", "event")
    assert rows  # from the findings' first and last occurrences and the diagnosis


def test_the_real_report_renders_its_own_series():
    """base_report comes from the real incident_report: whatever series it builds from the facts are drawn."""
    report = samples.base_report()
    page = Page(html_report.report_html(report))
    points = sum(len(rows) for rows in (report.get("error_rates") or {}).values())
    assert int(page.by_id("chart-errors")["data-points"]) == points
    assert len(page.within("chart-errors", "circle", "point")) == points
    bars = sum(1 for rows in (report.get("pg_connections") or {}).values() for row in rows if row["count"] > 0)
    assert len(page.within("chart-pg", "rect", "bar")) == bars


@pytest.mark.parametrize("key, value", [
    ("error_rates", {"api": [["not a time", 1, 2], ["2026-11-25T03:00:00Z", "x", 2], ["2026-11-25T03:00:00Z", float("nan"), 1], [], None,
                             ["2026-11-25T03:01:00Z", True, 1], ["2026-11-25T03:02:00Z", 4, None]], "empty": [], "bad": "x"}),
    ("error_rates", "not a mapping"),
    ("memory_samples", {"a": {"samples_mb": [1, None, "x", float("inf")]}, "b": None, "c": {"samples_mb": "x"},
                        "d": {"samples_mb": [10, 12, 14], "window_seconds": None, "slope_mb_per_min": "?"}}),
    ("pg_connections", {"h": [{"application": None, "state": None, "count": 2}, {"count": "x"}, {"count": -1}, "x"], "g": None}),
    ("timeline", [None, {"time": "bad"}, {"time": "2026-11-25T03:00:00Z", "value": float("nan"), "what": None}]),
    ("root_cause", {"chain": [{"host": None, "finding_index": None}], "first_fix": None, "alternatives": [None, {"chain": []}]}),
])
def test_odd_values_do_not_break_the_page(key, value):
    report = samples.full_report()
    report[key] = value
    page = Page(html_report.report_html(report))
    assert page.by_id("verdict")


def test_odd_values_keep_only_the_good_points():
    report = samples.full_report()
    report["error_rates"] = {"api": [["2026-11-25T03:00:00Z", float("nan"), 1], ["2026-11-25T03:01:00Z", True, 1],
                                     ["2026-11-25T03:02:00Z", 4, None], ["2026-11-25T03:03:00Z", 5, 9]]}
    report["memory_samples"] = {"d": {"samples_mb": [10, 12, None, 14], "window_seconds": None}}
    page = Page(html_report.report_html(report))
    assert page.by_id("chart-errors")["data-points"] == "2"
    assert page.by_id("chart-memory")["data-points"] == "3"
    assert "d: 2 MB/sample, 3 samples" in "".join(page.text)


@pytest.mark.parametrize("low, high, expected", [
    (0, 60, [0, 20, 40, 60]),
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0, 7, [0, 2, 4, 6, 8]),
    (210, 254.1, [210, 220, 230, 240, 250, 260]),
    (5, 5, [5, 5.2, 5.4, 5.6, 5.8, 6.0]),
])
def test_nice_ticks(low, high, expected):
    assert html_report.nice_ticks(low, high) == pytest.approx(expected)


def test_the_timeline_table_is_bounded():
    report = samples.full_report()
    report["timeline"] = [{"time": "2026-11-25T%02d:%02d:00Z" % divmod(m, 60), "host": "h", "kind": "last_seen", "what": "event %d" % m,
                           "rule": None, "value": None, "component": None} for m in range(400)]
    page = Page(html_report.report_html(report))
    assert len(page.within("timeline", "tr", "event")) == html_report.MAX_TIMELINE
    assert "100 more event(s) in report.json (timeline)." in "".join(page.text)


def test_a_large_fleet_renders_quickly():
    item = fm.make("host.disk_space", "high", {"mount_point": "/var", "used_percent": 91, "available_mb": 900, "size_mb": 10000, "fstype": "ext4"})
    record = {"status": "ok", "checks": {}, "facts": {}, "findings": [dict(item, subject="/var/%d" % n) for n in range(20)]}
    names = ["host-%03d" % n for n in range(200)]
    report = incident.incident_report(dict((n, {"diagnose_result": record}) for n in names), names, "BIG-1", generated_at=samples.GENERATED_AT)
    began = time.monotonic()
    text = html_report.report_html(report)
    assert time.monotonic() - began < 10
    assert len(re.findall(r'<details class="finding', text)) == 4000
