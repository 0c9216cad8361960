"""Bad inventories stop the configs play before anything is written, naming host and variable."""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from ansible_runner import REPO

CLUSTER_VARS = {
    "talos_cluster_name": "testcluster",
    "talos_cluster_endpoint": "https://10.0.50.69:6443",
    "talos_version": "v1.9.4",
    "talos_network": "10.0.50.0/24",
    "talos_gateway": "10.0.50.1",
    "talos_nameservers": ["10.0.50.1"],
    "talos_vip": "10.0.50.69",
    "talos_install_disk": "/dev/sda",
}
NODES = {
    "kube01": {"talos_mac": "18:03:73:2a:d8:a2", "talos_ip": "10.0.50.71"},
    "kube02": {"talos_mac": "02:00:00:50:00:72", "talos_ip": "10.0.50.72"},
    "kube03": {"talos_mac": "02:00:00:50:00:73", "talos_ip": "10.0.50.73"},
    "kube04": {"talos_mac": "02:00:00:50:00:74", "talos_ip": "10.0.50.74"},
}


def inventory(cluster=None, nodes=None, controlplane=("kube01", "kube02", "kube03"), workers=("kube04",), loose=()):
    """An inventory dict: three control planes and a worker unless told otherwise."""
    nodes = nodes if nodes is not None else copy.deepcopy(NODES)
    hosts = lambda names: {name: nodes[name] for name in names}  # noqa: E731
    return {
        "all": {
            "vars": dict(CLUSTER_VARS, **(cluster or {})),
            "children": {
                "talos": {
                    "hosts": hosts(loose),
                    "children": {"controlplane": {"hosts": hosts(controlplane)}, "workers": {"hosts": hosts(workers)}},
                }
            },
        }
    }


def with_node(host, **variables):
    nodes = copy.deepcopy(NODES)
    nodes[host].update(variables)
    for name, value in list(nodes[host].items()):
        if value is None:
            del nodes[host][name]
    return nodes


BAD_INVENTORIES = {
    "malformed MAC": (inventory(nodes=with_node("kube02", talos_mac="18:03:73:2a:d8")), "kube02", "talos_mac"),
    "multicast MAC": (inventory(nodes=with_node("kube03", talos_mac="01:00:5e:00:00:01")), "kube03", "talos_mac"),
    "duplicate MAC in another notation": (
        inventory(nodes=with_node("kube02", talos_mac="18-03-73-2A-D8-A2")),
        "kube02",
        "talos_mac",
    ),
    "invalid IP": (inventory(nodes=with_node("kube01", talos_ip="10.0.50.300")), "kube01", "talos_ip"),
    "duplicate IP": (inventory(nodes=with_node("kube04", talos_ip="10.0.50.71")), "kube04", "talos_ip"),
    "IP outside the network": (inventory(nodes=with_node("kube03", talos_ip="10.0.60.73")), "kube03", "talos_ip"),
    "missing MAC": (inventory(nodes=with_node("kube01", talos_mac=None)), "kube01", "talos_mac"),
    "node in no role group": (inventory(workers=(), loose=("kube04",)), "kube04", "role"),
    "node in both role groups": (inventory(workers=("kube04", "kube01")), "kube01", "role"),
    "no install disk": (inventory(cluster={"talos_install_disk": None}), "kube01", "talos_install_disk"),
    "install disk and selector": (
        inventory(nodes=with_node("kube02", talos_install_disk_selector={"size": ">= 100GB"})),
        "kube02",
        "talos_install_disk",
    ),
    "unknown disk selector key": (
        inventory(cluster={"talos_install_disk": None, "talos_install_disk_selector": {"colour": "red"}}),
        "kube01",
        "talos_install_disk_selector",
    ),
    "endpoint without scheme": (
        inventory(cluster={"talos_cluster_endpoint": "10.0.50.69:6443"}),
        "kube01",
        "talos_cluster_endpoint",
    ),
    "endpoint without port": (
        inventory(cluster={"talos_cluster_endpoint": "https://10.0.50.69"}),
        "kube01",
        "talos_cluster_endpoint",
    ),
    "unsupported Talos version": (inventory(cluster={"talos_version": "v1.8.3"}), "kube01", "talos_version"),
    "garbled Talos version": (inventory(cluster={"talos_version": "latest"}), "kube01", "talos_version"),
    "invalid hostname": (inventory(nodes=with_node("kube03", talos_hostname="Kube_03")), "kube03", "talos_hostname"),
    "duplicate hostname": (inventory(nodes=with_node("kube04", talos_hostname="kube01")), "kube04", "talos_hostname"),
    "cluster name differs between nodes": (
        inventory(nodes=with_node("kube03", talos_cluster_name="other")),
        "kube03",
        "talos_cluster_name",
    ),
    "gateway outside the network": (inventory(cluster={"talos_gateway": "192.0.2.1"}), "kube01", "talos_gateway"),
    "no control plane": (inventory(controlplane=(), workers=("kube01", "kube02", "kube03", "kube04")), "kube01", "role"),
    "patch that is not YAML": (
        inventory(nodes=with_node("kube02", talos_patches=["machine: [unclosed"])),
        "kube02",
        "talos_patches[0]",
    ),
    "patch that is a bare string": (
        inventory(nodes=with_node("kube02", talos_patches=["just words"])),
        "kube02",
        "talos_patches[0]",
    ),
    "patch giving a worker the OS CA key (Talos rejects it)": (
        inventory(cluster={"talos_worker_patches": [{"machine": {"ca": {"key": "c2VjcmV0"}}}]}),
        "kube04",
        "talos_worker_patches[0]",
    ),
    "patch turning persist off (Talos rejects it)": (
        inventory(nodes=with_node("kube01", talos_patches=[{"persist": False}])),
        "kube01",
        "talos_patches[0]",
    ),
    "JSON patch on a multi-document config (Talos refuses it)": (
        inventory(
            cluster={"talos_version": "v1.12.0"},
            nodes=with_node("kube03", talos_patches=[[{"op": "add", "path": "/machine/sysctls", "value": {"a": "b"}}]]),
        ),
        "kube03",
        "talos_patches[0]",
    ),
    "custom CNI without manifests": (inventory(cluster={"talos_cni": {"name": "custom"}}), "kube01", "talos_cni.urls"),
    "wrong type for a list variable": (inventory(cluster={"talos_nameservers": "10.0.50.1"}), "kube01", "talos_nameservers"),
    "withdraw given as a word": (inventory(cluster={"talos_config_withdraw": "later"}), "kube01", "talos_config_withdraw"),
    "withdraw set on one node only": (inventory(nodes=with_node("kube04", talos_config_withdraw=True)), "kube04", "talos_config_withdraw"),
}


def _drop_none(data):
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    return data


def run_configs(run_playbook, tmp_path, inventory_data):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(_drop_none(inventory_data), sort_keys=False))
    return run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=path)


@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_bad_inventory_fails_before_any_change(case, run_playbook, tmp_path):
    data, host, field = BAD_INVENTORIES[case]
    run = run_configs(run_playbook, tmp_path, data)
    assert run.rc != 0, run.stdout
    failed = run.failures
    assert [f["task"].split(" : ")[-1] for f in failed] == ["Validate every node of the inventory"], run.stdout
    problems = failed[0]["result"]["problems"]
    assert any(p.startswith("%s: %s" % (host, field)) for p in problems), problems
    assert not (tmp_path / "clusters").exists(), "something was written despite the failure"


def test_every_problem_is_reported_at_once(run_playbook, tmp_path):
    nodes = with_node("kube01", talos_mac="nonsense")
    nodes["kube03"]["talos_ip"] = "10.9.9.9"
    run = run_configs(run_playbook, tmp_path, inventory(nodes=nodes, cluster={"talos_version": "v2.0.0"}))
    problems = run.failures[0]["result"]["problems"]
    for expected in ("kube01: talos_mac", "kube03: talos_ip", "kube02: talos_version", "kube04: talos_version"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert not (tmp_path / "clusters").exists()


def test_valid_inventory_yields_normalised_nodes(run_playbook, tmp_path):
    nodes = with_node("kube02", talos_mac="02-00-00-50-00-72".upper())
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(_drop_none(inventory(nodes=nodes)), sort_keys=False))
    run = run_playbook(
        [
            {
                "name": "validate",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "tasks": [{"name": "inventory", "netboot.talos.talos_inventory": {}}],
            }
        ],
        inventory=path,
    )
    assert run.rc == 0, run.stdout
    result = run.task("inventory")["result"]
    by_name = {node["name"]: node for node in result["nodes"]}
    assert by_name["kube02"]["mac"] == "02:00:00:50:00:72"
    assert [by_name[n]["role"] for n in sorted(by_name)] == ["controlplane"] * 3 + ["worker"]
    assert result["cluster"]["controlplane_ips"] == ["10.0.50.71", "10.0.50.72", "10.0.50.73"]
    assert result["cluster"]["withdraw_configs"] is False
    assert result["cluster"]["dir"] == os.path.join(str(tmp_path), "clusters", "testcluster")
    kube01 = by_name["kube01"]["config"]
    assert kube01["network"]["addresses"] == ["10.0.50.71/24"]
    assert kube01["network"]["vip"] == "10.0.50.69"
    assert by_name["kube04"]["config"]["network"]["vip"] is None, "a worker must not carry the VIP"
    assert kube01["network"]["device_selector"] == {"hardwareAddr": "18:03:73:2a:d8:a2"}


@pytest.mark.parametrize("delivery, withdraw", [("http", True), ("api", False)])
def test_withdrawing_configs_applies_to_http_delivery_only(run_playbook, tmp_path, delivery, withdraw):
    path = tmp_path / "hosts.yml"
    data = inventory(cluster={"talos_config_withdraw": True, "talos_config_delivery": delivery})
    path.write_text(yaml.safe_dump(_drop_none(data), sort_keys=False))
    run = run_playbook([{"name": "validate", "hosts": "localhost", "connection": "local", "gather_facts": False,
                         "tasks": [{"name": "inventory", "netboot.talos.talos_inventory": {}}]}], inventory=path)
    assert run.rc == 0, run.stdout
    assert run.task("inventory")["result"]["cluster"]["withdraw_configs"] is withdraw
