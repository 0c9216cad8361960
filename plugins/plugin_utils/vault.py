# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The run's vault secrets for the collection's modules and action plugins (the one controller-side path).

Ansible loads the secrets of --vault-id / --vault-password-file / ANSIBLE_VAULT_PASSWORD_FILE into the
loader; `talos_vault_id` picks the one that encrypts (default: the first loaded). Modules that touch
clusters/<name>/ get them as their no_log option `vault_secrets` (VaultAction, the action plugin of
each such module); action plugins that do that work in this process run it inside in_process().
"""

from __future__ import annotations

import contextlib

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.netboot.talos.plugins.module_utils import vault

VARIABLE = "talos_vault_id"


def keyring(action, task_vars):
    """The module_utils Keyring of this run, or None without vault secrets; fails on a talos_vault_id
    that names no loaded secret."""
    loaded = getattr(getattr(action._loader, "_vault", None), "secrets", None) or []
    secrets = [(vault_id, secret.bytes) for vault_id, secret in loaded if getattr(secret, "bytes", None)]
    wanted = (task_vars or {}).get(VARIABLE)
    if wanted and "{{" in str(wanted):
        wanted = action._templar.template(wanted)
    if wanted and not any(vault_id == wanted for vault_id, _secret in secrets):
        raise AnsibleActionFail("%s: %r names no loaded vault secret (loaded: %s); pass --vault-id %s@<password file>"
                                % (VARIABLE, wanted, ", ".join(v for v, _s in secrets) or "none", wanted))
    if not secrets:
        return None
    return vault.Keyring(secrets, wanted or None)


def module_args(action, task_vars, args):
    """args with the run's vault secrets as vault_secrets (unchanged without any)."""
    ring = keyring(action, task_vars)
    return args if ring is None else dict(args, vault_secrets=ring.to_option())


@contextlib.contextmanager
def in_process(action, task_vars):
    """Run an action plugin's own work on clusters/ files with the run's keyring active; a file that
    cannot be opened fails the task with the message naming it."""
    with vault.using(keyring(action, task_vars)) as ring:
        try:
            yield ring
        except vault.VaultError as exc:
            raise AnsibleActionFail(str(exc)) from None


class VaultAction(ActionBase):
    """The action plugin of a module that reads or writes clusters/<name>/: runs the module with the
    run's vault secrets (no_log) and nothing else changed."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        try:
            args = module_args(self, task_vars, dict(self._task.args))
        except AnsibleActionFail as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(self._execute_module(module_name=self._task.resolved_action or self._task.action,
                                           module_args=args, task_vars=task_vars))
        return result
