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
