# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""What each machine last did, read from the boot server's logs: dnsmasq's DHCP exchanges (log-dhcp),
tftpd's read requests (syslog) and matchbox's HTTP requests (its container log).

dnsmasq logs by MAC, tftpd by IP (mapped to a MAC through the addresses dnsmasq offered and the
inventory's talos_ip), matchbox by the ?mac= of iPXE's requests. A MAC that is in no host_vars is
shown next to the node whose MAC is closest: a mistyped talos_mac looks exactly like that.
"""

from __future__ import annotations

import re
import urllib.parse

from ansible_collections.netboot.talos.plugins.module_utils import matchbox
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v

SYSLOG_TIME = r"(?P<time>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)"
# "Dec  1 09:12:24 [host facility.level] dnsmasq-dhcp[20204]: 4282342215 DHCPOFFER(nbt-br0) 10.250.50.11 52:54:00:50:00:11"
DNSMASQ = re.compile(SYSLOG_TIME + r" .*?dnsmasq-dhcp\[\d+\]: (?:(?P<xid>\d+) )?(?P<what>.*)$")
EXCHANGE = re.compile(r"^(?P<message>DHCP[A-Z]+|PXE|BOOTP)\([^)]*\) (?P<rest>.*)$")
# "Dec  1 09:13:06 vm daemon.notice in.tftpd[22005]: RRQ from 10.250.50.21 filename ipxe.efi"
TFTPD = re.compile(SYSLOG_TIME + r" .*?in\.tftpd\[\d+\]: RRQ from (?P<ip>[\d.]+) filename (?P<file>\S+)")
# logrus: time="2026-12-01T09:12:40Z" level=info msg="HTTP GET /ipxe?mac=52-54-00-50-00-11&arch=x86_64"
MATCHBOX = re.compile(r'time="(?P<time>[^"]+)" level=\w+ msg="HTTP GET (?P<path>[^"]+)"')
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
ARCH = re.compile(r"PXEClient:Arch:(\d{5})")
ARCH_NAMES = {0: "BIOS", 6: "UEFI ia32", 7: "UEFI x64", 9: "UEFI x64", 11: "UEFI arm64"}
# Kept per MAC: the last exchange, the last few files and iPXE requests.
KEEP = 3
NEAR = 2
# How diagnose's own requests show in the logs, so that they are never taken for a machine's: its
# DHCPDISCOVERs carry this host name (option 12; dnsmasq's log-dhcp logs "client provides name:"),
# its /ipxe requests this query parameter (matchbox ignores labels no selector asks for).
PROBE_CLIENT_NAME = "netboot-talos-diagnose"
PROBE_QUERY = ("probe", "netboot-talos-diagnose")


def mac_distance(one, other):
    """Hex digits in which two normalised MACs differ."""
    return sum(a != b for a, b in zip(one.replace(":", ""), other.replace(":", "")))


class Activity:
    """What the logs say each MAC did, in the order the logs say it."""

    def __init__(self):
        self.dhcp = {}  # mac -> {"time", "messages", "ip", "client", "file"} of its last exchange
        self.tftp = {}  # mac or "ip:<ip>" -> [(time, file)]
        self.ipxe = {}  # mac -> [(time, path)]
        self.address_of = {}  # ip -> mac, from what dnsmasq offered

    def read_dnsmasq(self, lines):
        details = {}  # xid -> client kind and boot file, logged on lines of their own
        for line in lines:
            match = DNSMASQ.search(line)
            if not match:
                continue
            xid, what = match.group("xid"), match.group("what")
            seen = details.setdefault(xid, {})
            exchange = EXCHANGE.match(what)
            if exchange:
                self._exchange(match.group("time"), xid, exchange, seen)
            elif what.startswith("vendor class:") and ARCH.search(what):
                seen["arch"] = int(ARCH.search(what).group(1))
            elif what.startswith("user class:"):
                seen["user_class"] = what.split(":", 1)[1].strip()
            elif what.startswith("client provides name:"):
                seen["client_name"] = what.split(":", 1)[1].strip()
            elif "bootfile-name" in what:
                seen["file"] = what.split("bootfile-name", 1)[1].strip()

    def _exchange(self, when, xid, exchange, seen):
        if seen.get("client_name") == PROBE_CLIENT_NAME:
            return  # diagnose's own DISCOVER (it is logged before the exchange's other lines)
        words = exchange.group("rest").split()
        mac = next((word.lower() for word in words if MAC.match(word.lower())), None)
        if mac is None:
            return
        ip = next((word for word in words if ADDRESS.match(word)), None)
        entry = self.dhcp.get(mac)
        if entry is None or entry["xid"] != xid:
            entry = self.dhcp[mac] = {"xid": xid, "start": when, "messages": [], "ip": None, "details": seen}
        entry["time"] = when
        entry["messages"].append(exchange.group("message"))
        if ip:
            entry["ip"] = ip
            self.address_of[ip] = mac

    def read_tftpd(self, lines):
        for line in lines:
            match = TFTPD.search(line)
            if match:
                self.tftp.setdefault(match.group("ip"), []).append((match.group("time"), match.group("file")))

    def read_matchbox(self, lines):
        for line in lines:
            match = MATCHBOX.search(line)
            if not match:
                continue
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(match.group("path")).query)
            if PROBE_QUERY[1] in query.get(PROBE_QUERY[0], []):
                continue  # diagnose asked, not a machine
            try:
                mac = matchbox.normalize_mac(query.get("mac", [""])[0])
            except ValueError:
                continue
            self.ipxe.setdefault(mac, []).append((match.group("time"), match.group("path")))

    def asked(self, mac):
        """Whether a machine asked DHCP or matchbox for anything under this MAC (TFTP logs only IPs)."""
        return mac in self.dhcp or mac in self.ipxe

    def macs(self):
        return set(self.dhcp) | set(self.ipxe) | {self.address_of[ip] for ip in self.tftp if ip in self.address_of}

    def files_of(self, mac, ip=None):
        addresses = {address for address, owner in self.address_of.items() if owner == mac} | ({ip} if ip else set())
        fetched = [entry for address in sorted(addresses) for entry in self.tftp.get(address, [])]
        return sorted(fetched)[-KEEP:]

    def describe(self, mac, ip=None):
        """One line of what this MAC last did; empty when the logs hold nothing of it."""
        parts = []
        exchange = self.dhcp.get(mac)
        if exchange:
            details = exchange["details"]
            client = ARCH_NAMES.get(details.get("arch"), "arch %s" % details.get("arch")) if "arch" in details else ""
            if details.get("user_class") == "iPXE":
                client = (client + " iPXE").strip()
            parts.append("DHCP %s %s%s%s%s" % (exchange["time"], "/".join(_collapse(exchange["messages"])),
                                               " " + exchange["ip"] if exchange["ip"] else "", " (%s)" % client if client else "",
                                               ", boot file %s" % details["file"] if details.get("file") else ""))
        files = self.files_of(mac, ip)
        if files:
            parts.append("TFTP " + ", ".join("%s %s" % (name, when) for when, name in files))
        requests = self.ipxe.get(mac, [])[-KEEP:]
        if requests:
            parts.append("matchbox " + ", ".join("%s %s" % (path.split("?")[0], when) for when, path in requests))
        return "; ".join(parts)


def _collapse(messages):
    """DHCPDISCOVER DHCPDISCOVER DHCPOFFER -> DHCPDISCOVER DHCPOFFER (retries say nothing new)."""
    return [message for index, message in enumerate(messages) if index == 0 or messages[index - 1] != message]


def _off(distance):
    return "%d hex digit%s off" % (distance, "" if distance == 1 else "s")


def _meant_for(stranger, activity, known):
    """The node a MAC in no host_vars was most likely meant for: the closest, and among MACs equally
    close one under which no machine asked for anything (a mistyped talos_mac never shows up itself)."""
    if not known:
        return None
    return min(known, key=lambda mac: (mac_distance(mac, stranger), activity.asked(mac)))


def _stranger_finding(stranger, activity, known):
    """A MAC in no host_vars, with the node it was most likely meant for; returns (finding, closest, distance)."""
    closest = _meant_for(stranger, activity, known)
    distance = mac_distance(closest, stranger) if closest else None
    seen = "%s, in no host_vars: %s" % (stranger, activity.describe(stranger) or "seen")
    if closest:
        seen += "; closest node %s (%s, %s)" % (known[closest]["name"], closest, _off(distance))
    if closest and distance <= NEAR:
        action = "if this machine is %s, set talos_mac: %s in its host_vars" % (known[closest]["name"], stranger)
    else:
        action = "a machine the inventory does not know boots from this network"
    return v.warning("logs", "requests only from MACs in host_vars", seen, action), closest, distance


def verdicts(nodes, activity, sources):
    """Per node its "logs" verdict, and the findings: MACs in no host_vars, each by its closest node."""
    known = {matchbox.normalize_mac(node["mac"]): node for node in nodes}
    near, findings = {}, []
    for stranger in sorted(activity.macs() - set(known)):
        finding, closest, distance = _stranger_finding(stranger, activity, known)
        findings.append(finding)
        if closest and distance <= NEAR:
            near.setdefault(closest, []).append((stranger, distance))
    result = {}
    for mac, node in known.items():
        seen = activity.describe(mac, node.get("ip")) or "nothing in %s" % ", ".join(sources)
        if mac in near:
            others = ", ".join("%s (%s): %s" % (other, _off(distance), activity.describe(other)) for other, distance in near[mac])
            result[node["name"]] = [v.warning("logs", "the machine's requests under its talos_mac %s" % mac,
                                              "%s; a MAC close to it booted: %s" % (seen, others),
                                              "if that machine is %s, its talos_mac is mistyped: set it to the MAC the machine sends"
                                              % node["name"])]
        else:
            result[node["name"]] = [v.ok("logs", seen)]
    return result, findings
