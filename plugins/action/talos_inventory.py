# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side half of netboot.talos.talos_inventory: reads every node's variables from hostvars."""

from __future__ import annotations

import functools
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

try:
    from ansible_collections.netboot.talos.plugins.module_utils import inventory
    from ansible_collections.netboot.talos.plugins.module_utils.talos import config, secrets
except ImportError as exc:  # netaddr, PyYAML or cryptography missing on the controller
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("group", "clusters_dir", "trial_render"))
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        if IMPORT_ERROR:
            raise AnsibleError("talos_inventory: the Python library %s is missing on the controller" % IMPORT_ERROR.name) from IMPORT_ERROR
        result = super().run(tmp, task_vars)
        args = self._task.args
        group = args.get("group", "talos")
        clusters_dir = args.get("clusters_dir") or task_vars.get("talos_clusters_dir") or os.path.join(os.getcwd(), "clusters")
        groups = task_vars.get("groups", {})
        hostvars = task_vars["hostvars"]

        hosts, problems = {}, []
        for host in groups.get(group, []):
            variables = hostvars[host]
            hosts[host] = {}
            for name in variables:
                if not name.startswith("talos_"):
                    continue
                if name not in inventory.NODE_VARIABLES:
                    hosts[host][name] = None  # only its name is checked: roles template their own later
                    continue
                try:
                    hosts[host][name] = variables[name]
                except AnsibleError as exc:
                    problems.append("%s: %s: cannot be templated: %s" % (host, name, to_native(exc.message)))
        memberships = {host: set() for host in hosts}
        for role_group in inventory.ROLE_GROUPS:
            for host in groups.get(role_group, []):
                if host in memberships:
                    memberships[host].add(role_group)

        render = None
        if args.get("trial_render", True):
            render = functools.partial(config.render, secrets.placeholder_bundle())
        try:
            if problems:
                raise inventory.InventoryError(problems)
            cluster, nodes = inventory.build_nodes(hosts, memberships, clusters_dir, render)
        except inventory.InventoryError as exc:
            result.update(failed=True, msg=str(exc), problems=exc.problems)
            return result
        result.update(changed=False, cluster=cluster, nodes=nodes)
        return result
