"""versions: contracts, default Kubernetes versions (Talos's constants per tag) and installer images."""

from __future__ import annotations

import pytest

from ansible_collections.netboot.talos.plugins.module_utils.talos import versions


@pytest.mark.parametrize(
    "version, expected",
    [("v1.9.4", (1, 9)), ("1.10.0", (1, 10)), ("v1.11.6", (1, 11)), ("v1.12.11", (1, 12)),
     ("v1.13.0", (1, 13)), ("v1.14.0-rc.1", (1, 14)), ("v1.14.2", (1, 14))],
)
def test_contract(version, expected):
    assert versions.contract(version) == expected


@pytest.mark.parametrize("version", ["v1.8.3", "v1.15.0", "v2.0.0", "v0.14.0"])
def test_unsupported_versions_are_named(version):
    with pytest.raises(versions.VersionError, match="%r is not supported" % version):
        versions.contract(version)


@pytest.mark.parametrize("version", ["latest", "v1.9", "1.9.x", "", "v1.9.4 ", None, 194])
def test_garbled_versions_are_named(version):
    with pytest.raises(versions.VersionError, match="Talos version %s" % repr(version).replace(".", r"\.")):
        versions.contract(version)


@pytest.mark.parametrize(
    "version, kubernetes",
    [
        # talos.md section 2.1: x.y.0 and the last patch of each minor version
        ("v1.9.0", "1.32.0"), ("v1.9.6", "1.32.4"), ("v1.10.0", "1.33.0"), ("v1.10.9", "1.33.6"),
        ("v1.11.0", "1.34.0"), ("v1.11.5", "1.34.1"), ("v1.11.6", "1.34.1"), ("v1.12.0", "1.35.0"),
        ("v1.12.11", "1.35.4"), ("v1.13.0", "1.36.0"), ("v1.13.9", "1.36.3"),
        # patches in between (constants.go at those tags)
        ("v1.9.4", "1.32.2"), ("v1.10.4", "1.33.1"), ("v1.12.6", "1.35.2"), ("v1.13.5", "1.36.2"),
        # patch releases newer than the table: newest known of the minor version
        ("v1.9.7", "1.32.4"), ("v1.13.15", "1.36.3"),
        ("v1.14.0-rc.1", "1.37.0-rc.0"), ("v1.14.0", "1.37.0-rc.1"),
    ],
)
def test_default_kubernetes_version(version, kubernetes):
    assert versions.default_kubernetes_version(version) == kubernetes


def test_default_installer_image():
    assert versions.default_installer_image("v1.11.5") == "ghcr.io/siderolabs/installer:v1.11.5"
    assert versions.default_installer_image("1.13.9") == "ghcr.io/siderolabs/installer:v1.13.9"
    assert versions.default_installer_image("v1.14.0") == (
        "factory.talos.dev/metal-installer/"
        "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.0"
    )
    with pytest.raises(versions.VersionError):
        versions.default_installer_image("v1.7.0")


@pytest.mark.parametrize(
    "talos, oldest, newest",
    # pkg/machinery/compatibility/talos1xx: MinimumKubernetesVersion and MaximumKubernetesVersion (x.y.99, refused)
    [("v1.9.4", "1.27.0", "1.32.98"), ("v1.10.9", "1.28.0", "1.33.98"), ("v1.11.5", "1.29.0", "1.34.98"),
     ("v1.12.11", "1.30.0", "1.35.98"), ("v1.13.9", "1.31.0", "1.36.98"), ("v1.14.0", "1.32.0", "1.37.98")],
)
def test_kubernetes_range_follows_talos_compatibility(talos, oldest, newest):
    versions.check_kubernetes(talos, oldest)
    versions.check_kubernetes(talos, "v" + newest)
    major, minor, patch = (int(part) for part in oldest.split("."))
    too_old = "%d.%d.99" % (major, minor - 1)
    with pytest.raises(versions.VersionError, match=r"Kubernetes %s is too old to be used with Talos %s \(" % (too_old, talos)):
        versions.check_kubernetes(talos, too_old)
    too_new = newest[: newest.rindex(".")] + ".99"
    with pytest.raises(versions.VersionError, match=r"Kubernetes %s is too new to be used with Talos %s \(" % (too_new, talos)):
        versions.check_kubernetes(talos, too_new)


@pytest.mark.parametrize("talos", ["v1.9.0", "v1.9.6", "v1.10.9", "v1.11.6", "v1.12.11", "v1.13.9", "v1.14.0-rc.1", "v1.14.0"])
def test_the_default_kubernetes_of_every_version_is_in_its_range(talos):
    versions.check_kubernetes(talos, versions.default_kubernetes_version(talos))


def test_kubernetes_prereleases_compare_by_their_release():
    versions.check_kubernetes("v1.14.0-rc.1", "1.37.0-rc.0")
    with pytest.raises(versions.VersionError, match="too new"):
        versions.check_kubernetes("v1.13.9", "1.37.0-rc.0")


@pytest.mark.parametrize("kubernetes", ["1.32", "latest", "", None, 1.32, "1.32.4 "])
def test_garbled_kubernetes_versions_are_named(kubernetes):
    with pytest.raises(versions.VersionError, match="is not a Kubernetes version like 1.32.4"):
        versions.check_kubernetes("v1.9.4", kubernetes)
