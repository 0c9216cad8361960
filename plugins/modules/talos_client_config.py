#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_client_config
short_description: Write a talosconfig with an admin client certificate for the Talos API
version_added: 0.1.0
description:
  - Writes a talosconfig (the file C(talosctl) reads) for context O(context) with the cluster's
    Talos API CA and a client certificate signed by it - the CA's key type (Ed25519 normally),
    subject C(O=os:admin), client authentication only, valid for O(validity_days).
  - The client certificate is kept across runs while it is signed by this bundle's CA, carries
    O(roles) and is more than O(renew_days) from expiry; only then is a new one issued. Changing
    O(endpoints) or O(nodes) keeps the certificate.
  - Other contexts already in the file are kept. The file is mode 0600.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.vault
requirements:
  - cryptography
  - PyYAML
author:
  - netboot.talos developers (@netboot-talos)
options:
  path:
    description: Path of the talosconfig to write.
    type: path
    required: true
  secrets:
    description: Path of the cluster secrets bundle (see M(netboot.talos.talos_secrets)).
    type: path
    required: true
  context:
    description: Context name, usually the cluster name.
    type: str
    required: true
  endpoints:
    description: Talos API endpoints, usually the control-plane IPs.
    type: list
    elements: str
    required: true
  nodes:
    description: Default target nodes of the context; omitted from the file when empty.
    type: list
    elements: str
    default: []
  roles:
    description:
      - Talos API roles of the client certificate, one organisation each (sorted, as Talos writes them).
      - One of C(os:admin), C(os:operator), C(os:reader), C(os:etcd:backup), C(os:image:verifier),
        C(os:meta:writer), C(os:impersonator).
    type: list
    elements: str
    default: [os:admin]
  validity_days:
    description: Validity of a newly issued client certificate.
    type: int
    default: 365
  renew_days:
    description: Issue a new certificate when the current one expires within this many days. Must be smaller than O(validity_days).
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: partial
    details: Says that the file changes, never its content.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Write the talosconfig
  netboot.talos.talos_client_config:
    path: clusters/homecluster/talosconfig
    secrets: clusters/homecluster/secrets.yaml
    context: homecluster
    endpoints: [10.0.50.71, 10.0.50.72, 10.0.50.73]
"""

RETURN = r"""
path:
  description: Path of the talosconfig.
  returned: always
  type: str
renewed:
  description: Whether a new client certificate was issued.
  returned: always
  type: bool
expires:
  description: Expiry of the client certificate in the file (ISO 8601, UTC).
  returned: always
  type: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils import files

try:
    from ansible_collections.netboot.talos.plugins.module_utils import libraries
    from ansible_collections.netboot.talos.plugins.module_utils.talos import client_config, secrets
    libraries.check()
except ImportError as exc:  # PyYAML or cryptography missing where the module runs
    MISSING_LIBRARY, IMPORT_TRACEBACK = exc.name, traceback.format_exc()
else:
    MISSING_LIBRARY = IMPORT_TRACEBACK = None


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "secrets": {"type": "path", "required": True},
            "context": {"type": "str", "required": True},
            "endpoints": {"type": "list", "elements": "str", "required": True},
            "nodes": {"type": "list", "elements": "str", "default": []},
            "roles": {"type": "list", "elements": "str", "default": ["os:admin"]},
            "validity_days": {"type": "int", "default": 365},
            "renew_days": {"type": "int", "default": 30},
            **vault.OPTIONS
        },
        supports_check_mode=True,
    )
    vault.configure(module)
    if MISSING_LIBRARY:
        module.fail_json(msg=missing_required_lib(MISSING_LIBRARY), exception=IMPORT_TRACEBACK)
    params = module.params
    problems = client_config.check_options(
        params["context"], params["endpoints"], params["nodes"], params["roles"], params["validity_days"], params["renew_days"]
    )
    if problems:
        module.fail_json(msg="; ".join(problems), problems=problems, path=params["path"])
    try:
        bundle = secrets.load(params["secrets"])
    except secrets.BundleError as exc:
        module.fail_json(msg="secrets: %s" % exc, problems=exc.problems, path=params["path"])
    if bundle is None:
        if module.check_mode:
            module.exit_json(changed=True, renewed=True, expires="", path=params["path"], msg="the secrets bundle does not exist yet")
        module.fail_json(msg="secrets: %s does not exist; create it with netboot.talos.talos_secrets" % params["secrets"])
    try:
        result = client_config.ensure(
            params["path"], bundle, params["context"], params["endpoints"], params["nodes"], params["roles"],
            params["validity_days"], params["renew_days"], module.check_mode,
        )
    except client_config.ClientConfigError as exc:
        module.fail_json(msg=str(exc), problems=exc.problems, path=params["path"])
    output = {"changed": result["changed"], "renewed": result["renewed"], "expires": result["expires"], "path": params["path"]}
    if module._diff and result["changed"]:
        output["diff"] = files.text_diff(params["path"], result["previous"], result["content"], hidden=True)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
