#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_reset
short_description: Reset a Talos node so it boots over the network again
version_added: 0.1.0
description:
  - Calls C(Reset) - by default graceful (a control plane leaves etcd first), wiping the STATE and
    EPHEMERAL partitions, then rebooting, so a PXE-booted node comes back without a config.
  - A node already in maintenance mode has nothing to reset (changed=false). A node that does not
    answer fails the task.
  - With O(wait) the task waits until the node stops answering with its configured API (rebooting,
    or back in maintenance mode).
  - In check mode the node is only probed.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  node:
    description: Address of the node.
    type: str
    required: true
  graceful:
    description: Leave etcd and cordon/drain before wiping.
    type: bool
    default: true
  reboot:
    description: Reboot after the reset (otherwise power off).
    type: bool
    default: true
  wipe:
    description: System partitions to wipe.
    type: list
    elements: str
    default: [STATE, EPHEMERAL]
  wait:
    description: Wait until the node no longer serves its configured API.
    type: bool
    default: true
  timeout:
    description: Seconds to wait with O(wait).
    type: float
    default: 300
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A node in maintenance mode is left alone.
"""

EXAMPLES = r"""
- name: Reset kube02 so it reinstalls from PXE
  netboot.talos.talos_reset:
    talosconfig: clusters/home/talosconfig
    node: 10.0.0.12
"""

RETURN = r"""
stage_before:
  description: The node's stage before the reset (C(up) or C(maintenance)).
  returned: always
  type: str
stage_after:
  description: The stage seen after waiting.
  returned: when O(wait) and the reset was sent
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api

PARTITIONS = ("STATE", "EPHEMERAL", "META")


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            node=dict(type="str", required=True),
            graceful=dict(type="bool", default=True),
            reboot=dict(type="bool", default=True),
            wipe=dict(type="list", elements="str", default=["STATE", "EPHEMERAL"]),
            wait=dict(type="bool", default=True),
            timeout=dict(type="float", default=300),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    unknown = [p for p in params["wipe"] if p not in PARTITIONS]
    if unknown:
        module.fail_json(msg="wipe: unknown partition %s (known: %s)" % (", ".join(unknown), ", ".join(PARTITIONS)))
    connector = api.connector(module)
    node = params["node"]
    try:
        stage, detail, _version = client.run(client.probe(connector, node))
        result = dict(node=node, stage_before=stage)
        if stage == client.DOWN:
            raise client.Unavailable(node, detail)
        if stage == client.MAINTENANCE:
            module.exit_json(changed=False, msg="already in maintenance mode (no config)", **result)
        if not module.check_mode:
            client.run(client.reset(connector.secure(node), params["graceful"], params["reboot"], params["wipe"]))
            if params["wait"]:
                after = client.run(client.wait_for_stage(connector, [node], {client.DOWN, client.MAINTENANCE}, params["timeout"]))
                result["stage_after"] = after[node]["stage"]
                if not after[node]["reached"]:
                    module.fail_json(msg="node %s still serves its configured API %ss after the reset" % (node, params["timeout"]), **result)
    except client.TalosApiError as exc:
        api.fail(module, exc, node=node)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
