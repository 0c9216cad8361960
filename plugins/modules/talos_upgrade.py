# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/talos_upgrade.py): the
# controller runs the rolling upgrade and prints each node's stages as they happen.

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_upgrade
short_description: Upgrade Talos on the running nodes to the inventory's version and schematic, one node at a time
version_added: 0.3.0
description:
  - Runs on the controller. Plans first - per node its running Talos version (Version) and the
    Image Factory schematic it booted (its C(schematic) extension; none is the vanilla schematic)
    against O(nodes[].talos_version) and O(nodes[].schematic). A node that differs is upgraded
    with C(factory.talos.dev/installer/<schematic>:<version>) (C(metal-installer) from 1.14), or
    with O(nodes[].install_image) when given (then only the version is compared). The plan table
    is printed at once.
  - Before anything changes every node must be up and, with O(kubeconfig), Ready in Kubernetes,
    and every version path must be one the Talos installer accepts (Talos 1.13 installs over 1.11.0
    up to 1.15.0, and so on); otherwise the task fails naming C(talos_version) and the nodes, and
    nothing is touched.
  - Control planes go one at a time, with every etcd member healthy before and after; workers go
    in batches of O(batch). Per node - cordon and drain (with O(kubeconfig) and O(drain)), the
    upgrade through the API the node's running version offers (1.13 and later - ImageService/Pull,
    LifecycleService/Upgrade and Reboot; older - MachineService/Upgrade), going down, coming back
    within O(upgrade_timeout), reporting the new version, every service healthy, Ready, uncordon.
  - Each stage is printed as it starts and ends, one line per node with the seconds since the
    upgrade began, with any stdout callback.
  - The first node that fails stops the upgrade; the task fails naming the node, its address and
    the stage, nodes of later steps are not touched, and the next run continues with the nodes
    still on the old version. A failed node is left cordoned.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  cluster:
    description: Cluster name, used in the plan's title.
    type: str
    required: true
  nodes:
    description:
      - The cluster's nodes. Other keys are ignored, so the nodes of M(netboot.talos.talos_inventory)
        can be passed as they are (their C(config.hostname) is the Kubernetes node name then).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name.
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
      talos_version:
        description: The Talos version the node must run (C(talos_version)).
        type: str
        required: true
      schematic:
        description: The Image Factory schematic ID the node must run.
        type: str
        required: true
      install_image:
        description: An installer image to use instead of Image Factory's (C(talos_install_image)).
        type: str
  kubeconfig:
    description: Admin kubeconfig; with it nodes must be Ready before and after, and are drained first (O(drain)).
    type: path
  drain:
    description: Cordon and drain each node before its upgrade and uncordon it after (needs O(kubeconfig)).
    type: bool
    default: true
  drain_timeout:
    description: Seconds a drain may take; a PodDisruptionBudget that still blocks an eviction then fails the node.
    type: float
    default: 300
  upgrade_timeout:
    description: Seconds the upgrade call may take, and a node may take to go down, and again to come back.
    type: float
    default: 900
  etcd_timeout:
    description: Seconds to wait for every etcd member to be healthy, before and after each control plane.
    type: float
    default: 300
  ready_timeout:
    description: Seconds to wait for the node's services to be healthy, and for it to be Ready in Kubernetes.
    type: float
    default: 600
  batch:
    description: Workers upgraded at once - a count (C(2)) or a percentage of the cluster's workers (C(25%), at least one).
    type: str
    default: "1"
  interval:
    description: Seconds between polls while waiting.
    type: float
    default: 1
attributes:
  check_mode:
    support: full
    details: Plans and prints the per-node plan only; reports changed when a node would be upgraded.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Once every node runs its version and schematic the plan is empty and nothing is touched.
"""

EXAMPLES = r"""
- name: Upgrade the cluster to the inventory's Talos version, two workers at a time
  netboot.talos.talos_upgrade:
    talosconfig: clusters/home/talosconfig
    cluster: home
    nodes: "{{ inventory.nodes }}"
    kubeconfig: clusters/home/kubeconfig
    batch: "2"
    upgrade_timeout: 1200
"""

RETURN = r"""
plan:
  description:
    - Per node C(name), C(role), C(ip), C(state), C(running) (its version), C(running_schematic),
      C(version) and C(schematic) (the targets), C(image), C(api) (C(lifecycle) or C(legacy)),
      C(action) (C(none), C(upgrade), C(refused), C(skipped)), C(changed) and C(reason).
  returned: always
  type: list
  elements: dict
text:
  description: The plan as a table for people (printed while the task runs).
  returned: always
  type: list
  elements: str
changing:
  description: Names of the nodes the plan upgrades.
  returned: always
  type: list
  elements: str
problems:
  description: Why nothing was upgraded - refused version paths naming C(talos_version), nodes not up or not Ready.
  returned: when the pre-flight fails
  type: list
  elements: str
steps:
  description: The upgrade's steps, each a list of node names upgraded together.
  returned: when nodes were upgraded
  type: list
  elements: list
applied:
  description: Nodes upgraded through every stage.
  returned: when nodes were upgraded
  type: list
  elements: str
records:
  description: Per upgraded node its stages with their seconds, and the seconds in total.
  returned: when nodes were upgraded
  type: list
  elements: dict
failures:
  description: The nodes that failed, each with C(node), C(ip), C(stage) and C(message).
  returned: when nodes were upgraded
  type: list
  elements: dict
untouched:
  description: Nodes not upgraded because the upgrade stopped; RV(failures) names where.
  returned: when nodes were upgraded
  type: list
  elements: str
report:
  description: Lines for people - each upgraded node with its stages and seconds (see also RV(text)).
  returned: when nodes were upgraded
  type: list
  elements: str
"""
