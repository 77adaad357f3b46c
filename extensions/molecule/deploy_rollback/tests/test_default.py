"""Verify the rollback: the link target and the service's answer."""
import os

APP = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "app")


def test_current_points_at_the_good_release(host):
    current = host.file(os.path.join(APP, "current"))
    assert current.is_symlink
    assert current.linked_to == os.path.join(APP, "releases", "20261102T000000Z")


def test_the_broken_release_is_kept_and_nothing_else_is_live(host):
    assert host.file(os.path.join(APP, "releases", "20261103T000000Z")).is_directory
    assert not host.file(os.path.join(APP, ".current.%d" % os.getpid())).exists


def test_the_service_answers_from_the_good_release(host):
    port = host.file(os.path.join(APP, "shared", "port")).content_string.strip()
    answer = host.run("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:%s/health').read().decode())\"" % port)
    assert answer.rc == 0 and answer.stdout.strip() == "ok 20261102T000000Z"
