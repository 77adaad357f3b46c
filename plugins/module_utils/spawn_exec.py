# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether a process could execute a command, judged from host state the way the kernel and Node's spawn would.

Everything here is read-only and pure standard library. A command is resolved the way libuv (Node's spawn) does it:
a name without a slash is looked up on the PATH of the child's environment (``/usr/bin:/bin`` when there is none),
an ``EACCES`` candidate does not stop the search (a later directory may hold a runnable one; the error is reported
only when none runs), ``ENOENT``/``ENOTDIR`` go on to the next directory, and a file the kernel refuses with
``ENOEXEC`` (no ``#!`` and no ELF header, or an ELF for another machine) is run through ``/bin/sh`` instead.

Paths are resolved inside the process's own root (``/proc/PID/root``) one component at a time, following symlinks
there (an absolute link is relative to that root, not to ours), and every directory on the way must be searchable,
and the file executable, by the process's credentials (``/proc/PID/status``: fsuid, fsgid, supplementary groups,
CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH), from mode bits and POSIX ACLs - never ``os.access`` as the diagnosing
user. ``noexec`` comes from the process's own ``mountinfo`` (its mount namespace).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import stat
import struct

MAX_ARG_STRLEN = 131072  # one argument or environment string, including its NUL (32 pages)
KERNEL_ARG_MAX = 131072  # the kernel's floor for argv + envp (ARG_MAX in include/uapi/linux/limits.h)
STK_LIM = 8 * 1024 * 1024  # _STK_LIM: argv + envp may use at most 3/4 of it since Linux 4.13
DEFAULT_PATH = "/usr/bin:/bin"  # _PATH_DEFPATH: what libuv searches when the child's environment has no PATH
MAX_SYMLINKS = 40
MAX_NESTING = 4  # BINPRM_MAX_RECURSION: interpreters of interpreters
HEADER_BYTES = 256  # BINPRM_BUF_SIZE since Linux 5.1: the part of a #! line the kernel reads

CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2

# e_machine numbers (elf.h) and the names `file` prints for them.
MACHINES = {
    3: "Intel 80386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "IBM S/390", 40: "ARM", 50: "IA-64",
    62: "x86-64", 183: "ARM aarch64", 243: "RISC-V", 258: "LoongArch",
}
# What each `uname -m` runs natively (x86_64 also runs i386 binaries through IA32 emulation, enabled in distro kernels).
NATIVE = {
    "x86_64": (62, 3), "i686": (3,), "i586": (3,), "i386": (3,), "aarch64": (183,), "arm64": (183,), "armv7l": (40,),
    "armv6l": (40,), "armv8l": (40,), "ppc64le": (21,), "ppc64": (21,), "ppc": (20,), "s390x": (22,), "riscv64": (243,),
    "loongarch64": (258,), "mips": (8,), "mips64": (8,), "ia64": (50,),
}

# ------------------------------------------------------------------ credentials


class Creds(object):
    """The credentials the kernel checks file access with: fsuid, fsgid, supplementary groups, capabilities."""

    def __init__(self, uid, gid, groups=(), cap_eff=None):
        self.uid = uid
        self.gid = gid
        self.groups = frozenset(groups)
        # Without a CapEff line (an old kernel or a synthetic tree), uid 0 is taken to hold every capability.
        self.cap_eff = cap_eff if cap_eff is not None else (~0 if uid == 0 else 0)

    def has(self, capability):
        return bool(self.cap_eff & (1 << capability))

    def key(self):
        return (self.uid, self.gid, tuple(sorted(self.groups)), self.cap_eff)

    def describe(self):
        return "uid %d gid %d%s" % (self.uid, self.gid, " groups %s" % ",".join(str(g) for g in sorted(self.groups))
                                    if self.groups else "")


def parse_status(text):
    """Creds from ``/proc/PID/status`` (the fs ids, 4th column of Uid:/Gid:, are the ones file access uses)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.split()
    try:
        uid = int(fields["Uid"][3] if len(fields["Uid"]) > 3 else fields["Uid"][1])
        gid = int(fields["Gid"][3] if len(fields["Gid"]) > 3 else fields["Gid"][1])
    except (KeyError, IndexError, ValueError):
        raise ValueError("no Uid/Gid lines in status")
    groups = [int(g) for g in fields.get("Groups", []) if g.isdigit()]
    cap = fields.get("CapEff")
    return Creds(uid, gid, groups, int(cap[0], 16) if cap else None)


# ------------------------------------------------------------------ permission
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def parse_acl(raw):
    """The entries of a ``system.posix_acl_access`` value as [(tag, perm, id)], or None when it is not one."""
    if not raw or len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack("<I", raw[:4])[0] != 2:
        return None
    return [struct.unpack("<HHI", raw[i:i + 8]) for i in range(4, len(raw), 8)]


def read_acl(path):
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        return parse_acl(getxattr(path, "system.posix_acl_access", follow_symlinks=False))
    except OSError:
        return None  # no ACL (ENODATA), or a filesystem without xattrs


def allowed(st, creds, want, acl=None):
    """True when ``creds`` get permission bits ``want`` (4 r, 2 w, 1 x) on a file with stat ``st`` (and ``acl``).

    Like the kernel's generic_permission: the owner class, else the group class, else other - the first class that
    applies decides, even when a later one would allow more. Capabilities come after."""
    mode = st.st_mode
    is_dir = stat.S_ISDIR(mode)
    granted = _by_class(st, creds, want, acl)
    if granted:
        return True
    if want == 1 and is_dir and (creds.has(CAP_DAC_READ_SEARCH) or creds.has(CAP_DAC_OVERRIDE)):
        return True
    if want == 1 and not is_dir:
        return creds.has(CAP_DAC_OVERRIDE) and bool(mode & 0o111)  # even root needs one execute bit
    if want == 4 and creds.has(CAP_DAC_READ_SEARCH):
        return True
    return creds.has(CAP_DAC_OVERRIDE)


def _by_class(st, creds, want, acl):
    mode = st.st_mode
    if creds.uid == st.st_uid:
        return (mode >> 6) & want == want
    if acl:
        mask = next((perm for tag, perm, _id in acl if tag == ACL_MASK), 7)
        for tag, perm, ident in acl:
            if tag == ACL_USER and ident == creds.uid:
                return perm & mask & want == want
        matched = False
        for tag, perm, ident in acl:
            if (tag == ACL_GROUP_OBJ and _in_group(st.st_gid, creds)) or (tag == ACL_GROUP and _in_group(ident, creds)):
                matched = True
                if perm & mask & want == want:
                    return True
        if matched:
            return False
        return (mode & 7) & want == want
    if _in_group(st.st_gid, creds):
        return (mode >> 3) & want == want
    return mode & want == want


def _in_group(gid, creds):
    return gid == creds.gid or gid in creds.groups


def mode_text(st):
    return "%04o" % stat.S_IMODE(st.st_mode)


# ------------------------------------------------------------------ mounts
def mount_of(mounts, path):
    """The mount (procfs.mountinfo dict) that holds ``path``: the longest mount point above it, the last one mounted
    when several share it (a mount on top hides the one below)."""
    best = None
    for mount in mounts:
        point = mount["mount_point"]
        if path == point or point == "/" or path.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best["mount_point"]):
                best = mount
    return best


# ------------------------------------------------------------------ file formats
def parse_shebang(header):
    """(interpreter, argument) of a ``#!`` line as the kernel splits it (binfmt_script), or None.

    The kernel skips blanks after ``#!``, ends the interpreter at the first blank and takes the rest, without
    trailing blanks, as one argument. It strips spaces and tabs, never a carriage return: a CRLF script's
    interpreter is ``node\\r``."""
    if not header.startswith(b"#!"):
        return None
    line = header[2:].split(b"\n", 1)[0]
    line = line.lstrip(b" \t").rstrip(b" \t")
    if not line:
        return None
    parts = re.split(b"[ \t]+", line, maxsplit=1)
    interpreter = parts[0].decode("utf-8", "replace")
    argument = parts[1].decode("utf-8", "replace") if len(parts) > 1 else None
    return interpreter, argument


def env_target(argument):
    """The program ``/usr/bin/env`` runs for a shebang argument (``node``, ``-S node --flag``), or None."""
    if argument is None:
        return None
    words = argument.split(" ") if argument.startswith("-S") else [argument]
    if words and words[0].startswith("-S"):
        first = words[0][2:]
        words = ([first] if first else []) + words[1:]
    for word in words:
        if not word or (word.startswith("-") and word != "-"):
            continue
        if "=" in word and not word.startswith("/"):
            continue  # NAME=VALUE
        return word
    return None


def parse_elf(read_at, header):
    """{machine, class, interpreter} of an ELF file, or None when ``header`` is not ELF.

    ``read_at(offset, size)`` reads more of the file (for the PT_INTERP program header)."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    klass, data = header[4], header[5]
    endian = "<" if data == 1 else ">"
    machine = struct.unpack(endian + "H", header[18:20])[0]
    info = {"machine": machine, "class": 64 if klass == 2 else 32, "interpreter": None}
    try:
        if klass == 2:
            phoff, = struct.unpack(endian + "Q", header[32:40])
            phentsize, phnum = struct.unpack(endian + "HH", header[54:58])
            layout = endian + "IIQQQQQQ"
        else:
            phoff, = struct.unpack(endian + "I", header[28:32])
            phentsize, phnum = struct.unpack(endian + "HH", header[42:46])
            layout = endian + "IIIIIIII"
        size = struct.calcsize(layout)
        if phentsize < size or phnum > 512:
            return info
        table = read_at(phoff, phentsize * phnum)
        for index in range(phnum):
            entry = table[index * phentsize:index * phentsize + size]
            if len(entry) < size:
                break
            fields = struct.unpack(layout, entry)
            if fields[0] == 3:  # PT_INTERP
                offset, filesz = (fields[2], fields[5]) if klass == 2 else (fields[1], fields[4])
                if 0 < filesz <= 4096:
                    info["interpreter"] = read_at(offset, filesz).split(b"\0", 1)[0].decode("utf-8", "replace")
                break
    except (struct.error, IndexError, OSError):
        pass
    return info


def machine_name(number):
    return MACHINES.get(number, "e_machine %d" % number)


def binfmt_handlers(directory):
    """Enabled binfmt_misc magic handlers (qemu-user emulation) as [(name, offset, magic, mask, interpreter)]."""
    handlers = []
    try:
        names = os.listdir(directory)
    except OSError:
        return handlers
    for name in names:
        if name in ("register", "status"):
            continue
        try:
            with open(os.path.join(directory, name)) as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        if not lines or lines[0].strip() != "enabled":
            continue
        fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
        try:
            magic = bytes.fromhex(fields.get("magic", ""))
            mask = bytes.fromhex(fields["mask"]) if "mask" in fields else b"\xff" * len(magic)
            offset = int(fields.get("offset", "0"))
        except ValueError:
            continue
        if magic:
            handlers.append((name, offset, magic, mask, fields.get("interpreter", "")))
    return handlers


def emulated_by(handlers, header):
    """The binfmt_misc handler that would run a file starting with ``header``, or None."""
    for name, offset, magic, mask, interpreter in handlers:
        chunk = header[offset:offset + len(magic)]
        if len(chunk) == len(magic) and all((c & m) == (g & m) for c, g, m in zip(chunk, magic, mask)):
            return "%s (%s)" % (name, interpreter) if interpreter else name
    return None


# ------------------------------------------------------------------ argument limits
def arg_limit(stack_soft):
    """Bytes the kernel allows for argv + envp strings and pointers (fs/exec.c, Linux 4.13+): a quarter of the
    stack rlimit, at most 3/4 of _STK_LIM, at least ARG_MAX. ``stack_soft`` None means unlimited."""
    limit = STK_LIM // 4 * 3
    if stack_soft is not None:
        limit = min(limit, stack_soft // 4)
    return max(limit, KERNEL_ARG_MAX)


def exec_size(env_bytes, env_count, argv):
    """Bytes execve needs for ``argv`` (a list of byte sizes, NULs included) and an environment of ``env_bytes``
    (NULs included) in ``env_count`` strings: the strings plus one pointer each."""
    return env_bytes + sum(argv) + 8 * (env_count + len(argv))


# ------------------------------------------------------------------ Windows paths
WINDOWS_PATH = re.compile(
    r"(?:(?<![A-Za-z0-9+.-])[A-Za-z]:\\[^\\\s\"']"  # C:\Users
    r"|^\\\\[A-Za-z0-9_.$-]+\\[^\\\s]"  # \\server\share
    r"|(?:^|[\s=\"'])(?:\.{1,2}\\)?(?:[A-Za-z0-9_.-]+\\){1,}[A-Za-z0-9_ .-]+\.(?:js|mjs|cjs|ts|json|cmd|bat|exe|ps1|txt|md|log|ya?ml)\b)"
)


def windows_path(text):
    """The Windows-style path in ``text`` (a drive letter, a UNC share, backslash-separated file path), or None."""
    match = WINDOWS_PATH.search(text or "")
    if not match:
        return None
    start = match.start()
    while start < len(text) and text[start] in " \t=\"'":
        start += 1
    end = start
    while end < len(text) and text[end] not in "\t\n\"'" and not (text[end] == " " and "\\" not in text[end:]):
        end += 1
    return text[start:end].rstrip(" ,;")


# ------------------------------------------------------------------ resolution
class Unreadable(Exception):
    """Host state that could not be read (not a verdict about the process): becomes an incomplete check."""

    def __init__(self, path, error):
        Exception.__init__(self, "%s: %s" % (path, error))
        self.path = path
        self.error = error


class Resolver(object):
    """Resolves commands for one process: its root, cwd, PATH, credentials and mounts.

    ``root`` is the host path of the process's root directory (``/proc/PID/root``); every other path here is as the
    process sees it. ``mounts`` is its mountinfo (procfs.ProcFS.mountinfo). Results are dicts with ``status``:
    ``ok`` (``file``), ``not_found`` (``searched``), ``dir_not_searchable``, ``not_executable``, ``noexec_mount``
    (EACCES), ``interpreter_missing``, ``shebang_crlf`` (ENOENT, or exit 127 through env), ``exec_format`` (ENOEXEC).
    """

    def __init__(self, root, cwd, path_value, creds, mounts, host_machine=None, handlers=()):
        self.root = root.rstrip("/") or "/"
        self.cwd = cwd
        self.path_value = path_value
        self.creds = creds
        self.mounts = mounts
        self.host_machine = host_machine or os.uname()[4]
        self.handlers = handlers
        self._lstat = {}
        self._acls = {}

    def host(self, path):
        return self.root + path if self.root != "/" else path

    def lstat(self, path):
        if path not in self._lstat:
            try:
                self._lstat[path] = os.lstat(self.host(path))
            except OSError as exc:
                self._lstat[path] = exc
        value = self._lstat[path]
        if isinstance(value, OSError):
            raise value
        return value

    # ------------------------------------------------------------ walking
    def walk(self, path):
        """Walk ``path`` (absolute, as the process sees it) component by component.

        Returns ``("ok", real_path, stat)``, ``("missing", path_that_is_missing, None)``, ``("denied", directory,
        stat)`` (a directory the process cannot search) or ``("loop", path, None)``; raises Unreadable."""
        pending = [part for part in path.split("/") if part][::-1]
        current = "/"
        links = 0
        st = self._stat_dir("/")
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if not stat.S_ISDIR(st.st_mode):
                return ("missing", current, None)  # ENOTDIR: go on like ENOENT
            if not allowed(st, self.creds, 1, self._acl(current, st)):
                return ("denied", current, st)
            if name == "..":
                current = os.path.dirname(current) or "/"
                st = self._stat_dir(current)
                continue
            candidate = os.path.join(current, name)
            try:
                st = self.lstat(candidate)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    return ("missing", candidate, None)
                raise Unreadable(candidate, os.strerror(exc.errno or 0) or str(exc))
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    return ("loop", candidate, None)
                try:
                    target = os.readlink(self.host(candidate))
                except OSError as exc:
                    raise Unreadable(candidate, os.strerror(exc.errno or 0))
                pending.extend([part for part in target.split("/") if part][::-1])
                if target.startswith("/"):
                    current = "/"
                st = self._stat_dir(current)
                continue
            current = candidate
        return ("ok", current, st)

    def _stat_dir(self, path):
        try:
            return self.lstat(path) if path != "/" else os.stat(self.host("/"))
        except OSError as exc:
            raise Unreadable(path, os.strerror(exc.errno or 0))

    def _acl(self, path, _st=None):
        if path not in self._acls:
            self._acls[path] = read_acl(self.host(path))
        return self._acls[path]

    def absolute(self, path):
        return path if path.startswith("/") else os.path.normpath(os.path.join(self.cwd or "/", path))

    # ------------------------------------------------------------ commands
    def search_dirs(self):
        """The directories a command name is looked up in: PATH's entries (empty means the cwd)."""
        value = DEFAULT_PATH if self.path_value is None else self.path_value
        return [entry or "." for entry in value.split(":")]

    def resolve(self, command, depth=0):
        """What spawn(command) would do for this process (see the class)."""
        if "/" in command:
            candidates = [self.absolute(command)]
        else:
            candidates = [self.absolute(os.path.join(entry, command)) for entry in self.search_dirs()]
        refused = None
        unrunnable = None
        for candidate in candidates:
            result = self.check(candidate, depth)
            status = result["status"]
            if status in ("ok", "exec_format") or result.get("after_exec"):
                return result  # execve succeeded (or ran it through /bin/sh): the search ends here
            if status in ("dir_not_searchable", "not_executable", "noexec_mount"):
                refused = refused or result
            elif status in ("interpreter_missing", "shebang_crlf"):
                unrunnable = unrunnable or result
        if refused:
            return refused  # libuv, like execvp, reports EACCES when any candidate was refused
        if unrunnable:
            return unrunnable
        return {"status": "not_found", "command": command, "searched": candidates if "/" in command else self.search_dirs()}

    def check(self, path, depth=0):
        """Whether the file at ``path`` (absolute, as the process sees it) can be executed by the process."""
        state, real, st = self.walk(path)
        if state == "missing":
            return {"status": "missing", "file": path}
        if state == "loop":
            return {"status": "missing", "file": path, "reason": "too many levels of symbolic links"}
        if state == "denied":
            return {"status": "dir_not_searchable", "file": path, "denied": real, "mode": mode_text(st),
                    "owner": st.st_uid, "group": st.st_gid,
                    "reason": "directory %s (mode %s, owner %d:%d) is not searchable (no x) for %s" % (
                        real, mode_text(st), st.st_uid, st.st_gid, self.creds.describe())}
        base = {"file": path, "real": real, "mode": mode_text(st), "owner": st.st_uid, "group": st.st_gid}
        if not stat.S_ISREG(st.st_mode):
            return dict(base, status="not_executable", reason="%s is not a regular file" % real)
        if not allowed(st, self.creds, 1, self._acl(real)):
            return dict(base, status="not_executable", reason="%s (mode %s, owner %d:%d) is not executable for %s" % (
                real, base["mode"], st.st_uid, st.st_gid, self.creds.describe()))
        mount = mount_of(self.mounts, real)
        if mount and "noexec" in mount["options"].split(","):
            return dict(base, status="noexec_mount", mount_point=mount["mount_point"], mount_options=mount["options"],
                        fstype=mount["fstype"], reason="%s is on %s, mounted noexec (%s)" % (
                            real, mount["mount_point"], mount["options"]))
        try:
            with open(self.host(real), "rb") as handle:
                header = handle.read(HEADER_BYTES)

                def read_at(offset, size):
                    handle.seek(offset)
                    return handle.read(size)
                elf = parse_elf(read_at, header)
        except OSError as exc:
            raise Unreadable(real, os.strerror(exc.errno or 0))
        if elf is not None:
            return self._elf(base, elf, header, depth)
        shebang = parse_shebang(header)
        if shebang is not None:
            return self._script(base, shebang, st, depth)
        return dict(base, status="ok")  # no magic: ENOEXEC, then libuv runs it with /bin/sh

    def _elf(self, base, elf, header, depth):
        native = NATIVE.get(self.host_machine)
        if native is not None and elf["machine"] not in native:
            emulator = emulated_by(self.handlers, header)
            if emulator is None:
                return dict(base, status="exec_format", elf_machine=machine_name(elf["machine"]),
                            host_machine=self.host_machine, reason="%s is an ELF for %s; this host is %s" % (
                                base["real"], machine_name(elf["machine"]), self.host_machine))
            base = dict(base, emulated_by=emulator)
        if elf["interpreter"] and depth < MAX_NESTING:
            loader = self.check(self.absolute(elf["interpreter"]), depth + 1)
            if loader["status"] == "missing":
                return dict(base, status="interpreter_missing", interpreter=elf["interpreter"],
                            reason="its ELF program interpreter (dynamic loader) %s does not exist (a binary built for "
                                   "another libc, such as musl on a glibc host)" % elf["interpreter"])
            if loader["status"] != "ok":
                return dict(loader, file=base["file"], interpreter=elf["interpreter"])
        return dict(base, status="ok")

    def _script(self, base, shebang, st, depth):
        interpreter, argument = shebang
        if "\r" in interpreter or (argument and "\r" in argument):
            via_env = os.path.basename(interpreter) == "env" and "\r" not in interpreter
            return dict(base, status="shebang_crlf", interpreter=interpreter, argument=argument,
                        shebang=("#!" + interpreter + (" " + argument if argument else "")).replace("\r", "\\r"),
                        after_exec=via_env, reason="its #! line ends in a carriage return (CRLF line endings): %s" % (
                            "env looks for %r and exits 127" % (argument or "").strip(" ") if via_env else
                            "the kernel looks for %r and spawn fails with ENOENT" % interpreter))
        if not allowed(st, self.creds, 4, self._acl(base["real"])):
            return dict(base, status="not_executable", after_exec=True,
                        reason="%s is a script (#!%s) that %s cannot read, so its interpreter cannot load it" % (
                            base["real"], interpreter, self.creds.describe()))
        if depth >= MAX_NESTING:
            return dict(base, status="ok")
        target = self.check(self.absolute(interpreter), depth + 1)
        if target["status"] == "missing":
            return dict(base, status="interpreter_missing", interpreter=interpreter,
                        reason="its #! interpreter %s does not exist" % interpreter)
        if target["status"] != "ok":
            return dict(target, file=base["file"], interpreter=interpreter, after_exec=target.get("after_exec", False),
                        reason="its #! interpreter %s cannot run: %s" % (interpreter, target.get("reason", target["status"])))
        program = env_target(argument) if os.path.basename(interpreter) == "env" else None
        if program:
            found = self.resolve(program, depth + 1)
            if found["status"] != "ok":
                return dict(base, status="interpreter_missing", interpreter="%s %s" % (interpreter, argument),
                            after_exec=True, program=program,
                            reason="its #! line runs %s through env, and %s %s: env exits 127" % (
                                program, program, "is not on the PATH" if found["status"] == "not_found"
                                else "cannot run (%s)" % found.get("reason", found["status"])))
        return dict(base, status="ok")
