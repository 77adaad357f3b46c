# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side, pure rendering of the incident report as one self-contained HTML page (report.html).

The page needs nothing but itself: no script (there is none, and its Content-Security-Policy forbids every script,
as well as fetching anything: fonts, images, frames, connections), one inline style sheet allowed by its hash, and
charts drawn as inline SVG:

* errors per minute per component (``report["error_rates"]``: ``{component: [[minute, errors, total], ...]}``);
* RSS samples of each sampled process with the fitted leak line (``report["memory_samples"]``:
  ``{"host pid name": {samples_mb, window_seconds, slope_mb_per_min, r_squared}}``);
* PostgreSQL connections by application and state (``report["pg_connections"]``: ``{host: [{application, state,
  count}]}``).

Sections: the verdict, the probable root cause chain (``report["root_cause"]``), who to page, the timeline
(``report["timeline"]``), the charts, the findings of every host, what was not checked. Each optional key may be
absent: its section then says what would fill it. Every value from the report is HTML-escaped (findings carry text
from logs), attributes included; nothing from the report becomes a URL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import html
import json
import math
import re

from ansible_collections.agentops.runbooks.plugins.module_utils import findings as fm
from ansible_collections.agentops.runbooks.plugins.plugin_utils import documents

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
STATE_COLORS = (("active", "#d62728"), ("idle in transaction", "#ff7f0e"), ("idle in transaction (aborted)", "#8c564b"),
                ("idle", "#1f77b4"), ("fastpath function call", "#9467bd"), ("disabled", "#7f7f7f"))
MAX_SERIES = 8
MAX_PROCESSES = 6
MAX_BARS = 15
MAX_TIMELINE = 300
MAX_EVIDENCE = 2000

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2329; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
header.verdict { padding: 16px 20px; border-radius: 8px; color: #fff; background: #495057; }
header.sev-1 { background: #a61e1e; } header.sev-2 { background: #c2410c; } header.sev-3 { background: #a16207; }
header.sev-4 { background: #2f6b3a; }
header h1 { margin: 0 0 4px; font-size: 24px; } header p { margin: 4px 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 4px; background: rgba(0, 0, 0, .25); }
nav { margin: 12px 0; } nav a { margin-right: 14px; color: #1f4e8c; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 12px 20px; margin: 16px 0; }
h2 { font-size: 19px; margin: 6px 0 12px; } h3 { font-size: 16px; margin: 18px 0 8px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border-bottom: 1px solid #e5e8ec; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f1f3f5; padding: 8px 10px; border-radius: 6px; white-space: pre-wrap; word-break: break-all; margin: 6px 0; }
.sevtag { display: inline-block; min-width: 64px; text-align: center; padding: 0 6px; border-radius: 4px; color: #fff;
  font-size: 12px; font-weight: 600; background: #868e96; }
.sevtag.critical { background: #b00020; } .sevtag.high { background: #d9480f; } .sevtag.medium { background: #b7791f; }
.sevtag.unknown { background: #495057; } .sevtag.low { background: #1c7ed6; } .sevtag.info { background: #868e96; }
ol.chain li { margin: 6px 0; } .muted { color: #5c6670; } .flag { color: #5c6670; font-size: 12px; margin-left: 6px; }
details.finding { border: 1px solid #e5e8ec; border-radius: 6px; padding: 6px 10px; margin: 6px 0; }
details.finding summary { cursor: pointer; } details.finding dl { margin: 8px 0 2px; }
details.finding dt { font-weight: 600; margin-top: 6px; } details.finding dd { margin: 2px 0 0 16px; }
table.timeline td:nth-child(-n+3) { white-space: nowrap; }
table.evidence td:first-child { width: 22%; font-family: ui-monospace, monospace; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure.chart { margin: 0; flex: 1 1 100%; }
figure.chart.small { flex: 1 1 360px; max-width: 560px; }
figure.chart > svg { width: 100%; height: auto; background: #fff; }
figcaption { font-weight: 600; margin: 4px 0; }
.axis { stroke: #495057; stroke-width: 1; } .grid { stroke: #e9ecef; stroke-width: 1; }
.tick { font-size: 11px; fill: #495057; } .axis-title { font-size: 12px; fill: #343a40; }
.fit { stroke-dasharray: 6 4; stroke-width: 2; fill: none; } .series { fill: none; stroke-width: 2; }
ul.legend { list-style: none; padding: 0; margin: 4px 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
ul.legend svg { vertical-align: middle; margin-right: 4px; }
.nodata { color: #5c6670; font-style: italic; }
footer { color: #5c6670; font-size: 12px; margin-top: 24px; }
"""


def _csp():
    digest = base64.b64encode(hashlib.sha256(CSS.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; script-src 'none'; style-src 'sha256-%s'; img-src 'none'; font-src 'none'; connect-src 'none'; "
            "media-src 'none'; object-src 'none'; frame-src 'none'; worker-src 'none'; manifest-src 'none'; base-uri 'none'; "
            "form-action 'none'" % digest)


CSP = _csp()


def esc(value, limit=None):
    """HTML text (and attribute value) for anything from the report."""
    text = "" if value is None else (value if isinstance(value, str) else str(value))
    if limit and len(text) > limit:
        text = text[:limit - 3] + "..."
    return html.escape(text, quote=True)


def slug(*parts):
    """An id attribute made of [a-z0-9-] only, from any text."""
    text = "-".join(re.sub(r"[^a-z0-9]+", "-", str(part).lower()).strip("-") for part in parts)
    return text or "x"


def number(value):
    """A finite float, or None (bools, text, NaN and infinities are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _c(value):
    """An SVG coordinate."""
    return "%.1f" % value


def _label(value):
    if value == int(value) and abs(value) < 1e15:
        return "%d" % value
    return ("%.2f" % value).rstrip("0").rstrip(".")


def nice_ticks(low, high, count=5):
    """Round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if high <= low:
        high = low + 1.0
    span = high - low
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for factor in (1, 2, 2.5, 5, 10):
        if span / (factor * magnitude) <= count:
            step = factor * magnitude
            break
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _time_label(epoch, multi_day):
    text = documents.iso(epoch)
    return text[5:10] + " " + text[11:16] if multi_day else text[11:16]


class Plot(object):
    """Scales and axes of one chart: data (x, y) to SVG pixels."""

    def __init__(self, x_range, y_range, width=860, height=300, left=64, right=20, top=16, bottom=52):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x0, self.x1 = self.x0 - 1, self.x1 + 1
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1
        self.width, self.height, self.left, self.right, self.top, self.bottom = width, height, left, right, top, bottom

    def x(self, value):
        return self.left + (value - self.x0) / float(self.x1 - self.x0) * (self.width - self.left - self.right)

    def y(self, value):
        return self.top + (1 - (value - self.y0) / float(self.y1 - self.y0)) * (self.height - self.top - self.bottom)

    def open(self, label):
        return ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">' % (
            self.width, self.height, self.width, self.height, esc(label)), "<title>%s</title>" % esc(label)]

    def axes(self, x_ticks, y_ticks, x_title, y_title):
        """Grid lines, axis lines, tick labels and axis titles; ticks are (value, label) pairs."""
        out = []
        bottom, right = self.height - self.bottom, self.width - self.right
        for value, label in y_ticks:
            y = self.y(value)
            out.append('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(self.left), _c(y), _c(right), _c(y)))
            out.append('<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>' % (_c(self.left - 6), _c(y + 4), esc(label)))
        for value, label in x_ticks:
            x = self.x(value)
            out.append('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(x), _c(bottom), _c(x), _c(bottom + 5)))
            out.append('<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>' % (_c(x), _c(bottom + 18), esc(label)))
        out.append('<line class="axis x-axis" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(self.left), _c(bottom), _c(right), _c(bottom)))
        out.append('<line class="axis y-axis" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(self.left), _c(self.top), _c(self.left), _c(bottom)))
        out.append('<text class="axis-title" x="%s" y="%s" text-anchor="middle">%s</text>' % (
            _c((self.left + right) / 2.0), _c(self.height - 8), esc(x_title)))
        middle = (self.top + bottom) / 2.0
        out.append('<text class="axis-title" x="14" y="%s" text-anchor="middle" transform="rotate(-90 14 %s)">%s</text>' % (
            _c(middle), _c(middle), esc(y_title)))
        return out


def _swatch(color, dashed=False):
    if dashed:
        return ('<svg width="22" height="12" aria-hidden="true"><line x1="0" y1="6" x2="22" y2="6" stroke="%s" stroke-width="2" '
                'stroke-dasharray="5 3"/></svg>' % color)
    return '<svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="%s"/></svg>' % color


def _nodata(chart_id, caption, why):
    return ['<figure class="chart" id="%s" data-points="0">' % chart_id, "<figcaption>%s</figcaption>" % esc(caption),
            '<p class="nodata">No data: %s</p>' % esc(why), "</figure>"]


# ------------------------------------------------------------------------------------------------------- charts
def error_series(report):
    """``[(component, [(epoch, errors, total)])]`` from ``report["error_rates"]``, most errors first."""
    rates = report.get("error_rates")
    series = []
    for component, rows in (rates.items() if isinstance(rates, dict) else []):
        points = []
        for row in rows if isinstance(rows, (list, tuple)) else []:
            if not isinstance(row, (list, tuple)) or len(row) < 2:
                continue
            when, errors = documents.parse_time(row[0]), number(row[1])
            if when is None or errors is None:
                continue
            points.append((when, errors, number(row[2]) if len(row) > 2 else None))
        if points:
            series.append((str(component), sorted(points)))
    return sorted(series, key=lambda s: (-sum(p[1] for p in s[1]), s[0]))


def errors_chart(report):
    caption = "Errors per minute per component (UTC)"
    series = error_series(report)
    if not series:
        return _nodata("chart-errors", caption, "the report has no error rates (scan timestamped logs: set agentops_log_paths).")
    shown, hidden = series[:MAX_SERIES], series[MAX_SERIES:]
    times = [p[0] for s in shown for p in s[1]]
    x0, x1 = min(times), max(times)
    if x1 - x0 < 120:
        x0, x1 = x0 - 60, x1 + 60
    y_ticks = nice_ticks(0, max(1.0, max(p[1] for s in shown for p in s[1])))
    plot = Plot((x0, x1), (0, y_ticks[-1]))
    step = 60
    for minutes in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080):
        step = minutes * 60
        if (x1 - x0) / step <= 8:
            break
    multi_day = documents.iso(x0)[:10] != documents.iso(x1)[:10]
    x_ticks = [(t, _time_label(t, multi_day)) for t in range(int(math.ceil(x0 / step) * step), int(x1) + 1, step)]
    count = sum(len(s[1]) for s in shown)
    out = ['<figure class="chart" id="chart-errors" data-points="%d" data-series="%d">' % (count, len(shown)),
           "<figcaption>%s</figcaption>" % esc(caption)]
    out += plot.open(caption)
    out += plot.axes(x_ticks, [(t, _label(t)) for t in y_ticks], "time (UTC, per minute)", "errors per minute")
    legend = []
    for index, (component, points) in enumerate(shown):
        color = PALETTE[index % len(PALETTE)]
        out.append('<g class="series-group" data-component="%s">' % esc(component))
        if len(points) > 1:
            out.append('<polyline class="series" stroke="%s" points="%s"/>' % (
                color, " ".join("%s,%s" % (_c(plot.x(p[0])), _c(plot.y(p[1]))) for p in points)))
        for when, errors, total in points:
            out.append('<circle class="point" cx="%s" cy="%s" r="3" fill="%s"><title>%s %s UTC: %s error(s)%s</title></circle>' % (
                _c(plot.x(when)), _c(plot.y(errors)), color, esc(component), esc(documents.iso(when)[11:16]), _label(errors),
                " of %s entries" % _label(total) if total is not None else ""))
        out.append("</g>")
        legend.append("<li>%s%s (%s errors)</li>" % (_swatch(color), esc(component, 120), _label(sum(p[1] for p in points))))
    out += ["</svg>", '<ul class="legend">%s</ul>' % "".join(legend)]
    if hidden:
        out.append('<p class="muted">%d more component(s) with fewer errors in report.json (error_rates).</p>' % len(hidden))
    out.append("</figure>")
    return out


def fitted_line(samples, window, slope_per_min=None):
    """(times in seconds, intercept MB, slope MB/s) of the least-squares line through samples taken evenly over
    ``window`` seconds; ``slope_per_min`` (the collector's) wins over the refit when given."""
    n = len(samples)
    times = [window * i / float(n - 1) for i in range(n)] if n > 1 else [0.0]
    mean_t, mean_y = sum(times) / n, sum(samples) / n
    var = sum((t - mean_t) ** 2 for t in times)
    slope = (sum((t - mean_t) * (y - mean_y) for t, y in zip(times, samples)) / var) if var else 0.0
    if slope_per_min is not None:
        slope = slope_per_min / 60.0
    return times, mean_y - slope * mean_t, slope


def memory_charts(report):
    caption = "RSS samples and the fitted leak slope"
    samples = report.get("memory_samples")
    entries = []
    for key, value in sorted(samples.items() if isinstance(samples, dict) else []):
        if not isinstance(value, dict):
            continue
        raw = value.get("samples_mb") if isinstance(value.get("samples_mb"), list) else []
        points = [v for v in (number(v) for v in raw) if v is not None]
        window = number(value.get("window_seconds"))
        if len(points) < 2:
            continue
        entries.append((str(key), points, window if window and window > 0 else None, number(value.get("slope_mb_per_min")),
                        number(value.get("r_squared"))))
    if not entries:
        return _nodata("chart-memory", caption, "no process memory was sampled (agentops_leak_window above 0 and agent processes running).")
    entries.sort(key=lambda e: (-(e[3] or 0), e[0]))
    shown = entries[:MAX_PROCESSES]
    out = ['<div class="charts" id="chart-memory" data-points="%d" data-charts="%d">' % (sum(len(e[1]) for e in shown), len(shown))]
    for index, (key, points, window, slope_min, fit) in enumerate(shown):
        if window is None:  # no window recorded: one sample per step, and a slope per step refitted from the samples
            window, slope_min, unit, x_title = float(len(points) - 1), None, "MB/sample", "sample"
        else:
            unit, x_title = "MB/min", "seconds into the sampling window"
        times, intercept, slope = fitted_line(points, window, slope_min)
        line = [intercept, intercept + slope * window]
        per = slope * 60 if unit == "MB/min" else slope
        y_ticks = nice_ticks(min(points + line), max(points + line), 4)
        plot = Plot((0, window), (y_ticks[0], y_ticks[-1]), width=520, height=260, left=60)
        x_ticks = [(t, _label(t)) for t in nice_ticks(0, window, 5) if t <= window + 1e-9]
        title = "%s: %s %s%s, %d samples%s" % (
            key, _label(round(per, 2)), unit, ", R\u00b2 %s" % _label(fit) if fit is not None else "", len(points),
            " over %s s" % _label(window) if unit == "MB/min" else "")
        out += ['<figure class="chart small memory" id="chart-memory-%d" data-points="%d">' % (index, len(points)),
                "<figcaption>%s</figcaption>" % esc(title, 200)]
        out += plot.open(title)
        out += plot.axes(x_ticks, [(t, _label(t)) for t in y_ticks], x_title, "RSS (MB)")
        out.append('<line class="fit" stroke="#d62728" x1="%s" y1="%s" x2="%s" y2="%s"><title>fitted: %s %s</title></line>' % (
            _c(plot.x(0)), _c(plot.y(line[0])), _c(plot.x(window)), _c(plot.y(line[1])), _label(round(per, 2)), unit))
        out.append('<polyline class="series" stroke="#1f77b4" points="%s"/>' % " ".join(
            "%s,%s" % (_c(plot.x(t)), _c(plot.y(v))) for t, v in zip(times, points)))
        for t, v in zip(times, points):
            out.append('<circle class="point" cx="%s" cy="%s" r="3.5" fill="#1f77b4"><title>%s: %s MB</title></circle>' % (
                _c(plot.x(t)), _c(plot.y(v)), "%s s" % _label(round(t, 1)) if unit == "MB/min" else "sample %d" % (t + 1), _label(round(v, 2))))
        out += ["</svg>", '<ul class="legend"><li>%sRSS samples</li><li>%sleast-squares fit</li></ul>' % (
            _swatch("#1f77b4"), _swatch("#d62728", dashed=True)), "</figure>"]
    out.append("</div>")
    if len(entries) > len(shown):
        out.append('<p class="muted">%d more sampled process(es) in report.json (memory_samples).</p>' % (len(entries) - len(shown)))
    return ['<h3>%s</h3>' % esc(caption)] + out


def _state_color(state, extra):
    for name, color in STATE_COLORS:
        if state == name:
            return color
    if state not in extra:
        extra[state] = PALETTE[(len(extra) + 4) % len(PALETTE)]
    return extra[state]


def pg_chart(report):
    caption = "PostgreSQL connections by application and state"
    data = report.get("pg_connections")
    rows = {}
    for host, entries in sorted(data.items() if isinstance(data, dict) else []):
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            count = number(entry.get("count"))
            if count is None or count < 0:
                continue
            key = (str(host), str(entry.get("application") or "(none)"))
            state = str(entry.get("state") or "unknown")
            rows.setdefault(key, {})
            rows[key][state] = rows[key].get(state, 0) + count
    if not rows:
        return _nodata("chart-pg", caption, "PostgreSQL was not audited (set agentops_pg_host).")
    ordered = sorted(rows.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    shown = ordered[:MAX_BARS]
    hosts = set(key[0] for key, dummy in rows.items())
    x_ticks = nice_ticks(0, max(1.0, max(sum(states.values()) for dummy, states in shown)))
    height = 60 + 28 * len(shown)
    plot = Plot((0, x_ticks[-1]), (0, len(shown)), height=height, left=220, bottom=44, top=8)
    bars = sum(1 for dummy, states in shown for count in states.values() if count > 0)
    out = ['<figure class="chart" id="chart-pg" data-points="%d" data-rows="%d">' % (bars, len(shown)), "<figcaption>%s</figcaption>" % esc(caption)]
    out += plot.open(caption)
    out += plot.axes([(t, _label(t)) for t in x_ticks], [], "connections", "")
    order = [name for name, dummy in STATE_COLORS]
    extra = {}
    used = {}
    band = (plot.height - plot.top - plot.bottom) / float(len(shown))
    for row, ((host, application), states) in enumerate(shown):
        top = plot.top + row * band + 4
        label = application if len(hosts) == 1 else "%s on %s" % (application, host)
        out.append('<text class="tick bar-label" x="%s" y="%s" text-anchor="end">%s</text>' % (_c(plot.left - 8), _c(top + band / 2.0), esc(label, 40)))
        x = 0.0
        for state in sorted(states, key=lambda s: (order.index(s) if s in order else len(order), s)):
            count = states[state]
            if count <= 0:
                continue
            color = _state_color(state, extra)
            used[state] = color
            out.append('<rect class="bar" x="%s" y="%s" width="%s" height="%s" fill="%s" data-count="%s"><title>%s: %s %s</title></rect>' % (
                _c(plot.x(x)), _c(top), _c(max(1.0, plot.x(x + count) - plot.x(x))), _c(band - 8), color, _label(count),
                esc(label), _label(count), esc(state)))
            x += count
        out.append('<text class="tick" x="%s" y="%s">%s</text>' % (_c(plot.x(x) + 6), _c(top + band / 2.0), _label(x)))
    out += ["</svg>", '<ul class="legend">%s</ul>' % "".join("<li>%s%s</li>" % (_swatch(color), esc(state)) for state, color in used.items())]
    if len(ordered) > len(shown):
        out.append('<p class="muted">%d more application(s) in report.json (pg_connections).</p>' % (len(ordered) - len(shown)))
    out.append("</figure>")
    return out


# ----------------------------------------------------------------------------------------------------- sections
def _generator(report):
    return (report.get("generator") or {}).get("collection") or "agentops.runbooks"


def _sev_class(severity):
    return slug(severity) if severity in fm.SEVERITY_ORDER else "info"


def _finding_anchor(host, index):
    return "f-%s-%s" % (slug(host), index)


def _header(report, esc_info):
    severity = str(report.get("severity") or "")
    fix = documents.first_fix(report)
    spots = report.get("not_checked") or []
    out = ['<header class="verdict %s" id="verdict">' % slug(severity),
           '<h1>Incident %s <span class="badge">%s</span></h1>' % (esc(report.get("incident_id")), esc(report.get("verdict") or severity)),
           '<p class="reason">%s</p>' % esc(report.get("severity_reason")), "</header>", '<section id="summary">', '<dl class="facts">']
    out.append("<dt>Affected</dt><dd>%s</dd>" % " ".join(esc(line) for line in documents.impact_lines(report)))
    out.append("<dt>Started</dt><dd>%s (%s), %s before the diagnosis</dd>" % (
        esc(esc_info["started"]), esc(esc_info["started_from"]), esc(documents.duration(esc_info["elapsed_minutes"]))))
    unseen = "; ".join(sorted(set("%s (%s)" % (s.get("what"), s.get("host")) for s in spots)))
    out.append("<dt>Not checked</dt><dd>%s</dd>" % (esc(unseen, 1500) if spots else "nothing: every check ran on every host."))
    if fix:
        out.append("<dt>First fix</dt><dd>%s (<code>%s</code> on %s)%s</dd>" % (
            esc(fix["summary"]), esc(fix["rule"]), esc(fix["host"]), "<pre><code>%s</code></pre>" % esc(fix["command"]) if fix.get("command") else ""))
    else:
        out.append("<dt>First fix</dt><dd>none needed: no problem was found.</dd>")
    hosts = (report.get("summary") or {}).get("hosts") or {}
    out.append("<dt>Diagnosis</dt><dd>%s by %s %s; %s host(s): %s ok, %s partial, %s unreachable; visibility %s</dd>" % (
        esc(report.get("generated_at")), esc(_generator(report)), esc((report.get("generator") or {}).get("version") or ""),
        esc(hosts.get("total", len(report.get("hosts") or {}))), esc(hosts.get("ok", 0)), esc(hosts.get("partial", 0)),
        esc(hosts.get("unreachable", 0)), esc(report.get("visibility") or "full")))
    out.append("</dl>")
    if report.get("warnings"):
        out.append("<h3>Warnings</h3><ul>%s</ul>" % "".join("<li>%s</li>" % esc(w, 500) for w in report["warnings"]))
    out.append("</section>")
    return out


def _chain(cause, heading):
    out = ['<ol class="chain">']
    for step in cause.get("chain") or []:
        anchor = _finding_anchor(step.get("host"), step.get("finding_index"))
        out.append('<li><span class="sevtag %s">%s</span> <a href="#%s">%s</a> on %s (<code>%s</code>)%s<br>%s</li>' % (
            _sev_class(step.get("severity")), esc(str(step.get("severity") or "").upper()), anchor, esc(step.get("title")),
            esc(step.get("host")), esc(step.get("rule")), ', first seen %s' % esc(step.get("first_seen")) if step.get("first_seen") else "",
            esc(step.get("evidence_line"), 600)))
    out.append("</ol>")
    return ["<h3>%s</h3>" % esc(heading)] + out


def _root_cause(report):
    cause = documents.root_cause(report)
    out = ['<section id="root-cause">', "<h2>Probable root cause</h2>"]
    if not cause:
        out += ['<p class="nodata">The diagnosis did not link the findings into a chain%s.</p>' % (
            "" if documents.real_findings(report) else ": no problem was found"), "</section>"]
        return out
    out += _chain(cause, "Chain, cause first (explains %s finding(s))" % cause.get("explains_count", len(cause["chain"])))
    on_chain = set((step.get("host"), step.get("finding_index")) for step in cause.get("chain") or [])
    also = [(host, index, item) for host, record in sorted((report.get("hosts") or {}).items())
            for index, item in enumerate(record.get("findings") or []) if isinstance(item, dict) and item.get("explained_by")
            and (host, index) not in on_chain]
    if also:
        out.append("<h3>Also explained by it</h3><ul>%s</ul>" % "".join('<li><a href="#%s">%s</a> on %s (<code>%s</code>)</li>' % (
            _finding_anchor(host, index), esc(item.get("title")), esc(host), esc(item.get("id"))) for host, index, item in also))
    fix = cause.get("first_fix") if isinstance(cause.get("first_fix"), dict) else None
    if fix:
        out.append("<h3>Fix first</h3><p>%s (<code>%s</code> on %s)%s</p>%s" % (
            esc(fix.get("summary")), esc(fix.get("rule")), esc(fix.get("host")),
            " - playbook <code>%s</code>" % esc(fix["playbook"]) if fix.get("playbook") else "",
            "<pre><code>%s</code></pre>" % esc(fix["command"]) if fix.get("command") else ""))
    missing = cause.get("not_explained") or []
    out.append("<h3>What it does not explain</h3>")
    out.append("<ul>%s</ul>" % "".join("<li>%s on %s (<code>%s</code>)</li>" % (esc(n.get("title")), esc(n.get("host")), esc(n.get("rule")))
                                       for n in missing if isinstance(n, dict)) if missing else "<p>Nothing: it explains every finding.</p>")
    if cause.get("whys"):
        out.append("<h3>Five whys (draft)</h3><ol>%s</ol>" % "".join("<li>%s</li>" % esc(why, 600) for why in cause["whys"]))
    for position, alternative in enumerate(cause.get("alternatives") or [], 1):
        if isinstance(alternative, dict) and alternative.get("chain"):
            out.append("<details><summary>Alternative %d: %s</summary>" % (position, esc(" -> ".join(
                "%s on %s" % (s.get("rule"), s.get("host")) for s in alternative["chain"]))))
            out += _chain(alternative, "Explains %s finding(s)" % alternative.get("explains_count", len(alternative["chain"])))
            out.append("</details>")
    out.append("</section>")
    return out


def _escalation(esc_info):
    out = ['<section id="escalation">', "<h2>Who to page</h2>",
           "<p>Severity %s, started %s (%s), %s before the diagnosis.</p>" % (
               esc(esc_info["severity"]), esc(esc_info["started"]), esc(esc_info["started_from"]), esc(documents.duration(esc_info["elapsed_minutes"])))]
    if esc_info["page_now"]:
        out.append("<h3>Page now</h3><ul>%s</ul>" % "".join("<li><strong>%s</strong> - %s (level %s, from %s min)</li>" % (
            esc(level["contact"]), esc(level["method"]), esc(level["level"]), esc(level["after_minutes"])) for level in esc_info["page_now"]))
    else:
        out.append("<p><strong>Page now:</strong> nobody (%s).</p>" % (
            "no escalation level covers %s" % esc(esc_info["severity"]) if esc_info["levels"] else "no escalation levels are configured"))
    if esc_info["later"]:
        out.append("<h3>Next, if still open</h3><ul>%s</ul>" % "".join("<li>%s - %s in %s min (level %s)</li>" % (
            esc(level["contact"]), esc(level["method"]), esc(max(level["in_minutes"], 1)), esc(level["level"])) for level in esc_info["later"]))
    out.append("</section>")
    return out


def _timeline(report):
    events, left = documents.timeline_events(report, MAX_TIMELINE)
    out = ['<section id="timeline">', "<h2>Timeline (UTC)</h2>"]
    if not events:
        return out + ['<p class="nodata">No dated events in the report.</p>', "</section>"]
    out.append('<table class="timeline"><thead><tr><th>Time</th><th>Host</th><th>Kind</th><th>What</th><th>Rule</th><th>Value</th></tr></thead><tbody>')
    for event in events:
        value = number(event.get("value"))
        out.append('<tr class="event kind-%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            slug(event.get("kind")), esc(event.get("time")), esc(event.get("host") or "-"), esc(event.get("kind")), esc(event.get("what"), 400),
            "<code>%s</code>" % esc(event["rule"]) if event.get("rule") else "-", _label(value) if value is not None else "-"))
    out.append("</tbody></table>")
    if left:
        out.append('<p class="muted">%d more event(s) in report.json (timeline).</p>' % left)
    out.append("</section>")
    return out


def _evidence(evidence):
    rows = []
    for key in sorted(evidence)[:60]:
        value = evidence[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        rows.append("<tr><td>%s</td><td>%s</td></tr>" % (esc(key), esc(text, MAX_EVIDENCE)))
    return '<table class="evidence"><tbody>%s</tbody></table>' % "".join(rows) if rows else "<p>-</p>"


def _finding(host, index, item, steps):
    severity = item.get("severity")
    flags = []
    if (host, index) in steps:
        flags.append("root cause chain, step %d" % steps[(host, index)])
    elif isinstance(item.get("explained_by"), dict):
        flags.append("explained by %s on %s" % (item["explained_by"].get("rule"), item["explained_by"].get("host")))
    if item.get("confidence") is not None:
        flags.append("confidence %s" % item["confidence"])
    if item.get("historical"):
        flags.append("historical")
    if item.get("contradicted_by"):
        flags.append("contradicted by the current state")
    fix = item.get("fix") or {}
    weight = []
    if item.get("historical"):
        weight.append("historical: last seen %s before the diagnosis" % documents.duration((item.get("last_seen_age_seconds") or 0) / 60.0))
    for key, text in (("contradicted_by", "contradicted by the current state: %s"), ("state_now", "now: %s"),
                      ("severity_observed", "severity %s as observed")):
        if item.get(key):
            weight.append(text % item[key])
    out = ['<details class="finding sev-%s" id="%s"%s>' % (_sev_class(severity), _finding_anchor(host, index),
                                                           " open" if severity == "critical" or (host, index) in steps else ""),
           '<summary><span class="sevtag %s">%s</span> <code>%s</code> %s%s<span class="flag">%s</span></summary>' % (
               _sev_class(severity), esc(str(severity or "").upper()), esc(item.get("id")), esc(item.get("title")),
               " (%s)" % esc(item["subject"], 200) if item.get("subject") else "", esc(" - ".join(flags))),
           "<dl>", "<dt>Symptom</dt><dd>%s</dd>" % esc(item.get("symptom"), 2000)]
    if weight:
        out.append("<dt>Weight</dt><dd>%s</dd>" % esc("; ".join(weight), 1000))
    out.append("<dt>Evidence</dt><dd>%s</dd>" % _evidence(item.get("evidence") or {}))
    out.append("<dt>Diagnosis</dt><dd>%s</dd>" % esc(item.get("diagnosis"), 2000))
    out.append("<dt>Fix</dt><dd>%s%s%s</dd>" % (
        esc(fix.get("summary") or "-"), "<pre><code>%s</code></pre>" % esc(fix["command"]) if fix.get("command") else "",
        "Playbook: <code>%s</code>" % esc(fix["playbook"]) if fix.get("playbook") else ""))
    out.append("<dt>Docs</dt><dd><code>%s</code></dd>" % esc(item.get("docs")))
    out += ["</dl>", "</details>"]
    return out


def _hosts(report):
    hosts = report.get("hosts") or {}
    cause = documents.root_cause(report) or {}
    steps = {}
    for position, step in enumerate(cause.get("chain") or [], 1):
        steps[(step.get("host"), step.get("finding_index"))] = position
    order = sorted(hosts.items(), key=lambda kv: (fm.SEVERITY_ORDER.get(fm.worst(kv[1].get("findings") or []), 99), kv[0]))
    out = ['<section id="hosts">', "<h2>Findings per host</h2>",
           "<table><thead><tr><th>Host</th><th>Status</th><th>Worst</th><th>Findings</th></tr></thead><tbody>"]
    for name, record in order:
        findings = record.get("findings") or []
        counts = {}
        for item in findings:
            counts[item.get("severity")] = counts.get(item.get("severity"), 0) + 1
        worst = fm.worst(findings)
        out.append('<tr><td><a href="#host-%s">%s</a></td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            slug(name), esc(name), esc(record.get("status")),
            '<span class="sevtag %s">%s</span>' % (_sev_class(worst), esc(worst.upper())) if worst else "-",
            esc(", ".join("%d %s" % (counts[s], s) for s in fm.SEVERITIES if counts.get(s)) or "none")))
    out.append("</tbody></table>")
    for name, record in order:
        out.append('<h3 id="host-%s">%s <span class="muted">(%s)</span></h3>' % (slug(name), esc(name), esc(record.get("status"))))
        rollback = record.get("rollback")
        if isinstance(rollback, dict):
            out.append("<p>Rollback: <strong>%s</strong>, %s -&gt; %s in %s s.</p>" % (
                esc(rollback.get("outcome")), esc(rollback.get("from_release")), esc(rollback.get("to_release")), esc(rollback.get("seconds"))))
        findings = record.get("findings") or []
        if not findings:
            out.append("<p>No findings.</p>")
        for index, item in enumerate(findings):
            if isinstance(item, dict):
                out += _finding(name, index, item, steps)
    out.append("</section>")
    return out


def _not_checked(report):
    spots = report.get("not_checked") or []
    out = ['<section id="not-checked">', "<h2>Not checked</h2>"]
    if not spots:
        return out + ["<p>Nothing: every check ran on every host.</p>", "</section>"]
    out.append("<table><thead><tr><th>Host</th><th>Family</th><th>What</th><th>How to see it</th></tr></thead><tbody>")
    out += ["<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (esc(s.get("host")), esc(s.get("family")), esc(s.get("what"), 600), esc(s.get("how")))
            for s in spots if isinstance(s, dict)]
    out += ["</tbody></table>", "</section>"]
    return out


def report_html(report, levels=None):
    """The whole page (report.html) as text; ``levels`` are the escalation levels (None: the default)."""
    esc_info = documents.escalation(report, levels)
    title = "Incident %s: %s" % (report.get("incident_id"), report.get("verdict") or report.get("severity"))
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" content="%s">' % esc(CSP), '<meta name="referrer" content="no-referrer">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', "<title>%s</title>" % esc(title),
           "<style>%s</style>" % CSS, "</head>", "<body>", "<main>"]
    out += _header(report, esc_info)
    out.append('<nav><a href="#root-cause">Root cause</a><a href="#escalation">Who to page</a><a href="#timeline">Timeline</a>'
               '<a href="#charts">Charts</a><a href="#hosts">Findings per host</a><a href="#not-checked">Not checked</a></nav>')
    out += _root_cause(report)
    out += _escalation(esc_info)
    out += _timeline(report)
    out += ['<section id="charts">', "<h2>Charts</h2>"] + errors_chart(report) + memory_charts(report) + pg_chart(report) + ["</section>"]
    out += _hosts(report)
    out += _not_checked(report)
    out += ["<footer>Generated %s by %s %s from report.json. This page is self-contained: no script, nothing loaded from elsewhere.</footer>" % (
        esc(report.get("generated_at")), esc(_generator(report)), esc((report.get("generator") or {}).get("version") or "")),
        "</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
