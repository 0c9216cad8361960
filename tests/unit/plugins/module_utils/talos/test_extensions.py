"""extensions: the official extensions of each Talos release, and why a name would be refused."""

from __future__ import annotations

import pytest

from ansible_collections.netboot.talos.plugins.module_utils.talos import extensions, versions


@pytest.mark.parametrize("talos", ["v1.9.0", "v1.10.1", "v1.11.6", "v1.12.2", "v1.13.9", "v1.14.0-rc.1"])
def test_every_official_extension_is_accepted_and_named_with_its_prefix(talos):
    names = extensions.official(talos)
    assert names and all(name.startswith("siderolabs/") for name in names)
    assert [name for name in names if extensions.problem(name, talos)] == []


def test_the_catalogue_only_grows_from_release_to_release():
    releases = ["v1.9.0", "v1.9.6", "v1.10.0", "v1.10.1", "v1.11.0", "v1.12.0", "v1.12.2", "v1.13.0", "v1.14.0"]
    catalogues = [set(extensions.official(release)) for release in releases]
    for older, newer in zip(catalogues, catalogues[1:]):
        assert older <= newer


@pytest.mark.parametrize(
    "name, talos, expected",
    [
        # siderolabs/extensions Makefile TARGETS at those tags
        ("siderolabs/youki", "v1.10.0", "siderolabs/youki is an official extension from Talos v1.10.1 on, not of v1.10.0"),
        ("gpio-pinctrl", "v1.12.1", "siderolabs/gpio-pinctrl is an official extension from Talos v1.12.2 on, not of v1.12.1"),
        ("siderolabs/kata-containers-snp", "v1.13.9",
         "siderolabs/kata-containers-snp is an official extension from Talos v1.14.0 on, not of v1.13.9"),
        ("siderolabs/iscsi-tool", "v1.9.4", "'siderolabs/iscsi-tool' is not an official extension of Talos v1.9.4; "
         "did you mean siderolabs/iscsi-tools?"),
        ("qemu-guest-agent", "v1.11.0", "'qemu-guest-agent' is not an official extension of Talos v1.11.0; "
         "did you mean siderolabs/qemu-guest-agent?"),
        ("example.org/driver", "v1.12.0", "'example.org/driver' is not an official extension of Talos v1.12.0"),
    ],
)
def test_refused_names_say_why(name, talos, expected):
    problem = extensions.problem(name, talos)
    assert problem.startswith(expected), problem
    if "from Talos" not in expected:
        assert problem.endswith("(talos_extensions_allow_unknown: true accepts names Image Factory may not know)")


@pytest.mark.parametrize("name, talos", [("siderolabs/youki", "v1.10.1"), ("siderolabs/kata-containers-snp", "v1.14.0-rc.1"),
                                         ("siderolabs/iscsi-tools", "v1.9.0")])
def test_names_from_their_release_on_are_accepted(name, talos):
    assert extensions.problem(name, talos) is None


def test_unsupported_talos_versions_are_refused():
    with pytest.raises(versions.VersionError):
        extensions.official("v1.8.3")
