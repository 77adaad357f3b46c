"""Run a command as the child of a minimal init in a new PID namespace, so that the tests see and
signal only the processes they made.

    unshare --fork --pid --mount-proc python3 scripts/pidns.py -- COMMAND [ARGS...]
    python3 scripts/pidns.py --unshare -- COMMAND [ARGS...]     # the same, calling unshare itself

Inside, this script is PID 1: it starts COMMAND, reaps every process re-parented to it (as systemd or
tini would, so orphans the tests create end as they would on a host), forwards SIGTERM/SIGINT to
COMMAND, and exits with COMMAND's status. When it exits, the kernel ends every process left in the
namespace: nothing a test started outlives it, and nothing outside it is ever seen or signalled.
"""
import os
import signal
import sys


def main(argv):
    if "--" not in argv:
        sys.exit("usage: pidns.py [--unshare] -- COMMAND [ARGS...]")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    if not command:
        sys.exit("pidns.py: no command given")
    if "--unshare" in options:
        os.execvp("unshare", ["unshare", "--fork", "--pid", "--mount-proc", sys.executable, os.path.abspath(__file__), "--"]
                  + command)
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write("pidns.py: cannot run %s: %s\n" % (command[0], exc))
            os._exit(127)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 1
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:  # orphans reaped meanwhile are simply collected
            status = os.waitstatus_to_exitcode(code)
            status = 128 - status if status < 0 else status  # killed by signal N: 128 + N, as a shell says
            break
    sys.exit(status)


if __name__ == "__main__":
    main(sys.argv[1:])
