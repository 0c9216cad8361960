#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/talos_rollout.py): the
# controller rolls the changes out and prints each node's stages as they happen.

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_rollout
short_description: Roll the rendered configs out to the running Talos nodes, control planes one at a time
version_added: 0.2.0
description:
  - Plans as M(netboot.talos.talos_plan) does, then applies the config to every node that changes.
    Before anything is applied the whole plan must be clean - a node whose change is refused
    (O(apply_mode=no_reboot) and Talos needs a reboot, or Talos rejects the config) or that refuses
    our credentials fails the task naming every such node and its changes, and nothing is applied.
  - Control planes go one at a time; before and after each, every control plane must be a healthy
    etcd member (EtcdMemberList, EtcdStatus). Workers go in batches of O(batch).
  - Each node is applied with the mode the plan chose; after a reboot the node must go down, come
    back and run the new config (a dry run finds no changes); with O(kubeconfig) its Kubernetes node
    must be Ready again.
  - The first failing node stops the rollout; the task fails naming the node, its address and the
    stage, the nodes of later steps are not touched, and the next run continues with what is left.
  - Nodes that are down or in maintenance mode are skipped (see RV(plan)).
  - Runs on the controller and prints each node's stages as they happen, one line per node and
    stage with the seconds since the rollout began, e.g. C(w1  runs the new config done in 0.2 s   0.5 s);
    while a stage waits, a short line every O(progress_every) seconds says how many nodes are
    through and where the others are. The lines show with any stdout callback and any C(ansible.cfg).
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
  - netboot.talos.talos_day2
author:
  - netboot.talos developers (@netboot-talos)
options:
  batch:
    description: Workers changed at once - a count (C(2)) or a percentage of the cluster's workers (C(25%), at least one).
    type: str
    default: "1"
  kubeconfig:
    description: Admin kubeconfig; when given, each node must be Ready in Kubernetes after its change.
    type: path
  reboot_timeout:
    description: Seconds a rebooting node may take to go down, and again to come back.
    type: float
    default: 600
  etcd_timeout:
    description: Seconds to wait for every etcd member to be healthy, before and after each control plane.
    type: float
    default: 300
  ready_timeout:
    description: Seconds to wait for a changed node to be Ready in Kubernetes.
    type: float
    default: 600
  interval:
    description: Seconds between polls while waiting.
    type: float
    default: 1
  progress_every:
    description: Seconds without a progress line before a short line says where each node is.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details: Plans only; reports changed when a node would change.
  diff_mode:
    support: full
    details: The diff of each node that changes, as Talos words it, secrets redacted.
  idempotent:
    support: full
    details: Once every node runs its rendered config the plan is empty and nothing is applied.
"""

EXAMPLES = r"""
- name: Roll config changes out, two workers at a time
  netboot.talos.talos_rollout:
    talosconfig: clusters/home/talosconfig
    cluster: home
    nodes: "{{ cluster_nodes }}"
    configs_dir: clusters/home/nodes
    secrets: clusters/home/secrets.yaml
    kubeconfig: clusters/home/kubeconfig
    batch: "2"
"""

RETURN = r"""
plan:
  description: The plan the rollout followed, as M(netboot.talos.talos_plan) returns it.
  returned: always
  type: list
  elements: dict
changing:
  description: Names of the nodes the plan changes (the table of the plan is RV(netboot.talos.talos_plan#module:text)).
  returned: always
  type: list
  elements: str
steps:
  description: The rollout's steps, each a list of node names applied together.
  returned: unless the plan is refused
  type: list
  elements: list
applied:
  description: Nodes that got their config and passed every stage.
  returned: unless the plan is refused
  type: list
  elements: str
records:
  description: Per applied node its action, its stages with their seconds, and the seconds in total.
  returned: unless the plan is refused
  type: list
  elements: dict
failures:
  description: The nodes that failed, each with C(node), C(ip), C(stage) and C(message).
  returned: when the rollout stopped
  type: list
  elements: dict
untouched:
  description: Nodes the rollout did not get to because it stopped.
  returned: when the rollout stopped
  type: list
  elements: str
report:
  description: Lines for people - each applied node with its stages and seconds.
  returned: unless the plan is refused
  type: list
  elements: str
"""
