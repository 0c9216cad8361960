"""playbooks/diagnose.yml through Ansible against a boot server on loopback: the real tftp-hpa
server and client, the matchbox double serving what the talos_config role published, and Talos
node doubles. Each test starts from the healthy site, breaks one link, and reads the verdicts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_runner import REPO, ansible_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "talos_node"))
import doubles  # noqa: E402

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
NODES = (
    {"name": "cp1", "role": "controlplane", "ip": "127.0.7.11", "mac": "52:54:00:07:00:11"},
    {"name": "w1", "role": "worker", "ip": "127.0.7.12", "mac": "52:54:00:07:00:12"},
)
ASSETS = Path("assets") / "talos" / "v1.11.5" / VANILLA


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kernel(size=6144):
    data = bytearray(os.urandom(size))
    data[0x1F1] = 1
    data[0x1F4:0x1F8] = ((size - 1024) // 16).to_bytes(4, "little")
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


def restore(copy, target):
    """Make target hold exactly copy's files, in place (tftpd keeps its root open)."""
    wanted = {path.relative_to(copy) for path in copy.rglob("*") if path.is_file()}
    for path in target.rglob("*"):
        if path.is_file() and path.relative_to(target) not in wanted:
            path.unlink()
    for relative in wanted:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(copy / relative, target / relative)


class Site:
    """The controller's cluster dir and inventory, and a boot server on 127.0.0.1."""

    def __init__(self, root, nodes=NODES):
        self.root = root
        self.nodes = nodes
        self.data = root / "matchbox"
        self.tftp_root = root / "tftp"
        self.mport, self.tport = free_port(), free_port(socket.SOCK_DGRAM)
        self.cluster = doubles.Cluster(root, nodes, name="demo")
        self.matchbox = self.tftpd = None
        self.inventory = root / "inventory"
        self.write_inventory()

    @property
    def matchbox_url(self):
        return "http://127.0.0.1:%d" % self.mport

    def write_inventory(self, withdraw=False):
        hosts = {node["name"]: {"talos_mac": node["mac"], "talos_ip": node["ip"]} for node in self.nodes}
        controlplanes = {name: hosts[name] for name, node in zip(hosts, self.nodes) if node["role"] == "controlplane"}
        workers = {name: hosts[name] for name in hosts if name not in controlplanes}
        endpoint = next(iter(controlplanes.values()))["talos_ip"]
        network = str(ipaddress.ip_network(endpoint + "/24", strict=False))
        inventory = {"all": {
            "vars": {"talos_cluster_name": "demo", "talos_cluster_endpoint": "https://%s:6443" % endpoint, "talos_version": "v1.11.5",
                     "talos_network": network, "talos_install_disk": "/dev/vda", "talos_matchbox_url": self.matchbox_url,
                     "talos_clusters_dir": str(self.root / "clusters"), "talos_config_withdraw": withdraw},
            "hosts": {"localhost": {"ansible_connection": "local"}},
            "children": {
                "boot_server": {"hosts": {"bootserver": {
                    "ansible_connection": "local", "matchbox_data_dir": str(self.data), "tftp_root": str(self.tftp_root),
                    "tftp_address": "127.0.0.1:%d" % self.tport}}},
                "talos": {"children": {"controlplane": {"hosts": controlplanes}, "workers": {"hosts": workers}}},
            }}}
        self.inventory.mkdir(exist_ok=True)
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(inventory))

    def publish(self, withdraw=False):
        play = [{"name": "publish", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "validate", "netboot.talos.talos_inventory": {"trial_render": False}, "register": "validated"},
            {"name": "publish", "ansible.builtin.include_role": {"name": "netboot.talos.talos_config", "tasks_from": "publish"},
             "vars": {"talos_config_inventory": "{{ validated }}", "talos_config_publish_data_dir": str(self.data),
                      "talos_config_publish_boot_server": "bootserver", "talos_config_publish_withhold_installed": withdraw,
                      "talos_config_publish_halt_if_installed": False, "talos_config_publish_prune": True}}]}]
        run = ansible_playbook(play, self.root / "publish", inventory=self.inventory / "hosts.yml")
        assert run.rc == 0, run.stdout + run.stderr

    def lay_out(self):
        """Boot files on disk, as the tftp and talos_assets roles leave them."""
        (self.data / ASSETS).mkdir(parents=True, exist_ok=True)
        (self.data / ASSETS / "kernel-amd64").write_bytes(kernel())
        (self.data / ASSETS / "initramfs-amd64.xz").write_bytes(b"\xfd7zXZ\x00" + os.urandom(4096) + b"YZ")
        self.tftp_root.mkdir(exist_ok=True)
        (self.tftp_root / "undionly.kpxe").write_bytes(os.urandom(70000))
        (self.tftp_root / "ipxe.efi").write_bytes(os.urandom(90000))
        (self.tftp_root / "matchbox.ipxe").write_text("#!ipxe\nchain %s/boot.ipxe\n" % self.matchbox_url)

    def start_matchbox(self):
        self.matchbox = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fixtures" / "matchbox" / "matchbox_double.py"), "-address=127.0.0.1:%d" % self.mport,
             "-data-path=%s" % self.data, "-assets-path=%s" % (self.data / "assets")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        doubles.wait_port("127.0.0.1", self.mport)

    def start_tftpd(self):
        self.tftpd = subprocess.Popen(["in.tftpd", "-L", "-a", "127.0.0.1:%d" % self.tport, "-s", str(self.tftp_root)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)

    @staticmethod
    def stop(process):
        if process and process.poll() is None:
            process.terminate()
            process.wait(10)

    def healthy(self):
        """Every link working: files in place, servers up, both nodes configured and up."""
        self.write_inventory()
        pristine = self.root / "pristine"
        if not pristine.exists():
            self.lay_out()
            self.publish()
            shutil.copytree(self.data, pristine / "matchbox")
            shutil.copytree(self.tftp_root, pristine / "tftp")
        for copy, target in ((pristine / "matchbox", self.data), (pristine / "tftp", self.tftp_root)):
            restore(copy, target)
        for process, start in ((self.matchbox, self.start_matchbox), (self.tftpd, self.start_tftpd)):
            if process is None or process.poll() is not None:
                start()
        for name, double in self.cluster.doubles.items():
            double.stop()
            self.cluster.start(name)

    def close(self):
        self.cluster.stop()
        self.stop(self.matchbox)
        self.stop(self.tftpd)

    def diagnose(self, *args, check=False):
        workdir = self.root / "run"
        run = ansible_playbook(str(REPO / "playbooks" / "diagnose.yml"), workdir, inventory=self.inventory / "hosts.yml",
                               check=check, extra_vars={"diagnose_report": str(self.root / "report.json")}, args=args)
        report = json.loads((self.root / "report.json").read_text()) if (self.root / "report.json").exists() else None
        return run, report


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    made = Site(tmp_path_factory.mktemp("diagnose"))
    yield made
    made.close()


@pytest.fixture
def healthy(site):
    site.healthy()
    report = site.root / "report.json"
    if report.exists():
        report.unlink()
    return site


def links(report, node):
    return {entry["link"]: entry for entry in report["nodes"][node]}


def test_a_healthy_site_has_every_link_ok_and_exits_zero(healthy):
    run, report = healthy.diagnose(check=True)
    print(run.stdout)
    assert run.rc == 0, run.stdout + run.stderr
    assert report["broken"] == [] and report["findings"][0]["status"] == "ok"
    for node in ("cp1", "w1"):
        statuses = {link: entry["status"] for link, entry in links(report, node).items()}
        assert statuses == {"tftp": "ok", "matchbox": "ok", "assets": "ok", "config": "ok", "talos_api": "ok",
                            "kubernetes": "skipped"}, statuses
    assert "cp1 (127.0.7.11, 52:54:00:07:00:11): every link ok" in run.stdout
    assert "diagnose: 2 node(s) checked, every link ok" in run.stdout
    assert "\\n" not in run.stdout.split("every link ok")[0]


def break_tftpd(site):
    site.stop(site.tftpd)


def break_matchbox(site):
    site.stop(site.matchbox)


def corrupt_group(site):
    (site.data / "groups" / "w1.json").write_text('{"profile": "x", "selector": {"mac": "52:54:00:07:00:1"}}')


def stale_group_mac(site):
    group = json.loads((site.data / "groups" / "w1.json").read_text())
    group["selector"]["mac"] = "52:54:00:07:00:13"
    (site.data / "groups" / "w1.json").write_text(json.dumps(group))


def truncate_kernel(site):
    path = site.data / ASSETS / "kernel-amd64"
    path.write_bytes(path.read_bytes()[:4000])


def withdraw_config(site):
    (site.data / "assets" / "talos" / "configs" / "52-54-00-07-00-12.yaml").unlink()


def stale_config(site):
    (site.data / "assets" / "talos" / "configs" / "52-54-00-07-00-12.yaml").write_text("version: v1alpha1\n")


def node_down(site):
    site.cluster.doubles["w1"].stop()


def node_in_maintenance(site):
    site.cluster.doubles["w1"].stop()
    site.cluster.start("w1", maintenance=True)


@pytest.mark.parametrize("fault, node, link, seen", [
    # One timeout for a dead server: the first file gets no answer, the others are not tried.
    (break_tftpd, "w1", "tftp", "out (not tried after it: matchbox.ipxe, undionly.kpxe)"),
    (break_matchbox, "cp1", "matchbox", "no answer"),
    (corrupt_group, "w1", "matchbox", "groups/w1.json does not load (selector mac: '52:54:00:07:00:1' is not a MAC address)"),
    (stale_group_mac, "w1", "matchbox", "closest group: groups/w1.json selects 52:54:00:07:00:13 (1 hex digit off)"),
    (truncate_kernel, "cp1", "assets", "kernel-amd64 (4000 bytes served): truncated: 4000 bytes, its header says at least 6144"),
    (withdraw_config, "w1", "config", "52-54-00-07-00-12.yaml -> 404: not published"),
    (stale_config, "w1", "config", "serves 18 bytes that differ from the rendered config"),
    (node_down, "w1", "talos_api", "no answer from 127.0.7.12:50000"),
    (node_in_maintenance, "w1", "talos_api", "answers in maintenance mode: Talos booted without its config"),
], ids=lambda value: getattr(value, "__name__", None))
def test_each_fault_is_named_by_link_and_node(healthy, fault, node, link, seen):
    fault(healthy)
    run, report = healthy.diagnose()
    print(run.stdout)
    assert run.rc != 0
    verdict = links(report, node)[link]
    assert verdict["status"] == "broken", verdict
    assert seen in verdict["seen"], verdict
    assert verdict["action"]
    assert node in report["broken"]
    first = next(entry for entry in report["nodes"][node] if entry["status"] == "broken")
    assert first["link"] == link, "the first broken link of %s is %s, not %s" % (node, first["link"], link)
    assert "%s (" % node in run.stdout and "first broken link" in run.stdout


def test_a_withdrawn_config_of_a_running_node_is_on_purpose(healthy):
    healthy.write_inventory(withdraw=True)
    # The first run records what it serves and sees the node run it; the second withholds it.
    healthy.publish(withdraw=True)
    healthy.publish(withdraw=True)
    assert not (healthy.data / "assets" / "talos" / "configs" / "52-54-00-07-00-12.yaml").exists()
    run, report = healthy.diagnose()
    assert run.rc == 0, run.stdout
    assert "withdrawn on purpose" in links(report, "w1")["config"]["seen"]


def test_a_corrupt_file_is_also_a_boot_server_finding(healthy):
    (healthy.data / "profiles" / "broken.json").write_text("{")
    run, report = healthy.diagnose()
    assert run.rc != 0
    assert any("profiles/broken.json does not load: not valid JSON" in f["seen"] for f in report["findings"])
    assert "Boot server:" in run.stdout


def test_unknown_node_names_are_refused(healthy):
    run, report = healthy.diagnose("-e", "nodes=w1,kube99")
    assert run.rc != 0
    assert "nodes: not in the inventory's group talos: kube99" in run.stdout
    run, report = healthy.diagnose("-e", "nodes=w1")
    assert run.rc == 0 and sorted(report["nodes"]) == ["w1"]


def test_diagnose_probes_dhcp_on_the_named_interface_and_reads_the_boot_server_logs(healthy):
    # No DHCP server listens on loopback: every node's DHCP link is broken, and named first.
    syslog = healthy.root / "syslog"
    syslog.write_text("Dec  1 10:00:01 vm daemon.notice in.tftpd[4242]: RRQ from 127.0.7.12 filename ipxe.efi\n")
    run, report = healthy.diagnose("-e", "diagnose_interface=lo", "-e", "diagnose_dhcp_timeout=1", "-e", "diagnose_syslog=%s" % syslog)
    assert run.rc != 0
    dhcp = links(report, "w1")["dhcp"]
    assert dhcp["status"] == "broken" and "no DHCP server answered a DISCOVER for 52:54:00:07:00:12 on lo" in dhcp["seen"], dhcp
    assert links(report, "w1")["logs"] == {"link": "logs", "status": "ok", "expected": "", "action": "",
                                           "seen": "TFTP ipxe.efi Dec  1 10:00:01"}
    assert links(report, "cp1")["logs"]["seen"] == "nothing in %s" % syslog
    assert "w1 (127.0.7.12, 52:54:00:07:00:12): first broken link: DHCP" in run.stdout


def test_cluster_yml_diagnoses_the_nodes_that_time_out_before_it_fails(healthy):
    node_down(healthy)
    run = ansible_playbook(str(REPO / "playbooks" / "cluster.yml"), healthy.root / "cluster-run", inventory=healthy.inventory / "hosts.yml",
                           extra_vars={"talos_cluster_wait_timeout": 3, "talos_cluster_progress_every": 1})
    print(run.stdout)
    assert run.rc != 0
    verdicts = run.stdout.index("w1 (127.0.7.12, 52:54:00:07:00:12): first broken link: Talos API")
    failure = run.task("netboot.talos.talos_cluster : Fail for each node that is not up", host="localhost")
    assert failure["status"] == "failed" and "w1 (127.0.7.12): no answer after 3s" in run.stdout[verdicts:]
    assert "cp1 (127.0.7.11, 52:54:00:07:00:11)" not in run.stdout  # only the nodes that timed out


def test_diagnose_s_own_probes_are_not_taken_for_what_a_machine_did(tmp_path):
    # A machine booted (its exchange, then iPXE's /ipxe); then a diagnose run probed its MAC and a
    # mistyped one (DISCOVERs named netboot-talos-diagnose, /ipxe with probe=netboot-talos-diagnose).
    real, typo = "52:54:00:25:00:21", "52:54:00:25:00:22"
    dnsmasq = tmp_path / "dnsmasq.log"
    exchange = ("Dec  1 10:00:0{s} dnsmasq-dhcp[7]: {xid} vendor class: PXEClient:Arch:00007:UNDI:003016\n"
                "{name}"
                "Dec  1 10:00:0{s} dnsmasq-dhcp[7]: {xid} DHCPDISCOVER(br0) {mac}\n"
                "Dec  1 10:00:0{s} dnsmasq-dhcp[7]: {xid} DHCPOFFER(br0) {ip} {mac}\n")
    probe = "Dec  1 10:00:0{s} dnsmasq-dhcp[7]: {xid} client provides name: netboot-talos-diagnose\n"
    dnsmasq.write_text(exchange.format(s=1, xid=11, name="", mac=real, ip="127.0.25.21")
                       + "".join(exchange.format(s=5, xid=xid, name=probe.format(s=5, xid=xid), mac=mac, ip=ip)
                                 for xid, mac, ip in ((12, real, "127.0.25.21"), (13, typo, "127.0.25.100"))))
    matchbox_log = tmp_path / "matchbox.log"
    matchbox_log.write_text("".join('time="2026-12-01T10:00:0%d" level=info msg="HTTP GET /ipxe?mac=%s&arch=x86_64%s"\n'
                                    % (second, mac.replace(":", "-"), suffix)
                                    for second, mac, suffix in ((2, real, ""), (6, real, "&probe=netboot-talos-diagnose"),
                                                                (6, typo, "&probe=netboot-talos-diagnose"))))
    play = [{"name": "logs", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "read", "netboot.talos.boot_logs": {
            "nodes": [{"name": "w1", "mac": real, "ip": "127.0.25.21"}], "dnsmasq_log": str(dnsmasq),
            "syslog": str(tmp_path / "none"), "matchbox_log": str(matchbox_log)}}]}]
    run = ansible_playbook(play, tmp_path / "run")
    assert run.rc == 0, run.stdout + run.stderr
    result = run.task("read")["result"]
    assert result["nodes"]["w1"] == [{"link": "logs", "status": "ok", "expected": "", "action": "",
                                      "seen": "DHCP Dec  1 10:00:01 DHCPDISCOVER/DHCPOFFER 127.0.25.21 (UEFI x64); "
                                              "matchbox /ipxe 2026-12-01T10:00:02"}], result["nodes"]
    assert [entry for entry in result["findings"] if typo in entry["seen"]] == [], result["findings"]


def test_a_mac_equally_close_to_two_nodes_goes_with_the_one_that_never_showed_up(tmp_path):
    # w1's talos_mac is mistyped (01:21 for 00:21): the machine's real MAC is one digit off w1's and
    # one digit off cp1's too; cp1 boots under its own MAC, w1's never appears, so it is w1's.
    cp1, typo, real = "52:54:00:25:00:11", "52:54:00:25:01:21", "52:54:00:25:00:21"
    dnsmasq = tmp_path / "dnsmasq.log"
    dnsmasq.write_text("".join("Dec  1 10:00:0%d dnsmasq-dhcp[7]: %d %s(br0) %s %s\n" % (second, xid, message, ip, mac)
                               for second, xid, mac, ip in ((1, 21, cp1, "127.0.25.11"), (3, 22, real, "127.0.25.21"))
                               for message in ("DHCPOFFER", "DHCPACK")))
    play = [{"name": "logs", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "read", "netboot.talos.boot_logs": {
            "nodes": [{"name": "cp1", "mac": cp1, "ip": "127.0.25.11"}, {"name": "w1", "mac": typo, "ip": "127.0.25.21"}],
            "dnsmasq_log": str(dnsmasq), "syslog": str(tmp_path / "none"), "matchbox_log": str(tmp_path / "none")}}]}]
    run = ansible_playbook(play, tmp_path / "run")
    assert run.rc == 0, run.stdout + run.stderr
    result = run.task("read")["result"]
    assert result["nodes"]["cp1"][0]["status"] == "ok", result["nodes"]
    (w1,) = result["nodes"]["w1"]
    assert w1["status"] == "warning" and "a MAC close to it booted: %s (1 hex digit off)" % real in w1["seen"], w1
    (finding,) = result["findings"]
    assert "closest node w1 (%s, 1 hex digit off)" % typo in finding["seen"] and "set talos_mac: %s" % real in finding["action"], finding
