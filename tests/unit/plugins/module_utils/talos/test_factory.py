"""Image Factory facts, checked against upstream's own vectors (image-factory and Talos imager tests)."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos import factory

# siderolabs/image-factory pkg/schematic/schematic_test.go (TestID, TestUnmarshalID).
UPSTREAM_SCHEMATIC_IDS = [
    ({}, "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"),
    ({"extraKernelArgs": []}, "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"),
    ({"extraKernelArgs": ["noapic", "nolapic"]}, "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"),
    ({"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}, "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"),
    ({"meta": [{"key": 10, "value": "foo"}], "extraKernelArgs": [], "systemExtensions": {}},
     "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f"),
    # What POST https://factory.talos.dev/schematics answers for these two extensions (widely published,
    # e.g. Longhorn-on-Talos guides).
    ({"systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"]}},
     "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245"),
]

# siderolabs/talos pkg/imager/imager_test.go, metal cmdline for 1.10.0.
IMAGER_1_10 = {
    "amd64": "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
    "nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 selinux=1",
    "arm64": "talos.platform=metal console=ttyAMA0 console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
    "nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 selinux=1",
}
# An imager run of v1.13.2 (published build log): the default arguments after the platform's own.
IMAGER_1_13_DEFAULTS = ("init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 "
                        "printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never")


@pytest.mark.parametrize("customization, expected", UPSTREAM_SCHEMATIC_IDS)
def test_schematic_id_matches_image_factory(customization, expected):
    assert factory.schematic_id(customization) == expected


def test_vanilla_constant_is_the_id_of_an_empty_customization():
    assert factory.schematic_id(factory.customization()) == factory.VANILLA_SCHEMATIC


def test_customization_of_extensions_gives_the_published_id():
    assert factory.schematic_id(factory.customization(["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"])) == \
        "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245"


def test_extension_order_matters_as_at_image_factory():
    one = factory.schematic_id(factory.customization(["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"]))
    other = factory.schematic_id(factory.customization(["siderolabs/util-linux-tools", "siderolabs/iscsi-tools"]))
    assert one != other


@pytest.mark.parametrize("customization, field", [
    ({"secureboot": {"includeWellKnownCertificates": True}}, "customization.secureboot"),
    ({"extraKernelArgs": "noapic"}, "customization.extraKernelArgs"),
    ({"meta": [{"key": 300, "value": "x"}]}, "customization.meta[0].key"),
    ({"systemExtensions": {"official": ["x"]}}, "customization.systemExtensions"),
])
def test_schematics_we_cannot_reproduce_are_refused_naming_the_field(customization, field):
    with pytest.raises(factory.FactoryError, match=field.replace("[", r"\[").replace("]", r"\]")):
        factory.schematic_id(customization)


def test_strings_that_read_as_other_types_are_quoted_like_go_yaml():
    assert factory.canonical_schematic({"extraKernelArgs": ["true", "1", "x=1"]}) == (
        'customization:\n    extraKernelArgs:\n        - "true"\n        - "1"\n        - x=1\n'
    )


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_kernel_args_1_10_equal_the_imager_test_vectors(arch):
    assert " ".join(factory.kernel_args("v1.10.0", arch)) == IMAGER_1_10[arch]


def test_kernel_args_1_13_equal_a_real_imager_run():
    assert " ".join(factory.kernel_args("v1.13.2", "amd64")).endswith(" " + IMAGER_1_13_DEFAULTS)


@pytest.mark.parametrize("version, present, absent", [
    ("v1.9.4", ["ima_template=ima-ng", "ima_appraise=fix", "ima_hash=sha512"],
     ["selinux=1", "module.sig_enforce=1", "proc_mem.force_override=never"]),
    ("v1.10.3", ["ima_hash=sha512", "selinux=1"], ["module.sig_enforce=1", "proc_mem.force_override=never"]),
    ("v1.11.5", ["selinux=1"], ["ima_hash=sha512", "module.sig_enforce=1", "proc_mem.force_override=never"]),
    ("v1.12.11", ["selinux=1", "module.sig_enforce=1"], ["ima_hash=sha512", "proc_mem.force_override=never"]),
    ("v1.13.9", ["selinux=1", "module.sig_enforce=1", "proc_mem.force_override=never"], ["ima_hash=sha512"]),
    ("v1.14.0", ["selinux=1", "module.sig_enforce=1", "proc_mem.force_override=never"], ["ima_hash=sha512"]),
])
def test_kernel_args_carry_each_versions_distinctive_arguments(version, present, absent):
    args = factory.kernel_args(version, "amd64")
    for arg in ["talos.platform=metal", "console=tty0", "init_on_alloc=1", "slab_nomerge", "pti=on",
                "consoleblank=0", "nvme_core.io_timeout=4294967295", "printk.devkmsg=on"] + present:
        assert arg in args
    for arg in absent:
        assert arg not in args


def test_extra_console_replaces_every_default_console():
    args = factory.kernel_args("v1.10.0", "arm64", ["console=ttyS0,115200"])
    assert [a for a in args if a.startswith("console=")] == ["console=ttyS0,115200"]
    assert args.index("console=ttyS0,115200") == 1  # where the defaults were


def test_negated_extra_argument_removes_the_default():
    args = factory.kernel_args("v1.12.0", "amd64", ["-module.sig_enforce", "-console=tty0"])
    assert "module.sig_enforce=1" not in args
    assert not any(a.startswith("console=") for a in args)
    assert "selinux=1" in args


def test_other_extra_arguments_follow_the_defaults():
    args = factory.kernel_args("v1.9.4", "amd64", ["net.ifnames=0", "talos.config=http://x/y"])
    assert args[-2:] == ["net.ifnames=0", "talos.config=http://x/y"]


def test_installer_image_follows_the_version():
    assert factory.installer_image("v1.13.9", factory.VANILLA_SCHEMATIC) == \
        "factory.talos.dev/installer/%s:v1.13.9" % factory.VANILLA_SCHEMATIC
    assert factory.installer_image("v1.14.0", factory.VANILLA_SCHEMATIC) == \
        "factory.talos.dev/metal-installer/%s:v1.14.0" % factory.VANILLA_SCHEMATIC


def test_asset_urls_use_image_factory_layout():
    assert factory.asset_url(factory.VANILLA_SCHEMATIC, "v1.9.4", "kernel-amd64") == \
        "https://factory.talos.dev/image/%s/v1.9.4/kernel-amd64" % factory.VANILLA_SCHEMATIC
    assert factory.asset_files("arm64") == ["kernel-arm64", "initramfs-arm64.xz"]


@pytest.mark.parametrize("call", [
    lambda: factory.kernel_args("v1.9.4", "x86_64"),
    lambda: factory.kernel_args("v1.8.0", "amd64"),
    lambda: factory.kernel_args("1.9", "amd64"),
    lambda: factory.installer_image("v1.9.4", "not-a-schematic"),
    lambda: factory.kernel_args("v1.9.4", "amd64", "console=ttyS0"),
])
def test_bad_input_is_refused(call):
    with pytest.raises(ValueError):
        call()


def test_versions_without_v_become_release_tags_in_urls_and_images():
    assert factory.asset_url(factory.VANILLA_SCHEMATIC, "1.9.4", "kernel-amd64").endswith("/v1.9.4/kernel-amd64")
    assert factory.installer_image("1.14.0").endswith(":v1.14.0")


@pytest.mark.parametrize("arg", ["a: b", "yes", "", "# not a comment", "x=\"quoted\"", "1.5"])
def test_arguments_that_need_quoting_read_back_unchanged(arg):
    if arg == "":
        with pytest.raises(factory.FactoryError, match="extraKernelArgs"):
            factory.canonical_schematic({"extraKernelArgs": [arg]})
        return
    text = factory.canonical_schematic({"extraKernelArgs": [arg]})
    assert yaml.safe_load(text) == {"customization": {"extraKernelArgs": [arg]}}
