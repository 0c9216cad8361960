"""Issue 10 through the playbooks, on node doubles at 127.0.22.1xx and the kube-API double: the Kubernetes
upgrade in talosctl upgrade-k8s's order (roles/talos_rollout/tasks/kubernetes.yml), its refusals, and
the cluster's recorded config contract and Kubernetes default (configs.yml)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_talos_rollout import Lab, plan_lines  # noqa: E402  (puts tests/fixtures/talos_node on the path)

import doubles  # noqa: E402

NET = "127.0.22."
OLD, NEW = "1.33.4", "1.34.1"
CLUSTER = {"talos_cluster_endpoint": "https://%s111:6443" % NET, "talos_network": NET + "0/24"}
# The components in upgrade-k8s's order, as the config names them.
ORDER = ["apiserver", "controller_manager", "scheduler", "proxy"]


def node(name, role, last):
    return {"name": name, "role": role, "ip": NET + str(last), "mac": "52:54:00:11:00:%02x" % last}


NODES = [node("cp1", "controlplane", 111), node("cp2", "controlplane", 112), node("w1", "worker", 121)]


def upgrade_play():
    """converge.yml's inventory step, then the Kubernetes task file with the inventory's version."""
    return [{"name": "Kubernetes upgrade", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "Validate the inventory's nodes", "netboot.talos.talos_inventory": {}, "register": "converge_inventory"},
        {"name": "Upgrade", "ansible.builtin.include_role": {"name": "netboot.talos.talos_rollout", "tasks_from": "kubernetes"},
         "vars": {"talos_rollout_cluster_name": "{{ converge_inventory.cluster.name }}",
                  "talos_rollout_cluster_dir": "{{ converge_inventory.cluster.dir }}",
                  "talos_rollout_kubernetes_version": "{{ converge_inventory.cluster.contract.kubernetes_version }}",
                  "talos_rollout_kubernetes_timeout": 10,
                  "talos_rollout_nodes": "{{ converge_inventory.nodes | map('dict2items') | map('selectattr', 'key', 'in', "
                                         "['name', 'role', 'ip', 'config']) | map('items2dict') | list }}"}}]}]


class K8sLab(Lab):
    def __init__(self, root, run_playbook, nodes):
        super().__init__(root, run_playbook, nodes)
        self.group_vars.update(CLUSTER)
        self.write_inventory()

    def upgrade(self, **kwargs):
        return self.run_playbook(upgrade_play(), inventory=self.inventory, workdir=self.root, **kwargs)

    def all_applies(self):
        """Every apply that was not a dry run, over all nodes, in the order they happened."""
        found = [(a["at"], name, a["images"]) for name, double in self.doubles.items() for a in double.state.get("applies", [])]
        return [(name, images) for _unused, name, images in sorted(found)]

    def record(self):
        return json.loads((self.dir / "contract.json").read_text())

    def kube_state(self):
        return json.loads((self.root / "node-state" / "kube-api.json").read_text())


@pytest.fixture
def k8s(tmp_path, run_playbook):
    made = K8sLab(tmp_path, run_playbook, NODES)
    yield made
    made.stop()


def moved(before, after):
    return sorted(c for c in after if after[c] != before.get(c))


def expected_order():
    steps = [(cp, component) for component in ORDER for cp in ("cp1", "cp2")]
    return steps + [(name, "kubelet") for name in ("cp1", "cp2", "w1")]


def tag(component, version):
    repository = "ghcr.io/siderolabs/kubelet" if component == "kubelet" else "registry.k8s.io/kube-" + component.replace("_", "-")
    return "%s:v%s" % (repository, version)


# Refused from 1.34.1, nothing applied.
REFUSED = [
    # (inventory talos_version, talos_kubernetes_version, words of the refusal)
    ("v1.11.5", "1.32.4", "would be a downgrade"),
    ("v1.12.0", "1.35.0", "version of Kubernetes 1.35.0 is too new to be used with Talos v1.11.5"),
    ("v1.13.0", "1.36.0", "more than one minor version ahead"),
]


def test_one_minor_bump_applies_component_by_component_in_upgrade_k8s_order_and_bad_versions_are_refused(k8s):
    k8s.group_vars["talos_kubernetes_version"] = OLD
    k8s.write_inventory()
    k8s.bring_up()
    assert k8s.record()["kubernetes_version"] == OLD
    nothing = k8s.upgrade()
    assert nothing.rc == 0 and nothing.changed == 0, nothing.stdout
    assert "every node runs %s" % OLD in nothing.stdout

    k8s.group_vars["talos_kubernetes_version"] = NEW
    k8s.write_inventory()
    assert k8s.play("configs").rc == 0
    assert k8s.record()["kubernetes_version"] == NEW

    check = k8s.upgrade(check=True)
    assert check.rc == 0, check.stdout
    planned = check.task("Upgrade Kubernetes one component at a time")["result"]["planned"]
    assert [(p["node"], p["component"]) for p in planned] == expected_order() + [("cp1", "manifests")]
    assert {(p["from"], p["to"]) for p in planned} == {(OLD, NEW)}
    assert "would apply 11 config changes without a reboot, then syncs the bootstrap manifests" in check.stdout
    assert k8s.all_applies() == [] and "applies" not in k8s.kube_state()

    run = k8s.upgrade()
    print(run.stdout)
    assert run.rc == 0, run.stdout
    applies = k8s.all_applies()
    assert [name for name, _unused in applies] == [name for name, _unused2 in expected_order()]
    current = {n["name"]: {c: tag(c, OLD) for c in ORDER + ["kubelet"]} for n in NODES}
    for (name, images), (wanted_node, component) in zip(applies, expected_order()):
        assert name == wanted_node
        assert moved(current[name], images) == [component], (name, component, images)
        assert images[component] == tag(component, NEW)
        current[name] = images
    for name in ("cp1", "cp2", "w1"):
        assert all(image.endswith(":v" + NEW) for image in current[name].values()), current[name]
    assert all(k8s.doubles[n].state.get("reboots", 0) == 0 for n in k8s.doubles)
    table = [line for line in run.stdout.splitlines() if line.lstrip('" ').startswith(("cp1 ", "cp2 ", "w1 ")) and "Ready" in line]
    assert len(table) == 3 and all(" v%s " % NEW in line for line in table), run.stdout
    # kube-proxy moved through the manifest sync only: server-side apply by field manager talos, after
    # the last kubelet, of what cp1 renders; the DaemonSet then rolled out to every node
    kube = k8s.kube_state()
    assert [(a["path"], a["manager"], a["force"]) for a in kube["applies"]] == [
        ("/api/v1/namespaces/kube-system/serviceaccounts/kube-proxy", "talos", True),
        ("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", "talos", True)]
    assert kube["applies"][0]["at"] > max(a["at"] for a in k8s.doubles["w1"].state["applies"])
    assert kube["daemonset"]["image"] == tag("proxy", NEW) and kube["daemonset"]["generation"] == 2
    assert "bootstrap manifests: server-side apply" in run.stdout and "kube-proxy: runs %s" % NEW in run.stdout

    again = k8s.upgrade()
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert len(k8s.all_applies()) == len(applies)
    converge = k8s.play("configs", "converge")
    assert converge.rc == 0 and "0 of 3 nodes change" in plan_lines(converge)[0], converge.stdout

    k8s.group_vars.pop("talos_kubernetes_version")  # the recorded 1.34.1 stays the cluster's version
    for talos_version, kubernetes, words in REFUSED:
        k8s.group_vars.update(talos_version=talos_version, talos_kubernetes_version=kubernetes)
        k8s.write_inventory()
        refused = k8s.upgrade()
        assert refused.rc != 0, refused.stdout
        message = refused.task("Upgrade Kubernetes one component at a time")["result"]["msg"]
        assert message.startswith("talos_kubernetes_version: nothing changed:"), message
        assert words in message, message
        for name in ("cp1", "cp2", "w1"):
            assert "%s (%s" % (name, NET) in message, message
        assert len(k8s.all_applies()) == len(applies)


def start_doubles(lab, talos_version):
    bundle = yaml.safe_load((lab.dir / "secrets.yaml").read_text())
    for entry in lab.nodes:
        if entry["name"] in lab.doubles:
            lab.doubles[entry["name"]].stop()
        double = doubles.NodeDouble(entry["ip"], lab.root / "node-state" / entry["name"],
                                    os_ca_key=base64.b64decode(bundle["certs"]["os"]["key"]))
        lab.doubles[entry["name"]] = double.start(config=lab.dir / "nodes" / ("%s.yaml" % entry["name"]),
                                                  extra=["--talos-version", talos_version])


def test_the_recorded_contract_and_kubernetes_default_stay_until_moved_and_move_only_when_every_node_runs_it(k8s):
    first = k8s.play("configs")
    assert first.rc == 0, first.stdout
    path = k8s.dir / "contract.json"
    assert k8s.record() == {"config_contract": "v1.11", "kubernetes_version": "1.34.1"}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    written = path.stat().st_mtime_ns
    start_doubles(k8s, "v1.11.5")

    k8s.group_vars["talos_version"] = "v1.12.0"
    k8s.write_inventory()
    bumped = k8s.play("configs")
    assert bumped.rc == 0, bumped.stdout
    assert path.stat().st_mtime_ns == written
    rendered = (k8s.dir / "nodes" / "cp1.yaml").read_text()
    assert "kind: HostnameConfig" not in rendered and "ghcr.io/siderolabs/kubelet:v1.34.1" in rendered
    assert "installer:v1.11.5" in rendered  # the nodes run v1.11.5: a node provisioned now installs what it boots

    refused = k8s.play("configs", extra_vars={"talos_config_contract": "v1.12"})
    assert refused.rc != 0
    message = refused.task("Refuse a config contract newer than a node runs")["result"]["msg"]
    assert message.startswith("talos_config_contract: v1.12 needs every node to run Talos v1.12"), message
    assert "cp1 (127.0.22.111) runs v1.11.5" in message and "w1 (127.0.22.121) runs v1.11.5" in message
    assert k8s.record()["config_contract"] == "v1.11"
    assert (k8s.dir / "nodes" / "cp1.yaml").read_text() == rendered

    start_doubles(k8s, "v1.12.0")
    moved_on = k8s.play("configs", extra_vars={"talos_config_contract": "v1.12"})
    assert moved_on.rc == 0, moved_on.stdout
    assert k8s.record() == {"config_contract": "v1.12", "kubernetes_version": "1.34.1"}
    assert "kind: HostnameConfig" in (k8s.dir / "nodes" / "cp1.yaml").read_text()
    stays = k8s.play("configs")
    assert stays.rc == 0 and k8s.record()["config_contract"] == "v1.12"

    back = k8s.play("configs", extra_vars={"talos_config_contract": "v1.11"})
    assert back.rc != 0
    assert "talos_config_contract: v1.11 is older than the cluster's recorded contract v1.12" in back.stdout
