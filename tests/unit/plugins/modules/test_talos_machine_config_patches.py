"""Talos's patch and validation rules as a user meets them: talos_machine_config and the inventory's trial render."""

from __future__ import annotations

import yaml

from ansible_runner import REPO, local_play

SECRETS = "talos-golden/secrets.yaml"


def node(name, version, patches, role="worker"):
    return {"name": name, "role": role, "talos_version": version, "cluster_name": "lab",
            "cluster_endpoint": "https://10.0.50.70:6443", "install_disk": "/dev/sda", "patches": patches,
            "network": {"interface": "eth0", "addresses": ["10.0.50.74/24"]}}


def render(run_playbook, shared_dir, tmp_path, nodes):
    dest = tmp_path / "nodes"
    task = {"name": "render", "netboot.talos.talos_machine_config": {"secrets": str(shared_dir / SECRETS), "dest": str(dest), "nodes": "{{ nodes }}"}}
    run = run_playbook(local_play([task]), extra_vars={"nodes": nodes})
    return run, dest


def v1alpha1(dest, name):
    return next(d for d in yaml.safe_load_all((dest / (name + ".yaml")).read_text()) if "version" in d)


# node name -> (Talos version, patches, what the written config must show)
OUTCOMES = {
    "deletes-first": ("v1.10.0", ["machine:\n  network:\n    interfaces:\n      - {interface: eth0, mtu: 9000}\n"
                                  "      - {interface: eth0, $patch: delete}\n"],
                      lambda m: m["machine"]["network"]["interfaces"] == [{"interface": "eth0", "mtu": 9000}]),
    "kubespan-zero": ("v1.11.5", [{"machine": {"network": {"kubespan": {"enabled": True, "mtu": 1500}}}},
                                  {"machine": {"network": {"kubespan": {"mtu": 0}}}}],
                      lambda m: m["machine"]["network"]["kubespan"] == {"enabled": True, "mtu": 0}),
    "inline-trim": ("v1.9.4", ["cluster:\n  inlineManifests:\n    - name: ns\n      contents: |4\n\n\n          kind: Namespace\n"],
                    lambda m: m["cluster"]["inlineManifests"] == [{"name": "ns", "contents": "kind: Namespace\n"}]),
    "empty-map-value": ("v1.12.0", [{"machine": {"nodeLabels": {"role": ""}}}], lambda m: m["machine"]["nodeLabels"] == {"role": ""}),
    "emptied-map": ("v1.11.5", [{"machine": {"sysctls": {"a": "1"}}}, {"machine": {"sysctls": {"a": {"$patch": "delete"}}}}],
                    lambda m: "sysctls" not in m["machine"]),
    "empty-map-patch": ("v1.11.5", [{"machine": {"sysfs": {}}}], lambda m: "sysfs" not in m["machine"]),
    "args-113": ("v1.13.0", [{"cluster": {"proxy": {"extraArgs": {"x": "1"}}}}, {"cluster": {"proxy": {"extraArgs": {"x": ["a", "b"]}}}}],
                 lambda m: m["cluster"]["proxy"]["extraArgs"] == {"x": ["a", "b"]}),
    "args-112": ("v1.12.0", [{"cluster": {"proxy": {"extraArgs": {"x": "1"}}}}, {"cluster": {"proxy": {"extraArgs": {"x": ""}}}}],
                 lambda m: m["cluster"]["proxy"]["extraArgs"] == {"x": "1"}),
    "missing-doc-114": ("v1.14.0", [{"apiVersion": "v1alpha1", "kind": "KubeSpanConfig", "$patch": "delete"}], lambda m: True),
}


def test_patch_rules_show_in_the_written_configs(run_playbook, shared_dir, tmp_path):
    run, dest = render(run_playbook, shared_dir, tmp_path, [node(name, version, patches) for name, (version, patches, _unused) in OUTCOMES.items()])
    assert run.rc == 0, run.stdout + run.stderr
    for name, (_unused1, _unused2, check) in OUTCOMES.items():
        assert check(v1alpha1(dest, name)), (name, v1alpha1(dest, name))


# node name -> (Talos version, patches, the message the user reads)
REFUSALS = {
    "typo": ("v1.11.5", [{"machine": {"install": {"extraKernelArg": {"$patch": "delete"}}}}],
             "nodes[typo].patches[0]: patch delete: path 'machine.install.extraKernelArg' in document '/v1alpha1': "
             "failed to delete path 'machine.install.extraKernelArg': lookup failed"),
    "missing-item": ("v1.12.0", [{"machine": {"network": {"interfaces": [{"interface": "eth7", "$patch": "delete"}]}}}],
                     "nodes[missing-item].patches[0]: patch delete: path 'machine.network.interfaces.[0]' in document '/v1alpha1'"),
    "inner-key": ("v1.13.0", ["machine:\n  network:\n    interfaces:\n      - interface: eth0\n        dhcp:\n          $patch: delete\n"],
                  "nodes[inner-key].patches[0]: error processing patch delete statements at line 1: "
                  "cannot delete an inner key in 'machine.network.interfaces.[0].dhcp'"),
    "proxy": ("v1.14.0", [{"apiVersion": "v1alpha1", "kind": "KubeProxyConfig", "mode": "nftables"}],
              "nodes[proxy].patches: KubeProxyConfig: proxy image cannot be empty"),
    "unknown-kind": ("v1.11.5", [{"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0", "mtu": 9000}],
                     'nodes[unknown-kind].patches: error decoding document v1alpha1/LinkConfig/eth0: "LinkConfig" "v1alpha1": not registered'),
    "hostname": ("v1.12.0", [{"machine": {"network": {"hostname": "w1"}}}],
                 "nodes[hostname].patches: static hostname is already set in v1alpha1 config"),
    "duplicate": ("v1.13.0", ["apiVersion: v1alpha1\nkind: KubeSpanConfig\n---\napiVersion: v1alpha1\nkind: KubeSpanConfig\nmtu: 1420\n"],
                  "nodes[duplicate].patches[0]: duplicate document v1alpha1/KubeSpanConfig/ is not allowed (line 4)"),
    "missing-doc": ("v1.13.0", [{"apiVersion": "v1alpha1", "kind": "KubeSpanConfig", "$patch": "delete"}],
                    "nodes[missing-doc].patches[0]: patch delete: document 'v1alpha1/KubeSpanConfig' is not in the config"),
    "v1-delete": ("v1.9.4", [{"version": "v1alpha1", "$patch": "delete"}],
                  "nodes[v1-delete].patches[0]: error processing patch delete statements in document 1: "
                  "missing apiVersion in document for which $patch: delete is used"),
    "json-multidoc": ("v1.12.0", [[{"op": "add", "path": "/machine/sysctls", "value": {"a": "1"}}]],
                      "nodes[json-multidoc].patches[0]: JSON6902 patches are not supported for multi-document machine configuration"),
    "conflict": ("v1.12.0", [{"apiVersion": "v1alpha1", "kind": "BondConfig", "name": "eth0", "links": ["eth1"], "bondMode": "active-backup"}],
                 "nodes[conflict].patches: conflicting documents: LinkConfig/eth0 and BondConfig/eth0"),
}


def test_patch_and_validation_refusals_name_node_and_patch_in_talos_words(run_playbook, shared_dir, tmp_path):
    run, dest = render(run_playbook, shared_dir, tmp_path, [node(name, version, patches) for name, (version, patches, _unused) in REFUSALS.items()])
    assert run.rc != 0
    message = run.task("render")["result"]["msg"]
    for name, (_unused1, _unused2, expected) in REFUSALS.items():
        assert expected in message, (name, message)
    assert not dest.exists()


def test_trial_render_refuses_a_cluster_wide_document_workers_cannot_take(run_playbook, tmp_path):
    cluster = {"talos_cluster_name": "lab", "talos_cluster_endpoint": "https://10.0.50.70:6443", "talos_version": "v1.14.0",
               "talos_network": "10.0.50.0/24", "talos_gateway": "10.0.50.1", "talos_nameservers": ["10.0.50.1"],
               "talos_install_disk": "/dev/sda",
               "talos_worker_patches": [{"apiVersion": "v1alpha1", "kind": "KubeProxyConfig", "mode": "nftables"}]}
    hosts = {"kube01": {"talos_mac": "02:00:00:50:00:71", "talos_ip": "10.0.50.71"},
             "kube04": {"talos_mac": "02:00:00:50:00:74", "talos_ip": "10.0.50.74"}}
    inventory = {"all": {"vars": cluster, "children": {"talos": {"children": {
        "controlplane": {"hosts": {"kube01": hosts["kube01"]}}, "workers": {"hosts": {"kube04": hosts["kube04"]}}}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    run = run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=path)
    assert run.rc != 0
    problems = run.failures[0]["result"]["problems"]
    assert any(p.startswith("kube04: talos_worker_patches[0]") and "KubeProxyConfig: proxy image cannot be empty" in p for p in problems), problems
    assert not any(p.startswith("kube01") for p in problems), problems
    assert not (tmp_path / "clusters").exists()
