"""docs/Getting-Started.md is run as written: every ```sh block, in order, in a fresh copy of this checkout (the files
git knows, tracked or new; not .venv, .collections, incidents or build), each block must exit 0 and leave the files its
`# creates:` lines name. A block whose first line is `# not run by tests: <why>` is skipped (a real AWX, the network);
there must be a reason. The copy shares this checkout's .venv (nothing is installed); the reap_processes run for real
only acts on processes of the user `agent` and, under `make integration`, inside the test run's own PID namespace.
"""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "Getting-Started.md")
SKIP = re.compile(r"^# not run by tests: \S")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def shell_blocks(text):
    """[(runnable, body)] for every ```sh block, in order."""
    blocks = []
    for lang, body in BLOCK.findall(text):
        if lang != "sh":
            continue
        first = body.splitlines()[0] if body.strip() else ""
        if first.startswith("# not run"):
            assert SKIP.match(first), "a skipped block says why: %r" % first
            blocks.append((False, body))
        else:
            blocks.append((True, body))
    return blocks


def promised(body):
    return [path for line in body.splitlines() if line.startswith("# creates:") for path in line.split(":", 1)[1].split()]


def copy_checkout(dest):
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True,
                           stdout=subprocess.PIPE).stdout.decode().split("\0")
    for name in filter(None, files):
        source = os.path.join(ROOT, name)
        if not os.path.lexists(source):  # deleted in the working tree, not yet committed
            continue
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)  # keeps mtimes: make sees the shared .venv as up to date
    os.symlink(os.path.join(ROOT, ".venv"), os.path.join(dest, ".venv"))


def test_every_block_is_a_shell_block_or_marked():
    blocks = shell_blocks(open(DOC).read())
    assert sum(1 for runnable, dummy in blocks if runnable) >= 5
    assert any(not runnable for runnable, dummy in blocks)


def test_getting_started_runs_as_written(tmp_path):
    if not os.path.isdir(os.path.join(ROOT, ".git")) or not os.path.exists(os.path.join(ROOT, ".venv", ".core")):
        pytest.fail("run from a git checkout after `make` has created .venv (make integration does)")
    checkout = tmp_path / "runbooks"
    checkout.mkdir()
    copy_checkout(str(checkout))
    home = tmp_path / "home"
    home.mkdir()
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MAKE", "MFLAGS")))
    env.update(HOME=str(home), ANSIBLE_HOME=str(home / ".ansible"), ANSIBLE_NOCOLOR="1")
    ran = 0
    for number, (runnable, body) in enumerate(shell_blocks(open(DOC).read()), 1):
        if not runnable:
            continue
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=str(checkout), env=env, timeout=600,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        assert out.returncode == 0, "block %d of Getting-Started.md exited %d:\n%s\n---\n%s" % (
            number, out.returncode, body, out.stdout[-4000:])
        for path in promised(body):
            assert (checkout / path).is_file(), "block %d promises %s:\n%s" % (number, path, out.stdout[-2000:])
        ran += 1
    assert ran >= 5
    report = (checkout / "incidents" / "first-look" / "report.md").read_text()
    assert report.startswith("# Incident first-look: SEV-")
