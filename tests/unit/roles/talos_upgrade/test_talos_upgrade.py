"""The Talos upgrade through ansible-playbook: configs.yml and cluster.yml bring node doubles up
(127.0.22.x) with a kube-API double holding seeded pods, then talos_version changes in the
inventory and the role's tasks/upgrade.yml (talos_upgrade) rolls the upgrade out."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "talos_node"
sys.path.insert(0, str(FIXTURES))

import doubles  # noqa: E402
from ansible_runner import local_play  # noqa: E402
from ansible_runner import REPO  # noqa: E402

NET = "127.0.22."
VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
CLUSTER = {"talos_cluster_name": "demo", "talos_cluster_endpoint": "https://%s11:6443" % NET, "talos_version": "v1.11.5",
           "talos_network": NET + "0/24", "talos_install_disk": "/dev/sda", "talos_matchbox_url": "http://127.0.0.1:8080",
           "talos_cluster_wait_timeout": 30, "talos_cluster_ready_timeout": 30, "talos_rollout_poll_interval": 0.2,
           "talos_rollout_etcd_timeout": 5, "talos_rollout_ready_timeout": 10,
           "talos_cluster_upgrade_timeout": 10, "talos_cluster_drain_timeout": 5}
PODS = [{"name": "web-5d8f-a1", "node": "w1", "owner": "ReplicaSet"},
        {"name": "kube-proxy-x1", "namespace": "kube-system", "node": "w1", "owner": "DaemonSet"},
        {"name": "web-5d8f-b2", "node": "w2", "owner": "ReplicaSet"},
        {"name": "kube-apiserver-cp1", "namespace": "kube-system", "node": "cp1", "owner": "mirror"},
        {"name": "coredns-7c-c3", "namespace": "kube-system", "node": "cp1", "owner": "ReplicaSet"}]
BLOCKED = {"name": "db-0", "node": "w1", "owner": "StatefulSet", "pdb": "db-pdb"}
# What converge.yml is to run for the upgrade (the lead wires it in).
UPGRADE = local_play([
    {"name": "Validate the inventory's nodes", "netboot.talos.talos_inventory": None, "register": "converge_inventory"},
    {"name": "Upgrade Talos", "ansible.builtin.include_role": {"name": "netboot.talos.talos_rollout", "tasks_from": "upgrade"},
     "vars": {"talos_rollout_cluster_name": "{{ converge_inventory.cluster.name }}",
              "talos_rollout_cluster_dir": "{{ converge_inventory.cluster.dir }}",
              "talos_rollout_upgrade_nodes": "{{ converge_inventory.nodes }}",
              "talos_rollout_batch": "{{ talos_cluster_rolling_batch | default(1) | string }}",
              "talos_rollout_upgrade_drain": "{{ talos_cluster_upgrade_drain | default(true) }}",
              "talos_rollout_upgrade_timeout": "{{ talos_cluster_upgrade_timeout | default(900) }}",
              "talos_rollout_drain_timeout": "{{ talos_cluster_drain_timeout | default(300) }}"}}], name="Upgrade")
DOUBLE_FLAGS = ["--upgrade-delay", "0.6"]


def node(name, role, last):
    return {"name": name, "role": role, "ip": NET + str(last), "mac": "52:54:00:10:00:%02x" % last}


NODES = [node("cp1", "controlplane", 11), node("w1", "worker", 21), node("w2", "worker", 22)]


class Lab:
    """An inventory, its rendered cluster, a node double per node and the kube-API double, in one directory."""

    def __init__(self, root, run_playbook):
        self.root, self.run_playbook = Path(root), run_playbook
        self.inventory = self.root / "inventory"
        self.group_vars = dict(CLUSTER)
        self.doubles, self.kube = {}, None

    def write_inventory(self):
        groups = {"controlplane": {"hosts": {}}, "workers": {"hosts": {}}}
        host_vars = {}
        for entry in NODES:
            groups["controlplane" if entry["role"] == "controlplane" else "workers"]["hosts"][entry["name"]] = None
            host_vars[entry["name"]] = {"talos_mac": entry["mac"], "talos_ip": entry["ip"]}
        hosts = {"all": {"vars": self.group_vars, "children": {"talos": {"children": groups}}}}
        (self.inventory / "host_vars").mkdir(parents=True, exist_ok=True)
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
        for name, variables in host_vars.items():
            (self.inventory / "host_vars" / ("%s.yml" % name)).write_text(yaml.safe_dump(variables))

    def set(self, **variables):
        self.group_vars.update(variables)
        self.write_inventory()

    def play(self, plays, **kwargs):
        return self.run_playbook(plays, inventory=self.inventory, workdir=self.root, **kwargs)

    def playbooks(self, *names):
        return self.play([{"name": name, "ansible.builtin.import_playbook": str(REPO / "playbooks" / ("%s.yml" % name))}
                          for name in names])

    def bring_up(self, version="v1.11.5", pods=None, extra=None):
        """configs.yml, the doubles and cluster.yml, then the doubles restarted with the extra flags per
        node; copied from an earlier test of this process with the same inventory and pods when there is one."""
        self.set(talos_version=version)
        pods = PODS if pods is None else pods
        key = doubles.BROUGHT_UP.key(self.root, self.inventory, pods)
        if not doubles.BROUGHT_UP.restore(key, self.root):
            first = self.playbooks("configs")
            assert first.rc == 0, first.stdout
            self.start_doubles(version, pods)
            up = self.playbooks("cluster")
            assert up.rc == 0, up.stdout
            self.stop()
            doubles.BROUGHT_UP.save(key, self.root)
        self.start_doubles(version, pods, extra)
        return self

    def start_doubles(self, version, pods, extra=None):
        bundle = yaml.safe_load((self.root / "clusters" / "demo" / "secrets.yaml").read_text())
        os_key = base64.b64decode(bundle["certs"]["os"]["key"])
        for entry in NODES:
            double = doubles.NodeDouble(entry["ip"], self.root / "node-state" / entry["name"], os_ca_key=os_key)
            flags = ["--talos-version", version, "--schematic", VANILLA] + DOUBLE_FLAGS + (extra or {}).get(entry["name"], [])
            self.doubles[entry["name"]] = double.start(config=self.config(entry["name"]), extra=flags)
        (self.root / "pods.json").write_text(json.dumps(pods))
        self.kube = doubles.KubeDouble(NET + "11", self.config("cp1"), self.root / "node-state",
                                       extra=["--pods", str(self.root / "pods.json"), "--evict-delay", "0.2"]).start()

    def config(self, name):
        return self.root / "clusters" / "demo" / "nodes" / ("%s.yaml" % name)

    def upgrade(self, **kwargs):
        return self.play(UPGRADE, **kwargs)

    def restart(self, name, version):
        self.doubles[name].stop()
        self.doubles[name].start(config=self.config(name), extra=["--talos-version", version, "--schematic", VANILLA] + DOUBLE_FLAGS)

    def stop(self):
        for double in self.doubles.values():
            double.stop()
        if self.kube:
            self.kube.stop()

    def kube_state(self):
        return json.loads((self.root / "node-state" / "kube-api.json").read_text())

    def upgrades(self):
        return {name: double.state.get("upgrades", []) for name, double in self.doubles.items()}

    def version(self, name):
        return self.doubles[name].state["version"]

    def install_image(self, name):
        """The installer image of the node's rendered config."""
        documents = yaml.safe_load_all(self.config(name).read_text())
        return next(d for d in documents if d and d.get("version") == "v1alpha1")["machine"]["install"]["image"]


@pytest.fixture
def lab(tmp_path, run_playbook):
    made = Lab(tmp_path, run_playbook)
    yield made
    made.stop()


def plan_rows(run):
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Upgrade plan for cluster"))
    return {line.split()[0]: line for line in lines[start + 2:start + 2 + len(NODES)]}


def live_lines(run, name):
    return [line.strip() for line in run.stdout.splitlines() if line.startswith("  %s " % name)]


def test_rolling_upgrade_one_node_at_a_time_drains_and_is_idempotent(lab):
    lab.bring_up()
    lab.set(talos_version="v1.14.0")  # 1.14 installs over 1.12.0 and later only
    forbidden = lab.upgrade()
    assert forbidden.rc != 0
    message = forbidden.task("Upgrade Talos to the inventory's version and schematic")["result"]["msg"]
    assert "talos_version v1.14.0 cannot be installed on cp1, w1, w2: host version v1.11.5 is too old to upgrade to Talos v1.14.0" in message, message
    assert lab.upgrades() == {"cp1": [], "w1": [], "w2": []} and lab.kube_state()["patches"] == []

    lab.set(talos_version="v1.12.1")
    check = lab.upgrade(check=True)
    assert check.rc == 0, check.stdout
    rows = plan_rows(check)
    image = "factory.talos.dev/installer/%s:v1.12.1" % VANILLA
    for name in ("cp1", "w1", "w2"):
        assert "upgrade v1.11.5 -> v1.12.1 with %s (MachineService/Upgrade)" % image in rows[name], rows
    assert check.changed == 1
    assert lab.upgrades() == {"cp1": [], "w1": [], "w2": []} and lab.kube_state()["patches"] == []

    run = lab.upgrade()
    print(run.stdout)
    assert run.rc == 0, run.stdout
    upgrades = lab.upgrades()
    order = sorted(upgrades, key=lambda name: upgrades[name][0]["requested_at"])
    assert order == ["cp1", "w1", "w2"]
    for earlier, later in zip(order, order[1:]):  # each node back before the next one is asked
        assert upgrades[earlier][0]["up_at"] < upgrades[later][0]["requested_at"]
    assert {name: [(u["api"], u["image"]) for u in upgrades[name]] for name in order} == {
        name: [("MachineService/Upgrade", image)] for name in order}
    assert {name: lab.version(name) for name in order} == {"cp1": "v1.12.1", "w1": "v1.12.1", "w2": "v1.12.1"}
    kube = lab.kube_state()
    assert sorted(e["pod"] for e in kube["evictions"]) == ["default/web-5d8f-a1", "default/web-5d8f-b2", "kube-system/coredns-7c-c3"]
    assert [(p["node"], p["unschedulable"]) for p in kube["patches"]] == [
        ("cp1", True), ("cp1", False), ("w1", True), ("w1", False), ("w2", True), ("w2", False)]
    evicted = {e["node"]: e["at"] for e in kube["evictions"]}
    assert all(evicted[name] < upgrades[name][0]["requested_at"] for name in order)  # drained first
    stages = [line.split(None, 1)[1].rsplit("   ", 1)[0] for line in live_lines(run, "w1")]
    assert [s for s in stages if s.endswith("...")] == [
        "cordon ...", "drain ...", "upgrade ...", "going down ...", "coming back ...", "runs the new version ...",
        "services healthy ...", "kubernetes ready ...", "uncordon ..."], stages
    assert all(" done (" in s for s in stages if not s.endswith("...")), stages

    again = lab.upgrade()
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert all("up to date" in row for row in plan_rows(again).values())
    assert [len(u) for u in lab.upgrades().values()] == [1, 1, 1]


def test_from_1_13_pulls_then_lifecycle_upgrade_and_reboot(lab):
    lab.bring_up(version="v1.13.0")
    lab.set(talos_version="v1.13.1", talos_cluster_rolling_batch=2)
    run = lab.upgrade()
    assert run.rc == 0, run.stdout
    image = "factory.talos.dev/installer/%s:v1.13.1" % VANILLA
    for name, double in lab.doubles.items():
        calls = double.state["calls"]
        assert (calls.get("ImageServicePull"), calls.get("LifecycleServiceUpgrade"), calls.get("Reboot"), calls.get("Upgrade")) \
            == (1, 1, 1, None), (name, calls)
        assert double.state["images"] == {"1/1": [image]}  # CRI containerd, system namespace
        assert double.state["installed"] == {"image": image, "version": "v1.13.1", "schematic": VANILLA}
    upgrades = lab.upgrades()
    assert upgrades["cp1"][0]["up_at"] < min(upgrades["w1"][0]["requested_at"], upgrades["w2"][0]["requested_at"])
    # batch 2: the workers overlap
    assert upgrades["w1"][0]["requested_at"] < upgrades["w2"][0]["up_at"] and upgrades["w2"][0]["requested_at"] < upgrades["w1"][0]["up_at"]

    # Same version, another schematic (an extension added): upgraded again, to the new schematic's installer.
    lab.set(talos_extensions=["siderolabs/iscsi-tools"])
    again = lab.upgrade()
    assert again.rc == 0, again.stdout
    schematics = {double.state["schematic"] for double in lab.doubles.values()}
    assert len(schematics) == 1 and VANILLA not in schematics
    schematic = schematics.pop()
    assert "upgrade schematic %s... -> %s... with factory.talos.dev/installer/%s:v1.13.1" % (
        VANILLA[:12], schematic[:12], schematic) in plan_rows(again)["w1"]
    assert {double.state["version"] for double in lab.doubles.values()} == {"v1.13.1"}
    assert lab.upgrade().changed == 0


def test_pdb_blocked_drain_stops_naming_the_pod(lab):
    lab.bring_up(pods=PODS + [BLOCKED])
    lab.set(talos_version="v1.12.1", talos_cluster_drain_timeout=1)
    run = lab.upgrade()
    assert run.rc != 0
    message = run.task("Upgrade Talos to the inventory's version and schematic")["result"]["msg"]
    assert "w1 (127.0.22.21) failed at stage 'drain'" in message, message
    assert "default/db-0: Cannot evict pod as it would violate the pod's disruption budget. " \
           "(The disruption budget db-pdb needs 1 healthy pods and has 1 currently)" in message
    assert "not touched: w2" in message
    assert [len(u) for u in lab.upgrades().values()] == [1, 0, 0]
    assert lab.kube_state()["refusals"] and lab.doubles["w2"].calls("Upgrade") == 0
    # nothing was installed: cordoned for the drain, uncordoned again
    assert "uncordoned again, nothing was installed" in message, message
    assert [p["unschedulable"] for p in lab.kube_state()["patches"] if p["node"] == "w1"] == [True, False]
    assert lab.kube_state()["unschedulable"]["w1"] is False


def test_node_that_never_comes_back_stops_then_a_rerun_resumes(lab):
    lab.bring_up(extra={"w1": ["--upgrade-stays-down"]})
    lab.set(talos_version="v1.12.1", talos_cluster_upgrade_timeout=2)
    run = lab.upgrade()
    assert run.rc != 0
    message = run.task("Upgrade Talos to the inventory's version and schematic")["result"]["msg"]
    assert "w1 (127.0.22.21) failed at stage 'coming back': still no answer after 2" in message, message
    assert "upgraded: cp1; not touched: w2" in message
    assert lab.doubles["w2"].calls("Upgrade") == 0 and lab.version("w2") == "v1.11.5"
    # the install had started: w1 stays cordoned, and the message says so
    assert "left cordoned, as the install had started" in message, message
    assert lab.kube_state()["unschedulable"]["w1"] is True

    # mid-rollout (cp1 runs v1.12.1, w2 v1.11.5): a node provisioned now boots v1.11.5, and its config installs it
    assert lab.playbooks("configs").rc == 0
    assert {name: lab.install_image(name) for name in lab.doubles} == {name: "ghcr.io/siderolabs/installer:v1.11.5" for name in lab.doubles}

    lab.restart("w1", "v1.11.5")  # it boots its old system again
    rerun = lab.upgrade()
    assert rerun.rc == 0, rerun.stdout
    rows = plan_rows(rerun)
    assert "up to date" in rows["cp1"] and "upgrade v1.11.5 -> v1.12.1" in rows["w1"] and "upgrade" in rows["w2"]
    assert [len(u) for u in lab.upgrades().values()] == [1, 2, 1]
    assert {name: lab.version(name) for name in lab.doubles} == {"cp1": "v1.12.1", "w1": "v1.12.1", "w2": "v1.12.1"}
    assert lab.playbooks("configs").rc == 0  # every node runs v1.12.1: so do the configs
    assert {name: lab.install_image(name) for name in lab.doubles} == {name: "ghcr.io/siderolabs/installer:v1.12.1" for name in lab.doubles}
