#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_info
short_description: Which stage Talos nodes are in, optionally waiting for all of them at once
version_added: 0.1.0
description:
  - Probes every node in O(nodes) concurrently and reports its stage - C(down) (no TCP/TLS answer),
    C(maintenance) (maintenance mode - insecure TLS answers, no config yet) or C(up) (configured;
    the mTLS C(Version) call works) with its Talos version.
  - With O(wait_for) it keeps polling every O(interval) seconds until each node reaches the stage or
    O(timeout) passes, and fails naming every node that did not, with the last stage it saw.
  - Only reads. A node that answers but refuses the client (wrong CA, missing role) is reported as
    C(error) with the reason and is not polled again.
  - Through an O(endpoint), an error the endpoint's apid relays for a node (in the reply's
    metadata, e.g. it cannot dial the node) is reported as C(error) in those words, not as C(down);
    when it says the node cannot be reached, the node keeps being polled, as it may still boot.
  - M(netboot.talos.talos_wait) waits the same way and prints each node's progress as it happens.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: Node addresses (IP or name, optionally C(host:port)).
    type: list
    elements: str
    required: true
  wait_for:
    description:
      - C(none) probes once. C(answering) waits until each node is in maintenance mode or up.
        C(maintenance) waits for maintenance mode only. C(up) waits until each node is configured and up.
    type: str
    choices: [none, answering, maintenance, up]
    default: none
  timeout:
    description: Seconds to wait in total (with O(wait_for)).
    type: float
    default: 600
  interval:
    description: Seconds between probes of one node; at most 1 so a node coming up is noticed quickly.
    type: float
    default: 0.5
  fail_on_timeout:
    description: Fail when a node did not reach O(wait_for); otherwise report it in RV(nodes) only.
    type: bool
    default: true
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
- name: Wait until every node is configured and up
  netboot.talos.talos_info:
    talosconfig: clusters/home/talosconfig
    nodes: [10.0.0.11, 10.0.0.12, 10.0.0.13]
    wait_for: up
    timeout: 900

- name: Which nodes are still in maintenance mode
  netboot.talos.talos_info:
    nodes: "{{ groups['talos'] | map('extract', hostvars, 'talos_ip') }}"
  register: stages
"""

RETURN = r"""
nodes:
  description: Per node (keyed by the address given) its stage and how it got there.
  returned: always
  type: dict
  sample:
    10.0.0.11:
      stage: up
      stage_text: configured and up
      version: v1.11.5
      reached: true
      seconds: 42.5
      history: [[0.01, down], [31.2, maintenance], [42.5, up]]
      detail: v1.11.5
summary:
  description: "One line per node: node, stage text, version, seconds until it reached the stage."
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils import progress
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api

WANTED = {
    "none": {client.DOWN, client.MAINTENANCE, client.UP},
    "answering": {client.MAINTENANCE, client.UP},
    "maintenance": {client.MAINTENANCE},
    "up": {client.UP},
}


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            nodes=dict(type="list", elements="str", required=True),
            wait_for=dict(type="str", choices=sorted(WANTED), default="none"),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=0.5),
            fail_on_timeout=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    if not params["nodes"]:
        module.fail_json(msg="nodes: at least one node is needed")
    if not 0 < params["interval"] <= 1:
        module.fail_json(msg="interval: must be more than 0 and at most 1 second")
    connector = api.connector(module, require_talosconfig=params["wait_for"] == "up")
    timeout = 0 if params["wait_for"] == "none" else params["timeout"]
    results = client.run(client.wait_for_stage(connector, params["nodes"], WANTED[params["wait_for"]],
                                               timeout, interval=params["interval"]))
    nodes, summary, missing = {}, [], []
    for node in params["nodes"]:
        entry = results[node]
        entry["stage_text"] = progress.stage_text(entry)
        nodes[node] = entry
        summary.append(progress.summary_line(node, entry, params["wait_for"] != "none"))
        if not entry["reached"]:
            missing.append(node)
    if missing and params["fail_on_timeout"]:
        reasons = ["%s is %s" % (node, nodes[node]["stage_text"]) for node in missing]
        module.fail_json(msg="not %s after %ss: %s" % (params["wait_for"], params["timeout"], "; ".join(reasons)),
                         nodes=nodes, summary=summary, failed_nodes=missing)
    module.exit_json(changed=False, nodes=nodes, summary=summary)


if __name__ == "__main__":
    main()
