# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""matchbox profiles and groups: documents, validation, writing and pruning, plus the Talos ones.

matchbox reads ``<data>/profiles/<id>.json`` and ``<data>/groups/<id>.json`` on every request and
silently skips what it cannot use (poseidon/matchbox storage and server code): a group with bad
JSON or an unparseable selector MAC, a group whose profile file is missing, and it picks an
arbitrary winner between groups with identical selectors (two default groups included). A node
that falls through like that may boot the wrong thing, so every such case is refused here, all
problems at once, before any file is written.

Files written by this collection carry the top-level key ``"netboot.talos": {"managed": true}``
(matchbox ignores unknown keys); prune removes only files that carry it.

Standard library only: this file runs on the boot server inside modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from urllib.parse import urlsplit

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import factory

MARKER_KEY = "netboot.talos"
MARKER = {"managed": True}
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PROFILE_KEYS = ("id", "name", "boot", "ignition_id", "generic_id", "cloud_id")
GROUP_KEYS = ("id", "name", "profile", "selector", "metadata")
TALOS_ASSETS_PATH = "/assets/talos"
CONFIGS_PATH = TALOS_ASSETS_PATH + "/configs"


class MatchboxError(ValueError):
    """Input matchbox would skip or mis-select; ``problems`` lists every one of them."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# ---------------------------------------------------------------------------------------------
# MACs and ids


def normalize_mac(value):
    """Lower-case colon form of a MAC in any notation Go's net.ParseMAC accepts, or ValueError.

    Accepted as matchbox accepts them: 6, 8 or 20 octets written ``xx:xx:..``, ``xx-xx-..`` or
    ``xxxx.xxxx.xxxx``, in any letter case.
    """
    if not isinstance(value, str):
        raise ValueError("%r is not a MAC address" % (value,))
    text = value.strip()
    digits = None
    for separator, width in ((":", 2), ("-", 2), (".", 4)):
        parts = text.split(separator)
        if len(parts) > 1 and all(len(p) == width and re.match(r"^[0-9A-Fa-f]+$", p) for p in parts):
            digits = "".join(parts).lower()
            break
    if digits is None or len(digits) // 2 not in (6, 8, 20):
        raise ValueError("%r is not a MAC address (expected e.g. 52:54:00:89:d8:10)" % (value,))
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def mac_file_name(mac):
    """A node's config file name: its MAC in the lower-case hyphen form of iPXE's ${mac:hexhyp}."""
    return normalize_mac(mac).replace(":", "-") + ".yaml"


def check_id(value, field):
    """An id that is also a safe file name: letters, digits, '.', '_', '-'; no path, no '..'."""
    if not isinstance(value, str) or not ID_PATTERN.match(value) or ".." in value or value.endswith(".json"):
        raise ValueError(
            "%s: %r is not a valid id (letters, digits, '.', '_' and '-', starting with a letter or digit, "
            "no '..', no .json suffix; it is also the file name)" % (field, value)
        )
    return value


# ---------------------------------------------------------------------------------------------
# Documents


def profile_document(entry, field):
    """The JSON document of one profile entry (dict), or ValueError naming the field."""
    _known_keys(entry, PROFILE_KEYS, field)
    document = {"id": check_id(entry.get("id"), field + ".id")}
    if entry.get("name"):
        document["name"] = _string(entry["name"], field + ".name")
    boot = entry.get("boot")
    if not isinstance(boot, dict):
        raise ValueError("%s.boot: a profile needs boot.kernel (matchbox answers 404 for a profile without boot)" % field)
    _known_keys(boot, ("kernel", "initrd", "args"), field + ".boot")
    document["boot"] = {
        "kernel": _string(boot.get("kernel"), field + ".boot.kernel"),
        "initrd": _strings(boot.get("initrd") or [], field + ".boot.initrd"),
        "args": _strings(boot.get("args") or [], field + ".boot.args"),
    }
    for key in ("ignition_id", "generic_id", "cloud_id"):
        if entry.get(key):
            document[key] = _file_reference(entry[key], "%s.%s" % (field, key))
    document[MARKER_KEY] = MARKER
    return document


def group_document(entry, field):
    """The JSON document of one group entry (dict), with its selector normalised as matchbox does."""
    _known_keys(entry, GROUP_KEYS, field)
    document = {"id": check_id(entry.get("id"), field + ".id")}
    if entry.get("name"):
        document["name"] = _string(entry["name"], field + ".name")
    document["profile"] = check_id(entry.get("profile"), field + ".profile")
    selector = normalize_selector(entry.get("selector") or {}, field + ".selector")
    if selector:
        document["selector"] = selector
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("%s.metadata: must be a mapping, got %r" % (field, metadata))
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError("%s.metadata: not representable as JSON: %s" % (field, exc))
    if metadata:
        document["metadata"] = metadata
    document[MARKER_KEY] = MARKER
    return document


def normalize_selector(selector, field):
    """Lower-case keys (iPXE sends lower-case labels), MACs as matchbox normalises them, lower-case UUIDs."""
    if not isinstance(selector, dict):
        raise ValueError("%s: must be a mapping of label to value, got %r" % (field, selector))
    result = {}
    for key, value in selector.items():
        if not isinstance(key, str) or not key or not isinstance(value, str) or not value:
            raise ValueError("%s: %r: %r: labels and values must be non-empty strings" % (field, key, value))
        name = key.lower()
        if name in result:
            raise ValueError("%s: label %r is given twice (labels are lower-cased)" % (field, name))
        if name == "mac":
            try:
                value = normalize_mac(value)
            except ValueError as exc:
                raise ValueError("%s.mac: %s; matchbox would skip this group" % (field, exc))
        elif name == "uuid":
            value = value.lower()
        result[name] = value
    return result


def dumps(document):
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def is_ours(document):
    return isinstance(document, dict) and document.get(MARKER_KEY) == MARKER


# ---------------------------------------------------------------------------------------------
# Plans: what would be written and removed, after every check


class Plan:
    def __init__(self, directory):
        self.directory = directory
        self.writes = []  # (path, content)
        self.removals = []  # path
        self.warnings = []
        self.ids = []


def plan_profiles(data_dir, entries, prune=False):
    """Plan writing these profiles into <data_dir>/profiles; MatchboxError lists every problem."""
    plan = Plan(os.path.join(data_dir, "profiles"))
    problems = []
    documents = _documents(entries, "profiles", profile_document, problems)
    existing = _read_directory(plan.directory)
    for stem, (document, error) in sorted(existing.items()):
        if stem in documents:
            continue
        if error is None and is_ours(document) and prune:
            plan.removals.append(_path(plan.directory, stem))
        elif error is not None:
            plan.warnings.append("profiles/%s: %s; matchbox answers 404 for groups that use it" % (stem, error))
    _finish(plan, documents, problems)
    return plan


def plan_groups(data_dir, entries, prune=False, check_mode=False, pending_profiles=()):
    """Plan writing these groups into <data_dir>/groups; MatchboxError lists every problem.

    pending_profiles: ids of profiles planned in the same run (they count as existing).
    """
    plan = Plan(os.path.join(data_dir, "groups"))
    problems = []
    documents = _documents(entries, "groups", group_document, problems)
    selectors = {}
    for stem, document in documents.items():
        selectors.setdefault(_selector_key(document), []).append("groups[%s]" % stem)
        if document["profile"] not in pending_profiles:
            _check_profile_reference(data_dir, stem, document["profile"], problems, plan.warnings, check_mode)
    for stem, (document, error) in sorted(_read_directory(plan.directory).items()):
        if stem in documents:
            continue
        where = "groups/%s.json" % stem
        if error is not None:
            problems.append("%s: %s; matchbox skips this group on every request, so its machines fall through "
                            "to another group: fix or remove the file" % (where, error))
            continue
        if is_ours(document) and prune:
            plan.removals.append(_path(plan.directory, stem))
            continue
        try:
            selector = normalize_selector(document.get("selector") or {}, where + " selector")
        except ValueError as exc:
            problems.append("%s; fix or remove the file" % exc)
            continue
        selectors.setdefault(_selector_key({"selector": selector}), []).append(where)
    for key, owners in sorted(selectors.items()):
        if len(owners) < 2:
            continue
        if not key:
            problems.append("%s are all default groups (no selector): matchbox picks one of them unpredictably; "
                            "keep at most one" % " and ".join(owners))
        else:
            problems.append("%s have the same selector %s: matchbox picks one of them unpredictably"
                            % (" and ".join(owners), dict(key)))
    _finish(plan, documents, problems)
    return plan


def apply(plan, check_mode=False, diff=False):
    """Carry out a plan. Returns (changed, result dict for the module, list of diffs)."""
    written, removed, diffs = [], [], []
    if not check_mode and plan.writes and not os.path.isdir(plan.directory):
        os.makedirs(plan.directory, mode=DIRECTORY_MODE, exist_ok=True)
    for path, content in plan.writes:
        changed, previous = files.ensure_file(path, content, FILE_MODE, check_mode)
        if changed:
            written.append(path)
            if diff:
                diffs.append(files.text_diff(path, previous, content))
    for path in plan.removals:
        previous = files.read_bytes(path)
        if not check_mode:
            os.unlink(path)
        removed.append(path)
        if diff:
            entry = files.text_diff(path, previous, b"")
            entry["after_header"] = "%s (removed)" % path
            diffs.append(entry)
    changed = bool(written or removed)
    return changed, {"ids": plan.ids, "written": written, "removed": removed}, diffs


def run_module(module, kind, make_plan):
    """The body of the matchbox_profile and matchbox_group modules: plan, refuse or apply, report."""
    try:
        plan = make_plan()
    except MatchboxError as exc:
        module.fail_json(msg="matchbox %s refused, nothing was written: %s" % (kind, exc), problems=exc.problems)
    for warning in plan.warnings:
        module.warn(warning)
    changed, result, diffs = apply(plan, module.check_mode, module._diff)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(changed=changed, **result)


def _documents(entries, kind, build, problems):
    if not isinstance(entries, list):
        raise MatchboxError(["%s must be a list" % kind])
    documents = {}
    for index, entry in enumerate(entries):
        field = "%s[%s]" % (kind, entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else index)
        if not isinstance(entry, dict):
            problems.append("%s: must be a mapping" % field)
            continue
        try:
            document = build(entry, field)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if document["id"] in documents:
            problems.append("%s: id %r is given twice" % (field, document["id"]))
            continue
        documents[document["id"]] = document
    return documents


def _finish(plan, documents, problems):
    if problems:
        raise MatchboxError(problems)
    plan.ids = list(documents)
    plan.writes = [(_path(plan.directory, stem), dumps(document)) for stem, document in documents.items()]


def _check_profile_reference(data_dir, group, profile, problems, warnings, check_mode):
    path = _path(os.path.join(data_dir, "profiles"), profile)
    document, error = _read_document(path)
    where = "groups[%s].profile" % group
    if error == "missing" and check_mode:
        warnings.append("%s: profile %r does not exist yet (check mode: assuming an earlier task creates it)" % (where, profile))
    elif error == "missing":
        problems.append("%s: profile %r does not exist (profiles/%s.json); matchbox would answer 404 for these machines"
                        % (where, profile, profile))
    elif error is not None:
        problems.append("%s: profiles/%s.json: %s; matchbox would answer 404 for these machines" % (where, profile, error))


def _read_directory(directory):
    """{file stem: (document, error)} for every *.json file in a matchbox data directory."""
    result = {}
    if not os.path.isdir(directory):
        return result
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.startswith(".") or not name.endswith(".json") or not os.path.isfile(path):
            continue
        result[name[: -len(".json")]] = _read_document(path)
    return result


def _read_document(path):
    """(document, None), or (None, reason) when matchbox could not use the file."""
    content = files.read_bytes(path)
    if content is None:
        return None, "missing"
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, "not valid JSON (%s)" % exc
    if not isinstance(document, dict):
        return None, "not a JSON object"
    stem = os.path.basename(path)[: -len(".json")]
    if document.get("id") not in (None, stem):
        return None, "its id %r differs from its file name %r" % (document.get("id"), stem)
    return document, None


def load_problem(kind, content):
    """Why matchbox itself would skip this group or profile file (ParseGroup / ParseProfile), or None.

    matchbox logs such a file at info level and goes on without it, so a machine it was meant for
    simply gets no match.
    """
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return "not valid JSON (%s)" % exc
    if not isinstance(document, dict):
        return "not a JSON object"
    fields = {key.lower(): value for key, value in document.items()}
    if kind == "profile":
        return _profile_load_problem(fields)
    selector = fields.get("selector") or {}
    if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
        return "selector must map names to strings"
    for key, value in selector.items():
        if key.lower() == "mac":
            try:
                normalize_mac(value)
            except ValueError:
                return "selector %s: %r is not a MAC address" % (key, value)
    if not isinstance(fields.get("metadata") or {}, dict):
        return "metadata must be a JSON object"
    return None


def _profile_load_problem(fields):
    if not isinstance(fields.get("id"), str) or not fields["id"]:
        return "no id (matchbox requires one)"
    boot = fields.get("boot")
    if boot is None:
        return None
    if not isinstance(boot, dict):
        return "boot must be a JSON object"
    boot = {key.lower(): value for key, value in boot.items()}
    if not isinstance(boot.get("kernel", ""), str):
        return "boot.kernel must be a string"
    for name in ("initrd", "args"):
        if not isinstance(boot.get(name) or [], list) or not all(isinstance(v, str) for v in boot.get(name) or []):
            return "boot.%s must be a list of strings" % name
    return None


def _selector_key(document):
    return tuple(sorted((document.get("selector") or {}).items()))


def _path(directory, stem):
    return os.path.join(directory, stem + ".json")


def _known_keys(entry, known, field):
    if not isinstance(entry, dict):
        raise ValueError("%s: must be a mapping" % field)
    unknown = sorted(k for k, v in entry.items() if k not in known and v is not None)
    if unknown:
        raise ValueError("%s: unknown key %s (known: %s); matchbox would silently ignore it"
                         % (field, ", ".join(map(str, unknown)), ", ".join(known)))


def _string(value, field):
    if not isinstance(value, str) or not value:
        raise ValueError("%s: must be a non-empty string, got %r" % (field, value))
    return value


def _strings(value, field):
    if not isinstance(value, list):
        raise ValueError("%s: must be a list of strings, got %r" % (field, value))
    return [_string(item, "%s[%d]" % (field, index)) for index, item in enumerate(value)]


def _file_reference(value, field):
    value = _string(value, field)
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError("%s: %r must be a file name inside the data directory" % (field, value))
    return value


# ---------------------------------------------------------------------------------------------
# Talos: what to publish for a validated node list


def talos_profile_id(node):
    """One profile per (role, Talos version, arch, schematic, extra kernel args)."""
    profile = "talos-%s-%s-%s" % (node["role"], factory.tag(node["talos_version"]), node["arch"])
    if node["schematic"] != factory.VANILLA_SCHEMATIC:
        profile += "-" + node["schematic"][:8]
    if node.get("pxe_kernel_args"):
        profile += "-args" + hashlib.sha256(" ".join(node["pxe_kernel_args"]).encode("utf-8")).hexdigest()[:8]
    return profile


def talos_entries(nodes, matchbox_url, http_delivery=True, halt_if_installed=False):
    """Profiles, groups and config files (MAC-named) for a validated node list.

    Each node's kernel line is Image Factory's command line for its version and arch, with
    ``initrd=`` (UEFI iPXE needs it), ``talos.config=<matchbox>/assets/talos/configs/${mac:hexhyp}.yaml``
    (iPXE expands the MAC, so one profile serves every node of its kind), the optional
    ``talos.halt_if_installed=1`` and the node's own kernel arguments, merged by the imager's rules.
    """
    base = _matchbox_url(matchbox_url)
    profiles, groups, configs, problems = {}, [], [], []
    for index, node in enumerate(nodes or []):
        where = "nodes[%s]" % (node.get("name", index) if isinstance(node, dict) else index)
        try:
            profile_id, profile = _talos_profile(node, base, http_delivery, halt_if_installed)
            mac = normalize_mac(node["mac"])
        except (KeyError, TypeError) as exc:
            problems.append("%s: missing %s" % (where, exc))
            continue
        except ValueError as exc:
            problems.append("%s: %s" % (where, exc))
            continue
        profiles.setdefault(profile_id, profile)
        groups.append({
            "id": node["name"],
            "name": node["name"],
            "profile": profile_id,
            "selector": {"mac": mac},
            "metadata": {
                "role": node["role"],
                "ip": node.get("ip"),
                "talos_version": node["talos_version"],
                "arch": node["arch"],
                "schematic": node["schematic"],
            },
        })
        if http_delivery:
            configs.append({"name": node["name"], "ip": node.get("ip"), "file": mac_file_name(mac)})
    if problems:
        raise MatchboxError(problems)
    return {"profiles": list(profiles.values()), "groups": groups, "configs": configs}


def _talos_profile(node, base, http_delivery, halt_if_installed):
    version, arch, schematic = factory.tag(node["talos_version"]), node["arch"], node["schematic"]
    factory.check_schematic(schematic)
    ours = []
    if http_delivery:
        ours.append("talos.config=%s%s/${mac:hexhyp}.yaml" % (base, CONFIGS_PATH))
    if halt_if_installed:
        ours.append("talos.halt_if_installed=1")
    directory = "%s/%s/%s" % (TALOS_ASSETS_PATH, version, schematic)
    profile_id = check_id(talos_profile_id(node), "profile id")
    name = "Talos %s %s %s" % (version, node["role"], arch)
    if schematic != factory.VANILLA_SCHEMATIC:
        name += " schematic %s" % schematic[:8]
    return profile_id, {
        "id": profile_id,
        "name": name,
        "boot": {
            "kernel": "%s/%s" % (directory, factory.kernel_file(arch)),
            "initrd": ["%s/%s" % (directory, factory.initramfs_file(arch))],
            "args": ["initrd=%s" % factory.initramfs_file(arch)]
            + factory.kernel_args(version, arch, ours + list(node.get("pxe_kernel_args") or [])),
        },
    }


def _matchbox_url(value):
    try:
        url = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise MatchboxError(["matchbox_url: %r is not an http(s) URL like http://10.0.20.50:8080" % (value,)])
    return value.rstrip("/")
