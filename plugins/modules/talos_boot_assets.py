#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_boot_assets
short_description: Talos kernel and initramfs per version, architecture and schematic, verified and replaced atomically
version_added: 0.1.0
description:
  - Makes C(<dest>/<version>/<schematic>/kernel-<arch>) and C(initramfs-<arch>.xz) exist and be valid for
    every (version, arch, schematic) among O(nodes).
  - A file that is already there and valid is never fetched again. Valid means not empty, the right
    magic (x86 bzImage C(HdrS) at 0x202, arm64 Image C(ARMd) at 0x38; initramfs xz, zstd, gzip or cpio)
    and, when O(checksums) names the file, the right sha256.
  - A missing or invalid file is fetched from O(local_dir) when set, else from O(base_url); both use
    Image Factory's layout C(<schematic>/<version>/<file>). It is written to a temporary file beside
    the target, verified, then renamed over it.
  - With O(local_dir) and no checksum given, the local file is the reference, so a served copy that
    differs from it (a rebuilt image) is replaced.
  - Every file is tried; when any cannot be fetched or verified the module fails with one message
    listing each of them and how to provide them. Valid files are still put in place.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
options:
  dest:
    description: Directory holding C(<version>/<schematic>/) (matchbox's C(assets/talos)).
    type: path
    required: true
  nodes:
    description:
      - Validated nodes (as M(netboot.talos.talos_inventory) returns them); only their C(talos_version),
        C(arch) and C(schematic) are read, and each distinct combination is provided once.
    type: list
    elements: dict
    required: true
  base_url:
    description: Image Factory, or a mirror with its layout.
    type: str
    default: https://factory.talos.dev/image
  local_dir:
    description: Directory on the managed host with Image Factory's layout; used instead of O(base_url) when set.
    type: path
  checksums:
    description: sha256 per file, keyed C(<version>/<schematic>/<file>).
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for the server before giving up on one file.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details: Reports the files that would be fetched; fetches nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Kernel and initramfs of Talos v1.9.4 (vanilla) for amd64
  netboot.talos.talos_boot_assets:
    dest: /var/lib/matchbox/assets/talos
    nodes:
      - talos_version: v1.9.4
        arch: amd64
        schematic: 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
"""

RETURN = r"""
fetched:
  description: Files fetched (or that would be, in check mode).
  returned: always
  type: list
  elements: str
present:
  description: Files that were already valid.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils.talos import boot_assets, factory


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            nodes=dict(type="list", elements="dict", required=True),
            base_url=dict(type="str", default=factory.FACTORY_IMAGE_URL),
            local_dir=dict(type="path"),
            checksums=dict(type="dict", default={}),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        fetched, present, failures = boot_assets.provide(
            params["dest"], params["nodes"], params["base_url"], params["local_dir"], params["checksums"], params["timeout"], module.check_mode
        )
    except ValueError as exc:
        module.fail_json(msg="Bad nodes, nothing was fetched: %s" % exc)
    if failures:
        module.fail_json(
            msg="Could not provide %d Talos boot file(s):\n%s\nMake them reachable at talos_assets_base_url "
            "(Image Factory's layout <base>/<schematic>/<version>/<file>), or put them on the boot server under "
            "talos_assets_local_dir/<schematic>/<version>/<file>, or copy them to %s/<version>/<schematic>/ yourself."
            % (len(failures), "\n".join("- " + line for line in failures), params["dest"]),
            failures=failures,
            fetched=fetched,
            present=present,
            changed=bool(fetched),
        )
    module.exit_json(changed=bool(fetched), fetched=fetched, present=present)


if __name__ == "__main__":
    main()
