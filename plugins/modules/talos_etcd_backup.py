#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_etcd_backup
short_description: Save an etcd snapshot of a Talos cluster and keep the newest N
version_added: 0.2.0
description:
  - Picks the first control plane of O(nodes) whose etcd member has a leader and reports no
    errors, and streams its etcd snapshot (C(MachineService/EtcdSnapshot)) to
    C(<dest>/etcd-<UTC timestamp>.db), for example C(etcd-20261201T123456Z.db).
  - The file is written atomically (a temporary file beside it, fsynced, then renamed) with mode
    0600. A stream that breaks off, an empty stream or data that is not an etcd snapshot (bbolt
    database with etcd's SHA-256 checksum at its end) leaves no file and fails the task.
  - Then removes the oldest C(etcd-*.db) files of O(dest) beyond the newest O(keep).
  - Every run that saves a snapshot reports changed. In check mode the healthy control plane is
    chosen and the file name and the files to prune are returned; nothing is written or removed.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: The cluster's control planes, tried in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name.
        type: str
        required: true
      ip:
        description: Address of its Talos API.
        type: str
        required: true
  dest:
    description: Directory of the snapshots, created 0700 when missing.
    type: path
    required: true
  keep:
    description: How many snapshots to keep, the new one included.
    type: int
    default: 10
  timeout:
    description: Seconds the snapshot stream may take.
    type: float
    default: 300
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run saves a new snapshot.
"""

EXAMPLES = r"""
- name: Save an etcd snapshot, keep the newest 10
  netboot.talos.talos_etcd_backup:
    talosconfig: clusters/home/talosconfig
    context: home
    nodes:
      - {name: cp1, ip: 10.0.0.11}
      - {name: cp2, ip: 10.0.0.12}
    dest: clusters/home/backups
    keep: 10
"""

RETURN = r"""
path:
  description: The snapshot file written (in check mode, the one that would be).
  returned: always
  type: str
  sample: clusters/home/backups/etcd-20261201T123456Z.db
node:
  description: The control plane the snapshot came from.
  returned: always
  type: str
size:
  description: Bytes written.
  returned: unless check mode
  type: int
sha256:
  description: SHA-256 of the file written.
  returned: unless check mode
  type: str
pruned:
  description: Older snapshots removed (in check mode, that would be removed) to keep O(keep).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import backup


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            nodes=backup.CONTROLPLANES,
            dest=dict(type="path", required=True),
            keep=dict(type="int", default=10),
            timeout=dict(type="float", default=300),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    problems = []
    if params["keep"] < 1:
        problems.append("keep: must be at least 1 (the snapshot just taken), got %d" % params["keep"])
    if not params["nodes"]:
        problems.append("nodes: no control plane to take a snapshot from")
    if problems:
        module.fail_json(msg="\n".join(problems), problems=problems)
    connector = api.connector(module)
    try:
        result = client.run(backup.backup(connector, params["nodes"], params["dest"], params["keep"],
                                          check=module.check_mode, timeout=params["timeout"]))
    except client.TalosApiError as exc:
        api.fail(module, exc)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
