# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The DHCP link, checked from the boot server: DHCPDISCOVERs sent the way each client kind sends
them, with the node's MAC, and every OFFER that comes back held against what the chain needs.

A proxyDHCP server (an offer without address and boot file) names the boot file only on its port
4011, in its ACK to the DHCPREQUEST a PXE client sends there (PXE spec 2.1: option 60 PXEClient,
93, 94, 97 and the boot item chosen from the offer's menu, option 43): that request is sent too,
and the ACK's boot file and next-server are judged like a full DHCP server's offer.

Packets are built and read with scapy. No lease is taken: DISCOVERs take none, and a proxyDHCP
server hands out no address.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import socket
import struct
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

# The firmware kinds that ask for a boot file: (key, title, option 93 client arch, iPXE). A BIOS
# machine asks twice: its NIC's plain PXE ROM (no user class) is to get undionly.kpxe, and the iPXE
# that runs from it (user class iPXE, as iPXE in a NIC ROM) the chain script.
CLIENT_KINDS = (
    ("bios", "BIOS plain PXE (arch 0)", 0, False),
    ("uefi7", "UEFI x64 PXE (arch 7)", 7, False),
    ("uefi9", "UEFI x64 PXE (arch 9)", 9, False),
    ("ipxe", "iPXE on BIOS, from undionly.kpxe or a NIC ROM (user class iPXE)", 0, True),
    ("ipxe-uefi", "iPXE on UEFI (user class iPXE)", 7, True),
)
TITLES = {kind[0]: kind[1] for kind in CLIENT_KINDS}
# The encapsulated options iPXE sends (175): a "bus id" and "priority" as a real client does.
IPXE_OPTION_175 = b"\xb1\x05\x01\x10\xec\x80\x00"
BOOTP_SERVER_PORT, BOOTP_CLIENT_PORT, PXE_PORT = 67, 68, 4011
SIOCGIFADDR = 0x8915
RESEND = 1.0
NO_ADDRESS = "0.0.0.0"
# iPXE's own binaries (distribution names): iPXE offered one of these loads itself again and again.
IPXE_BINARIES = ("undionly.kpxe", "undionly.kkpxe", "undionly.kkkpxe", "ipxe.pxe", "ipxe.efi", "snponly.efi", "snp.efi", "ipxe.lkrn")


def discover(mac, arch, ipxe, xid, identify=True):
    """A DHCPDISCOVER as that firmware sends it, with chaddr = mac, asking for a broadcast answer;
    identify names it as diagnose's (option 12), so that its exchange in dnsmasq's log is known as ours."""
    return _client_packet("discover", mac, arch, ipxe, xid, identify, flags=0x8000)


def pxe_request(mac, arch, ipxe, xid, boot_item, ciaddr, identify=True):
    """The DHCPREQUEST that firmware sends to a proxyDHCP server's port 4011: its machine id (97) and
    the boot item it chose from the offer's menu (option 43, sub-option 71: type, layer 0).

    A client sends it from the address it leased (ciaddr), where the ACK goes; the probe has none,
    so ciaddr is its own address on the node network (dnsmasq answers only a ciaddr in its range)."""
    extra = [(97, b"\x00" + bytes(10) + bytes.fromhex(mac.replace(":", "")))]
    if boot_item is not None:
        extra.append(("vendor_specific", b"\x47\x04" + boot_item.to_bytes(2, "big") + b"\x00\x00\xff"))
    return _client_packet("request", mac, arch, ipxe, xid, identify, extra=extra, ciaddr=ciaddr)


def _client_packet(message, mac, arch, ipxe, xid, identify, flags=0, extra=(), ciaddr=NO_ADDRESS):
    options = [
        ("message-type", message),
        ("vendor_class_id", b"PXEClient:Arch:%05d:UNDI:00%s" % (arch, b"3010" if arch else b"2001")),
        (93, arch.to_bytes(2, "big")),
        (94, b"\x01\x02\x01"),
        ("param_req_list", [1, 3, 6, 43, 54, 60, 66, 67, 175]),
    ] + list(extra) + ([("hostname", logs.PROBE_CLIENT_NAME.encode())] if identify else [])
    if ipxe:
        options += [("user_class", b"iPXE"), (175, IPXE_OPTION_175)]
    packet = BOOTP(op=1, htype=1, hlen=6, xid=xid, flags=flags, ciaddr=ciaddr, chaddr=bytes.fromhex(mac.replace(":", "")))
    return bytes(packet / DHCP(options=options + ["end"]))


def read_offer(data, source, message_type=2):
    """An OFFER's (or with message_type 5, an ACK's) server, offered address, next server, boot file
    and first PXE menu item; None for anything else."""
    try:
        packet = BOOTP(data)
    except Exception:  # scapy raises many kinds on a runt packet; it is simply not an offer
        return None
    if packet.op != 2 or DHCP not in packet:
        return None
    options = {entry[0]: entry[1] for entry in packet[DHCP].options if isinstance(entry, tuple) and len(entry) >= 2}
    if options.get("message-type") != message_type:
        return None
    next_server = _text(options.get("tftp_server_name")) or (packet.siaddr if packet.siaddr != NO_ADDRESS else "")
    return {
        "xid": packet.xid,
        "mac": ":".join("%02x" % byte for byte in bytes(packet.chaddr)[:6]),
        "server": options.get("server_id") or source,
        "address": packet.yiaddr if packet.yiaddr != NO_ADDRESS else "",
        "next_server": next_server,
        "file": _text(packet.file) or _text(options.get("boot-file-name")),
        "boot_item": _boot_item(options.get("vendor_specific")),
    }


def _boot_item(vendor_options):
    """The first boot item type of a PXE boot menu (option 43, sub-option 9) other than local boot (0)."""
    data, index = vendor_options if isinstance(vendor_options, bytes) else b"", 0
    while index + 2 <= len(data) and data[index] != 255:
        code, length = data[index], data[index + 1]
        value, index = data[index + 2:index + 2 + length], index + 2 + length
        while code == 9 and len(value) >= 3:
            item, value = int.from_bytes(value[:2], "big"), value[3 + value[2]:]
            if item:
                return item
    return None


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
        offers = _collect(sock, packets, timeout)
        _ask_proxies(sock, offers, timeout, interface_address(sock, interface), identify)
        return offers
    finally:
        sock.close()


def interface_address(sock, interface):
    """The interface's IPv4 address (SIOCGIFADDR); 0.0.0.0 when it has none."""
    try:
        request = struct.pack("256s", interface.encode()[:15])
        return socket.inet_ntoa(fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)[20:24])
    except OSError:
        return NO_ADDRESS


def _ask_proxies(sock, offers, timeout, ciaddr, identify):
    """Each proxyDHCP offer gets its boot file and next-server from the server's ACK on port 4011
    (port_4011 says whether one came)."""
    asked = {}
    kinds = {kind[0]: kind for kind in CLIENT_KINDS}
    for (mac, key), kind_offers in offers.items():
        for offer in kind_offers:
            if not offer["address"] and not offer["file"]:
                xid = int.from_bytes(os.urandom(4), "big")
                asked[xid] = (offer, pxe_request(mac, kinds[key][2], kinds[key][3], xid, offer["boot_item"], ciaddr, identify))
                offer["port_4011"] = False
    deadline, resend = time.monotonic() + min(timeout, 3.0), 0.0
    while asked and time.monotonic() < deadline:
        if time.monotonic() >= resend:
            for offer, packet in asked.values():
                sock.sendto(packet, (offer["server"], PXE_PORT))
            resend = time.monotonic() + RESEND
        if select.select([sock], [], [], max(0.0, min(resend, deadline) - time.monotonic()))[0]:
            data, sender = sock.recvfrom(4096)
            ack = read_offer(data, sender[0], message_type=5)
            if ack and ack["xid"] in asked:
                offer = asked.pop(ack["xid"])[0]
                offer.update(file=ack["file"], next_server=ack["next_server"] or offer["next_server"], port_4011=True)


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

    def next_server_problem(self, offer, boot_file):
        if not self.next_server or offer["next_server"] == self.next_server:
            return None
        return "next-server %s for %s" % (offer["next_server"] or "none", boot_file)


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
    # proxyDHCP answers that named no file on port 4011 (no ACK there, or an ACK without one)
    mute = [offer for offer in kind_offers if not offer["address"] and not offer["file"]]
    wanted = "%s offered %s (next-server %s)" % (title, expected.wants(key), expected.next_server or "any")
    if not with_file and not mute:
        return [v.broken("dhcp", wanted, "%s: no server offers a boot file" % title,
                         "configure the DHCP server's boot options (playbooks/dhcp_settings.yml prints them)")]
    result = []
    for offer in with_file:
        problem = expected.problem(key, offer)
        if problem:
            result.append(v.broken("dhcp", wanted, "%s: %s offers %s" % (title, _server(offer), problem), _action(key, problem, offer)))
    for offer in mute:
        answer = "ACKs its port 4011 request without a boot file" if offer.get("port_4011") else "does not answer the request on its port 4011"
        result.append(v.broken("dhcp", wanted, "%s: proxyDHCP %s %s" % (title, offer["server"], answer),
                               "the proxyDHCP server at %s must name a boot file for %s on port 4011 (dnsmasq: a pxe-service "
                               "line for it; role dhcp writes them; open UDP 4011 in its firewall)" % (offer["server"], title)))
    return result


def _server(offer):
    """Who named the file: the server, or a proxyDHCP server on its port 4011."""
    return "proxyDHCP %s (port 4011)" % offer["server"] if "port_4011" in offer else offer["server"]


def _action(key, problem, offer):
    if "iPXE loop" in problem:
        return ("the DHCP server at %s must tell iPXE clients (user class iPXE) apart and hand them the "
                "matchbox script, not a binary (role dhcp does; playbooks/dhcp_settings.yml prints the lines)" % offer["server"])
    return "fix the boot options of the DHCP server at %s for %s (playbooks/dhcp_settings.yml prints them)" % (offer["server"], TITLES[key])


def _summary(by_kind):
    files = {}
    for key, kind_offers in by_kind.items():
        for offer in kind_offers:
            name = offer["file"] and (offer["file"] + (" (proxyDHCP %s, port 4011)" % offer["server"] if "port_4011" in offer else ""))
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
