# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/diagnose_report.py): the
# report is printed and written by the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: diagnose_report
short_description: Print one verdict per node and link of the boot chain, and fail when a link is broken
version_added: 0.2.0
description:
  - Joins what M(netboot.talos.boot_chain_check) saw on the boot server with the Talos API stage
    (M(netboot.talos.talos_info)) and the Kubernetes nodes (M(netboot.talos.kubernetes_nodes)) of each node.
  - Prints, for every node, its first broken link and one line per link - what it saw and, for a broken
    or doubtful link, what it expected and what to do - as plain text, whatever the output callback.
  - A config URL answering 404 is on purpose when O(withdraw) is on and the node runs its config.
  - Fails when any link is broken, so C(playbooks/diagnose.yml) exits non-zero.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: Validated nodes (the C(nodes) of M(netboot.talos.talos_inventory)).
    type: list
    elements: dict
    required: true
  boot_chain:
    description:
      - The registered result of M(netboot.talos.boot_chain_check), or of a loop of it over the boot
        servers (loop variable C(diagnose_server)), each run for the nodes that boot from that boot server.
      - With more than one boot server, each finding of no single node names its boot server.
    type: dict
    required: true
  dhcp:
    description: The registered result of M(netboot.talos.dhcp_probe) (or of a loop of it over the boot servers), or a skipped or failed one.
    type: dict
  logs:
    description: The registered result of M(netboot.talos.boot_logs) (or of a loop of it over the boot servers), or a skipped or failed one.
    type: dict
  talos:
    description: The registered result of M(netboot.talos.talos_info) for the nodes' IPs.
    type: dict
  kubernetes:
    description: The registered result of M(netboot.talos.kubernetes_nodes), or a skipped or failed one.
    type: dict
  delivery:
    description: How nodes get their config (C(talos_config_delivery)).
    type: str
    choices: [http, api]
    default: http
  withdraw:
    description: Whether configs are withdrawn once nodes run them (C(talos_config_withdraw)).
    type: bool
    default: false
  report_file:
    description: Also write the report as JSON to this file on the controller.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only (the optional report file is written anew each run).
"""

EXAMPLES = r"""
- name: Say which link broke
  netboot.talos.diagnose_report:
    nodes: "{{ validated.nodes }}"
    boot_chain: "{{ boot_chain }}"
    talos: "{{ talos_stages }}"
    report_file: diagnose.json
"""

RETURN = r"""
report:
  description: C(nodes) (per node name its verdicts), C(findings) (the boot server's) and C(broken) (node names).
  returned: always
  type: dict
"""
