#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_machine_config
short_description: Render Talos machine configs for many nodes, natively (no talosctl)
version_added: 0.1.0
description:
  - Renders one Talos machine config per node spec, as C(talosctl gen config) would for the node's
    Talos version contract (1.9 to 1.14), applies the node's patches with Talos's patch rules, and
    writes C(<dest>/<name>.yaml) (mode 0600; O(dest) is created 0700) only when the content differs.
  - Every node spec is validated and rendered first; any problem fails the task listing all of them
    as C(nodes[<name>].<key>), and nothing is written.
  - Configs hold the cluster's secrets; they are never returned. The diff is redacted (keys, tokens,
    ids and secrets replaced by C(<redacted>)).
  - 1.12 and newer render static networking as LinkConfig, LinkAliasConfig (for C(device_selector) in O(nodes[].network)),
    Layer2VIPConfig, DHCPv4Config and ResolverConfig (nameservers) documents; 1.11 and older use
    C(machine.network). 1.14 does not take O(nodes[].install_extra_kernel_args) from the machine config
    (as talosctl); put them in the Image Factory schematic.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.vault
requirements:
  - cryptography
  - PyYAML
author:
  - netboot.talos developers (@netboot-talos)
options:
  secrets:
    description: Path of the cluster's secrets bundle (C(secrets.yaml)).
    type: path
    required: true
  dest:
    description: Directory of the rendered configs.
    type: path
    required: true
  nodes:
    description: Node specs (the output of inventory validation); see the project's node-spec document.
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: Node name; the file is C(<dest>/<name>.yaml)., type: str, required: true}
      role: {description: Machine type., type: str, required: true, choices: [controlplane, worker]}
      talos_version: {description: Talos version such as C(v1.9.4); selects the contract., type: str, required: true}
      cluster_name: {description: Cluster name., type: str, required: true}
      cluster_endpoint: {description: "Kubernetes API endpoint C(https://host:port).", type: str, required: true}
      kubernetes_version: {description: Kubernetes version without C(v); default Talos's default for the version., type: str}
      hostname: {description: Static hostname; none keeps Talos's stable automatic hostname., type: str}
      install_disk: {description: "Install disk; C(/dev/sda) when neither disk nor selector is given, an empty string renders none.", type: str}
      install_disk_selector: {description: Talos install disk selector (exclusive with install_disk)., type: dict}
      install_image: {description: Installer image; omitted when not given., type: str}
      install_extra_kernel_args: {description: Extra kernel arguments of the installed system (before 1.14)., type: list, elements: str}
      network: {description: "Static uplink - interface or device_selector, addresses, routes, nameservers, vip, dhcp.", type: dict}
      cert_sans: {description: Additional certificate SANs., type: list, elements: str}
      allow_scheduling_on_control_planes: {description: Let workloads run on control planes., type: bool}
      dns_domain: {description: Cluster DNS domain (default C(cluster.local))., type: str}
      pod_subnets: {description: Pod networks., type: list, elements: str}
      service_subnets: {description: Service networks., type: list, elements: str}
      local_api_server_port: {description: Local API server port of control planes., type: int}
      sysctls: {description: Kernel parameters., type: dict}
      cni: {description: "CNI: C({name: flannel|custom|none, urls: [...]})", type: dict}
      registry_mirrors: {description: Registry host to a list of mirror endpoint URLs., type: dict}
      node_labels: {description: Kubernetes node labels., type: dict}
      patches: {description: "Talos config patches applied in order (YAML text, mapping, RFC 6902 list or documents).", type: list, elements: raw}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Per changed node the config text before and after, with every secret redacted.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Render every node's machine config
  netboot.talos.talos_machine_config:
    secrets: clusters/lab/secrets.yaml
    dest: clusters/lab/nodes
    nodes:
      - name: kube01
        role: controlplane
        talos_version: v1.9.4
        cluster_name: lab
        cluster_endpoint: https://10.0.50.70:6443
        install_disk: /dev/sda
        network:
          interface: eth0
          addresses: [10.0.50.71/24]
          routes: [{network: 0.0.0.0/0, gateway: 10.0.50.1}]
          vip: 10.0.50.70
"""

RETURN = r"""
rendered:
  description: Names of all nodes rendered.
  returned: success
  type: list
  elements: str
changed_nodes:
  description: Names of the nodes whose config file was written (or would be, in check mode).
  returned: success
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible_collections.netboot.talos.plugins.module_utils import vault
    from ansible_collections.netboot.talos.plugins.module_utils import libraries
    from ansible_collections.netboot.talos.plugins.module_utils.talos import config
    libraries.check()
except ImportError as exc:  # PyYAML or cryptography missing where the module runs
    MISSING_LIBRARY, IMPORT_TRACEBACK = exc.name, traceback.format_exc()
else:
    MISSING_LIBRARY = IMPORT_TRACEBACK = None

ARGUMENT_SPEC = dict(
    secrets=dict(type="path", required=True, no_log=False),
    dest=dict(type="path", required=True),
    nodes=dict(type="list", elements="dict", required=True),
    **vault.OPTIONS
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    vault.configure(module)
    if MISSING_LIBRARY:
        module.fail_json(msg=missing_required_lib(MISSING_LIBRARY), exception=IMPORT_TRACEBACK)
    try:
        result = config.ensure_configs(
            module.params["secrets"], module.params["dest"], module.params["nodes"],
            check_mode=module.check_mode, want_diff=module._diff,
        )
    except config.SpecError as exc:
        module.fail_json(msg="invalid node specs:\n" + str(exc), problems=exc.problems)
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
