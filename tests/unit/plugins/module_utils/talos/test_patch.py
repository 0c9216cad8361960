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


# ---------------------------------------------------------------------------------------------
# Talos's configpatcher rules, one case each (the rule names are listed in the issue 14 note)

IFACES = {"interfaces": [{"interface": "eth0", "mtu": 1500, "dhcp": True}, {"interface": "eth1"}]}


def base(contract_docs=()):
    return [v1(network=IFACES, sysctls={"a": "1"}, kubelet={"image": "k", "extraArgs": {"x": "1"}}), *contract_docs]


HOSTNAME = {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"}

PATCH_ERRORS = {
    "delete of a missing map key fails": (
        {"machine": {"sysctls": {"b": {"$patch": "delete"}}}},
        "patch delete: path 'machine.sysctls.b' in document '/v1alpha1': failed to delete path 'machine.sysctls.b': lookup failed"),
    "delete of a misspelt field fails": (
        {"machine": {"kubelett": {"$patch": "delete"}}}, "failed to delete path 'machine.kubelett': lookup failed"),
    "delete under an unset section fails": (
        {"machine": {"network": {"kubespan": {"mtu": {"$patch": "delete"}}}}}, "path 'machine.network.kubespan.mtu'.*lookup failed"),
    "delete of a missing list item fails": (
        {"machine": {"network": {"interfaces": [{"interface": "eth9", "$patch": "delete"}]}}},
        r"path 'machine.network.interfaces.\[0\]' in document '/v1alpha1': .*lookup failed"),
    "delete of a list item by a number fails (Talos compares strings)": (
        {"machine": {"network": {"interfaces": [{"interface": "eth0", "vlans": [{"vlanId": 5, "$patch": "delete"}]}]}}},
        "searching for complex paths in slices is not supported"),
    "delete of a scalar list item is not a selector": (
        {"machine": {"certSANs": {"x": {"$patch": "delete"}}}}, "lookup failed"),
    "delete of an inner key of a list item is refused": (
        {"machine": {"network": {"interfaces": [{"interface": "eth0", "mtu": {"$patch": "delete"}}]}}},
        r"error processing patch delete statements in document 1: cannot delete an inner key in 'machine.network.interfaces.\[0\].mtu'"),
    "delete of a list item without a selector key is refused": (
        {"machine": {"network": {"interfaces": [{"$patch": "delete"}]}}}, "no key:val found in sequence node for path machine.network.interfaces.\\[0\\]"),
    "delete of the v1alpha1 document needs apiVersion": (
        {"version": "v1alpha1", "$patch": "delete"}, r"missing apiVersion in document for which \$patch: delete is used"),
    "delete with kind but no apiVersion is refused": (
        {"kind": "HostnameConfig", "auto": {"$patch": "delete"}}, "kind and apiVersion must be both set for path auto"),
    "delete in a named document fails with the named wording": (
        [{"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0", "mtu": {"$patch": "delete"}}],
        "named patch delete: document v1alpha1/LinkConfig: failed to delete path 'mtu': lookup failed"),
    "the line of the document is named for YAML text": (
        "machine:\n  sysctls: {}\n---\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: {$patch: delete}\nx: [{y: {$patch: delete}}]\n",
        "error processing patch delete statements at line 4: cannot delete an inner key in 'x.\\[0\\].y'"),
    "pre-1.14 a patch may not repeat a document": (
        [HOSTNAME, HOSTNAME], "duplicate document v1alpha1/HostnameConfig/ is not allowed"),
}


@pytest.mark.parametrize("case", sorted(PATCH_ERRORS))
def test_talos_patch_errors(case):
    change, error = PATCH_ERRORS[case]
    docs = base([{"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0"}, HOSTNAME])
    with pytest.raises(patch.PatchError, match=error):
        patch.apply(docs, change, (1, 13))


def machine_after(change, contract=(1, 14), docs=None):
    return patch.apply(docs or base(), change, contract)[0]["machine"]


PATCH_OUTCOMES = {
    "deletes of a document go before its merge": (
        {"machine": {"network": {"interfaces": [{"interface": "eth0", "mtu": 9000}, {"interface": "eth0", "$patch": "delete"}]}}},
        lambda m: m["network"]["interfaces"] == [{"interface": "eth1"}, {"interface": "eth0", "mtu": 9000}]),
    "a delete of an unset known field is a no-op": (
        {"machine": {"install": {"$patch": "delete"}}}, lambda m: "install" not in m and m["sysctls"] == {"a": "1"}),
    "a map emptied by deletes is gone (Talos omits empty maps)": (
        {"machine": {"sysctls": {"a": {"$patch": "delete"}}}}, lambda m: "sysctls" not in m),
    "explicit 0 overrides a pointer field": (
        {"machine": {"network": {"kubespan": {"mtu": 0}}}},
        lambda m: m["network"]["kubespan"] == {"mtu": 0}),
    "explicit 0 is ignored on a plain field": (
        {"machine": {"network": {"interfaces": [{"interface": "eth0", "mtu": 0}]}}},
        lambda m: m["network"]["interfaces"][0]["mtu"] == 1500),
    "false always overrides a bool": (
        {"machine": {"network": {"interfaces": [{"interface": "eth0", "dhcp": False}]}}},
        lambda m: m["network"]["interfaces"][0]["dhcp"] is False),
    "a new map key is added even when empty": (
        {"machine": {"sysctls": {"b": ""}}}, lambda m: m["sysctls"] == {"a": "1", "b": ""}),
    "an empty value keeps an existing map key before 1.13": (
        {"machine": {"kubelet": {"extraArgs": {"x": ""}}}}, lambda m: m["kubelet"]["extraArgs"] == {"x": "1"}, (1, 12)),
    "from 1.13 extraArgs entries are replaced whole": (
        {"machine": {"kubelet": {"extraArgs": {"x": ["a", "b"]}}}}, lambda m: m["kubelet"]["extraArgs"] == {"x": ["a", "b"]}, (1, 13)),
}


@pytest.mark.parametrize("case", sorted(PATCH_OUTCOMES))
def test_talos_patch_outcomes(case):
    change, check, *contract = PATCH_OUTCOMES[case]
    assert check(machine_after(change, *contract)), machine_after(change, *contract)


def test_inline_manifest_contents_lose_leading_newlines_and_tabs_not_spaces():
    docs = patch.apply(base(), "cluster:\n  inlineManifests:\n    - name: a\n      contents: \"\\n\\t\\n  kind: Namespace\\n\"\n", (1, 9))
    assert docs[0]["cluster"]["inlineManifests"] == [{"name": "a", "contents": "  kind: Namespace\n"}]


def test_replace_fields_of_other_kinds_and_keyed_replacement():
    rule = {"apiVersion": "v1alpha1", "kind": "NetworkRuleConfig", "name": "r", "ingress": [{"subnet": "10.0.0.0/8"}],
            "portSelector": {"ports": [22], "protocol": "tcp"}}
    verify = {"apiVersion": "v1alpha1", "kind": "ImageVerificationConfig", "rules": [{"image": "a/*", "skip": True, "deny": False}]}
    docs = patch.apply(base([rule, verify]), [
        {"apiVersion": "v1alpha1", "kind": "NetworkRuleConfig", "name": "r", "ingress": [{"subnet": "192.168.0.0/16"}], "portSelector": {"ports": [80]}},
        {"apiVersion": "v1alpha1", "kind": "ImageVerificationConfig", "rules": [{"image": "a/*", "deny": True}, {"image": "b/*", "skip": True}]},
    ], (1, 13))
    assert docs[1]["ingress"] == [{"subnet": "192.168.0.0/16"}] and docs[1]["portSelector"] == {"ports": [80], "protocol": "tcp"}
    assert docs[2]["rules"] == [{"image": "a/*", "deny": True}, {"image": "b/*", "skip": True}]


def test_from_114_a_patch_may_repeat_a_document_and_each_copy_merges():
    docs = patch.apply(base(), [HOSTNAME, dict(HOSTNAME, auto="off")], (1, 14))
    assert docs[1] == {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "off"}


def test_a_delete_of_a_missing_document_is_skipped_from_114_and_refused_before():
    delete = {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "$patch": "delete"}
    assert patch.apply(base(), delete, (1, 14)) == base()
    with pytest.raises(patch.PatchError, match="document 'v1alpha1/HostnameConfig' is not in the config"):
        patch.apply(base(), delete, (1, 13))


def test_pointer_fields_differ_by_version():
    eth = {"apiVersion": "v1alpha1", "kind": "EthernetConfig", "name": "eth0", "rings": {"rx": 256}}
    patched = {"apiVersion": "v1alpha1", "kind": "EthernetConfig", "name": "eth0", "rings": {"rx": 0}}
    assert patch.apply(base([eth]), patched, (1, 10))[1]["rings"] == {"rx": 0}
    assert patch.apply(base([eth]), patched, (1, 9))[1]["rings"] == {"rx": 256}


def test_an_empty_map_does_not_create_the_field():
    assert "nodeLabels" not in machine_after({"machine": {"nodeLabels": {}}})
