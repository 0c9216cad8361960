# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/talos_kubernetes_upgrade.py):
# the controller runs the steps and prints each one as it ends.

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_kubernetes_upgrade
short_description: Move a Talos cluster to another Kubernetes version in the order of talosctl upgrade-k8s
version_added: 0.3.0
description:
  - Runs on the controller. Reads what runs from the Kubernetes API of O(kubeconfig) - the mirror
    pods C(kube-apiserver-<node>), C(kube-controller-manager-<node>), C(kube-scheduler-<node>) of
    each control plane, the C(kube-proxy) pods (label C(k8s-app=kube-proxy), else the DaemonSet) and
    each node's kubelet version - and the Talos version each node runs.
  - Refuses, before anything changes and naming O(kubernetes_version) and every node concerned, a
    downgrade, more than one minor version at a time, a version the Talos a node runs does not
    support, and nodes that do not answer.
  - Then, one step at a time, C(kube-apiserver), C(kube-controller-manager), C(kube-scheduler) and
    C(kube-proxy) on each control plane, then the kubelet on every node (control planes first). Each
    step applies the node's config rendered with that component (and the earlier ones) at the new
    version without a reboot and waits until the component reports it (not for C(kube-proxy), as
    talosctl). Steps of components that already run the version are left out, so a second run
    changes nothing. The first failure stops the upgrade naming the node and the step.
  - Last, while C(kube-proxy) runs an older version, the bootstrap manifest sync of upgrade-k8s - Talos
    creates its bootstrap manifests only at bootstrap, so the running DaemonSet follows a new
    C(cluster.proxy.image) only through it. The objects the first control plane renders (COSI
    C(Manifests.kubernetes.talos.dev), namespace C(controlplane)) are applied by server-side apply with
    field manager C(talos), then the step waits until the DaemonSet has rolled out and every
    C(kube-proxy) pod runs the new image.
  - Each step is printed as it ends, whatever the stdout callback.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: The cluster's nodes, as M(netboot.talos.talos_inventory) returns them.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Inventory name.
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
      config:
        description: Its node spec (talos_inventory's C(config)); each step's config is rendered from it.
        type: dict
        required: true
  secrets:
    description: The cluster's secrets bundle.
    type: path
    required: true
  kubeconfig:
    description: An admin kubeconfig of the cluster.
    type: path
    required: true
  kubernetes_version:
    description: The Kubernetes version to run (C(talos_kubernetes_version)), without a leading C(v).
    type: str
    required: true
  timeout:
    description: Seconds each component may take to report the new version.
    type: float
    default: 300
  interval:
    description: Seconds between reads of the Kubernetes API while waiting.
    type: float
    default: 1
attributes:
  check_mode:
    support: full
    details: Runs the pre-checks and lists every planned step (node, component, from, to); applies nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Upgrade Kubernetes to the inventory's version
  netboot.talos.talos_kubernetes_upgrade:
    talosconfig: clusters/demo/talosconfig
    context: demo
    nodes: "{{ inventory_result.nodes }}"
    secrets: clusters/demo/secrets.yaml
    kubeconfig: clusters/demo/kubeconfig
    kubernetes_version: 1.35.0
  register: upgrade

- name: Show the steps
  netboot.talos.print_text:
    text: "{{ upgrade.text }}"
"""

RETURN = r"""
planned:
  description: Every step in order; empty when every component runs O(kubernetes_version).
  returned: unless refused
  type: list
  elements: dict
  sample: [{step: 1, node: cp1, component: apiserver, from: 1.34.1, to: 1.35.0}]
text:
  description: RV(planned) as a table for people.
  returned: unless refused
  type: list
  elements: str
records:
  description: Per step done, the node, component and seconds of each stage.
  returned: when something was applied
  type: list
  elements: dict
problems:
  description: Why the upgrade is refused, one line per reason naming the nodes.
  returned: when refused
  type: list
  elements: str
"""
