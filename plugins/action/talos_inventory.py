# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side half of netboot.talos.talos_inventory: reads every node's variables from hostvars."""

from __future__ import annotations

import functools
import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

from ansible_collections.netboot.talos.plugins.module_utils import cluster_vault
from ansible_collections.netboot.talos.plugins.plugin_utils import vault as vault_layer

try:
    from ansible_collections.netboot.talos.plugins.module_utils import inventory, requirements
    from ansible_collections.netboot.talos.plugins.module_utils.talos import identity, secrets
    from ansible_collections.netboot.talos.plugins.module_utils import libraries
    libraries.check()
except ImportError as exc:  # netaddr, PyYAML or cryptography missing on the controller
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("group", "clusters_dir", "trial_render", "require", "require_for_withdraw", "reuse"))
    _supports_check_mode = True

    @staticmethod
    def _names(args, option):
        names = args.get(option) or []
        if isinstance(names, str):
            names = [names]
        unknown = sorted(set(names) - set(requirements.REQUIREMENTS))
        if unknown:
            raise AnsibleError("talos_inventory: %s: unknown %s (known: %s)" % (option, ", ".join(unknown), ", ".join(requirements.REQUIREMENTS)))
        return sorted(set(names))

    @staticmethod
    def _reusable(previous, checked, require_for_withdraw):
        """Whether previous, an earlier talos_inventory result of this run, covers what this task checks."""
        if not isinstance(previous, dict) or previous.get("failed") or not isinstance(previous.get("checked"), dict):
            return False
        done = previous["checked"]
        wanted = set(checked["require"])
        if (previous.get("cluster") or {}).get("withdraw_configs"):
            wanted.update(require_for_withdraw)
        return (
            done.get("group") == checked["group"]
            and done.get("clusters_dir") == checked["clusters_dir"]
            and (done.get("trial_render") or not checked["trial_render"])
            and wanted <= set(done.get("require") or [])
        )

    @staticmethod
    def _requirement_problems(require, groups, hostvars):
        boot_servers = list(groups.get(requirements.BOOT_SERVER_GROUP, []))
        urls, problems = {}, []
        if "matchbox_url" in require:
            for host in boot_servers:
                try:
                    urls[host] = hostvars[host].get(requirements.MATCHBOX_URL, requirements.MISSING)
                except AnsibleError as exc:
                    problems.append("%s: %s: cannot be templated: %s" % (host, requirements.MATCHBOX_URL, to_native(exc.message)))
        return problems + requirements.check(require, boot_servers, urls)

    @staticmethod
    def _boot_servers(hosts, groups, hostvars):
        """({node: its boot server}, problems): every node's boot server (inventory.assign_boot_servers)."""
        servers, problems = {}, []
        for host in groups.get(requirements.BOOT_SERVER_GROUP, []):
            servers[host] = {}
            for name in (inventory.BOOT_SERVER_NETWORKS, "dhcp_network", "dhcp_netmask"):
                try:
                    servers[host][name] = hostvars[host].get(name)
                except AnsibleError as exc:
                    problems.append("%s: %s: cannot be templated: %s" % (host, name, to_native(exc.message)))
        if problems or not servers:
            return {}, problems
        nodes = {host: (variables.get("talos_ip"), variables.get(inventory.BOOT_SERVER_VARIABLE)) for host, variables in hosts.items()}
        try:
            return inventory.assign_boot_servers(nodes, servers), []
        except inventory.InventoryError as exc:
            return {}, exc.problems

    def _vault_problems(self, directory, task_vars):
        """A wrong or missing vault password stops the run here, before anything changes."""
        try:
            return cluster_vault.problems(directory, vault_layer.keyring(self, task_vars))
        except AnsibleActionFail as exc:
            return [str(exc)]

    def run(self, tmp=None, task_vars=None):
        if IMPORT_ERROR:
            raise AnsibleError("talos_inventory: the Python library %s is missing on the controller" % IMPORT_ERROR.name) from IMPORT_ERROR
        result = super().run(tmp, task_vars)
        args = self._task.args
        group = args.get("group", "talos")
        clusters_dir = args.get("clusters_dir") or task_vars.get("talos_clusters_dir") or os.path.join(os.getcwd(), "clusters")
        groups = task_vars.get("groups", {})
        hostvars = task_vars["hostvars"]
        require, require_for_withdraw = self._names(args, "require"), self._names(args, "require_for_withdraw")
        checked = {"group": group, "clusters_dir": clusters_dir, "trial_render": bool(args.get("trial_render", True)), "require": require}
        reuse = args.get("reuse", "talos_inventory")
        if reuse and self._reusable(task_vars.get(reuse), checked, require_for_withdraw):
            previous = task_vars[reuse]
            result.update(changed=False, reused=True, cluster=previous["cluster"], nodes=previous["nodes"], checked=previous["checked"])
            return result

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
            render = functools.partial(identity.render, secrets.placeholder_bundle())
        unmet = self._requirement_problems(require, groups, hostvars)
        try:
            if problems:
                raise inventory.InventoryError(problems)
            cluster, nodes = inventory.build_nodes(hosts, memberships, clusters_dir, render)
        except inventory.InventoryError as exc:
            unmet = exc.problems + unmet
        else:
            if cluster["withdraw_configs"]:
                unmet += self._requirement_problems(sorted(set(require_for_withdraw) - set(require)), groups, hostvars)
            unmet += self._vault_problems(cluster["dir"], task_vars)
        wanted = set(require) | (set(require_for_withdraw) if not unmet and cluster["withdraw_configs"] else set())
        if "boot_server" in wanted:
            assignment, problems = self._boot_servers(hosts, groups, hostvars)
            unmet += problems
            for node in [] if unmet else nodes:
                node["boot_server"] = assignment[node["name"]]
        if unmet:
            exc = inventory.InventoryError(unmet)
            result.update(failed=True, msg=str(exc), problems=exc.problems)
            return result
        if cluster["withdraw_configs"]:
            checked["require"] = sorted(set(require) | set(require_for_withdraw))
        result.update(changed=False, reused=False, cluster=cluster, nodes=nodes, checked=checked)
        return result
