"""matchbox documents for Talos nodes and MAC normalisation as matchbox (Go net.ParseMAC) does it."""

from __future__ import annotations

import pytest

from ansible_collections.netboot.talos.plugins.module_utils import matchbox
from ansible_collections.netboot.talos.plugins.module_utils.talos import factory

OTHER_SCHEMATIC = "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245"


def node(name, mac, role="controlplane", version="v1.9.4", arch="amd64", schematic=factory.VANILLA_SCHEMATIC, args=()):
    return {"name": name, "role": role, "mac": mac, "ip": "10.0.50.%d" % (70 + len(name)), "arch": arch,
            "talos_version": version, "schematic": schematic, "pxe_kernel_args": list(args), "config": {}}


# Go's net.ParseMAC documentation lists these forms (6, 8 and 20 octets; ':', '-' and '.').
@pytest.mark.parametrize("text, expected", [
    ("00:00:5e:00:53:01", "00:00:5e:00:53:01"),
    ("02:00:5e:10:00:00:00:01", "02:00:5e:10:00:00:00:01"),
    ("00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
     "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"),
    ("00-00-5E-00-53-01", "00:00:5e:00:53:01"),
    ("0000.5e00.5301", "00:00:5e:00:53:01"),
    ("0200.5e10.0000.0001", "02:00:5e:10:00:00:00:01"),
])
def test_macs_are_normalised_like_go_parsemac(text, expected):
    assert matchbox.normalize_mac(text) == expected


@pytest.mark.parametrize("text", ["x:x:x:x:x:x", "00:00:5e:00:53", "00005e005301", "00:00-5e:00:53:01", "0:0:5e:0:53:1", "", None])
def test_what_go_parsemac_rejects_is_rejected(text):
    with pytest.raises(ValueError):
        matchbox.normalize_mac(text)


def test_nodes_of_one_kind_share_a_profile_and_each_gets_a_group():
    entries = matchbox.talos_entries([node("kube01", "18:03:73:2A:D8:A2"), node("kube02", "02-00-00-50-00-72")],
                                     "http://10.0.20.50:8080/")
    assert [p["id"] for p in entries["profiles"]] == ["talos-controlplane-v1.9.4-amd64"]
    assert [(g["id"], g["profile"], g["selector"]) for g in entries["groups"]] == [
        ("kube01", "talos-controlplane-v1.9.4-amd64", {"mac": "18:03:73:2a:d8:a2"}),
        ("kube02", "talos-controlplane-v1.9.4-amd64", {"mac": "02:00:00:50:00:72"}),
    ]
    assert entries["configs"] == [{"name": "kube01", "ip": "10.0.50.76", "file": "18-03-73-2a-d8-a2.yaml"},
                                  {"name": "kube02", "ip": "10.0.50.76", "file": "02-00-00-50-00-72.yaml"}]


def test_profile_boots_image_factory_cmdline_with_initrd_and_config_url():
    profile = matchbox.talos_entries([node("kube01", "18:03:73:2a:d8:a2", version="v1.12.1")], "http://mb:8080")["profiles"][0]
    directory = "/assets/talos/v1.12.1/%s" % factory.VANILLA_SCHEMATIC
    assert profile["boot"]["kernel"] == directory + "/kernel-amd64"
    assert profile["boot"]["initrd"] == [directory + "/initramfs-amd64.xz"]
    args = profile["boot"]["args"]
    assert args[0] == "initrd=initramfs-amd64.xz"
    assert args[1:1 + len(factory.kernel_args("v1.12.1", "amd64"))] == factory.kernel_args("v1.12.1", "amd64")
    assert "talos.config=http://mb:8080/assets/talos/configs/${mac:hexhyp}.yaml" in args
    assert "talos.halt_if_installed=1" not in args


def test_kinds_split_by_role_version_arch_schematic_and_extra_args():
    nodes = [
        node("a", "02:00:00:00:00:01"),
        node("b", "02:00:00:00:00:02", role="worker"),
        node("c", "02:00:00:00:00:03", version="v1.10.0"),
        node("d", "02:00:00:00:00:04", arch="arm64"),
        node("e", "02:00:00:00:00:05", schematic=OTHER_SCHEMATIC),
        node("f", "02:00:00:00:00:06", args=["console=ttyS0"]),
        node("g", "02:00:00:00:00:07", args=["console=ttyS0"]),
    ]
    entries = matchbox.talos_entries(nodes, "http://mb:8080", halt_if_installed=True)
    profiles = {p["id"]: p for p in entries["profiles"]}
    assert len(profiles) == 6
    by_node = {g["id"]: g["profile"] for g in entries["groups"]}
    assert by_node["f"] == by_node["g"] != by_node["a"]
    assert by_node["e"].endswith("-613e1592")
    assert by_node["d"] == "talos-controlplane-v1.9.4-arm64"
    serial = profiles[by_node["f"]]["boot"]["args"]
    assert "console=ttyS0" in serial and "console=tty0" not in serial
    assert all("talos.halt_if_installed=1" in p["boot"]["args"] for p in profiles.values())


def test_api_delivery_leaves_out_config_url_and_files():
    entries = matchbox.talos_entries([node("kube01", "18:03:73:2a:d8:a2")], "http://mb:8080", http_delivery=False)
    assert entries["configs"] == []
    assert not any(a.startswith("talos.config=") for a in entries["profiles"][0]["boot"]["args"])


@pytest.mark.parametrize("nodes, url, message", [
    ([node("kube01", "18:03:73:2a:d8")], "http://mb:8080", "nodes[kube01]"),
    ([node("kube01", "18:03:73:2a:d8:a2", schematic="vanilla")], "http://mb:8080", "nodes[kube01]"),
    ([node("kube01", "18:03:73:2a:d8:a2")], "mb:8080", "matchbox_url"),
    ([{"name": "kube01"}], "http://mb:8080", "nodes[kube01]: missing"),
])
def test_bad_nodes_are_refused_naming_the_node(nodes, url, message):
    with pytest.raises(matchbox.MatchboxError) as error:
        matchbox.talos_entries(nodes, url)
    assert message in str(error.value)


def test_version_without_v_names_the_same_profile_and_asset_paths():
    with_v, without_v = (matchbox.talos_entries([node("kube01", "02:00:00:00:00:01", version=v)], "http://mb:8080") for v in ("v1.9.4", "1.9.4"))
    assert with_v["profiles"] == without_v["profiles"]
