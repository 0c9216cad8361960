# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Files the way every module of this collection writes them: compare first, then replace atomically.

A file is written only when its content or mode differs, through a temporary file in the same
directory that is created 0600 and renamed over the target, so a reader never sees a half-written
file and a secret is never briefly world-readable.
"""

from __future__ import annotations

import os
import stat
import tempfile

from ansible_collections.netboot.talos.plugins.module_utils import vault


def read_bytes(path):
    """Return the file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def file_mode(path):
    """Return the permission bits of an existing file."""
    return stat.S_IMODE(os.stat(path).st_mode)


def write_atomic(path, content, mode):
    """Replace path with content (bytes) and mode in one rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def ensure_file(path, content, mode, check_mode=False):
    """Make path hold content (bytes) with mode.

    Returns (changed, previous content or None). In check mode nothing is touched.
    """
    previous = read_bytes(path)
    if previous == content and file_mode(path) == mode:
        return False, previous
    if not check_mode:
        if previous == content:
            os.chmod(path, mode)
        else:
            write_atomic(path, content, mode)
    return True, previous


def read_secret(path):
    """The plaintext of a secret file (clusters/<name>/...), or None when it does not exist.

    A vault-encrypted file is opened with this process's keyring (vault.configure); without one, or
    when no secret opens it, it is refused (vault.refuse) naming the file, so nothing is ever decided
    on the envelope's bytes.
    """
    return _decrypted(path, read_bytes(path))


def _decrypted(path, raw):
    if not vault.is_encrypted(raw):
        return raw
    keyring = vault.active()
    if keyring is None:
        vault.refuse("%s is vault-encrypted and no vault secret was given: %s" % (path, vault.HOW_TO_PASS))
    try:
        return keyring.decrypt(path, raw)
    except vault.VaultError as exc:
        vault.refuse(str(exc))


def encode_secret(content):
    """What a secret file holds on disk: content encrypted under this process's keyring, or as is."""
    keyring = vault.active()
    return content if keyring is None else keyring.encrypt(content)


def ensure_secret_file(path, content, mode, check_mode=False):
    """ensure_file for a secret file: compared by plaintext, written encrypted when a keyring is active.

    An unchanged encrypted file keeps its bytes (the salt is random: re-encrypting always changes
    them); a clear file is encrypted once a keyring is active (a change), and an encrypted file is
    never replaced without one (read_secret refuses it). Returns (changed, previous plaintext or None).
    """
    raw = read_bytes(path)
    previous = _decrypted(path, raw)
    kept_form = vault.is_encrypted(raw) == (vault.active() is not None)
    if previous == content and kept_form and file_mode(path) == mode:
        return False, previous
    if not check_mode:
        if previous == content and kept_form:
            os.chmod(path, mode)
        else:
            write_atomic(path, encode_secret(content), mode)
    return True, previous


def ensure_directory(path, mode, check_mode=False):
    """Create path (and parents) with mode, or fix the mode of an existing directory. Returns changed."""
    if os.path.isdir(path):
        if file_mode(path) == mode:
            return False
        if not check_mode:
            os.chmod(path, mode)
        return True
    if not check_mode:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
    return True


def text_diff(path, previous, content, hidden=False):
    """An Ansible diff entry for one file; with hidden=True the content itself is never shown."""
    if hidden:
        before = "" if previous is None else "(content hidden: %d bytes)\n" % len(previous)
        after = "(content hidden: %d bytes)\n" % len(content)
        if previous is not None and previous != content:
            after = "(content hidden: %d bytes, changed)\n" % len(content)
    else:
        before = "" if previous is None else previous.decode("utf-8", "replace")
        after = content.decode("utf-8", "replace")
    return {"before_header": path, "after_header": path, "before": before, "after": after}
