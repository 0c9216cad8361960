# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter netboot.talos.talos_boot_versions: the Talos version the boot server serves each node during an upgrade."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netboot.talos.plugins.module_utils.talos import versions


def talos_boot_versions(nodes, running, empty_when_unchanged=False):
    try:
        return versions.boot_versions(nodes, running, empty_when_unchanged=bool(empty_when_unchanged))
    except (versions.VersionError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("talos_boot_versions: %s" % exc)


class FilterModule:
    def filters(self):
        return {"talos_boot_versions": talos_boot_versions}
