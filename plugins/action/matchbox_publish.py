# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side half of netboot.talos.matchbox_publish: reads each node's rendered config, runs the module with their
sha256, and once more with the contents the boot server lacks (none on a re-run that changes nothing)."""

from __future__ import annotations

import hashlib
import json
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
        configs, contents, problems = self._read_configs(args.pop("configs_dir", None), args.get("configs") or [])
        if problems:
            result.update(failed=True, msg="matchbox_publish: nothing was written: " + "; ".join(problems), problems=problems)
            return result
        # First only the sha256 of each config: the boot server names the ones it lacks, sent in a second run.
        args["configs"] = configs
        outcome = self._execute_module(module_name="netboot.talos.matchbox_publish", module_args=args, task_vars=task_vars)
        if outcome.get("needs_content") and not outcome.get("failed"):
            args["contents"] = json.dumps({name: contents[name] for name in outcome["needs_content"] if name in contents})
            outcome = self._execute_module(module_name="netboot.talos.matchbox_publish", module_args=args, task_vars=task_vars)
            if outcome.get("needs_content") and not outcome.get("failed"):
                outcome.update(failed=True, msg="matchbox_publish: the published configs changed during the run, "
                                                "nothing was written: %s" % ", ".join(outcome["needs_content"]))
        result.update(outcome)
        result.pop("invocation", None)
        result.pop("needs_content", None)
        return result

    @staticmethod
    def _read_configs(directory, entries):
        """([{name, file, sha256}], {file: text}, problems) of the rendered configs under directory."""
        configs, contents, problems = [], {}, []
        for entry in entries:
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
            except OSError as exc:
                problems.append("configs[%s]: cannot read its rendered config %s: %s" % (entry["name"], path, exc.strerror))
                continue
            configs.append({"name": entry["name"], "file": entry["file"], "sha256": hashlib.sha256(content).hexdigest()})
            contents[entry["file"]] = content.decode("utf-8")
        return configs, contents, problems
