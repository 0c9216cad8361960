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

    def hosts(names):
        return {name: nodes[name] for name in names}

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


def run_configs(run_playbook, tmp_path, inventory_data, unquote=()):
    """Run the configs play; ``unquote`` strings are written unquoted, as a user would type them."""
    text = yaml.safe_dump(_drop_none(inventory_data), sort_keys=False)
    for value in unquote:
        text = text.replace("'%s'" % value, value)
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    return run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=path)


def concerns(problem):
    """(hosts, field, message) of one problem line 'kube01, kube02: field: message'."""
    who, field, message = problem.split(": ", 2)
    return who.split(", "), field, message


def validation_problems(run, tmp_path):
    """The problems of the failed validation task, after checking that nothing else ran or was written."""
    assert run.rc != 0, run.stdout
    assert [f["task"].split(" : ")[-1] for f in run.failures] == ["Validate every node of the inventory"], run.stdout
    assert not (tmp_path / "clusters").exists(), "something was written despite the failure"
    return run.failures[0]["result"]["problems"]


@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_bad_inventory_fails_before_any_change(case, run_playbook, tmp_path):
    data, host, field = BAD_INVENTORIES[case]
    problems = validation_problems(run_configs(run_playbook, tmp_path, data), tmp_path)
    assert any(host in concerns(p)[0] and concerns(p)[1] == field for p in problems), problems


def test_every_problem_is_reported_at_once(run_playbook, tmp_path):
    nodes = with_node("kube01", talos_mac="nonsense")
    nodes["kube03"]["talos_ip"] = "10.9.9.9"
    run = run_configs(run_playbook, tmp_path, inventory(nodes=nodes, cluster={"talos_version": "v2.0.0"}))
    problems = validation_problems(run, tmp_path)
    for host, field in (("kube01", "talos_mac"), ("kube03", "talos_ip"), ("kube02", "talos_version"), ("kube04", "talos_version")):
        assert any(host in concerns(p)[0] and concerns(p)[1] == field for p in problems), (host, field, problems)


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


EVERY_NODE = "kube01, kube02, kube03, kube04"
ALLOW_UNKNOWN = "(talos_extensions_allow_unknown: true accepts names Image Factory may not know)"
LABEL_NAME_RULE = "must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"

# Each class of mistake -> the inventory that makes it (kwargs of inventory(), plus strings to
# write unquoted) and every problem line the user is shown, exactly.
MISTAKES = {
    "misspelt optional variable on one node": (
        {"nodes": with_node("kube02", talos_instal_disk="/dev/nvme0n1")},
        ["kube02: talos_instal_disk: is not a netboot.talos variable; did you mean talos_install_disk?"],
    ),
    "misspelt variable in group_vars, said once": (
        {"cluster": {"talos_nameserver": ["10.0.50.1"]}},
        [EVERY_NODE + ": talos_nameserver: is not a netboot.talos variable; did you mean talos_nameservers?"],
    ),
    "unknown variable like no known one": (
        {"nodes": with_node("kube03", talos_colour="blue")},
        ["kube03: talos_colour: is not a netboot.talos variable"],
    ),
    "misspelt required variable": (
        {"nodes": with_node("kube01", talos_mac=None, talos_mca="18:03:73:2a:d8:a2")},
        ["kube01: talos_mac: is required; talos_mca is set instead (misspelt?)"],
    ),
    "misspelt install disk": (
        {"cluster": {"talos_install_disk": None, "talos_install_disks": "/dev/sda"}},
        [EVERY_NODE + ": talos_install_disk: is required (or talos_install_disk_selector); talos_install_disks is set instead (misspelt?)"],
    ),
    "Kubernetes too new for the Talos version": (
        {"cluster": {"talos_kubernetes_version": "1.33.0"}},
        [EVERY_NODE + ": talos_kubernetes_version: version of Kubernetes 1.33.0 is too new to be used with Talos v1.9.4 "
         "(Talos 1.9 runs Kubernetes 1.27.0 to 1.32.x)"],
    ),
    "config contract newer than the Talos version": (
        {"cluster": {"talos_config_contract": "v1.12"}},
        [EVERY_NODE + ": talos_config_contract: contract v1.12 is newer than this node's talos_version v1.9.4"],
    ),
    "config contract garbled": (
        {"cluster": {"talos_config_contract": "twelve"}},
        ["kube01: talos_config_contract: 'twelve' is not a contract like v1.12"],
    ),
    "Kubernetes too old for the Talos version": (
        {"cluster": {"talos_version": "v1.13.2", "talos_kubernetes_version": "v1.30.9"}},
        [EVERY_NODE + ": talos_kubernetes_version: version of Kubernetes 1.30.9 is too old to be used with Talos v1.13.2 "
         "(Talos 1.13 runs Kubernetes 1.31.0 to 1.36.x)"],
    ),
    "garbled Kubernetes version": (
        {"cluster": {"talos_kubernetes_version": "1.32"}},
        [EVERY_NODE + ": talos_kubernetes_version: '1.32' is not a Kubernetes version like 1.32.4"],
    ),
    "misspelt extension": (
        {"cluster": {"talos_extensions": ["siderolabs/iscsi-tool"]}},
        [EVERY_NODE + ": talos_extensions[0]: 'siderolabs/iscsi-tool' is not an official extension of Talos v1.9.4; "
         "did you mean siderolabs/iscsi-tools? " + ALLOW_UNKNOWN],
    ),
    "extension without its siderolabs/ prefix": (
        {"nodes": with_node("kube04", talos_extensions=["siderolabs/util-linux-tools", "iscsi-tools"])},
        ["kube04: talos_extensions[1]: 'iscsi-tools' is not an official extension of Talos v1.9.4; "
         "did you mean siderolabs/iscsi-tools? " + ALLOW_UNKNOWN],
    ),
    "extension newer than the Talos version": (
        {"cluster": {"talos_version": "v1.10.0", "talos_extensions": ["siderolabs/youki"]}},
        [EVERY_NODE + ": talos_extensions[0]: siderolabs/youki is an official extension from Talos v1.10.1 on, not of v1.10.0"],
    ),
    "label key with an invalid prefix": (
        {"nodes": with_node("kube04", talos_node_labels={"Example.com/role": "storage"})},
        ["kube04: talos_node_labels.Example.com/role: label key prefix 'Example.com' must be a DNS subdomain: "
         "at most 253 lower-case letters, digits, '-' and '.'"],
    ),
    "label name and value too long or badly formed": (
        {"nodes": with_node("kube04", talos_node_labels={"n" * 64: "-storage"})},
        ["kube04: talos_node_labels.%s: label name %r %s" % ("n" * 64, "n" * 64, LABEL_NAME_RULE),
         "kube04: talos_node_labels.%s: label value '-storage' must be empty or at most 63 letters, digits, '-', '_' or '.', "
         "starting and ending with a letter or digit" % ("n" * 64)],
    ),
    "label key with two slashes": (
        {"nodes": with_node("kube04", talos_node_labels={"a/b/c": "x"})},
        ["kube04: talos_node_labels.a/b/c: 'a/b/c' is not a label key: one optional DNS-subdomain prefix and '/', then a name"],
    ),
    "all-zero MAC": (
        {"nodes": with_node("kube03", talos_mac="00:00:00:00:00:00")},
        ["kube03: talos_mac: 00:00:00:00:00:00 is the all-zero address, not a network card's MAC"],
    ),
    "unquoted MAC that YAML reads as a number": (
        {"nodes": with_node("kube04", talos_mac="52:54:00:50:00:14"), "unquote": ["52:54:00:50:00:14"]},
        ['kube04: talos_mac: YAML read the unquoted MAC 52:54:00:50:00:14 as the number 41135220014; '
         'quote it: talos_mac: "52:54:00:50:00:14"'],
    ),
    "pod subnet overlapping the node network": (
        {"cluster": {"talos_pod_subnets": ["10.0.0.0/8"], "talos_service_subnets": ["172.20.0.0/16"]}},
        [EVERY_NODE + ": talos_pod_subnets[0]: 10.0.0.0/8 overlaps the node network 10.0.50.0/24"],
    ),
    "service subnet overlapping the pod subnet": (
        {"cluster": {"talos_pod_subnets": ["10.244.0.0/16"], "talos_service_subnets": ["10.244.128.0/20"]}},
        [EVERY_NODE + ": talos_service_subnets[0]: 10.244.128.0/20 overlaps talos_pod_subnets[0] 10.244.0.0/16"],
    ),
    "Talos's default service subnet overlapping a pod subnet": (
        {"cluster": {"talos_pod_subnets": ["10.96.0.0/16"]}},
        [EVERY_NODE + ": talos_service_subnets: 10.96.0.0/12 (Talos's default while talos_service_subnets is unset: "
                      "set it to a range of its own) overlaps talos_pod_subnets[0] 10.96.0.0/16"],
    ),
    "YAML error inside a patch": (
        {"nodes": with_node("kube02", talos_patches=["machine:\n  network:\n    interfaces: [unclosed\n"])},
        ["kube02: talos_patches[0]: not valid YAML: line 4, column 1: expected ',' or ']', but got '<stream end>' "
         "(while parsing a flow sequence at line 3, column 17)"],
    ),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_each_mistake_is_refused_with_its_message(case, run_playbook, tmp_path):
    spec, expected = MISTAKES[case]
    spec = dict(spec)
    unquote = spec.pop("unquote", ())
    problems = validation_problems(run_configs(run_playbook, tmp_path, inventory(**spec), unquote=unquote), tmp_path)
    assert problems == expected


def test_new_mistakes_are_reported_together(run_playbook, tmp_path):
    nodes = with_node("kube01", talos_instal_disk="/dev/sdb", talos_node_labels={"-role": "x"})
    nodes["kube04"]["talos_mac"] = "00:00:00:00:00:00"
    data = inventory(nodes=nodes, cluster={"talos_kubernetes_version": "1.40.0", "talos_extensions": ["siderolabs/zfs-tools"]})
    problems = validation_problems(run_configs(run_playbook, tmp_path, data), tmp_path)
    fields = sorted((tuple(concerns(p)[0]), concerns(p)[1]) for p in problems)
    assert fields == sorted([
        (tuple(EVERY_NODE.split(", ")), "talos_kubernetes_version"),
        (tuple(EVERY_NODE.split(", ")), "talos_extensions[0]"),
        (("kube01",), "talos_node_labels.-role"),
        (("kube01",), "talos_instal_disk"),
        (("kube04",), "talos_mac"),
    ]), problems


def test_a_group_vars_mistake_over_many_nodes_is_one_shortened_line(run_playbook, tmp_path):
    names = ["kube%03d" % number for number in range(1, 101)]
    nodes = {name: {"talos_mac": "02:00:00:00:%02x:%02x" % divmod(number, 256), "talos_ip": "10.0.50.%d" % (number + 100)}
             for number, name in enumerate(names, start=1)}
    data = inventory(cluster={"talos_kubernetes_version": "1.20.0"}, nodes=nodes, controlplane=names[:3], workers=names[3:])
    problems = validation_problems(run_configs(run_playbook, tmp_path, data), tmp_path)
    assert problems == [
        "kube001, kube002, kube003, kube004, kube005 and 95 more: talos_kubernetes_version: "
        "version of Kubernetes 1.20.0 is too old to be used with Talos v1.9.4 (Talos 1.9 runs Kubernetes 1.27.0 to 1.32.x)"
    ]


def test_role_and_playbook_variables_and_allowed_extensions_are_accepted(run_playbook, tmp_path):
    cluster = {
        # read by the roles (their argument_specs) and by the playbooks
        "talos_cluster_wait_timeout": 900,
        "talos_assets_base_url": "https://factory.talos.dev/image",
        "talos_config_publish_prune": False,
        "talos_clusters_dir": str(tmp_path / "clusters"),
        "talos_matchbox_url": "http://10.0.50.2:8080",
        "talos_kubernetes_version": "1.32.4",
        "talos_extensions": ["siderolabs/iscsi-tools", "example.org/private-driver"],
        "talos_extensions_allow_unknown": True,
        "talos_node_labels": {"example.com/rack": "r1", "zone": ""},
        "talos_pod_subnets": ["10.244.0.0/16"],
        "talos_service_subnets": ["10.96.0.0/12"],
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(_drop_none(inventory(cluster=cluster)), sort_keys=False))
    run = run_playbook([{"name": "validate", "hosts": "localhost", "connection": "local", "gather_facts": False,
                         "tasks": [{"name": "inventory", "netboot.talos.talos_inventory": {}}]}], inventory=path)
    assert run.rc == 0, run.stdout
    kube01 = {node["name"]: node for node in run.task("inventory")["result"]["nodes"]}["kube01"]
    assert kube01["config"]["kubernetes_version"] == "1.32.4"
    assert kube01["config"]["install_image"].startswith("factory.talos.dev/installer/%s:" % kube01["schematic"])
