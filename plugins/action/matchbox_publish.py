# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side half of netboot.talos.matchbox_publish: reads each node's rendered config, then runs the module once."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.plugin_utils import vault as vault_layer

ARGS = frozenset(("data_dir", "profiles", "groups", "configs", "configs_dir", "withheld", "configs_group", "prune"))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = ARGS
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        with vault_layer.in_process(self, task_vars):
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        configs, problems = [], []
        directory = args.pop("configs_dir", None)
        for entry in args.get("configs") or []:
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("file"):
                problems.append("configs: each entry needs name and file, got %r" % (entry,))
                continue
            if not directory:
                problems.append("configs_dir: required with configs")
                break
            path = os.path.join(directory, "%s.yaml" % entry["name"])
            try:  # served to the nodes in clear (they cannot decrypt): read through the vault
                content = files.read_secret(path)
                if content is None:
                    raise FileNotFoundError(2, "No such file or directory", path)
                configs.append({"name": entry["name"], "file": entry["file"], "content": content.decode("utf-8")})
            except OSError as exc:
                problems.append("configs[%s]: cannot read its rendered config %s: %s" % (entry["name"], path, exc.strerror))
        if problems:
            result.update(failed=True, msg="matchbox_publish: nothing was written: " + "; ".join(problems), problems=problems)
            return result
        args["configs"] = configs
        result.update(self._execute_module(module_name="netboot.talos.matchbox_publish", module_args=args, task_vars=task_vars))
        result.pop("invocation", None)
        return result
