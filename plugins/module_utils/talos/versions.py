# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Per-Talos-version facts, in one place: supported contracts, default Kubernetes and installer images.

Kubernetes defaults are `constants.DefaultKubernetesVersion` of every Talos release tag; a patch
release newer than the table uses the newest known default of its minor version.
"""

from __future__ import annotations

import re

SUPPORTED_CONTRACTS = ((1, 9), (1, 10), (1, 11), (1, 12), (1, 13), (1, 14))

# Talos release -> DefaultKubernetesVersion, only where it changed within a minor version.
_KUBERNETES_DEFAULTS = {
    (1, 9): [(0, "1.32.0"), (3, "1.32.1"), (4, "1.32.2"), (5, "1.32.3"), (6, "1.32.4")],
    (1, 10): [(0, "1.33.0"), (3, "1.33.1"), (5, "1.33.2"), (6, "1.33.3"), (7, "1.33.4"), (8, "1.33.6")],
    (1, 11): [(0, "1.34.0"), (2, "1.34.1")],
    (1, 12): [(0, "1.35.0"), (5, "1.35.2"), (7, "1.35.4")],
    (1, 13): [(0, "1.36.0"), (3, "1.36.1"), (5, "1.36.2"), (9, "1.36.3")],
    # 1.14 is not released yet: v1.14.0-rc.1 ships 1.37.0-rc.0, the main branch 1.37.0-rc.1.
    (1, 14): [(0, "1.37.0-rc.1")],
}
_KUBERNETES_PRERELEASE_DEFAULTS = {"1.14.0-rc.1": "1.37.0-rc.0"}

INSTALLER_IMAGE = "ghcr.io/siderolabs/installer"
# From 1.14 talosctl defaults to the Image Factory metal installer of the empty ("vanilla") schematic.
FACTORY_INSTALLER_IMAGE = "factory.talos.dev/metal-installer"
VANILLA_SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?\Z")


class VersionError(ValueError):
    """A Talos version that is garbled or outside the supported range."""


def parse(version):
    """`v1.9.4` -> (1, 9, 4, None); `v1.14.0-rc.1` -> (1, 14, 0, 'rc.1'). Raises VersionError."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if not match:
        raise VersionError("Talos version %r is not a version like v1.9.4" % (version,))
    major, minor, patch = (int(part) for part in match.group(1, 2, 3))
    return major, minor, patch, match.group(4)


def contract(version):
    """The version contract (major, minor) of a supported Talos version: `v1.9.4` -> (1, 9)."""
    major, minor, _unused1, _unused2 = parse(version)
    if (major, minor) not in SUPPORTED_CONTRACTS:
        raise VersionError(
            "Talos version %r is not supported (supported: %s)"
            % (version, ", ".join("%d.%d" % supported for supported in SUPPORTED_CONTRACTS))
        )
    return major, minor


def normalize(version):
    """The version with its leading `v`, as Talos tags and images spell it."""
    parse(version)
    return version if version.startswith("v") else "v" + version


def default_kubernetes_version(version):
    """Talos's DefaultKubernetesVersion (no leading v) for this Talos version."""
    key = contract(version)
    patch = parse(version)[2]
    exact = _KUBERNETES_PRERELEASE_DEFAULTS.get(normalize(version)[1:])
    if exact:
        return exact
    chosen = _KUBERNETES_DEFAULTS[key][0][1]
    for first_patch, kubernetes in _KUBERNETES_DEFAULTS[key]:
        if patch >= first_patch:
            chosen = kubernetes
    return chosen


def default_installer_image(version):
    """The installer image `talosctl gen config` writes for this Talos version."""
    tag = normalize(version)
    if contract(version) >= (1, 14):
        return "%s/%s:%s" % (FACTORY_INSTALLER_IMAGE, VANILLA_SCHEMATIC, tag)
    return "%s:%s" % (INSTALLER_IMAGE, tag)


# Talos's compatibility tables (pkg/machinery/compatibility/talos1xx): the oldest Kubernetes a Talos
# minor version runs and the first it no longer does (Talos compares major.minor.patch only).
_KUBERNETES_SUPPORTED = {
    (1, 9): ((1, 27, 0), (1, 32, 99)),
    (1, 10): ((1, 28, 0), (1, 33, 99)),
    (1, 11): ((1, 29, 0), (1, 34, 99)),
    (1, 12): ((1, 30, 0), (1, 35, 99)),
    (1, 13): ((1, 31, 0), (1, 36, 99)),
    (1, 14): ((1, 32, 0), (1, 37, 99)),
}
_KUBERNETES_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?\Z")


def kubernetes_core(kubernetes_version):
    """`1.32.4` or `v1.37.0-rc.1` -> (major, minor, patch); VersionError for anything else."""
    match = _KUBERNETES_VERSION.match(kubernetes_version) if isinstance(kubernetes_version, str) else None
    if not match:
        raise VersionError("%r is not a Kubernetes version like 1.32.4" % (kubernetes_version,))
    return tuple(int(part) for part in match.group(1, 2, 3))


def check_kubernetes(version, kubernetes_version):
    """Refuse a Kubernetes version Talos `version` cannot run, in Talos's words plus the supported range."""
    core = kubernetes_core(kubernetes_version)
    key = contract(version)
    oldest, too_new = _KUBERNETES_SUPPORTED[key]
    if oldest <= core < too_new:
        return
    shown = kubernetes_version.lstrip("v")
    raise VersionError(
        "version of Kubernetes %s is too %s to be used with Talos %s (Talos %d.%d runs Kubernetes %d.%d.%d to %d.%d.x)"
        % ((shown, "old" if core < oldest else "new", normalize(version)) + key + oldest + too_new[:2])
    )


# ---------------------------------------------------------------- upgrades

# The installer's host-version preflight (pkg/machinery/compatibility/talos1NN: MinimumHostUpgradeVersion,
# MaximumHostDowngradeVersion): the running versions a target minor version installs over.
_UPGRADE_HOSTS = {
    (1, 9): ((1, 8, 0), (1, 11, 0)),
    (1, 10): ((1, 8, 0), (1, 12, 0)),
    (1, 11): ((1, 9, 0), (1, 13, 0)),
    (1, 12): ((1, 10, 0), (1, 14, 0)),
    (1, 13): ((1, 11, 0), (1, 15, 0)),
    (1, 14): ((1, 12, 0), (1, 16, 0)),
}
# talosctl 1.13 takes the LifecycleService path for nodes running `>1.13.0-alpha.2 <2.0.0`.
_LIFECYCLE_PRERELEASES = ("alpha.0", "alpha.1", "alpha.2")


def _core(version):
    return parse(version)[:3]


def upgrade_path_problem(running, target):
    """None when Talos installs `target` over `running`, else why not (the installer's words and the window)."""
    key = contract(target)
    oldest, too_new = _UPGRADE_HOSTS[key]
    core = _core(running)
    if oldest <= core < too_new:
        return None
    if core < oldest:
        words = "host version %s is too old to upgrade to Talos %s" % (normalize(running), normalize(target))
    else:
        words = "host version %s is too new to downgrade to Talos %s" % (normalize(running), normalize(target))
    return "%s (Talos %d.%d installs over %d.%d.%d up to, not including, %d.%d.%d; go through the latest patch of each minor between)" % (
        (words,) + key + oldest + too_new)


def has_lifecycle_upgrade(running):
    """Whether a node running this version offers ImageService/Pull + LifecycleService/Upgrade (else MachineService/Upgrade)."""
    major, minor, patch, pre = parse(running)
    if (major, minor) < (1, 13) or major >= 2:
        return False
    return not ((major, minor, patch) == (1, 13, 0) and pre in _LIFECYCLE_PRERELEASES)


def same_release(running, target):
    """Whether the running tag is the target release (leading v and case aside)."""
    return normalize(running).lower() == normalize(target).lower()


# ---- Config contract and Kubernetes components (issue 10) -------------------------------------

_CONTRACT = re.compile(r"v?(\d+)\.(\d+)\Z")

# The components upgrade-k8s moves, in its order, with the image repository each runs from.
KUBERNETES_COMPONENTS = (
    ("apiserver", "registry.k8s.io/kube-apiserver"),
    ("controller_manager", "registry.k8s.io/kube-controller-manager"),
    ("scheduler", "registry.k8s.io/kube-scheduler"),
    ("proxy", "registry.k8s.io/kube-proxy"),
    ("kubelet", "ghcr.io/siderolabs/kubelet"),
)
KUBERNETES_IMAGES = dict(KUBERNETES_COMPONENTS)


def parse_contract(value):
    """`v1.12` or `1.12` (or a whole Talos version) -> (1, 12), a supported contract; VersionError otherwise."""
    match = _CONTRACT.match(value) if isinstance(value, str) else None
    if match:
        return contract("v%d.%d.0" % (int(match.group(1)), int(match.group(2))))
    if isinstance(value, str) and _VERSION.match(value):
        return contract(value)
    raise VersionError("%r is not a contract like v1.12" % (value,))


def contract_text(key):
    return "v%d.%d" % tuple(key)


def kubernetes_image(component, kubernetes_version):
    return "%s:v%s" % (KUBERNETES_IMAGES[component], kubernetes_version.lstrip("v"))


def boot_versions(nodes, running, empty_when_unchanged=False):
    """The nodes as the boot server serves them while a Talos upgrade rolls: each with talos_version
    the lowest version any answering node runs when that is older than its own, so a node
    (re)provisioned mid-rollout boots what the cluster already runs. running: {ip: {stage, version}}
    (talos_info's nodes); once every answering node runs the new version, nodes are as they are.
    A node served an older version has its config's installer image at that version too.
    empty_when_unchanged: [] instead of the nodes as they are when no node boots an older version
    (a caller then needs no copy of every node, nor to compare them)."""
    answering = [entry["version"] for entry in (running or {}).values()
                 if isinstance(entry, dict) and entry.get("stage") == "up" and entry.get("version")]
    if not answering:
        return [] if empty_when_unchanged else list(nodes)
    lowest = normalize(min(answering, key=lambda version: parse(version)[:3]))
    older = [parse(lowest)[:3] < parse(node["talos_version"])[:3] for node in nodes]
    if empty_when_unchanged and not any(older):
        return []
    return [_booting(node, lowest) if booting else node for node, booting in zip(nodes, older)]


def _booting(node, version):
    """The node booting an older version: its config installs that version too, so that it runs what
    it booted until the rollout reaches it (an installer image the user set, talos_install_image, stays)."""
    booting = dict(node, talos_version=version)
    config = node.get("config")
    image = (config or {}).get("install_image") or ""
    if config is not None and not node.get("install_image") and image.endswith(":" + normalize(node["talos_version"])):
        booting["config"] = dict(config, talos_version=version, install_image="%s:%s" % (image.rsplit(":", 1)[0], version))
    return booting
