# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Which files of clusters/<name>/ hold a secret, and turning them into (or out of) the vault format.

Secret files: secrets.yaml, talosconfig, kubeconfig, nodes/*.yaml (machine configs carry the cluster's
keys and tokens) and backups/etcd-*.db. staged.json stays clear: it holds only SHA-256 digests.
"""

from __future__ import annotations

import fnmatch
import os

from ansible_collections.netboot.talos.plugins.module_utils import files, vault

SECRET_FILES = ("secrets.yaml", "talosconfig", "kubeconfig", "nodes/*.yaml", "backups/etcd-*.db")


def secret_files(directory):
    """The secret files that exist in a cluster directory, as paths relative to it, sorted."""
    found = []
    for pattern in SECRET_FILES:
        parent, name = os.path.split(pattern)
        where = os.path.join(directory, parent)
        names = os.listdir(where) if os.path.isdir(where) else []
        found += [os.path.join(parent, n) for n in names if fnmatch.fnmatch(n, name) and os.path.isfile(os.path.join(where, n))]
    return sorted(found)


def problems(directory, keyring):
    """Why this run could not read the cluster's files, checked before anything changes: encrypted
    files with no vault secret given, or one file per vault id that no given secret opens."""
    encrypted = {}
    for relative in secret_files(directory):
        path = os.path.join(directory, relative)
        with open(path, "rb") as handle:
            head = handle.read(256)
        if vault.is_encrypted(head):
            encrypted.setdefault(vault.envelope_id(head), path)
    if not encrypted:
        return []
    if keyring is None:
        return ["%s: vault-encrypted files (%s) and no vault secret given: %s"
                % (directory, ", ".join(sorted(encrypted.values())), vault.HOW_TO_PASS)]
    found = []
    for path in encrypted.values():
        try:
            keyring.decrypt(path, files.read_bytes(path))
        except vault.VaultError as exc:
            found.append(str(exc))
    return found


def convert(directory, keyring, encrypt, check_mode=False):
    """Encrypt (or decrypt) every secret file of directory in place; returns the relative paths changed.

    Each new content is checked before it replaces the file (the encrypted text must decrypt to the
    original bytes), written atomically with the file's own mode; a file already in the wanted form
    is left byte for byte.
    """
    changed = []
    for relative in secret_files(directory):
        path = os.path.join(directory, relative)
        raw = files.read_bytes(path)
        if vault.is_encrypted(raw) == encrypt:
            continue
        if encrypt:
            content = keyring.encrypt(raw)
            if keyring.decrypt(path, content) != raw:
                raise vault.VaultError("%s: its encrypted text does not decrypt to the original; nothing written" % path)
        else:
            content = keyring.decrypt(path, raw)
        if not check_mode:
            files.write_atomic(path, content, files.file_mode(path))
        changed.append(relative)
    return changed
