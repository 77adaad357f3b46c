"""Sum what every layer of `make test` measured into one closing line.

    python scripts/test_summary.py DIR SCENARIO...

DIR holds lint.log (ansible-lint), sanity.log (ansible-test sanity), unit.xml and integration.xml (pytest JUnit),
per Molecule scenario molecule-NAME.xml (its verifier's JUnit) plus molecule-NAME.rc (the exit code of
`molecule test`), and matrix.xml (scripts/matrix.py: one testcase per older ansible-core line and step). Prints
one line per layer with the counts measured in this run, then `make test: N passed, N failed, N skipped`. A layer
or scenario that left no result, ran no test, or whose `molecule test` exited non-zero counts as failed (exit 1), so
a silently empty or skipped layer cannot pass.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def junit(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = dict(tests=0, failures=0, errors=0, skipped=0)
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    failed = total["failures"] + total["errors"]
    return total["tests"] - failed - total["skipped"], failed, total["skipped"]


def read(path):
    try:
        with open(path) as handle:
            return ANSI.sub("", handle.read())
    except OSError:
        return None


def lint(directory):
    """(passed, failed, line) for ansible-lint from its log."""
    text = read(os.path.join(directory, "lint.log"))
    if text is None:
        return 0, 1, "ansible-lint                  did not run"
    match = re.search(r"(Passed|Failed): (\d+) failure\(s\), (\d+) warning\(s\) (?:on|in) (\d+) files", text)
    if not match:
        return 0, 1, "ansible-lint                  no result line in lint.log"
    failures = int(match.group(2))
    ok = match.group(1) == "Passed" and failures == 0
    return (1 if ok else 0), (0 if ok else 1), "ansible-lint                  %s: %d failure(s), %s warning(s), %s files" % (
        "passed" if ok else "FAILED", failures, match.group(3), match.group(4))


def sanity(directory):
    """(passed, failed, line) for ansible-test sanity: one count per sanity test it ran."""
    text = read(os.path.join(directory, "sanity.log"))
    if text is None:
        return 0, 1, "ansible-test sanity           did not run"
    ran = re.findall(r'^Running sanity test "([^"]+)"', text, re.M)
    failed = sorted(set(re.findall(r"^ERROR: Found \d+ (\S+) issue", text, re.M)))
    listed = re.search(r"^ERROR: The (\d+) sanity test\(s\) listed below", text, re.M)
    problems = int(listed.group(1)) if listed else (len(failed) or (1 if re.search(r"^ERROR: ", text, re.M) else 0))
    if not ran:
        return 0, 1, "ansible-test sanity           ran no test"
    return len(ran) - problems, problems, "ansible-test sanity           %4d passed, %d failed%s" % (
        len(ran) - problems, problems, (" (%s)" % ", ".join(failed)) if failed else "")


def main():
    directory, scenarios = sys.argv[1], sys.argv[2:]
    grand = dict(passed=0, failed=0, skipped=0)
    problems = []
    for check in (lint, sanity):
        passed, failed, line = check(directory)
        print("  " + line)
        grand["passed"] += passed
        grand["failed"] += failed
        if failed:
            problems.append(line.split()[0] + " failed or did not run")
    layers = [("unit", "unit.xml", None), ("integration", "integration.xml", None)]
    layers += [("molecule-" + name, "molecule-%s.xml" % name, "molecule-%s.rc" % name) for name in scenarios]
    layers += [("matrix", "matrix.xml", None)]
    for name, xml, rc_file in layers:
        path = os.path.join(directory, xml)
        rc = read(os.path.join(directory, rc_file)) if rc_file else "0"
        if rc is None:
            print("  %-28s never ran: counted as 1 failed" % name)
            grand["failed"] += 1
            problems.append("%s never ran" % name)
            continue
        if not os.path.exists(path):
            print("  %-28s left no test results: counted as 1 failed" % name)
            grand["failed"] += 1
            problems.append("%s left no test results" % name)
            continue
        passed, failed, skipped = junit(path)
        note = ""
        if rc.strip() != "0":
            failed += 1
            note = " (+1 failed: `molecule test` exited %s)" % rc.strip()
            problems.append("%s exited %s" % (name, rc.strip()))
        elif passed + failed == 0:
            failed += 1
            note = " (+1 failed: ran no test)"
            problems.append("%s ran no test" % name)
        print("  %-28s %4d passed, %d failed, %d skipped%s" % (name, passed, failed, skipped, note))
        grand["passed"] += passed
        grand["failed"] += failed
        grand["skipped"] += skipped
    print("make test: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % grand)
    if problems or grand["failed"]:
        sys.exit("make test: " + "; ".join(problems or ["failures"]))


if __name__ == "__main__":
    main()
