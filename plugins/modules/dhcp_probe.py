#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: dhcp_probe
short_description: Ask the node network's DHCP servers what each firmware kind of each node is offered
version_added: 0.2.0
description:
  - Runs on the boot server and, from O(interface), broadcasts DHCPDISCOVERs as each client kind sends them,
    with each node's MAC as chaddr so that reservations answer - BIOS plain PXE (client arch 0, no user
    class - the NIC's PXE ROM, to be offered O(bios_file)), UEFI x64 PXE (arch 7 and 9), and iPXE (user
    class C(iPXE), with its option 175) on BIOS (the iPXE that undionly.kpxe or a NIC ROM runs) and on UEFI.
  - Collects every OFFER for O(timeout) seconds, proxyDHCP answers (no address offered) included, and
    holds them against what the chain needs - the node's C(talos_ip), the first-stage boot file per
    firmware, the matchbox script for iPXE (an iPXE client offered an iPXE binary again is the iPXE loop),
    and the TFTP next-server.
  - A proxyDHCP server names its boot file only on its port 4011, so to each proxyDHCP offer the probe sends
    the DHCPREQUEST a PXE client sends there (PXE spec - option 60 C(PXEClient), 93, 94, 97 and the boot
    item of the offer's menu, from the probe's own address), and judges the ACK's boot file and next-server
    per client kind like a full DHCP server's offer; no ACK is broken.
  - Two servers offering addresses on the segment is a finding of the boot server.
  - No lease is taken - DHCPDISCOVERs take none, and a proxyDHCP server hands out no address.
  - Used by C(playbooks/diagnose.yml).
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
requirements:
  - scapy (on the boot server)
options:
  interface:
    description: The boot server's interface on the node network; empty skips the probe with a finding saying so.
    type: str
    default: ""
  nodes:
    description: Validated nodes (the C(nodes) of M(netboot.talos.talos_inventory)); C(name), C(mac) and C(ip) are used.
    type: list
    elements: dict
    required: true
  bios_file:
    description: The boot file BIOS PXE clients need (C(dhcp_bios_boot_file)).
    type: str
    default: undionly.kpxe
  uefi_file:
    description: The boot file UEFI x64 PXE clients need (C(dhcp_uefi_boot_file)).
    type: str
    default: ipxe.efi
  ipxe_targets:
    description: What an iPXE client may be offered - matchbox's C(/boot.ipxe) URL and/or the TFTP chain script.
    type: list
    elements: str
    required: true
  next_server:
    description: The TFTP server the first-stage files must come from; empty to accept any.
    type: str
    default: ""
  timeout:
    description:
      - Seconds to listen for offers.
      - dnsmasq pings an address of its pool before offering it, which delays a first offer by about 3 seconds.
      - Then at most 3 more seconds for the ACKs of proxyDHCP servers on port 4011.
    type: float
    default: 5
  identify:
    description:
      - Name each DHCPDISCOVER C(netboot-talos-diagnose) (option 12), so that reading the boot server's logs
        (M(netboot.talos.boot_logs)) leaves diagnose's own exchanges out of what the machines did.
      - V(false) sends them exactly as the firmware would.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Sends DHCPDISCOVERs, and DHCPREQUESTs to proxyDHCP servers' port 4011 only; no lease is taken.
"""

EXAMPLES = r"""
- name: Ask the DHCP servers what each node's firmware is offered
  netboot.talos.dhcp_probe:
    interface: eth1
    nodes: "{{ validated.nodes }}"
    ipxe_targets: [http://10.0.20.50:8080/boot.ipxe]
    next_server: 10.0.20.50
  register: dhcp
"""

RETURN = r"""
nodes:
  description: Per node name, its C(dhcp) verdicts (C(link), C(status), C(expected), C(seen), C(action)).
  returned: always
  type: dict
findings:
  description: Verdicts about the segment as a whole (which servers answer; two offering addresses).
  returned: always
  type: list
  elements: dict
offers:
  description:
    - Every offer heard, with the node and client kind it answered.
    - A proxyDHCP offer carries the boot file and next-server of its port 4011 ACK, and C(port_4011) says whether one came.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.netboot.talos.plugins.module_utils import matchbox
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import dhcp
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type="str", default=""),
            nodes=dict(type="list", elements="dict", required=True),
            bios_file=dict(type="str", default="undionly.kpxe"),
            uefi_file=dict(type="str", default="ipxe.efi"),
            ipxe_targets=dict(type="list", elements="str", required=True),
            next_server=dict(type="str", default=""),
            timeout=dict(type="float", default=5),
            identify=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    interface = params["interface"]
    if not interface:
        module.exit_json(changed=False, nodes={}, offers=[], findings=[v.skipped(
            "dhcp", "DHCP not probed: no interface on the node network (set dhcp_interface of the boot server, or -e diagnose_interface=<interface>)")])
    if dhcp.BOOTP is None:
        module.fail_json(msg=missing_required_lib("scapy"), exception=dhcp.SCAPY_IMPORT_ERROR)
    try:
        macs = [matchbox.normalize_mac(node["mac"]) for node in params["nodes"]]
        offers = dhcp.probe(interface, macs, params["timeout"], params["identify"])
    except (ValueError, KeyError) as exc:
        module.fail_json(msg="nodes: %s" % exc)
    except OSError as exc:
        why = "DHCP not probed: interface %s cannot send DHCP (%s); set diagnose_interface" % (interface, exc)
        module.exit_json(changed=False, nodes={node["name"]: [v.skipped("dhcp", why)] for node in params["nodes"]},
                         findings=[v.warning("dhcp", "DISCOVERs from %s" % interface, why, "run diagnose as root on the boot server")],
                         offers=[])
    expected = dhcp.Expected(params["bios_file"], params["uefi_file"], params["ipxe_targets"], params["next_server"])
    nodes = {node["name"]: dhcp.node_verdicts(node, offers, expected, interface) for node in params["nodes"]}
    heard = [dict(offer, kind=pair[1]) for pair, kind_offers in sorted(offers.items()) for offer in kind_offers]
    module.exit_json(changed=False, nodes=nodes, findings=dhcp.server_findings(offers, interface), offers=heard)


if __name__ == "__main__":
    main()
