# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """The vault secrets of the modules that read or write files under clusters/<name>/."""

    DOCUMENTATION = r"""
options:
  vault_secrets:
    description:
      - Set by the collection's action plugin from the run's vault secrets (C(--vault-id),
        C(--vault-password-file), E(ANSIBLE_VAULT_PASSWORD_FILE); V(talos_vault_id) picks the one
        that encrypts); do not set it in a task.
      - With secrets, the cluster's secret files are read through the Ansible vault format and
        written encrypted; without them an encrypted file is refused, never overwritten.
    type: list
    elements: dict
notes:
  - Files under C(clusters/<name>/) may be vault-encrypted (see C(playbooks/vault_encrypt.yml)); a
    run without the password refuses them with a message naming the file.
"""
