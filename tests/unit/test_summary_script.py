"""scripts/test_summary.py: measured counts per layer, and a layer or scenario that did not run is a failure."""
import os
import subprocess
import sys

import pytest

from helpers import REPO

SCRIPT = os.path.join(REPO, "scripts", "test_summary.py")
JUNIT = '<testsuites><testsuite tests="%d" failures="%d" errors="0" skipped="%d"/></testsuites>'
LINT = "Passed: 0 failure(s), 0 warning(s) in 135 files processed of 153 encountered.\n"
SANITY = "".join('Running sanity test "%s"\n' % name for name in ("ansible-doc", "pylint", "validate-modules"))


def layout(tmp_path, **files):
    base = {"lint.log": LINT, "sanity.log": SANITY, "unit.xml": JUNIT % (10, 0, 1), "integration.xml": JUNIT % (5, 0, 0),
            "molecule-a.xml": JUNIT % (3, 0, 0), "molecule-a.rc": "0\n", "molecule-b.xml": JUNIT % (2, 0, 0), "molecule-b.rc": "0\n",
            "matrix.xml": JUNIT % (20, 0, 0)}
    base.update(files)
    for name, text in base.items():
        if text is not None:
            (tmp_path / name).write_text(text)
    run = subprocess.run([sys.executable, SCRIPT, str(tmp_path), "a", "b"], capture_output=True, text=True, check=False)
    return run.returncode, run.stdout + run.stderr


def test_everything_ran_and_passed(tmp_path):
    rc, out = layout(tmp_path)
    assert rc == 0, out
    assert "make test: 43 passed, 0 failed, 1 skipped" in out  # 1 lint + 3 sanity + 9 unit + 5 + 3 + 2 + 20 matrix
    assert "3 passed, 0 failed" in out and "135 files" in out


@pytest.mark.parametrize("files, words", [
    ({"molecule-b.xml": None, "molecule-b.rc": None}, "molecule-b                   never ran"),
    ({"molecule-b.rc": "2\n"}, "`molecule test` exited 2"),
    ({"molecule-b.xml": None}, "left no test results"),
    ({"integration.xml": JUNIT % (0, 0, 0)}, "ran no test"),
    ({"matrix.xml": None}, "matrix                       left no test results"),
    ({"matrix.xml": JUNIT % (20, 1, 0)}, "matrix                         19 passed, 1 failed"),
    ({"unit.xml": JUNIT % (10, 2, 0)}, "2 failed"),
    ({"lint.log": None}, "ansible-lint                  did not run"),
    ({"lint.log": "Failed: 3 failure(s), 0 warning(s) on 135 files.\n"}, "FAILED: 3 failure(s)"),
    ({"sanity.log": SANITY + "ERROR: Found 2 pylint issue(s) which need to be resolved:\n"
                             "ERROR: The 1 sanity test(s) listed below (out of 3) failed.\n"}, "2 passed, 1 failed (pylint)"),
])
def test_a_layer_that_failed_or_never_ran_is_counted_failed(tmp_path, files, words):
    rc, out = layout(tmp_path, **files)
    assert rc != 0, out
    assert words in out
    assert ", 0 failed," not in out.split("make test: ")[1]
