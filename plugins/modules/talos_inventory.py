# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/talos_inventory.py):
# it needs every host's variables, which only the controller has.

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_inventory
short_description: Validate every Talos node of the inventory and return normalised node specs
version_added: 0.1.0
description:
  - Reads the C(talos_*) variables of every host in group O(group) (host_vars over group_vars) and
    the role of each node from its membership of group C(controlplane) or C(workers).
  - Checks them all at once - MACs (normalised, unique), IPs (valid, unique, inside C(talos_network)),
    hostnames (valid, unique), role, install disk or selector, cluster endpoint (https URL with a port),
    Talos version (1.9 to 1.14), settings that must agree across nodes, and config patches, which are
    applied in a trial render so that a patch Talos would reject fails here, as does a patch that
    changes the cluster's identity (cluster id or secret, a CA, a token, the encryption secret, the
    service-account key), which come from the secrets bundle; a node with others cannot join.
  - Checks what the playbook needs besides the nodes (O(require), O(require_for_withdraw)), in the
    same run, so that a playbook fails at its first task instead of after writing secrets and configs.
  - Validates once per run - with O(reuse), a result that an earlier task of the same
    ansible-playbook run registered is returned again when it checked at least as much.
  - Fails with one line per problem, each naming the host and the variable, before anything is written.
  - Runs on the controller only and changes nothing.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
options:
  group:
    description: Inventory group holding every Talos node.
    type: str
    default: talos
  clusters_dir:
    description:
      - Directory under which each cluster's files live (C(<clusters_dir>/<cluster name>/)).
      - Defaults to C(clusters) in the directory ansible-playbook runs from, like talosctl writes to the current directory.
    type: path
  trial_render:
    description: Render every node with stand-in secrets to catch patches Talos would reject.
    type: bool
    default: true
  require:
    description:
      - What the playbook needs besides valid nodes, checked before anything is written.
      - C(boot_server) - a host in group C(boot_server).
      - C(matchbox_url) - C(talos_matchbox_url) of every boot server is an http(s) URL with a host
        (where the nodes reach matchbox); one line names every boot server with the same problem.
    type: list
    elements: str
    choices: [boot_server, matchbox_url]
    default: []
  require_for_withdraw:
    description:
      - Further requirements that hold only when the inventory withdraws served configs
        (C(talos_config_withdraw) with C(http) delivery), for a playbook that then publishes to the
        boot server. Same choices as O(require).
    type: list
    elements: str
    choices: [boot_server, matchbox_url]
    default: []
  reuse:
    description:
      - Name of a variable that may hold the result of an earlier talos_inventory task of this run
        (site.yml registers C(talos_inventory) at its start). When it validated the same O(group) and
        O(clusters_dir), rendered if O(trial_render) is on, and checked every requirement of this task,
        it is returned as it is (RV(reused)) instead of reading every host again.
      - An empty string validates always.
    type: str
    default: talos_inventory
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only.
"""

EXAMPLES = r"""
- name: Validate the inventory
  netboot.talos.talos_inventory:
  register: talos_inventory

- name: Validate for a playbook that sets up the boot server (reuses the result above)
  netboot.talos.talos_inventory:
    require: [boot_server, matchbox_url]
  register: boot_server_inventory

- name: Show each node's normalised MAC
  ansible.builtin.debug:
    msg: "{{ talos_inventory.nodes | items2dict(key_name='name', value_name='mac') }}"
"""

RETURN = r"""
cluster:
  description: Cluster-wide facts.
  returned: success
  type: dict
  contains:
    name: {description: Cluster name., type: str}
    endpoint: {description: Kubernetes API endpoint URL., type: str}
    dir: {description: "Directory of this cluster's secrets, configs, talosconfig and kubeconfig.", type: str}
    delivery: {description: "How nodes get their config, C(http) or C(api).", type: str}
    withdraw_configs:
      description: Stop serving a node's config once it runs it (C(talos_config_withdraw) with C(http) delivery).
      type: bool
    controlplane_ips: {description: IPs of the control-plane nodes., type: list, elements: str}
    talos_versions: {description: Talos versions in use., type: list, elements: str}
nodes:
  description: One entry per node, sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: Inventory hostname., type: str}
    role: {description: C(controlplane) or C(worker)., type: str}
    mac: {description: MAC in lower-case colon form., type: str}
    ip: {description: Node IP., type: str}
    arch: {description: C(amd64) or C(arm64)., type: str}
    talos_version: {description: Talos version., type: str}
    schematic: {description: Image Factory schematic ID of the node's boot assets and installer., type: str}
    pxe_kernel_args: {description: Extra kernel arguments for the network boot., type: list, elements: str}
    install_image: {description: C(talos_install_image) as set (null when not) - the upgrade's installer then., type: str}
    config: {description: Node spec for M(netboot.talos.talos_machine_config)., type: dict}
checked:
  description: What this result was validated for; O(reuse) compares it with a later task's wishes.
  returned: success
  type: dict
  contains:
    group: {description: O(group)., type: str}
    clusters_dir: {description: O(clusters_dir) as resolved., type: str}
    trial_render: {description: O(trial_render)., type: bool}
    require: {description: "The requirements checked, O(require_for_withdraw) included when it applied.", type: list, elements: str}
reused:
  description: The result is that of an earlier task of the run (O(reuse)); nothing was read again.
  returned: success
  type: bool
problems:
  description: "One line per problem: the host, the variable and what is wrong."
  returned: failure
  type: list
  elements: str
"""
