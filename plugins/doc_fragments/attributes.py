# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """What the check_mode, diff_mode and idempotent attributes of every module mean.

    A module extends this fragment and states its own C(support) (and C(details)) for each.
    """

    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Runs in check mode, reporting what would change without changing anything.
  diff_mode:
    description: With C(--diff), shows what changed, or what would change in check mode.
  idempotent:
    description: A second run with the same arguments, with nothing else changed in between, reports no change.
"""
