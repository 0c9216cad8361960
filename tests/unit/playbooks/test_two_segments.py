"""Two segments, each with its own boot server: configs.yml and boot_server.yml set up both, a machine
on each segment boots from its own (DHCP with busybox udhcpc, the first stage over TFTP with tftp-hpa,
the iPXE script and the machine config over HTTP with curl, all from inside the segment's client
namespace), and a node moved to the other segment in the inventory is removed from the first boot
server and published on the second.

Each segment is a pair of network namespaces joined by a veth pair: the boot server's (dnsmasq and
tftp-hpa as daemons, the matchbox double's container on the host network of that namespace) and the
client's. The boot servers are reached through an interpreter wrapper that enters their namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_runner import REPO, ansible_playbook

IMAGE = "localhost/netboot-test/matchbox-double:latest"
UDHCPC_SCRIPT = REPO / "molecule" / "boot_server" / "files" / "udhcpc-report.sh"
CLUSTER = {
    "talos_cluster_name": "segments", "talos_cluster_endpoint": "https://10.251.1.11:6443", "talos_version": "v1.11.5",
    "talos_network": "10.251.0.0/16", "talos_gateway": "10.251.1.1", "talos_nameservers": ["10.251.1.1"],
    "talos_install_disk": "/dev/vda", "dhcp_enabled": True, "talos_config_publish_prune": True,
}
# segment: (boot server address, client MAC); cp1 stays on segment 1, w1 starts on 2 and moves to 1.
SEGMENTS = {1: "10.251.1.1", 2: "10.251.2.1"}
MACS = {"cp1": "52:54:00:fb:01:11", "w1": "52:54:00:fb:02:12"}


def sh(*argv, check=True):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


class Segments:
    def __init__(self, root):
        if os.geteuid() != 0:
            pytest.fail("two segments need root (network namespaces)")
        if sh("podman", "image", "exists", IMAGE, check=False).returncode != 0:
            sh(str(REPO / "tests" / "fixtures" / "matchbox" / "build-image.sh"), IMAGE)
        self.root = root
        self.tag = "s13%d" % (os.getpid() % 10000)
        self.namespaces = []
        for number, address in SEGMENTS.items():
            server, client = self.server_ns(number), self.client_ns(number)
            for namespace in (server, client):
                sh("ip", "netns", "add", namespace)
                self.namespaces.append(namespace)
                sh("ip", "-n", namespace, "link", "set", "lo", "up")
            sh("ip", "-n", server, "link", "add", "seg", "type", "veth", "peer", "name", "cli", "netns", client)
            sh("ip", "-n", server, "addr", "add", address + "/24", "dev", "seg")
            sh("ip", "-n", server, "link", "set", "seg", "up")
            sh("ip", "-n", client, "link", "set", "cli", "up")
            wrapper = root / ("python%d" % number)
            wrapper.write_text("#!/bin/sh\nexec nsenter --net=/run/netns/%s %s \"$@\"\n" % (server, sys.executable))
            wrapper.chmod(0o755)
        self.assets = root / "assets"
        self.standin()

    def server_ns(self, number):
        return "%sb%d" % (self.tag, number)

    def client_ns(self, number):
        return "%sc%d" % (self.tag, number)

    def standin(self):
        """A kernel-shaped file and an initramfs in Image Factory's layout, as the boot_server scenario makes them."""
        from ansible_collections.netboot.talos.plugins.module_utils.talos import factory

        directory = self.assets / factory.VANILLA_SCHEMATIC / CLUSTER["talos_version"]
        directory.mkdir(parents=True)
        (directory / "kernel-amd64").write_bytes(b"\0" * 514 + b"HdrS" + b"\0" * 4096)
        root = self.root / "initramfs"
        root.mkdir()
        (root / "init").write_text("#!/bin/sh\necho stand-in initramfs\n")
        sh("sh", "-ec", 'cd "$1" && echo init | cpio -o -H newc --quiet | xz --check=crc32 > "$2"', "standin", str(root),
           str(directory / "initramfs-amd64.xz"))

    def boot_server(self, number):
        state = self.root / ("server%d" % number)
        address = SEGMENTS[number]
        return {
            "ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": str(self.root / ("python%d" % number)),
            "talos_matchbox_url": "http://%s:8080" % address,
            "tftp_root": str(state / "tftp"), "tftp_address": address + ":69", "tftp_install_method": "daemon",
            "tftp_pid_file": str(state / "tftpd.pid"),
            "matchbox_image": IMAGE, "matchbox_container_name": "%s-matchbox%d" % (self.tag, number),
            "matchbox_data_dir": str(state / "matchbox"), "matchbox_config_dir": str(state / "matchbox-etc"),
            "matchbox_address": address + ":8080",
            "dhcp_mode": "full", "dhcp_run_as": "daemon", "dhcp_interface": "seg", "dhcp_network": address.rsplit(".", 1)[0] + ".0",
            "dhcp_range_start": address.rsplit(".", 1)[0] + ".100", "dhcp_range_end": address.rsplit(".", 1)[0] + ".150",
            "dhcp_router": address, "dhcp_config_file": str(state / "dnsmasq.conf"), "dhcp_pid_file": str(state / "dnsmasq.pid"),
            "dhcp_lease_file": str(state / "leases"), "dhcp_log_file": str(state / "dnsmasq.log"),
            "talos_assets_local_dir": str(self.assets),
        }

    def inventory(self, w1_segment):
        nodes = {"cp1": {"talos_mac": MACS["cp1"], "talos_ip": "10.251.1.11"},
                 "w1": {"talos_mac": MACS["w1"], "talos_ip": "10.251.%d.12" % w1_segment}}
        path = self.root / "hosts.yml"
        path.write_text(yaml.safe_dump({"all": {
            "vars": dict(CLUSTER, talos_clusters_dir=str(self.root / "clusters")),
            "hosts": {"localhost": {"ansible_connection": "local"}},
            "children": {
                "boot_server": {"hosts": {"segment%d" % n: self.boot_server(n) for n in SEGMENTS}},
                "talos": {"children": {"controlplane": {"hosts": {"cp1": nodes["cp1"]}}, "workers": {"hosts": {"w1": nodes["w1"]}}}},
            }}}))
        return path

    def site(self, w1_segment):
        """configs.yml then boot_server.yml, as site.yml runs them: in one ansible-playbook run (one start-up)."""
        inventory = self.inventory(w1_segment)
        plays = [{"ansible.builtin.import_playbook": str(REPO / "playbooks" / playbook)} for playbook in ("configs.yml", "boot_server.yml")]
        run = ansible_playbook(plays, self.root / "run", inventory=inventory)
        assert run.rc == 0, run.stdout[-5000:] + run.stderr[-3000:]
        return run

    def client(self, number, *argv):
        return sh("ip", "netns", "exec", self.client_ns(number), *argv, check=False)

    def boot(self, number, node):
        """What a machine with node's MAC on segment number gets: its DHCP answer, the first stage, its script and config."""
        sh("ip", "-n", self.client_ns(number), "link", "set", "cli", "address", MACS[node])
        dhcp = self.client(number, "busybox", "udhcpc", "-i", "cli", "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", str(UDHCPC_SCRIPT))
        answer = dict(field.split("=", 1) for line in dhcp.stdout.splitlines() if line.startswith("ip=") for field in line.split())
        result = {"dhcp": answer}
        if not answer:
            return result
        sh("ip", "-n", self.client_ns(number), "addr", "replace", answer["ip"] + "/24", "dev", "cli")
        first = self.root / ("first-stage-%d-%s" % (number, node))
        result["tftp"] = self.client(number, "tftp", answer["siaddr"], "-c", "get", "undionly.kpxe", str(first)).returncode == 0 \
            and first.exists() and first.stat().st_size > 0
        base = "http://%s:8080" % SEGMENTS[number]
        hexhyp = MACS[node].replace(":", "-")
        result["ipxe"] = self.client(number, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "%s/ipxe?mac=%s" % (base, hexhyp)).stdout
        result["config"] = self.client(number, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                       "%s/assets/talos/configs/%s.yaml" % (base, hexhyp)).stdout
        return result

    def published(self, number):
        data = self.root / ("server%d" % number) / "matchbox"
        return sorted(path.stem for path in (data / "groups").glob("*.json"))

    def reservations(self, number):
        return (self.root / ("server%d" % number) / "dnsmasq.conf").read_text()

    def close(self):
        for number in SEGMENTS:
            sh("podman", "rm", "--force", "--ignore", "%s-matchbox%d" % (self.tag, number), check=False)
        for namespace in self.namespaces:
            pids = sh("ip", "netns", "pids", namespace, check=False).stdout.split()
            if pids:
                sh("kill", *pids, check=False)
            sh("ip", "netns", "del", namespace, check=False)


@pytest.fixture
def segments(tmp_path):
    for tool in ("busybox", "tftp", "curl", "dnsmasq", "in.tftpd", "podman", "nsenter"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            pytest.fail("%s is missing (make deps)" % tool)
    made = Segments(tmp_path)
    yield made
    made.close()


def test_each_segment_boots_its_own_nodes_and_a_moved_node_follows(segments):
    segments.site(w1_segment=2)
    assert segments.published(1) == ["cp1"] and segments.published(2) == ["w1"]
    assert MACS["cp1"] in segments.reservations(1) and MACS["w1"] not in segments.reservations(1)
    assert MACS["w1"] in segments.reservations(2) and MACS["cp1"] not in segments.reservations(2)

    cp1 = segments.boot(1, "cp1")
    assert cp1["dhcp"] == {"ip": "10.251.1.11", "siaddr": "10.251.1.1", "boot_file": "undionly.kpxe"}, cp1
    assert cp1["tftp"] and cp1["ipxe"] == "200" and cp1["config"] == "200", cp1
    w1 = segments.boot(2, "w1")
    assert w1["dhcp"] == {"ip": "10.251.2.12", "siaddr": "10.251.2.1", "boot_file": "undionly.kpxe"}, w1
    assert w1["tftp"] and w1["ipxe"] == "200" and w1["config"] == "200", w1
    # A machine on the wrong segment is not known there: an address from the pool, no iPXE script.
    stranger = segments.boot(1, "w1")
    assert stranger["dhcp"]["ip"] != "10.251.1.12" and stranger["ipxe"] == "404", stranger

    segments.site(w1_segment=1)
    assert segments.published(1) == ["cp1", "w1"] and segments.published(2) == []
    assert MACS["w1"] in segments.reservations(1) and MACS["w1"] not in segments.reservations(2)
    assert not list((segments.root / "server2" / "matchbox" / "assets" / "talos" / "configs").glob("*.yaml"))
    moved = segments.boot(1, "w1")
    assert moved["dhcp"]["ip"] == "10.251.1.12" and moved["ipxe"] == "200" and moved["config"] == "200", moved
    left = segments.boot(2, "w1")
    assert left["dhcp"]["ip"] != "10.251.2.12" and left["ipxe"] == "404" and left["config"] == "404", left
