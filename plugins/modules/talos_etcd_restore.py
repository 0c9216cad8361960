#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_etcd_restore
short_description: Recover a Talos cluster's etcd from a snapshot (disaster recovery)
version_added: 0.2.0
description:
  - Follows Talos's disaster-recovery procedure. Refuses, before anything is sent and naming each
    node, unless O(snapshot) is a non-empty etcd snapshot (checksum verified unless
    O(skip_hash_check)) and every control plane of O(nodes) was reset or reprovisioned through
    PXE - it answers in maintenance mode, or runs its config with etcd not bootstrapped. A
    control plane with a running etcd (a healthy cluster) is never overwritten.
  - Control planes in maintenance mode get their rendered config C(<configs_dir>/<name>.yaml) and
    must come up running it.
  - The first control plane of O(nodes) then receives the snapshot (C(EtcdRecover), 4 KiB chunks)
    and is bootstrapped from it (C(Bootstrap) with C(recover_etcd)); the other control planes join
    it. Done when every control plane is a healthy etcd member and, with O(kubeconfig), the node is
    Ready in Kubernetes.
  - Not idempotent by nature - a second run finds etcd running and refuses. In check mode only the
    checks run.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: The cluster's control planes; the first one is recovered from the snapshot.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name (its etcd member and Kubernetes node name, and config file name).
        type: str
        required: true
      ip:
        description: Address of its Talos API.
        type: str
        required: true
  snapshot:
    description: The snapshot file, as M(netboot.talos.talos_etcd_backup) saves it.
    type: path
    required: true
  skip_hash_check:
    description: Skip etcd's integrity check (Bootstrap C(recover_skip_hash_check)), for a copy of a data directory's C(db) file.
    type: bool
    default: false
  configs_dir:
    description: Directory of the rendered configs, for control planes in maintenance mode.
    type: path
    required: true
  kubeconfig:
    description: Admin kubeconfig; when given, the recovered node must be Ready in Kubernetes.
    type: path
  timeout:
    description: Seconds each stage may take.
    type: float
    default: 600
  interval:
    description: Seconds between polls.
    type: float
    default: 1
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: A second run refuses, as etcd then runs.
"""

EXAMPLES = r"""
- name: Recover etcd from a snapshot
  netboot.talos.talos_etcd_restore:
    talosconfig: clusters/home/talosconfig
    context: home
    nodes:
      - {name: cp1, ip: 10.0.0.11}
    snapshot: clusters/home/backups/etcd-20261201T123456Z.db
    configs_dir: clusters/home/nodes
    kubeconfig: clusters/home/kubeconfig
"""

RETURN = r"""
node:
  description: The control plane recovered from the snapshot.
  returned: always
  type: str
states:
  description: Per control plane what it was found in, C(maintenance) or C(configured) (etcd not bootstrapped).
  returned: always
  type: dict
stages:
  description: The recovery's stages with their seconds.
  returned: unless check mode
  type: list
  elements: dict
sha256:
  description: SHA-256 of the snapshot uploaded.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import files, vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import backup, rollout


def preflight(module, connector):
    """Each control plane's state; fails listing every problem (file, nodes, configs)."""
    params = module.params
    problems = []
    problem = backup.snapshot_problem(params["snapshot"], params["skip_hash_check"])
    if problem:
        problems.append("snapshot: %s" % problem)
    if params["kubeconfig"] and not os.path.isfile(params["kubeconfig"]):
        problems.append("kubeconfig: %s does not exist" % params["kubeconfig"])
    states, configs = {}, {}
    for node in params["nodes"]:
        try:
            states[node["name"]], problem = client.run(backup.controlplane_state(connector, node))
        except client.TalosApiError as exc:
            states[node["name"]], problem = client.ERROR, "%s (talos_ip %s): %s" % (node["name"], node["ip"], exc)
        if problem:
            problems.append(problem)
        path = os.path.join(params["configs_dir"], node["name"] + ".yaml")
        if states[node["name"]] == client.MAINTENANCE:
            if os.path.isfile(path):
                configs[node["name"]] = files.read_secret(path)
            else:
                problems.append("%s: in maintenance mode and configs_dir has no %s (render the configs first)" % (node["name"], path))
    if not params["nodes"]:
        problems.append("nodes: no control plane to recover")
    if problems:
        module.fail_json(msg="restore refused, nothing changed:\n" + "\n".join(problems), problems=problems, states=states)
    return states, configs


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            nodes=backup.CONTROLPLANES,
            snapshot=dict(type="path", required=True),
            skip_hash_check=dict(type="bool", default=False),
            configs_dir=dict(type="path", required=True),
            kubeconfig=dict(type="path"),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=1),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    connector = api.connector(module)
    states, configs = preflight(module, connector)
    result = dict(node=params["nodes"][0]["name"], states=states, sha256=backup.file_sha256(params["snapshot"]))
    if module.check_mode:
        module.exit_json(changed=True, **result)
    kubeconfig = None
    if params["kubeconfig"]:
        kubeconfig = files.read_secret(params["kubeconfig"])
    nodes = [dict(node, role="controlplane") for node in params["nodes"]]
    restore = backup.Restore(connector, nodes, configs, params["snapshot"], params["skip_hash_check"], kubeconfig,
                             params["timeout"], params["interval"])
    try:
        record = client.run(restore.run_restore(states))
    except rollout.StageError as exc:
        module.fail_json(msg="restore stopped: %s" % exc, changed=True, stage=exc.stage, **result)
    except client.TalosApiError as exc:
        api.fail(module, exc, changed=True, **result)
    module.exit_json(changed=True, stages=record["stages"], **result)


if __name__ == "__main__":
    main()
