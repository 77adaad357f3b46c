"""Test setup: the collection is imported from this checkout (see helpers.py)."""
import os
import sys

import pytest

# A rule template that names evidence the finding does not carry is an error in every module and playbook the tests
# start (they inherit this; `make test` sets it for Molecule too), not "(unknown)" in a report: see findings.STRICT.
# In this process it is off, so that tests may build findings from partial, synthetic evidence; the collectors' own
# in-process tests turn it on with the strict_evidence fixture.
os.environ["AGENTOPS_STRICT_EVIDENCE"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import FakeProc  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.agentops.runbooks.plugins.module_utils import findings  # noqa: E402  pylint: disable=wrong-import-position

findings.STRICT = False


@pytest.fixture
def strict_evidence(monkeypatch):
    """Make a missing evidence key an error in this process too (for tests that run collectors in-process)."""
    monkeypatch.setattr(findings, "STRICT", True)


@pytest.fixture
def fake_proc(tmp_path):
    return FakeProc(tmp_path / "proc")
