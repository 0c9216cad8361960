#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_remove
short_description: Take Talos nodes out of their cluster, and find cluster members the inventory lacks
version_added: 0.2.0
description:
  - Reads the cluster's members - the etcd members (EtcdMemberList on a control plane) and, with
    O(kubeconfig), the Kubernetes nodes. A member whose name no node of O(nodes) has is absent; with
    O(absent=refuse) the task fails naming every absent member and changes nothing.
  - Removes the nodes named in O(remove) (nodes of O(nodes)) and, with O(absent=remove), the absent
    members, one node at a time, stage by stage - cordon and drain (DaemonSet and mirror pods stay;
    a PodDisruptionBudget that blocks longer than O(drain_timeout) fails naming the pod), a control
    plane leaves etcd (EtcdLeaveCluster on it, or EtcdRemoveMemberByID through another control plane
    when it does not answer), a graceful reset wiping STATE and EPHEMERAL (then it reboots or powers
    off, O(reboot)), and the Kubernetes node is deleted.
  - Refused before anything changes - the removal of the last control plane, and a removal that
    would leave etcd without quorum (the healthy members left must stay a majority); the message
    says why.
  - The first failing stage stops the removal, naming the node, its address and the stage; nodes
    after it are not touched. A re-run continues - a node that is no etcd member, no Kubernetes node
    and does not answer with the cluster's credentials is out of the cluster already.
  - With O(remove) empty, a cluster whose members cannot be read (no control plane answers yet) is
    not checked - a warning says so.
  - The boot server's entries of a removed node (matchbox group, served config, DHCP reservation)
    and the talosconfig's endpoints are the role's tasks (netboot.talos.talos_rollout, tasks/remove.yml).
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  cluster:
    description: Cluster name, used in messages.
    type: str
    required: true
  nodes:
    description: The inventory's nodes of the cluster (every one, not only those to remove).
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
  remove:
    description: Names of nodes of O(nodes) to take out of the cluster.
    type: list
    elements: str
    default: []
  absent:
    description:
      - What to do with cluster members that are not in O(nodes). C(refuse) - fail naming them, before
        anything changes. C(remove) - remove them like the nodes of O(remove).
    type: str
    choices: [refuse, remove]
    default: refuse
  kubeconfig:
    description: Admin kubeconfig; without it Kubernetes nodes are neither seen, drained nor deleted.
    type: path
  reboot:
    description: After the reset the machine reboots (true) or powers off (false).
    type: bool
    default: false
  drain_timeout:
    description: Seconds the drain may take, PodDisruptionBudgets included.
    type: float
    default: 300
  reset_timeout:
    description: Seconds a reset node may take to stop answering with its configured API.
    type: float
    default: 300
  interval:
    description: Seconds between retries and polls (evictions a budget refuses, a node going down).
    type: float
    default: 5
attributes:
  check_mode:
    support: full
    details: Lists what would be removed (RV(text)) and what would be refused; changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Nodes already out of the cluster are reported as such and not touched.
"""

EXAMPLES = r"""
- name: Take lab-worker1 out of the cluster, powering it off
  netboot.talos.talos_remove:
    talosconfig: clusters/home/talosconfig
    cluster: home
    nodes: "{{ cluster_nodes }}"
    remove: [lab-worker1]
    kubeconfig: clusters/home/kubeconfig

- name: Stop when the cluster has members the inventory does not know
  netboot.talos.talos_remove:
    talosconfig: clusters/home/talosconfig
    cluster: home
    nodes: "{{ cluster_nodes }}"
    kubeconfig: clusters/home/kubeconfig
"""

RETURN = r"""
absent:
  description: Cluster members not in O(nodes), each with C(name), C(ip), C(role), C(etcd_id) (or null) and C(kubernetes).
  returned: always
  type: list
  elements: dict
plan:
  description: Per node to remove C(name), C(ip), C(role), C(state) (up, down, maintenance), C(etcd_id), C(kubernetes) and C(changed).
  returned: unless absent members are refused
  type: list
  elements: dict
removing:
  description: Names of the nodes the removal takes out (or would, in check mode).
  returned: unless absent members are refused
  type: list
  elements: str
controlplanes:
  description: Names of the control planes among RV(removing).
  returned: unless absent members are refused
  type: list
  elements: str
endpoints:
  description: Addresses of the control planes of O(nodes) that stay etcd members - the talosconfig's endpoints after the removal.
  returned: unless absent members are refused
  type: list
  elements: str
text:
  description: Lines for people - per node what is (or would be) done.
  returned: unless absent members are refused
  type: list
  elements: str
records:
  description: Per removed node its stages with their seconds.
  returned: when something was removed
  type: list
  elements: dict
failures:
  description: The node that failed, with C(node), C(ip), C(stage) and C(message).
  returned: when the removal stopped
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import options


def main():
    module = AnsibleModule(
        argument_spec=options.api.argument_spec(
            cluster=dict(type="str", required=True),
            nodes=dict(type="list", elements="dict", required=True, options={k: v for k, v in options.NODE_OPTIONS.items() if k != "config"}),
            remove=dict(type="list", elements="str", default=[]),
            absent=dict(type="str", choices=["refuse", "remove"], default="refuse"),
            kubeconfig=dict(type="path"),
            reboot=dict(type="bool", default=False),
            drain_timeout=dict(type="float", default=300),
            reset_timeout=dict(type="float", default=300),
            interval=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    day2 = options.load(module)
    client, api = day2.client, day2.api
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes
    from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import remove as removal
    params = module.params
    known = [node["name"] for node in params["nodes"]]
    problems = ["remove: %s is not a node of the inventory (nodes: %s)" % (name, ", ".join(known))
                for name in params["remove"] if name not in known]
    if params["kubeconfig"] and not os.path.isfile(params["kubeconfig"]):
        problems.append("kubeconfig: %s does not exist" % params["kubeconfig"])
    if problems:
        module.fail_json(msg="\n".join(problems), problems=problems)
    connector = api.connector(module)
    try:
        kube = kubernetes.client_from_file(params["kubeconfig"]) if params["kubeconfig"] else None
    except kubernetes.KubeconfigError as exc:
        module.fail_json(msg=str(exc))
    try:
        remove(module, client, api, removal, connector, kube)
    finally:  # fail_json and exit_json exit through here too
        if kube is not None:
            kube.close()


def remove(module, client, api, removal, connector, kube):
    params = module.params
    try:
        prepared = client.run(removal.prepare(connector, params["nodes"], params["remove"], kube, params["absent"] == "remove"))
    except client.TalosApiError as exc:
        api.fail(module, exc)
    except removal.membership.MembershipError as exc:
        if params["remove"]:
            module.fail_json(msg="%s: %s" % (params["cluster"], exc))
        # Nothing to remove by name: a cluster that is not up (yet) has no members to compare.
        module.warn("%s: members not checked: %s" % (params["cluster"], exc))
        module.exit_json(changed=False, absent=[], plan=[], removing=[], controlplanes=[], endpoints=[], text=["members not checked"])
    absent = prepared["absent"]
    if absent and params["absent"] == "refuse":
        module.fail_json(msg="cluster %s has members the inventory lacks; nothing changed:\n%s"
                         % (params["cluster"], "\n".join(prepared["problems"])), absent=absent, problems=prepared["problems"])
    plans = prepared["plans"]
    changing = [entry for entry in plans if entry["changed"]]
    result = dict(absent=absent, plan=plans, removing=[e["name"] for e in changing],
                  controlplanes=[e["name"] for e in changing if e["role"] == "controlplane"],
                  endpoints=removal.endpoints(params["nodes"], changing, prepared["found"]), text=removal.text(plans, module.check_mode))
    if prepared["problems"]:
        module.fail_json(msg="nothing removed:\n" + "\n".join(prepared["problems"]), problems=prepared["problems"], **result)
    if module.check_mode or not changing:
        module.exit_json(changed=bool(changing), **result)
    runner = removal.Removal(connector, prepared["found"], kube, params["reboot"], params["drain_timeout"],
                             params["reset_timeout"], params["interval"])
    try:
        outcome = client.run(runner.run(plans, "1"))
    except client.TalosApiError as exc:
        api.fail(module, exc, **result)
    result.update(records=outcome["records"], failures=outcome["failures"])
    if outcome["failures"]:
        lines = [failure["msg"] for failure in outcome["failures"]]
        lines.append("removed: %s; not touched: %s" % (", ".join(outcome["applied"]) or "none", ", ".join(outcome["untouched"]) or "none"))
        module.fail_json(msg="removal stopped: " + "\n".join(lines), changed=bool(outcome["applied"]), **result)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
