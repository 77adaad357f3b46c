"""Throwaway PostgreSQL clusters for tests, Molecule and benchmarks: initdb + pg_ctl, 127.0.0.1, a free port.

    python tests/pgcluster.py start --dir DIR [--max-connections 12] [--port P]   # prints JSON
    python tests/pgcluster.py stop --dir DIR

initdb refuses to run as root, so as root the cluster runs as the OS user `postgres`
(Debian's package creates it) or a user this script creates. The superuser is
`postgres` with the password in the printed JSON; local socket connections are trusted.
"""
import argparse
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

SUPERUSER_PASSWORD = "agentops-test-superuser"
OS_USERS = ("postgres", "agentops-pg")


def bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    sys.exit("pgcluster: no PostgreSQL server binaries (apt-get install postgresql).")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def os_user():
    if os.geteuid() != 0:
        return None
    for name in OS_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USERS[1]], check=True)
    return OS_USERS[1]


def run_as(user, argv, **kwargs):
    if user:
        argv = ["runuser", "-u", user, "--"] + argv
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        sys.exit("pgcluster: %s failed: %s" % (os.path.basename(argv[argv.index("--") + 1] if user else argv[0]),
                                               (proc.stderr or proc.stdout).strip()))
    return proc


def start(directory, max_connections=12, port=None, superuser_reserved=3, extra=()):
    """Start a cluster; DIR gets cluster.json, the server's files live in a temp dir the OS user can reach."""
    user = os_user()
    os.makedirs(directory, exist_ok=True)
    server_dir = tempfile.mkdtemp(prefix="agentops-pg-")
    os.chmod(server_dir, 0o755)
    data, sockets, pwfile = (os.path.join(server_dir, n) for n in ("data", "sockets", "pwfile"))
    os.makedirs(sockets, exist_ok=True)
    with open(pwfile, "w") as handle:
        handle.write(SUPERUSER_PASSWORD + "\n")
    if user:
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        for path in (server_dir, sockets, pwfile):
            os.chown(path, uid, gid)
    binaries = bindir()
    if not os.path.exists(os.path.join(data, "PG_VERSION")):
        run_as(user, [os.path.join(binaries, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile, "--no-sync",
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
    port = port or free_port()
    options = ["-c port=%d" % port, "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=%s" % sockets,
               "-c max_connections=%d" % max_connections, "-c superuser_reserved_connections=%d" % superuser_reserved,
               "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c shared_buffers=16MB",
               "-c deadlock_timeout=200ms"] + list(extra)
    run_as(user, [os.path.join(binaries, "pg_ctl"), "-D", data, "-l", os.path.join(server_dir, "server.log"), "-w",
                  "-t", "30", "-o", " ".join(options), "start"])
    info = {"host": "127.0.0.1", "port": port, "socket_dir": sockets, "user": "postgres", "password": SUPERUSER_PASSWORD,
            "database": "postgres", "dir": directory, "server_dir": server_dir,
            "version": open(os.path.join(data, "PG_VERSION")).read().strip()}
    with open(os.path.join(directory, "cluster.json"), "w") as handle:
        json.dump(info, handle)
    return info


def stop(directory):
    try:
        with open(os.path.join(directory, "cluster.json")) as handle:
            server_dir = json.load(handle)["server_dir"]
    except (OSError, ValueError, KeyError):
        return
    data = os.path.join(server_dir, "data")
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        run_as(os_user(), [os.path.join(bindir(), "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"])
    shutil.rmtree(server_dir, ignore_errors=True)
    os.unlink(os.path.join(directory, "cluster.json"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("start")
    up.add_argument("--dir", required=True)
    up.add_argument("--max-connections", type=int, default=12)
    up.add_argument("--port", type=int)
    down = sub.add_parser("stop")
    down.add_argument("--dir", required=True)
    args = parser.parse_args()
    if args.command == "start":
        print(json.dumps(start(args.dir, args.max_connections, args.port)))
    else:
        stop(args.dir)


if __name__ == "__main__":
    main()
