# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""What a playbook needs of the inventory besides valid nodes, checked before anything is written.

A requirement is a name: ``boot_server`` (a host in group boot_server) or ``matchbox_url``
(talos_matchbox_url on every boot server: an http(s) URL where the nodes reach matchbox).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible_collections.netboot.talos.plugins.module_utils import inventory

BOOT_SERVER_GROUP = "boot_server"
MATCHBOX_URL = "talos_matchbox_url"
REQUIREMENTS = ("boot_server", "matchbox_url")
MISSING = object()
URL_EXAMPLE = "http://10.0.20.50:8080"


def matchbox_url_problem(value):
    """Why value is not a matchbox URL, or None."""
    if value is MISSING or value in (None, ""):
        return "is not set: it is where the nodes reach matchbox on the boot server, e.g. %s (set it in group_vars/all)" % URL_EXAMPLE
    hint = "%r is not a URL like %s (http or https, the boot server's address, matchbox's port)" % (value, URL_EXAMPLE)
    if not isinstance(value, str):
        return hint
    try:
        url = urlsplit(value.strip())
        url.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError:
        return hint
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment or url.username:
        return hint
    return None


def check(require, boot_servers, matchbox_urls):
    """Every problem, one line each, of the requirements named in require.

    boot_servers: the hosts of group boot_server; matchbox_urls: {boot server: its talos_matchbox_url
    (MISSING when unset)}, without the boot servers whose value could not be read (the caller reports
    those). The same mistake on many boot servers is said once, as the inventory's problems are.
    """
    lines = []
    if "boot_server" in require and not boot_servers:
        lines.append(
            "%s: the inventory has no host in group '%s': this playbook sets up or publishes to the boot server "
            "(the host that runs matchbox, TFTP and DHCP for the nodes); add it to that group" % (BOOT_SERVER_GROUP, BOOT_SERVER_GROUP)
        )
    problems = inventory._Problems()  # the inventory's own grouping of one mistake on many hosts
    if "matchbox_url" in require:
        for host in (host for host in boot_servers if host in matchbox_urls):
            problem = matchbox_url_problem(matchbox_urls[host])
            if problem:
                problems.add(host, MATCHBOX_URL, problem)
    return lines + problems.lines()
