"""diagnose's DHCP link and "what each machine last did", through Ansible, on a node network made of
network namespaces: the boot server's namespace holds a bridge (its interface on the node network)
and runs dnsmasq as the dhcp role configures it; a router and a rogue server sit on the same
bridge in namespaces of their own. dhcp_probe runs in the boot server's namespace, boot_logs reads
what the real dnsmasq logged, and diagnose_report prints the verdicts as a person reads them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ansible_runner import ansible_playbook

SERVER_IP, ROUTER_IP, ROGUE_IP = "10.0.50.1", "10.0.50.254", "10.0.50.253"
MATCHBOX_URL = "http://%s:8080" % SERVER_IP
IPXE_URL = MATCHBOX_URL + "/boot.ipxe"
INTERFACE = "nodenet"
NODES = [
    {"name": "cp1", "role": "controlplane", "ip": "10.0.50.11", "mac": "52:54:00:32:11:11", "talos_version": "v1.11.5"},
    {"name": "w1", "role": "worker", "ip": "10.0.50.12", "mac": "52:54:00:32:22:22", "talos_version": "v1.11.5"},
]
RESERVATIONS = [{key: node[key] for key in ("name", "mac", "ip")} for node in NODES]
# Every client kind the probe plays, as the report names them.
KINDS = ["BIOS plain PXE (arch 0)", "UEFI x64 PXE (arch 7)", "UEFI x64 PXE (arch 9)",
         "iPXE on BIOS, from undionly.kpxe or a NIC ROM (user class iPXE)", "iPXE on UEFI (user class iPXE)"]


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Segment:
    """The node network: the boot server's bridge and two more servers' namespaces on it."""

    def __init__(self, root, tag=None):
        if os.geteuid() != 0:
            pytest.fail("the DHCP probe needs root (network namespaces)")
        self.root = root
        tag = tag or "h8d%d" % (os.getpid() % 100000)
        self.boot, self.router, self.rogue = tag + "b", tag + "r", tag + "x"
        self.servers = []
        for namespace in (self.boot, self.router, self.rogue):
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", self.boot, "link", "add", "name", INTERFACE, "type", "bridge")
        ip("-n", self.boot, "addr", "add", SERVER_IP + "/24", "dev", INTERFACE)
        ip("-n", self.boot, "link", "set", INTERFACE, "up")
        for namespace, address in ((self.router, ROUTER_IP), (self.rogue, ROGUE_IP)):
            ip("link", "add", "name", namespace, "netns", namespace, "type", "veth", "peer", "name", namespace + "p", "netns", self.boot)
            ip("-n", self.boot, "link", "set", namespace + "p", "master", INTERFACE, "up")
            ip("-n", namespace, "addr", "add", address + "/24", "dev", namespace)
            ip("-n", namespace, "link", "set", namespace, "up")
        self.python = root / "boot-server-python"
        self.python.write_text('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (self.boot, sys.executable))
        self.python.chmod(0o755)
        self.inventory = root / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {
            "localhost": {"ansible_connection": "local"},
            "bootserver": {"ansible_connection": "local", "ansible_python_interpreter": str(self.python)}}}}))

    def close(self):
        self.stop_servers()
        for namespace in (self.boot, self.router, self.rogue):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)

    def stop_servers(self):
        for pid_file in self.servers:
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        self.servers = []
        time.sleep(0.3)

    def role_dnsmasq(self, workdir, **settings):
        """dnsmasq in the boot server's namespace, configured and started by the dhcp role."""
        workdir.mkdir(parents=True, exist_ok=True)
        variables = dict(dhcp_run_as="daemon", dhcp_interface=INTERFACE, dhcp_server_ip=SERVER_IP, dhcp_matchbox_url=MATCHBOX_URL,
                         dhcp_config_file=str(workdir / "dnsmasq.conf"), dhcp_pid_file=str(workdir / "dnsmasq.pid"),
                         dhcp_lease_file=str(workdir / "leases"), dhcp_log_file=str(workdir / "dnsmasq.log"), **settings)
        play = [{"name": "dhcp", "hosts": "bootserver", "gather_facts": True, "gather_subset": ["!all"],
                 "tasks": [{"name": "dhcp role", "ansible.builtin.include_role": {"name": "netboot.talos.dhcp"}, "vars": variables}]}]
        self.servers.append(workdir / "dnsmasq.pid")
        run = ansible_playbook(play, workdir, inventory=self.inventory)
        assert run.rc == 0, run.stdout + run.stderr
        return workdir / "dnsmasq.log"

    def other_dnsmasq(self, namespace, address, body):
        """Another DHCP server on the segment (a router, a rogue): dnsmasq with its own config."""
        directory = self.root / namespace
        directory.mkdir(exist_ok=True)
        config = directory / "dnsmasq.conf"
        config.write_text("port=0\ninterface=%s\nbind-interfaces\nlog-dhcp\ndhcp-leasefile=%s\nlog-facility=%s\n%s\n"
                          % (namespace, directory / "leases", directory / "dnsmasq.log", body))
        subprocess.run(["ip", "netns", "exec", namespace, "dnsmasq", "--conf-file=%s" % config, "--pid-file=%s" % (directory / "pid")],
                       check=True)
        self.servers.append(directory / "pid")
        time.sleep(0.5)

    def router_with_reservations(self, boot_lines=""):
        self.other_dnsmasq(self.router, ROUTER_IP, "dhcp-range=10.0.50.100,10.0.50.150,255.255.255.0,1h\n"
                           + "".join("dhcp-host=%s,%s,%s\n" % (n["mac"], n["ip"], n["name"]) for n in NODES) + boot_lines)

    def diagnose(self, workdir, probe=None, logs=None, nodes=None, before=()):
        """dhcp_probe (and boot_logs) on the boot server, then diagnose_report's text."""
        arguments = {"interface": INTERFACE, "nodes": nodes or NODES, "ipxe_targets": [IPXE_URL], "next_server": SERVER_IP, **(probe or {})}
        tasks = list(before)
        if logs is not None:  # before the probe, whose own DISCOVERs are no machine's doing
            tasks.append({"name": "logs", "netboot.talos.boot_logs": dict(logs, nodes=NODES), "delegate_to": "bootserver", "register": "logs"})
        tasks.append({"name": "probe", "netboot.talos.dhcp_probe": arguments, "delegate_to": "bootserver", "register": "probe"})
        tasks.append({"name": "report", "netboot.talos.diagnose_report": {
            "nodes": NODES, "boot_chain": {}, "dhcp": "{{ probe }}", "logs": "{{ logs | default(omit) }}"}})
        play = [{"name": "diagnose", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
        run = ansible_playbook(play, workdir, inventory=self.inventory)
        print(run.stdout)
        return run, run.task("report")["result"]["report"]


@pytest.fixture(scope="module")
def segment(tmp_path_factory):
    made = Segment(tmp_path_factory.mktemp("dhcp_segment"))
    time.sleep(1)  # the bridge's ports settle
    yield made
    made.close()


@pytest.fixture
def clean(segment):
    yield segment
    segment.stop_servers()


def dhcp_of(report, node):
    return [entry for entry in report["nodes"][node] if entry["link"] == "dhcp"]


def printed_line(run, seen):
    """The verdict line as printed, found by what it saw."""
    return next(line for line in run.stdout.splitlines() if seen in line)


def test_full_mode_every_client_kind_gets_what_the_chain_needs(clean, tmp_path):
    clean.role_dnsmasq(tmp_path / "dhcp", dhcp_mode="full", dhcp_range_start="10.0.50.100", dhcp_range_end="10.0.50.150",
                       dhcp_hosts=RESERVATIONS)
    run, report = clean.diagnose(tmp_path / "run")
    assert run.rc == 0, run.stdout
    for node in NODES:
        (verdict,) = dhcp_of(report, node["name"])
        assert verdict["status"] == "ok", verdict
        assert "%s gets address %s" % (node["mac"], node["ip"]) in verdict["seen"]
        assert "bios -> undionly.kpxe" in verdict["seen"] and "uefi7+uefi9 -> ipxe.efi" in verdict["seen"]
        assert "ipxe+ipxe-uefi -> %s" % IPXE_URL in verdict["seen"]
    assert "DHCP servers answering on nodenet: 10.0.50.1" in printed_line(run, "DHCP servers answering")


def test_proxy_mode_answers_every_client_kind_beside_the_router(clean, tmp_path):
    clean.router_with_reservations()
    clean.role_dnsmasq(tmp_path / "dhcp", dhcp_mode="proxy", dhcp_network="10.0.50.0", dhcp_ipxe_target="tftp")
    run, report = clean.diagnose(tmp_path / "run", probe={"ipxe_targets": ["matchbox.ipxe"]})
    assert run.rc == 0, run.stdout
    for node in NODES:
        (verdict,) = dhcp_of(report, node["name"])
        assert verdict["status"] == "ok", verdict
        assert "gets address %s" % node["ip"] in verdict["seen"]
        proxy = " (proxyDHCP %s, port 4011)" % SERVER_IP
        assert "bios -> undionly.kpxe%s; uefi7+uefi9 -> ipxe.efi%s; ipxe+ipxe-uefi -> matchbox.ipxe%s" % ((proxy,) * 3) in verdict["seen"], verdict
    assert "10.0.50.1, 10.0.50.254 (proxyDHCP: 10.0.50.1)" in printed_line(run, "DHCP servers answering")


def test_a_second_dhcp_server_on_the_segment_is_reported(clean, tmp_path):
    clean.role_dnsmasq(tmp_path / "dhcp", dhcp_mode="full", dhcp_range_start="10.0.50.100", dhcp_range_end="10.0.50.150",
                       dhcp_hosts=RESERVATIONS)
    clean.other_dnsmasq(clean.rogue, ROGUE_IP, "dhcp-range=10.0.50.200,10.0.50.210,255.255.255.0,1h\ndhcp-boot=pxelinux.0")
    run, report = clean.diagnose(tmp_path / "run")
    assert run.rc != 0
    finding = next(entry for entry in report["findings"] if entry["link"] == "dhcp")
    assert finding["status"] == "broken"
    assert "2 DHCP servers offer addresses on nodenet: 10.0.50.1, 10.0.50.253" in finding["seen"]
    assert "  BROKEN  DHCP           2 DHCP servers offer addresses on nodenet: 10.0.50.1, 10.0.50.253\n" in run.stdout
    # The rogue pings each pool address before offering it, one at a time: the first node hears it within the timeout.
    verdicts = dhcp_of(report, "cp1")
    assert any(entry["status"] == "broken" and "10.0.50.253 offers boot file pxelinux.0" in entry["seen"] for entry in verdicts), verdicts
    assert any(entry["status"] == "warning" and "is offered 10.0.50.11, 10.0.50.2" in entry["seen"] for entry in verdicts), verdicts
    # pxelinux.0 is not iPXE: offered to iPXE it is a wrong file, not the iPXE loop.
    assert not any("iPXE loop" in entry["seen"] for entry in verdicts), verdicts


def test_a_wrong_uefi_boot_file_is_broken_naming_the_client_kind(clean, tmp_path):
    clean.role_dnsmasq(tmp_path / "dhcp", dhcp_mode="full", dhcp_range_start="10.0.50.100", dhcp_range_end="10.0.50.150",
                       dhcp_hosts=RESERVATIONS, dhcp_uefi_boot_file="snponly.efi")
    run, report = clean.diagnose(tmp_path / "run")
    assert run.rc != 0
    broken = {entry["seen"] for entry in dhcp_of(report, "cp1") if entry["status"] == "broken"}
    assert broken == {"UEFI x64 PXE (arch 7): 10.0.50.1 offers boot file snponly.efi",
                      "UEFI x64 PXE (arch 9): 10.0.50.1 offers boot file snponly.efi"}, broken
    assert "cp1 (10.0.50.11, 52:54:00:32:11:11): first broken link: DHCP" in run.stdout


def test_an_ipxe_client_offered_an_ipxe_binary_is_the_ipxe_loop(clean, tmp_path):
    # A router set up by hand without the iPXE guard: every client gets the BIOS binary.
    clean.router_with_reservations(boot_lines="dhcp-boot=undionly.kpxe,,%s\n" % SERVER_IP)
    run, report = clean.diagnose(tmp_path / "run")
    assert run.rc != 0
    seen = {entry["seen"] for entry in dhcp_of(report, "w1") if entry["status"] == "broken"}
    loop = "offers boot file undionly.kpxe: the iPXE loop - iPXE is handed an iPXE binary and loads itself again"
    assert "%s: 10.0.50.254 %s" % (KINDS[3], loop) in seen, seen
    assert "%s: 10.0.50.254 %s" % (KINDS[4], loop) in seen, seen
    assert "UEFI x64 PXE (arch 7): 10.0.50.254 offers boot file undionly.kpxe" in seen
    assert not any(entry.startswith("BIOS plain PXE") for entry in seen)
    assert loop in printed_line(run, "iPXE on BIOS")


def test_no_interface_skips_the_probe_and_says_how_to_name_one(clean, tmp_path):
    run, report = clean.diagnose(tmp_path / "run", probe={"interface": ""})
    assert run.rc == 0, run.stdout
    assert dhcp_of(report, "cp1") == []
    assert "set dhcp_interface of the boot server, or -e diagnose_interface=<interface>" in report["findings"][0]["seen"]


def test_a_machine_booting_with_a_mac_one_digit_off_shows_up_next_to_its_node(clean, tmp_path):
    log = clean.role_dnsmasq(tmp_path / "dhcp", dhcp_mode="full", dhcp_range_start="10.0.50.100", dhcp_range_end="10.0.50.150",
                             dhcp_hosts=RESERVATIONS)
    typo, stranger = "52:54:00:32:22:23", "52:54:00:99:99:99"
    machines = [{"name": "typo", "mac": typo, "ip": "10.0.50.99"}, {"name": "stranger", "mac": stranger, "ip": "10.0.50.98"}]
    syslog, matchbox_log = tmp_path / "syslog", tmp_path / "matchbox.log"
    matchbox_log.write_text('time="2026-12-01T10:00:02Z" level=info msg="HTTP GET /ipxe?mac=52-54-00-32-22-23&arch=x86_64"\n')
    # The machines boot (their DISCOVERs reach the real dnsmasq, which logs them), then fetch over TFTP.
    rrq = ("Dec  1 10:00:01 vm daemon.notice in.tftpd[4242]: RRQ from {{ booted.offers | selectattr('mac', 'eq', '%s') "
           "| map(attribute='address') | select | first }} filename ipxe.efi\n" % typo)
    boot = [{"name": "machines boot", "netboot.talos.dhcp_probe": {"interface": INTERFACE, "nodes": machines, "ipxe_targets": [IPXE_URL], "identify": False},
             "delegate_to": "bootserver", "register": "booted"},
            {"name": "tftpd logs", "ansible.builtin.copy": {"dest": str(syslog), "mode": "0644", "content": rrq}}]
    sources = {"dnsmasq_log": str(log), "syslog": str(syslog), "matchbox_log": str(matchbox_log)}
    run, report = clean.diagnose(tmp_path / "run", before=boot, logs=sources)
    (w1,) = [entry for entry in report["nodes"]["w1"] if entry["link"] == "logs"]
    assert w1["status"] == "warning", w1
    assert "a MAC close to it booted: 52:54:00:32:22:23 (1 hex digit off): DHCP " in w1["seen"]
    assert "DHCPDISCOVER/DHCPOFFER 10.0.50.1" in w1["seen"] and "(UEFI x64 iPXE)" in w1["seen"], w1
    assert "TFTP ipxe.efi Dec  1 10:00:01" in w1["seen"] and "matchbox /ipxe 2026-12-01T10:00:02Z" in w1["seen"], w1
    assert "talos_mac is mistyped" in w1["action"]
    (cp1,) = [entry for entry in report["nodes"]["cp1"] if entry["link"] == "logs"]
    assert cp1["status"] == "ok" and cp1["seen"].startswith("nothing in "), cp1
    strangers = {entry["seen"].split(",")[0]: entry for entry in report["findings"] if entry["link"] == "logs"}
    assert "closest node w1 (52:54:00:32:22:22, 1 hex digit off)" in strangers[typo]["seen"]
    assert "set talos_mac: %s" % typo in strangers[typo]["action"]
    assert "closest node" in strangers[stranger]["seen"] and "does not know" in strangers[stranger]["action"]
    assert "a MAC close to it booted: 52:54:00:32:22:23" in printed_line(run, "WARN    last seen")
