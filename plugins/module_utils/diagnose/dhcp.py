# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The DHCP link, checked from the boot server: DHCPDISCOVERs sent the way each client kind sends
them, with the node's MAC, and every OFFER that comes back held against what the chain needs.

Packets are built and read with scapy. Only DISCOVERs are sent: no server hands out a lease for
them, so the probe is safe at any time.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import time
import traceback

from ansible_collections.netboot.talos.plugins.module_utils import matchbox
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import logs
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v

try:
    from scapy.layers.dhcp import BOOTP, DHCP
except ImportError:  # the module reports missing_required_lib
    BOOTP = DHCP = None
    SCAPY_IMPORT_ERROR = traceback.format_exc()
else:
    SCAPY_IMPORT_ERROR = None

# The firmware kinds that ask for a boot file: (key, title, option 93 client arch, iPXE).
CLIENT_KINDS = (
    ("bios", "BIOS PXE (arch 0)", 0, False),
    ("uefi7", "UEFI x64 PXE (arch 7)", 7, False),
    ("uefi9", "UEFI x64 PXE (arch 9)", 9, False),
    ("ipxe", "iPXE on BIOS (user class iPXE, option 175)", 0, True),
    ("ipxe-uefi", "iPXE on UEFI (user class iPXE, option 175)", 7, True),
)
TITLES = {kind[0]: kind[1] for kind in CLIENT_KINDS}
# The encapsulated options iPXE sends (175): a "bus id" and "priority" as a real client does.
IPXE_OPTION_175 = b"\xb1\x05\x01\x10\xec\x80\x00"
BOOTP_SERVER_PORT, BOOTP_CLIENT_PORT = 67, 68
RESEND = 1.0
NO_ADDRESS = "0.0.0.0"
# iPXE's own binaries (distribution names): iPXE offered one of these loads itself again and again.
IPXE_BINARIES = ("undionly.kpxe", "undionly.kkpxe", "undionly.kkkpxe", "ipxe.pxe", "ipxe.efi", "snponly.efi", "snp.efi", "ipxe.lkrn")


def discover(mac, arch, ipxe, xid, identify=True):
    """A DHCPDISCOVER as that firmware sends it, with chaddr = mac, asking for a broadcast answer;
    identify names it as diagnose's (option 12), so that its exchange in dnsmasq's log is known as ours."""
    options = [
        ("message-type", "discover"),
        ("vendor_class_id", b"PXEClient:Arch:%05d:UNDI:00%s" % (arch, b"3010" if arch else b"2001")),
        (93, arch.to_bytes(2, "big")),
        (94, b"\x01\x02\x01"),
        ("param_req_list", [1, 3, 6, 43, 54, 60, 66, 67, 175]),
    ] + ([("hostname", logs.PROBE_CLIENT_NAME.encode())] if identify else [])
    if ipxe:
        options += [("user_class", b"iPXE"), (175, IPXE_OPTION_175)]
    packet = BOOTP(op=1, htype=1, hlen=6, xid=xid, flags=0x8000, chaddr=bytes.fromhex(mac.replace(":", "")))
    return bytes(packet / DHCP(options=options + ["end"]))


def read_offer(data, source):
    """An OFFER's server, offered address, next server and boot file; None for anything else."""
    try:
        packet = BOOTP(data)
    except Exception:  # scapy raises many kinds on a runt packet; it is simply not an offer
        return None
    if packet.op != 2 or DHCP not in packet:
        return None
    options = {entry[0]: entry[1] for entry in packet[DHCP].options if isinstance(entry, tuple) and len(entry) >= 2}
    if options.get("message-type") != 2:
        return None
    next_server = _text(options.get("tftp_server_name")) or (packet.siaddr if packet.siaddr != NO_ADDRESS else "")
    return {
        "xid": packet.xid,
        "mac": ":".join("%02x" % byte for byte in bytes(packet.chaddr)[:6]),
        "server": options.get("server_id") or source,
        "address": packet.yiaddr if packet.yiaddr != NO_ADDRESS else "",
        "next_server": next_server,
        "file": _text(packet.file) or _text(options.get("boot-file-name")),
    }


def _text(value):
    if isinstance(value, bytes):
        value = value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return (value or "").strip()


def probe(interface, macs, timeout, identify=True):
    """Every OFFER to DISCOVERs of each client kind for each MAC, heard on interface for timeout seconds.

    Returns {(mac, kind): [offer, ...]}. Raises OSError when the interface cannot be used."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("", BOOTP_CLIENT_PORT))
        packets = {}
        for mac in macs:
            for key, _title, arch, ipxe in CLIENT_KINDS:
                xid = int.from_bytes(os.urandom(4), "big")
                packets[xid] = ((mac, key), discover(mac, arch, ipxe, xid, identify))
        return _collect(sock, packets, timeout)
    finally:
        sock.close()


def _collect(sock, packets, timeout):
    """Send, listen, and send again each second what fewer servers answered than answered others,
    as firmware retries: a server checking an address (dnsmasq pings it first) answers late or
    not at all the first time."""
    offers = {pair: [] for pair, _packet in packets.values()}
    deadline, resend = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= resend:
            most = max(len(found) for found in offers.values())
            for pair, packet in packets.values():
                if not offers[pair] or len(offers[pair]) < most:
                    sock.sendto(packet, ("255.255.255.255", BOOTP_SERVER_PORT))
            resend = time.monotonic() + RESEND
        if select.select([sock], [], [], max(0.0, min(resend, deadline) - time.monotonic()))[0]:
            data, sender = sock.recvfrom(4096)
            offer = read_offer(data, sender[0])
            if offer and offer["xid"] in packets and offer not in offers[packets[offer["xid"]][0]]:
                offers[packets[offer["xid"]][0]].append(offer)
    return offers


class Expected:
    """What the chain needs from DHCP: first-stage files, where iPXE goes next, the TFTP server."""

    def __init__(self, bios_file, uefi_file, ipxe_targets, next_server):
        self.files = {"bios": bios_file, "uefi7": uefi_file, "uefi9": uefi_file}
        self.ipxe_targets = list(ipxe_targets)
        self.next_server = next_server

    def wants(self, kind):
        return " or ".join(self.ipxe_targets) if kind.startswith("ipxe") else self.files[kind]

    def problem(self, kind, offer):
        """Why this offer does not start the chain for this client kind (None when it does)."""
        boot_file = offer["file"]
        if kind.startswith("ipxe"):
            if self.is_ipxe_binary(boot_file):
                return "boot file %s: the iPXE loop - iPXE is handed an iPXE binary and loads itself again" % boot_file
            if boot_file not in self.ipxe_targets:
                return "boot file %s" % boot_file
        elif boot_file != self.files[kind]:
            return "boot file %s" % boot_file
        return None if "://" in boot_file else self.next_server_problem(offer, boot_file)

    def is_ipxe_binary(self, boot_file):
        """The first-stage files (also with dnsmasq's PXE layer suffix .0), or any of iPXE's binaries."""
        name = boot_file.rsplit("/", 1)[-1]
        name = name[:-2] if name.endswith(".0") else name
        return name in self.files.values() or name.lower() in IPXE_BINARIES or name.lower().startswith("ipxe-")

    def next_server_problem(self, offer, boot_file=""):
        """A proxyDHCP answer without a file may leave next-server out; one naming it must name ours."""
        if not self.next_server or offer["next_server"] == self.next_server or not (offer["next_server"] or boot_file):
            return None
        return "next-server %s%s" % (offer["next_server"] or "none", " for " + boot_file if boot_file else "")


def node_verdicts(node, offers, expected, interface):
    """The DHCP verdicts of one node from the offers to its MAC: one line when every client kind is
    served as the chain needs, else one per client kind that is not."""
    mac = matchbox.normalize_mac(node["mac"])
    by_kind = {key: offers.get((mac, key), []) for key in TITLES}
    if not any(by_kind.values()):
        return [v.broken("dhcp", "a DHCP server answers %s's DISCOVERs" % mac,
                         "no DHCP server answered a DISCOVER for %s on %s" % (mac, interface),
                         "start the DHCP server (playbooks/boot_server.yml, role dhcp), or check that %s is on the node network"
                         % interface)]
    found = [_address_verdict(node, mac, by_kind)]
    for key, kind_offers in by_kind.items():
        found += _kind_verdicts(key, kind_offers, expected)
    problems = [entry for entry in found if entry and entry["status"] != v.OK]
    if problems:
        return problems
    servers = sorted({offer["server"] for kind_offers in by_kind.values() for offer in kind_offers})
    return [v.ok("dhcp", "%s gets %s; %s from %s" % (mac, found[0]["seen"], _summary(by_kind), ", ".join(servers)))]


def _address_verdict(node, mac, by_kind):
    addresses = sorted({offer["address"] for kind_offers in by_kind.values() for offer in kind_offers if offer["address"]})
    if not addresses:
        return v.broken("dhcp", "an address for %s" % mac, "only proxyDHCP answered: no server offers %s an address" % mac,
                        "the segment's DHCP server (router) must answer this MAC; check it serves the node network")
    if addresses != [node["ip"]]:
        return v.warning("dhcp", "%s offered its talos_ip %s" % (mac, node["ip"]), "%s is offered %s" % (mac, ", ".join(addresses)),
                         "reserve %s for %s in the DHCP server (playbooks/dhcp_settings.yml prints the lines), "
                         "or fix talos_ip of %s" % (node["ip"], mac, node["name"]))
    return v.ok("dhcp", "address %s" % node["ip"])


def _kind_verdicts(key, kind_offers, expected):
    title = TITLES[key]
    with_file = [offer for offer in kind_offers if offer["file"]]
    # proxyDHCP names the file only on port 4011, in answer to a DHCPREQUEST, which is never sent.
    proxies = [offer for offer in kind_offers if not offer["address"] and not offer["file"]]
    wanted = "%s offered %s (next-server %s)" % (title, expected.wants(key), expected.next_server or "any")
    if not with_file and not proxies:
        return [v.broken("dhcp", wanted, "%s: no server offers a boot file" % title,
                         "configure the DHCP server's boot options (playbooks/dhcp_settings.yml prints them)")]
    result = []
    for offer in with_file or proxies:
        problem = expected.problem(key, offer) if offer["file"] else expected.next_server_problem(offer)
        if problem:
            result.append(v.broken("dhcp", wanted, "%s: %s offers %s" % (title, offer["server"], problem), _action(key, problem, offer)))
    return result


def _action(key, problem, offer):
    if "iPXE loop" in problem:
        return ("the DHCP server at %s must tell iPXE clients (user class iPXE or option 175) apart and hand them the "
                "matchbox script, not a binary (role dhcp does; playbooks/dhcp_settings.yml prints the lines)" % offer["server"])
    return "fix the boot options of the DHCP server at %s for %s (playbooks/dhcp_settings.yml prints them)" % (offer["server"], TITLES[key])


def _summary(by_kind):
    files = {}
    for key, kind_offers in by_kind.items():
        for offer in kind_offers:
            name = offer["file"] or (not offer["address"] and "proxyDHCP %s (file named on port 4011)" % offer["server"])
            if name:
                files.setdefault(name, []).append(key)
    return "; ".join("%s -> %s" % ("+".join(sorted(set(keys), key=list(TITLES).index)), name) for name, keys in files.items())


def server_findings(offers, interface):
    """Boot-server findings: two servers offering addresses on one segment, and who answered."""
    address_servers, proxy_servers = set(), set()
    for kind_offers in offers.values():
        for offer in kind_offers:
            (address_servers if offer["address"] else proxy_servers).add(offer["server"])
    if len(address_servers) > 1:
        return [v.broken("dhcp", "one DHCP server offers addresses on %s" % interface,
                         "%d DHCP servers offer addresses on %s: %s" % (len(address_servers), interface, ", ".join(sorted(address_servers, key=_ip_key))),
                         "switch off every DHCP server but one on the node network (a machine takes whichever answers first)")]
    answering = sorted(address_servers | proxy_servers, key=_ip_key)
    if not answering:
        return []
    proxies = " (proxyDHCP: %s)" % ", ".join(sorted(proxy_servers, key=_ip_key)) if proxy_servers else ""
    return [v.ok("dhcp", "DHCP servers answering on %s: %s%s" % (interface, ", ".join(answering), proxies))]


def _ip_key(address):
    try:
        return (0, int(ipaddress.ip_address(address)))
    except ValueError:
        return (1, address)
