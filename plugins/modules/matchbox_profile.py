#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: matchbox_profile
short_description: Manage a set of matchbox profiles in a matchbox data directory
version_added: 0.1.0
description:
  - Writes one C(<data_dir>/profiles/<id>.json) per entry of O(profiles) (mode 0644, file name equal
    to the id, as matchbox looks profiles up by file name), only when its content differs.
  - Refuses, before writing anything, what matchbox would silently ignore or break on - an id that is not
    a plain file name, a missing C(boot.kernel), unknown keys (matchbox ignores misspelled fields), an id
    given twice. All problems are reported at once.
  - >-
    Every file written carries the top-level key C(netboot.talos) with the value C({"managed": true}), which
    matchbox ignores. With O(prune=true) profile files that carry it and are not in O(profiles) are removed;
    files written by anything else are never touched.
  - Profiles hold no secrets; do not put any in them.
  - Runs on the boot server; needs only the Python standard library.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
seealso:
  - module: netboot.talos.matchbox_group
options:
  data_dir:
    description: matchbox data directory (its C(-data-path)).
    type: path
    default: /var/lib/matchbox
  profiles:
    description: The profiles to write.
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description: Profile id, also the file name; letters, digits, C(.), C(_) and C(-).
        type: str
        required: true
      name:
        description: Human-readable name.
        type: str
      boot:
        description: What iPXE boots.
        type: dict
        required: true
        suboptions:
          kernel:
            description: Kernel URL or path (a path is fetched from matchbox itself).
            type: str
            required: true
          initrd:
            description: Initrd URLs or paths, one C(initrd) line each.
            type: list
            elements: str
            default: []
          args:
            description: Kernel arguments, written verbatim (iPXE expands C(${mac:hexhyp}) and friends).
            type: list
            elements: str
            default: []
      ignition_id:
        description: Ignition or Butane file in C(<data_dir>/ignition).
        type: str
      generic_id:
        description: Template file in C(<data_dir>/generic).
        type: str
      cloud_id:
        description: Cloud-config file in C(<data_dir>/cloud) (deprecated by matchbox).
        type: str
  prune:
    description: Remove profile files written by this collection that are not in O(profiles).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The JSON text of each file before and after.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: One Talos profile for every control plane of v1.9.4
  netboot.talos.matchbox_profile:
    profiles:
      - id: talos-controlplane-v1.9.4-amd64
        name: Talos v1.9.4 controlplane amd64
        boot:
          kernel: /assets/talos/v1.9.4/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/kernel-amd64
          initrd:
            - /assets/talos/v1.9.4/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/initramfs-amd64.xz
          args:
            - initrd=initramfs-amd64.xz
            - talos.platform=metal
            - talos.config=http://10.0.20.50:8080/assets/talos/configs/${mac:hexhyp}.yaml
    prune: true
"""

RETURN = r"""
ids:
  description: Ids of the profiles in O(profiles).
  returned: success
  type: list
  elements: str
written:
  description: Files created or changed (or that would be, in check mode).
  returned: success
  type: list
  elements: str
removed:
  description: Files pruned (or that would be, in check mode).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import matchbox

ARGUMENT_SPEC = dict(
    data_dir=dict(type="path", default="/var/lib/matchbox"),
    profiles=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            id=dict(type="str", required=True),
            name=dict(type="str"),
            boot=dict(
                type="dict",
                required=True,
                options=dict(
                    kernel=dict(type="str", required=True),
                    initrd=dict(type="list", elements="str", default=[]),
                    args=dict(type="list", elements="str", default=[]),
                ),
            ),
            ignition_id=dict(type="str"),
            generic_id=dict(type="str"),
            cloud_id=dict(type="str"),
        ),
    ),
    prune=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    matchbox.run_module(module, "profiles", lambda: matchbox.plan_profiles(params["data_dir"], params["profiles"], params["prune"]))


if __name__ == "__main__":
    main()
