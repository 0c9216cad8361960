"""Patches that change the cluster's identity are refused by the trial render, naming host, variable and field."""

from __future__ import annotations

import pytest
import yaml

from ansible_runner import REPO

CLUSTER = {
    "talos_cluster_name": "idcluster",
    "talos_cluster_endpoint": "https://10.0.50.69:6443",
    "talos_network": "10.0.50.0/24",
    "talos_install_disk": "/dev/sda",
}
CONTROLPLANE = {"kube01": {"talos_mac": "02:00:00:50:00:71", "talos_ip": "10.0.50.71"}}
WORKERS = {"kube02": {"talos_mac": "02:00:00:50:00:72", "talos_ip": "10.0.50.72"}}
B64 = "Zm9vCg=="


def typed(kind, body):
    return "apiVersion: v1alpha1\nkind: %s\n%s" % (kind, body)


def v114(host, kind, body, fields):
    """A 1.14 case: one typed document patched on one host through talos_patches."""
    return ("v1.14.0", "talos_patches", host, [typed(kind, body)], host, "talos_patches[0]", fields)


# name: (Talos version, variable, where it is set (host or "all"), patches, host, expected variable, fields)
CASES = {
    "cluster id on one node": ("v1.11.5", "talos_patches", "kube01", [{"cluster": {"id": B64}}], "kube01", "talos_patches[0]", "cluster.id"),
    "cluster secret for every node": (
        "v1.11.5", "talos_cluster_patches", "all", [{"cluster": {"secret": B64}}], "kube02", "talos_cluster_patches[0]", "cluster.secret",
    ),
    "bootstrap token of the workers": (
        "v1.9.4", "talos_worker_patches", "all", [{"cluster": {"token": "abcdef.0123456789abcdef"}}], "kube02",
        "talos_worker_patches[0]", "cluster.token",
    ),
    "trustd token as YAML text": (
        "v1.12.0", "talos_patches", "kube02", ["machine:\n  token: abcdef.0123456789abcdef\n"], "kube02", "talos_patches[0]", "machine.token",
    ),
    "Talos API CA of a worker": ("v1.10.0", "talos_patches", "kube02", [{"machine": {"ca": {"crt": B64}}}], "kube02", "talos_patches[0]", "machine.ca.crt"),
    "Kubernetes CA key of the control planes": (
        "v1.13.0", "talos_controlplane_patches", "all", [{"cluster": {"ca": {"key": B64}}}], "kube01",
        "talos_controlplane_patches[0]", "cluster.ca.key",
    ),
    "aggregator CA and service-account key, blamed on the second patch": (
        "v1.11.5", "talos_patches", "kube01",
        [{"machine": {"sysctls": {"vm.swappiness": "1"}}}, {"cluster": {"aggregatorCA": {"crt": B64}, "serviceAccount": {"key": B64}}}],
        "kube01", "talos_patches[1]", "cluster.aggregatorCA.crt, cluster.serviceAccount.key",
    ),
    "etcd CA": ("v1.11.5", "talos_patches", "kube01", [{"cluster": {"etcd": {"ca": {"crt": B64}}}}], "kube01", "talos_patches[0]", "cluster.etcd.ca.crt"),
    "secretbox encryption secret": (
        "v1.11.5", "talos_patches", "kube01", [{"cluster": {"secretboxEncryptionSecret": B64}}], "kube01", "talos_patches[0]",
        "cluster.secretboxEncryptionSecret",
    ),
    "aescbc encryption secret added": (
        "v1.11.5", "talos_patches", "kube01", [{"cluster": {"aescbcEncryptionSecret": B64}}], "kube01", "talos_patches[0]",
        "cluster.aescbcEncryptionSecret",
    ),
    "1.14 cluster id and secret": v114(
        "kube01", "DiscoveryIdentityConfig", "clusterID: x\nclusterSecret: y\n", "DiscoveryIdentityConfig.clusterID, DiscoveryIdentityConfig.clusterSecret"
    ),
    "1.14 Kubernetes CA of a control plane": v114("kube01", "KubeAPIServerCAConfig", "issuingCA:\n  key: x\n", "KubeAPIServerCAConfig.issuingCA.key"),
    "1.14 worker's accepted Kubernetes CA deleted": v114("kube02", "KubeAPIServerCAConfig", "$patch: delete\n", "KubeAPIServerCAConfig.acceptedCAs"),
    "1.14 aggregator CA": v114("kube01", "KubeAggregatorCAConfig", "issuingCA:\n  cert: x\n", "KubeAggregatorCAConfig.issuingCA.cert"),
    "1.14 service-account key": v114("kube01", "KubeServiceAccountConfig", "issuer:\n  privateKey: x\n", "KubeServiceAccountConfig.issuer.privateKey"),
    "1.14 encryption keys deleted": v114(
        "kube01", "KubeEtcdEncryptionConfig", "$patch: delete\n", "KubeEtcdEncryptionConfig.config (its encryption keys)"
    ),
}


def write_inventory(tmp_path, version, variable, where, patches):
    cluster = dict(CLUSTER, talos_version=version)
    controlplane, workers = {k: dict(v) for k, v in CONTROLPLANE.items()}, {k: dict(v) for k, v in WORKERS.items()}
    if where == "all":
        cluster[variable] = patches
    else:
        (controlplane if where in controlplane else workers)[where][variable] = patches
    data = {"all": {"vars": cluster, "children": {"talos": {"children": {
        "controlplane": {"hosts": controlplane}, "workers": {"hosts": workers}}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def hosts_of(problem):
    """The hosts a problem line names (one mistake on many hosts is said once)."""
    return problem.split(": ", 1)[0].split(", ")


def run_configs(run_playbook, tmp_path, *inventory):
    return run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=write_inventory(tmp_path, *inventory))


@pytest.mark.parametrize("case", sorted(CASES))
def test_patch_changing_the_identity_is_refused_before_anything_is_written(run_playbook, tmp_path, case):
    version, variable, where, patches, host, field, fields = CASES[case]
    run = run_configs(run_playbook, tmp_path, version, variable, where, patches)
    assert run.rc != 0, run.stdout
    assert [f["task"].split(" : ")[-1] for f in run.failures] == ["Validate every node of the inventory"], run.stdout
    problems = run.failures[0]["result"]["problems"]
    expected = "%s: changes the cluster's identity (%s): these come from the cluster's secrets bundle" % (field, fields)
    assert any(host in hosts_of(p) and p.partition(": ")[2].startswith(expected) for p in problems), problems
    assert not (tmp_path / "clusters").exists()


def test_patch_changing_the_machine_type_is_refused(run_playbook, tmp_path):
    run = run_configs(run_playbook, tmp_path, "v1.11.5", "talos_patches", "kube02", [{"machine": {"type": "controlplane"}}])
    assert run.rc != 0
    problems = run.failures[0]["result"]["problems"]
    assert any(hosts_of(p) == ["kube02"] and p.partition(": ")[2].startswith("talos_patches[0]: ") and "machine.type" in p for p in problems), problems
    assert not (tmp_path / "clusters").exists()


ALLOWED = {
    "1.11 extra accepted CAs": ("v1.11.5", [{"machine": {"acceptedCAs": [{"crt": B64}]}}]),
    "1.14 extra accepted Kubernetes CA on a worker": ("v1.14.0", [typed("KubeAPIServerCAConfig", "acceptedCAs:\n  - x\n")]),
    "1.12 sysctls and a kubelet mount": (
        "v1.12.0", [{"machine": {"sysctls": {"vm.swappiness": "1"}, "kubelet": {"extraMounts": [
            {"destination": "/var/x", "type": "bind", "source": "/var/x", "options": ["bind", "rw"]},
        ]}}}],
    ),
}


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_patches_that_keep_the_identity_are_accepted(run_playbook, tmp_path, case):
    version, patches = ALLOWED[case]
    run = run_configs(run_playbook, tmp_path, version, "talos_worker_patches", "all", patches)
    assert run.rc == 0, run.stdout
    assert (tmp_path / "clusters" / "idcluster" / "nodes" / "kube02.yaml").exists()
