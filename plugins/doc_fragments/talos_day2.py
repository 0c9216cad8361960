# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """Options of the day-2 modules (talos_plan, talos_rollout): the cluster and its rendered configs."""

    DOCUMENTATION = r"""
options:
  cluster:
    description: Cluster name, used in the plan's title.
    type: str
    required: true
  nodes:
    description: The cluster's nodes.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name; its rendered config is C(<configs_dir>/<name>.yaml).
        type: str
        required: true
      role:
        description: Machine type.
        type: str
        required: true
        choices: [controlplane, worker]
      ip:
        description: Address of the node's Talos API.
        type: str
        required: true
      hostname:
        description: Its etcd member and Kubernetes node name; default O(nodes[].name).
        type: str
      config:
        description:
          - Its node spec (the C(config) of M(netboot.talos.talos_inventory)'s nodes). When given with
            O(secrets), the config is rendered from it rather than read from O(configs_dir), so that
            check mode plans the inventory as it is now.
        type: dict
  configs_dir:
    description: Directory of the rendered machine configs.
    type: path
    required: true
  secrets:
    description:
      - The cluster's secrets bundle. Its values are redacted from every diff and message, on top of
        what is always redacted (values of keys, certificates, tokens, ids and credentials, base64 PEM).
    type: path
  apply_mode:
    description:
      - C(auto) - Talos decides, without a reboot when it can. C(no_reboot) - a change that needs a
        reboot is refused, naming the node and the changes. C(reboot) - apply and reboot. C(staged) -
        store the config, active from the next reboot.
    type: str
    choices: [auto, no_reboot, reboot, staged]
    default: auto
  staged_record:
    description:
      - File (JSON, 0600) keeping the SHA-256 of each config staged with O(apply_mode=staged), so a
        config staged once is reported as waiting for the reboot instead of being staged again.
    type: path
"""
