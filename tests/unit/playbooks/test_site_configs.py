"""`ansible-playbook site.yml -i inventory/example` on the controller: outputs, modes, idempotence."""

from __future__ import annotations

import stat

import yaml

from ansible_runner import REPO


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def run_example_configs(run_playbook, tmp_path, **kwargs):
    # The example inventory's boot server cannot be reached from here: run the configs play only.
    return run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=REPO / "inventory" / "example", **kwargs)


def test_example_inventory_writes_the_cluster_and_reruns_unchanged(run_playbook, tmp_path):
    first = run_example_configs(run_playbook, tmp_path)
    assert first.rc == 0, first.stdout + first.stderr
    cluster = tmp_path / "clusters" / "homecluster"
    secrets = cluster / "secrets.yaml"
    configs = sorted(p.name for p in (cluster / "nodes").iterdir())
    assert configs == ["kube01.yaml", "kube02.yaml", "kube03.yaml"]
    for path in [secrets, cluster / "talosconfig"] + [cluster / "nodes" / c for c in configs]:
        assert mode(path) == 0o600, path

    kube02 = yaml.safe_load((cluster / "nodes" / "kube02.yaml").read_text())
    assert kube02["machine"]["type"] == "controlplane"
    assert kube02["machine"]["network"]["hostname"] == "kube02"
    interface = kube02["machine"]["network"]["interfaces"][0]
    assert interface["addresses"] == ["10.0.50.72/24"]
    assert interface["vip"] == {"ip": "10.0.50.69"}
    assert kube02["cluster"]["controlPlane"]["endpoint"] == "https://10.0.50.69:6443"
    assert kube02["cluster"]["clusterName"] == "homecluster"
    bundle = yaml.safe_load(secrets.read_text())
    assert kube02["machine"]["token"] == bundle["trustdinfo"]["token"]

    talosconfig = yaml.safe_load((cluster / "talosconfig").read_text())
    assert talosconfig["contexts"]["homecluster"]["endpoints"] == ["10.0.50.71", "10.0.50.72", "10.0.50.73"]

    secrets_before = secrets.read_bytes()
    configs_before = {c: (cluster / "nodes" / c).read_bytes() for c in configs}
    second = run_example_configs(run_playbook, tmp_path, diff=True)
    assert second.rc == 0, second.stdout
    assert second.changed == 0, second.stdout
    assert secrets.read_bytes() == secrets_before
    assert {c: (cluster / "nodes" / c).read_bytes() for c in configs} == configs_before
    for secret in (bundle["trustdinfo"]["token"], bundle["secrets"]["bootstraptoken"], bundle["certs"]["os"]["key"]):
        assert secret not in first.stdout + second.stdout


def test_check_mode_on_a_fresh_checkout_writes_nothing(run_playbook, tmp_path):
    run = run_example_configs(run_playbook, tmp_path, check=True)
    assert run.rc == 0, run.stdout + run.stderr
    assert not (tmp_path / "clusters").exists()
