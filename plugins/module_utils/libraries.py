# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Third-party libraries of module_utils, imported so that importing module_utils itself never fails.

A module_utils file imports PyYAML, netaddr or cryptography in try/except and hands the ImportError
to missing(). A module or action plugin calls check() (or check("yaml", ...) for the libraries it
needs) right after its own imports, inside the try whose `except ImportError` reports the library
through missing_required_lib, exactly as when the import itself failed.
"""

from __future__ import annotations

_MISSING = {}


def missing(exc):
    """Remember that a library could not be imported (by its top-level name, e.g. cryptography)."""
    _MISSING.setdefault((exc.name or "").split(".")[0], exc)


def check(*names):
    """Raise the ImportError of the first missing library among names (all of them when none given)."""
    for name, exc in _MISSING.items():
        if not names or name in names:
            raise exc
