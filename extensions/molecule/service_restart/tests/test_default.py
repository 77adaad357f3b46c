"""Verify the restart: a new process answers healthy, pm2 restarted it exactly once, and the record says so."""
import json
import os

SERVICE = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "service")
RECORDS = os.path.join(SERVICE, "records")


def read(host, path):
    return host.file(path).content_string.strip()


def test_a_new_process_answers_healthy(host):
    port = read(host, os.path.join(SERVICE, "port"))
    answer = host.run("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:%s/health').read().decode())\"" % port)
    assert answer.rc == 0 and answer.stdout.startswith("ok ")
    assert answer.stdout.split()[1] != read(host, os.path.join(SERVICE, "pid-before"))


def test_it_was_restarted_once_check_mode_and_the_second_run_left_it_alone(host):
    entries = json.loads(read(host, os.path.join(RECORDS, "restarts.json")))["restarts"]
    assert [(e["target"], e["outcome"]) for e in entries] == [("pm2 app agent-leaky", "restarted")]
    pm2 = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".cache", "npm-tools", "node_modules", "pm2", "bin", "pm2")
    listing = host.run("PM2_HOME=%s %s jlist" % (os.path.join(SERVICE, "pm2"), pm2))
    app, = [a for a in json.loads(listing.stdout[listing.stdout.index("["):]) if a["name"] == "agent-leaky"]
    assert app["pm2_env"]["restart_time"] == 1 and app["pm2_env"]["status"] == "online"


def test_the_record_is_private(host):
    assert host.file(RECORDS).mode == 0o700
    assert host.file(os.path.join(RECORDS, "restarts.json")).mode == 0o600
