"""diagnose's DHCP link against proxyDHCP servers: dhcp_probe sends each client kind's DHCPREQUEST to
the proxy's port 4011, as PXE firmware does, and judges the boot file and next-server of its ACK.
Real dnsmasq in proxy mode beside a router (dnsmasq with the nodes' reservations), on a node network
of network namespaces (nbt-u6-*, see test_diagnose_dhcp.Segment), through ansible-playbook.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from test_diagnose_dhcp import SERVER_IP, ROGUE_IP, KINDS, Segment, dhcp_of

BIOS, UEFI7, UEFI9, IPXE_BIOS, IPXE_UEFI = KINDS
LOOP = "the iPXE loop - iPXE is handed an iPXE binary and loads itself again"


@pytest.fixture(scope="module")
def segment(tmp_path_factory):
    made = Segment(tmp_path_factory.mktemp("proxydhcp_segment"), tag="nbt-u6-%d" % (os.getpid() % 100000))
    yield made
    made.close()


@pytest.fixture
def proxy_lan(segment):
    segment.router_with_reservations()
    yield segment
    segment.stop_servers()
    subprocess.run(["ip", "netns", "exec", segment.rogue, "iptables", "-F", "INPUT"], capture_output=True, check=False)


def proxy(service_lines, port_4011_dropped=False):
    """A proxyDHCP dnsmasq on the segment (the rogue's namespace) with these pxe-service lines."""
    def start(segment):
        segment.other_dnsmasq(segment.rogue, ROGUE_IP, "dhcp-range=10.0.50.0,proxy,255.255.255.0\ndhcp-userclass=set:ipxe,iPXE\n"
                              + "".join("pxe-service=%s\n" % line for line in service_lines))
        if port_4011_dropped:
            subprocess.run(["ip", "netns", "exec", segment.rogue, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "4011", "-j", "DROP"],
                           check=True, capture_output=True)
    return start


GOOD = ['tag:!ipxe,x86PC,"PXE",undionly.kpxe,%s' % ROGUE_IP, 'tag:!ipxe,X86-64_EFI,"PXE",ipxe.efi,%s' % ROGUE_IP,
        'tag:!ipxe,BC_EFI,"PXE",ipxe.efi,%s' % ROGUE_IP, 'tag:ipxe,x86PC,"matchbox",matchbox.ipxe,%s' % ROGUE_IP,
        'tag:ipxe,X86-64_EFI,"matchbox",matchbox.ipxe,%s' % ROGUE_IP, 'tag:ipxe,BC_EFI,"matchbox",matchbox.ipxe,%s' % ROGUE_IP]
AT = "proxyDHCP %s (port 4011)" % ROGUE_IP
# (proxy, next_server the chain needs, {client kind: what its verdict saw} for node w1; {} = one ok verdict)
CASES = {
    "every kind served": (proxy(GOOD), ROGUE_IP, {}),
    "no iPXE guard: the loop": (
        proxy(['x86PC,"PXE",undionly.kpxe,%s' % ROGUE_IP, 'X86-64_EFI,"PXE",ipxe.efi,%s' % ROGUE_IP, 'BC_EFI,"PXE",ipxe.efi,%s' % ROGUE_IP]),
        ROGUE_IP,
        {IPXE_BIOS: "%s offers boot file undionly.kpxe: %s" % (AT, LOOP), IPXE_UEFI: "%s offers boot file ipxe.efi: %s" % (AT, LOOP)}),
    "files from another TFTP server": (
        proxy(GOOD), SERVER_IP,
        {kind: "%s offers next-server %s for %s" % (AT, ROGUE_IP, name) for kind, name in (
            (BIOS, "undionly.kpxe"), (UEFI7, "ipxe.efi"), (UEFI9, "ipxe.efi"), (IPXE_BIOS, "matchbox.ipxe"), (IPXE_UEFI, "matchbox.ipxe"))}),
    "port 4011 dropped": (proxy(GOOD, port_4011_dropped=True), ROGUE_IP,
                          {kind: "proxyDHCP %s does not answer the request on its port 4011" % ROGUE_IP for kind in KINDS}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_proxydhcp_boot_file_is_asked_on_port_4011_and_judged_per_client_kind(proxy_lan, tmp_path, case):
    start, next_server, expected = CASES[case]
    start(proxy_lan)
    run, report = proxy_lan.diagnose(tmp_path / "run", probe={"ipxe_targets": ["matchbox.ipxe"], "next_server": next_server, "timeout": 3})
    verdicts = dhcp_of(report, "w1")
    if not expected:
        assert run.rc == 0, run.stdout
        (verdict,) = verdicts
        assert verdict["status"] == "ok", verdict
        proxied = " (proxyDHCP %s, port 4011)" % ROGUE_IP
        assert ("bios -> undionly.kpxe%s; uefi7+uefi9 -> ipxe.efi%s; ipxe+ipxe-uefi -> matchbox.ipxe%s" % ((proxied,) * 3)
                in verdict["seen"]), verdict
        return
    assert run.rc != 0, run.stdout
    broken = {entry["seen"].split(": ", 1)[0]: entry["seen"].split(": ", 1)[1] for entry in verdicts if entry["status"] == "broken"}
    assert broken == expected, broken
    for kind, seen in expected.items():
        assert "BROKEN  DHCP           %s: %s\n" % (kind, seen) in run.stdout  # as printed
