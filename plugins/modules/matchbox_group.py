#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: matchbox_group
short_description: Manage a set of matchbox groups in a matchbox data directory
version_added: 0.1.0
description:
  - Writes one C(<data_dir>/groups/<id>.json) per entry of O(groups) (mode 0644, file name equal to
    the id), only when its content differs.
  - Selectors are normalised as matchbox normalises them - label names lower-cased (iPXE sends
    C(mac=), C(uuid=)), a C(mac) in any notation Go's C(net.ParseMAC) accepts becomes lower-case
    colon form, a C(uuid) is lower-cased.
  - Refuses, before writing anything and all at once, what would make matchbox skip a group or pick
    the wrong one - an invalid MAC, a profile that does not exist (or whose file is unusable), two
    groups with the same selector (two default groups included) among these groups and the other
    group files in the directory, another group file matchbox cannot read (bad JSON, bad MAC, id
    different from its file name), unknown keys, ids that are not plain file names.
  - >-
    Every file written carries the top-level key C(netboot.talos) with the value C({"managed": true}), which
    matchbox ignores. With O(prune=true) group files that carry it and are not in O(groups) are removed;
    files written by anything else are never touched.
  - Group metadata is served to anyone who asks matchbox; never put secrets in it.
  - Runs on the boot server; needs only the Python standard library.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
seealso:
  - module: netboot.talos.matchbox_profile
options:
  data_dir:
    description: matchbox data directory (its C(-data-path)).
    type: path
    default: /var/lib/matchbox
  groups:
    description: The groups to write.
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description: Group id, also the file name; letters, digits, C(.), C(_) and C(-).
        type: str
        required: true
      name:
        description: Human-readable name.
        type: str
      profile:
        description:
          - Id of the profile these machines boot; C(<data_dir>/profiles/<profile>.json) must exist.
          - In check mode a missing profile is only a warning, since an earlier task may create it.
        type: str
        required: true
      selector:
        description: Labels a request must all carry (for example C(mac)); none makes the default group.
        type: dict
        default: {}
      metadata:
        description: Data for matchbox templates and C(/metadata); no secrets.
        type: dict
        default: {}
  prune:
    description: Remove group files written by this collection that are not in O(groups).
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
- name: One group per node, selected by MAC
  netboot.talos.matchbox_group:
    groups:
      - id: kube01
        name: kube01
        profile: talos-controlplane-v1.9.4-amd64
        selector:
          mac: 18-03-73-2A-D8-A2
        metadata:
          ip: 10.0.50.71
    prune: true
"""

RETURN = r"""
ids:
  description: Ids of the groups in O(groups).
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
    groups=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            id=dict(type="str", required=True),
            name=dict(type="str"),
            profile=dict(type="str", required=True),
            selector=dict(type="dict", default={}),
            metadata=dict(type="dict", default={}),
        ),
    ),
    prune=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    matchbox.run_module(module, "groups", lambda: matchbox.plan_groups(params["data_dir"], params["groups"], params["prune"], module.check_mode))


if __name__ == "__main__":
    main()
