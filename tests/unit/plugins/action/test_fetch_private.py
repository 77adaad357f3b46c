"""fetch_private's controller side: private directories down to dest, never through a link (the copy is fetch's)."""
import os
import stat

import pytest

from ansible_collections.agentops.runbooks.plugins.action import fetch_private


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_prepare_creates_every_directory_below_root_0700(tmp_path):
    dest = tmp_path / "incidents" / "INC-1" / "bundles" / "web-1.tar.gz"
    fetch_private.prepare(str(dest), str(tmp_path / "incidents"), create=True)
    for directory in (tmp_path / "incidents", dest.parent.parent, dest.parent):
        assert mode(directory) == 0o700
    assert not dest.exists()


@pytest.mark.parametrize("create", [True, False])
def test_prepare_refuses_a_link_below_root_and_creates_nothing_through_it(tmp_path, create):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (tmp_path / "incidents").mkdir()
    os.symlink(str(elsewhere), str(tmp_path / "incidents" / "INC-1"))
    with pytest.raises(ValueError) as err:
        fetch_private.prepare(str(tmp_path / "incidents" / "INC-1" / "bundles" / "web-1.tar.gz"), str(tmp_path / "incidents"), create)
    assert "INC-1: it is a symbolic link" in str(err.value)
    assert os.listdir(str(elsewhere)) == []


def test_check_mode_creates_nothing(tmp_path):
    fetch_private.prepare(str(tmp_path / "incidents" / "INC-1" / "bundles" / "web-1.tar.gz"), str(tmp_path / "incidents"), False)
    assert os.listdir(str(tmp_path)) == []


def test_prepare_refuses_a_linked_dest(tmp_path):
    bundles = tmp_path / "incidents" / "INC-1" / "bundles"
    bundles.mkdir(parents=True)
    os.symlink(str(tmp_path / "victim"), str(bundles / "web-1.tar.gz"))
    with pytest.raises(ValueError) as err:
        fetch_private.prepare(str(bundles / "web-1.tar.gz"), str(tmp_path / "incidents"), True)
    assert "web-1.tar.gz: it is a symbolic link" in str(err.value) and not (tmp_path / "victim").exists()


@pytest.mark.parametrize("create", [True, False])
def test_root_must_be_above_dest(tmp_path, create):
    with pytest.raises(ValueError) as err:
        fetch_private.prepare(str(tmp_path / "a" / "f"), str(tmp_path / "b"), create)
    assert "is not below" in str(err.value)
