#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Runs on the boot server; the action plugin of the same name (plugins/action/talos_boot_assets.py)
# calls it once per file and prints a line for each as it is done.

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
  files:
    description:
      - Only these of the files the nodes need, keyed C(<version>/<schematic>/<file>) as in O(checksums).
      - Without it the action plugin runs the module once per file and prints a line per file as it
        is done (C(  v1.11.5/376567988ad3.../kernel-amd64   12.3 MB in 4.1 s)); the result is the same.
    type: list
    elements: str
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
sizes:
  description: Bytes of each file fetched, by path (empty in check mode).
  returned: always
  type: dict
"""

import os

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
            files=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        fetched, present, failures = boot_assets.provide(
            params["dest"], params["nodes"], params["base_url"], params["local_dir"], params["checksums"], params["timeout"], module.check_mode,
            params["files"]
        )
    except ValueError as exc:
        module.fail_json(msg="Bad nodes, nothing was fetched: %s" % exc)
    sizes = {path: os.path.getsize(path) for path in fetched if not module.check_mode}
    if failures:
        module.fail_json(msg=boot_assets.failure_message(failures, params["dest"]), failures=failures, fetched=fetched,
                         present=present, sizes=sizes, changed=bool(fetched))
    module.exit_json(changed=bool(fetched), fetched=fetched, present=present, sizes=sizes)


if __name__ == "__main__":
    main()
