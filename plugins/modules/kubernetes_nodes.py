#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: kubernetes_nodes
short_description: Wait until Kubernetes nodes are Ready and list them like kubectl get nodes -o wide
version_added: 0.1.0
description:
  - Reads C(/api/v1/nodes) from the API server named in O(kubeconfig), with the kubeconfig's client
    certificate and its CA verified (python requests), every O(interval) seconds until every node in
    O(names) is listed and Ready, or O(timeout) passes.
  - Returns the rows and a text table laid out like C(kubectl get nodes -o wide).
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
requirements:
  - requests
  - cryptography
  - PyYAML
options:
  kubeconfig:
    description: Path of the kubeconfig.
    type: path
    required: true
  names:
    description: Node names that must be Ready; empty means only list.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for O(names).
    type: float
    default: 600
  interval:
    description: Seconds between reads.
    type: float
    default: 1
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Read only.
"""

EXAMPLES = r"""
- name: Wait for every node
  netboot.talos.kubernetes_nodes:
    kubeconfig: clusters/home/kubeconfig
    names: [kube01, kube02, kube03]
  register: cluster_nodes

- name: Show them
  ansible.builtin.debug:
    msg: "{{ cluster_nodes.table }}"
"""

RETURN = r"""
nodes:
  description: One dict per node with the columns of C(kubectl get nodes -o wide).
  returned: always
  type: list
  elements: dict
table:
  description: The table, one line per row, header first.
  returned: always
  type: list
  elements: str
seconds:
  description: Seconds until every node in O(names) was Ready.
  returned: success
  type: float
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible_collections.netboot.talos.plugins.module_utils import vault
    from ansible_collections.netboot.talos.plugins.module_utils import libraries
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes
    libraries.check()
except ImportError as exc:  # PyYAML missing where the module runs
    MISSING_LIBRARY, IMPORT_TRACEBACK = exc.name, traceback.format_exc()
else:
    MISSING_LIBRARY = IMPORT_TRACEBACK = None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kubeconfig=dict(type="path", required=True),
            names=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=1),
            **vault.OPTIONS
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    if MISSING_LIBRARY:
        module.fail_json(msg=missing_required_lib(MISSING_LIBRARY), exception=IMPORT_TRACEBACK)
    if not kubernetes.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    params = module.params
    try:
        api = kubernetes.client_from_file(params["kubeconfig"])
    except kubernetes.KubeconfigError as exc:
        module.fail_json(msg=str(exc))
    try:
        outcome = kubernetes.wait_ready(api, params["names"], params["timeout"], params["interval"])
    finally:
        api.close()
    rows = outcome["rows"]
    if not outcome["ready"]:
        module.fail_json(msg=kubernetes.not_ready_message(outcome, params["timeout"], api.server),
                         nodes=rows, table=kubernetes.table(rows))
    module.exit_json(changed=False, nodes=rows, table=kubernetes.table(rows), seconds=outcome["seconds"])


if __name__ == "__main__":
    main()
