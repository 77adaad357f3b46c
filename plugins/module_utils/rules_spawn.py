# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the spawn family: one part of the rules catalog (merged into ``rules.RULES``, same format)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CATEGORY = ("spawn", "Spawning CLI child processes")

_SHOW_PATH = "tr '\\0' '\\n' < /proc/{pid}/environ | grep '^PATH=' || true"
_NAMEI = "namei -l {command_path} || true; stat -L -c '%A %U:%G %n' {command_path} || true"

RULES = {
    "spawn.command_not_found": {
        "category": "spawn",
        "title": "A CLI the agent spawns is not on its PATH",
        "symptom": "{command} is not on the PATH of {count} agent process(es) (pid {pids}, user {user}): {path}",
        "diagnosis": (
            "Node looks a command name up on the PATH of the child's environment - the agent's own unless the code "
            "passes env; here {path_source} - and none of those directories holds {command}, so spawn('{command}') "
            "fails with '{error}'. Usual causes: the CLI was installed for another user (~/.local/bin, an nvm or npm "
            "prefix), or a systemd unit, container image or process manager narrowed PATH."
        ),
        "fix": {
            "summary": "Install the CLI where that PATH looks, add its directory to the service's PATH (Environment=PATH= "
                       "in the unit, ENV PATH in the image), or spawn it by absolute path.",
            "command": ["whereis -b {command}; " + _SHOW_PATH, _SHOW_PATH],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.not_executable": {
        "category": "spawn",
        "title": "A CLI the agent spawns is not executable for it",
        "symptom": "spawn {command} from {count} agent process(es) (pid {pids}, {runs_as}): {reason}.",
        "diagnosis": (
            "The file is there but the kernel refuses to execute it with that process's credentials ({error}): no "
            "execute bit in the class (owner, group or other) the process falls in - the first class that applies "
            "decides - or not a regular file; a script also needs read permission for its interpreter to load it. "
            "Root needs at least one execute bit as well. An npm install run as another user or a copy without its "
            "mode are the usual causes."
        ),
        "fix": {
            "summary": "Give the file the execute bit for the user that runs the agent (after checking who should run it), "
                       "or reinstall the CLI as that user; never make it world-writable.",
            "command": [_NAMEI],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.dir_not_searchable": {
        "category": "spawn",
        "title": "A directory on the way to a CLI is not searchable by the agent",
        "symptom": "spawn {command} from {count} agent process(es) (pid {pids}, {runs_as}): {reason}.",
        "diagnosis": (
            "To execute {command_path} the process needs search (x) permission on every directory above it. {denied} "
            "refuses it, so spawn fails with EACCES even though the file itself may be executable - typically a CLI "
            "installed under root's or another user's home (0700) and used by a service user."
        ),
        "fix": {
            "summary": "Install the CLI outside private home directories (/usr/local/bin, /opt), or grant search on that "
                       "directory to the service's group only.",
            "command": [_NAMEI],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.noexec_mount": {
        "category": "spawn",
        "title": "A CLI the agent spawns is on a noexec mount",
        "symptom": "{command_path} is on {mount_point}, mounted noexec ({mount_options}): spawn {command} from {count} "
                   "agent process(es) (pid {pids}) fails with EACCES.",
        "diagnosis": (
            "The kernel refuses to execute any file on a noexec mount, whatever its mode. Hardened hosts mount /tmp, "
            "/dev/shm or /home noexec; CLIs unpacked into a temp or cache directory (npx caches, downloaded binaries) "
            "then fail. The mount is read from the process's own mount namespace."
        ),
        "fix": {
            "summary": "Install the CLI on an exec mount (/usr/local/bin, /opt) or point the tool's cache and temp "
                       "directories (npm_config_cache, TMPDIR) at one. Never remount /tmp exec as a fix.",
            "command": ["nsenter -t {pid} -m findmnt -T {command_path} -o TARGET,SOURCE,FSTYPE,OPTIONS || "
                        "findmnt -T {command_path} -o TARGET,SOURCE,FSTYPE,OPTIONS || true",
                        "findmnt -T {command_path} -o TARGET,SOURCE,FSTYPE,OPTIONS || true"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.interpreter_missing": {
        "category": "spawn",
        "title": "The interpreter of a CLI the agent spawns is missing",
        "symptom": "{command} ({command_path}) cannot start for {count} agent process(es) (pid {pids}): {reason}.",
        "diagnosis": (
            "The file exists and is executable, but what it needs to run does not: the interpreter of its #! line, "
            "the program env is asked to run there (looked up on the same PATH), or the dynamic loader of an ELF "
            "binary (a binary built against musl on a glibc host). The kernel reports a missing interpreter as "
            "ENOENT, so the error names the command although the command is there; through env the child exits 127."
        ),
        "fix": {
            "summary": "Install the interpreter (or the right build of the binary for this libc), or correct the #! "
                       "line; check with the file's first line and the interpreter's path.",
            "command": ["file -L {command_path} 2>/dev/null || head -n 1 {command_path} | od -c | head -n 3"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.shebang_crlf": {
        "category": "spawn",
        "title": "A CLI's #! line ends in a carriage return (CRLF)",
        "symptom": "{command_path} starts with '{shebang}': spawn {command} from {count} agent process(es) (pid {pids}) "
                   "cannot start it: {reason}.",
        "diagnosis": (
            "The script was saved or checked out with Windows line endings. The kernel keeps the carriage return in "
            "the #! line, so it looks for an interpreter named 'node\\r' (spawn ENOENT), or env looks for a program "
            "called 'node\\r' and exits 127 with \"No such file or directory\"."
        ),
        "fix": {
            "summary": "Convert the file to LF line endings (dos2unix, or sed 's/\\r$//'), fix what produced it "
                       "(git core.autocrlf, .gitattributes eol=lf, a Windows build) and reinstall the package.",
            "command": ["head -n 1 {command_path} | od -c | head -n 3"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.exec_format": {
        "category": "spawn",
        "title": "A CLI the agent spawns is built for another architecture",
        "symptom": "{command_path} is an ELF for {elf_machine}; this host is {host_machine}: spawn {command} from "
                   "{count} agent process(es) (pid {pids}) cannot run it.",
        "diagnosis": (
            "The kernel refuses the binary with ENOEXEC ('exec format error'); Node then hands it to /bin/sh, which "
            "fails with exit 126 or 127 and a garbled 'not found' line. Usual causes: node_modules or a CLI binary "
            "copied from another machine (an arm64 laptop to an x86-64 server), or an image built for another "
            "platform. No binfmt_misc emulator on this host claims it."
        ),
        "fix": {
            "summary": "Reinstall the package on this host (npm ci / npm rebuild) or install the build for this "
                       "architecture; rebuild images for the target platform.",
            "command": ["file -L {command_path} 2>/dev/null || od -A d -t x1 -N 20 {command_path}; uname -m"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.cwd_deleted": {
        "category": "spawn",
        "title": "An agent's working directory was deleted",
        "symptom": "pid {pid} ({name}, user {user}) runs in {cwd}, which no longer exists.",
        "diagnosis": (
            "The directory was removed (a release directory cleaned up, a temp directory deleted) while the process "
            "kept running in it. Children inherit it: spawn with cwd set to that path fails with ENOENT, relative "
            "PATH entries and commands resolve to nothing, and CLIs that read their working directory fail (git: "
            "'Unable to read current working directory')."
        ),
        "fix": {
            "summary": "Restart the service from a directory that exists (WorkingDirectory= in the unit); pass an "
                       "explicit, existing cwd to spawn.",
            "command": ["ls -l /proc/{pid}/cwd"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.windows_path": {
        "category": "spawn",
        "title": "Windows-style paths on a Linux agent",
        "symptom": "pid {pid} ({name}) has {count} Windows-style path(s) in its {where}, for example {example}",
        "diagnosis": (
            "Backslash separators or drive letters mean code or configuration written for Windows: on Linux 'C:\\x' "
            "is one relative file name, so files land under the working directory with backslashes in their names, "
            "and spawned commands or files are not found. Build paths with path.join / path.posix, not string "
            "concatenation, and keep platform-specific settings out of shared configuration."
        ),
        "fix": {
            "summary": "Find where the path comes from (configuration, environment, hard-coded strings) and use "
                       "platform-neutral paths; move or remove the stray files once the code is fixed.",
            "command": ["tr '\\0' ' ' < /proc/{pid}/cmdline; echo; ls -la /proc/{pid}/cwd/ | head -n 50"],
            "playbook": None,
        },
        "thresholds": {},
    },
    "spawn.e2big_risk": {
        "category": "spawn",
        "title": "Spawning with a prompt argument is close to the argument size limit (E2BIG)",
        "symptom": "pid {pid} ({name}): its environment ({env_bytes} bytes in {env_count} variables) plus a {prompt_bytes}-byte "
                   "prompt argument need {arg_bytes} of {arg_limit} bytes ({used_percent}%); one argument may hold at "
                   "most {max_arg_strlen} bytes.",
        "diagnosis": (
            "execve fails with E2BIG ('spawn E2BIG', 'Argument list too long') when one argument or environment "
            "string exceeds MAX_ARG_STRLEN (128 KiB), or argv plus the environment exceed the limit the kernel "
            "derives from the stack rlimit (a quarter of it, at most 6 MiB, at least 128 KiB). Children inherit the "
            "agent's environment, so a large environment leaves less room for prompts passed as arguments. The "
            "environment counted is the one the process started with (/proc/PID/environ)."
        ),
        "fix": {
            "summary": "Pass prompts through stdin or a file instead of argv, and trim the environment passed to "
                       "children (env: a minimal object).",
            "command": ["getconf ARG_MAX; grep 'Max stack size' /proc/{pid}/limits; wc -c < /proc/{pid}/environ"],
            "playbook": None,
        },
        "thresholds": {"low": 50.0, "medium": 80.0},
    },
    "spawn.check_incomplete": {
        "category": "spawn",
        "title": "Spawn readiness could not be checked",
        "symptom": "Could not read {what} ({check}) for {count} agent process(es): {error}",
        "diagnosis": (
            "Without it, whether these processes can spawn their CLIs is unknown, not healthy. Reading another "
            "user's /proc/PID/environ, cwd and root needs the same user or root (ptrace access), and a hung network "
            "mount on PATH stops the walk."
        ),
        "fix": {
            "summary": "Run the diagnosis with privileges (become), or check that path by hand.",
            "command": ["ls -ld {what} 2>&1; id"],
            "playbook": None,
        },
        "thresholds": {},
    },
}
