#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_bootstrap
short_description: Bootstrap etcd on one Talos control plane, exactly once
version_added: 0.1.0
description:
  - Asks the node for its etcd members first; when etcd already has members the cluster is
    bootstrapped and nothing is sent (changed=false).
  - Otherwise calls C(Bootstrap), retrying while the node answers C(FailedPrecondition) (not ready
    yet) or is unavailable, until O(timeout). C(AlreadyExists) ("etcd data directory is not
    empty") means it was bootstrapped already and reports changed=false.
  - Call it on one control plane only; bootstrapping two forms two clusters.
  - In check mode only the etcd member list is read.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  node:
    description: Address of the control plane to bootstrap.
    type: str
    required: true
  timeout:
    description: Seconds to keep retrying.
    type: float
    default: 600
  interval:
    description: Seconds between attempts.
    type: float
    default: 2
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Bootstrap the cluster on the first control plane
  netboot.talos.talos_bootstrap:
    talosconfig: clusters/home/talosconfig
    node: 10.0.0.11
"""

RETURN = r"""
node:
  description: The node addressed.
  returned: always
  type: str
attempts:
  description: Bootstrap calls made (0 when etcd already had members).
  returned: always
  type: int
reason:
  description: Why the task changed or not.
  returned: always
  type: str
  sample: etcd already has members (cp1)
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            node=dict(type="str", required=True),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=2),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    connector = api.connector(module)
    target = connector.secure(params["node"])
    result = dict(node=params["node"], attempts=0)
    try:
        changed, reason, attempts = client.run(
            client.bootstrap_once(target, params["timeout"], params["interval"], check=module.check_mode)
        )
        module.exit_json(changed=changed, reason=reason, node=params["node"], attempts=attempts)
    except client.TalosApiError as exc:
        api.fail(module, exc, **result)


if __name__ == "__main__":
    main()
