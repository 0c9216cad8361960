"""Talos patch semantics: strategic merge rules, $patch: delete, RFC 6902, and the checks a patch can break."""

from __future__ import annotations

import pytest

from ansible_collections.netboot.talos.plugins.module_utils.talos import patch


def v1(**machine):
    return {"version": "v1alpha1", "machine": dict(machine), "cluster": {"network": {"podSubnets": ["10.244.0.0/16"]}}}


def test_maps_merge_and_lists_append():
    docs = patch.apply([v1(certSANs=["a"], kubelet={"image": "k"})], {"machine": {"certSANs": ["b"], "kubelet": {"extraArgs": {"x": "y"}}}})
    assert docs[0]["machine"] == {"certSANs": ["a", "b"], "kubelet": {"image": "k", "extraArgs": {"x": "y"}}}


def test_replace_paths():
    docs = patch.apply([v1()], "cluster:\n  network:\n    podSubnets: [10.0.0.0/8]\n")
    assert docs[0]["cluster"]["network"]["podSubnets"] == ["10.0.0.0/8"]


def test_zero_scalars_are_no_ops_but_bools_overwrite():
    docs = patch.apply([v1(type="controlplane", port=7, flag=True)], {"machine": {"type": "", "port": 0, "flag": False}})
    assert docs[0]["machine"] == {"type": "controlplane", "port": 7, "flag": False}


def test_keyed_merges_interfaces_vlans_admission_control():
    base = v1(network={"interfaces": [{"interface": "eth0", "addresses": ["1.1.1.1/24"], "vlans": [{"vlanId": 5, "mtu": 1}]}]})
    base["cluster"]["apiServer"] = {"admissionControl": [{"name": "PodSecurity", "configuration": {"a": 1}}]}
    docs = patch.apply([base], {
        "machine": {"network": {"interfaces": [
            {"interface": "eth0", "addresses": ["2.2.2.2/24"], "vlans": [{"vlanId": 5, "mtu": 9}, {"vlanId": 6}]},
            {"interface": "eth1", "dhcp": True}]}},
        "cluster": {"apiServer": {"admissionControl": [{"name": "PodSecurity", "configuration": {"b": 2}}]}},
    })
    interfaces = docs[0]["machine"]["network"]["interfaces"]
    assert interfaces[0]["addresses"] == ["1.1.1.1/24", "2.2.2.2/24"]
    assert interfaces[0]["vlans"] == [{"vlanId": 5, "mtu": 9}, {"vlanId": 6}]
    assert interfaces[1] == {"interface": "eth1", "dhcp": True}
    assert docs[0]["cluster"]["apiServer"]["admissionControl"] == [{"name": "PodSecurity", "configuration": {"a": 1, "b": 2}}]


def test_extension_config_files_keyed_by_mount_path():
    ext = {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "x", "configFiles": [{"mountPath": "/a", "content": "1"}]}
    docs = patch.apply([v1(), ext], {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "x",
                                     "configFiles": [{"mountPath": "/a", "content": "2"}, {"mountPath": "/b", "content": "3"}]})
    assert docs[1]["configFiles"] == [{"mountPath": "/a", "content": "2"}, {"mountPath": "/b", "content": "3"}]


def test_patch_delete_on_list_item_map_key_and_document():
    base = [v1(network={"interfaces": [{"interface": "eth0"}, {"interface": "eth1"}]}, sysctls={"a": "1"}),
            {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"}]
    docs = patch.apply(base, [
        {"machine": {"network": {"interfaces": [{"interface": "eth0", "$patch": "delete"}]}, "sysctls": {"$patch": "delete"}}},
        {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "$patch": "delete"},
    ])
    assert len(docs) == 1
    assert docs[0]["machine"] == {"network": {"interfaces": [{"interface": "eth1"}]}}
    with pytest.raises(patch.PatchError, match=r"missing apiVersion in document for which \$patch: delete is used"):
        patch.apply(base, {"version": "v1alpha1", "$patch": "delete"})


def test_unmatched_documents_are_appended():
    docs = patch.apply([v1()], "apiVersion: v1alpha1\nkind: KubeletConfig\nclusterDNS:\n  - 3.3.3.3\n")
    assert docs[1] == {"apiVersion": "v1alpha1", "kind": "KubeletConfig", "clusterDNS": ["3.3.3.3"]}


def test_rfc6902_operations_and_escaping():
    doc = {"version": "v1alpha1", "machine": {"nodeLabels": {"a/b": "1", "m~n": "2"}, "list": [1, 2]}}
    docs = patch.apply([doc], [
        {"op": "add", "path": "/machine/list/-", "value": 3},
        {"op": "add", "path": "/machine/list/0", "value": 0},
        {"op": "replace", "path": "/machine/nodeLabels/a~1b", "value": "x"},
        {"op": "remove", "path": "/machine/nodeLabels/m~0n"},
        {"op": "copy", "from": "/machine/list", "path": "/machine/copy"},
        {"op": "move", "from": "/machine/copy", "path": "/machine/moved"},
        {"op": "test", "path": "/machine/list/3", "value": 3},
    ])
    assert docs[0]["machine"] == {"nodeLabels": {"a/b": "x"}, "list": [0, 1, 2, 3], "moved": [0, 1, 2, 3]}
    assert doc["machine"]["list"] == [1, 2]  # input untouched


@pytest.mark.parametrize("ops, error", [
    ([{"op": "remove", "path": "/machine/none"}], r"operation 0 \(remove /machine/none\): path /machine/none does not exist"),
    ([{"op": "test", "path": "/version", "value": "v2"}], "test failed"),
    ([{"op": "add", "path": "/machine/list/5", "value": 1}], "out of range"),
    ([{"op": "frobnicate", "path": "/x"}], "unknown op"),
    ([{"op": "replace", "path": "/machine"}], "needs a value"),
])
def test_rfc6902_errors(ops, error):
    with pytest.raises(patch.PatchError, match=error):
        patch.apply([{"version": "v1alpha1", "machine": {"list": []}}], ops)


def test_json_patch_refused_on_multi_document_configs():
    with pytest.raises(patch.PatchError, match=patch.MULTIDOC_JSON6902):
        patch.apply([v1(), {"apiVersion": "v1alpha1", "kind": "HostnameConfig"}], '[{"op": "remove", "path": "/debug"}]')


def valid(role="worker", **machine):
    return [{"version": "v1alpha1", "persist": True,
             "machine": dict({"type": role, "ca": {"crt": "c", "key": "" if role == "worker" else "k"}, "install": {"disk": "/dev/sda"}}, **machine),
             "cluster": {"controlPlane": {"endpoint": "https://a:6443"}, "ca": {"crt": "c", "key": ""}}}]


@pytest.mark.parametrize("change, error", [
    ({"machine": {"ca": {"key": "secret"}}}, "machine.ca.key must not be set on a worker"),
    ({"cluster": {"ca": {"key": "secret"}}}, "cluster.ca.key must not be set on a worker"),
    ({"cluster": {"etcd": {"ca": {"crt": "x"}}}}, "cluster.etcd must not be set on a worker"),
    ({"machine": {"network": {"interfaces": [{"interface": "eth0", "vip": {"ip": "1.2.3.4"}}]}}}, "VIP is not allowed on a worker"),
    ({"persist": False}, "persist: false"),
    ({"cluster": {"network": {"cni": {"name": "calico"}}}}, "cni.name 'calico'"),
    ({"machine": {"install": {"disk": {"$patch": "delete"}}}}, "install disk or disk selector is required"),
    ({"cluster": {"controlPlane": {"endpoint": "not a url"}}}, "not a valid URL"),
    ({"machine": {"kubelet": {"imag": "typo"}}}, "unknown field machine.kubelet.imag"),
])
def test_validation_catches_what_talos_rejects(change, error):
    docs = patch.apply(valid(), change)
    with pytest.raises(patch.PatchError, match=error):
        patch.validate(docs, "worker")


def test_valid_configs_pass_and_reorder_uses_struct_order():
    patch.validate(valid(), "worker")
    patch.validate(valid("controlplane"), "controlplane")
    docs = patch.apply([v1(kubelet={"image": "k", "defaultRuntimeSeccompProfileEnabled": True})],
                       {"machine": {"kubelet": {"extraMounts": [{"source": "/s", "destination": "/d", "type": "bind"}]}}})
    ordered = patch.reorder(docs[0])
    assert list(ordered["machine"]["kubelet"]) == ["image", "extraMounts", "defaultRuntimeSeccompProfileEnabled"]
    assert list(ordered["machine"]["kubelet"]["extraMounts"][0]) == ["destination", "type", "source"]
