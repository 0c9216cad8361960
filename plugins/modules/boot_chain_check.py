#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: boot_chain_check
short_description: Check the boot server's links of the PXE chain for each node, as a machine would walk them
version_added: 0.2.0
description:
  - Runs on the boot server and asks what a booting machine asks - each boot file over TFTP, matchbox's
    C(/boot.ipxe) and C(/ipxe?mac=...&arch=...), the kernel and initrd matchbox names, and the node's
    C(talos.config=) URL - then compares every answer with what the inventory says it should be.
  - On a 404 from C(/ipxe) it names the groups that come closest (its own group file missing or not
    loading, a MAC one or two hex digits off, a selector key in another letter case).
  - Reports every group and profile file that matchbox would skip without a word.
  - Returns one verdict per node and link (C(ok), C(warning), C(broken), C(skipped), or C(withdrawn) for
    a config URL answering 404, which the controller settles), each with what it expected, what it saw
    and what to do. Used by C(playbooks/diagnose.yml).
  - Reads only; safe at any time.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
options:
  matchbox_url:
    description: matchbox's URL as the machines reach it (C(talos_matchbox_url)).
    type: str
    required: true
  data_dir:
    description: matchbox's data directory on the boot server (groups, profiles, assets).
    type: path
    required: true
  nodes:
    description: Validated nodes (the C(nodes) of M(netboot.talos.talos_inventory)).
    type: list
    elements: dict
    required: true
  http_delivery:
    description: Whether matchbox serves the configs (C(talos_config_delivery=http)).
    type: bool
    default: true
  config_sha256:
    description: sha256 of each node's rendered config on the controller, by node name.
    type: dict
    default: {}
  tftp:
    description:
      - The TFTP server to ask (C(server), C(port), default 69) and its root on this host (C(root)).
      - C(files), the files to fetch, defaults to every file at the top of the root (the iPXE binaries and the chain script).
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 5
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only.
"""

EXAMPLES = r"""
- name: Check what the boot server serves each node
  netboot.talos.boot_chain_check:
    matchbox_url: http://10.0.50.1:8080
    data_dir: /var/lib/matchbox
    nodes: "{{ validated.nodes }}"
    tftp: {server: 10.0.50.1, root: /srv/tftp, files: [undionly.kpxe, ipxe.efi, matchbox.ipxe]}
  register: boot_chain
"""

RETURN = r"""
nodes:
  description: Per node name, its verdicts (C(link), C(status), C(expected), C(seen), C(action)) for tftp, matchbox, assets and config.
  returned: always
  type: dict
findings:
  description: Verdicts about the boot server as a whole (matchbox answering, C(/boot.ipxe), files matchbox skips).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import matchbox
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import boot_chain
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v


def main():
    module = AnsibleModule(
        argument_spec=dict(
            matchbox_url=dict(type="str", required=True),
            data_dir=dict(type="path", required=True),
            nodes=dict(type="list", elements="dict", required=True),
            http_delivery=dict(type="bool", default=True),
            config_sha256=dict(type="dict", default={}),
            tftp=dict(type="dict", default={}),
            timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        entries = matchbox.talos_entries(params["nodes"], params["matchbox_url"], http_delivery=params["http_delivery"])
    except matchbox.MatchboxError as exc:
        module.fail_json(msg="nodes: %s" % exc)
    server = boot_chain.BootServer(params["matchbox_url"], params["data_dir"], params["tftp"], params["timeout"])
    findings = server.matchbox_findings()
    tftp = server.tftp_verdicts()
    answering = not v.is_broken(findings[:1])
    nodes = {}
    for node in params["nodes"]:
        if answering:
            links = server.node_verdicts(node, entries, params["config_sha256"].get(node["name"]))
        else:
            links = [v.broken("matchbox", "matchbox answers", findings[0]["seen"], findings[0]["action"]),
                     v.skipped("assets", "matchbox does not answer"), v.skipped("config", "matchbox does not answer")]
        nodes[node["name"]] = tftp + links
    module.exit_json(changed=False, nodes=nodes, findings=findings)


if __name__ == "__main__":
    main()
