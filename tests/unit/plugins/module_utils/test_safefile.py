"""safefile: private directories and files that are never reached through a symbolic link."""
import errno
import fcntl
import os
import stat

import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import safefile

NOBODY = 65534


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def one_sentence(message):
    return message.endswith(".") and message.count(". ") == 0 and "\n" not in message and "Traceback" not in message


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_private_dir_creates_every_missing_directory_0700(tmp_path, loose_umask):
    target = tmp_path / "reports" / "INC-1" / "bundles"
    assert safefile.private_dir(str(target), base=str(tmp_path)) == str(target)
    for path in (tmp_path / "reports", tmp_path / "reports" / "INC-1", target):
        assert path.is_dir() and not path.is_symlink() and mode(path) == 0o700


def test_an_existing_directory_of_ours_is_reused_and_made_0700(tmp_path):
    target = tmp_path / "reports"
    target.mkdir(mode=0o755)
    (target / "keep").write_text("x")
    safefile.private_dir(str(target))
    assert mode(target) == 0o700 and (target / "keep").read_text() == "x"


@pytest.mark.parametrize("where", ["final", "below_base"])
def test_a_symlink_at_the_path_or_below_base_is_refused_and_not_followed(tmp_path, where):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    base = tmp_path / "reports"
    base.mkdir()
    if where == "final":
        os.symlink(str(elsewhere), str(base / "INC-1"))
        target = base / "INC-1"
    else:
        os.symlink(str(elsewhere), str(base / "INC-1"))
        target = base / "INC-1" / "bundles"
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.private_dir(str(target), base=str(base))
    assert "%s: it is a symbolic link" % (base / "INC-1") in str(err.value) and one_sentence(str(err.value))
    assert os.listdir(str(elsewhere)) == [] and mode(elsewhere) == 0o755


def test_the_trusted_base_may_itself_be_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(str(real), str(tmp_path / "reports"))
    safefile.private_dir(str(tmp_path / "reports" / "INC-1"))
    assert (real / "INC-1").is_dir() and mode(real / "INC-1") == 0o700


def test_a_directory_we_create_that_is_swapped_for_a_link_is_refused(tmp_path, monkeypatch):
    """The race: another user replaces a directory we just made with a link before we enter it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_mkdir = os.mkdir

    def racing_mkdir(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        if name == "INC-1":
            os.rmdir(name, dir_fd=dir_fd)
            os.symlink(str(elsewhere), name, dir_fd=dir_fd)
    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.private_dir(str(tmp_path / "reports" / "INC-1" / "bundles"), base=str(tmp_path / "reports"))
    monkeypatch.undo()
    assert "INC-1: it is a symbolic link" in str(err.value)
    assert os.listdir(str(elsewhere)) == []


def test_missing_directories_above_base_are_ours_and_walked_strictly(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_mkdir = os.mkdir

    def racing_mkdir(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        if name == "new":
            os.rmdir(name, dir_fd=dir_fd)
            os.symlink(str(elsewhere), name, dir_fd=dir_fd)
    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    with pytest.raises(safefile.UnsafePathError):
        safefile.private_dir(str(tmp_path / "new" / "reports" / "INC-1"))  # base tmp/new/reports does not exist
    monkeypatch.undo()
    assert os.listdir(str(elsewhere)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_an_existing_directory_owned_by_another_user_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "INC-1"
    target.mkdir(mode=0o755)
    os.chown(str(target), NOBODY, NOBODY)
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.private_dir(str(target))
    assert "it is owned by uid %d, not by uid %d" % (NOBODY, os.geteuid()) in str(err.value) and one_sentence(str(err.value))
    assert mode(target) == 0o755 and os.listdir(str(target)) == []


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / "INC-1").write_text("x")
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.private_dir(str(tmp_path / "INC-1"))
    assert "it exists and is not a directory" in str(err.value)


@pytest.mark.parametrize("path, base, message", [
    ("reports", "reports", "name a directory below"),
    ("reports", "other", "is not below"),
])
def test_path_must_be_below_base(tmp_path, path, base, message):
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.open_dir(str(tmp_path / path), base=str(tmp_path / base))
    assert message in str(err.value)


def test_write_private_is_0600_atomic_and_leaves_no_temporary_file(tmp_path):
    old = os.umask(0o277)  # even a umask that would strip the owner's write bit does not change the modes
    try:
        safefile.write_private(str(tmp_path / "d"), "report.json", "{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "d" / "report.json").read_text() == "{}\n"
    assert mode(tmp_path / "d" / "report.json") == 0o600 and mode(tmp_path / "d") == 0o700
    assert os.listdir(str(tmp_path / "d")) == ["report.json"]


def test_an_existing_file_is_replaced_not_written_through(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "report.md").write_text("old")
    os.link(str(directory / "report.md"), str(tmp_path / "hardlink"))
    safefile.write_private(str(directory), "report.md", b"new")
    assert (directory / "report.md").read_bytes() == b"new" and (tmp_path / "hardlink").read_text() == "old"


def test_a_symlinked_target_file_is_refused_and_its_destination_untouched(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(str(victim), str(directory / "report.json"))
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.write_private(str(directory), "report.json", "{}")
    assert "report.json: it is a symbolic link" in str(err.value) and one_sentence(str(err.value))
    assert victim.read_text() == "precious" and os.listdir(str(directory)) == ["report.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_target_file_owned_by_another_user_is_refused(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "report.json").write_text("theirs")
    os.chown(str(directory / "report.json"), NOBODY, NOBODY)
    with pytest.raises(safefile.UnsafePathError) as err:
        safefile.write_private(str(directory), "report.json", "{}")
    assert "owned by uid %d" % NOBODY in str(err.value)
    assert (directory / "report.json").read_text() == "theirs"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    directory = tmp_path / "d"
    safefile.write_private(str(directory), "report.json", "old")
    with pytest.raises(RuntimeError):
        with safefile.atomic_file(str(directory), "report.json") as stream:
            stream.write(b"half")
            raise RuntimeError("killed")
    assert (directory / "report.json").read_text() == "old" and os.listdir(str(directory)) == ["report.json"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_file_names_are_plain_names(tmp_path, name):
    with pytest.raises(safefile.UnsafePathError):
        safefile.write_private(str(tmp_path), name, "x")


@pytest.mark.parametrize("existing", ["file", "symlink", "dangling"])
def test_open_excl_never_opens_an_existing_name(tmp_path, existing):
    (tmp_path / "target").write_text("x")
    name = {"file": "target", "symlink": "link", "dangling": "dangling"}[existing]
    os.symlink(str(tmp_path / "target"), str(tmp_path / "link"))
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "dangling"))
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as err:
            safefile.open_excl(fd, name)
    finally:
        os.close(fd)
    assert err.value.errno == errno.EEXIST
    assert (tmp_path / "target").read_text() == "x" and not (tmp_path / "nowhere").exists()


def test_check_inspects_without_following_or_changing(tmp_path):
    (tmp_path / "file").write_text("x")
    os.chmod(str(tmp_path / "file"), 0o644)
    os.symlink(str(tmp_path / "file"), str(tmp_path / "link"))
    assert safefile.check(str(tmp_path / "missing")) is None
    assert stat.S_ISREG(safefile.check(str(tmp_path / "file")).st_mode) and mode(tmp_path / "file") == 0o644
    assert stat.S_ISDIR(safefile.check(str(tmp_path), directory=True).st_mode)
    for path, directory, message in ((tmp_path / "link", False, "is a symbolic link"),
                                     (tmp_path / "file", True, "is not a directory"),
                                     (tmp_path, False, "is not a regular file")):
        with pytest.raises(safefile.UnsafePathError) as err:
            safefile.check(str(path), directory=directory)
        assert message in str(err.value)


def test_open_read_refuses_a_link(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(str(tmp_path / "file"), str(tmp_path / "link"))
    fd = safefile.open_read(str(tmp_path / "file"))
    assert os.read(fd, 10) == b"x"
    os.close(fd)
    with pytest.raises(safefile.UnsafePathError):
        safefile.open_read(str(tmp_path / "link"))


def test_make_tempdir_is_fresh_and_private(tmp_path, loose_umask):
    fd = safefile.open_dir(str(tmp_path / "d"))
    try:
        names = set(safefile.make_tempdir(fd, prefix=".bundle-") for dummy in range(20))
    finally:
        os.close(fd)
    assert len(names) == 20 and all(name.startswith(".bundle-") for name in names)
    assert all(mode(tmp_path / "d" / name) == 0o700 for name in names)


def test_locked_excludes_another_descriptor_of_the_same_directory(tmp_path):
    first = safefile.open_dir(str(tmp_path / "d"))
    second = os.open(str(tmp_path / "d"), os.O_RDONLY)
    try:
        with safefile.locked(first):
            with pytest.raises(OSError):
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again after the block
    finally:
        os.close(first)
        os.close(second)
