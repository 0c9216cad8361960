#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_secrets
short_description: Create a Talos cluster secrets bundle once, and never regenerate it
version_added: 0.1.0
description:
  - Creates the cluster's secrets bundle at O(path) in exactly the format and with exactly the key
    types of C(talosctl gen secrets) - ECDSA P-256 etcd, Kubernetes and aggregator CAs, an Ed25519
    Talos API CA, an RSA-4096 service-account key, bootstrap and trustd tokens, and a secretbox
    encryption secret. The file is mode 0600; a directory it creates is 0700.
  - An existing bundle, also one made by talosctl, is validated and kept byte for byte. It is never
    rewritten or regenerated; only a wrong file mode is corrected.
  - A corrupt or incomplete bundle fails with every problem named by its field, and nothing is written.
  - Nothing secret is returned or shown in a diff.
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
    description: Path of the bundle, usually C(clusters/<cluster>/secrets.yaml).
    type: path
    required: true
  talos_version:
    description:
      - Talos version the bundle is made for (C(v1.9.0) ... C(v1.14.x)); only used when a bundle is created.
      - Every supported version gets a secretbox encryption secret and an RSA-4096 service-account key.
        From 1.14 talosctl encodes the cluster id with standard base64, before with URL-safe base64.
      - When omitted the id is URL-safe base64; Talos treats it as an opaque string either way.
    type: str
notes:
  - Back the bundle up. Losing it means losing access to the cluster; the module cannot recreate it.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: partial
    details: Reports that the file is created or its mode fixed, never its content.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Create the cluster secrets once
  netboot.talos.talos_secrets:
    path: clusters/homecluster/secrets.yaml
    talos_version: v1.11.5
"""

RETURN = r"""
path:
  description: Path of the bundle.
  returned: always
  type: str
created:
  description: Whether this run created the bundle (in check mode, whether it would).
  returned: always
  type: bool
certificate_authorities:
  description:
    - Subject and expiry of each CA, and the SHA-256 fingerprint of the Talos API (os) CA. No secrets.
    - Empty in check mode when the bundle does not exist yet.
  returned: success
  type: dict
  sample: {"os": {"subject": "O=talos", "not_after": "2036-11-23T21:00:00+00:00", "sha256": "3F:0C:..."}}
problems:
  description: Every problem of an unusable bundle, each naming its field (for example C(certs.os.key)).
  returned: failure
  type: list
  elements: str
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import versions

try:
    from ansible_collections.netboot.talos.plugins.module_utils import libraries
    from ansible_collections.netboot.talos.plugins.module_utils.talos import secrets
    libraries.check()
except ImportError as exc:  # PyYAML or cryptography missing where the module runs
    MISSING_LIBRARY, IMPORT_TRACEBACK = exc.name, traceback.format_exc()
else:
    MISSING_LIBRARY = IMPORT_TRACEBACK = None


def main():
    module = AnsibleModule(
        argument_spec=dict({"path": {"type": "path", "required": True}, "talos_version": {"type": "str"}}, **vault.OPTIONS),
        supports_check_mode=True,
    )
    vault.configure(module)
    if MISSING_LIBRARY:
        module.fail_json(msg=missing_required_lib(MISSING_LIBRARY), exception=IMPORT_TRACEBACK)
    path = module.params["path"]
    contract = None
    if module.params["talos_version"] is not None:
        try:
            contract = versions.contract(module.params["talos_version"])
        except versions.VersionError as exc:
            module.fail_json(msg="talos_version: %s" % exc, path=path)
    try:
        mode_before = "mode: %04o\n" % files.file_mode(path) if os.path.isfile(path) else ""
        changed, created, bundle = secrets.ensure(path, module.check_mode, contract)
    except secrets.BundleError as exc:
        module.fail_json(msg=str(exc), problems=exc.problems, path=path)
    except OSError as exc:
        module.fail_json(msg="path: %s: %s" % (path, exc.strerror), path=path)
    result = {
        "changed": changed,
        "created": created,
        "path": path,
        "certificate_authorities": secrets.describe(bundle) if bundle else {},
    }
    if module._diff and changed:
        if created:
            result["diff"] = {"before_header": path, "after_header": path, "before": "", "after": "(new secrets bundle, content hidden)\n"}
        else:
            result["diff"] = {
                "before_header": path, "after_header": path,
                "before": mode_before, "after": "mode: %04o\n" % secrets.BUNDLE_MODE,
            }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
