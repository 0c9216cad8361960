# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The official system extensions of each supported Talos version, as Image Factory names them.

Image Factory accepts in ``officialExtensions`` only the images its extensions catalogue of that
Talos release lists (``ghcr.io/siderolabs/extensions:<tag>``, built from siderolabs/extensions: the
Makefile's TARGETS and NONFREE_TARGETS), named ``siderolabs/<image>``. The table below records the
first Talos release whose catalogue lists each one; none has been dropped within 1.9 to 1.14.
Prereleases count as their release (1.14's three were added between v1.14.0-alpha.1 and beta.0).

An extension outside this table (a newer one, or a private Image Factory's) is refused unless the
inventory sets ``talos_extensions_allow_unknown: true``.
"""

from __future__ import annotations

import difflib

from ansible_collections.netboot.talos.plugins.module_utils.talos import versions

PREFIX = "siderolabs/"

# First Talos release (major, minor, patch) -> the extensions its catalogue added.
_ADDED = {
    (1, 9, 0): (
        "amd-ucode", "amdgpu", "binfmt-misc", "bnx2-bnx2x", "btrfs", "chelsio-drivers", "chelsio-firmware",
        "cloudflared", "crun", "drbd", "dvb-cx23885", "ecr-credential-provider", "fuse3", "gasket-driver", "glibc",
        "gvisor", "gvisor-debug", "hello-world-service", "i915", "intel-ice-firmware", "intel-ucode", "iscsi-tools",
        "kata-containers", "lldpd", "mdadm", "mei", "metal-agent", "nonfree-kmod-nvidia-lts",
        "nonfree-kmod-nvidia-production", "nut-client", "nvidia-container-toolkit-lts",
        "nvidia-container-toolkit-production", "nvidia-fabricmanager-lts", "nvidia-fabricmanager-production",
        "nvidia-open-gpu-kernel-modules-lts", "nvidia-open-gpu-kernel-modules-production", "qemu-guest-agent",
        "qlogic-firmware", "realtek-firmware", "spin", "stargz-snapshotter", "tailscale", "thunderbolt", "uinput",
        "usb-modem-drivers", "util-linux-tools", "v4l-uvc-drivers", "vmtoolsd-guest-agent", "wasmedge",
        "xen-guest-agent", "zfs",
    ),
    (1, 10, 0): (
        "amazon-ena", "ctr", "nebula", "nfsd", "nvme-cli", "panfrost", "revpi-firmware", "vc4", "xdma-driver",
        "zerotier",
    ),
    (1, 10, 1): (
        "youki",
    ),
    (1, 11, 0): (
        "dvb-m88ds3103", "hailort", "newt", "nfsrahead", "tenstorrent",
    ),
    (1, 12, 0): (
        "bird2", "mellanox-mstflint", "multipath-tools", "netbird", "nfs-utils", "nvidia-gdrdrv-device",
        "soci-snapshotter", "trident-iscsi-tools", "usb-audio-drivers", "xe",
    ),
    (1, 12, 2): (
        "gpio-pinctrl",
    ),
    (1, 13, 0): (
        "intel-npu", "joydev", "px-fuse", "rockchip-rknn", "uhid",
    ),
    (1, 14, 0): (
        "harbor-credential-provider", "hyperv-guest-agent", "kata-containers-snp",
    ),
}
_SINCE = {name: release for release, names in _ADDED.items() for name in names}


def official(version):
    """Sorted names (``siderolabs/...``) of the official extensions of this supported Talos version."""
    versions.contract(version)
    release = versions.parse(version)[:3]
    return sorted(PREFIX + name for name, since in _SINCE.items() if since <= release)


def problem(name, version):
    """Why Image Factory would refuse the extension ``name`` for this Talos version, or None."""
    known = official(version)
    if name in known:
        return None
    full = name if "/" in name else PREFIX + name
    since = _SINCE.get(full[len(PREFIX):]) if full.startswith(PREFIX) else None
    if since is not None and full not in known:
        return "%s is an official extension from Talos v%d.%d.%d on, not of %s" % ((full,) + since + (versions.normalize(version),))
    message = "%r is not an official extension of Talos %s" % (name, versions.normalize(version))
    guess = [full] if full in known else difflib.get_close_matches(full, known, n=1)
    if guess:
        message += "; did you mean %s?" % guess[0]
    return message + " (talos_extensions_allow_unknown: true accepts names Image Factory may not know)"
