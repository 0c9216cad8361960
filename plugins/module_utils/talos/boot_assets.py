# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos boot assets (kernel, initramfs) on the boot server: checked by size, magic and sha256, fetched atomically.

Standard library only: this runs on the boot server inside the talos_boot_assets module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

from ansible_collections.netboot.talos.plugins.module_utils.talos import factory

CHUNK = 1024 * 1024
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
# (offset, bytes) any of which marks a valid file of that kind.
KERNEL_MAGIC = {"amd64": [(0x202, b"HdrS")], "arm64": [(0x38, b"ARMd")]}
INITRAMFS_MAGIC = [(0, b"\xfd7zXZ\x00"), (0, b"\x28\xb5\x2f\xfd"), (0, b"\x1f\x8b"), (0, b"070701"), (0, b"070702")]


def problem_with(path, magic, sha256=None):
    """Why the file at path is not a valid asset, or None when it is."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(0x240)
    except FileNotFoundError:
        return "missing"
    if size == 0:
        return "empty"
    if not any(head[offset:offset + len(signature)] == signature for offset, signature in magic):
        return "not a %s (wrong magic bytes)" % describe(magic)
    shortfall = truncation(path, head, size)
    if shortfall:
        return shortfall
    if sha256 and file_sha256(path) != sha256.lower():
        return "sha256 differs from the checksum given"
    return None


def truncation(path, head, size):
    """Why the file ends early by its own header or trailer (x86 bzImage, xz), or None.

    A bzImage states its length: (setup sectors + 1) * 512 bytes plus syssize 16-byte paragraphs.
    An xz stream ends with the footer magic "YZ".
    """
    if head[0x202:0x206] == b"HdrS" and len(head) >= 0x1F8:
        setup_sectors = head[0x1F1] or 4
        stated = (setup_sectors + 1) * 512 + int.from_bytes(head[0x1F4:0x1F8], "little") * 16
        if size < stated:
            return "truncated: %d bytes, its header says at least %d" % (size, stated)
    if head.startswith(b"\xfd7zXZ\x00"):
        with open(path, "rb") as handle:
            handle.seek(-2, os.SEEK_END)
            if handle.read(2) != b"YZ":
                return "truncated: the xz stream has no end"
    return None


def describe(magic):
    return "Linux kernel image" if magic in KERNEL_MAGIC.values() else "compressed initramfs"


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(source, path, magic, sha256, timeout):
    """Copy source (URL or local file) beside path, verify it, then rename it over path."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as target:
            if "://" in source:
                with open_url(source, timeout=timeout) as response:
                    shutil.copyfileobj(response, target, CHUNK)
            else:
                with open(source, "rb") as handle:
                    shutil.copyfileobj(handle, target, CHUNK)
        problem = problem_with(temporary, magic, sha256)
        if problem:
            raise ValueError(problem)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def wanted_files(nodes, base_url):
    """[(version, schematic, file name, magic, URL)] for each distinct (version, arch, schematic); ValueError names the node."""
    wanted, seen, problems = [], set(), []
    for index, node in enumerate(nodes):
        where = "nodes[%s]" % node.get("name", index)
        try:
            version = factory.tag(node.get("talos_version"))
            arch = factory.check_arch(node.get("arch"), where + ".arch")
            schematic = factory.check_schematic(node.get("schematic"), where + ".schematic")
        except ValueError as exc:
            problems.append(str(exc) if str(exc).startswith(where) else "%s: %s" % (where, exc))
            continue
        if (version, arch, schematic) in seen:
            continue
        seen.add((version, arch, schematic))
        for name in factory.asset_files(arch):
            magic = KERNEL_MAGIC[arch] if name == factory.kernel_file(arch) else INITRAMFS_MAGIC
            wanted.append((version, schematic, name, magic, factory.asset_url(schematic, version, name, base_url)))
    if problems:
        raise ValueError("; ".join(problems))
    return wanted


def relative_path(version, schematic, name):
    """A file's key under dest, as checksums and the files option name it."""
    return "%s/%s/%s" % (version, schematic, name)


def wanted_keys(nodes, base_url):
    """The keys (relative_path) of every file the nodes need, in order; ValueError names the node."""
    return [relative_path(version, schematic, name) for version, schematic, name, _magic, _url in wanted_files(nodes, base_url)]


def failure_message(failures, dest):
    """The task's message when files could not be provided: each of them and how to provide them."""
    return ("Could not provide %d Talos boot file(s):\n%s\nMake them reachable at talos_assets_base_url "
            "(Image Factory's layout <base>/<schematic>/<version>/<file>), or put them on the boot server under "
            "talos_assets_local_dir/<schematic>/<version>/<file>, or copy them to %s/<version>/<schematic>/ yourself."
            % (len(failures), "\n".join("- " + line for line in failures), dest))


def provide(dest, nodes, base_url, local_dir=None, checksums=None, timeout=60, check_mode=False, only=None):
    """Make every file the nodes need (or the keys in only of them) valid under dest.
    Returns (fetched, present, failures)."""
    fetched, present, failures = [], [], []
    for version, schematic, name, magic, url in wanted_files(nodes, base_url):
        relative = relative_path(version, schematic, name)
        if only is not None and relative not in only:
            continue
        path = os.path.join(dest, relative)
        sha256 = (checksums or {}).get(relative)
        source = os.path.join(local_dir, schematic, version, name) if local_dir else url
        if local_dir and not sha256 and os.path.isfile(source):
            # The local file is the reference: a served copy that differs from it is replaced.
            sha256 = file_sha256(source)
        if problem_with(path, magic, sha256) is None:
            present.append(path)
            continue
        if check_mode:
            fetched.append(path)
            continue
        try:
            os.makedirs(os.path.dirname(path), mode=DIRECTORY_MODE, exist_ok=True)
            fetch(source, path, magic, sha256, timeout)
            fetched.append(path)
        except (OSError, ValueError, urllib.error.URLError, UrlsConnectionError) as exc:
            failures.append("%s from %s: %s" % (relative, source, getattr(exc, "reason", None) or exc))
    return fetched, present, failures
