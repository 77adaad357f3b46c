"""The diagnostics payload kept between runs: used only with the same key, never through a link, never half a file."""
import os
import shutil

import pytest

from ansible_collections.agentops.runbooks.plugins.plugin_utils import payload_cache as pc
from helpers import REPO

NAME = pc.PREFIX + "ZIP_DEFLATED-none"


@pytest.fixture
def plugins(tmp_path):
    """A copy of the collection's plugins/modules/diagnostics.py and plugins/module_utils to change."""
    root = tmp_path / "plugins"
    shutil.copytree(os.path.join(REPO, "plugins", "module_utils"), str(root / "module_utils"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "modules").mkdir()
    shutil.copy(os.path.join(REPO, "plugins", "modules", "diagnostics.py"), str(root / "modules"))
    return root


def test_the_key_changes_with_any_module_util_ansible_core_or_compression(plugins):
    first = pc.key("2.19.4", "ZIP_DEFLATED", str(plugins))
    assert first == pc.key("2.19.4", "ZIP_DEFLATED", str(plugins))
    assert first != pc.key("2.18.1", "ZIP_DEFLATED", str(plugins)) != pc.key("2.19.4", "ZIP_STORED", str(plugins))
    with open(str(plugins / "module_utils" / "collectors" / "host.py"), "a") as handle:
        handle.write("\n# one more line\n")
    assert pc.key("2.19.4", "ZIP_DEFLATED", str(plugins)) != first
    (plugins / "module_utils" / "new_family.py").write_text("X = 1\n")
    assert len(set([first, pc.key("2.19.4", "ZIP_DEFLATED", str(plugins))])) == 2


def test_a_payload_is_kept_once_and_restored_into_the_next_runs_directory(tmp_path):
    lookup, store = tmp_path / "run1" / "ansiballz_cache", tmp_path / "home" / "ansiballz" / "k1"
    lookup.mkdir(parents=True)
    (lookup / NAME).write_bytes(b"payload")
    (lookup / (NAME + ".lock")).write_bytes(b"")
    (lookup / "ansible.modules.ping-ZIP_DEFLATED-none").write_bytes(b"not ours")
    assert pc.keep(str(lookup), str(store)) == 1 and pc.keep(str(lookup), str(store)) == 0
    assert sorted(os.listdir(str(store))) == [NAME]
    assert oct(os.stat(str(store)).st_mode & 0o777) == "0o700" and oct(os.stat(str(store / NAME)).st_mode & 0o777) == "0o600"
    second = tmp_path / "run2" / "ansiballz_cache"
    assert pc.restore(str(store), str(second)) == 1
    assert (second / NAME).read_bytes() == b"payload"
    assert pc.restore(str(store), str(second)) == 0  # what the run already has is left alone


def test_a_store_that_is_a_symbolic_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / NAME).write_bytes(b"planted")
    os.symlink(str(elsewhere), str(tmp_path / "store"))
    lookup = tmp_path / "lookup"
    lookup.mkdir()
    (lookup / NAME).write_bytes(b"built")
    with pytest.raises(OSError):
        pc._private_dir(str(tmp_path / "store"))


def test_old_keys_are_pruned(tmp_path):
    lookup = tmp_path / "lookup"
    lookup.mkdir()
    (lookup / NAME).write_bytes(b"p")
    parent = tmp_path / "ansiballz"
    for number in range(5):
        assert pc.keep(str(lookup), str(parent / ("key%d" % number)), keep_keys=3) == 1
        os.utime(str(parent / ("key%d" % number)), (1000 + number, 1000 + number))
    assert sorted(os.listdir(str(parent))) == ["key2", "key3", "key4"]


def test_it_can_be_turned_off():
    assert pc.enabled({}) and not pc.enabled({"AGENTOPS_PAYLOAD_CACHE": "0"})
