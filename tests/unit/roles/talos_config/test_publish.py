"""talos_config tasks/publish.yml through Ansible, checked with real HTTP requests to the matchbox double.

The play runs on the controller and delegates to a boot server host (here the same machine);
then the matchbox test double (tests/fixtures/matchbox, matchbox's selection and rendering rules)
serves the data dir and is asked what iPXE would ask.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from ansible_runner import REPO

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
SECRET = "SECRET-TOKEN-abc123.never-shown"
NODES = [
    {"name": "kube01", "role": "controlplane", "mac": "18:03:73:2a:d8:a2", "ip": "10.0.50.71", "arch": "amd64",
     "talos_version": "v1.9.4", "schematic": VANILLA, "pxe_kernel_args": [], "config": {}},
    {"name": "kube02", "role": "controlplane", "mac": "02:00:00:50:00:72", "ip": "10.0.50.72", "arch": "amd64",
     "talos_version": "v1.9.4", "schematic": VANILLA, "pxe_kernel_args": [], "config": {}},
    {"name": "kube04", "role": "worker", "mac": "02:00:00:50:00:74", "ip": "10.0.50.74", "arch": "amd64",
     "talos_version": "v1.12.1", "schematic": VANILLA, "pxe_kernel_args": ["console=ttyS0,115200"], "config": {}},
]
MATCHBOX_URL = "http://10.0.20.50:8080"


@pytest.fixture
def site(tmp_path):
    """Rendered configs on the controller, an inventory with a boot server, an empty matchbox data dir."""
    configs = tmp_path / "clusters" / "test" / "nodes"
    configs.mkdir(parents=True)
    for node in NODES:
        (configs / (node["name"] + ".yaml")).write_text(
            "version: v1alpha1\nmachine:\n    type: %s\n    token: %s\n    network:\n        hostname: %s\n"
            % ("worker" if node["role"] == "worker" else "controlplane", SECRET, node["name"]))
    data = tmp_path / "matchbox"
    (data / "assets").mkdir(parents=True)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local"}},
                                                 "children": {"boot_server": {"hosts": {"bootserver": {"ansible_connection": "local"}}}}}}))
    return {"configs": configs, "data": data, "inventory": inventory, "workdir": tmp_path / "run"}


def publish_play(site, nodes, **variables):
    role_vars = {
        "talos_config_publish_nodes": nodes,
        "talos_config_publish_configs_dir": str(site["configs"]),
        "talos_config_publish_data_dir": str(site["data"]),
        "talos_config_publish_matchbox_url": MATCHBOX_URL,
        "talos_config_publish_boot_server": "bootserver",
        "talos_config_http_delivery": True,
        "talos_config_publish_prune": False,
        "talos_config_publish_halt_if_installed": False,
        "talos_config_publish_configs_group": "",
    }
    role_vars.update(variables)
    return [{"name": "publish", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"name": "publish", "ansible.builtin.include_role": {"name": "netboot.talos.talos_config", "tasks_from": "publish"},
                        "vars": role_vars}]}]


def run(run_playbook, site, nodes=None, **kwargs):
    nodes = NODES if nodes is None else nodes
    variables = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("talos_config_")}
    return run_playbook(publish_play(site, nodes, **variables), inventory=site["inventory"], workdir=site["workdir"], **kwargs)


@pytest.fixture
def matchbox(site):
    """The matchbox double serving the data dir on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fixtures" / "matchbox" / "matchbox_double.py"), "-address=127.0.0.1:%d" % port,
         "-data-path=%s" % site["data"], "-assets-path=%s" % (site["data"] / "assets")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    for _unused in range(100):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_publish_serves_each_node_its_kernel_args_and_config(run_playbook, site, matchbox):
    first = run(run_playbook, site)
    assert first.rc == 0, first.stdout + first.stderr
    assert SECRET not in first.stdout and SECRET not in json.dumps(first.results)

    configs_dir = site["data"] / "assets" / "talos" / "configs"
    for node in NODES:
        hexhyp = node["mac"].replace(":", "-")
        published = configs_dir / (hexhyp + ".yaml")
        assert stat.S_IMODE(os.stat(published).st_mode) == 0o640
        assert published.read_text() == (site["configs"] / (node["name"] + ".yaml")).read_text()

        # What iPXE asks after /boot.ipxe: /ipxe?mac=${mac:hexhyp}
        status, script = get("%s/ipxe?mac=%s&uuid=x&arch=x86_64" % (matchbox, hexhyp.upper()))
        assert status == 200
        lines = script.splitlines()
        directory = "/assets/talos/%s/%s" % (node["talos_version"], node["schematic"])
        assert lines[0] == "#!ipxe"
        assert lines[1].startswith("kernel %s/kernel-amd64 initrd=initramfs-amd64.xz talos.platform=metal " % directory)
        assert "talos.config=%s/assets/talos/configs/${mac:hexhyp}.yaml" % MATCHBOX_URL in lines[1].split()
        assert lines[2] == "initrd %s/initramfs-amd64.xz" % directory
        # After iPXE expands ${mac:hexhyp}, the config URL (on matchbox) serves this node's own config.
        status, config = get("%s/assets/talos/configs/%s.yaml" % (matchbox, hexhyp))
        assert status == 200 and "hostname: %s" % node["name"] in config
    worker_line = get("%s/ipxe?mac=02-00-00-50-00-74" % matchbox)[1].splitlines()[1].split()
    assert "console=ttyS0,115200" in worker_line and "console=tty0" not in worker_line
    assert "module.sig_enforce=1" in worker_line
    assert get("%s/ipxe?mac=02-00-00-00-00-99" % matchbox)[0] == 404

    second = run(run_playbook, site, diff=True)
    assert second.rc == 0 and second.changed == 0, second.stdout
    assert SECRET not in second.stdout


def test_a_changed_config_is_republished_without_showing_it(run_playbook, site):
    assert run(run_playbook, site).rc == 0
    path = site["configs"] / "kube01.yaml"
    path.write_text(path.read_text().replace("abc123", "xyz789"))
    changed = run(run_playbook, site, diff=True)
    assert changed.rc == 0 and changed.changed == 1
    assert "xyz789" not in changed.stdout and "xyz789" not in json.dumps(changed.results)


def test_api_delivery_publishes_no_configs_and_no_config_url(run_playbook, site, matchbox):
    result = run(run_playbook, site, talos_config_http_delivery=False)
    assert result.rc == 0, result.stdout
    assert not (site["data"] / "assets" / "talos" / "configs").exists()
    status, script = get("%s/ipxe?mac=18-03-73-2a-d8-a2" % matchbox)
    assert status == 200 and "talos.config=" not in script


def test_prune_removes_what_was_published_for_a_removed_node(run_playbook, site, matchbox):
    halt = {"talos_config_publish_halt_if_installed": True}
    assert run(run_playbook, site, **halt).rc == 0
    assert "talos.halt_if_installed=1" in get("%s/ipxe?mac=02-00-00-50-00-74" % matchbox)[1]
    kept = NODES[:2]
    without_prune = run(run_playbook, site, nodes=kept, **halt)
    assert without_prune.rc == 0 and without_prune.changed == 0, without_prune.stdout
    assert (site["data"] / "groups" / "kube04.json").exists()
    pruned = run(run_playbook, site, nodes=kept, talos_config_publish_prune=True, **halt)
    assert pruned.rc == 0, pruned.stdout
    assert not (site["data"] / "assets" / "talos" / "configs" / "02-00-00-50-00-74.yaml").exists()
    assert not (site["data"] / "groups" / "kube04.json").exists()
    assert sorted(os.listdir(site["data"] / "profiles")) == ["talos-controlplane-v1.9.4-amd64.json"]
    assert get("%s/ipxe?mac=02-00-00-50-00-74" % matchbox)[0] == 404
    assert get("%s/ipxe?mac=18-03-73-2a-d8-a2" % matchbox)[0] == 200
    assert run(run_playbook, site, nodes=kept, talos_config_publish_prune=True, **halt).changed == 0


def test_check_mode_on_an_empty_boot_server_writes_nothing(run_playbook, site):
    checked = run(run_playbook, site, check=True, diff=True)
    assert checked.rc == 0, checked.stdout
    would = checked.task("Publish the configs, matchbox profiles and groups on the boot server")["result"]
    assert would["changed"] and sorted(os.path.basename(path) for path in would["written"] if path.endswith(".yaml")) == sorted(
        node["mac"].replace(":", "-") + ".yaml" for node in NODES)
    assert sorted(would["groups"]) == ["kube01", "kube02", "kube04"] and len(would["profiles"]) == 2
    assert SECRET not in checked.stdout
    assert sorted(os.listdir(site["data"])) == ["assets"] and os.listdir(site["data"] / "assets") == []


def test_inventory_api_delivery_also_stops_config_publishing(run_playbook, site):
    plays = publish_play(site, NODES)
    plays[0]["vars"] = {"talos_config_inventory": {"cluster": {"delivery": "api"}, "nodes": NODES}}
    result = run_playbook(plays, inventory=site["inventory"], workdir=site["workdir"])
    assert result.rc == 0, result.stdout
    assert not (site["data"] / "assets" / "talos" / "configs").exists()
    profile = json.loads((site["data"] / "profiles" / "talos-controlplane-v1.9.4-amd64.json").read_text())
    assert not any("talos.config=" in arg for arg in profile["boot"]["args"])


def withholding_cluster(tmp_path, members):
    """Node doubles for members, their nodes and a validated inventory with withdrawing on."""
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "talos_node"))
    import doubles

    cluster = doubles.Cluster(tmp_path / "api", members)
    templates = {"controlplane": NODES[0], "worker": NODES[2]}
    nodes = [dict(templates[member["role"]], name=member["name"], ip=member["ip"],
                  mac="02:00:00:%02x:%02x:%02x" % tuple(int(part) for part in member["ip"].split(".")[1:]))
             for member in members]
    inventory = {"cluster": {"name": cluster.name, "dir": str(cluster.dir), "delivery": "http", "withdraw_configs": True},
                 "nodes": nodes}
    return cluster, nodes, inventory


def served_path(site, node):
    return site["data"] / "assets" / "talos" / "configs" / (node["mac"].replace(":", "-") + ".yaml")


def publish_withholding(run_playbook, site, cluster, inventory, **kwargs):
    return run(run_playbook, site, nodes=[], talos_config_inventory=inventory,
               talos_config_publish_configs_dir=str(cluster.dir / "nodes"), **kwargs)


def test_withholding_serves_configs_only_to_nodes_seen_running_theirs(run_playbook, site, tmp_path):
    members = [{"name": "cp1", "role": "controlplane", "ip": "127.0.8.11"}, {"name": "w1", "role": "worker", "ip": "127.0.8.12"}]
    cluster, nodes, inventory = withholding_cluster(tmp_path, members)
    served = {node["name"]: served_path(site, node) for node in nodes}
    try:
        before = publish_withholding(run_playbook, site, cluster, inventory)  # nothing answers yet: both are served
        assert before.rc == 0, before.stdout
        assert all(path.exists() for path in served.values())

        cluster.start("cp1")
        after = publish_withholding(run_playbook, site, cluster, inventory)  # cp1 runs what it was served now
        assert after.rc == 0 and after.changed == 2, after.stdout  # its copy goes, the record says so
        assert not served["cp1"].exists() and served["w1"].read_bytes() == cluster.config("w1").read_bytes()
        assert publish_withholding(run_playbook, site, cluster, inventory).changed == 0

        cluster.start("w1", maintenance=True)  # answering without a config is not running it
        assert publish_withholding(run_playbook, site, cluster, inventory).changed == 0 and served["w1"].exists()
        record = json.loads((cluster.dir / "served.json").read_text())
        assert record["w1"]["seen_running_at"] is None and record["cp1"]["seen_running_at"] >= record["cp1"]["served_at"]
        assert SECRET not in (cluster.dir / "served.json").read_text()
    finally:
        cluster.stop()


# Steps before each publish: up (the node runs its config), down, maintenance, change (its rendered
# config changes). Expected: whether its config is served after each publish.
WITHHOLD_HISTORIES = {
    "answering before it was ever served: served, withheld from the next run on":
        (["up", "publish", "publish", "publish"], [True, False, False]),
    "stops answering after it was seen running it (wiped): served again":
        (["publish", "up", "publish", "down", "publish", "publish", "up", "publish"], [True, False, True, True, False]),
    "config changed while it runs: the new one is served, withheld once seen again":
        (["publish", "up", "publish", "change", "publish", "publish"], [True, False, True, False]),
    "maintenance mode after it was seen running it: served again":
        (["publish", "up", "publish", "down", "maintenance", "publish"], [True, False, True]),
}


@pytest.mark.parametrize("history", sorted(WITHHOLD_HISTORIES))
def test_withholding_follows_what_was_served_and_seen(run_playbook, site, tmp_path, history):
    steps, expected = WITHHOLD_HISTORIES[history]
    ip = "127.0.9.%d" % (11 + sorted(WITHHOLD_HISTORIES).index(history))
    cluster, nodes, inventory = withholding_cluster(tmp_path, [{"name": "cp1", "role": "controlplane", "ip": ip}])
    config, path = cluster.config("cp1"), served_path(site, nodes[0])
    seen, last = [], None
    try:
        for step in steps:
            if step == "publish":
                result = publish_withholding(run_playbook, site, cluster, inventory)
                assert result.rc == 0, result.stdout
                record = json.loads((cluster.dir / "served.json").read_text())["cp1"]
                assert record["checksum"] == hashlib.sha1(config.read_bytes()).hexdigest()
                assert (record["seen_running_at"] is None) == path.exists()
                if path.exists():
                    assert path.read_bytes() == config.read_bytes()
                if last == (path.exists(), record):
                    assert result.changed == 0, "a repeated publish changed something: %s" % result.stdout
                seen.append(path.exists())
                last = (path.exists(), record)
            elif step == "up":
                cluster.start("cp1")
            elif step == "maintenance":
                cluster.start("cp1", maintenance=True)
            elif step == "down":
                cluster.doubles["cp1"].stop()
            elif step == "change":
                config.write_text(config.read_text() + "# changed\n")
        assert seen == expected
    finally:
        cluster.stop()


def test_withholding_in_check_mode_changes_nothing(run_playbook, site, tmp_path):
    cluster, nodes, inventory = withholding_cluster(tmp_path, [{"name": "cp1", "role": "controlplane", "ip": "127.0.9.21"}])
    try:
        assert publish_withholding(run_playbook, site, cluster, inventory).rc == 0
        record = (cluster.dir / "served.json").read_text()
        cluster.start("cp1")
        checked = publish_withholding(run_playbook, site, cluster, inventory, check=True)
        assert checked.rc == 0 and checked.changed == 2, checked.stdout
        assert served_path(site, nodes[0]).exists() and (cluster.dir / "served.json").read_text() == record
    finally:
        cluster.stop()


def test_withholding_off_serves_every_config(run_playbook, site, tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "talos_node"))
    import doubles

    cluster = doubles.Cluster(tmp_path / "api", [{"name": "cp1", "role": "controlplane", "ip": "127.0.8.21"}])
    node = dict(NODES[0], name="cp1", mac="02:00:00:08:00:21", ip="127.0.8.21")
    inventory = {"cluster": {"name": cluster.name, "dir": str(cluster.dir), "delivery": "http", "withdraw_configs": False},
                 "nodes": [node]}
    cluster.start("cp1")
    try:
        published = run(run_playbook, site, nodes=[], talos_config_inventory=inventory,
                        talos_config_publish_configs_dir=str(cluster.dir / "nodes"))
        assert published.rc == 0, published.stdout
        assert (site["data"] / "assets" / "talos" / "configs" / "02-00-00-08-00-21.yaml").exists()
        assert "skip_reason" in published.task("Find the nodes that answer with the cluster's credentials")["result"]
    finally:
        cluster.stop()


def test_publishes_into_the_boot_servers_matchbox_data_dir_by_default(run_playbook, site):
    inventory = yaml.safe_load(site["inventory"].read_text())
    inventory["all"]["children"]["boot_server"]["hosts"]["bootserver"]["matchbox_data_dir"] = str(site["data"])
    site["inventory"].write_text(yaml.safe_dump(inventory))
    plays = publish_play(site, NODES)
    del plays[0]["tasks"][0]["vars"]["talos_config_publish_data_dir"]
    published = run_playbook(plays, inventory=site["inventory"], workdir=site["workdir"])
    assert published.rc == 0, published.stdout
    assert (site["data"] / "groups" / "kube01.json").exists()
