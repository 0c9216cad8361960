"""Each node's boot server (talos_inventory with require boot_server): by talos_boot_server, the only one, or its network."""

from __future__ import annotations

import pytest
import yaml

CLUSTER_VARS = {
    "talos_cluster_name": "segments",
    "talos_cluster_endpoint": "https://10.0.50.69:6443",
    "talos_version": "v1.9.4",
    "talos_network": "10.0.0.0/16",
    "talos_gateway": "10.0.50.1",
    "talos_nameservers": ["10.0.50.1"],
    "talos_install_disk": "/dev/sda",
    "talos_matchbox_url": "http://10.0.50.5:8080",
}
# rack1 serves 10.0.50.0/24 (its DHCP segment), rack2 10.0.51.0/24 and, relayed, 10.0.52.0/24.
SEGMENTS = {
    "rack1": {"dhcp_network": "10.0.50.0", "dhcp_netmask": "255.255.255.0"},
    "rack2": {"matchbox_node_networks": ["10.0.51.0/24", "10.0.52.0/24"]},
}


def inventory(tmp_path, nodes, boot_servers):
    hosts = {name: dict(talos_mac="02:00:00:00:00:%02x" % (index + 1), **variables) for index, (name, variables) in enumerate(nodes.items())}
    document = {"all": {"vars": CLUSTER_VARS, "hosts": {"localhost": {"ansible_connection": "local"}}, "children": {
        "boot_server": {"hosts": boot_servers},
        "talos": {"children": {"controlplane": {"hosts": {"cp1": hosts.pop("cp1")}}, "workers": {"hosts": hosts}}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def validate(run_playbook, path):
    play = [{"name": "validate", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "validate", "netboot.talos.talos_inventory": {"require": ["boot_server", "matchbox_url"], "trial_render": False}}]}]
    run = run_playbook(play, inventory=path)
    return run, run.task("validate")["result"]


ASSIGNED = {
    "by the network that contains the node's IP (DHCP segment or node networks)": (
        {"cp1": {"talos_ip": "10.0.50.11"}, "w1": {"talos_ip": "10.0.51.12"}, "w2": {"talos_ip": "10.0.52.13"}},
        SEGMENTS, {"cp1": "rack1", "w1": "rack2", "w2": "rack2"}),
    "talos_boot_server on the node wins over its network": (
        {"cp1": {"talos_ip": "10.0.50.11"}, "w1": {"talos_ip": "10.0.50.12", "talos_boot_server": "rack2"}},
        SEGMENTS, {"cp1": "rack1", "w1": "rack2"}),
    "the only boot server serves every node, network or not": (
        {"cp1": {"talos_ip": "10.0.50.11"}, "w1": {"talos_ip": "10.0.60.12"}},
        {"rack1": SEGMENTS["rack1"]}, {"cp1": "rack1", "w1": "rack1"}),
}


@pytest.mark.parametrize("case", sorted(ASSIGNED))
def test_each_node_gets_its_boot_server(run_playbook, tmp_path, case):
    nodes, boot_servers, expected = ASSIGNED[case]
    run, result = validate(run_playbook, inventory(tmp_path, nodes, boot_servers))
    assert run.rc == 0, run.stdout
    assert {node["name"]: node["boot_server"] for node in result["nodes"]} == expected


def test_nodes_with_no_or_several_boot_servers_are_refused_all_at_once(run_playbook, tmp_path):
    overlapping = dict(SEGMENTS, rack3={"matchbox_node_networks": ["10.0.52.0/23"]}, rack4={"matchbox_node_networks": ["not-a-net"]})
    nodes = {"cp1": {"talos_ip": "10.0.50.11"}, "w1": {"talos_ip": "10.0.52.12"}, "w2": {"talos_ip": "10.0.60.13"},
             "w3": {"talos_ip": "10.0.50.14", "talos_boot_server": "rack9"}}
    run, result = validate(run_playbook, inventory(tmp_path, nodes, overlapping))
    assert run.rc != 0
    problems = result["problems"]
    assert any(p.startswith("w1: talos_boot_server:") and "in the node networks of rack2 and rack3" in p for p in problems), problems
    assert any(p.startswith("w2: talos_boot_server:") and "no boot server's node network" in p for p in problems), problems
    assert any(p.startswith("w3: talos_boot_server:") and "'rack9' is not a host of group boot_server" in p for p in problems), problems
    assert any(p.startswith("rack4: matchbox_node_networks:") for p in problems), problems
    assert not any(p.startswith("cp1:") for p in problems), problems


def test_two_boot_servers_on_one_segment_are_ambiguous(run_playbook, tmp_path):
    nodes = {"cp1": {"talos_ip": "10.0.51.11"}, "w1": {"talos_ip": "10.0.51.12", "talos_boot_server": "rack2"}}
    twins = dict(SEGMENTS, rack3={"dhcp_network": "10.0.51.0"})
    run, result = validate(run_playbook, inventory(tmp_path, nodes, twins))
    assert run.rc != 0
    assert result["problems"] == ["cp1: talos_boot_server: its talos_ip is in the node networks of rack2 and rack3: "
                                  "set talos_boot_server to the one that serves it"], result["problems"]
