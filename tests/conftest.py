"""Test setup: the collection is imported from this checkout (see helpers.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import FakeProc  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def fake_proc(tmp_path):
    return FakeProc(tmp_path / "proc")
