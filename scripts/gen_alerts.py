#!/usr/bin/env python3
"""Generate the Prometheus alert rules and their docs from the alert part of the rules catalog.

* prometheus/agentops-alerts.yml  Prometheus rule groups (one per exporter) from plugins/module_utils/alerts.py, with
                                  thresholds and titles from plugins/module_utils/rules.py
* docs/Alerting.md                what to alert on, thresholds, and which playbook answers each alert

`scripts/gen_docs.py` (`make docs`) writes both through `outputs()`; running this file alone writes (or with
`--check`, checks) just these two.
"""
import argparse
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.agentops.runbooks.plugins.module_utils import alerts, rules  # noqa: E402
from ansible_collections.agentops.runbooks.plugins.module_utils.findings import SEVERITIES  # noqa: E402

RULES_FILE = os.path.join("prometheus", "agentops-alerts.yml")
DOCS_FILE = os.path.join("docs", "Alerting.md")
DIAGNOSE = "agentops.runbooks.diagnose"
# The measured value in a description annotation (a Prometheus template).
VALUE = '{{ $value | printf "%.1f" }}'


def runbook_base():
    """Where runbook_url points: the docs of the collection's repository (galaxy.yml), on its main branch."""
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        repository = (yaml.safe_load(handle).get("repository") or "").rstrip("/")
    return repository + "/blob/main/" if repository else ""


def _name(rule_id, severity=None):
    words = re.split(r"[._]", rule_id) + ([severity] if severity else [])
    return "Agentops" + "".join(word[:1].upper() + word[1:] for word in words)


def _number(value):
    """A threshold as PromQL writes it: 90.0 -> 90, 1.5 -> 1.5."""
    return repr(int(value)) if float(value) == int(value) else repr(float(value))


def _compared(value, operator, threshold):
    """``value operator threshold``, parenthesised when ``value`` has a comparison or set operator of its own (those
    bind looser than, or as loose as, the comparison we add)."""
    bare = re.sub(r'"[^"]*"', '""', value)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    if re.search(r"[<>]|==|!=|\b(and|or|unless)\b", bare):
        value = "(%s)" % value
    return "%s %s %s" % (value, operator, _number(threshold))


def levels(rule_id):
    """Every alert of a rule as (severity, expression, threshold or None), worst first."""
    entry = alerts.ALERTS[rule_id]
    rule = rules.RULES[rule_id]
    if "conditions" in entry:
        out = [(severity, expr, None) for severity, expr in entry["conditions"]]
    else:
        operator = "<" if rule.get("direction") == "below" else ">="
        out = [(level, _compared(entry["value"], operator, limit), limit) for level, limit in (rule.get("thresholds") or {}).items()]
    return sorted(out, key=lambda item: SEVERITIES.index(item[0]))


def _names(rule_id):
    """(alert name, level) for each alert of a rule, worst first; a rule with one fixed condition has no level suffix."""
    several = len(levels(rule_id)) > 1 or "value" in alerts.ALERTS[rule_id]
    return [(_name(rule_id, severity if several else None), (severity, expr, threshold)) for severity, expr, threshold in levels(rule_id)]


def playbook(rule_id):
    return (rules.RULES[rule_id].get("fix") or {}).get("playbook")


def alert_rules(base=None):
    """The Prometheus rule groups, as data."""
    base = runbook_base() if base is None else base
    groups = []
    for exporter in alerts.EXPORTERS:
        items = []
        for rule_id in sorted(r for r, e in alerts.ALERTS.items() if e["exporter"] == exporter):
            entry, rule = alerts.ALERTS[rule_id], rules.RULES[rule_id]
            for name, (severity, expr, threshold) in _names(rule_id):
                description = entry["description"].replace("{value}", VALUE)
                if threshold is not None:
                    description = description.replace("{threshold}", _number(threshold))
                items.append({
                    "alert": name,
                    "expr": _lines(expr),
                    "for": entry["for"],
                    "labels": {"severity": severity, "agentops_rule": rule_id, "agentops_category": rule["category"]},
                    "annotations": {
                        "summary": rule["title"],
                        "description": description,
                        "runbook_url": base + rules.docs_url(rule_id),
                        "playbook": playbook(rule_id) or DIAGNOSE,
                    },
                })
        if items:
            groups.append({"name": "agentops.%s" % exporter, "rules": items})
    return {"groups": groups}


class _Indented(yaml.SafeDumper):
    """Lists indented under their key, as yamllint (ansible-lint) wants them; multi-line strings as literal blocks."""

    def increase_indent(self, flow=False, indentless=False):
        return super(_Indented, self).increase_indent(flow, False)


_Indented.add_representer(str, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None))


def _lines(expr):
    """A long expression over several lines (PromQL ignores the line breaks): at set operators and label matchers."""
    if len(expr) <= 120:
        return expr
    for old, new in ((" and ", "\nand "), (" unless ", "\nunless "), (" or ", "\nor "), (") / (", ")\n  / ("), ('", ', '",\n  ')):
        expr = expr.replace(old, new)
    return expr


def rules_file(base=None):
    header = ("---\n# Generated by scripts/gen_alerts.py from plugins/module_utils/alerts.py and rules.py. Do not edit by hand:\n"
              "# run `make docs`. Load it with `rule_files: [agentops-alerts.yml]`; docs/Alerting.md says what each alert means.\n")
    return header + yaml.dump(alert_rules(base), Dumper=_Indented, sort_keys=False, width=150, default_flow_style=False, allow_unicode=True)


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text):
    return "`%s`" % _cell(text)


def _levels_cell(rule_id):
    entry = alerts.ALERTS[rule_id]
    if "conditions" in entry:
        return "<br>".join("**%s** %s" % (severity, _code(expr)) for severity, expr, _t in levels(rule_id))
    word = "below" if rules.RULES[rule_id].get("direction") == "below" else "at or above"
    return "; ".join("**%s** %s %s" % (severity, word, _number(threshold)) for severity, _e, threshold in levels(rule_id))


def alerting_page(base=None):
    base = runbook_base() if base is None else base
    generated = "<!-- Generated by scripts/gen_alerts.py from plugins/module_utils/alerts.py and rules.py. Do not edit by hand: run `make docs`. -->"
    out = [generated, "", "# Alerting", "",
           "The rules catalog ([Production-Debugging-Playbooks.md](Production-Debugging-Playbooks.md)) also says what to alert on",
           "before anyone runs a diagnosis: every rule whose condition a common exporter's metrics show has an alert",
           "expression in `plugins/module_utils/alerts.py`, with the same thresholds as the diagnosis (read from the catalog, so",
           "they never drift). `make docs` writes them to [`prometheus/agentops-alerts.yml`](../prometheus/agentops-alerts.yml):",
           "one Prometheus rule group per exporter, validated by `promtool check rules` in the unit tests.",
           "",
           "Every alert carries:",
           "",
           "- the labels `agentops_rule` (the rule id: reports, docs anchors, EDA rulebooks and sinks key on it),",
           "  `agentops_category` and `severity` (the rule's threshold level, or its fixed severity);",
           "- the annotations `summary` (the rule's title), `description`, `runbook_url` (the rule's section of the catalog",
           "  page, under `%s`) and `playbook` (the playbook that answers it: the rule's fix playbook, else" % (base or "docs/"),
           "  `%s`, whose report names the fix)." % DIAGNOSE,
           "",
           "A graded rule has one alert per threshold level (`...Critical`, `...High`, ...): the expression is the value the",
           "diagnosis grades, compared as it compares (`>=`, or `<` for a rule where smaller is worse).",
           "",
           "## Routing",
           "",
           "Page on `critical` and `high`: something fails now or will within hours (a full disk, exhausted connection",
           "slots, a crash loop, an OOM kill), and the playbook in the `playbook` annotation is the first thing to run",
           "(`ansible-playbook %s --limit <host>` when there is no specific one). Open a ticket on `medium`:" % DIAGNOSE,
           "degraded or heading for trouble, to be handled in working hours. `low` and `info` notify nobody: they stay",
           "visible in Alertmanager and explain the pages next to them (a host that just rebooted, a certificate due in",
           "30 days). Alerts of one rule share the `agentops_rule` label, so an inhibit rule keeps a rising value to one",
           "notification:",
           "",
           "```yaml",
           "route:",
           "  receiver: ticket",
           "  routes:",
           "    - matchers: ['severity=~\"critical|high\"']",
           "      receiver: pager",
           "    - matchers: ['severity=~\"low|info\"']",
           "      receiver: none",
           "inhibit_rules:",
           "  - source_matchers: ['severity=\"critical\"']",
           "    target_matchers: ['severity=~\"high|medium|low|info\"']",
           "    equal: [agentops_rule, instance]",
           "  - source_matchers: ['severity=\"high\"']",
           "    target_matchers: ['severity=~\"medium|low|info\"']",
           "    equal: [agentops_rule, instance]",
           "```",
           "",
           "Event-Driven Ansible can key on the same label: a rulebook condition such as",
           "`event.alert.labels.agentops_rule == \"pg.saturation\"` runs the playbook the alert names (dry run first, as every",
           "remediation playbook defaults to).",
           ""]
    for exporter, (title, url, setup) in alerts.EXPORTERS.items():
        ids = sorted(r for r, e in alerts.ALERTS.items() if e["exporter"] == exporter)
        if not ids:
            continue
        out += ["## %s" % title, "", "[%s](%s). %s" % (title, url, setup), "",
                "| Alert | Rule | Expression | For | Severity | Playbook |", "| --- | --- | --- | --- | --- | --- |"]
        for rule_id in ids:
            entry = alerts.ALERTS[rule_id]
            names = [name for name, _level in _names(rule_id)]
            expression = _code(entry["value"]) if "value" in entry else "see severity"
            out.append("| %s | [`%s`](%s) | %s | %s | %s | %s |" % (
                "<br>".join(names), rule_id, "Production-Debugging-Playbooks.md#" + rules.anchor(rule_id), expression, entry["for"],
                _levels_cell(rule_id), "`%s`" % playbook(rule_id) if playbook(rule_id) else "`%s` (manual fix)" % DIAGNOSE))
        out.append("")
        notes = [(rule_id, alerts.ALERTS[rule_id]["note"]) for rule_id in ids if alerts.ALERTS[rule_id].get("note")]
        if notes:
            out += ["Where the alert differs from the diagnosis:", ""]
            out += ["- `%s`: %s" % (rule_id, note) for rule_id, note in notes]
            out.append("")
    unassessed = sorted(r for r in rules.RULES if r not in alerts.ALERTS and alerts.not_alerted_reason(r) is None)
    out += ["## Rules without an alert", "",
            "These conditions are not visible in a common exporter's metrics: the diagnosis finds them on the host.", "",
            "| Rule | Why there is no alert |", "| --- | --- |"]
    for rule_id in sorted(r for r in rules.RULES if r not in alerts.ALERTS):
        reason = alerts.not_alerted_reason(rule_id) or ("**Not assessed yet**: add an alert to `alerts.ALERTS` or a reason to "
                                                        "`alerts.NOT_ALERTED`.")
        out.append("| [`%s`](Production-Debugging-Playbooks.md#%s) | %s |" % (rule_id, rules.anchor(rule_id), _cell(reason)))
    if unassessed:
        out += ["", "Not assessed yet: %s." % ", ".join("`%s`" % r for r in unassessed)]
    return "\n".join(out).rstrip() + "\n"


def outputs(base=None):
    return {os.path.join(ROOT, RULES_FILE): rules_file(base), os.path.join(ROOT, DOCS_FILE): alerting_page(base)}


def sync(files, check, what):
    """Write each of ``files`` ({path: text}) whose text changed, saying so; with ``check``, write nothing and exit
    with the stale ones named (``what``: "Generated docs")."""
    stale = []
    for path, text in files.items():
        current = open(path).read() if os.path.exists(path) else None
        if current == text:
            continue
        if check:
            stale.append(os.path.relpath(path, ROOT))
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write(text)
            print("wrote %s" % os.path.relpath(path, ROOT))
    if stale:
        sys.exit("%s are stale (run `make docs`): %s" % (what, ", ".join(stale)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is missing or stale")
    sync(outputs(), parser.parse_args().check, "Generated alert files")


if __name__ == "__main__":
    main()
