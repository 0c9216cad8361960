# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""A boot server's whole matchbox data in one run: node configs, profiles and groups.

Everything is checked first (matchbox.plan_profiles / plan_groups refuse what matchbox would skip
or mis-select), then written: configs (0640, MAC-named, under assets/talos/configs), then profiles,
then groups, each file atomically and only when it differs; then what is withheld or pruned is
removed. Prune touches only what this collection owns: profile and group files carrying its marker
and ``*.yaml`` files in the configs directory, which is this collection's alone.

Config contents are secrets: they never appear in results or diffs (a diff names the file and its
sha256 only). A config may come as its sha256 alone: when the published file has it, nothing needs
its content (a re-run ships no config); otherwise its file is listed in ``needs_content`` and the
caller runs again with the content (nothing is written until every config has what it needs).

Standard library only: this file runs on the boot server inside the matchbox_publish module.
"""

from __future__ import annotations

import grp
import hashlib
import os

from ansible_collections.netboot.talos.plugins.module_utils import files, matchbox

CONFIG_MODE = 0o640
CONFIG_SUFFIX = ".yaml"


class Publication:
    """What one run writes and removes, decided before anything is touched."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.configs_dir = configs_directory(data_dir)
        self.config_writes = []  # (path, content bytes)
        self.config_removals = []  # path
        self.needs_content = []  # file names given by sha256 whose published copy differs
        self.profiles = None
        self.groups = None
        self.gid = None


def configs_directory(data_dir):
    return os.path.join(data_dir, matchbox.CONFIGS_PATH.lstrip("/"))


def stale_configs(data_dir, keep):
    """Paths of published configs (``*.yaml`` in the configs directory) whose file name is not in keep."""
    directory = configs_directory(data_dir)
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join(directory, name) for name in os.listdir(directory)
        if name.endswith(CONFIG_SUFFIX) and not name.startswith(".") and name not in keep
        and os.path.isfile(os.path.join(directory, name))
    )


def node_removals(data_dir, nodes):
    """Paths of what this collection published for these nodes ({name, mac}): group file (ours only) and config.

    For removing nodes one by one (prune removes everything not in the inventory).
    """
    paths = []
    for node in nodes:
        group = os.path.join(data_dir, "groups", node["name"] + ".json")
        document, error = matchbox._read_document(group)
        if error is None and matchbox.is_ours(document):
            paths.append(group)
        config = os.path.join(configs_directory(data_dir), matchbox.mac_file_name(node["mac"]))
        if os.path.isfile(config):
            paths.append(config)
    return paths


def plan(data_dir, profiles, groups, configs, withheld=(), prune=False, configs_group="", check_mode=False):
    """Plan the whole publication; MatchboxError lists every problem (nothing is written then).

    configs: [{file, content}] (content: str or bytes) or [{file, sha256}] (the content's sha256,
    when the content is not sent); withheld: config file names to remove.
    """
    publication = Publication(data_dir)
    problems = []
    names = set()
    for index, entry in enumerate(configs):
        name = entry.get("file") or ""
        where = "configs[%s]" % (name or index)
        if os.path.basename(name) != name or not name.endswith(CONFIG_SUFFIX) or name.startswith("."):
            problems.append("%s: file must be a plain *.yaml file name" % where)
            continue
        if name in names:
            problems.append("%s: file is given twice" % where)
            continue
        names.add(name)
        path = os.path.join(publication.configs_dir, name)
        content = entry.get("content")
        if isinstance(content, str):
            content = content.encode("utf-8")
        if content is None and entry.get("sha256"):
            content = _published_copy(path, entry["sha256"])
            if content is None:
                publication.needs_content.append(name)
                continue
        if not isinstance(content, bytes):
            problems.append("%s: content is missing" % where)
            continue
        publication.config_writes.append((path, content))
    if configs_group:
        try:
            publication.gid = grp.getgrnam(configs_group).gr_gid
        except KeyError:
            problems.append("configs_group: no group %r on the boot server" % configs_group)
    try:
        publication.profiles = matchbox.plan_profiles(data_dir, profiles, prune)
    except matchbox.MatchboxError as exc:
        problems += exc.problems
    pending = [entry.get("id") for entry in profiles if isinstance(entry, dict)]
    try:
        publication.groups = matchbox.plan_groups(data_dir, groups, prune, check_mode, pending_profiles=pending)
    except matchbox.MatchboxError as exc:
        problems += exc.problems
    if problems:
        raise matchbox.MatchboxError(problems)
    gone = set(withheld) - names
    if prune:
        gone.update(os.path.basename(path) for path in stale_configs(data_dir, names))
    publication.config_removals = [os.path.join(publication.configs_dir, name) for name in sorted(gone)
                                   if os.path.isfile(os.path.join(publication.configs_dir, name))]
    return publication


def _published_copy(path, sha256):
    """The bytes of the published config at path when their sha256 is sha256, else None."""
    previous = files.read_bytes(path)
    return previous if previous is not None and _sha256(previous) == sha256 else None


def apply(publication, check_mode=False, diff=False):
    """Carry out a plan (one without needs_content). Returns (changed, result, diffs)."""
    written, removed, diffs = [], [], []
    if publication.config_writes and files.ensure_directory(publication.configs_dir, matchbox.DIRECTORY_MODE, check_mode):
        written.append(publication.configs_dir)
    for path, content in publication.config_writes:
        if _ensure_config(path, content, publication.gid, check_mode, diffs if diff else None):
            written.append(path)
    for plan in (publication.profiles, publication.groups):
        _unused, result, plan_diffs = matchbox.apply(plan, check_mode, diff)
        written += result["written"]
        removed += result["removed"]
        diffs += plan_diffs
    for path in publication.config_removals:
        if not check_mode:
            os.unlink(path)
        removed.append(path)
        if diff:
            diffs.append({"before_header": path, "after_header": "%s (removed)" % path,
                          "before": "<redacted> sha256:%s\n" % _sha256(files.read_bytes(path) or b""), "after": ""})
    result = {
        "profiles": publication.profiles.ids,
        "groups": publication.groups.ids,
        "configs": [os.path.basename(path) for path, _unused in publication.config_writes],
        "written": written,
        "removed": removed,
    }
    return bool(written or removed), result, diffs


def _ensure_config(path, content, gid, check_mode, diffs):
    """One config file with content, mode 0640 and (gid not None) its group; returns changed."""
    previous = files.read_bytes(path)
    status = os.stat(path) if previous is not None else None
    if previous == content and files.file_mode(path) == CONFIG_MODE and (gid is None or status.st_gid == gid):
        return False
    if not check_mode:
        if previous != content:
            files.write_atomic(path, content, CONFIG_MODE)
        else:
            os.chmod(path, CONFIG_MODE)
        if gid is not None:
            os.chown(path, -1, gid)
    if diffs is not None:
        diffs.append({
            "before_header": path, "after_header": path,
            "before": "" if previous is None else "<redacted> sha256:%s\n" % _sha256(previous),
            "after": "<redacted> sha256:%s\n" % _sha256(content),
        })
    return True


def _sha256(content):
    return hashlib.sha256(content).hexdigest()


def withhold(configs, earlier, checksums, answering, now):
    """The served.json withhold rule: which configs to withhold, and the new record.

    Per node: withheld when it was served before with this checksum and answers now with the
    cluster's credentials (when it was first seen running it is recorded); otherwise served, and a
    new serving period starts unless one is still open (served with this checksum, not yet seen).
    configs: [{name, ip, file}]; earlier: the record so far; checksums: {name: checksum of its
    rendered config}; answering: IPs that answer as up; now: the timestamp to record.
    """
    record, withheld, answering = dict(earlier or {}), [], set(answering or ())
    for entry in configs:
        before = (earlier or {}).get(entry["name"]) or {}
        checksum = (checksums or {}).get(entry["name"], "")
        current = before.get("served_at") is not None and before.get("checksum", "") == checksum
        if current and entry.get("ip") in answering:
            withheld.append(entry)
            record[entry["name"]] = dict(before, seen_running_at=before.get("seen_running_at") or now)
        elif not current or before.get("seen_running_at"):
            record[entry["name"]] = {"checksum": checksum, "served_at": now, "seen_running_at": None}
    return {"withheld": withheld, "record": record}
