#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_apply_config
short_description: Apply a machine config to a Talos node, in maintenance mode or over mTLS
version_added: 0.1.0
description:
  - With O(connection=auto) the node is probed first - in maintenance mode the config is delivered
    over server-only TLS (no client certificate; optionally pinned by O(fingerprint)), a configured
    node gets it over mTLS with the talosconfig.
  - A dry run decides C(changed) - a node in maintenance mode has no config yet, so applying always
    changes it; a configured node reports its config diff, and details that end, in Talos's words,
    with C(Config diff:) followed by C(No changes.) mean changed=false.
    The diff is never returned (it holds secrets); only the dry run's summary is.
  - In check mode, or with O(dry_run), only the dry run is made.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  node:
    description: Address of the node.
    type: str
    required: true
  src:
    description: Path of the machine config (YAML, possibly several documents).
    type: path
    required: true
  connection:
    description: C(maintenance) (insecure TLS), C(secure) (mTLS) or C(auto) (probe the node).
    type: str
    choices: [auto, maintenance, secure]
    default: auto
  fingerprint:
    description: SPKI SHA-256 fingerprint (base64) of the maintenance-mode certificate, as the node's console prints it.
    type: str
  mode:
    description:
      - Apply mode; maintenance mode accepts only C(auto), C(reboot) and C(try). Other modes fail
        there with Talos's refusal, e.g. C(apply configuration --mode='staged' is not supported in
        maintenance mode) (error C(MaintenanceMode)).
    type: str
    choices: [auto, no_reboot, reboot, staged, try]
    default: auto
  dry_run:
    description: Only ask the node what applying would do.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
    details: The config diff holds secrets and is not shown.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Deliver the config to a node waiting in maintenance mode
  netboot.talos.talos_apply_config:
    talosconfig: clusters/home/talosconfig
    node: 10.0.0.12
    src: clusters/home/nodes/kube02.yaml
"""

RETURN = r"""
connection:
  description: How the node was reached, C(maintenance) or C(secure).
  returned: always
  type: str
mode:
  description: The apply mode the node chose.
  returned: when the node answered
  type: str
summary:
  description: The node's dry-run summary without the config diff.
  returned: always
  type: str
warnings_from_node:
  description: Warnings the node returned.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import files, vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api

# How Talos ends the dry-run details when the config is the one it runs (machined generateDiff).
NO_CHANGES = "Config diff:\n\nNo changes."


def summary_of(details):
    return details.split("Config diff:")[0].strip()


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            node=dict(type="str", required=True),
            src=dict(type="path", required=True),
            connection=dict(type="str", choices=["auto", "maintenance", "secure"], default="auto"),
            fingerprint=dict(type="str"),
            mode=dict(type="str", choices=["auto", "no_reboot", "reboot", "staged", "try"], default="auto"),
            dry_run=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    try:
        data = files.read_secret(params["src"])
        if data is None:
            raise FileNotFoundError(2, "No such file or directory", params["src"])
    except OSError as exc:
        module.fail_json(msg="src: cannot read %s: %s" % (params["src"], exc.strerror))
    connector = api.connector(module, require_talosconfig=params["connection"] == "secure", pin=params["fingerprint"])
    node = params["node"]
    result = dict(node=node, connection=params["connection"], warnings_from_node=[])
    try:
        if params["connection"] == "auto":
            stage, detail, _version = client.run(client.probe(connector, node))
            if stage == client.DOWN:
                raise client.Unavailable(node, detail)
            result["connection"] = "maintenance" if stage == client.MAINTENANCE else "secure"
        maintenance = result["connection"] == "maintenance"
        target = connector.maintenance(node) if maintenance else connector.secure(node)
        dry = client.run(client.apply_configuration(target, data, params["mode"], dry_run=True))
        result.update(summary=summary_of(dry["mode_details"]), mode=dry["mode"], warnings_from_node=dry["warnings"])
        changed = maintenance or not dry["mode_details"].rstrip().endswith(NO_CHANGES)
        if changed and not (module.check_mode or params["dry_run"]):
            applied = client.run(client.apply_configuration(target, data, params["mode"]))
            result.update(summary=summary_of(applied["mode_details"]), mode=applied["mode"], warnings_from_node=applied["warnings"])
    except client.TalosApiError as exc:
        api.fail(module, exc, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
