"""Node removal through ansible-playbook on loopback doubles (127.0.13.x): members the inventory lacks
stop the member check that converge runs (or are removed with talos_cluster_remove_absent), and
playbooks/remove.yml takes inventory nodes out - refusing the last control plane and quorum loss."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes
from test_talos_rollout import CLUSTER, Lab, doubles

NET = "127.0.13."
SETTINGS = dict(CLUSTER, talos_cluster_endpoint="https://%s11:6443" % NET, talos_network=NET + "0/24",
                talos_rollout_reboot_timeout=10, talos_rollout_poll_interval=0.2)
WIPED = {"graceful": True, "reboot": False, "wipe": ["STATE", "EPHEMERAL"]}
PODS = [{"name": "web-1", "namespace": "shop", "node": "w2", "owner": "ReplicaSet"},
        {"name": "flannel-w2", "namespace": "kube-system", "node": "w2", "owner": "DaemonSet"},
        {"name": "kube-proxy-w2", "namespace": "kube-system", "node": "w2", "owner": "mirror"}]


def node(name, role, last):
    return {"name": name, "role": role, "ip": NET + str(last), "mac": "52:54:00:13:00:%02x" % last}


class RemovalLab(Lab):
    """A Lab on 127.0.13.x with a boot server (this machine) whose matchbox data dir is in the lab."""

    KUBE_IP = NET + "11"

    def __init__(self, root, run_playbook, nodes):
        self.matchbox = root / "matchbox"
        (self.matchbox / "assets").mkdir(parents=True)
        super().__init__(root, run_playbook, nodes)
        self.group_vars = dict(SETTINGS)
        self.write_inventory()

    def write_inventory(self):
        super().write_inventory()
        path = self.inventory / "hosts.yml"
        hosts = yaml.safe_load(path.read_text())
        hosts["all"]["children"]["boot_server"] = {"hosts": {"bootserver": {
            "ansible_connection": "local", "ansible_become": False, "matchbox_data_dir": str(self.matchbox)}}}
        path.write_text(yaml.safe_dump(hosts))

    def drop(self, name):
        """Take a node out of the inventory (its double keeps running)."""
        self.nodes = [n for n in self.nodes if n["name"] != name]
        del self.host_vars[name]
        (self.inventory / "host_vars" / ("%s.yml" % name)).unlink()
        self.write_inventory()

    def with_pods(self, pods):
        self.kube.stop()
        (self.root / "node-state" / "kube-api.json").unlink()  # seeded only when the double starts without it
        pods_file = self.root / "pods.json"
        pods_file.write_text(json.dumps(pods))
        cp = next(n["name"] for n in self.nodes if n["role"] == "controlplane")
        self.kube = doubles.KubeDouble(self.KUBE_IP, self.dir / "nodes" / ("%s.yaml" % cp), self.root / "node-state",
                                       extra=["--pods", str(pods_file), "--evict-delay", "0.2"]).start()

    def kube_nodes(self):
        api = kubernetes.client_from_file(str(self.dir / "kubeconfig"))
        try:
            return sorted(item["metadata"]["name"] for item in api.get("/api/v1/nodes")["items"])
        finally:
            api.close()

    def kube_state(self):
        return json.loads((self.root / "node-state" / "kube-api.json").read_text())

    def groups(self):
        return sorted(path.name for path in (self.matchbox / "groups").glob("*.json"))

    def publish(self):
        play = [{"name": "publish", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "Validate", "netboot.talos.talos_inventory": {}, "register": "inv"},
            {"name": "Publish", "ansible.builtin.include_role": {"name": "netboot.talos.talos_config", "tasks_from": "publish"},
             "vars": {"talos_config_inventory": "{{ inv }}"}}]}]
        run = self.run_playbook(play, inventory=self.inventory, workdir=self.root)
        assert run.rc == 0, run.stdout

    def member_check(self, **kwargs):
        """What converge runs before its plan: talos_rollout's remove tasks with no node named."""
        play = [{"name": "member check", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "Validate", "netboot.talos.talos_inventory": {}, "register": "inv"},
            {"name": "Members", "ansible.builtin.include_role": {"name": "netboot.talos.talos_rollout", "tasks_from": "remove"},
             "vars": {"talos_rollout_cluster_name": "{{ inv.cluster.name }}", "talos_rollout_cluster_dir": "{{ inv.cluster.dir }}",
                      "talos_rollout_nodes": "{{ inv.nodes }}", "talos_rollout_inventory": "{{ inv }}",
                      "talos_rollout_remove_absent": "{{ talos_cluster_remove_absent | default(false) }}",
                      "talos_rollout_drain_timeout": "{{ talos_cluster_drain_timeout | default(300) }}"}}]}]
        return self.run_playbook(play, inventory=self.inventory, workdir=self.root, **kwargs)

    def remove(self, names, **kwargs):
        return self.play("remove", extra_vars={"nodes": names}, **kwargs)

    def untouched(self, *names):
        for name in names:
            state = self.doubles[name].state
            assert state["stage"] == "configured" and state["resets"] == [] and "etcd_left_at" not in state, name


@pytest.fixture
def removal_lab(tmp_path, run_playbook, request):
    made = RemovalLab(tmp_path, run_playbook, request.param)
    yield made
    made.stop()


@pytest.mark.parametrize("removal_lab", [[node("cp1", "controlplane", 11), node("w1", "worker", 21), node("w2", "worker", 22)]],
                         indirect=True)
def test_a_member_absent_from_the_inventory_stops_unless_remove_absent_then_it_is_drained_reset_deleted(removal_lab):
    lab = removal_lab
    lab.bring_up()
    lab.with_pods(PODS)
    lab.publish()
    published = lab.groups()
    assert len(published) == 3, published

    lab.drop("w2")
    stopped = lab.member_check()
    assert stopped.rc != 0
    message = stopped.task("Check the removal and the cluster's members")["result"]["msg"]
    assert message == ("cluster demo has members the inventory lacks; nothing changed:\ncluster member w2 (127.0.13.22; "
                       "Kubernetes node) is not in the inventory: add it back, or set talos_cluster_remove_absent: true "
                       "to remove it from the cluster"), message
    lab.untouched("cp1", "w1", "w2")
    assert lab.groups() == published and "w2" not in lab.kube_state()["unschedulable"]

    checked = lab.member_check(extra_vars={"talos_cluster_remove_absent": True}, check=True)
    assert checked.rc == 0, checked.stdout
    assert "w2 (127.0.13.22, worker, up): would remove - cordon, drain, reset, delete the Kubernetes node" in checked.stdout
    lab.untouched("w2")
    assert lab.groups() == published

    lab.with_pods(PODS + [{"name": "db-0", "namespace": "shop", "node": "w2", "owner": "ReplicaSet", "pdb": "db"}])
    blocked = lab.member_check(extra_vars={"talos_cluster_remove_absent": True, "talos_cluster_drain_timeout": 1})
    assert blocked.rc != 0
    message = blocked.task("Remove the nodes from the cluster")["result"]["msg"]
    assert message.startswith("removal stopped: w2 (127.0.13.22) failed at stage 'drain': draining w2: eviction still "
                              "refused after 1.0s: shop/db-0: "), message
    assert lab.doubles["w2"].state["resets"] == [] and lab.kube_state()["unschedulable"] == {"w2": True}

    lab.with_pods(PODS)  # the budget allows it now
    run = lab.member_check(extra_vars={"talos_cluster_remove_absent": True})
    print(run.stdout)
    assert run.rc == 0, run.stdout
    record = run.task("Remove the nodes from the cluster")["result"]["records"]
    assert [(r["name"], [s["stage"] for s in r["stages"]]) for r in record] == [
        ("w2", ["cordon", "drain", "reset", "reset: going down", "delete kubernetes node"])]
    assert lab.doubles["w2"].state["resets"] == [WIPED] and lab.doubles["w2"].state["stage"] == "powered_off"
    kube = lab.kube_state()
    # The reset node stays a (NotReady) Node until the removal deletes it: the DELETE found it.
    assert [d["node"] for d in kube["deletions"]] == ["w2"] and lab.kube_nodes() == ["cp1", "w1"]
    assert {"node": "w2", "unschedulable": True} in [{k: p[k] for k in ("node", "unschedulable")} for p in kube["patches"]]
    assert "w2" not in kube["nodes"] and "w2" not in kube["unschedulable"]
    assert [e["pod"] for e in kube["evictions"]] == ["shop/web-1"], kube["evictions"]  # DaemonSet and mirror pods stay
    assert len(lab.groups()) == 2 and lab.groups() == [g for g in published if g in lab.groups()]
    lab.untouched("cp1", "w1")

    again = lab.member_check(extra_vars={"talos_cluster_remove_absent": True})
    assert again.rc == 0 and again.changed == 0, again.stdout


@pytest.mark.parametrize("removal_lab", [[node("cp1", "controlplane", 11), node("cp2", "controlplane", 12),
                                          node("cp3", "controlplane", 13), node("w1", "worker", 21)]], indirect=True)
def test_remove_yml_control_planes_leave_etcd_quorum_and_the_last_one_are_refused(removal_lab):
    lab = removal_lab
    lab.bring_up()
    lab.publish()
    talosconfig = lab.dir / "talosconfig"

    lab.doubles["cp3"].stop()  # cp3 is down: removing cp2 would leave 1 healthy of 2 members
    refused = lab.remove("cp2")
    assert refused.rc != 0
    message = refused.task("Check the removal and the cluster's members")["result"]["msg"]
    assert message.startswith("nothing removed:\ncp2: refused: removing it would break etcd quorum - 1 of the 2 members "
                              "left would be healthy and etcd needs 2 (not healthy: cp3 ("), message
    lab.untouched("cp1", "cp2")

    checked = lab.remove("cp3", check=True)
    assert checked.rc == 0 and "cp3 (127.0.13.13, controlplane, down): would remove - cordon, drain, leave etcd, " \
        "delete the Kubernetes node" in checked.stdout, checked.stdout
    assert "removed_members" not in lab.doubles["cp1"].state and len(lab.groups()) == 4

    down = lab.remove("cp3")  # down: EtcdRemoveMemberByID through a control plane that stays
    assert down.rc == 0, down.stdout
    stages = down.task("Remove the nodes from the cluster")["result"]["records"][0]["stages"]
    assert [s["stage"] for s in stages] == ["cordon", "drain", "leave etcd", "delete kubernetes node"]
    removed = lab.doubles["cp1"].state.get("removed_members", []) + lab.doubles["cp2"].state.get("removed_members", [])
    assert len(removed) == 1
    assert yaml.safe_load(talosconfig.read_text())["contexts"]["demo"]["endpoints"] == [NET + "11", NET + "12"]
    assert len(lab.groups()) == 3

    up = lab.remove("cp2")  # up: it leaves etcd itself, then the graceful reset
    assert up.rc == 0, up.stdout
    stages = up.task("Remove the nodes from the cluster")["result"]["records"][0]["stages"]
    assert [s["stage"] for s in stages] == ["cordon", "drain", "leave etcd", "reset", "reset: going down", "delete kubernetes node"]
    state = lab.doubles["cp2"].state
    assert "etcd_left_at" in state and state["resets"] == [WIPED]
    assert yaml.safe_load(talosconfig.read_text())["contexts"]["demo"]["endpoints"] == [NET + "11"]
    assert [d["node"] for d in lab.kube_state()["deletions"]] == ["cp3", "cp2"] and lab.kube_nodes() == ["cp1", "w1"]

    again = lab.remove("cp2")
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert "cp2 (127.0.13.12): already out of the cluster" in again.stdout or \
        again.task("Check the removal and the cluster's members")["result"]["removing"] == []

    last = lab.remove("cp1")
    assert last.rc != 0
    message = last.task("Check the removal and the cluster's members")["result"]["msg"]
    assert message.startswith("nothing removed:\ncp1: refused: is the cluster's last control plane"), message
    lab.untouched("cp1", "w1")

    typo = lab.remove("cp9")
    assert typo.rc != 0 and "remove: cp9 is not a node of the inventory (nodes: cp1, cp2, cp3, w1)" in typo.stdout
