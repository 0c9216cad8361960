#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: matchbox_publish
short_description: Publish a boot server's whole matchbox data - node configs, profiles and groups - in one run
version_added: 0.2.0
description:
  - Writes each node's machine config as C(<data_dir>/assets/talos/configs/<file>) (mode 0640), every profile and every
    group of O(profiles) and O(groups), each file atomically and only when it differs, then removes the configs in
    O(withheld) and, with O(prune=true), what this collection published that is not in this run.
  - Checks everything before writing anything, all problems at once - the same checks as M(netboot.talos.matchbox_profile)
    and M(netboot.talos.matchbox_group), where the profiles of this run count as existing.
  - Prune removes only profile and group files carrying the collection's marker (key C(netboot.talos)) and C(*.yaml)
    files in the configs directory, which belongs to this collection.
  - The action plugin reads each config from O(configs_dir) on the controller and sends its sha256; only the configs the
    boot server does not have already are sent, in a second run. The contents are never shown - a diff gives only the
    file name and sha256 of a config.
  - Runs on the boot server (delegate to it); needs only the Python standard library there.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
seealso:
  - module: netboot.talos.matchbox_profile
  - module: netboot.talos.matchbox_group
options:
  data_dir:
    description: matchbox data directory (its C(-data-path)) on the boot server.
    type: path
    default: /var/lib/matchbox
  profiles:
    description: Profiles to write, as for M(netboot.talos.matchbox_profile).
    type: list
    elements: dict
    default: []
  groups:
    description: Groups to write, as for M(netboot.talos.matchbox_group).
    type: list
    elements: dict
    default: []
  configs:
    description: Node configs to publish.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Node name; its config is C(<configs_dir>/<name>.yaml) on the controller.
        type: str
        required: true
      file:
        description: File name under the configs directory (the node's MAC, as iPXE's C(${mac:hexhyp}), and C(.yaml)).
        type: str
        required: true
      sha256:
        description: The sha256 of the config's text. The action plugin fills it in from O(configs_dir) on the controller; do not set it.
        type: str
  configs_dir:
    description: Directory of the rendered C(<node>.yaml) files on the controller; required with O(configs).
    type: path
  contents:
    description:
      - JSON object of config file name to config text, for the configs whose published copy differs from O(configs[].sha256).
      - The action plugin fills it in (a re-run that changes nothing sends no config); do not set it.
    type: str
  withheld:
    description: Config file names to remove (nodes seen running their config).
    type: list
    elements: str
    default: []
  configs_group:
    description: Group owning the published configs; empty leaves the group as it is.
    type: str
    default: ""
  prune:
    description: Remove the configs, profiles and groups this collection published that are not in this run.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: JSON text of profiles and groups before and after; for configs only the sha256, never the content.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Publish every node of this boot server
  netboot.talos.matchbox_publish:
    data_dir: /var/lib/matchbox
    profiles: "{{ entries.profiles }}"
    groups: "{{ entries.groups }}"
    configs: "{{ entries.configs }}"
    configs_dir: "{{ playbook_dir }}/clusters/prod/nodes"
    prune: true
  delegate_to: boot1
"""

RETURN = r"""
profiles:
  description: Ids of the profiles of O(profiles).
  returned: success
  type: list
  elements: str
groups:
  description: Ids of the groups of O(groups).
  returned: success
  type: list
  elements: str
configs:
  description: File names of the configs published.
  returned: success
  type: list
  elements: str
written:
  description: Files and directories created or changed (or that would be, in check mode).
  returned: success
  type: list
  elements: str
removed:
  description: Files removed - withheld, or pruned (or that would be, in check mode).
  returned: success
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import matchbox, matchbox_publish

# What the module receives from its action plugin: each config's sha256, read on the controller, and in
# one no_log string the contents the boot server lacks (one secret value for Ansible to mask, not one per node).
ARGUMENT_SPEC = dict(
    data_dir=dict(type="path", default="/var/lib/matchbox"),
    profiles=dict(type="list", elements="dict", default=[]),
    groups=dict(type="list", elements="dict", default=[]),
    configs=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        file=dict(type="str", required=True),
        sha256=dict(type="str"),
    )),
    contents=dict(type="str", no_log=True),
    configs_dir=dict(type="path"),
    withheld=dict(type="list", elements="str", default=[]),
    configs_group=dict(type="str", default=""),
    prune=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    contents = json.loads(params["contents"] or "{}")
    configs = [dict(entry, content=contents.get(entry["file"])) for entry in params["configs"]]
    try:
        publication = matchbox_publish.plan(params["data_dir"], params["profiles"], params["groups"], configs,
                                            params["withheld"], params["prune"], params["configs_group"], module.check_mode)
    except matchbox.MatchboxError as exc:
        module.fail_json(msg="matchbox publication refused, nothing was written: %s" % exc, problems=exc.problems)
    # The action plugin drops the invocation: not echoing every profile and group back saves the transfer.
    invocation = {"module_args": {}}
    if publication.needs_content:
        module.exit_json(changed=False, needs_content=publication.needs_content, invocation=invocation)
    for warning in publication.profiles.warnings + publication.groups.warnings:
        module.warn(warning)
    changed, result, diffs = matchbox_publish.apply(publication, module.check_mode, module._diff)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(changed=changed, invocation=invocation, **result)


if __name__ == "__main__":
    main()
