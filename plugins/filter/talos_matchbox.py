# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter netboot.talos.talos_matchbox: the matchbox profiles, groups and config files for Talos nodes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netboot.talos.plugins.module_utils import matchbox, matchbox_publish


def talos_matchbox(nodes, matchbox_url, http_delivery=True, halt_if_installed=False):
    try:
        return matchbox.talos_entries(nodes, matchbox_url, http_delivery=bool(http_delivery), halt_if_installed=bool(halt_if_installed))
    except matchbox.MatchboxError as exc:
        raise AnsibleFilterError("talos_matchbox: %s" % exc)


def talos_withhold(configs, earlier, checksums, answering, now):
    return matchbox_publish.withhold(configs, earlier, checksums, answering, now)


class FilterModule:
    def filters(self):
        return {"talos_matchbox": talos_matchbox, "talos_withhold": talos_withhold}
