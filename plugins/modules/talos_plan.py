#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_plan
short_description: What applying the rendered configs to the running Talos nodes would do
version_added: 0.2.0
description:
  - Sends every node that is up its rendered config as an ApplyConfiguration dry run over mTLS
    (nothing is stored) and reports, per node, what applying would do - no change, apply without a
    reboot, apply with a reboot, stage for the next reboot, or refused (O(apply_mode=no_reboot) and
    Talos needs a reboot, or Talos rejects the config) - with Talos's own diff of the config it runs
    against the rendered one.
  - Every secret is redacted from the diff (C(<redacted>)). Nodes that do not answer or wait in
    maintenance mode are listed as such and not touched.
  - Only reads. RV(text) is the plan as a table for M(netboot.talos.print_text); with C(--diff) the
    per-node diffs are shown.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
  - netboot.talos.talos_day2
author:
  - netboot.talos developers (@netboot-talos)
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff of each node that would change, as Talos words it, secrets redacted.
  idempotent:
    support: full
    details: Read only.
"""

EXAMPLES = r"""
- name: Plan the config changes of the running nodes
  netboot.talos.talos_plan:
    talosconfig: clusters/home/talosconfig
    cluster: home
    nodes:
      - {name: kube01, role: controlplane, ip: 10.0.50.71}
      - {name: kube04, role: worker, ip: 10.0.50.74}
    configs_dir: clusters/home/nodes
    secrets: clusters/home/secrets.yaml
  register: plan

- name: Show it
  netboot.talos.print_text:
    text: "{{ plan.text }}"
"""

RETURN = r"""
plan:
  description: One entry per node, in the order of O(nodes).
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Node name., type: str}
    state: {description: "C(up), C(down), C(maintenance) or C(error) (it answers but refuses us).", type: str}
    action: {description: "C(none), C(no_reboot), C(reboot), C(staged), C(pending) (staged, waits for a reboot), C(refused) or C(skipped).", type: str}
    changed: {description: Whether applying would change the node., type: bool}
    diff: {description: "Talos's diff (redacted); empty when nothing changes.", type: str}
    reason: {description: Why the change is refused (redacted)., type: str}
changing:
  description: Names of the nodes that would change.
  returned: always
  type: list
  elements: str
text:
  description: The plan as lines of a table.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import options


def main():
    module = AnsibleModule(argument_spec=options.ARGUMENT_SPEC, supports_check_mode=True)
    vault.configure(module)
    day2 = options.load(module)
    connector, configs, bundle, staged = day2.prepare(module)
    plans = day2.plan(module, connector, configs, bundle, staged)
    module.exit_json(changed=False, **day2.plan_result(module, plans))


if __name__ == "__main__":
    main()
