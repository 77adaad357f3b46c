"""Sum the JUnit XML files of every pytest layer of `make test` into one closing line.

    python scripts/test_summary.py DIR
prints one line per layer and then `make test: N passed, N failed, N skipped`.
Exits 1 when a layer is missing or ran no test, so a silently empty layer cannot pass.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET

LAYERS = ("unit", "integration", "molecule-")


def counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = dict(tests=0, failures=0, errors=0, skipped=0)
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    return total


def main():
    directory = sys.argv[1]
    files = sorted(glob.glob(os.path.join(directory, "*.xml")))
    grand = dict(passed=0, failed=0, skipped=0)
    problems = []
    for layer in LAYERS:
        if not any(os.path.basename(f).startswith(layer) for f in files):
            problems.append("no results from the %s layer" % layer.rstrip("-"))
    for path in files:
        c = counts(path)
        failed = c["failures"] + c["errors"]
        passed = c["tests"] - failed - c["skipped"]
        name = os.path.splitext(os.path.basename(path))[0]
        print("  %-28s %4d passed, %d failed, %d skipped" % (name, passed, failed, c["skipped"]))
        if c["tests"] == 0:
            problems.append("%s ran no test" % name)
        grand["passed"] += passed
        grand["failed"] += failed
        grand["skipped"] += c["skipped"]
    print("make test: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % grand)
    if problems or grand["failed"]:
        sys.exit("make test: " + "; ".join(problems or ["failures"]))


if __name__ == "__main__":
    main()
