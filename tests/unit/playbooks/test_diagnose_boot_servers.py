"""playbooks/diagnose.yml with two boot servers: each node is checked on and from the boot server it is
assigned to (talos_boot_server), so a node published only on the second boot server is healthy, and a
fault of one boot server is named for its own nodes and under its own name only.

Each boot server is a matchbox double and a real tftp-hpa on its own loopback address (127.0.24.1 and
.2); the Talos node doubles run on 127.0.24.11 and .12.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import yaml

from ansible_runner import REPO, ansible_playbook
from test_diagnose import ASSETS, kernel

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "talos_node"))
import doubles  # noqa: E402

NODES = (
    {"name": "cp1", "role": "controlplane", "ip": "127.0.24.11", "mac": "52:54:00:24:00:11", "server": "boot-a"},
    {"name": "w1", "role": "worker", "ip": "127.0.24.12", "mac": "52:54:00:24:00:12", "server": "boot-b"},
)
SERVERS = {"boot-a": "127.0.24.1", "boot-b": "127.0.24.2"}


def free_port(address, kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class BootServer:
    """A matchbox double and tftp-hpa on address, with their data under root/name."""

    def __init__(self, root, name, address):
        self.name, self.address = name, address
        self.data, self.tftp_root = root / name / "matchbox", root / name / "tftp"
        self.mport, self.tport = free_port(address), free_port(address, socket.SOCK_DGRAM)
        self.processes = []

    @property
    def matchbox_url(self):
        return "http://%s:%d" % (self.address, self.mport)

    def host_vars(self):
        return {"ansible_connection": "local", "talos_matchbox_url": self.matchbox_url, "matchbox_data_dir": str(self.data),
                "tftp_root": str(self.tftp_root), "tftp_address": "%s:%d" % (self.address, self.tport)}

    def start(self):
        """Boot files as the tftp and talos_assets roles leave them, then the servers."""
        (self.data / ASSETS).mkdir(parents=True)
        (self.data / ASSETS / "kernel-amd64").write_bytes(kernel())
        (self.data / ASSETS / "initramfs-amd64.xz").write_bytes(b"\xfd7zXZ\x00" + b"\x01" * 4096 + b"YZ")
        self.tftp_root.mkdir(parents=True)
        for name in ("undionly.kpxe", "ipxe.efi"):
            (self.tftp_root / name).write_bytes(b"\x02" * 70000)
        (self.tftp_root / "matchbox.ipxe").write_text("#!ipxe\nchain %s/boot.ipxe\n" % self.matchbox_url)
        self.processes.append(subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fixtures" / "matchbox" / "matchbox_double.py"), "-address=%s:%d" % (self.address, self.mport),
             "-data-path=%s" % self.data, "-assets-path=%s" % (self.data / "assets")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.processes.append(subprocess.Popen(["in.tftpd", "-L", "-a", "%s:%d" % (self.address, self.tport), "-s", str(self.tftp_root)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        doubles.wait_port(self.address, self.mport)

    def stop(self, which=None):
        for process in self.processes if which is None else [self.processes[which]]:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


class Site:
    def __init__(self, root):
        self.root = root
        self.servers = {name: BootServer(root, name, address) for name, address in SERVERS.items()}
        self.cluster = doubles.Cluster(root, [{k: node[k] for k in ("name", "role", "ip")} for node in NODES], name="segments")
        self.inventory = root / "hosts.yml"
        controlplanes = {n["name"]: self.node_vars(n) for n in NODES if n["role"] == "controlplane"}
        workers = {n["name"]: self.node_vars(n) for n in NODES if n["role"] == "worker"}
        self.inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"talos_cluster_name": "segments", "talos_cluster_endpoint": "https://127.0.24.11:6443", "talos_version": "v1.11.5",
                     "talos_network": "127.0.24.0/24", "talos_install_disk": "/dev/vda", "talos_clusters_dir": str(root / "clusters")},
            "hosts": {"localhost": {"ansible_connection": "local"}},
            "children": {
                "boot_server": {"hosts": {name: server.host_vars() for name, server in self.servers.items()}},
                "talos": {"children": {"controlplane": {"hosts": controlplanes}, "workers": {"hosts": workers}}},
            }}}))

    @staticmethod
    def node_vars(node):
        return {"talos_mac": node["mac"], "talos_ip": node["ip"], "talos_boot_server": node["server"]}

    def start(self):
        for server in self.servers.values():
            server.start()
        play = [{"name": "publish", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "validate", "netboot.talos.talos_inventory": {"trial_render": False, "require": ["boot_server"]}, "register": "validated"},
            {"name": "publish", "ansible.builtin.include_role": {"name": "netboot.talos.talos_config", "tasks_from": "publish"},
             "vars": {"talos_config_inventory": "{{ validated }}", "talos_config_publish_data_dir": "{{ hostvars[server].matchbox_data_dir }}",
                      "talos_config_publish_boot_server": "{{ server }}", "talos_config_publish_halt_if_installed": False},
             "loop": "{{ groups['boot_server'] }}", "loop_control": {"loop_var": "server"}}]}]
        run = ansible_playbook(play, self.root / "publish", inventory=self.inventory)
        assert run.rc == 0, run.stdout + run.stderr
        for name in self.cluster.doubles:
            self.cluster.start(name)

    def close(self):
        self.cluster.stop()
        for server in self.servers.values():
            server.stop()

    def diagnose(self):
        report = self.root / "report.json"
        run = ansible_playbook(str(REPO / "playbooks" / "diagnose.yml"), self.root / "run", inventory=self.inventory,
                               extra_vars={"diagnose_report": str(report)})
        return run, json.loads(report.read_text())


@pytest.fixture
def site(tmp_path):
    made = Site(tmp_path)
    try:
        made.start()
        yield made
    finally:
        made.close()


def statuses(report, node):
    return {entry["link"]: entry["status"] for entry in report["nodes"][node]}


def test_each_node_is_diagnosed_on_its_own_boot_server(site):
    # Each node is published on its own boot server only: checked on the other one it would be broken.
    assert sorted(path.name for path in (site.servers["boot-a"].data / "groups").iterdir()) == ["cp1.json"]
    assert sorted(path.name for path in (site.servers["boot-b"].data / "groups").iterdir()) == ["w1.json"]
    run, report = site.diagnose()
    print(run.stdout)
    assert run.rc == 0, run.stdout + run.stderr
    for node in ("cp1", "w1"):
        assert statuses(report, node) == {"tftp": "ok", "matchbox": "ok", "assets": "ok", "config": "ok", "talos_api": "ok",
                                          "kubernetes": "skipped"}, report["nodes"][node]
    assert {finding.get("boot_server") for finding in report["findings"]} == {"boot-a", "boot-b"}
    assert "Boot server boot-a:" in run.stdout and "Boot server boot-b:" in run.stdout

    # The second boot server's TFTP server dies and a profile of its own breaks: w1 and boot-b are named, cp1 and boot-a are not.
    site.servers["boot-b"].stop(which=1)
    (site.servers["boot-b"].data / "profiles" / "broken.json").write_text("{")
    run, report = site.diagnose()
    print(run.stdout)
    assert run.rc != 0
    assert statuses(report, "w1")["tftp"] == "broken" and statuses(report, "cp1")["tftp"] == "ok", report["nodes"]
    assert report["broken"] == ["w1"]
    broken = [finding for finding in report["findings"] if finding["status"] == "broken"]
    assert broken and {finding["boot_server"] for finding in broken} == {"boot-b"}, report["findings"]
    assert "profiles/broken.json does not load" in run.stdout.split("Boot server boot-b:")[1]
    assert "diagnose: 2 node(s) checked, broken: w1, boot server boot-b" in run.stdout
