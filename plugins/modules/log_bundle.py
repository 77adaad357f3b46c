#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: log_bundle
short_description: Build a redacted, size-capped incident bundle of logs, journal excerpts and diagnostics
version_added: 0.1.0
description:
  - Copies the newest part of each log in O(paths) (plain or gzip-rotated, decompressed), journal excerpts of
    O(journald_units) and O(diagnostics) (JSON) into C(<dest>/<incident_id>.tar.gz), with a C(manifest.json) holding the
    sha256, size and redaction count of every file.
  - "Redacts before anything is written, with the collection's one redaction engine: API keys and tokens by their
    prefixes (Anthropic, OpenAI, AWS, GitHub, GitLab, Slack, Stripe, Google, npm, PyPI, SendGrid, Twilio), JWTs, PEM
    private key blocks (from BEGIN to END across lines, and inside JSON strings such as a GCP service-account key),
    Azure storage keys, bearer and basic credentials, passwords in URLs and DSNs, the values of keys, options and JSON
    fields that name a secret (C(password=), C(--api-key), C(\"clientSecret\": ...)), Cookie, Set-Cookie and
    Authorization headers, and O(extra_patterns). Logs and journals are redacted as line streams; C(diagnostics.json)
    field by field. The same secret always gets the same placeholder in the whole bundle, so correlation survives."
  - Checks the free space of O(dest) first and fails before writing if the bundle could not fit with O(min_free_mb) to
    spare; stops adding data at O(max_total_bytes). The directory is 0700, the bundle 0600.
  - Never writes or reads through a symbolic link. O(dest) (and any directory the module creates for it) must be a
    real directory owned by the user the module runs as, and an existing C(<incident_id>.tar.gz) must be a regular
    file of that user; anything else is refused with one sentence, in check mode too. The bundle is written to a
    temporary file created with C(O_EXCL|O_NOFOLLOW) and renamed into place.
  - A bundle for the same incident id is not rebuilt (unless O(force)), so a second run changes nothing.
  - Missing, unreadable and binary files are listed in the manifest and skipped.
author:
  - agentops.runbooks developers (@agentops)
extends_documentation_fragment:
  - agentops.runbooks.diagnostics.redaction
options:
  paths:
    description: Log files or globs (C(agentops_log_paths)).
    type: list
    elements: str
    default: []
  journald_units:
    description: systemd units whose journal excerpt to include.
    type: list
    elements: str
    default: []
  since:
    description: Only the last this many seconds of each log and journal (0 for all; at most 316224000, ten years).
    type: int
    default: 86400
  diagnostics:
    description: Diagnostic facts and findings to include as C(diagnostics.json) (redacted like the logs).
    type: raw
  dest:
    description: Directory on the host for bundles; an absolute path.
    type: path
    default: /var/tmp/agentops-bundles
  incident_id:
    description: Incident id; the bundle is C(<dest>/<incident_id>.tar.gz).
    type: str
    required: true
  max_file_bytes:
    description: At most this many bytes of each log (the newest part); 1024 to 17179869184 (16 GiB).
    type: int
    default: 52428800
  max_total_bytes:
    description: At most this many bytes of data in the bundle, before compression; 1024 to 17179869184 (16 GiB).
    type: int
    default: 209715200
  min_free_mb:
    description: Free space to leave on O(dest)'s filesystem (0 to 1073741824).
    type: int
    default: 512
  extra_patterns:
    description: More regular expressions to redact (the first group, or the whole match).
    type: list
    elements: str
    default: []
  force:
    description: Rebuild the bundle even if one exists for this incident.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Lists what would be collected; writes nothing.
  diff_mode:
    support: none
    description: A bundle is a new file; there is nothing to diff.
"""

EXAMPLES = r"""
- name: Bundle the agent logs for the incident
  agentops.runbooks.log_bundle:
    paths: [/var/log/agent/*.log, /var/log/agent/*.gz]
    journald_units: [agent-manager.service]
    incident_id: INC-1234
    diagnostics: "{{ diagnose_result }}"
  register: bundle
"""

RETURN = r"""
bundle:
  description: Path of the bundle on the host.
  returned: always
  type: str
sha256:
  description: sha256 of the bundle.
  returned: when a bundle exists
  type: str
manifest:
  description: The manifest (also inside the bundle) - per file C(name), C(source), C(bytes), C(sha256), C(redactions), C(truncated).
  returned: always
  type: dict
"""

import hashlib
import json
import os
import re
import shutil
import tarfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import SkipFile, _lines_of, entry_time, expand, has_long_line
from ansible_collections.agentops.runbooks.plugins.module_utils.logscan import journal_reader, read_blocks, stamp
from ansible_collections.agentops.runbooks.plugins.module_utils.redact import Redactor
from ansible_collections.agentops.runbooks.plugins.module_utils import safefile

ID = re.compile(r"^[A-Za-z0-9._-]+$")
# A line whose entry time window_of cannot bound from the block's seed stamps: not a continuation, not empty, not a seed header in UTC.
UNBOUNDED = re.compile(r"^(?![ \t]|$|\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\] )", re.M)
SEED_SECONDS = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", re.M)


def window_of(text, since, keep):
    """True when every line of ``text`` (whole lines) is kept by the window that starts at ``since`` (what the line by line
    test decides, with ``keep`` the state before the block), False when every line is dropped, None when the block has to
    go line by line: every line is a continuation, an empty line or a seed header in UTC, and the stamps' seconds
    (found in one search) lie all at or after ``since`` or all before it."""
    if UNBOUNDED.search(text) is not None:
        return None
    seconds = SEED_SECONDS.findall(text)
    if not seconds or not (keep or text[:1] == "["):
        return None
    if stamp(min(seconds) + "Z") >= since:
        return True
    if stamp(max(seconds) + "Z") + 1 <= since and (not keep or text[:1] == "["):
        return False
    return None


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_name(path, used):
    name = os.path.basename(path)
    name = name[:-3] if name.endswith(".gz") else name
    candidate, index = name, 1
    while candidate in used:
        index += 1
        candidate = "%s.%d" % (name, index)
    used.add(candidate)
    return candidate


class Collector(object):
    def __init__(self, params, redactor, journal=None):
        self.p = params
        self.redactor = redactor
        self.journal = journal
        self.since = time.time() - params["since"] if params["since"] else None
        self.total = 0

    def write_log(self, path, target, entry):
        """Copy ``path`` redacted to ``target``, a block at a time: a block whose entries are all inside the window (or
        all before it) is redacted whole (LineStream.feed_block: a keyword search over the block, the rules only on
        the lines it marks), any other block line by line; both give the same lines."""
        before = self.redactor.total
        state = {"budget": min(self.p["max_file_bytes"], self.p["max_total_bytes"] - self.total), "written": 0}
        report = {}
        keep = True  # lines before the first timestamp are kept
        stream = self.redactor.stream()  # redacts line by line; a private key block spans lines
        with open(target, "w") as out:
            for dummy, data in read_blocks(path, self.p["max_file_bytes"], 1 << 20, report):
                lines, skipped = None, None
                if b"\x00" in data or b"\r" in data or has_long_line(data, 1 << 20):
                    lines, skipped = _lines_of(data, 1 << 20, report)
                    text = None
                else:
                    text = data.decode("utf-8", "replace")
                    if not text.endswith("\n"):
                        text += "\n"
                    inside = True if self.since is None else window_of(text, self.since, keep)
                    if inside is not None:
                        keep = keep if self.since is None else inside
                        if not inside:
                            continue
                        redacted = stream.feed_block(text)
                        if state["written"] + len(redacted) <= state["budget"]:
                            out.write(redacted)
                            state["written"] += len(redacted)
                            continue
                        if not self.write_lines(out, redacted.split("\n")[:-1], state, entry):
                            break
                        continue
                    lines = text.split("\n")[:-1]
                keep, going = self.write_each(out, stream, lines, skipped, keep, state, entry)
                if not going:
                    break
            else:
                self.write_lines(out, stream.close(), state, entry)
        self.total += state["written"]
        entry.update(redactions=self.redactor.total - before, skipped_lines=report.get("long_lines", 0) + report.get("garbage_lines", 0))

    def write_each(self, out, stream, lines, skipped, keep, state, entry):
        """Write ``lines`` (those in ``skipped`` left out) line by line: (keep, False once the byte cap is reached)."""
        for offset, line in enumerate(lines):
            if skipped and offset in skipped:
                continue
            if self.since is not None and line[:1] not in (" ", "\t"):
                ts = entry_time(line)  # continuation lines follow their entry's fate
                if ts is not None:
                    keep = ts >= self.since
            if not keep:
                continue
            if not self.write_lines(out, stream.feed(line), state, entry):
                return keep, False
        return keep, True

    @staticmethod
    def write_lines(out, lines, state, entry):
        """Write redacted lines whole while they fit the budget; False once the byte cap is reached."""
        for line in lines:
            text = line + "\n"
            if state["written"] + len(text) > state["budget"]:
                entry["truncated"] = "stopped at the byte cap"
                return False
            out.write(text)
            state["written"] += len(text)
        return True

    def collect(self, workdir):
        manifest = {"incident_id": self.p["incident_id"], "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "since_seconds": self.p["since"], "files": [], "skipped": []}
        files, missing = expand(self.p["paths"])
        manifest["skipped"].extend({"source": m, "why": "no such file"} for m in missing)
        used = set(["manifest.json", "diagnostics.json"])
        for path in files:
            if self.total >= self.p["max_total_bytes"]:
                manifest["skipped"].append({"source": path, "why": "the bundle reached max_total_bytes"})
                continue
            name = "logs/" + bundle_name(path, used)
            entry = {"name": name, "source": path}
            try:
                self.write_log(path, os.path.join(workdir, name), entry)
            except SkipFile as exc:
                manifest["skipped"].append({"source": path, "why": str(exc)})
                os.unlink(os.path.join(workdir, name))
                continue
            except (OSError, EOFError) as exc:
                manifest["skipped"].append({"source": path, "why": getattr(exc, "strerror", None) or str(exc)})
                if os.path.exists(os.path.join(workdir, name)):
                    os.unlink(os.path.join(workdir, name))
                continue
            manifest["files"].append(entry)
        for unit in self.p["journald_units"]:
            name = "journal/%s.log" % re.sub(r"[^\w.@-]", "_", unit)
            before = self.redactor.total
            try:
                lines = self.journal(unit, self.p["since"]) if self.journal else None
                if lines is None:
                    raise OSError("journalctl is not available")
                with open(os.path.join(workdir, name), "w") as out:
                    for line in self.redactor.lines(lines):
                        out.write(line + "\n")
            except OSError as exc:
                manifest["skipped"].append({"source": "journal:%s" % unit, "why": getattr(exc, "strerror", None) or str(exc)})
                continue
            manifest["files"].append({"name": name, "source": "journal:%s" % unit, "redactions": self.redactor.total - before})
        if self.p["diagnostics"] is not None:
            before = self.redactor.total
            diagnostics = self.redactor.data(json.loads(json.dumps(self.p["diagnostics"], default=str)))  # every string, every secret key
            with open(os.path.join(workdir, "diagnostics.json"), "w") as out:
                out.write(json.dumps(diagnostics, indent=2, sort_keys=True) + "\n")
            manifest["files"].append({"name": "diagnostics.json", "source": "diagnose", "redactions": self.redactor.total - before})
        for entry in manifest["files"]:
            path = os.path.join(workdir, entry["name"])
            entry["bytes"] = os.path.getsize(path)
            entry["sha256"] = sha256(path)
        manifest["redactions_by_kind"] = dict(self.redactor.counts)
        with open(os.path.join(workdir, "manifest.json"), "w") as out:
            out.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return manifest


def planned(params):
    files, missing = expand(params["paths"])
    return {"incident_id": params["incident_id"], "would_collect": [{"source": f, "bytes": os.path.getsize(f)} for f in files],
            "journald_units": params["journald_units"], "skipped": [{"source": m, "why": "no such file"} for m in missing]}


# Ranges of the numeric options: negatives and absurd values are refused before anything is done
# (ten years of logs, 16 GiB per file and per bundle; a free-space floor no filesystem has fails the space check).
LIMITS = (("since", 0, 10 * 366 * 86400), ("max_file_bytes", 1024, 16 << 30), ("max_total_bytes", 1024, 16 << 30),
          ("min_free_mb", 0, 1 << 30))


def bundle_sha256(path):
    """sha256 of the bundle at ``path``, opened without following a link."""
    digest = hashlib.sha256()
    with os.fdopen(safefile.open_read(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path, incident_id):
    """The manifest inside the existing bundle ``path`` (opened without following a link)."""
    with os.fdopen(safefile.open_read(path), "rb") as handle:
        with tarfile.open(fileobj=handle, mode="r:gz") as archive:
            member = archive.extractfile("%s/manifest.json" % incident_id)
            if member is None:
                raise ValueError("its manifest.json is not a file")
            return json.load(member)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="str", default=[]),
            journald_units=dict(type="list", elements="str", default=[]),
            since=dict(type="int", default=86400),
            diagnostics=dict(type="raw"),
            dest=dict(type="path", default="/var/tmp/agentops-bundles"),
            incident_id=dict(type="str", required=True),
            max_file_bytes=dict(type="int", default=52428800),
            max_total_bytes=dict(type="int", default=209715200),
            min_free_mb=dict(type="int", default=512),
            extra_patterns=dict(type="list", elements="str", default=[]),
            redaction_key=dict(type="str", no_log=True),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        if not ID.match(p["incident_id"]) or p["incident_id"] in (".", ".."):
            raise ValueError("incident_id %r may only hold letters, digits, '.', '_' and '-'." % p["incident_id"])
        for name, low, high in LIMITS:
            if not low <= p[name] <= high:
                raise ValueError("%s must be between %d and %d, got %d." % (name, low, high, p[name]))
        if not p["dest"] or not os.path.isabs(p["dest"]) or os.path.dirname(p["dest"]) == p["dest"]:
            raise ValueError("dest must be an absolute path below /, got %r." % p["dest"])
        redactor = Redactor(p["extra_patterns"], key=p["redaction_key"])
        name = "%s.tar.gz" % p["incident_id"]
        bundle = os.path.join(p["dest"], name)
        # Never through a link, never another user's: refused in check mode too.
        safefile.check(p["dest"], directory=True)
        existing = safefile.check(bundle)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot inspect %s: %s." % (p["dest"], exc.strerror or exc))
    if existing and not p["force"]:
        try:
            manifest = read_manifest(bundle, p["incident_id"])
            digest = bundle_sha256(bundle)
        except safefile.UnsafePathError as exc:
            module.fail_json(msg=str(exc))
        except (OSError, EOFError, ValueError, KeyError, tarfile.TarError) as exc:
            module.fail_json(msg="%s exists but is not a readable bundle of %s (%s); rebuild it with force." % (
                bundle, p["incident_id"], getattr(exc, "strerror", None) or exc))
        module.exit_json(changed=False, bundle=bundle, sha256=digest, manifest=manifest)
    if module.check_mode:
        module.exit_json(changed=True, bundle=bundle, manifest=planned(p))
    try:
        dest_fd = safefile.open_dir(p["dest"])  # created 0700, never a link, ours
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot write bundles under %s: %s." % (p["dest"], exc.strerror or exc))
    workdir = None
    try:
        stat = os.fstatvfs(dest_fd)
        free_mb = stat.f_bavail * stat.f_frsize / 1048576.0
        needed_mb = p["max_total_bytes"] / 1048576.0 * 2 + p["min_free_mb"]  # work copy + archive
        if free_mb < needed_mb:
            module.fail_json(msg="Not enough free space in %s for the bundle: %d MB free, %d MB needed (max_total_bytes twice "
                                 "plus min_free_mb); nothing was written." % (p["dest"], free_mb, needed_mb))
        workdir = os.path.join(p["dest"], safefile.make_tempdir(dest_fd, prefix=".bundle-"))
        os.makedirs(os.path.join(workdir, "logs"))
        os.makedirs(os.path.join(workdir, "journal"))
        manifest = Collector(p, redactor, journal_reader(module)).collect(workdir)
        with safefile.atomic_file(dest_fd, name, where=p["dest"]) as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as archive:
                archive.add(workdir, arcname=p["incident_id"], filter=_private)
        digest = bundle_sha256(bundle)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="Cannot build the bundle in %s: %s." % (p["dest"], exc.strerror or exc))
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        os.close(dest_fd)
    module.exit_json(changed=True, bundle=bundle, sha256=digest, manifest=manifest)


def _private(info):
    info.mode = 0o700 if info.isdir() else 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


if __name__ == "__main__":
    main()
