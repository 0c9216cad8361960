#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_vault
short_description: Encrypt or decrypt a cluster directory's secret files with ansible-vault
version_added: 0.3.0
description:
  - Turns every secret file of O(dir) (C(secrets.yaml), C(talosconfig), C(kubeconfig),
    C(nodes/*.yaml), C(backups/etcd-*.db)) into the Ansible vault format, or back to clear text
    with O(state=decrypted). C(staged.json) holds only digests and stays clear.
  - Each file is replaced atomically with its own mode, and only after its new content checked out
    (the encrypted text decrypts to the original bytes). A file already in the wanted form keeps its
    bytes, so a second run changes nothing.
  - Needs the run's vault password (C(--vault-id), C(--vault-password-file) or
    E(ANSIBLE_VAULT_PASSWORD_FILE)); V(talos_vault_id) picks the vault id that encrypts.
  - Run by C(playbooks/vault_encrypt.yml).
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
requirements:
  - cryptography
options:
  dir:
    description: The cluster directory, C(clusters/<cluster name>).
    type: path
    required: true
  state:
    description: V(encrypted) or V(decrypted).
    type: str
    choices: [encrypted, decrypted]
    default: encrypted
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Keep the cluster's secrets encrypted (ansible-playbook ... --vault-id lab@~/.lab-vault)
  netboot.talos.talos_vault:
    dir: clusters/lab
"""

RETURN = r"""
files:
  description: The files (relative to O(dir)) that were, or in check mode would be, converted.
  returned: always
  type: list
  elements: str
  sample: [kubeconfig, nodes/kube01.yaml, secrets.yaml, talosconfig]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.netboot.talos.plugins.module_utils import cluster_vault, libraries, vault


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            state=dict(type="str", choices=["encrypted", "decrypted"], default="encrypted"),
            **vault.OPTIONS
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    try:
        libraries.check("cryptography")
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib(exc.name))
    keyring = vault.active()
    if keyring is None:
        module.fail_json(msg="%s: converting needs the vault password: %s" % (module.params["dir"], vault.HOW_TO_PASS))
    try:
        changed = cluster_vault.convert(module.params["dir"], keyring, module.params["state"] == "encrypted", module.check_mode)
    except vault.VaultError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(changed), files=changed)


if __name__ == "__main__":
    main()
