#!/usr/bin/env python3
"""The ansible-core version matrix of `make test`: the collection on the release lines older than the main venv's.

    python scripts/matrix.py [--lines 2.15,2.16,2.17,2.18] [--junit tests/output/junit/matrix.xml] [--full-sanity]

The main venv (requirements.txt, ansible-core 2.19) runs every layer of `make test`. For each older line this runs a
smoke set, each step one JUnit testcase (classname ``matrix.core-2.NN``) in ``--junit``:

install         a venv under .cache/venv-core-2.NN (created once, reused; reinstalled when
                requirements-matrix/core-2.NN.txt changes) with that line's ansible-core and what the tests need.
sanity          the collection built and installed (that line's ansible-galaxy) into a temporary ansible_collections
                tree, then that line's `ansible-test sanity --venv` offline (scripts/ansible_test_offline.py). The
                tests that check the collection against the line's own APIs and schemas run (SMOKE_SANITY); the style
                and policy tests whose rules or pinned linters change between ansible-test versions (pep8, pylint,
                boilerplate, empty-init, ...) run on 2.19 only (`make sanity`), unless --full-sanity.
unit            the unit tests of the plugins that use ansible-core's internals (UNIT_SMOKE), in a PID namespace.
diagnose        playbooks/diagnose.yml on this machine (host and process families) in a PID namespace: rc 0, and
                report.json / report.md written with both families checked.
reap_processes  playbooks/reap_processes.yml with its dry-run default (read-only) in a PID namespace: rc 0 and the
                dry-run summary shown.

Logs go to tests/output/matrix/core-2.NN-<step>.log. Exit status 1 when any testcase failed.
"""
import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, ".cache")
LOGS = os.path.join(REPO, "tests", "output", "matrix")
LINES = ("2.15", "2.16", "2.17", "2.18")
SMOKE_SANITY = ("action-plugin-docs", "ansible-doc", "compile", "import", "runtime-metadata", "validate-modules", "yamllint")
UNIT_SMOKE = ("tests/unit/plugins/action", "tests/unit/plugins/plugin_utils", "tests/unit/plugins/module_utils/test_collectors.py",
              "tests/unit/plugins/module_utils/test_findings.py", "tests/unit/plugins/modules/test_host_facts.py",
              "tests/unit/plugins/modules/test_process_facts.py", "tests/unit/plugins/modules/test_reap_processes.py")
PIDNS = [sys.executable, os.path.join(REPO, "scripts", "pidns.py"), "--unshare", "--"]
# pip's notes about the machine's local wheel directories that do not hold a package: noise, not news.
PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.\n", re.M)


class StepFailed(Exception):
    """A step's one-sentence failure; the details are in its log."""


class Line(object):
    """One ansible-core release line: its venv, its logs, the environment its commands run in."""

    def __init__(self, version, workdir):
        self.version = version
        self.venv = os.path.join(CACHE, "venv-core-" + version)
        self.bin = os.path.join(self.venv, "bin")
        self.python = os.path.join(self.bin, "python")
        self.requirements = os.path.join(REPO, "requirements-matrix", "core-%s.txt" % version)
        self.workdir = workdir  # this run's temporary files for the line (removed at the end)
        self.core = None  # the installed ansible-core version

    def env(self, **extra):
        env = dict(os.environ)
        for name in [n for n in env if n.startswith("ANSIBLE_")]:
            del env[name]
        env.update(PATH=self.bin + os.pathsep + env.get("PATH", ""), VIRTUAL_ENV=self.venv,
                   ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
                   ANSIBLE_HOME=os.path.join(self.workdir, "ansible-home"), ANSIBLE_NOCOLOR="1", PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        env.update(extra)
        return env

    def run(self, step, command, log, **kwargs):
        """Run ``command``, append its output to ``log``; return (rc, output)."""
        began = time.monotonic()
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              env=kwargs.pop("env", None) or self.env(), **kwargs)
        output = PIP_NOISE.sub("", proc.stdout)
        with open(log, "a") as handle:
            handle.write("$ %s\n%s\n[rc %d, %.1f s]\n\n" % (" ".join(command), output, proc.returncode, time.monotonic() - began))
        return proc.returncode, output


def tail(text, lines=25):
    return "\n".join(text.rstrip().splitlines()[-lines:])


def step_install(line, log):
    """Create the venv once; (re)install when its requirements file changed. Returns a one-line note."""
    with open(line.requirements, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    stamp = os.path.join(line.venv, ".requirements.sha256")
    os.makedirs(CACHE, exist_ok=True)
    with open(line.venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once share the venv: one installs, the other waits
        current = open(stamp).read().strip() if os.path.exists(stamp) else None
        note = "reused"
        if current != digest or not os.path.exists(line.python):
            if not os.path.exists(line.python):
                rc, out = line.run("install", [sys.executable, "-m", "venv", line.venv], log, env=dict(os.environ))
                if rc:
                    raise StepFailed("cannot create %s:\n%s" % (line.venv, tail(out)))
            rc, out = line.run("install", [line.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                           "-r", line.requirements], log)
            if rc:
                raise StepFailed("pip install -r %s failed:\n%s" % (os.path.relpath(line.requirements, REPO), tail(out)))
            with open(stamp, "w") as handle:
                handle.write(digest + "\n")
            note = "installed"
    rc, out = line.run("install", [line.python, "-c", "import ansible.release; print(ansible.release.__version__)"], log)
    if rc or not out.strip().startswith(line.version + "."):
        raise StepFailed("the venv does not hold ansible-core %s.*: %s" % (line.version, tail(out, 3)))
    line.core = out.strip().splitlines()[-1]
    return "ansible-core %s (%s)" % (line.core, note)


def step_sanity(line, log, full):
    """Build and install the collection with this line's ansible-galaxy, then run its ansible-test sanity."""
    root = os.path.join(line.workdir, "collections")
    build = os.path.join(line.workdir, "build")
    rc, out = line.run("sanity", [os.path.join(line.bin, "ansible-galaxy"), "collection", "build", "--force", "--output-path", build],
                       log, cwd=REPO)
    tarballs = glob.glob(os.path.join(build, "agentops-runbooks-*.tar.gz"))
    if rc or len(tarballs) != 1:
        raise StepFailed("ansible-galaxy collection build failed:\n%s" % tail(out))
    rc, out = line.run("sanity", [os.path.join(line.bin, "ansible-galaxy"), "collection", "install", "--force", "-p", root, tarballs[0]], log)
    if rc:
        raise StepFailed("ansible-galaxy collection install failed:\n%s" % tail(out))
    home = os.path.join(CACHE, "ansible-test-home-" + line.version)  # ansible-test's venvs and the pip stand-in, kept
    env = line.env(HOME=home)
    rc, out = line.run("sanity", [line.python, os.path.join(REPO, "scripts", "ansible_test_offline.py")], log, env=env)
    if rc:
        raise StepFailed("cannot place the offline pip bootstrap:\n%s" % tail(out))
    tests = [] if full else [arg for name in SMOKE_SANITY for arg in ("--test", name)]
    python = "%d.%d" % sys.version_info[:2]
    rc, out = line.run("sanity", [os.path.join(line.bin, "ansible-test"), "sanity", "--venv", "--python", python, "--color", "no"] + tests,
                       log, env=env, cwd=os.path.join(root, "ansible_collections", "agentops", "runbooks"))
    ran = re.findall(r'^Running sanity test "([^"]+)"', out, re.M)
    failed = sorted(set(re.findall(r"^ERROR: Found \d+ (\S+) issue", out, re.M)))
    if rc or failed or not ran:
        problems = "\n".join(text for text in out.splitlines() if text.startswith(("ERROR:", "FATAL:", "Traceback")))
        raise StepFailed("ansible-test sanity failed (%s):\n%s" % (", ".join(failed) or "rc %d" % rc, problems or tail(out)))
    return "%d sanity tests passed (%s)" % (len(ran), "all" if full else ", ".join(SMOKE_SANITY))


def step_unit(line, log):
    junit = os.path.join(line.workdir, "unit.xml")
    rc, out = line.run("unit", PIDNS + [line.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml", junit]
                       + list(UNIT_SMOKE), log, cwd=REPO)
    summary = out.strip().splitlines()[-1] if out.strip() else "no output"
    if rc or not os.path.exists(junit):
        raise StepFailed("pytest failed (%s):\n%s" % (summary, "\n".join(text for text in out.splitlines() if text.startswith("FAILED")) or tail(out)))
    return summary.strip("= ")


def playbook(line, log, name, extra):
    command = [os.path.join(line.bin, "ansible-playbook"), os.path.join(REPO, "playbooks", name), "-i",
               os.path.join(REPO, "inventories", "localhost.yml")] + extra
    rc, out = line.run(name, PIDNS + command, log, cwd=REPO)
    if rc:
        raise StepFailed("ansible-playbook %s exited %d:\n%s" % (name, rc, "\n".join(
            text for text in out.splitlines() if re.match(r"^(fatal|ERROR|\[ERROR\]|failed)", text)) or tail(out)))
    if "does not support Ansible version" in out:  # meta/runtime.yml's requires_ansible must admit every tested line
        raise StepFailed("ansible-playbook %s warns that the collection does not support ansible-core %s (requires_ansible)." % (name, line.core))
    return out


def step_diagnose(line, log):
    reports = os.path.join(line.workdir, "incidents")
    incident = "matrix-%s-%d" % (line.version, os.getpid())
    playbook(line, log, "diagnose.yml", ["-e", json.dumps({"agentops_checks": ["host", "process"], "agentops_report_dir": reports,
                                                           "agentops_incident_id": incident})])
    directory = os.path.join(reports, incident)
    missing = [name for name in ("report.json", "report.md") if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise StepFailed("the play passed but wrote no %s under %s." % (" or ".join(missing), directory))
    with open(os.path.join(directory, "report.json")) as handle:
        report = json.load(handle)
    checks = ((report.get("hosts") or {}).get("localhost") or {}).get("checks") or {}
    bad = ["%s: %s" % (family, (checks.get(family) or {}).get("status")) for family in ("host", "process")
           if (checks.get(family) or {}).get("status") not in ("ok", "partial")]
    if bad:
        raise StepFailed("report.json does not show the host and process families checked (%s)." % ", ".join(bad))
    return "%s, report.json and report.md written" % report.get("severity")


def step_reap(line, log):
    out = playbook(line, log, "reap_processes.yml", [])
    if "Zombies reaped:" not in out or "Orphans to end:" not in out:
        raise StepFailed("the play passed but did not show its dry-run summary:\n%s" % tail(out))
    return "dry run, nothing signalled"


def run_line(version, full_sanity, workdir):
    """Every step of one line; returns [(step, seconds, error or None, note)]. A failed install skips the rest."""
    line = Line(version, workdir)
    os.makedirs(LOGS, exist_ok=True)
    results = []
    steps = [("install", lambda log: step_install(line, log)), ("sanity", lambda log: step_sanity(line, log, full_sanity)),
             ("unit", lambda log: step_unit(line, log)), ("diagnose", lambda log: step_diagnose(line, log)),
             ("reap_processes", lambda log: step_reap(line, log))]
    for step, function in steps:
        log = os.path.join(LOGS, "core-%s-%s.log" % (version, step))
        open(log, "w").close()
        if results and results[0][2] is not None:
            results.append((step, 0.0, "skipped: ansible-core %s did not install" % version, None))
            continue
        began = time.monotonic()
        try:
            note, error = function(log), None
        except StepFailed as exc:
            note, error = None, str(exc)
        except (OSError, ValueError) as exc:
            note, error = None, "%s: %s" % (type(exc).__name__, exc)
        seconds = time.monotonic() - began
        results.append((step, seconds, error, note))
        shown = note if error is None else error.splitlines()[0]
        print("  %s %-15s %-4s %6.1f s  %s" % (version, step, "ok" if error is None else "FAIL", seconds, shown), flush=True)
    return line, results


def write_junit(path, lines):
    suites = ET.Element("testsuites", name="ansible-core matrix")
    for line, results in lines:
        failures = sum(1 for r in results if r[2] is not None)
        suite = ET.SubElement(suites, "testsuite", name="ansible-core %s" % (line.core or line.version + ".*"), tests=str(len(results)),
                              failures=str(failures), errors="0", skipped="0", time="%.1f" % sum(r[1] for r in results))
        for step, seconds, error, note in results:
            case = ET.SubElement(suite, "testcase", classname="matrix.core-%s" % line.version, name=step, time="%.1f" % seconds)
            if error is not None:
                ET.SubElement(case, "failure", message=error.splitlines()[0].rstrip(":")).text = error
            else:
                ET.SubElement(case, "system-out").text = note
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", default=",".join(LINES), help="comma-separated ansible-core lines (default %(default)s)")
    parser.add_argument("--junit", default=os.path.join(REPO, "tests", "output", "junit", "matrix.xml"))
    parser.add_argument("--full-sanity", action="store_true", help="every sanity test on every line, not the smoke set")
    args = parser.parse_args(argv)
    versions = [v.strip() for v in args.lines.split(",") if v.strip()]
    unknown = [v for v in versions if not os.path.exists(os.path.join(REPO, "requirements-matrix", "core-%s.txt" % v))]
    if unknown:
        parser.error("no requirements-matrix/core-<line>.txt for %s" % ", ".join(unknown))
    began = time.monotonic()
    done = []
    for version in versions:
        workdir = tempfile.mkdtemp(prefix="agentops-matrix-%s-" % version)
        try:
            done.append(run_line(version, args.full_sanity, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    write_junit(args.junit, done)
    failed = sum(1 for _line, results in done for r in results if r[2] is not None)
    total = sum(len(results) for _line, results in done)
    print("matrix: %d passed, %d failed on ansible-core %s in %.0f s (logs: %s)" % (
        total - failed, failed, ", ".join(line.core or line.version for line, _r in done), time.monotonic() - began,
        os.path.relpath(LOGS, REPO)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
