# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.talos_machine_config: the module with the run's vault secrets (clusters/ may be vault-encrypted)."""

from __future__ import annotations

from ansible_collections.netboot.talos.plugins.plugin_utils.vault import VaultAction


class ActionModule(VaultAction):
    """The module of the same name, run with the run's vault secrets."""
