# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netboot.talos.talos_boot_assets: runs the module on the boot server once per file and prints a
line for each file as it is done, so a long download is not a blind wait."""

from __future__ import annotations

import os
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netboot.talos.plugins.module_utils.talos import boot_assets, factory

display = Display()
MODULE = "netboot.talos.talos_boot_assets"


def size_text(size):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return "%.1f %s" % (size / scale, unit)
    return "%d B" % size


def file_line(key, outcome, seconds, check_mode):
    """What happened to one file, in words."""
    if outcome.get("failed"):
        return "%s   failed: %s" % (key, "; ".join(outcome.get("failures") or [outcome.get("msg", "")]))
    if outcome.get("present"):
        return "%s   already present" % key
    if check_mode:
        return "%s   would be fetched" % key
    size = sum(outcome.get("sizes", {}).values())
    return "%s   %s in %.1f s" % (key, size_text(size), seconds)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        try:
            keys = boot_assets.wanted_keys(args.get("nodes") or [], args.get("base_url") or factory.FACTORY_IMAGE_URL)
        except (ValueError, TypeError, AttributeError):
            keys = None  # the module refuses the nodes with its own message
        if args.get("files") is not None or not keys:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        total = dict(changed=False, fetched=[], present=[], sizes={}, failures=[])
        for key in keys:
            begun = time.monotonic()
            outcome = self._execute_module(module_name=MODULE, module_args=dict(args, files=[key]), task_vars=task_vars)
            if outcome.get("failed") and "failures" not in outcome:
                result.update(outcome)  # bad arguments or a missing interpreter: the same for every file
                return result
            display.display("  " + file_line(key, outcome, time.monotonic() - begun, self._task.check_mode))
            total["changed"] = total["changed"] or bool(outcome.get("changed"))
            for name in ("fetched", "present", "failures"):
                total[name] += outcome.get(name, [])
            total["sizes"].update(outcome.get("sizes", {}))
        result.update(total)
        if total["failures"]:
            dest = os.path.expanduser(args.get("dest") or "")
            result.update(failed=True, msg=boot_assets.failure_message(total["failures"], dest))
        return result
